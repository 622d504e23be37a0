/*
 * The audit log of the embedded store: data_dir/audit.jsonl, one record a
 * line, ids ascending.
 *
 * Decisions run on Synapse's reactor thread and must not wait for the disk,
 * so ssp_audit_submit only queues the record. A writer thread drains the
 * queue in batches: one write and one fdatasync per batch. If writing fails
 * (disk full, say) the batch goes back to the front of the queue and is
 * retried, so records are neither lost nor reordered while the process
 * lives.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ssp_private.h"

#define AUDIT_NAME "audit.jsonl"
#define TAIL_CHUNK 65536
#define RETRY_DELAY_MS 1000
#define FLUSH_TIMEOUT_MS 10000

json_t *ssp_audit_record_to_json(const ssp_audit_record *rec, const char *worker)
{
    return json_pack("{s:I, s:I, s:s, s:s, s:b, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}", "id",
                     (json_int_t)rec->id, "ts", (json_int_t)rec->ts, "rule", ssp_rule_id(rec->rule),
                     "callback", ssp_callback_name(rec->callback), "enforced", rec->enforced,
                     "actor", rec->actor, "target", rec->target, "room_id", rec->room_id,
                     "event_type", rec->event_type, "school", rec->school, "worker", worker);
}

void ssp_audit_free_records(ssp_audit_record *rec)
{
    while (rec != NULL) {
        ssp_audit_record *next = rec->next;

        free(rec);
        rec = next;
    }
}

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

static void deadline_after_ms(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void *writer_main(void *arg)
{
    ssp_audit_log *log = arg;

    pthread_mutex_lock(&log->mutex);
    for (;;) {
        ssp_audit_record *batch, *last;
        uint64_t count = 0;
        char *buf;
        size_t len = 0;
        off_t size_before;
        bool ok;

        while (log->head == NULL && !log->stopping)
            pthread_cond_wait(&log->wake_writer, &log->mutex);
        if (log->head == NULL)
            break; /* stopping with nothing left to write */
        batch = log->head;
        last = log->tail;
        log->head = log->tail = NULL;
        pthread_mutex_unlock(&log->mutex);

        for (ssp_audit_record *rec = batch; rec != NULL; rec = rec->next)
            count++;
        size_before = lseek(log->fd, 0, SEEK_END);
        buf = serialise(batch, log->worker, &len);
        ok = !log->broken && buf != NULL && ssp_write_all(log->fd, buf, len) == 0 &&
             fdatasync(log->fd) == 0;
        free(buf);
        /* Cut a partial write off so the file holds only whole lines. If
         * that fails too, stop writing: the records stay queued rather than
         * land behind a torn line. */
        if (!ok && !log->broken && (size_before < 0 || ftruncate(log->fd, size_before) != 0))
            log->broken = true;

        pthread_mutex_lock(&log->mutex);
        if (ok) {
            log->last_written_id = last->id;
            log->stats.written += count;
            log->stats.queue_depth -= count;
            pthread_cond_broadcast(&log->written_cond);
            pthread_mutex_unlock(&log->mutex);
            ssp_audit_free_records(batch);
            pthread_mutex_lock(&log->mutex);
        } else {
            struct timespec deadline;

            log->stats.write_errors++;
            last->next = log->head;
            log->head = batch;
            if (log->tail == NULL)
                log->tail = last;
            if (log->stopping)
                break; /* shutting down and the disk refuses: give up, records stay queued */
            deadline_after_ms(&deadline, RETRY_DELAY_MS);
            pthread_cond_timedwait(&log->wake_writer, &log->mutex, &deadline);
        }
    }
    pthread_mutex_unlock(&log->mutex);
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

