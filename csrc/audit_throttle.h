/*
 * The audit throttle of refused tokens (audit_throttle.c). Synapse asks
 * is_user_expired on every request a refused user's client makes, and
 * clients retry every request, so its denials are audited at most once per
 * user per SSP_AUDIT_THROTTLE_MS. A slot remembers the last audited user by
 * hash: a collision only costs an extra record, never a missing one.
 */
#ifndef SSP_AUDIT_THROTTLE_H
#define SSP_AUDIT_THROTTLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define SSP_AUDIT_THROTTLE_SLOTS 16384
#define SSP_AUDIT_THROTTLE_MS 60000

typedef struct ssp_audit_throttle {
    pthread_mutex_t mutex;
    struct ssp_audit_throttle_slot {
        uint64_t user_hash;
        int64_t audited_ms;
    } slots[SSP_AUDIT_THROTTLE_SLOTS];
} ssp_audit_throttle;

int ssp_audit_throttle_init(ssp_audit_throttle *throttle, ssp_error *err);
void ssp_audit_throttle_destroy(ssp_audit_throttle *throttle);
/* Whether the user's denial is to be audited at now_ms; if so, remembered
 * as audited then. */
bool ssp_audit_throttle_due(ssp_audit_throttle *throttle, const char *user_id, int64_t now_ms);

#endif
