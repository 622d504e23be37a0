/*
 * reconcile.jsonl, the embedded store's reconcile state on disk: its lines
 * replayed into a state (reconcile_state.c) and written from one. Each line
 * is one operation:
 *   {"op":"mark","school":s,"user":u,"gen":g,"at":ms}
 *   {"op":"done","school":s,"user":u,"gen":g}
 *   {"op":"failed","school":s,"user":u,"gen":g,"attempts":n,"retry_at":ms,"error":e|null,"at":ms}
 *   {"op":"room","school":s,"kind":k,"room_id":r|null}
 *   {"op":"applied","school":s,"config":c}
 *   {"op":"next_gen","gen":g}   (first line of a compacted file)
 * "done" and "failed" apply only when the mark still has generation g, as
 * they did when they were written. Every change is appended and
 * fdatasync'ed before memory changes (reconcile_file.c). A compacted file
 * is the live state written out again (ssp_reconcile_write_snapshot).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "embedded/reconcile_jsonl.h"
#include "files.h"
#include "ids.h"
#include "reconcile_common.h"
#include "util.h"

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

/* A "gen" the reconcile state could have written: at most SSP_GENERATION_MAX. */
static bool generation_member(json_t *root, int64_t *out)
{
    return int_member(root, "gen", out) && *out <= SSP_GENERATION_MAX;
}

static int replay_reconcile_line(void *ctx, const char *line, size_t len, ssp_error *err)
{
    ssp_reconcile_state *state = ctx;
    json_error_t json_err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &json_err);
    const char *op, *school, *user;
    int64_t gen = 0, at = 0;
    char key[SSP_MARK_KEY_MAX];
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
        ssp_reconcile_note_generation(state, gen - 1);
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
        ssp_mark_key(key, school, user);
        mark = ssp_strmap_get(&state->marks, key);
        if (strcmp(op, "mark") == 0) {
            if (!int_member(root, "at", &at)) {
                ssp_fail(err, SSP_ERR_INPUT, "mark: expected at");
                goto done;
            }
            if (ssp_strmap_reserve(&state->marks, 1) != 0 ||
                ssp_reconcile_remark(state, mark ? NULL : ssp_mark_new(school, user), key, gen, at) != 0) {
                ssp_fail_nomem(err);
                goto done;
            }
        } else if (strcmp(op, "done") == 0) {
            if (mark != NULL && mark->generation == gen)
                ssp_mark_free(ssp_strmap_remove(&state->marks, key));
            ssp_reconcile_note_generation(state, gen);
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
            ssp_reconcile_note_generation(state, gen);
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
        ssp_room_key(key, school, kind);
        if (json_is_string(room_id)) {
            fresh = ssp_reconcile_entry_new(key, school, json_string_value(room_id));
            if (fresh == NULL) {
                ssp_fail_nomem(err);
                goto done;
            }
        }
        if (ssp_reconcile_put_entry(&state->rooms, fresh, key) != 0) {
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
        fresh = ssp_reconcile_entry_new(school, school, config);
        if (fresh == NULL || ssp_reconcile_put_entry(&state->applied, fresh, school) != 0) {
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

int ssp_reconcile_replay(ssp_reconcile_state *state, const char *path, size_t *len,
                         size_t *good_end, size_t *lines, ssp_error *err)
{
    char *data = NULL;
    int rc;

    if (ssp_read_file(path, &data, len, err) != 0)
        return -1;
    rc = ssp_jsonl_replay(path, data, *len, replay_reconcile_line, state, lines, good_end, err);
    free(data);
    return rc;
}

json_t *ssp_reconcile_mark_line(const char *school, const char *user_id, int64_t generation,
                                int64_t at_ms)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I}", "op", "mark", "school", school, "user", user_id,
                     "gen", (json_int_t)generation, "at", (json_int_t)at_ms);
}

json_t *ssp_reconcile_done_line(const char *school, const char *user_id, int64_t generation)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "op", "done", "school", school, "user", user_id,
                     "gen", (json_int_t)generation);
}

int ssp_reconcile_add_line(ssp_reconcile_lines *buf, json_t *value)
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

json_t *ssp_reconcile_failed_line(const ssp_mark *mark)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s?, s:I}", "op", "failed", "school",
                     mark->school, "user", mark->user_id, "gen", (json_int_t)mark->generation,
                     "attempts", (json_int_t)mark->attempts, "retry_at",
                     (json_int_t)mark->next_attempt_ms, "error", mark->last_error, "at",
                     (json_int_t)mark->failed_at_ms);
}

json_t *ssp_reconcile_room_line(const char *school, const char *kind, const char *room_id)
{
    return json_pack("{s:s, s:s, s:s, s:s?}", "op", "room", "school", school, "kind", kind,
                     "room_id", room_id);
}

json_t *ssp_reconcile_applied_line(const char *school, const char *config)
{
    return json_pack("{s:s, s:s, s:s}", "op", "applied", "school", school, "config", config);
}

typedef struct snapshot {
    ssp_reconcile_lines buf;
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
    if (ssp_reconcile_add_line(&snap->buf, line) != 0) {
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
    if (snapshot_add(snap, ssp_reconcile_mark_line(mark->school, mark->user_id,
                                                         mark->generation, mark->marked_at_ms)) != 0)
        return 1;
    if ((mark->attempts != 0 || mark->last_error != NULL || mark->next_attempt_ms != 0) &&
        snapshot_add(snap, ssp_reconcile_failed_line(mark)) != 0)
        return 1;
    return 0;
}

static int snapshot_room(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;

    /* the key is "<kind>\n<school>" (ssp_room_key) */
    char kind[SSP_ROOM_KEY_MAX];
    size_t kind_len = (size_t)(strchr(key, '\n') - key);

    memcpy(kind, key, kind_len);
    kind[kind_len] = '\0';
    return snapshot_add(ctx, ssp_reconcile_room_line(entry->school, kind, entry->value)) != 0;
}

static int snapshot_applied(const char *key, void *value, void *ctx)
{
    const ssp_reconcile_entry *entry = value;

    (void)key;
    return snapshot_add(ctx, ssp_reconcile_applied_line(entry->school, entry->value)) != 0;
}

int ssp_reconcile_write_snapshot(int fd, void *state_ptr)
{
    ssp_reconcile_state *state = state_ptr;
    snapshot snap = {{NULL, 0, 0, 0}, fd, 0};
    int rc = 0;

    if (snapshot_add(&snap, json_pack("{s:s, s:I}", "op", "next_gen", "gen",
                                      (json_int_t)state->next_generation)) != 0 ||
        ssp_strmap_each(&state->marks, snapshot_mark, &snap) != 0 ||
        ssp_strmap_each(&state->rooms, snapshot_room, &snap) != 0 ||
        ssp_strmap_each(&state->applied, snapshot_applied, &snap) != 0 ||
        snapshot_flush(&snap, true) != 0) {
        errno = snap.failed_errno;
        rc = -1;
    }
    free(snap.buf.data);
    return rc;
}

size_t ssp_reconcile_live_lines(const ssp_reconcile_state *state)
{
    return 1 + 2 * state->marks.count + state->rooms.count + state->applied.count;
}
