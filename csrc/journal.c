/*
 * The roster journal: the embedded store's data_dir/roster.jsonl, and the
 * PostgreSQL store's outbox of roster changes not yet in the database.
 *
 * Each line is one user's complete roster entry, in the GET /users shape; an
 * empty "schools" list removes the user. Replaying the file in order gives
 * the roster. Appends are fsync'ed before the change is applied or
 * acknowledged, so an acknowledged change survives a crash. A crash in the
 * middle of an append leaves a torn last line, which replay cuts off.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "ids.h"
#include "journal.h"
#include "util.h"

#define JOURNAL_NAME "roster.jsonl"

/* Parses one journal line and applies it to the roster (ctx). Caller holds
 * the write lock. A line that is not a roster entry makes the file corrupt;
 * an entry written before today's input rules (a remote or malformed user
 * id, a school id with a control character or a space) is not: the line,
 * or the membership, is skipped and counted in roster->skipped. */
static int replay_roster_line(void *ctx, const char *line, size_t len, ssp_error *err)
{
    ssp_roster *roster = ctx;
    json_error_t json_err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &json_err);
    json_t *user_id;
    ssp_roster_user *user = NULL;
    ssp_error ignored;
    size_t dropped = 0;
    int rc = -1;

    if (root == NULL)
        return ssp_fail(err, ssp_json_error_is_oom(&json_err) ? SSP_ERR_NOMEM : SSP_ERR_INPUT, "%s",
                        json_err.text);
    user_id = json_object_get(root, "user_id");
    if (!json_is_string(user_id)) {
        ssp_fail(err, SSP_ERR_INPUT, "user_id: expected a Matrix user id");
        goto done;
    }
    if (ssp_check_user_id("user_id", json_string_value(user_id),
                                 json_string_length(user_id), roster->server_name,
                                 &ignored) != 0) {
        ssp_roster_note_skipped(roster, 1);
        rc = 0;
        goto done;
    }
    if (ssp_roster_parse_entry_lenient(json_string_value(user_id), root, "entry", &dropped, &user,
                                       err) != 0)
        goto done;
    ssp_roster_note_skipped(roster, dropped);
    rc = ssp_roster_apply_locked(roster, json_string_value(user_id), user, err);
done:
    json_decref(root);
    return rc;
}

static char *entry_line(const char *user_id, const ssp_roster_user *user, size_t *len)
{
    return ssp_jsonl_line(ssp_roster_user_to_json(user_id, user), len);
}

typedef struct snapshot_ctx {
    int fd;
    int failed_errno;
} snapshot_ctx;

static int write_snapshot_entry(const char *key, void *value, void *ctx_ptr)
{
    snapshot_ctx *ctx = ctx_ptr;
    size_t len;
    char *line = entry_line(key, value, &len);

    if (line == NULL) {
        ctx->failed_errno = ENOMEM;
        return 1;
    }
    if (ssp_write_all(ctx->fd, line, len) != 0) {
        ctx->failed_errno = errno;
        free(line);
        return 1;
    }
    free(line);
    return 0;
}

static int write_roster_snapshot(int fd, void *roster_ptr)
{
    ssp_roster *roster = roster_ptr;
    snapshot_ctx ctx = {fd, 0};

    if (ssp_strmap_each(&roster->users, write_snapshot_entry, &ctx) != 0) {
        errno = ctx.failed_errno;
        return -1;
    }
    return 0;
}

/* Rewrites the journal as one line per user (see ssp_file_rewrite). */
static int compact(ssp_journal *journal, const char *data_dir, ssp_roster *roster,
                   ssp_error *err)
{
    if (ssp_file_rewrite(data_dir, journal->path, write_roster_snapshot, roster, err) != 0)
        return -1;
    journal->lines = roster->users.count;
    return 0;
}

int ssp_journal_open(ssp_journal *journal, const char *data_dir, ssp_roster *roster,
                     ssp_error *err)
{
    return ssp_journal_open_named(journal, data_dir, JOURNAL_NAME, roster, true, err);
}

int ssp_journal_open_named(ssp_journal *journal, const char *data_dir, const char *name,
                           ssp_roster *roster, bool compact_allowed, ssp_error *err)
{
    char *data = NULL;
    size_t len = 0, good_end = 0;
    int rc = -1, replayed;

    journal->fd = -1;
    journal->lines = 0;
    journal->size = 0;
    journal->fd_broken = false;
    journal->path = NULL;
    if (ssp_make_dirs(data_dir, err) != 0)
        return -1;
    journal->path = ssp_path_join(data_dir, name);
    if (journal->path == NULL)
        return ssp_fail_nomem(err);
    if (ssp_read_file(journal->path, &data, &len, err) != 0)
        goto done;

    pthread_rwlock_wrlock(&roster->lock);
    replayed = ssp_jsonl_replay(journal->path, data, len, replay_roster_line, roster,
                                &journal->lines, &good_end, err);
    pthread_rwlock_unlock(&roster->lock);
    if (replayed != 0)
        goto done;

    if (good_end < len && truncate(journal->path, (off_t)good_end) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot truncate %s: %s", journal->path, strerror(errno));
        goto done;
    }
    if (compact_allowed && journal->lines > 2 * roster->users.count + 1024 &&
        compact(journal, data_dir, roster, err) != 0)
        goto done;
    journal->fd = open(journal->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (journal->fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", journal->path, strerror(errno));
        goto done;
    }
    journal->size = lseek(journal->fd, 0, SEEK_END);
    rc = 0;
done:
    free(data);
    if (rc != 0)
        ssp_journal_close(journal);
    return rc;
}

int ssp_journal_append(ssp_journal *journal, const ssp_roster_change *changes, size_t n,
                       ssp_error *err)
{
    char *buf = NULL;
    size_t used = 0, capacity = 0;
    int rc = -1;

    if (journal->fd < 0)
        return ssp_fail(err, SSP_ERR_STATE, "the roster journal is not open");
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *line = entry_line(changes[i].user_id, changes[i].user, &len);

        if (line == NULL) {
            ssp_fail_nomem(err);
            goto done;
        }
        if (ssp_buf_reserve(&buf, &capacity, used + len) != 0) {
            free(line);
            ssp_fail_nomem(err);
            goto done;
        }
        memcpy(buf + used, line, len);
        used += len;
        free(line);
    }
    if (ssp_journal_write(journal, buf, used, n, err) != 0)
        goto done;
    rc = 0;
done:
    free(buf);
    return rc;
}

int ssp_journal_write(ssp_journal *journal, const char *buf, size_t len, size_t lines,
                      ssp_error *err)
{
    if (journal->fd < 0)
        return ssp_fail(err, SSP_ERR_STATE, "%s is not open", journal->path);
    if (journal->fd_broken)
        return ssp_fail(err, SSP_ERR_IO, "%s has a partial write that could not be cut off; "
                        "restart Synapse to repair it", journal->path);
    if (ssp_write_all(journal->fd, buf, len) != 0 || fdatasync(journal->fd) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot write %s: %s", journal->path, strerror(errno));
        /* Cut off a partial write so the next append starts on a clean line. */
        if (ftruncate(journal->fd, journal->size) != 0)
            journal->fd_broken = true;
        return -1;
    }
    journal->size += (off_t)len;
    journal->lines += lines;
    return 0;
}

void ssp_journal_close(ssp_journal *journal)
{
    if (journal->fd >= 0)
        close(journal->fd);
    journal->fd = -1;
    free(journal->path);
    journal->path = NULL;
}
