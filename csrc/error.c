/* Errors: filling in an ssp_error (error.h). */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

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
