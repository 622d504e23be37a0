/*
 * What the PostgreSQL store's files share below its thread (pg_store.c):
 * the last error that status shows, and the wake-up of the thread. Kept
 * apart so that pg_audit.c and pg_roster.c need nothing of pg_store.c,
 * which calls them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pg/pg_state.h"

void ssp_pg_set_error(ssp_pgstore *pg, const char *fmt, ...)
{
    va_list ap;
    char *nl;

    pthread_mutex_lock(&pg->mutex);
    va_start(ap, fmt);
    vsnprintf(pg->last_error, sizeof pg->last_error, fmt, ap);
    va_end(ap);
    /* libpq messages end in a newline */
    while ((nl = strrchr(pg->last_error, '\n')) != NULL && nl[1] == '\0')
        *nl = '\0';
    pthread_mutex_unlock(&pg->mutex);
}

void ssp_pg_wake(ssp_pgstore *pg)
{
    uint64_t one = 1;

    if (write(pg->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: already signalled */
    }
}
