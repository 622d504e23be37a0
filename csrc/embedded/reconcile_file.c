/*
 * The embedded store's reconcile state: data_dir/reconcile.jsonl,
 * replayed into memory at open. Each line is one operation:
 *   {"op":"mark","school":s,"user":u,"gen":g,"at":ms}
 *   {"op":"done","school":s,"user":u,"gen":g}
 *   {"op":"failed","school":s,"user":u,"gen":g,"attempts":n,"retry_at":ms,"error":e|null,"at":ms}
 *   {"op":"room","school":s,"kind":k,"room_id":r|null}
 *   {"op":"applied","school":s,"config":c}
 *   {"op":"next_gen","gen":g}   (first line of a compacted file)
 * "done" and "failed" apply only when the mark still has generation g, as
 * they did when they were written. Every change is appended and
 * fdatasync'ed before memory changes, and every allocation memory needs is
 * made before the append, so that memory never lags behind the file. When
 * the file has grown well past the live state, it is rewritten (at open and
 * after appends).
 *
 * Ownership: the reconcile state owns its marks and entries (one allocation each,
 * plus a mark's last_error); strings passed in are copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded/embedded_store.h"
#include "ids.h"
#include "reconcile_common.h"
#include "util.h"

#define LEDGER_NAME "reconcile.jsonl"
/* "<len>:" + school + user_id + NUL, both at most 255 bytes */
#define MARK_KEY_MAX (8 + SSP_SCHOOL_ID_MAX + 255 + 1)
#define ROOM_KEY_MAX (16 + SSP_SCHOOL_ID_MAX + 1)
/* Generations count up from 1 by one a mark; a file claiming more is
 * corrupt, and the bound keeps next_generation + n from overflowing. */
#define GENERATION_MAX (INT64_MAX / 2)

/* ---- the embedded reconcile state: memory ---- */

static void mark_key(char *key, const char *school, const char *user_id)
{
    snprintf(key, MARK_KEY_MAX, "%zu:%s%s", strlen(school), school, user_id);
}

static void room_key(char *key, const char *school, const char *kind)
{
    snprintf(key, ROOM_KEY_MAX, "%s:%s", kind, school);
}

/* One zeroed allocation of node_size bytes followed by copies of the three
 * strings, which *copy_a, *copy_b and *copy_c are pointed at. NULL when out
 * of memory. (Marks and reconcile entries are each one allocation.) */
static void *node_with_strings(size_t node_size, const char *a, const char *b, const char *c,
                               const char **copy_a, const char **copy_b, const char **copy_c)
{
    size_t a_len = strlen(a), b_len = strlen(b), c_len = strlen(c);
    char *node = calloc(1, node_size + a_len + 1 + b_len + 1 + c_len + 1);
    char *strings;

    if (node == NULL)
        return NULL;
    strings = node + node_size;
    *copy_a = memcpy(strings, a, a_len + 1);
    strings += a_len + 1;
    *copy_b = memcpy(strings, b, b_len + 1);
    strings += b_len + 1;
    *copy_c = memcpy(strings, c, c_len + 1);
    return node;
}

static ssp_mark *mark_new(const char *school, const char *user_id)
{
    char key[MARK_KEY_MAX];
    ssp_mark fields, *mark;

    mark_key(key, school, user_id);
    mark = node_with_strings(sizeof *mark, key, school, user_id, &fields.key, &fields.school,
                             &fields.user_id);
    if (mark != NULL) {
        mark->key = fields.key;
        mark->school = fields.school;
        mark->user_id = fields.user_id;
    }
    return mark;
}

static void mark_free(ssp_mark *mark)
{
    if (mark != NULL)
        free(mark->last_error);
    free(mark);
}

static ssp_reconcile_entry *entry_new(const char *key, const char *school, const char *value)
{
    ssp_reconcile_entry fields, *entry;

    entry = node_with_strings(sizeof *entry, key, school, value, &fields.key, &fields.school,
                              &fields.value);
    if (entry != NULL)
        *entry = fields;
    return entry;
}

static int free_mark_cb(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    mark_free(value);
    return 0;
}

