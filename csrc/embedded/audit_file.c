/*
 * The embedded store's audit log, data_dir/audit.jsonl: one record a line,
 * ids ascending, written by a thread that drains the audit queue
 * (audit_queue.h), and read backwards for the pages and the chart. (The
 * read log, audit-reads.jsonl, is reads_file.c.)
 *
 * Ownership: the file owns its path and fd; records taken from the queue
 * belong to the writer until they are marked written or put back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_queue.h"
#include "embedded/audit_file.h"
#include "embedded/audit_scan.h"
#include "util.h"

#define AUDIT_NAME "audit.jsonl"
#define TAIL_CHUNK 65536
#define RETRY_DELAY_MS 1000

/* The chart's counts (file->counts_state). */
enum { COUNTS_NOT_BUILT = 0, COUNTS_KEPT, COUNTS_BROKEN };

/* ---- writing audit.jsonl ---- */

/* Serialises a batch into one buffer of newline-terminated lines. */
static char *serialise(const ssp_audit_record *batch, const char *worker, size_t *len)
{
    char *buf = NULL;
    size_t used = 0, capacity = 0;

    for (const ssp_audit_record *rec = batch; rec != NULL; rec = rec->next) {
        json_t *json = ssp_audit_record_to_json(rec, worker);
        char *line = json ? ssp_json_dumps_checked(json) : NULL;
        size_t line_len;

        json_decref(json);
        if (line == NULL)
            goto oom;
        line_len = strlen(line);
        if (ssp_buf_reserve(&buf, &capacity, used + line_len + 1) != 0) {
            free(line);
            goto oom;
        }
        memcpy(buf + used, line, line_len);
        used += line_len;
        buf[used++] = '\n';
        free(line);
    }
    *len = used;
    return buf;
oom:
    free(buf);
    return NULL;
}

/* Counts a written batch for the chart, before it is marked written: a
 * chart asked after a flush counts what the flush waited for. Out of
 * memory, the counts are given up and charts read the file. */
static void count_batch(ssp_audit_file *file, const ssp_audit_batch *batch)
{
    ssp_error err;

    if (__atomic_load_n(&file->counts_state, __ATOMIC_ACQUIRE) != COUNTS_KEPT)
        return;
    for (const ssp_audit_record *rec = batch->first; rec != NULL; rec = rec->next) {
        /* an action has no rule: the counts pass over it */
        if (ssp_audit_counts_add(&file->counts, rec->ts, rec->rule, rec->school,
                                 rec->count > 1 ? (uint64_t)rec->count : 1, &err) != 0) {
            __atomic_store_n(&file->counts_state, COUNTS_BROKEN, __ATOMIC_RELEASE);
            return;
        }
    }
}

/* Drains the queue into the file: everything queued in one write and one
 * fdatasync (group commit); the batch is marked written only after the
 * fdatasync. If writing fails (disk full, say) the batch goes back to the
 * front and is retried. */
static void *writer_main(void *arg)
{
    ssp_audit_file *file = arg;
    ssp_audit_queue *queue = file->queue;

    while (ssp_audit_wait_queued(queue, -1)) {
        ssp_audit_batch batch;
        char *buf;
        size_t len = 0;
        off_t size_before;
        bool ok;

        if (!ssp_audit_take(queue, 0, &batch))
            continue;
        size_before = lseek(file->fd, 0, SEEK_END);
        buf = serialise(batch.first, queue->worker, &len);
        ok = !file->broken && buf != NULL && ssp_write_all(file->fd, buf, len) == 0 &&
             fdatasync(file->fd) == 0;
        free(buf);
        /* Cut a partial write off so the file holds only whole lines. If
         * that fails too, stop writing: the records stay queued rather than
         * land behind a torn line. */
        if (!ok && !file->broken && (size_before < 0 || ftruncate(file->fd, size_before) != 0))
            file->broken = true;
        if (ok) {
            count_batch(file, &batch);
            ssp_audit_mark_written(queue, &batch);
            continue;
        }
        ssp_audit_put_back(queue, &batch);
        /* Shutting down and the disk refuses: give up, records stay queued.
         * Otherwise retry after a pause (or when a new record arrives). */
        if (ssp_audit_pause(queue, RETRY_DELAY_MS))
            break;
    }
    return NULL;
}

/* The highest id among the whole lines of buf (NUL-terminated), scanning
 * from the end; 0 when none parses. Damaged lines are passed over, so that
 * ids never start again and pagination stays unambiguous. */
