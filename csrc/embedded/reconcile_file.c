/*
 * The embedded store's reconcile state (reconcile_file.h): reconcile.jsonl
 * replayed into memory at open (reconcile_jsonl.c, reconcile_state.c), and
 * its operations. Every change is appended and fdatasync'ed before memory
 * changes, and every allocation memory needs is made before the append, so
 * that memory never lags behind the file. When the file has grown well past
 * the live state, it is rewritten (at open and after appends).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded/reconcile_file.h"
#include "embedded/reconcile_jsonl.h"
#include "files.h"
#include "reconcile_common.h"
#include "util.h"


#define FILE_NAME "reconcile.jsonl"

static bool worth_compacting(const ssp_reconcile_file *rf)
{
    return rf->file.lines > 2 * ssp_reconcile_live_lines(&rf->state) + 1024;
}

/* Rewrites the file from memory. The fd is reopened on the new file; when
 * that fails the reconcile state refuses further appends rather than write into the
 * replaced file. Caller holds the mutex (or is the opener). */
static int compact(ssp_reconcile_file *rf, ssp_error *err)
{
    int fd;

    if (ssp_file_rewrite(rf->data_dir, rf->file.path, ssp_reconcile_write_snapshot, &rf->state, err) != 0)
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
    rf->file.lines = ssp_reconcile_live_lines(&rf->state); /* an upper bound; only a heuristic */
    return 0;
}

static int append(ssp_reconcile_file *rf, const ssp_reconcile_lines *buf, ssp_error *err)
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