static void reconcile_state_init(ssp_reconcile_file *rf)
{
    ssp_strmap_init(&rf->marks);
    ssp_strmap_init(&rf->rooms);
    ssp_strmap_init(&rf->applied);
    rf->next_generation = 1;
}

static void reconcile_state_destroy(ssp_reconcile_file *rf)
{
    ssp_strmap_each(&rf->marks, free_mark_cb, NULL);
    ssp_strmap_destroy(&rf->marks);
    ssp_strmap_each(&rf->rooms, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(&rf->rooms);
    ssp_strmap_each(&rf->applied, ssp_strmap_free_value, NULL);
    ssp_strmap_destroy(&rf->applied);
}

static void note_generation(ssp_reconcile_file *rf, int64_t generation)
{
    if (generation >= rf->next_generation)
        rf->next_generation = generation + 1;
}

/* A (re)mark in memory. `fresh` is a node prepared for the key (or NULL when
 * the key is known to exist); it is used or freed. Cannot fail when the map
 * has room for one more entry. */
static int remark(ssp_reconcile_file *rf, ssp_mark *fresh, const char *key, int64_t generation,
                  int64_t at_ms)
{
    ssp_mark *mark = ssp_strmap_get(&rf->marks, key);

    if (mark != NULL) {
        mark_free(fresh);
    } else {
        if (fresh == NULL || ssp_strmap_put(&rf->marks, fresh->key, fresh, NULL) != 0) {
            mark_free(fresh);
            return -1;
        }
        mark = fresh;
    }
    /* last_error stays until the mark is done: the status shows it */
    mark->generation = generation;
    mark->marked_at_ms = at_ms;
    mark->attempts = 0;
    mark->next_attempt_ms = 0;
    note_generation(rf, generation);
    return 0;
}

/* Puts or (value NULL) removes an entry of map; `fresh` is prepared by the
 * caller for value != NULL. Cannot fail when the map has room for one more. */
static int put_entry(ssp_strmap *map, ssp_reconcile_entry *fresh, const char *key)
{
    void *previous = NULL;

    if (fresh == NULL) {
        free(ssp_strmap_remove(map, key));
        return 0;
    }
    if (ssp_strmap_put(map, fresh->key, fresh, &previous) != 0) {
        free(fresh);
        return -1;
    }
    free(previous);
    return 0;
}

/* ---- the embedded reconcile state: replay ---- */

static const char *string_member(json_t *root, const char *name)
{
    json_t *value = json_object_get(root, name);

    return json_is_string(value) ? json_string_value(value) : NULL;
}

static bool int_member(json_t *root, const char *name, int64_t *out)
{
    json_t *value = json_object_get(root, name);

    if (!json_is_integer(value))
        return false;
    *out = json_integer_value(value);
    return true;
}

/* A "gen" the reconcile state could have written: at most GENERATION_MAX. */
static bool generation_member(json_t *root, int64_t *out)
{
    return int_member(root, "gen", out) && *out <= GENERATION_MAX;
}

static int replay_reconcile_line(void *ctx, const char *line, size_t len, ssp_error *err)
{
    ssp_reconcile_file *rf = ctx;
    json_error_t json_err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &json_err);
    const char *op, *school, *user;
    int64_t gen = 0, at = 0;
    char key[MARK_KEY_MAX];
    int rc = -1;

    if (root == NULL)
        return ssp_fail(err, ssp_json_error_is_oom(&json_err) ? SSP_ERR_NOMEM : SSP_ERR_INPUT, "%s",
                        json_err.text);
    op = string_member(root, "op");
    if (op != NULL && strcmp(op, "next_gen") == 0) {
        /* written first by a compaction: the generations of marks that were
         * done before it must not come back */
        if (!generation_member(root, &gen) || gen < 1) {
            ssp_fail(err, SSP_ERR_INPUT, "next_gen: expected gen");
            goto done;
        }
        note_generation(rf, gen - 1);
        rc = 0;
        goto done;
    }
    school = string_member(root, "school");
    if (op == NULL || school == NULL || school[0] == '\0' ||
        strlen(school) > SSP_SCHOOL_ID_MAX) {
        ssp_fail(err, SSP_ERR_INPUT, "expected an object with op and school");
        goto done;
    }
    if (strcmp(op, "mark") == 0 || strcmp(op, "done") == 0 || strcmp(op, "failed") == 0) {
        ssp_mark *mark;

        user = string_member(root, "user");
        if (user == NULL || ssp_reconcile_check_key(school, user, err) != 0 ||
            !generation_member(root, &gen)) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected user and gen", op);
            goto done;
        }
        mark_key(key, school, user);
        mark = ssp_strmap_get(&rf->marks, key);
        if (strcmp(op, "mark") == 0) {
            if (!int_member(root, "at", &at)) {
                ssp_fail(err, SSP_ERR_INPUT, "mark: expected at");
                goto done;
            }
            if (ssp_strmap_reserve(&rf->marks, 1) != 0 ||
                remark(rf, mark ? NULL : mark_new(school, user), key, gen, at) != 0) {
                ssp_fail_nomem(err);
                goto done;
            }
        } else if (strcmp(op, "done") == 0) {
            if (mark != NULL && mark->generation == gen)
                mark_free(ssp_strmap_remove(&rf->marks, key));
            note_generation(rf, gen);
        } else {
            json_t *error = json_object_get(root, "error");
            int64_t attempts, retry_at;
            char *error_copy = NULL;

            if (!int_member(root, "attempts", &attempts) || !int_member(root, "retry_at", &retry_at) ||
                !int_member(root, "at", &at) || !(json_is_string(error) || json_is_null(error))) {
                ssp_fail(err, SSP_ERR_INPUT, "failed: expected attempts, retry_at, error and at");
                goto done;
            }
            if (mark != NULL && mark->generation == gen) {
                if (json_is_string(error)) {
                    error_copy = ssp_strdup(json_string_value(error));
                    if (error_copy == NULL) {
                        ssp_fail_nomem(err);
                        goto done;
                    }
                }
                free(mark->last_error);
                mark->last_error = error_copy;
                mark->attempts = attempts;
                mark->next_attempt_ms = retry_at;
                mark->failed_at_ms = at;
            }
            note_generation(rf, gen);
        }
    } else if (strcmp(op, "room") == 0) {
        const char *kind = string_member(root, "kind");
        json_t *room_id = json_object_get(root, "room_id");
        ssp_reconcile_entry *fresh = NULL;

        if (ssp_reconcile_check_kind(kind, err) != 0 ||
            !(json_is_string(room_id) || json_is_null(room_id))) {
            ssp_fail(err, SSP_ERR_INPUT, "room: expected kind and room_id");
            goto done;
        }
        room_key(key, school, kind);
        if (json_is_string(room_id)) {
            fresh = entry_new(key, school, json_string_value(room_id));
            if (fresh == NULL) {
                ssp_fail_nomem(err);
                goto done;
            }
        }
        if (put_entry(&rf->rooms, fresh, key) != 0) {
            ssp_fail_nomem(err);
            goto done;
        }
    } else if (strcmp(op, "applied") == 0) {
        const char *config = string_member(root, "config");
        ssp_reconcile_entry *fresh;

        if (config == NULL) {
            ssp_fail(err, SSP_ERR_INPUT, "applied: expected config");
            goto done;
        }
        fresh = entry_new(school, school, config);
        if (fresh == NULL || put_entry(&rf->applied, fresh, school) != 0) {
            ssp_fail_nomem(err);
            goto done;
        }
    } else {
        ssp_fail(err, SSP_ERR_INPUT, "op: unknown operation %s", op);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* Reads and replays the file at path into the (initialised) state of
 * rf. *good_end and *lines describe the whole lines. */
static int replay_file(ssp_reconcile_file *rf, const char *path, size_t *len, size_t *good_end,
                       size_t *lines, ssp_error *err)
{
    char *data = NULL;
    int rc;

    if (ssp_read_file(path, &data, len, err) != 0)
        return -1;
    rc = ssp_jsonl_replay(path, data, *len, replay_reconcile_line, rf, lines, good_end, err);
    free(data);
    return rc;
}

/* ---- the embedded reconcile state: writing ---- */

/* Lines to append, built before anything is written. */
typedef struct line_buf {
    char *data;
    size_t used, cap, lines;
} line_buf;

/* Appends value (stolen) as one line. -1 when out of memory. */
static int add_line(line_buf *buf, json_t *value)
{
    char *text = value ? ssp_json_dumps_checked(value) : NULL;
    size_t len;

    json_decref(value);
    if (text == NULL)
        return -1;
    len = strlen(text);
    if (ssp_buf_reserve(&buf->data, &buf->cap, buf->used + len + 1) != 0) {
        free(text);
        return -1;
    }
    memcpy(buf->data + buf->used, text, len);
    buf->used += len;
    buf->data[buf->used++] = '\n';
    buf->lines++;
    free(text);
    return 0;
}

static json_t *failed_line(const ssp_mark *mark)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s?, s:I}", "op", "failed", "school",
                     mark->school, "user", mark->user_id, "gen", (json_int_t)mark->generation,
                     "attempts", (json_int_t)mark->attempts, "retry_at",
                     (json_int_t)mark->next_attempt_ms, "error", mark->last_error, "at",
                     (json_int_t)mark->failed_at_ms);
}