static int64_t last_id_in(char *buf)
{
    char *end = buf + strlen(buf);

    while (end > buf) {
        char *line;
        json_t *rec;
        int64_t id = 0;

        *end = '\0';
        line = strrchr(buf, '\n');
        line = line ? line + 1 : buf;
        rec = json_loads(line, 0, NULL);
        if (rec != NULL)
            id = (int64_t)json_integer_value(json_object_get(rec, "id"));
        json_decref(rec);
        if (id > 0)
            return id;
        end = line > buf ? line - 1 : buf;
    }
    return 0;
}

/* The highest id in the whole file, for when the tail holds none. */
static int64_t last_id_in_file(int fd)
{
    FILE *file;
    char *line = NULL;
    size_t cap = 0;
    int64_t last = 0;
    int copy = dup(fd);

    if (copy < 0 || (file = fdopen(copy, "r")) == NULL) {
        if (copy >= 0)
            close(copy);
        return 0;
    }
    rewind(file);
    while (getline(&line, &cap, file) > 0) {
        json_t *rec = json_loads(line, 0, NULL);
        int64_t id = rec ? (int64_t)json_integer_value(json_object_get(rec, "id")) : 0;

        json_decref(rec);
        if (id > last)
            last = id;
    }
    free(line);
    fclose(file);
    return last;
}

