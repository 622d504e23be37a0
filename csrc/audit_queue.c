/*
 * The audit queue. Decisions run on Synapse's reactor thread and must not
 * wait for the disk or the database, so ssp_audit_submit only queues the
 * record. The store's writer (the embedded store's file writer, or the
 * PostgreSQL store's thread) consumes the queue in batches through
 * ssp_audit_take / ssp_audit_mark_written / ssp_audit_put_back: a batch
 * whose write fails goes back to the front, so records are neither lost
 * nor reordered while the process lives, and last_written_id moves only
 * once a batch is durable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "audit_queue.h"
#include "util.h"

json_t *ssp_audit_record_to_json(const ssp_audit_record *rec, const char *worker)
{
    json_t *obj;

    if (rec->kind == SSP_AUDIT_ACTION)
        obj = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}",
                        "id", (json_int_t)rec->id, "ts", (json_int_t)rec->ts, "kind", "action",
                        "action", rec->action, "actor", rec->actor, "target", rec->target,
                        "room_id", rec->room_id, "event_type", rec->event_type, "group",
                        rec->group, "school", rec->school, "reason", rec->reason, "worker",
                        worker);
    else
        obj = json_pack("{s:I, s:I, s:s, s:s, s:b, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}", "id",
                        (json_int_t)rec->id, "ts", (json_int_t)rec->ts, "rule",
                        ssp_rule_id(rec->rule), "callback", ssp_callback_name(rec->callback),
                        "enforced", rec->enforced, "actor", rec->actor, "target", rec->target,
                        "room_id", rec->room_id, "event_type", rec->event_type, "school",
                        rec->school, "worker", worker);
    /* A summary of a flood: how many denials, until when. */
    if (obj != NULL && rec->count > 1 &&
        (json_object_set_new(obj, "count", json_integer((json_int_t)rec->count)) != 0 ||
         json_object_set_new(obj, "last_ts", json_integer((json_int_t)rec->last_ts)) != 0)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Sets key to value (stolen) unless the record has it. */
static int set_default(json_t *rec, const char *key, json_t *value)
{
    if (json_object_get(rec, key) != NULL) {
        json_decref(value);
        return 0;
    }
    return json_object_set_new(rec, key, value);
}

int ssp_audit_record_complete(json_t *rec)
{
    static const char *const denial_keys[] = {"rule", "callback", "enforced", NULL};
    static const char *const action_keys[] = {"action", "group", "reason", NULL};
    json_t *kind = json_object_get(rec, "kind");
    bool action = json_is_string(kind) && strcmp(json_string_value(kind), "action") == 0;
    const char *const *keys = action ? action_keys : denial_keys;

    if (set_default(rec, "kind", json_string(action ? "action" : "denial")) != 0 ||
        set_default(rec, "count", json_integer(1)) != 0)
        return -1;
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (set_default(rec, keys[i], json_null()) != 0)
            return -1;
    }
    return 0;
}

void ssp_audit_free_records(ssp_audit_record *rec)
{
    while (rec != NULL) {
        ssp_audit_record *next = rec->next;

        free(rec);
        rec = next;
    }
}