static json_t *room_line(const char *school, const char *kind, const char *room_id)
{
    return json_pack("{s:s, s:s, s:s, s:s?}", "op", "room", "school", school, "kind", kind,
                     "room_id", room_id);
}

static json_t *applied_line(const char *school, const char *config)
{
    return json_pack("{s:s, s:s, s:s}", "op", "applied", "school", school, "config", config);
}

typedef struct snapshot {
    line_buf buf;
    int fd;
    int failed_errno;
} snapshot;

/* Writes what is buffered once it is large; at the end with force. */
static int snapshot_flush(snapshot *snap, bool force)
{
    if (snap->buf.used < 65536 && !force)
        return 0;
    if (ssp_write_all(snap->fd, snap->buf.data, snap->buf.used) != 0) {
        snap->failed_errno = errno;
        return -1;
    }
    snap->buf.used = 0;
    return 0;
}

static int snapshot_add(snapshot *snap, json_t *line)
{
    if (add_line(&snap->buf, line) != 0) {
        snap->failed_errno = ENOMEM;
        return -1;
    }
    return snapshot_flush(snap, false);
}

static int snapshot_mark(const char *key, void *value, void *ctx)
{
    const ssp_mark *mark = value;
    snapshot *snap = ctx;

    (void)key;
    if (snapshot_add(snap, json_pack("{s:s, s:s, s:s, s:I, s:I}", "op", "mark", "school",
                                     mark->school, "user", mark->user_id, "gen",
                                     (json_int_t)mark->generation, "at",
                                     (json_int_t)mark->marked_at_ms)) != 0)
        return 1;
    if ((mark->attempts != 0 || mark->last_error != NULL || mark->next_attempt_ms != 0) &&
        snapshot_add(snap, failed_line(mark)) != 0)
        return 1;
    return 0;
}

