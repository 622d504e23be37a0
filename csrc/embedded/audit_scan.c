/*
 * What the readers of the embedded store's audit files share
 * (audit_scan.h): the scan of a file's lines from its end, a line loaded
 * as JSON, and a page collected newest first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_queue.h"
#include "embedded/audit_scan.h"
#include "util.h"

#define TAIL_CHUNK 65536

int ssp_scan_lines_backwards(int fd, off_t end, ssp_line_visitor visit, void *ctx,
                             ssp_error *err)
{
    char *buf = NULL;
    size_t cap = 0, have = 0; /* buf[0..have): the head of a line whose start is further back */
    off_t pos = end;
    bool tail_found = false; /* the end of the last whole line has been seen */
    int rc = 0;

    while (rc == 0) {
        size_t chunk = pos > TAIL_CHUNK ? TAIL_CHUNK : (size_t)pos, total, j;
        char *nl;

        if (chunk == 0) {
            /* The file's first line. */
            if (tail_found && have > 0)
                rc = visit(buf, have, ctx, err);
            break;
        }
        if (ssp_buf_reserve(&buf, &cap, chunk + have + 1) != 0) {
            rc = ssp_fail_nomem(err);
            break;
        }
        memmove(buf + chunk, buf, have);
        for (size_t done = 0; done < chunk;) {
            ssize_t n = pread(fd, buf + done, chunk - done, pos - (off_t)chunk + (off_t)done);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = ssp_fail(err, SSP_ERR_IO, "cannot read the audit log: %s",
                              n < 0 ? strerror(errno) : "file shrank");
                goto done;
            }
            done += (size_t)n;
        }
        pos -= (off_t)chunk;
        total = chunk + have;
        if (!tail_found) {
            /* A batch being appended right now may show as a torn tail. */
            nl = memrchr(buf, '\n', total);
            if (nl == NULL) {
                have = total;
                continue;
            }
            total = (size_t)(nl - buf);
            tail_found = true;
        }
        j = total;
        while (rc == 0 && (nl = memrchr(buf, '\n', j)) != NULL) {
            size_t from = (size_t)(nl - buf) + 1;

            rc = visit(buf + from, j - from, ctx, err);
            j = (size_t)(nl - buf);
        }
        have = j;
    }
done:
    free(buf);
    return rc < 0 ? -1 : 0;
}

/* The integer `key` of the first whole line at or after byte `from`, and
 * where that line starts; 0 when none parses within a chunk (end of file,
 * damage). */
static int64_t key_at_or_after(int fd, off_t from, off_t end, const char *key, off_t *line_start)
{
    char buf[4096 + 1];
    ssize_t got;
    char *start, *stop;
    json_t *rec;
    int64_t id;

    *line_start = end;
    if (from > 0) {
        /* Step to the start of the next line. */
        for (;;) {
            char *nl;

            got = pread(fd, buf, sizeof buf - 1, from - 1);
            if (got <= 0)
                return 0;
            nl = memchr(buf, '\n', (size_t)got);
            if (nl != NULL) {
                from = from - 1 + (nl - buf) + 1;
                break;
            }
            from += got;
            if (from >= end)
                return 0;
        }
    }
    if (from >= end)
        return 0;
    *line_start = from;
    got = pread(fd, buf, sizeof buf - 1, from);
    if (got <= 0)
        return 0;
    buf[got] = '\0';
    start = buf;
    stop = memchr(start, '\n', (size_t)got);
    if (stop == NULL)
        return 0; /* a line over 4 KiB: the caller narrows no further here */
    rec = json_loadb(start, (size_t)(stop - start), 0, NULL);
    id = rec ? (int64_t)json_integer_value(json_object_get(rec, key)) : 0;
    json_decref(rec);
    return id;
}

off_t ssp_offset_at(int fd, off_t size, const char *key, int64_t value)
{
    off_t lo = 0, hi = size;

    while (hi - lo > TAIL_CHUNK) {
        off_t mid = lo + (hi - lo) / 2, line_start;
        int64_t got = key_at_or_after(fd, mid, hi, key, &line_start);

        if (got <= 0)
            break; /* damaged or overlong line: scan from hi, the filter skips what is newer */
        if (got >= value)
            hi = line_start;
        else
            lo = line_start + 1;
    }
    return hi;
}

bool ssp_line_may_hold(const char *line, size_t len, const char *value)
{
    char quoted[SSP_ERROR_MESSAGE_MAX];
    size_t n = strlen(value);

    if (n + 2 > sizeof quoted)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return true;
    }
    quoted[0] = '"';
    memcpy(quoted + 1, value, n);
    quoted[n + 1] = '"';
    return memmem(line, len, quoted, n + 2) != NULL;
}

int ssp_page_take(ssp_page_collect *page, size_t limit, json_t *rec, ssp_error *err)
{
    if (page->found == limit) {
        page->next_id = (int64_t)json_integer_value(
            json_object_get(json_array_get(page->records, page->found - 1), "id"));
        json_decref(rec);
        return 1;
    }
    if (json_array_append_new(page->records, rec) != 0)
        return ssp_fail_nomem(err);
    page->found++;
    return 0;
}

json_t *ssp_page_result(const ssp_page_collect *page)
{
    char next[32];

    if (page->next_id > 0)
        snprintf(next, sizeof next, "%lld", (long long)page->next_id);
    return ssp_audit_page(page->records, page->next_id > 0 ? next : NULL);
}

int ssp_load_line(const char *line, size_t len, const char *path, json_t **out, ssp_error *err)
{
    json_error_t json_err;

    *out = NULL;
    if (len == 0)
        return 0;
    *out = json_loadb(line, len, 0, &json_err);
    if (*out == NULL)
        *out = json_loadb(line, len, 0, &json_err);
    if (*out == NULL && ssp_json_error_is_oom(&json_err))
        return ssp_fail(err, SSP_ERR_NOMEM, "out of memory while reading %s", path);
    return 0;
}
