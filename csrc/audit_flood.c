/* The flood limit of denials: token buckets per key, summaries (audit_flood.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit_flood.h"
#include "util.h"

/* ---- keys ---- */

/* FNV-1a over the key's parts from a random start, then a 64-bit mixer:
 * the table only needs a spread that a remote actor who picks its user id
 * cannot aim at one set, not a secret. */
static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t key_of(const ssp_flood *flood, const ssp_audit_record *d)
{
    unsigned char tail[3] = {(unsigned char)d->rule, (unsigned char)d->callback,
                             (unsigned char)d->enforced};
    uint64_t h = mix(flood->seed, d->actor ? d->actor : "", d->actor ? strlen(d->actor) + 1 : 1);

    h = mix(h, tail, sizeof tail);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h != 0 ? h : 1; /* 0 marks a free slot */
}

int ssp_flood_init(ssp_flood *flood, const ssp_flood_settings *settings, ssp_error *err)
{
    memset(flood, 0, sizeof *flood);
    flood->settings = *settings;
    if (getrandom(&flood->seed, sizeof flood->seed, GRND_NONBLOCK) != (ssize_t)sizeof flood->seed)
        flood->seed = (uint64_t)ssp_now_ms() ^ ((uint64_t)getpid() << 32);
    flood->seed ^= 14695981039346656037ull;
    flood->slots = calloc((size_t)SSP_FLOOD_SETS * SSP_FLOOD_WAYS, sizeof *flood->slots);
    if (flood->slots == NULL)
        return ssp_fail_nomem(err);
    if (pthread_mutex_init(&flood->mutex, NULL) != 0) {
        free(flood->slots);
        flood->slots = NULL;
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the flood limit's mutex");
    }
    return 0;
}

void ssp_flood_destroy(ssp_flood *flood)
{
    if (flood->slots == NULL)
        return;
    for (size_t i = 0; i < (size_t)SSP_FLOOD_SETS * SSP_FLOOD_WAYS; i++)
        free(flood->slots[i].summary);
    free(flood->slots);
    flood->slots = NULL;
    pthread_mutex_destroy(&flood->mutex);
}

/* ---- summaries ---- */

/* A field the summarised denials do not all share becomes NULL: the
 * summary claims only what is true of every denial it counts. */
static void keep_if_same(const char **kept, const char *seen)
{
    if (*kept != NULL && (seen == NULL || strcmp(*kept, seen) != 0))
        *kept = NULL;
}

static void count_in(ssp_audit_record *summary, const ssp_audit_record *d, int64_t now_ms)
{
    summary->count++;
    summary->last_ts = now_ms;
    keep_if_same(&summary->target, d->target);
    keep_if_same(&summary->room_id, d->room_id);
    keep_if_same(&summary->event_type, d->event_type);
    keep_if_same(&summary->school, d->school);
}

/* Detaches the slot's summary onto *closed (a list through `next`). */
static void close_summary(ssp_flood *flood, ssp_flood_slot *slot, ssp_audit_record **closed)
{
    slot->summary->next = *closed;
    *closed = slot->summary;
    slot->summary = NULL;
    flood->summaries++;
}

/* Hands the closed summaries to the queue, which takes them as they are
 * (no allocation: a summary cannot be lost to memory at this point). */
static size_t enqueue_closed(ssp_audit_queue *queue, ssp_audit_record *closed)
{
    size_t n = 0;

    while (closed != NULL) {
        ssp_audit_record *next = closed->next;

        closed->next = NULL;
        if (closed->count <= 1)
            closed->last_ts = 0;
        ssp_audit_enqueue(queue, closed);
        closed = next;
        n++;
    }
    return n;
}

/* ---- the buckets ---- */

/* The slot of `key` in its set, or the way to take for it: a free one, else
 * the least recently denied (its summary closed onto *closed). */