static int snapshot_room(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;

    /* the key is "<kind>:<school>" */
    char kind[16];
    size_t kind_len = (size_t)(strchr(key, ':') - key);

    memcpy(kind, key, kind_len);
    kind[kind_len] = '\0';
    return snapshot_add(ctx, room_line(entry->school, kind, entry->value)) != 0;
}

static int snapshot_applied(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;

    (void)key;
    return snapshot_add(ctx, applied_line(entry->school, entry->value)) != 0;
}

static int write_snapshot(int fd, void *rf_ptr)
{
    ssp_reconcile_file *rf = rf_ptr;
    snapshot snap = {{NULL, 0, 0, 0}, fd, 0};
    int rc = 0;

    if (snapshot_add(&snap, json_pack("{s:s, s:I}", "op", "next_gen", "gen",
                                      (json_int_t)rf->next_generation)) != 0 ||
        ssp_strmap_each(&rf->marks, snapshot_mark, &snap) != 0 ||
        ssp_strmap_each(&rf->rooms, snapshot_room, &snap) != 0 ||
        ssp_strmap_each(&rf->applied, snapshot_applied, &snap) != 0 ||
        snapshot_flush(&snap, true) != 0) {
        errno = snap.failed_errno;
        rc = -1;
    }
    free(snap.buf.data);
    return rc;
}

