/*
 * The embedded store's read log, data_dir/audit-reads.jsonl: one record
 * per read of audit data (audit_view.c), appended and fdatasync'ed before
 * the read is answered; ids ascending. Appends are serialised by the
 * file's mutex; the next id is read from the file at the first append.
 *
 * Retention: once an hour, before an append, Synapse's process rewrites
 * the file without the records older than audit.retention_days (the
 * newest record always stays, so ids never start again). The command
 * line appends to the same file from another process, so every append
 * and the rewrite hold an flock on the file, and an append that finds the
 * file replaced under its lock opens the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedded/audit_scan.h"
#include "embedded/reads_file.h"
#include "files.h"
#include "util.h"

#define READS_NAME "audit-reads.jsonl"
#define PRUNE_EVERY_MS (3600 * 1000)
#define DAY_MS INT64_C(86400000)
#define SCAN_CHUNK 65536

int ssp_reads_file_open(ssp_reads_file *file, const char *data_dir, int64_t retention_days,
                        ssp_error *err)
{
    memset(file, 0, sizeof *file);
    if (pthread_mutex_init(&file->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the read log mutex");
    file->mutex_ready = true;
    file->retention_ms = retention_days * DAY_MS;
    file->path = ssp_path_join(data_dir, READS_NAME);
    file->dir = ssp_strdup(data_dir);
    if (file->path == NULL || file->dir == NULL) {
        ssp_reads_file_close(file);
        return ssp_fail_nomem(err);
    }
    return 0;
}

void ssp_reads_file_close(ssp_reads_file *file)
{
    free(file->path);
    file->path = NULL;
    free(file->dir);
    file->dir = NULL;
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

/* Opens the file (flags as for open(2)) and takes its flock: the fd of
 * the file now at the path, which a rewrite by another process may have
 * replaced while this one waited for the lock. -1 with errno. */
static int open_locked(const char *path, int flags)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct stat held, current;
        int fd = open(path, flags | O_CLOEXEC, 0600);

        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &held) != 0) {
            int saved = errno;

            close(fd);
            errno = saved;
            return -1;
        }
        if (stat(path, &current) == 0 && current.st_ino == held.st_ino &&
            current.st_dev == held.st_dev)
            return fd;
        close(fd); /* replaced meanwhile: take the new one */
    }
    errno = EAGAIN;
    return -1;
}

/* The integer "ts" of a line, or -1. */
static int64_t line_ts(const char *line, size_t len)
{
    json_t *rec = json_loadb(line, len, 0, NULL);
    int64_t ts = rec != NULL && json_is_integer(json_object_get(rec, "ts"))
                     ? (int64_t)json_integer_value(json_object_get(rec, "ts"))
                     : -1;

    json_decref(rec);
    return ts;
}

/* Where the file's last whole line starts; 0 when it cannot be told (a
 * line longer than a chunk, a read error): then nothing is cut. */
static off_t last_line_start(int fd, off_t size)
{
    off_t from = size > SCAN_CHUNK ? size - SCAN_CHUNK : 0, start = 0;
    char *data = ssp_read_range(fd, from, size), *end, *nl;

    if (data == NULL)
        return 0;
    end = memrchr(data, '\n', (size_t)(size - from)); /* the last whole line's end */
    if (end != NULL) {
        nl = end > data ? memrchr(data, '\n', (size_t)(end - data)) : NULL;
        if (nl != NULL)
            start = from + (nl - data) + 1;
        else if (from == 0)
            start = 0;
    }
    free(data);
    return start;
}

/* Where the kept part of the file starts: the first line with ts >=
 * cutoff, but never after the newest line. Lines are in time order (the
 * clock aside): a bisection finds the region, a scan of it the line. */
static off_t cut_offset(int fd, off_t size, int64_t cutoff)
{
    off_t hi = ssp_offset_at(fd, size, "ts", cutoff), newest = last_line_start(fd, size);
    off_t from = hi > SCAN_CHUNK ? hi - SCAN_CHUNK : 0, cut = hi;
    char *data, *line, *end;

    /* [from - 1, hi): one byte before, to tell whether from starts a line */
    data = from < hi ? ssp_read_range(fd, from > 0 ? from - 1 : 0, hi) : NULL;
    if (data != NULL) {
        line = data;
        end = data + (hi - (from > 0 ? from - 1 : 0));
        if (from > 0) {
            char *nl = memchr(line, '\n', (size_t)(end - line));

            line = nl != NULL ? nl + 1 : end; /* the first line that starts in the region */
        }
        while (line < end) {
            char *nl = memchr(line, '\n', (size_t)(end - line));

            if (nl == NULL)
                break;
            if (line_ts(line, (size_t)(nl - line)) >= cutoff) {
                cut = (from > 0 ? from - 1 : 0) + (line - data);
                break;
            }
            line = nl + 1;
        }
        free(data);
    }
    return cut > newest ? newest : cut;
}

