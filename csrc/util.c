/* Small string, time and JSON helpers shared by the engine. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

char *ssp_strndup(const char *s, size_t n)
{
    char *copy = malloc(n + 1);

    if (copy == NULL)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

char *ssp_strdup(const char *s)
{
    return ssp_strndup(s, strlen(s));
}

int64_t ssp_now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void ssp_deadline_after_ms(struct timespec *deadline, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    deadline->tv_sec += (time_t)(ms / 1000);
    deadline->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

int ssp_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int ssp_buf_reserve(char **buf, size_t *cap, size_t need)
{
    char *grown;

    if (need <= *cap)
        return 0;
    grown = realloc(*buf, need * 2);
    if (grown == NULL)
        return -1;
    *buf = grown;
    *cap = need * 2;
    return 0;
}

char *ssp_path_join(const char *dir, const char *name)
{
    size_t dir_len = strlen(dir), name_len = strlen(name);
    char *path = malloc(dir_len + 1 + name_len + 1);

    if (path == NULL)
        return NULL;
    memcpy(path, dir, dir_len);
    path[dir_len] = '/';
    memcpy(path + dir_len + 1, name, name_len + 1);
    return path;
}

size_t ssp_utf8_decode(const char *text, size_t len, uint32_t *code_point)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n;
    uint32_t cp;

    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        *code_point = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *code_point = cp;
    return n;
}

/* Length of the UTF-8 sequence starting at s (at most len bytes), or 0 when
 * it is not a valid, shortest-form sequence. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    uint32_t ignored;

    return ssp_utf8_decode((const char *)s, len, &ignored);
}

bool ssp_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence((const unsigned char *)s + i, len - i);

        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t ssp_utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_sequence((const unsigned char *)s + i, len - i);

        if (n == 0)
            n = 1; /* an invalid byte counts as one character */
        if (i + n > max)
            break;
        i += n;
    }
    return i;
}

void ssp_utf8_scrub(char *s)
{
    size_t len = strlen(s);

    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence((unsigned char *)s + i, len - i);

        if (n == 0) {
            s[i] = '?';
            n = 1;
        }
        i += n;
    }
}

char *ssp_json_dumps_checked(const json_t *value)
{
    /* jansson's json_dumps can skip a failed allocation while writing an
     * object key and still return a (corrupt) string, so every text that is
     * persisted is parsed back and compared before it is trusted. */
    char *text = json_dumps(value, JSON_COMPACT);
    json_t *back;
    bool same;

    if (text == NULL)
        return NULL;
    back = json_loads(text, 0, NULL);
    same = back != NULL && json_equal(back, value);
    json_decref(back);
    if (!same) {
        free(text);
        return NULL;
    }
    return text;
}

int ssp_json_dump_to(const json_t *value, char **out, ssp_error *err)
{
    *out = value != NULL ? ssp_json_dumps_checked(value) : NULL;
    return *out != NULL ? 0 : ssp_fail_nomem(err);
}

bool ssp_json_error_is_oom(const json_error_t *error)
{
    /* jansson 2.14 leaves the error as initialised (empty text) when an
     * allocation fails, and json_error_code() would read a byte it never
     * wrote; every real parse error has a text. */
    return error->text[0] == '\0';
}

json_t *ssp_json_parse_body(const char *body, size_t len, ssp_error *err)
{
    json_error_t json_err;
    /* \u0000 is let through, so that the field's own check names it. */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &json_err);

    if (root == NULL && ssp_json_error_is_oom(&json_err))
        ssp_fail_nomem(err);
    else if (root == NULL)
        ssp_fail(err, SSP_ERR_SYNTAX, "body: invalid JSON at line %d, column %d: %s",
                 json_err.line, json_err.column, json_err.text);
    return root;
}