static size_t live_lines(const ssp_reconcile_file *rf)
{
    return 1 + 2 * rf->marks.count + rf->rooms.count + rf->applied.count;
}

static bool worth_compacting(const ssp_reconcile_file *rf)
{
    return rf->file.lines > 2 * live_lines(rf) + 1024;
}

/* Rewrites the file from memory. The fd is reopened on the new file; when
 * that fails the reconcile state refuses further appends rather than write into the
 * replaced file. Caller holds the mutex (or is the opener). */
static int compact(ssp_reconcile_file *rf, ssp_error *err)
{
    int fd;

    if (ssp_file_rewrite(rf->data_dir, rf->file.path, write_snapshot, rf, err) != 0)
        return -1;
    fd = open(rf->file.path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        if (rf->file.fd >= 0)
            rf->file.fd_broken = true;
        return ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", rf->file.path,
                        strerror(errno));
    }
    if (rf->file.fd >= 0)
        close(rf->file.fd);
    rf->file.fd = fd;
    rf->file.size = lseek(fd, 0, SEEK_END);
    rf->file.lines = live_lines(rf); /* an upper bound; only a heuristic */
    return 0;
}

static int append(ssp_reconcile_file *rf, const line_buf *buf, ssp_error *err)
{
    return ssp_journal_write(&rf->file, buf->data, buf->used, buf->lines, err);
}

/* After an append: a failed compaction leaves the appended state intact,
 * so it is not the caller's failure; the next append tries again. */
static void compact_if_worthwhile(ssp_reconcile_file *rf)
{
    ssp_error ignored;

    if (worth_compacting(rf))
        (void)compact(rf, &ignored);
}

/* ---- the embedded reconcile state: operations ---- */

