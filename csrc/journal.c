/*
 * The embedded store's roster journal: data_dir/roster.jsonl.
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
#include "util.h"

#define JOURNAL_NAME "roster.jsonl"

/* Creates dir and its parents (like mkdir -p). */
int ssp_make_dirs(const char *dir, ssp_error *err)
{
    char *path = ssp_strdup(dir);
    int rc = 0;

    if (path == NULL)
        return ssp_fail_nomem(err);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;

            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                rc = ssp_fail(err, SSP_ERR_IO, "data_dir: cannot create %s: %s", path,
                              strerror(errno));
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(path);
    return rc;
}

int ssp_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Reads a whole file; *data is NUL-terminated. A missing file reads as empty. */
char *ssp_read_range(int fd, off_t from, off_t to)
{
    size_t len = (size_t)(to - from), done = 0;
    char *buf = malloc(len + 1);

    if (buf == NULL)
        return NULL;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, from + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        done += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

int ssp_read_file(const char *path, char **data, size_t *len, ssp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t done = 0;

    *data = NULL;
    *len = 0;
    if (fd < 0 && errno == ENOENT) {
        *data = calloc(1, 1);
        return *data ? 0 : ssp_fail_nomem(err);
    }
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    *data = malloc((size_t)st.st_size + 1);
    if (*data == NULL) {
        close(fd);
        return ssp_fail_nomem(err);
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, *data + done, (size_t)st.st_size - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = errno;

            close(fd);
            free(*data);
            *data = NULL;
            return ssp_fail(err, SSP_ERR_IO, "cannot read %s: %s", path,
                            n == 0 ? "file shrank while reading" : strerror(saved));
        }
        done += (size_t)n;
    }
    close(fd);
    (*data)[done] = '\0';
    *len = done;
    return 0;
}

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
    if (ssp_roster_check_user_id("user_id", json_string_value(user_id),
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
    json_t *entry = ssp_roster_user_to_json(user_id, user);
    char *text = entry ? ssp_json_dumps_checked(entry) : NULL;
    char *line;

    json_decref(entry);
    if (text == NULL)
        return NULL;
    *len = strlen(text);
    line = realloc(text, *len + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[(*len)++] = '\n';
    line[*len] = '\0';
    return line;
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

int ssp_file_rewrite(const char *dir, const char *path, int (*write_content)(int fd, void *ctx),
                     void *ctx, ssp_error *err)
{
    char *tmp_path = malloc(strlen(path) + sizeof ".tmp");
    int fd = -1, rc = -1;

    if (tmp_path == NULL)
        return ssp_fail_nomem(err);
    sprintf(tmp_path, "%s.tmp", path);
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot write %s: %s", tmp_path, strerror(errno));
        goto done;
    }
    if (write_content(fd, ctx) != 0 || fsync(fd) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot write %s: %s", tmp_path, strerror(errno));
        goto done;
    }
    if (rename(tmp_path, path) != 0 || ssp_fsync_dir(dir) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot replace %s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp_path);
    free(tmp_path);
    return rc;
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

int ssp_jsonl_replay(const char *path, const char *data, size_t len,
                     int (*apply)(void *ctx, const char *line, size_t line_len, ssp_error *err),
                     void *ctx, size_t *lines, size_t *good_end, ssp_error *err)
{
    size_t line_no = 0;

    *lines = 0;
    *good_end = 0;
    for (size_t start = 0; start < len;) {
        const char *newline = memchr(data + start, '\n', len - start);

        line_no++;
        if (newline == NULL)
            break; /* torn last line from a crash mid-append: the caller cuts it off */
        if (apply(ctx, data + start, (size_t)(newline - data) - start, err) != 0) {
            char reason[SSP_ERROR_MESSAGE_MAX];

            if (err->code == SSP_ERR_NOMEM)
                return ssp_fail_nomem(err); /* not the file's fault */
            memcpy(reason, err->message, sizeof reason);
            return ssp_fail(err, SSP_ERR_IO,
                            "%s line %zu is corrupt (%s); restore it from a backup", path,
                            line_no, reason);
        }
        (*lines)++;
        start = *good_end = (size_t)(newline - data) + 1;
    }
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