int ssp_reconcile_file_open(ssp_reconcile_file *rf, const char *data_dir, ssp_error *err)
{
    size_t len = 0, good_end = 0, lines = 0;

    memset(rf, 0, sizeof *rf);
    rf->file.fd = -1;
    ssp_reconcile_state_init(&rf->state);
    if (pthread_mutex_init(&rf->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the reconcile mutex");
    rf->mutex_ready = true;
    if (ssp_make_dirs(data_dir, err) != 0)
        goto fail;
    rf->data_dir = ssp_strdup(data_dir);
    rf->file.path = ssp_path_join(data_dir, FILE_NAME);
    if (rf->data_dir == NULL || rf->file.path == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    if (ssp_reconcile_replay(&rf->state, rf->file.path, &len, &good_end, &lines, err) != 0)
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
    ssp_reconcile_state_destroy(&rf->state);
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
    n = rf->state.marks.count;
    pthread_mutex_unlock(&rf->mutex);
    return n;
}

int ssp_reconcile_file_mark_pairs(ssp_reconcile_file *rf, const char *const *schools,
                          const char *const *user_ids, size_t n, ssp_error *err)
{
    ssp_reconcile_lines buf = {NULL, 0, 0, 0};
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
        char key[SSP_MARK_KEY_MAX];
        int64_t gen = rf->state.next_generation + (int64_t)i;

        ssp_mark_key(key, schools[i], user_ids[i]);
        if (ssp_strmap_get(&rf->state.marks, key) == NULL) {
            fresh[i] = ssp_mark_new(schools[i], user_ids[i]);
            if (fresh[i] == NULL)
                goto oom;
            n_fresh++;
        }
        if (ssp_reconcile_add_line(&buf, ssp_reconcile_mark_line(schools[i], user_ids[i], gen,
                                                                  now)) != 0)
            goto oom;
    }
    /* Room for every new key first: once the file has the marks, memory
     * must take them without failing. */
    if (ssp_strmap_reserve(&rf->state.marks, n_fresh) != 0)
        goto oom;
    if (append(rf, &buf, err) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char key[SSP_MARK_KEY_MAX];

        ssp_mark_key(key, schools[i], user_ids[i]);
        /* cannot fail: room was reserved, and a duplicate pair finds the
         * node its first occurrence put */
        (void)ssp_reconcile_remark(&rf->state, fresh[i], key, rf->state.next_generation, now);
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
        ssp_mark_free(fresh[i]);
    free(fresh);
    free(buf.data);
    return rc;
}

int ssp_reconcile_file_done(ssp_reconcile_file *rf, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err)
{
    ssp_reconcile_lines buf = {NULL, 0, 0, 0};
    char key[SSP_MARK_KEY_MAX];
    ssp_mark *mark;
    int rc = 0;

    ssp_mark_key(key, school, user_id);
    pthread_mutex_lock(&rf->mutex);
    mark = ssp_strmap_get(&rf->state.marks, key);
    if (mark != NULL && mark->generation == generation) {
        if (ssp_reconcile_add_line(&buf, ssp_reconcile_done_line(school, user_id, generation)) != 0)
            rc = ssp_fail_nomem(err);
        else if ((rc = append(rf, &buf, err)) == 0) {
            ssp_mark_free(ssp_strmap_remove(&rf->state.marks, key));
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
    ssp_reconcile_lines buf = {NULL, 0, 0, 0};
    char key[SSP_MARK_KEY_MAX];
    ssp_mark *mark, updated;
    char *error_copy = NULL;
    int rc = 0;

    ssp_mark_key(key, school, user_id);
    pthread_mutex_lock(&rf->mutex);
    mark = ssp_strmap_get(&rf->state.marks, key);
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
    if (ssp_reconcile_add_line(&buf, ssp_reconcile_failed_line(&updated)) != 0) {
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
    ssp_reconcile_lines buf = {NULL, 0, 0, 0};
    ssp_reconcile_entry *fresh = NULL;
    int rc = -1;

    if (ssp_reconcile_add_line(&buf, line) != 0)
        return ssp_fail_nomem(err);
    if (value != NULL && (fresh = ssp_reconcile_entry_new(key, school, value)) == NULL) {
        free(buf.data);
        return ssp_fail_nomem(err);
    }
    pthread_mutex_lock(&rf->mutex);
    if (ssp_strmap_reserve(map, 1) != 0) {
        ssp_fail_nomem(err);
    } else if (append(rf, &buf, err) == 0) {
        (void)ssp_reconcile_put_entry(map, fresh, key); /* cannot fail: room was reserved */
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
    ctx.marks = malloc((rf->state.marks.count ? rf->state.marks.count : 1) * sizeof *ctx.marks);
    if (ctx.marks == NULL)
        goto oom;
    ssp_strmap_each(&rf->state.marks, collect_due, &ctx);
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

int ssp_reconcile_file_set_room(ssp_reconcile_file *rf, const char *school, const char *kind,
                        const char *room_id, ssp_error *err)
{
    char key[SSP_ROOM_KEY_MAX];

    ssp_room_key(key, school, kind);
    return reconcile_put(rf, &rf->state.rooms, key, school, room_id,
                      ssp_reconcile_room_line(school, kind, room_id), err);
}

int ssp_reconcile_file_get_room(ssp_reconcile_file *rf, const char *school, const char *kind, char **room_id,
                        ssp_error *err)
{
    char key[SSP_ROOM_KEY_MAX];
    const ssp_reconcile_entry *entry;
    int rc = 0;

    ssp_room_key(key, school, kind);
    pthread_mutex_lock(&rf->mutex);
    entry = ssp_strmap_get(&rf->state.rooms, key);
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
    stored = ssp_strmap_get(&rf->state.applied, school);
    same = stored != NULL && strcmp(stored->value, applied) == 0;
    pthread_mutex_unlock(&rf->mutex);
    return same;
}

int ssp_reconcile_file_put_applied(ssp_reconcile_file *rf, const char *school, const char *applied,
                           ssp_error *err)
{
    return reconcile_put(rf, &rf->state.applied, school, school, applied,
                      ssp_reconcile_applied_line(school, applied), err);
}

int ssp_reconcile_file_status(ssp_reconcile_file *rf, const ssp_config *config,
                              char **status_json, ssp_error *err)
{
    int rc;

    pthread_mutex_lock(&rf->mutex);
    rc = ssp_reconcile_state_status(&rf->state, config, status_json, err);
    pthread_mutex_unlock(&rf->mutex);
    return rc;
}

int ssp_reconcile_file_status_offline(const ssp_config *config, char **status_json,
                                      ssp_error *err)
{
    ssp_reconcile_state state;
    char *path;
    size_t file_len = 0, good_end = 0, lines = 0;
    int rc = -1;

    /* Read only: Synapse may have the file open; a torn last line is
     * ignored, not cut off. */
    ssp_reconcile_state_init(&state);
    path = ssp_path_join(config->data_dir, FILE_NAME);
    if (path == NULL)
        ssp_fail_nomem(err);
    else if (ssp_reconcile_replay(&state, path, &file_len, &good_end, &lines, err) == 0)
        rc = ssp_reconcile_state_status(&state, config, status_json, err);
    free(path);
    ssp_reconcile_state_destroy(&state);
    return rc;
}