int ssp_reconcile_file_open(ssp_reconcile_file *rf, const char *data_dir, ssp_error *err)
{
    size_t len = 0, good_end = 0, lines = 0;

    memset(rf, 0, sizeof *rf);
    rf->file.fd = -1;
    reconcile_state_init(rf);
    if (pthread_mutex_init(&rf->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the reconcile mutex");
    rf->mutex_ready = true;
    if (ssp_make_dirs(data_dir, err) != 0)
        goto fail;
    rf->data_dir = ssp_strdup(data_dir);
    rf->file.path = ssp_path_join(data_dir, LEDGER_NAME);
    if (rf->data_dir == NULL || rf->file.path == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    if (replay_file(rf, rf->file.path, &len, &good_end, &lines, err) != 0)
        goto fail;
    rf->file.lines = lines;
    if (good_end < len && truncate(rf->file.path, (off_t)good_end) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot truncate %s: %s", rf->file.path, strerror(errno));
        goto fail;
    }
    if (worth_compacting(rf) && compact(rf, err) != 0)
        goto fail;
    if (rf->file.fd < 0) {
        rf->file.fd =
            open(rf->file.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (rf->file.fd < 0) {
            ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", rf->file.path, strerror(errno));
            goto fail;
        }
        rf->file.size = lseek(rf->file.fd, 0, SEEK_END);
    }
    return 0;
fail:
    ssp_reconcile_file_close(rf);
    return -1;
}

void ssp_reconcile_file_close(ssp_reconcile_file *rf)
{
    ssp_journal_close(&rf->file);
    reconcile_state_destroy(rf);
    free(rf->data_dir);
    rf->data_dir = NULL;
    if (rf->mutex_ready)
        pthread_mutex_destroy(&rf->mutex);
    rf->mutex_ready = false;
}

uint64_t ssp_reconcile_file_pending(ssp_reconcile_file *rf)
{
    uint64_t n;

    pthread_mutex_lock(&rf->mutex);
    n = rf->marks.count;
    pthread_mutex_unlock(&rf->mutex);
    return n;
}

int ssp_reconcile_file_mark_pairs(ssp_reconcile_file *rf, const char *const *schools,
                          const char *const *user_ids, size_t n, ssp_error *err)
{
    line_buf buf = {NULL, 0, 0, 0};
    ssp_mark **fresh = NULL;
    size_t n_fresh = 0;
    int64_t now = ssp_now_ms();
    int rc = -1;

    if (n == 0)
        return 0;
    fresh = calloc(n, sizeof *fresh);
    if (fresh == NULL)
        return ssp_fail_nomem(err);
    pthread_mutex_lock(&rf->mutex);
    for (size_t i = 0; i < n; i++) {
        char key[MARK_KEY_MAX];
        int64_t gen = rf->next_generation + (int64_t)i;

        mark_key(key, schools[i], user_ids[i]);
        if (ssp_strmap_get(&rf->marks, key) == NULL) {
            fresh[i] = mark_new(schools[i], user_ids[i]);
            if (fresh[i] == NULL)
                goto oom;
            n_fresh++;
        }
        if (add_line(&buf, json_pack("{s:s, s:s, s:s, s:I, s:I}", "op", "mark", "school",
                                     schools[i], "user", user_ids[i], "gen", (json_int_t)gen,
                                     "at", (json_int_t)now)) != 0)
            goto oom;
    }
    /* Room for every new key first: once the file has the marks, memory
     * must take them without failing. */
    if (ssp_strmap_reserve(&rf->marks, n_fresh) != 0)
        goto oom;
    if (append(rf, &buf, err) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char key[MARK_KEY_MAX];

        mark_key(key, schools[i], user_ids[i]);
        /* cannot fail: room was reserved, and a duplicate pair finds the
         * node its first occurrence put */
        (void)remark(rf, fresh[i], key, rf->next_generation, now);
        fresh[i] = NULL;
    }
    compact_if_worthwhile(rf);
    rc = 0;
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    pthread_mutex_unlock(&rf->mutex);
    for (size_t i = 0; i < n; i++)
        mark_free(fresh[i]);
    free(fresh);
    free(buf.data);
    return rc;
}

int ssp_reconcile_file_done(ssp_reconcile_file *rf, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err)
{
    line_buf buf = {NULL, 0, 0, 0};
    char key[MARK_KEY_MAX];
    ssp_mark *mark;
    int rc = 0;

    mark_key(key, school, user_id);
    pthread_mutex_lock(&rf->mutex);
    mark = ssp_strmap_get(&rf->marks, key);
    if (mark != NULL && mark->generation == generation) {
        if (add_line(&buf, json_pack("{s:s, s:s, s:s, s:I}", "op", "done", "school", school,
                                     "user", user_id, "gen", (json_int_t)generation)) != 0)
            rc = ssp_fail_nomem(err);
        else if ((rc = append(rf, &buf, err)) == 0) {
            mark_free(ssp_strmap_remove(&rf->marks, key));
            compact_if_worthwhile(rf);
        }
    }
    pthread_mutex_unlock(&rf->mutex);
    free(buf.data);
    return rc;
}

int ssp_reconcile_file_failed(ssp_reconcile_file *rf, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err)
{
    line_buf buf = {NULL, 0, 0, 0};
    char key[MARK_KEY_MAX];
    ssp_mark *mark, updated;
    char *error_copy = NULL;
    int rc = 0;

    mark_key(key, school, user_id);
    pthread_mutex_lock(&rf->mutex);
    mark = ssp_strmap_get(&rf->marks, key);
    if (mark == NULL || mark->generation != generation)
        goto done;
    if (error != NULL && (error_copy = ssp_strdup(error)) == NULL) {
        rc = ssp_fail_nomem(err);
        goto done;
    }
    updated = *mark;
    updated.attempts = mark->attempts + 1;
    updated.next_attempt_ms = retry_at_ms;
    updated.last_error = error_copy;
    updated.failed_at_ms = ssp_now_ms();
    if (add_line(&buf, failed_line(&updated)) != 0) {
        rc = ssp_fail_nomem(err);
        goto done;
    }
    if ((rc = append(rf, &buf, err)) != 0)
        goto done;
    free(mark->last_error);
    *mark = updated;
    error_copy = NULL;
done:
    pthread_mutex_unlock(&rf->mutex);
    free(error_copy);
    free(buf.data);
    return rc;
}

/* Sets (value non-NULL) or removes an entry of map and logs it as line. */
static int reconcile_put(ssp_reconcile_file *rf, ssp_strmap *map, const char *key, const char *school,
                      const char *value, json_t *line, ssp_error *err)
{
    line_buf buf = {NULL, 0, 0, 0};
    ssp_reconcile_entry *fresh = NULL;
    int rc = -1;

    if (add_line(&buf, line) != 0)
        return ssp_fail_nomem(err);
    if (value != NULL && (fresh = entry_new(key, school, value)) == NULL) {
        free(buf.data);
        return ssp_fail_nomem(err);
    }
    pthread_mutex_lock(&rf->mutex);
    if (ssp_strmap_reserve(map, 1) != 0) {
        ssp_fail_nomem(err);
    } else if (append(rf, &buf, err) == 0) {
        (void)put_entry(map, fresh, key); /* cannot fail: room was reserved */
        fresh = NULL;
        compact_if_worthwhile(rf);
        rc = 0;
    }
    pthread_mutex_unlock(&rf->mutex);
    free(fresh);
    free(buf.data);
    return rc;
}

typedef struct due_ctx {
    int64_t now_ms;
    const ssp_mark **marks;
    size_t n;
} due_ctx;

static int collect_due(const char *key, void *value, void *ctx_ptr)
{
    due_ctx *ctx = ctx_ptr;
    const ssp_mark *mark = value;

    (void)key;
    if (mark->next_attempt_ms <= ctx->now_ms)
        ctx->marks[ctx->n++] = mark;
    return 0;
}

static int due_order(const void *a_ptr, const void *b_ptr)
{
    const ssp_mark *a = *(const ssp_mark *const *)a_ptr, *b = *(const ssp_mark *const *)b_ptr;

    if (a->next_attempt_ms != b->next_attempt_ms)
        return a->next_attempt_ms < b->next_attempt_ms ? -1 : 1;
    if (a->marked_at_ms != b->marked_at_ms)
        return a->marked_at_ms < b->marked_at_ms ? -1 : 1;
    return a->generation < b->generation ? -1 : a->generation > b->generation;
}

int ssp_reconcile_file_due(ssp_reconcile_file *rf, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err)
{
    due_ctx ctx = {now_ms, NULL, 0};
    json_t *list = json_array();
    int rc = -1;

    if (list == NULL)
        return ssp_fail_nomem(err);
    pthread_mutex_lock(&rf->mutex);
    ctx.marks = malloc((rf->marks.count ? rf->marks.count : 1) * sizeof *ctx.marks);
    if (ctx.marks == NULL)
        goto oom;
    ssp_strmap_each(&rf->marks, collect_due, &ctx);
    qsort(ctx.marks, ctx.n, sizeof *ctx.marks, due_order);
    for (size_t i = 0; i < ctx.n && i < max; i++) {
        const ssp_mark *mark = ctx.marks[i];
        json_t *item = ssp_reconcile_due_item(mark->school, mark->user_id, mark->generation,
                                              mark->attempts);

        if (item == NULL || json_array_append_new(list, item) != 0)
            goto oom;
    }
    rc = ssp_json_dump_to(list, marks_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    pthread_mutex_unlock(&rf->mutex);
    free(ctx.marks);
    json_decref(list);
    return rc;
}

/* ---- status ---- */

typedef struct status_ctx {
    const ssp_config *config;
    ssp_school_reconcile *per_school;
} status_ctx;

static ssp_school_reconcile *school_slot(status_ctx *ctx, const char *school)
{
    const ssp_school *found = ssp_config_school(ctx->config, school, strlen(school));

    return found ? &ctx->per_school[found - ctx->config->schools] : NULL;
}

static int count_mark(const char *key, void *value, void *ctx)
{
    const ssp_mark *mark = value;
    ssp_school_reconcile *slot = school_slot(ctx, mark->school);

    (void)key;
    if (slot == NULL)
        return 0;
    slot->pending++;
    if (mark->last_error != NULL &&
        (slot->last_error == NULL || mark->failed_at_ms > slot->last_failed_at_ms)) {
        slot->last_error = mark->last_error;
        slot->last_failed_at_ms = mark->failed_at_ms;
    }
    return 0;
}

static int note_room(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;
    ssp_school_reconcile *slot = school_slot(ctx, entry->school);

    if (slot == NULL)
        return 0;
    if (strncmp(key, "teachers:", 9) == 0)
        slot->teachers_room = entry->value;
    else
        slot->announcement_room = entry->value;
    return 0;
}

/* Caller holds the reconcile state's mutex, or owns the reconcile state alone. */
int ssp_reconcile_file_status(ssp_reconcile_file *rf, const ssp_config *config, char **status_json,
                         ssp_error *err)
{
    status_ctx ctx = {config, calloc(config->n_schools ? config->n_schools : 1,
                                     sizeof(ssp_school_reconcile))};
    int rc;

    if (ctx.per_school == NULL)
        return ssp_fail_nomem(err);
    ssp_strmap_each(&rf->marks, count_mark, &ctx);
    ssp_strmap_each(&rf->rooms, note_room, &ctx);
    rc = ssp_reconcile_status_text(config, ctx.per_school, status_json, err);
    free(ctx.per_school);
    return rc;
}


/* ---- what the embedded store's ops call besides the above ---- */

int ssp_reconcile_file_set_room(ssp_reconcile_file *rf, const char *school, const char *kind,
                        const char *room_id, ssp_error *err)
{
    char key[ROOM_KEY_MAX];

    room_key(key, school, kind);
    return reconcile_put(rf, &rf->rooms, key, school, room_id,
                      room_line(school, kind, room_id), err);
}

int ssp_reconcile_file_get_room(ssp_reconcile_file *rf, const char *school, const char *kind, char **room_id,
                        ssp_error *err)
{
    char key[ROOM_KEY_MAX];
    const ssp_reconcile_entry *entry;
    int rc = 0;

    room_key(key, school, kind);
    pthread_mutex_lock(&rf->mutex);
    entry = ssp_strmap_get(&rf->rooms, key);
    if (entry != NULL && (*room_id = ssp_strdup(entry->value)) == NULL)
        rc = ssp_fail_nomem(err);
    pthread_mutex_unlock(&rf->mutex);
    return rc;
}

bool ssp_reconcile_file_applied_is(ssp_reconcile_file *rf, const char *school, const char *applied)
{
    const ssp_reconcile_entry *stored;
    bool same;

    pthread_mutex_lock(&rf->mutex);
    stored = ssp_strmap_get(&rf->applied, school);
    same = stored != NULL && strcmp(stored->value, applied) == 0;
    pthread_mutex_unlock(&rf->mutex);
    return same;
}

int ssp_reconcile_file_put_applied(ssp_reconcile_file *rf, const char *school, const char *applied,
                           ssp_error *err)
{
    return reconcile_put(rf, &rf->applied, school, school, applied,
                      applied_line(school, applied), err);
}

int ssp_reconcile_file_status_locked(ssp_reconcile_file *rf, const ssp_config *config, char **status_json,
                             ssp_error *err)
{
    int rc;

    pthread_mutex_lock(&rf->mutex);
    rc = ssp_reconcile_file_status(rf, config, status_json, err);
    pthread_mutex_unlock(&rf->mutex);
    return rc;
}

int ssp_reconcile_file_status_offline(const ssp_config *config, char **status_json, ssp_error *err)
{
    ssp_reconcile_file rf;
    char *path;
    size_t file_len = 0, good_end = 0, lines = 0;
    int rc = -1;

    /* Read only: Synapse may have the file open; a torn last line is
     * ignored, not cut off. */
    memset(&rf, 0, sizeof rf);
    reconcile_state_init(&rf);
    path = ssp_path_join(config->data_dir, LEDGER_NAME);
    if (path == NULL)
        ssp_fail_nomem(err);
    else if (replay_file(&rf, path, &file_len, &good_end, &lines, err) == 0)
        rc = ssp_reconcile_file_status(&rf, config, status_json, err);
    free(path);
    reconcile_state_destroy(&rf);
    return rc;
}
