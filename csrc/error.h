/*
 * Errors (error.c): the code and message every engine function that can
 * fail fills in, and the two functions that fill it. The code says what
 * the binding raises; the message names the bad key or input.
 */
#ifndef SSP_ERROR_H
#define SSP_ERROR_H

#define SSP_ERROR_MESSAGE_MAX 512

typedef enum {
    SSP_OK = 0,
    SSP_ERR_INPUT,  /* the caller's input (config, request body) is invalid */
    SSP_ERR_SYNTAX, /* the caller's input is not well-formed JSON */
    SSP_ERR_NOMEM,  /* an allocation failed */
    SSP_ERR_IO,     /* the store could not be read or written */
    SSP_ERR_STATE,  /* the engine is not in a state that allows the call */
    SSP_ERR_DATABASE,   /* the database answered with an error (SQL, constraint, schema);
                         * the message is the database's: retrying will not help */
    SSP_ERR_UNAVAILABLE /* the database cannot be reached (connection refused or lost);
                         * a retry later can succeed */
} ssp_error_code;

typedef struct ssp_error {
    ssp_error_code code;
    char message[SSP_ERROR_MESSAGE_MAX];
} ssp_error;

/* Sets err (if not NULL) and returns -1, so callers can `return ssp_fail(...)`. */
int ssp_fail(ssp_error *err, ssp_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ssp_fail_nomem(ssp_error *err);

#endif