static ssp_flood_slot *slot_for(ssp_flood *flood, uint64_t key, int64_t now_ms,
                                ssp_audit_record **closed)
{
    ssp_flood_slot *set = &flood->slots[(key % SSP_FLOOD_SETS) * SSP_FLOOD_WAYS];
    ssp_flood_slot *victim = &set[0];

    for (int w = 0; w < SSP_FLOOD_WAYS; w++) {
        if (set[w].key == key)
            return &set[w];
    }
    for (int w = 0; w < SSP_FLOOD_WAYS; w++) {
        if (set[w].key == 0) {
            victim = &set[w];
            break;
        }
        if (set[w].last_ms < victim->last_ms)
            victim = &set[w];
    }
    if (victim->key != 0) {
        flood->evicted++;
        if (victim->summary != NULL)
            close_summary(flood, victim, closed);
    }
    victim->key = key;
    victim->tokens = (double)flood->settings.burst;
    victim->refilled_ms = now_ms;
    victim->last_ms = now_ms;
    return victim;
}

static void refill(const ssp_flood_settings *s, ssp_flood_slot *slot, int64_t now_ms)
{
    /* A clock set back (or threads that read it in another order) only
     * delays the next refill: no time is counted twice. */
    if (now_ms <= slot->refilled_ms)
        return;
    slot->tokens += (double)(now_ms - slot->refilled_ms) * (double)s->per_minute / 60000.0;
    if (slot->tokens > (double)s->burst)
        slot->tokens = (double)s->burst;
    slot->refilled_ms = now_ms;
}

ssp_flood_verdict ssp_flood_denial(ssp_flood *flood, ssp_audit_queue *queue,
                                   const ssp_audit_record *denial, int64_t now_ms)
{
    ssp_flood_verdict verdict = {false, 0};
    ssp_audit_record *closed = NULL;
    uint64_t key = key_of(flood, denial);
    ssp_flood_slot *slot;

    pthread_mutex_lock(&flood->mutex);
    slot = slot_for(flood, key, now_ms, &closed);
    slot->last_ms = now_ms;
    refill(&flood->settings, slot, now_ms);
    if (slot->summary != NULL && now_ms - slot->summary->ts >= flood->settings.summary_ms)
        close_summary(flood, slot, &closed);
    if (slot->tokens >= 1.0) {
        slot->tokens -= 1.0;
    } else {
        if (slot->summary == NULL) {
            /* One allocation per summary, none per limited denial. */
            slot->summary = ssp_audit_record_copy(denial);
            if (slot->summary != NULL) {
                slot->summary->kind = SSP_AUDIT_DENIAL;
                slot->summary->ts = now_ms;
                slot->summary->count = 1;
                slot->summary->last_ts = now_ms;
            }
        } else {
            count_in(slot->summary, denial, now_ms);
        }
        if (slot->summary != NULL) {
            /* the ms until the next token, rounded up */
            double wait = (1.0 - slot->tokens) * 60000.0 / (double)flood->settings.per_minute;

            verdict.limited = true;
            flood->limited++;
            verdict.retry_after_ms = (int64_t)wait;
            if ((double)verdict.retry_after_ms < wait || verdict.retry_after_ms < 1)
                verdict.retry_after_ms++;
        }
    }
    pthread_mutex_unlock(&flood->mutex);
    enqueue_closed(queue, closed);
    return verdict;
}

size_t ssp_flood_close_summaries(ssp_flood *flood, ssp_audit_queue *queue, int64_t now_ms,
                                 bool all)
{
    ssp_audit_record *closed = NULL;

    pthread_mutex_lock(&flood->mutex);
    for (size_t i = 0; i < (size_t)SSP_FLOOD_SETS * SSP_FLOOD_WAYS; i++) {
        ssp_flood_slot *slot = &flood->slots[i];

        if (slot->summary != NULL &&
            (all || now_ms - slot->summary->ts >= flood->settings.summary_ms))
            close_summary(flood, slot, &closed);
    }
    pthread_mutex_unlock(&flood->mutex);
    return enqueue_closed(queue, closed);
}

void ssp_flood_get_stats(ssp_flood *flood, ssp_flood_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&flood->mutex);
    out->limited = flood->limited;
    out->summaries = flood->summaries;
    out->evicted = flood->evicted;
    for (size_t i = 0; i < (size_t)SSP_FLOOD_SETS * SSP_FLOOD_WAYS; i++) {
        if (flood->slots[i].summary != NULL)
            out->open_summaries++;
    }
    pthread_mutex_unlock(&flood->mutex);
}