typedef struct tail_copy {
    int from_fd;
    off_t from, to;
} tail_copy;

static int copy_tail(int fd, void *ctx)
{
    tail_copy *copy = ctx;
    char buf[65536];

    for (off_t at = copy->from; at < copy->to;) {
        size_t want = copy->to - at > (off_t)sizeof buf ? sizeof buf : (size_t)(copy->to - at);
        ssize_t got = pread(copy->from_fd, buf, want, at);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* the file shrank: nobody but this does that */
            return -1;
        }
        if (ssp_write_all(fd, buf, (size_t)got) != 0)
            return -1;
        at += got;
    }
    return 0;
}

int ssp_reads_file_prune(ssp_reads_file *file, int64_t cutoff_ms, uint64_t *removed,
                         ssp_error *err)
{
    int fd, rc = 0;
    off_t size, cut;

    *removed = 0;
    pthread_mutex_lock(&file->mutex);
    fd = open_locked(file->path, O_RDONLY);
    if (fd < 0) {
        if (errno != ENOENT)
            rc = ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", file->path, strerror(errno));
        goto done;
    }
    size = lseek(fd, 0, SEEK_END);
    cut = size > 0 ? cut_offset(fd, size, cutoff_ms) : 0;
    if (cut > 0) {
        tail_copy copy = {fd, cut, size};
        char *head = ssp_read_range(fd, 0, cut);

        for (const char *p = head; p != NULL && *p; p++)
            *removed += *p == '\n';
        free(head);
        /* Still under the lock: an append waiting for it finds the file
         * replaced and opens the new one. */
        rc = ssp_file_rewrite(file->dir, file->path, copy_tail, &copy, err);
        if (rc != 0)
            *removed = 0;
    }
    close(fd);
done:
    pthread_mutex_unlock(&file->mutex);
    return rc;
}

/* Appends one record, fdatasync'ed; on a failed write cuts the file back
 * so it holds whole lines only. Called with file->mutex held. */
static int reads_append_locked(ssp_reads_file *file, json_t *record, ssp_error *err)
{
    const char *path = file->path;
    char *line = NULL;
    int fd = -1, rc = -1;
    off_t size;

    fd = open_locked(path, O_RDWR | O_CREAT | O_APPEND);
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
    int64_t now = ssp_now_ms();
    int rc;

    if (file->retention_ms > 0 && now >= __atomic_load_n(&file->next_prune_ms, __ATOMIC_RELAXED)) {
        uint64_t removed;
        ssp_error ignored;

        /* A failed rewrite (a full disk) keeps everything: tried again in
         * an hour, and the read itself is not refused for it. */
        __atomic_store_n(&file->next_prune_ms, now + PRUNE_EVERY_MS, __ATOMIC_RELAXED);
        (void)ssp_reads_file_prune(file, now - file->retention_ms, &removed, &ignored);
    }
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

/* A school admin's page passes over the lines that name none of their
 * schools without parsing them. */
static bool line_may_be_visible(json_t *schools, const char *line, size_t len)
{
    size_t i;
    json_t *mine;

    if (schools == NULL)
        return true;
    json_array_foreach(schools, i, mine) {
        if (json_is_string(mine) && ssp_line_may_hold(line, len, json_string_value(mine)))
            return true;
    }
    return false;
}

static int reads_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    reads_scan *scan = ctx;
    json_t *rec;
    int64_t id, ts;

    if (!line_may_be_visible(scan->schools, line, len))
        return 0;
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
    /* Newest first from the page's start (found by bisection over the
     * ascending ids), stopping one match past the page or once past since:
     * a page costs what it reads, not the size of the log. */
    if (ssp_scan_lines_backwards(fd, q->before_id > 0 ? ssp_offset_at(fd, size, "id", q->before_id)
                                                      : size,
                                 reads_visit, &scan, err) != 0)
        goto done;
    *page = ssp_page_result(&scan.page);
    rc = *page != NULL ? 0 : ssp_fail_nomem(err);
done:
    if (fd >= 0)
        close(fd);
    json_decref(scan.page.records);
    return rc;
}
