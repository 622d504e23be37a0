#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

char *tu_format(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "tu_format: out of memory\n");
        abort();
    }
    return out;
}

char *tu_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *templ = tu_format("%s/ssp-ctest-XXXXXX", base && base[0] ? base : "/tmp");

    if (mkdtemp(templ) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return templ;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir)
{
    if (dir != NULL)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    return tu_format("%s/%s", dir, name);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t used = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (cap - used < 4096) {
            char *grown;

            cap = cap ? cap * 2 : 8192;
            grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        n = fread(data + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0)
            break;
    }
    fclose(f);
    data[used] = '\0';
    if (len != NULL)
        *len = used;
    return data;
}

int tu_write_file(const char *path, const char *data, bool append)
{
    FILE *f = fopen(path, append ? "ab" : "wb");
    size_t len = strlen(data);
    int rc = 0;

    if (f == NULL)
        return -1;
    if (fwrite(data, 1, len, f) != len)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

long tu_count_lines(const char *path)
{
    size_t len;
    char *data = tu_read_file(path, &len);
    long lines = 0;

    if (data == NULL)
        return -1;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    free(data);
    return lines;
}

int tu_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

char *tu_config(const char *dir, const char *extra)
{
    json_t *dir_json = json_string(dir);
    char *dir_text = json_dumps(dir_json, JSON_ENCODE_ANY);
    char *out;

    if (extra != NULL && extra[0] != '\0')
        out = tu_format("{\"data_dir\": %s, %s}", dir_text, extra);
    else
        out = tu_format("{\"data_dir\": %s}", dir_text);
    free(dir_text);
    json_decref(dir_json);
    return out;
}

ssp_engine *tu_engine(const char *config_json, ssp_error *err)
{
    ssp_engine *engine = ssp_engine_new(config_json, strlen(config_json), TU_SERVER, TU_WORKER, err);

    if (engine == NULL)
        return NULL;
    if (ssp_engine_open(engine, err) != 0) {
        ssp_engine_free(engine);
        return NULL;
    }
    return engine;
}

json_t *tu_json(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (value == NULL) {
        fprintf(stderr, "tu_json: invalid JSON in a test: %s: %s\n", jerr.text, text);
        abort();
    }
    return value;
}

bool tu_json_equal_text(const char *a, const char *b)
{
    json_t *ja, *jb;
    bool equal;

    if (a == NULL || b == NULL)
        return a == b;
    ja = tu_json(a);
    jb = tu_json(b);
    equal = json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return equal;
}

bool tu_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        unsigned long cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n + 1;
    }
    return true;
}

bool tu_setup(tu_fixture *fx, const char *extra)
{
    memset(fx, 0, sizeof *fx);
    fx->dir = tu_tempdir();
    fx->config = tu_config(fx->dir, extra);
    fx->engine = tu_engine(fx->config, &fx->err);
    if (fx->engine == NULL) {
        CHECK_FAIL("cannot open an engine: [%d] %s (config %s)", (int)fx->err.code,
                   fx->err.message, fx->config);
        return false;
    }
    return true;
}

bool tu_reopen(tu_fixture *fx)
{
    ssp_engine_free(fx->engine);
    fx->engine = tu_engine(fx->config, &fx->err);
    if (fx->engine == NULL) {
        CHECK_FAIL("cannot reopen the engine: [%d] %s", (int)fx->err.code, fx->err.message);
        return false;
    }
    return true;
}

void tu_teardown(tu_fixture *fx)
{
    ssp_engine_free(fx->engine);
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx->config);
    memset(fx, 0, sizeof *fx);
}

int tu_put(tu_fixture *fx, const char *user_id, const char *body)
{
    char *entry = NULL;
    int rc = ssp_roster_put(fx->engine, user_id, body, strlen(body), &entry, &fx->err);

    free(entry);
    return rc;
}

/* ---- COPY binary streams (the PostgreSQL store's groups cache) ---- */

static void append(char **data, size_t *len, const void *bytes, size_t n)
{
    char *grown = realloc(*data, *len + n + 1);

    if (grown == NULL)
        abort();
    memcpy(grown + *len, bytes, n);
    *data = grown;
    *len += n;
}

static void append_be(char **data, size_t *len, unsigned long long value, int bytes)
{
    unsigned char out[8];

    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(value >> (8 * (bytes - 1 - i)));
    append(data, len, out, (size_t)bytes);
}

static void append_text(char **data, size_t *len, const char *text)
{
    if (text == NULL) {
        append_be(data, len, 0xffffffffu, 4);
        return;
    }
    append_be(data, len, strlen(text), 4);
    append(data, len, text, strlen(text));
}

static void append_array(char **data, size_t *len, const char *const *items)
{
    size_t n = 0, size = 12;

    while (items != NULL && items[n] != NULL) {
        size += 4 + (strcmp(items[n], "\\N") == 0 ? 0 : strlen(items[n]));
        n++;
    }
    if (n > 0)
        size += 8;
    append_be(data, len, size, 4);
    append_be(data, len, n > 0 ? 1 : 0, 4); /* ndim */
    append_be(data, len, 0, 4);             /* flags */
    append_be(data, len, 25, 4);            /* text */
    if (n > 0) {
        append_be(data, len, n, 4);
        append_be(data, len, 1, 4);
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], "\\N") == 0)
            append_be(data, len, 0xffffffffu, 4);
        else
            append_text(data, len, items[i]);
    }
}

void tu_copy_header(char **data, size_t *len)
{
    append(data, len, "PGCOPY\n\377\r\n\0", 11);
    append_be(data, len, 0, 4);
    append_be(data, len, 0, 4);
}

void tu_copy_group_row(char **data, size_t *len, const tu_group_row *row)
{
    append_be(data, len, 12, 2);
    append_text(data, len, row->group_id);
    append_text(data, len, row->school);
    append_text(data, len, row->kind);
    append_text(data, len, row->name);
    append_text(data, len, row->topic);
    append_be(data, len, 1, 4);
    append_be(data, len, row->two_way ? 1 : 0, 1);
    append_be(data, len, 1, 4);
    append_be(data, len, row->closed ? 1 : 0, 1);
    append_text(data, len, row->state);
    if (row->archive_at_ms == 0) {
        append_be(data, len, 0xffffffffu, 4);
    } else {
        append_be(data, len, 8, 4);
        append_be(data, len, (unsigned long long)row->archive_at_ms, 8);
    }
    if (row->version == NULL) {
        append_be(data, len, 0xffffffffu, 4);
    } else {
        append_be(data, len, 8, 4);
        append_be(data, len, strtoull(row->version, NULL, 10), 8);
    }
    append_array(data, len, row->moderators);
    append_array(data, len, row->members);
}

void tu_copy_trailer(char **data, size_t *len)
{
    append_be(data, len, 0xffff, 2);
}

int tu_write_bytes(const char *path, const char *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    int rc;

    if (file == NULL)
        return -1;
    rc = fwrite(data, 1, len, file) == len ? 0 : -1;
    if (fclose(file) != 0)
        rc = -1;
    return rc;
}