/* Reads the id of the last whole record and cuts off a torn last line. */
static int recover_tail(int fd, const char *path, int64_t *last_id, ssp_error *err)
{
    off_t size = lseek(fd, 0, SEEK_END), start;
    char *chunk;
    ssize_t got;
    char *end;

    *last_id = 0;
    if (size <= 0)
        return 0;
    start = size > TAIL_CHUNK ? size - TAIL_CHUNK : 0;
    chunk = malloc(TAIL_CHUNK + 1);
    if (chunk == NULL)
        return ssp_fail_nomem(err);
    got = pread(fd, chunk, (size_t)(size - start), start);
    if (got != size - start) {
        free(chunk);
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    chunk[got] = '\0';
    end = strrchr(chunk, '\n');
    if (end == NULL || end + 1 != chunk + got) {
        off_t keep = end ? start + (end - chunk) + 1 : start;

        if (ftruncate(fd, keep) != 0) {
            free(chunk);
            return ssp_fail(err, SSP_ERR_IO, "cannot truncate %s: %s", path, strerror(errno));
        }
    }
    if (end != NULL) {
        end[0] = '\0';
        /* The first line of a chunk that starts mid-file may be partial:
         * last_id_in passes over it like any damaged line. */
        *last_id = last_id_in(chunk);
    }
    free(chunk);
    if (*last_id == 0 && start > 0)
        *last_id = last_id_in_file(fd);
    return 0;
}

int ssp_audit_file_open_readonly(ssp_audit_file *file, const char *data_dir, ssp_error *err)
{
    memset(file, 0, sizeof *file);
    file->fd = -1;
    if (ssp_audit_counts_init(&file->counts, err) != 0)
        return -1;
    if (pthread_mutex_init(&file->counts_build, NULL) != 0) {
        ssp_audit_counts_destroy(&file->counts);
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the audit counts' mutex");
    }
    file->counts_ready = true;
    file->path = ssp_path_join(data_dir, AUDIT_NAME);
    if (file->path == NULL) {
        ssp_audit_file_close(file);
        return ssp_fail_nomem(err);
    }
    return 0;
}

/* Counts the file's records once, if not done yet. The command line's
 * open reads the file as it is, so its counts are built at its first chart
 * and never kept: the running Synapse's later records are not in them
 * (nor in anything else the command line read). */
static int build_counts(ssp_audit_file *file, ssp_error *err)
{
    int rc = 0;

    if (__atomic_load_n(&file->counts_state, __ATOMIC_ACQUIRE) != COUNTS_NOT_BUILT)
        return 0;
    pthread_mutex_lock(&file->counts_build);
    if (__atomic_load_n(&file->counts_state, __ATOMIC_ACQUIRE) == COUNTS_NOT_BUILT) {
        int fd = file->fd >= 0 ? file->fd : open(file->path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 && errno != ENOENT)
            rc = ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", file->path, strerror(errno));
        else if (fd >= 0)
            rc = ssp_audit_counts_load(&file->counts, fd, file->path, err);
        if (fd >= 0 && fd != file->fd)
            close(fd);
        if (rc == 0)
            __atomic_store_n(&file->counts_state, COUNTS_KEPT, __ATOMIC_RELEASE);
        else
            ssp_audit_counts_clear(&file->counts); /* a failed build leaves nothing half-counted */
    }
    pthread_mutex_unlock(&file->counts_build);
    return rc;
}

int ssp_audit_file_open(ssp_audit_file *file, const char *data_dir, int64_t *last_id,
                        ssp_error *err)
{
    if (ssp_audit_file_open_readonly(file, data_dir, err) != 0)
        return -1;
    file->fd = open(file->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (file->fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", file->path, strerror(errno));
        goto fail;
    }
    if (recover_tail(file->fd, file->path, last_id, err) != 0)
        goto fail;
    /* Before the writer starts: the counts then follow every append. */
    if (build_counts(file, err) != 0)
        goto fail;
    return 0;
fail:
    ssp_audit_file_close(file);
    return -1;
}

int ssp_audit_file_start(ssp_audit_file *file, ssp_audit_queue *queue, ssp_error *err)
{
    file->queue = queue;
    if (pthread_create(&file->writer, NULL, writer_main, file) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot start the audit writer thread");
    file->writer_started = true;
    return 0;
}

void ssp_audit_file_close(ssp_audit_file *file)
{
    if (file->writer_started) {
        ssp_audit_stop(file->queue);
        pthread_join(file->writer, NULL);
        file->writer_started = false;
    }
    if (file->fd >= 0)
        close(file->fd);
    file->fd = -1;
    free(file->path);
    file->path = NULL;
    if (file->counts_ready) {
        ssp_audit_counts_destroy(&file->counts);
        pthread_mutex_destroy(&file->counts_build);
        file->counts_ready = false;
    }
}

/* ---- reading audit.jsonl ---- */

static bool line_may_match(const char *line, size_t len, const ssp_audit_filter *f)
{
    /* An action's line has the key "action"; a denial's rarely. */
    if (f->kinds == SSP_AUDIT_ONLY_ACTIONS && !ssp_line_may_hold(line, len, "action"))
        return false;
    if (f->rule != NULL && !ssp_line_may_hold(line, len, f->rule))
        return false;
    if (f->school != NULL && !ssp_line_may_hold(line, len, f->school))
        return false;
    if (f->user != NULL && !ssp_line_may_hold(line, len, f->user))
        return false;
    if (f->schools != NULL) {
        for (size_t i = 0; i < f->n_schools; i++) {
            if (ssp_line_may_hold(line, len, f->schools[i]))
                return true;
        }
        return false;
    }
    return true;
}

typedef struct page_scan {
    const ssp_audit_filter *filter;
    ssp_page_collect page;
    const char *path;
} page_scan;

static int page_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    page_scan *scan = ctx;
    json_t *rec;

    /* Parsing is the cost of a scan: pass over lines that cannot match. */
    if (!line_may_match(line, len, scan->filter))
        return 0;
    if (ssp_load_line(line, len, scan->path, &rec, err) != 0)
        return -1;
    if (rec == NULL)
        return 0;
    if (scan->filter->since_ms > 0 &&
        (int64_t)json_integer_value(json_object_get(rec, "ts")) < scan->filter->since_ms - SSP_SINCE_SLACK_MS) {
        json_decref(rec);
        return 1;
    }
    if (!ssp_audit_matches(rec, scan->filter)) {
        json_decref(rec);
        return 0;
    }
    if (ssp_audit_record_complete(rec) != 0) {
        json_decref(rec);
        return ssp_fail_nomem(err);
    }
    return ssp_page_take(&scan->page, scan->filter->limit, rec, err);
}

/* Scans audit.jsonl backwards from the newest record (or from where
 * records older than filter->before_id end). */
static int audit_scan(ssp_audit_file *file, const ssp_audit_filter *filter, ssp_line_visitor visit,
                      void *ctx, ssp_error *err)
{
    int fd = open(file->path, O_RDONLY | O_CLOEXEC);
    off_t size, from;
    int rc;

    if (fd < 0)
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", file->path, strerror(errno));
    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        close(fd);
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", file->path, strerror(errno));
    }
    from = filter->before_id > 0 ? ssp_offset_at(fd, size, "id", filter->before_id) : size;
    rc = ssp_scan_lines_backwards(fd, from, visit, ctx, err);
    close(fd);
    return rc;
}

int ssp_audit_file_query(ssp_audit_file *file, const ssp_audit_filter *filter,
                         char **result_json, ssp_error *err)
{
    page_scan scan = {filter, {NULL, 0, 0}, NULL};
    json_t *result = NULL;
    int rc = -1;

    *result_json = NULL;
    /* Newest first, reading the file backwards from the newest (or from the
     * page's start, found by bisection), and stopping one match past the
     * page: a page costs what it reads, not the size of the log. */
    scan.path = file->path;
    scan.page.records = json_array();
    if (scan.page.records == NULL)
        return ssp_fail_nomem(err);
    if (audit_scan(file, filter, page_visit, &scan, err) != 0)
        goto done;
    result = ssp_page_result(&scan.page);
    if (result == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    rc = ssp_json_dump_to(result, result_json, err);
done:
    json_decref(scan.page.records);
    json_decref(result);
    return rc;
}

/* ---- the chart's counts ---- */

typedef struct chart_scan {
    const ssp_audit_filter *filter;
    int64_t bucket;
    size_t n_buckets;
    uint64_t *counts; /* [bucket][rule] */
    const char *path;
} chart_scan;

static int chart_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    chart_scan *scan = ctx;
    json_t *rec;
    int64_t ts;
    ssp_rule rule;

    /* A line that cannot match is passed over unparsed; the scan then
     * stops at the first parsed record older than since. */
    if (!line_may_match(line, len, scan->filter))
        return 0;
    if (ssp_load_line(line, len, scan->path, &rec, err) != 0)
        return -1;
    if (rec == NULL)
        return 0;
    ts = (int64_t)json_integer_value(json_object_get(rec, "ts"));
    if (ts < scan->filter->since_ms - SSP_SINCE_SLACK_MS) {
        json_decref(rec);
        return 1;
    }
    rule = json_is_string(json_object_get(rec, "rule"))
               ? ssp_rule_from_id(json_string_value(json_object_get(rec, "rule")))
               : SSP_RULE_NONE;
    if (rule != SSP_RULE_NONE && ssp_audit_matches(rec, scan->filter)) {
        size_t b = (size_t)((ts - scan->filter->since_ms) / scan->bucket);
        json_t *count = json_object_get(rec, "count");

        /* A summary of a flood counts every denial it stands for. */
        if (b < scan->n_buckets)
            scan->counts[b * SSP_RULE__COUNT + rule] +=
                json_is_integer(count) && json_integer_value(count) > 1
                    ? (uint64_t)json_integer_value(count)
                    : 1;
    }
    json_decref(rec);
    return 0;
}

int ssp_audit_file_chart(ssp_audit_file *file, const ssp_audit_filter *filter, int64_t bucket,
                         json_t **rows, ssp_error *err)
{
    /* audit_view.c checked 0 < since < until <= SSP_AUDIT_MAX_TS_MS, whole
     * minutes, and at most 2,000 buckets: nothing here overflows. */
    size_t n_buckets = (size_t)((filter->until_ms - filter->since_ms + bucket - 1) / bucket);
    chart_scan scan = {filter, bucket, n_buckets, calloc(n_buckets * SSP_RULE__COUNT,
                                                         sizeof(uint64_t)), file->path};
    int rc = -1;

    *rows = json_array();
    if (scan.counts == NULL || *rows == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    if (build_counts(file, err) != 0)
        goto done;
    /* The counts know no users: a chart of one user reads the file. */
    if (filter->user == NULL &&
        __atomic_load_n(&file->counts_state, __ATOMIC_ACQUIRE) == COUNTS_KEPT) {
        if (ssp_audit_counts_chart(&file->counts, filter, bucket, scan.counts, err) != 0)
            goto done;
    } else if (audit_scan(file, filter, chart_visit, &scan, err) != 0) {
        goto done;
    }
    for (size_t b = 0; b < n_buckets; b++) {
        for (int r = 1; r < SSP_RULE__COUNT; r++) {
            uint64_t n = scan.counts[b * SSP_RULE__COUNT + (size_t)r];

            if (n > 0 && json_array_append_new(
                             *rows, json_pack("[I, s, I]", (json_int_t)(filter->since_ms +
                                                                       (int64_t)b * bucket),
                                              ssp_rule_id((ssp_rule)r), (json_int_t)n)) != 0) {
                ssp_fail_nomem(err);
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(scan.counts);
    if (rc != 0) {
        json_decref(*rows);
        *rows = NULL;
    }
    return rc;
}