int ssp_audit_open(ssp_audit_log *log, const char *data_dir, const char *worker, ssp_error *err)
{
    int64_t last_id;

    memset(log, 0, sizeof *log);
    log->fd = -1;
    log->wake_fd = -1;
    if (pthread_mutex_init(&log->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the audit mutex");
    pthread_cond_init(&log->wake_writer, NULL);
    pthread_cond_init(&log->written_cond, NULL);
    log->path = ssp_path_join(data_dir, AUDIT_NAME);
    log->worker = ssp_strdup(worker);
    if (log->path == NULL || log->worker == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    log->fd = open(log->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log->fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", log->path, strerror(errno));
        goto fail;
    }
    if (recover_tail(log->fd, log->path, &last_id, err) != 0)
        goto fail;
    log->next_id = last_id + 1;
    log->last_written_id = last_id;
    if (pthread_create(&log->writer, NULL, writer_main, log) != 0) {
        ssp_fail(err, SSP_ERR_NOMEM, "cannot start the audit writer thread");
        goto fail;
    }
    log->writer_started = true;
    return 0;
fail:
    ssp_audit_close(log);
    return -1;
}

int ssp_audit_open_external(ssp_audit_log *log, const char *worker, int wake_fd, ssp_error *err)
{
    memset(log, 0, sizeof *log);
    log->fd = -1;
    log->wake_fd = wake_fd;
    log->external = true;
    if (pthread_mutex_init(&log->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the audit mutex");
    pthread_cond_init(&log->wake_writer, NULL);
    pthread_cond_init(&log->written_cond, NULL);
    log->worker = ssp_strdup(worker);
    if (log->worker == NULL) {
        ssp_audit_close(log);
        return ssp_fail_nomem(err);
    }
    /* Ids count from 1 in each process; the PostgreSQL store pairs them
     * with a per-process origin to make them unique. */
    log->next_id = 1;
    return 0;
}

void ssp_audit_close(ssp_audit_log *log)
{
    if (log->writer_started) {
        pthread_mutex_lock(&log->mutex);
        log->stopping = true;
        pthread_cond_broadcast(&log->wake_writer);
        pthread_mutex_unlock(&log->mutex);
        pthread_join(log->writer, NULL);
        log->writer_started = false;
    }
    ssp_audit_free_records(log->head);
    log->head = log->tail = NULL;
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
    free(log->path);
    free(log->worker);
    log->path = log->worker = NULL;
    pthread_cond_destroy(&log->wake_writer);
    pthread_cond_destroy(&log->written_cond);
    pthread_mutex_destroy(&log->mutex);
}

static size_t opt_len(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *opt_copy(char **cursor, const char *s)
{
    char *dest = *cursor;

    if (s == NULL)
        return NULL;
    strcpy(dest, s);
    /* A record that jansson refused to serialise would block the queue. */
    ssp_utf8_scrub(dest);
    *cursor += strlen(s) + 1;
    return dest;
}

int64_t ssp_audit_submit(ssp_audit_log *log, ssp_rule rule, ssp_callback callback, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school)
{
    size_t size = sizeof(ssp_audit_record) + opt_len(actor) + opt_len(target) +
                  opt_len(room_id) + opt_len(event_type) + opt_len(school);
    ssp_audit_record *rec = malloc(size);
    char *cursor;
    int64_t id;

    if (rec == NULL)
        return -1;
    cursor = (char *)(rec + 1);
    rec->next = NULL;
    rec->ts = ssp_now_ms();
    rec->rule = rule;
    rec->callback = callback;
    rec->enforced = enforced;
    rec->actor = opt_copy(&cursor, actor);
    rec->target = opt_copy(&cursor, target);
    rec->room_id = opt_copy(&cursor, room_id);
    rec->event_type = opt_copy(&cursor, event_type);
    rec->school = opt_copy(&cursor, school);

    pthread_mutex_lock(&log->mutex);
    rec->id = id = log->next_id++;
    if (log->tail != NULL) {
        log->tail->next = rec;
    } else {
        log->head = rec;
        /* The PostgreSQL store's thread sleeps in poll(): wake it when the
         * queue stops being empty. An eventfd write does not block. */
        if (log->wake_fd >= 0) {
            uint64_t one = 1;

            if (write(log->wake_fd, &one, sizeof one) < 0) {
                /* EAGAIN: the counter is already set, the thread will wake */
            }
        }
    }
    log->tail = rec;
    log->stats.queued++;
    log->stats.queue_depth++;
    pthread_cond_signal(&log->wake_writer);
    pthread_mutex_unlock(&log->mutex);
    return id;
}

int ssp_audit_flush(ssp_engine *engine, ssp_error *err)
{
    ssp_audit_log *log = &engine->audit;
    struct timespec deadline;
    int64_t target;
    int rc = 0;

    if (!engine->audit_open)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    deadline_after_ms(&deadline, FLUSH_TIMEOUT_MS);
    pthread_mutex_lock(&log->mutex);
    target = log->next_id - 1;
    while (log->last_written_id < target) {
        if (pthread_cond_timedwait(&log->written_cond, &log->mutex, &deadline) == ETIMEDOUT) {
            rc = ssp_fail(err, SSP_ERR_IO, "audit records are not being written to %s (%llu "
                          "write errors so far)", log->path ? log->path : "the database or the spill file",
                          (unsigned long long)log->stats.write_errors);
            break;
        }
    }
    pthread_mutex_unlock(&log->mutex);
    return rc;
}

int ssp_audit_wait_written(ssp_audit_log *log, int64_t id, int64_t timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    deadline_after_ms(&deadline, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&log->mutex);
    /* Both writers write in id order and broadcast after each batch, so
     * every waiter whose record was in the batch wakes at once: concurrent
     * denials share one fdatasync or one commit. */
    while (log->last_written_id < id) {
        if (pthread_cond_timedwait(&log->written_cond, &log->mutex, &deadline) == ETIMEDOUT) {
            rc = log->last_written_id < id ? -1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&log->mutex);
    return rc;
}

void ssp_audit_get_stats(ssp_engine *engine, ssp_audit_stats *out)
{
    if (!engine->audit_open) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&engine->audit.mutex);
    *out = engine->audit.stats;
    pthread_mutex_unlock(&engine->audit.mutex);
}

static bool string_field_is(json_t *rec, const char *key, const char *want)
{
    const char *value = json_string_value(json_object_get(rec, key));

    return value != NULL && strcmp(value, want) == 0;
}

json_t *ssp_audit_page(json_t *records, const char *next)
{
    if (next != NULL)
        return json_pack("{s:O, s:s}", "records", records, "next", next);
    return json_pack("{s:O, s:n}", "records", records, "next");
}

bool ssp_audit_matches(json_t *rec, const ssp_audit_filter *f)
{
    int64_t id = (int64_t)json_integer_value(json_object_get(rec, "id"));
    int64_t ts = (int64_t)json_integer_value(json_object_get(rec, "ts"));

    if (f->before_id > 0 && id >= f->before_id)
        return false;
    if (f->since_ms > 0 && ts < f->since_ms)
        return false;
    if (f->until_ms > 0 && ts >= f->until_ms)
        return false;
    if (f->rule != NULL && !string_field_is(rec, "rule", f->rule))
        return false;
    if (f->school != NULL && !string_field_is(rec, "school", f->school))
        return false;
    if (f->schools != NULL) {
        size_t i = 0;

        while (i < f->n_schools && !string_field_is(rec, "school", f->schools[i]))
            i++;
        if (i == f->n_schools)
            return false;
    }
    if (f->user != NULL && !string_field_is(rec, "actor", f->user) &&
        !string_field_is(rec, "target", f->user))
        return false;
    return true;
}

int ssp_scan_lines_backwards(int fd, off_t end, ssp_line_visitor visit, void *ctx,
                             ssp_error *err)
{
    char *buf = NULL;
    size_t cap = 0, have = 0; /* buf[0..have): the head of a line whose start is further back */
    off_t pos = end;
    bool tail_found = false; /* the end of the last whole line has been seen */
    int rc = 0;

    while (rc == 0) {
        size_t chunk = pos > TAIL_CHUNK ? TAIL_CHUNK : (size_t)pos, total, j;
        char *nl;

        if (chunk == 0) {
            /* The file's first line. */
            if (tail_found && have > 0)
                rc = visit(buf, have, ctx, err);
            break;
        }
        if (ssp_buf_reserve(&buf, &cap, chunk + have + 1) != 0) {
            rc = ssp_fail_nomem(err);
            break;
        }
        memmove(buf + chunk, buf, have);
        for (size_t done = 0; done < chunk;) {
            ssize_t n = pread(fd, buf + done, chunk - done, pos - (off_t)chunk + (off_t)done);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = ssp_fail(err, SSP_ERR_IO, "cannot read the audit log: %s",
                              n < 0 ? strerror(errno) : "file shrank");
                goto done;
            }
            done += (size_t)n;
        }
        pos -= (off_t)chunk;
        total = chunk + have;
        if (!tail_found) {
            /* A batch being appended right now may show as a torn tail. */
            nl = memrchr(buf, '\n', total);
            if (nl == NULL) {
                have = total;
                continue;
            }
            total = (size_t)(nl - buf);
            tail_found = true;
        }
        j = total;
        while (rc == 0 && (nl = memrchr(buf, '\n', j)) != NULL) {
            size_t from = (size_t)(nl - buf) + 1;

            rc = visit(buf + from, j - from, ctx, err);
            j = (size_t)(nl - buf);
        }
        have = j;
    }
done:
    free(buf);
    return rc < 0 ? -1 : 0;
}

/* The id of the first whole line at or after byte `from`, and where that
 * line starts; 0 when none parses within a chunk (end of file, damage). */
static int64_t id_at_or_after(int fd, off_t from, off_t end, off_t *line_start)
{
    char buf[4096 + 1];
    ssize_t got;
    char *start, *stop;
    json_t *rec;
    int64_t id;

    *line_start = end;
    if (from > 0) {
        /* Step to the start of the next line. */
        for (;;) {
            char *nl;

            got = pread(fd, buf, sizeof buf - 1, from - 1);
            if (got <= 0)
                return 0;
            nl = memchr(buf, '\n', (size_t)got);
            if (nl != NULL) {
                from = from - 1 + (nl - buf) + 1;
                break;
            }
            from += got;
            if (from >= end)
                return 0;
        }
    }
    if (from >= end)
        return 0;
    *line_start = from;
    got = pread(fd, buf, sizeof buf - 1, from);
    if (got <= 0)
        return 0;
    buf[got] = '\0';
    start = buf;
    stop = memchr(start, '\n', (size_t)got);
    if (stop == NULL)
        return 0; /* a line over 4 KiB: the caller narrows no further here */
    rec = json_loadb(start, (size_t)(stop - start), 0, NULL);
    id = rec ? (int64_t)json_integer_value(json_object_get(rec, "id")) : 0;
    json_decref(rec);
    return id;
}

/* Where to start scanning backwards for records with id < before_id: ids
 * ascend through the file, so a bisection over byte offsets finds a line
 * start at or after the last such record. */
static off_t offset_before_id(int fd, off_t size, int64_t before_id)
{
    off_t lo = 0, hi = size;

    while (hi - lo > TAIL_CHUNK) {
        off_t mid = lo + (hi - lo) / 2, line_start;
        int64_t id = id_at_or_after(fd, mid, hi, &line_start);

        if (id <= 0)
            break; /* damaged or overlong line: scan from hi, the filter skips what is newer */
        if (id >= before_id)
            hi = line_start;
        else
            lo = line_start + 1;
    }
    return hi;
}

/* Records are written in id order with the time of the decision, so once
 * a scan backwards has passed `since` by this much, nothing older can
 * match (a wall clock set back by more than this could hide records). */
#define SINCE_SLACK_MS (10 * 60 * 1000)

/* Whether `value`, quoted, occurs in the line: a test that cannot fail for
 * a matching record when the value's JSON form is the value itself
 * (printable ASCII without '"' and '\\'); other values always pass here
 * and are compared after parsing. */
static bool may_hold(const char *line, size_t len, const char *value)
{
    char quoted[SSP_ERROR_MESSAGE_MAX];
    size_t n = strlen(value);

    if (n + 2 > sizeof quoted)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return true;
    }
    quoted[0] = '"';
    memcpy(quoted + 1, value, n);
    quoted[n + 1] = '"';
    return memmem(line, len, quoted, n + 2) != NULL;
}

bool ssp_audit_line_may_match(const char *line, size_t len, const ssp_audit_filter *f)
{
    if (f->rule != NULL && !may_hold(line, len, f->rule))
        return false;
    if (f->school != NULL && !may_hold(line, len, f->school))
        return false;
    if (f->user != NULL && !may_hold(line, len, f->user))
        return false;
    if (f->schools != NULL) {
        for (size_t i = 0; i < f->n_schools; i++) {
            if (may_hold(line, len, f->schools[i]))
                return true;
        }
        return false;
    }
    return true;
}

typedef struct page_scan {
    const ssp_audit_filter *filter;
    json_t *records;
    size_t found;
    int64_t next_id;
    const char *path;
} page_scan;

/* Loads one line; a line that does not load is either damaged on disk
 * (passed over: NULL, *damaged) or was hit by a failed allocation, which
 * must not silently drop a record (-1 with err). */
int ssp_audit_load_line(const char *line, size_t len, const char *path, json_t **out,
                        ssp_error *err)
{
    json_error_t json_err;

    *out = NULL;
    if (len == 0)
        return 0;
    *out = json_loadb(line, len, 0, &json_err);
    if (*out == NULL)
        *out = json_loadb(line, len, 0, &json_err);
    if (*out == NULL && ssp_json_error_is_oom(&json_err))
        return ssp_fail(err, SSP_ERR_NOMEM, "out of memory while reading %s", path);
    return 0;
}

static int page_visit(const char *line, size_t len, void *ctx, ssp_error *err)
{
    page_scan *scan = ctx;
    json_t *rec;

    /* Parsing is the cost of a scan: pass over lines that cannot match. */
    if (!ssp_audit_line_may_match(line, len, scan->filter))
        return 0;
    if (ssp_audit_load_line(line, len, scan->path, &rec, err) != 0)
        return -1;
    if (rec == NULL)
        return 0;
    if (scan->filter->since_ms > 0 &&
        (int64_t)json_integer_value(json_object_get(rec, "ts")) < scan->filter->since_ms - SINCE_SLACK_MS) {
        json_decref(rec);
        return 1;
    }
    if (!ssp_audit_matches(rec, scan->filter)) {
        json_decref(rec);
        return 0;
    }
    if (scan->found == scan->filter->limit) {
        /* One more match than the page holds: there is a next page. */
        scan->next_id = (int64_t)json_integer_value(
            json_object_get(json_array_get(scan->records, scan->found - 1), "id"));
        json_decref(rec);
        return 1;
    }
    if (json_array_append_new(scan->records, rec) != 0)
        return ssp_fail_nomem(err);
    scan->found++;
    return 0;
}

int ssp_audit_scan(ssp_engine *engine, const ssp_audit_filter *filter, ssp_line_visitor visit,
                   void *ctx, ssp_error *err)
{
    int fd = open(engine->audit.path, O_RDONLY | O_CLOEXEC);
    off_t size, from;
    int rc;

    if (fd < 0)
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", engine->audit.path, strerror(errno));
    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        close(fd);
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", engine->audit.path, strerror(errno));
    }
    from = filter->before_id > 0 ? offset_before_id(fd, size, filter->before_id) : size;
    rc = ssp_scan_lines_backwards(fd, from, visit, ctx, err);
    close(fd);
    return rc;
}

int ssp_audit_query(ssp_engine *engine, const ssp_audit_filter *filter, char **result_json,
                    ssp_error *err)
{
    page_scan scan = {filter, NULL, 0, 0, NULL};
    json_t *result = NULL;
    char next[32];
    int rc = -1;

    *result_json = NULL;
    if (filter->limit == 0 || filter->limit > 1000)
        return ssp_fail(err, SSP_ERR_INPUT, "limit: expected an integer from 1 to 1000");
    if (ssp_audit_flush(engine, err) != 0)
        return -1;
    if (engine->pg != NULL)
        return ssp_pgstore_audit_query(engine, filter, result_json, err);
    /* Newest first, reading the file backwards from the newest (or from the
     * page's start, found by bisection), and stopping one match past the
     * page: a page costs what it reads, not the size of the log. */
    scan.path = engine->audit.path;
    scan.records = json_array();
    if (scan.records == NULL)
        return ssp_fail_nomem(err);
    if (ssp_audit_scan(engine, filter, page_visit, &scan, err) != 0)
        goto done;
    if (scan.next_id > 0)
        snprintf(next, sizeof next, "%lld", (long long)scan.next_id);
    result = ssp_audit_page(scan.records, scan.next_id > 0 ? next : NULL);
    if (result == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    rc = ssp_json_dump_to(result, result_json, err);
done:
    json_decref(scan.records);
    json_decref(result);
    return rc;
}
