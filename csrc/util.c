/* Error reporting and small string/time helpers shared by the engine. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssp_private.h"

int ssp_fail(ssp_error *err, ssp_error_code code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int ssp_fail_nomem(ssp_error *err)
{
    return ssp_fail(err, SSP_ERR_NOMEM, "out of memory");
}

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