int ssp_audit_open(ssp_audit_queue *queue, const char *worker, const char *sink, int64_t last_id,
                   int wake_fd, ssp_error *err)
{
    memset(queue, 0, sizeof *queue);
    queue->wake_fd = wake_fd;
    queue->durable_fd = -1;
    if (pthread_mutex_init(&queue->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the audit mutex");
    pthread_cond_init(&queue->wake_writer, NULL);
    pthread_cond_init(&queue->written_cond, NULL);
    queue->durable_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (queue->durable_fd < 0) {
        int errnum = errno;

        ssp_audit_close(queue);
        return ssp_fail(err, SSP_ERR_IO, "cannot create the audit's eventfd: %s",
                        strerror(errnum));
    }
    queue->worker = ssp_strdup(worker);
    queue->sink = ssp_strdup(sink);
    if (queue->worker == NULL || queue->sink == NULL) {
        ssp_audit_close(queue);
        return ssp_fail_nomem(err);
    }
    queue->next_id = last_id + 1;
    queue->last_written_id = last_id;
    return 0;
}

void ssp_audit_stop(ssp_audit_queue *queue)
{
    pthread_mutex_lock(&queue->mutex);
    queue->stopping = true;
    pthread_cond_broadcast(&queue->wake_writer);
    pthread_mutex_unlock(&queue->mutex);
}

void ssp_audit_close(ssp_audit_queue *queue)
{
    ssp_audit_free_records(queue->head);
    queue->head = queue->tail = NULL;
    free(queue->worker);
    free(queue->sink);
    queue->worker = queue->sink = NULL;
    if (queue->durable_fd >= 0)
        close(queue->durable_fd);
    queue->durable_fd = -1;
    pthread_cond_destroy(&queue->wake_writer);
    pthread_cond_destroy(&queue->written_cond);
    pthread_mutex_destroy(&queue->mutex);
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

ssp_audit_record *ssp_audit_record_copy(const ssp_audit_record *fields)
{
    size_t size = sizeof(ssp_audit_record) + opt_len(fields->actor) + opt_len(fields->target) +
                  opt_len(fields->room_id) + opt_len(fields->event_type) +
                  opt_len(fields->school) + opt_len(fields->action) + opt_len(fields->group) +
                  opt_len(fields->reason);
    ssp_audit_record *rec = malloc(size);
    char *cursor;

    if (rec == NULL)
        return NULL;
    cursor = (char *)(rec + 1);
    *rec = *fields;
    rec->next = NULL;
    rec->id = 0;
    rec->actor = opt_copy(&cursor, fields->actor);
    rec->target = opt_copy(&cursor, fields->target);
    rec->room_id = opt_copy(&cursor, fields->room_id);
    rec->event_type = opt_copy(&cursor, fields->event_type);
    rec->school = opt_copy(&cursor, fields->school);
    rec->action = opt_copy(&cursor, fields->action);
    rec->group = opt_copy(&cursor, fields->group);
    rec->reason = opt_copy(&cursor, fields->reason);
    return rec;
}

int64_t ssp_audit_enqueue(ssp_audit_queue *queue, ssp_audit_record *rec)
{
    int64_t id;

    rec->next = NULL;
    if (rec->ts == 0)
        rec->ts = ssp_now_ms();
    if (rec->count <= 1) {
        rec->count = 1;
        rec->last_ts = 0;
    }
    pthread_mutex_lock(&queue->mutex);
    rec->id = id = queue->next_id++;
    if (queue->last_written_id == id - 1)
        queue->pending_since_ms = ssp_now_ms(); /* the first to wait */
    if (queue->tail != NULL) {
        queue->tail->next = rec;
    } else {
        queue->head = rec;
        /* A writer that sleeps in poll() (the PostgreSQL store's thread):
         * wake it when the queue stops being empty. An eventfd write does
         * not block. */
        if (queue->wake_fd >= 0) {
            uint64_t one = 1;

            if (write(queue->wake_fd, &one, sizeof one) < 0) {
                /* EAGAIN: the counter is already set, the thread will wake */
            }
        }
    }
    queue->tail = rec;
    queue->stats.queued++;
    queue->stats.queue_depth++;
    pthread_cond_signal(&queue->wake_writer);
    pthread_mutex_unlock(&queue->mutex);
    return id;
}

int64_t ssp_audit_submit_record(ssp_audit_queue *queue, const ssp_audit_record *fields)
{
    ssp_audit_record *rec = ssp_audit_record_copy(fields);

    return rec != NULL ? ssp_audit_enqueue(queue, rec) : -1;
}

int64_t ssp_audit_submit(ssp_audit_queue *queue, ssp_rule rule, ssp_callback callback, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school)
{
    ssp_audit_record fields = {0};

    fields.rule = rule;
    fields.callback = callback;
    fields.enforced = enforced;
    fields.actor = actor;
    fields.target = target;
    fields.room_id = room_id;
    fields.event_type = event_type;
    fields.school = school;
    return ssp_audit_submit_record(queue, &fields);
}

/* ---- the writers' side ---- */

bool ssp_audit_wait_queued(ssp_audit_queue *queue, int64_t timeout_ms)
{
    struct timespec deadline;
    bool queued;

    if (timeout_ms >= 0)
        ssp_deadline_after_ms(&deadline, timeout_ms);
    pthread_mutex_lock(&queue->mutex);
    while (queue->head == NULL && !queue->stopping) {
        if (timeout_ms < 0)
            pthread_cond_wait(&queue->wake_writer, &queue->mutex);
        else if (pthread_cond_timedwait(&queue->wake_writer, &queue->mutex, &deadline) == ETIMEDOUT)
            break;
    }
    queued = queue->head != NULL;
    pthread_mutex_unlock(&queue->mutex);
    return queued;
}

bool ssp_audit_take(ssp_audit_queue *queue, size_t max, ssp_audit_batch *batch)
{
    ssp_audit_record *rec;
    size_t n = 1;

    pthread_mutex_lock(&queue->mutex);
    batch->first = queue->head;
    if (batch->first == NULL) {
        pthread_mutex_unlock(&queue->mutex);
        batch->last = NULL;
        batch->count = 0;
        return false;
    }
    for (rec = batch->first; rec->next != NULL && (max == 0 || n < max); rec = rec->next)
        n++;
    queue->head = rec->next;
    if (queue->head == NULL)
        queue->tail = NULL;
    rec->next = NULL;
    pthread_mutex_unlock(&queue->mutex);
    batch->last = rec;
    batch->count = n;
    return true;
}

void ssp_audit_mark_written(ssp_audit_queue *queue, ssp_audit_batch *batch)
{
    uint64_t one = 1;

    pthread_mutex_lock(&queue->mutex);
    queue->last_written_id = batch->last->id;
    queue->stats.written += batch->count;
    queue->stats.queue_depth -= batch->count;
    /* progress: whatever still waits, waits since now */
    queue->pending_since_ms = queue->last_written_id < queue->next_id - 1 ? ssp_now_ms() : 0;
    pthread_cond_broadcast(&queue->written_cond);
    pthread_mutex_unlock(&queue->mutex);
    /* After last_written_id moved, so that a reader woken by the eventfd
     * sees the new id. EAGAIN (the counter at its maximum) cannot lose a
     * wake-up: the counter is readable already. */
    if (write(queue->durable_fd, &one, sizeof one) < 0) {
        /* EAGAIN: readable already */
    }
    ssp_audit_free_records(batch->first);
    batch->first = batch->last = NULL;
    batch->count = 0;
}

void ssp_audit_put_back(ssp_audit_queue *queue, ssp_audit_batch *batch)
{
    pthread_mutex_lock(&queue->mutex);
    batch->last->next = queue->head;
    queue->head = batch->first;
    if (queue->tail == NULL)
        queue->tail = batch->last;
    queue->stats.write_errors++;
    pthread_mutex_unlock(&queue->mutex);
    batch->first = batch->last = NULL;
    batch->count = 0;
}

bool ssp_audit_is_empty(ssp_audit_queue *queue)
{
    bool empty;

    pthread_mutex_lock(&queue->mutex);
    empty = queue->head == NULL;
    pthread_mutex_unlock(&queue->mutex);
    return empty;
}

bool ssp_audit_pause(ssp_audit_queue *queue, int64_t ms)
{
    struct timespec deadline;
    bool stopping;

    ssp_deadline_after_ms(&deadline, ms);
    pthread_mutex_lock(&queue->mutex);
    if (!queue->stopping)
        pthread_cond_timedwait(&queue->wake_writer, &queue->mutex, &deadline);
    stopping = queue->stopping;
    pthread_mutex_unlock(&queue->mutex);
    return stopping;
}

int ssp_audit_wait_flushed(ssp_audit_queue *queue, int64_t timeout_ms, ssp_error *err)
{
    struct timespec deadline;
    int64_t target;
    int rc = 0;

    ssp_deadline_after_ms(&deadline, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&queue->mutex);
    target = queue->next_id - 1;
    while (queue->last_written_id < target) {
        if (pthread_cond_timedwait(&queue->written_cond, &queue->mutex, &deadline) == ETIMEDOUT) {
            rc = ssp_fail(err, SSP_ERR_IO, "audit records are not being written to %s (%llu "
                          "write errors so far)", queue->sink,
                          (unsigned long long)queue->stats.write_errors);
            break;
        }
    }
    pthread_mutex_unlock(&queue->mutex);
    return rc;
}

int ssp_audit_wait_written(ssp_audit_queue *queue, int64_t id, int64_t timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    ssp_deadline_after_ms(&deadline, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&queue->mutex);
    /* Both writers write in id order and broadcast after each batch, so
     * every waiter whose record was in the batch wakes at once: concurrent
     * denials share one fdatasync or one commit. */
    while (queue->last_written_id < id) {
        if (pthread_cond_timedwait(&queue->written_cond, &queue->mutex, &deadline) == ETIMEDOUT) {
            rc = queue->last_written_id < id ? -1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&queue->mutex);
    return rc;
}

int64_t ssp_audit_last_written(ssp_audit_queue *queue)
{
    int64_t id;

    pthread_mutex_lock(&queue->mutex);
    id = queue->last_written_id;
    pthread_mutex_unlock(&queue->mutex);
    return id;
}

int64_t ssp_audit_stalled_ms_at(ssp_audit_queue *queue, int64_t now_ms)
{
    int64_t since;

    pthread_mutex_lock(&queue->mutex);
    since = queue->last_written_id < queue->next_id - 1 ? queue->pending_since_ms : 0;
    pthread_mutex_unlock(&queue->mutex);
    return since > 0 && now_ms > since ? now_ms - since : 0;
}

void ssp_audit_queue_stats(ssp_audit_queue *queue, ssp_audit_stats *out)
{
    pthread_mutex_lock(&queue->mutex);
    *out = queue->stats;
    pthread_mutex_unlock(&queue->mutex);
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
    if (f->kinds != SSP_AUDIT_ANY_KIND &&
        string_field_is(rec, "kind", "action") != (f->kinds == SSP_AUDIT_ONLY_ACTIONS))
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
