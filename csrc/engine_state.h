/*
 * The engine's state: the struct the engine-level files share (engine.c
 * makes and frees it; decide.c and the rule families, roster.c,
 * reconcile.c, reconcile_plan.c, audit.c, audit_view.c and
 * roster_feed_api.c read it). Not seen by the binding, nor by the store's
 * backends, which get ssp_store_env (store_ops.h).
 */
#ifndef SSP_ENGINE_STATE_H
#define SSP_ENGINE_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "audit_flood.h"
#include "audit_queue.h"
#include "audit_throttle.h"
#include "config.h"
#include "roster_index.h"
#include "store_ops.h"

typedef struct ssp_engine ssp_engine;

/* The events the after-the-fact rules acted on lately (rules/after_the_fact.c),
 * as hashes of the undone events' ids (0: a free slot), oldest overwritten
 * first: Synapse may show an event twice, and a room's open state on every
 * event until it is closed again, and each is to be taken back and
 * audited once. */
#define SSP_ACTED_SLOTS 256

typedef struct ssp_acted {
    pthread_mutex_t mutex;
    uint64_t hashes[SSP_ACTED_SLOTS];
    unsigned next;
} ssp_acted;

struct ssp_engine {
    ssp_config config;
    char *server_name;
    char *worker_name;
    ssp_roster roster;
    bool roster_ready;
    pthread_mutex_t write_mutex; /* serialises store append + roster apply */
    ssp_audit_queue audit;
    bool audit_open;
    ssp_store *store; /* NULL until ssp_engine_open; the backend is chosen there */
    ssp_store_env store_env;
    /* The roster feed's consumer (roster_feed.c), or NULL; set once by
     * ssp_roster_feed_start, stopped and freed by ssp_engine_free. */
    struct ssp_feed *feed;
    /* @<reconciler.user>:<server_name>; also a key of config.service_user_set */
    char *reconciler_user;
    ssp_audit_throttle expiry_throttle; /* is_user_expired's denials: once a minute */
    ssp_acted acted;
    ssp_flood flood;                    /* audit.flood: repeated denials summarised */
};


/* Whether user_id is a user of this server. Inline: the rules ask it
 * several times per decision. */
static inline bool ssp_engine_is_local(const struct ssp_engine *engine, const char *user_id)
{
    const char *colon = user_id ? strchr(user_id, ':') : NULL;

    return colon != NULL && strcmp(colon + 1, engine->server_name) == 0;
}

#endif
