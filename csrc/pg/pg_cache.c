/*
 * The local caches of the PostgreSQL store's loads: written in writes of
 * CACHE_BUFFER bytes rather than one per row (a load of 1,000,000 roster
 * rows and 150,000 groups is some 180 MB: a write per row cost a second of
 * system time), then fsync'ed and renamed into place.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg/pg_cache.h"
#include "util.h"

#define CACHE_BUFFER (1 << 20)

static void stop_writing(ssp_pg_cache_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

void ssp_pg_cache_begin(ssp_pg_cache_writer *w, const char *path)
{
    size_t len;

    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (path == NULL)
        return;
    len = strlen(path);
    w->path = ssp_strdup(path);
    w->tmp_path = malloc(len + 5);
    w->buf = malloc(CACHE_BUFFER);
    if (w->path == NULL || w->tmp_path == NULL || w->buf == NULL)
        return;
    w->cap = CACHE_BUFFER;
    memcpy(w->tmp_path, path, len);
    memcpy(w->tmp_path + len, ".tmp", 5);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void flush(ssp_pg_cache_writer *w)
{
    if (w->fd >= 0 && w->used > 0 && ssp_write_all(w->fd, w->buf, w->used) != 0)
        stop_writing(w);
    w->used = 0;
}

void ssp_pg_cache_add(ssp_pg_cache_writer *w, const char *data, size_t len)
{
    if (w->fd < 0)
        return;
    if (w->used + len > w->cap)
        flush(w);
    if (len > w->cap) {
        if (ssp_write_all(w->fd, data, len) != 0)
            stop_writing(w);
        return;
    }
    memcpy(w->buf + w->used, data, len);
    w->used += len;
}

void ssp_pg_cache_end(ssp_pg_cache_writer *w, bool complete)
{
    bool kept = false;

    if (complete)
        flush(w);
    if (complete && w->fd >= 0 && fsync(w->fd) == 0 && rename(w->tmp_path, w->path) == 0)
        kept = true;
    stop_writing(w);
    if (!kept && w->tmp_path != NULL)
        unlink(w->tmp_path);
    free(w->path);
    free(w->tmp_path);
    free(w->buf);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}
