/*
 * File helpers of the store's files and of the few other files the engine
 * reads (the roster feed's url_file): directories, whole reads, atomic
 * rewrites, and the replay of a jsonl file that stops at a torn last line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

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

char *ssp_jsonl_line(json_t *json, size_t *len)
{
    char *text = json != NULL ? ssp_json_dumps_checked(json) : NULL;
    char *line;

    json_decref(json);
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
