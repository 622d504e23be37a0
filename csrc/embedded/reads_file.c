/*
 * The embedded store's read log, data_dir/audit-reads.jsonl: one record
 * per read of audit data (audit_view.c), appended and fdatasync'ed before
 * the read is answered; ids ascending. Appends are serialised by the
 * file's mutex; the next id is read from the file at the first append.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded/audit_scan.h"
#include "embedded/reads_file.h"
#include "util.h"

#define READS_NAME "audit-reads.jsonl"

int ssp_reads_file_open(ssp_reads_file *file, const char *data_dir, ssp_error *err)
{
    memset(file, 0, sizeof *file);
    if (pthread_mutex_init(&file->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the read log mutex");
    file->mutex_ready = true;
    file->path = ssp_path_join(data_dir, READS_NAME);
    if (file->path == NULL) {
        ssp_reads_file_close(file);
        return ssp_fail_nomem(err);
    }
    return 0;
}

void ssp_reads_file_close(ssp_reads_file *file)
{
    free(file->path);
    file->path = NULL;
    if (file->mutex_ready)
        pthread_mutex_destroy(&file->mutex);
    file->mutex_ready = false;
}

static int last_id_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    int64_t *last = ctx;
    json_t *rec;

    if (ssp_load_line(line, len, READS_NAME, &rec, err) != 0)
        return -1;
    *last = rec ? (int64_t)json_integer_value(json_object_get(rec, "id")) : 0;
    json_decref(rec);
    return *last > 0 ? 1 : 0;
}

/* Appends one record, fdatasync'ed; on a failed write cuts the file back
 * so it holds whole lines only. Called with file->mutex held. */
static int reads_append_locked(ssp_reads_file *file, json_t *record, ssp_error *err)
{
    const char *path = file->path;
    char *line = NULL;
    int fd = -1, rc = -1;
    off_t size;

    fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (file->next_id == 0) {
        int64_t last = 0;

        if (ssp_scan_lines_backwards(fd, size, last_id_visit, &last, err) != 0)
            goto done;
        file->next_id = last + 1;
    }
    if (json_object_set_new(record, "id", json_integer(file->next_id)) != 0 ||
        (line = ssp_json_dumps_checked(record)) == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    if (ssp_write_all(fd, line, strlen(line)) != 0 || ssp_write_all(fd, "\n", 1) != 0 ||
        fdatasync(fd) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        if (ftruncate(fd, size) != 0) {
            /* the torn line is passed over by every reader */
        }
        goto done;
    }
    file->next_id++;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(line);
    return rc;
}

int ssp_reads_file_append(ssp_reads_file *file, json_t *record, ssp_error *err)
{
    int rc;

    pthread_mutex_lock(&file->mutex);
    rc = reads_append_locked(file, record, err);
    pthread_mutex_unlock(&file->mutex);
    return rc;
}

typedef struct reads_scan {
    json_t *schools; /* NULL: every record */
    const ssp_reads_filter *q;
    ssp_page_collect page;
} reads_scan;

/* With `schools` (a school admin's), a read is visible when it was
 * confined to one of them; a read of every school (null) is not. */
static bool read_visible(json_t *schools, json_t *rec)
{
    json_t *rec_schools = json_object_get(rec, "schools");
    size_t i, k;
    json_t *school, *mine;

    if (schools == NULL)
        return true;
    json_array_foreach(rec_schools, i, school) {
        if (!json_is_string(school))
            continue;
        json_array_foreach(schools, k, mine) {
            if (json_equal(school, mine))
                return true;
        }
    }
    return false;
}

static int reads_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    reads_scan *scan = ctx;
    json_t *rec;
    int64_t id, ts;

    if (ssp_load_line(line, len, READS_NAME, &rec, err) != 0)
        return -1;
    if (rec == NULL)
        return 0;
    id = (int64_t)json_integer_value(json_object_get(rec, "id"));
    ts = (int64_t)json_integer_value(json_object_get(rec, "ts"));
    if (scan->q->since_ms > 0 && ts < scan->q->since_ms - SSP_SINCE_SLACK_MS) {
        json_decref(rec);
        return 1;
    }
    if ((scan->q->before_id > 0 && id >= scan->q->before_id) || (scan->q->since_ms > 0 && ts < scan->q->since_ms) ||
        (scan->q->until_ms > 0 && ts >= scan->q->until_ms) || !read_visible(scan->schools, rec)) {
        json_decref(rec);
        return 0;
    }
    return ssp_page_take(&scan->page, scan->q->limit, rec, err);
}

int ssp_reads_file_query(ssp_reads_file *file, json_t *schools,
                               const ssp_reads_filter *q, json_t **page, ssp_error *err)
{
    reads_scan scan = {schools, q, {json_array(), 0, 0}};
    const char *path = file->path;
    int fd = -1, rc = -1;
    off_t size;

    *page = NULL;
    if (scan.page.records == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    /* The read log holds what people read by hand: small enough to scan. */
    if (ssp_scan_lines_backwards(fd, size, reads_visit, &scan, err) != 0)
        goto done;
    *page = ssp_page_result(&scan.page);
    rc = *page != NULL ? 0 : ssp_fail_nomem(err);
done:
    if (fd >= 0)
        close(fd);
    json_decref(scan.page.records);
    return rc;
}
