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

int ssp_audit_submit(ssp_audit_log *log, ssp_rule rule, ssp_callback callback, bool enforced,
                     const char *actor, const char *target, const char *room_id,
                     const char *event_type, const char *school)
{
    size_t size = sizeof(ssp_audit_record) + opt_len(actor) + opt_len(target) +
                  opt_len(room_id) + opt_len(event_type) + opt_len(school);
    ssp_audit_record *rec = malloc(size);
    char *cursor;

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
    rec->id = log->next_id++;
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
    return 0;
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

static bool matches(json_t *rec, const ssp_audit_filter *f)
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
    if (f->user != NULL && !string_field_is(rec, "actor", f->user) &&
        !string_field_is(rec, "target", f->user))
        return false;
    return true;
}

int ssp_audit_query(ssp_engine *engine, const ssp_audit_filter *filter, char **result_json,
                    ssp_error *err)
{
    FILE *file = NULL;
    char *line = NULL;
    size_t line_cap = 0, kept = 0, ring_start = 0, total = 0;
    ssize_t line_len;
    json_t **ring = NULL, *records = NULL, *result = NULL;
    char next[32];
    int rc = -1;

    *result_json = NULL;
    if (filter->limit == 0 || filter->limit > 1000)
        return ssp_fail(err, SSP_ERR_INPUT, "limit: expected an integer from 1 to 1000");
    if (ssp_audit_flush(engine, err) != 0)
        return -1;
    if (engine->pg != NULL)
        return ssp_pgstore_audit_query(engine, filter, result_json, err);
    ring = calloc(filter->limit, sizeof *ring);
    if (ring == NULL)
        return ssp_fail_nomem(err);
    file = fopen(engine->audit.path, "re");
    if (file == NULL) {
        ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", engine->audit.path, strerror(errno));
        goto done;
    }
    /* Keep the newest `limit` matches in a ring: the file is oldest first. */
    while ((line_len = getline(&line, &line_cap, file)) > 0) {
        json_error_t json_err;
        json_t *rec = json_loadb(line, (size_t)line_len, 0, &json_err);

        /* The writer leaves only whole lines, so a line that does not load
         * is either damaged on disk (passed over: nothing can be recovered
         * from it) or was hit by a failed allocation, which must not
         * silently drop a record: load it once more to tell which. */
        if (rec == NULL)
            rec = json_loadb(line, (size_t)line_len, 0, &json_err);
        if (rec == NULL && ssp_json_error_is_oom(&json_err)) {
            ssp_fail(err, SSP_ERR_NOMEM, "out of memory while reading %s", engine->audit.path);
            goto done;
        }
        if (rec == NULL || !matches(rec, filter)) {
            json_decref(rec);
            continue;
        }
        total++;
        if (kept < filter->limit) {
            ring[kept++] = rec;
        } else {
            json_decref(ring[ring_start]);
            ring[ring_start] = rec;
            ring_start = (ring_start + 1) % filter->limit;
        }
    }
    records = json_array();
    if (records == NULL)
        goto oom;
    for (size_t i = kept; i > 0; i--) {
        size_t slot = (ring_start + i - 1) % kept;

        if (json_array_append(records, ring[slot]) != 0)
            goto oom;
    }
    if (total > kept) {
        json_t *oldest = ring[ring_start % kept];

        snprintf(next, sizeof next, "%lld",
                 (long long)json_integer_value(json_object_get(oldest, "id")));
    }
    result = ssp_audit_page(records, total > kept ? next : NULL);
    if (result == NULL)
        goto oom;
    rc = ssp_json_dump_to(result, result_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    if (file != NULL)
        fclose(file);
    free(line);
    for (size_t i = 0; i < kept; i++)
        json_decref(ring[i]);
    free(ring);
    json_decref(records);
    json_decref(result);
    return rc;
}
