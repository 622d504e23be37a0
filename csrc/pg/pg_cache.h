/*
 * The local caches of the PostgreSQL store's loads (pg_cache.c): what a
 * full load read with COPY (the roster, the groups), written to
 * data_dir/<worker>.<name>-cache as it streams in, so that a process can
 * start from it while the database is unreachable. Written to path.tmp in
 * large writes, fsync'ed and renamed over the old file on success: a crash
 * leaves the old cache or the new one whole. The cache is a convenience:
 * a failure to write it is no error (the old one stays).
 */
#ifndef SSP_PG_CACHE_H
#define SSP_PG_CACHE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssp_pg_cache_writer {
    char *path;     /* the cache */
    char *tmp_path; /* path.tmp, written */
    int fd;         /* -1: not writing (no memory, or a write failed) */
    char *buf;      /* what waits for the next write(2) */
    size_t used, cap;
} ssp_pg_cache_writer;

/* Starts a new cache at path (copied; NULL: write none). Never fails:
 * without memory or a file the writer writes nothing. */
void ssp_pg_cache_begin(ssp_pg_cache_writer *w, const char *path);
/* Adds len bytes. */
void ssp_pg_cache_add(ssp_pg_cache_writer *w, const char *data, size_t len);
/* complete: fsync and rename over the old cache; else the new one is
 * dropped. Frees what the writer holds either way. */
void ssp_pg_cache_end(ssp_pg_cache_writer *w, bool complete);

#endif
