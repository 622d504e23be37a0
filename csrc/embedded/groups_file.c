/*
 * The embedded store's groups: data_dir/groups.jsonl, one group snapshot a
 * line, replayed at open into the roster's group index, compacted when it
 * has grown. The append itself is the journal's (ssp_journal_write).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedded/groups_file.h"
#include "files.h"
#include "util.h"

typedef struct replay_ctx {
    ssp_strmap *groups; /* group_id -> ssp_group*, owned */
    size_t skipped;
} replay_ctx;

static int replay_group_line(void *ctx_ptr, const char *line, size_t len, ssp_error *err)
{
    replay_ctx *ctx = ctx_ptr;
    json_error_t json_err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &json_err);
    ssp_group *group = NULL;
    void *previous = NULL;
    ssp_error invalid;
    int rc = -1;

    if (root == NULL)
        return ssp_fail(err, ssp_json_error_is_oom(&json_err) ? SSP_ERR_NOMEM : SSP_ERR_INPUT, "%s",
                        json_err.text);
    /* The stored form ("moderators" and "members" lists of ids); a line in
     * the API's form is read too. */
    if ((json_object_get(root, "moderators") != NULL
             ? ssp_group_parse_stored(root, &group, &invalid)
             : ssp_group_parse(NULL, root, "group", NULL, &group, &invalid)) != 0) {
        if (invalid.code == SSP_ERR_NOMEM) {
            ssp_fail_nomem(err);
            goto done;
        }
        ctx->skipped++;
        rc = 0;
        goto done;
    }
    if (ssp_strmap_put(ctx->groups, group->group_id, group, &previous) != 0) {
        free(group);
        ssp_fail_nomem(err);
        goto done;
    }
    free(previous);
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static char *group_line(const ssp_group *group, size_t *len)
{
    return ssp_jsonl_line(ssp_group_to_stored_json(group), len);
}

typedef struct snapshot_ctx {
    int fd;
    int failed_errno;
} snapshot_ctx;

static int write_snapshot_group(const char *key, void *value, void *ctx_ptr)
{
    snapshot_ctx *ctx = ctx_ptr;
    size_t len;
    char *line = group_line(value, &len);

    (void)key;
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

static int write_groups_snapshot(int fd, void *groups)
{
    snapshot_ctx ctx = {fd, 0};

    if (ssp_strmap_each(groups, write_snapshot_group, &ctx) != 0) {
        errno = ctx.failed_errno;
        return -1;
    }
    return 0;
}

void ssp_groups_file_read(ssp_groups_load *load, const char *dir)
{
    replay_ctx ctx;
    char *data = NULL;
    size_t len = 0;

    memset(load, 0, sizeof *load);
    ssp_strmap_init(&load->groups);
    ctx.groups = &load->groups;
    ctx.skipped = 0;
    load->rc = -1;
    load->path = ssp_path_join(dir, SSP_GROUPS_FILE_NAME);
    if (load->path == NULL) {
        ssp_fail_nomem(&load->err);
        return;
    }
    if (ssp_read_file(load->path, &data, &len, &load->err) == 0 &&
        ssp_jsonl_replay(load->path, data, len, replay_group_line, &ctx, &load->lines,
                         &load->good_end, &load->err) == 0)
        load->rc = 0;
    load->len = len;
    load->skipped = ctx.skipped;
    free(data);
}

void ssp_groups_load_free(ssp_groups_load *load)
{
    ssp_roster_group_map_free(&load->groups);
    free(load->path);
    load->path = NULL;
}

int ssp_groups_file_finish(ssp_journal *file, ssp_groups_load *load, const char *dir,
                           ssp_roster *roster, bool compact_allowed, ssp_error *err)
{
    int rc = -1;

    file->fd = -1;
    file->lines = load->lines;
    file->size = 0;
    file->fd_broken = false;
    file->path = load->path; /* taken */
    load->path = NULL;
    if (load->rc != 0) {
        *err = load->err;
        goto done;
    }
    if (ssp_make_dirs(dir, err) != 0)
        goto done;
    if (compact_allowed && load->good_end < load->len &&
        truncate(file->path, (off_t)load->good_end) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot truncate %s: %s", file->path, strerror(errno));
        goto done;
    }
    /* Compacted from the replayed map, before it goes into the roster. */
    if (compact_allowed && file->lines > 2 * load->groups.count + 1024) {
        if (ssp_file_rewrite(dir, file->path, write_groups_snapshot, &load->groups, err) != 0)
            goto done;
        file->lines = load->groups.count;
    }
    if (ssp_roster_replace_groups(roster, &load->groups, err) != 0)
        goto done;
    ssp_roster_note_skipped(roster, load->skipped);
    /* Opened for appends by the first append: a store that never sees a
     * group keeps no descriptor for it. */
    file->size = (off_t)load->good_end;
    rc = 0;
done:
    ssp_groups_load_free(load);
    if (rc != 0)
        ssp_journal_close(file);
    return rc;
}

int ssp_groups_file_open(ssp_journal *file, const char *dir, ssp_roster *roster,
                         bool compact_allowed, ssp_error *err)
{
    ssp_groups_load load;

    ssp_groups_file_read(&load, dir);
    return ssp_groups_file_finish(file, &load, dir, roster, compact_allowed, err);
}

/* Opens the file for appends (created if missing, its directory entry
 * made durable). */
static int open_for_appends(ssp_journal *file, ssp_error *err)
{
    char *dir = ssp_strdup(file->path), *slash;
    bool existed = access(file->path, F_OK) == 0;

    if (dir == NULL)
        return ssp_fail_nomem(err);
    file->fd = open(file->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (file->fd < 0) {
        free(dir);
        return ssp_fail(err, SSP_ERR_IO, "cannot open %s: %s", file->path, strerror(errno));
    }
    file->size = lseek(file->fd, 0, SEEK_END);
    slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    if (!existed && slash != NULL && ssp_fsync_dir(dir) != 0) {
        ssp_fail(err, SSP_ERR_IO, "cannot sync %s: %s", dir, strerror(errno));
        free(dir);
        close(file->fd);
        file->fd = -1;
        return -1;
    }
    free(dir);
    return 0;
}

int ssp_groups_file_append(ssp_journal *file, const ssp_group *const *groups, size_t n,
                           ssp_error *err)
{
    char *buf = NULL;
    size_t used = 0, capacity = 0;
    int rc = -1;

    if (file->path == NULL)
        return ssp_fail(err, SSP_ERR_STATE, "the groups file is not open");
    if (file->fd < 0 && open_for_appends(file, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *line = group_line(groups[i], &len);

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
    rc = ssp_journal_write(file, buf, used, n, err);
done:
    free(buf);
    return rc;
}
