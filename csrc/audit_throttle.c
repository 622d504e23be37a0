/* Once per user per minute: the audit of refused tokens (audit_throttle.h). */
#include <string.h>

#include "audit_throttle.h"
#include "error.h"

/* FNV-1a: the slots only need a spread, not a secret. */
static uint64_t user_hash(const char *user_id)
{
    uint64_t h = 14695981039346656037ull;

    for (const unsigned char *p = (const unsigned char *)user_id; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

int ssp_audit_throttle_init(ssp_audit_throttle *throttle, ssp_error *err)
{
    memset(throttle->slots, 0, sizeof throttle->slots);
    if (pthread_mutex_init(&throttle->mutex, NULL) != 0)
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the expiry audit mutex");
    return 0;
}

void ssp_audit_throttle_destroy(ssp_audit_throttle *throttle)
{
    pthread_mutex_destroy(&throttle->mutex);
}

bool ssp_audit_throttle_due(ssp_audit_throttle *throttle, const char *user_id, int64_t now_ms)
{
    uint64_t hash = user_hash(user_id);
    struct ssp_audit_throttle_slot *slot = &throttle->slots[hash % SSP_AUDIT_THROTTLE_SLOTS];
    bool due;

    pthread_mutex_lock(&throttle->mutex);
    due = slot->user_hash != hash || slot->audited_ms == 0 ||
          now_ms - slot->audited_ms >= SSP_AUDIT_THROTTLE_MS || now_ms < slot->audited_ms;
    if (due) {
        slot->user_hash = hash;
        slot->audited_ms = now_ms;
    }
    pthread_mutex_unlock(&throttle->mutex);
    return due;
}
