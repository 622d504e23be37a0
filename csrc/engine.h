/*
 * Engine internals (engine.c): the engine struct the engine's files share,
 * and the rules' texts (rules.c). Not installed, not seen by the
 * binding. The store's backends never include this: they get
 * ssp_store_env (store.h).
 */
#ifndef SSP_ENGINE_H
#define SSP_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit_queue.h"
#include "audit_throttle.h"
#include "config.h"
#include "roster_index.h"
#include "ssp.h"
#include "store_ops.h"
#include "strmap.h"
#include "util.h"

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
};

bool ssp_engine_is_local(const ssp_engine *engine, const char *user_id);

/* Queues the audit record of a denial (audit.c): its id, or 0 when none was
 * queued (a refused token's repeat within the throttle's minute, an engine
 * without a store, out of memory). Never blocks on I/O. */
int64_t ssp_audit_denial(ssp_engine *engine, ssp_callback callback, ssp_rule rule, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school);

/* When a denial tells the client more than the rule's usual message
 * (rules.c: the rules' texts). */
typedef enum {
    SSP_SAY_USUAL = 0,
    SSP_SAY_ABOUT_TARGET, /* the invitee, not the actor, breaks the rule */
    SSP_SAY_REACTION,     /* one_way: a reaction that is not an emoji on an event */
    SSP_SAY_INVITE,       /* one_way: an invite into the channel */
    SSP_SAY_OTHER_SERVER, /* federation_forbidden: joining a room of another server */
    SSP_SAY_DIRECT_CHAT,  /* room_creation_forbidden: a third person in a direct chat */
    SSP_SAY__COUNT
} ssp_rule_situation;

/* The rule's name on the audit page (rules.c). */
const char *ssp_rule_name(ssp_rule rule, bool german);
/* What a client is told when the rule denies in `situation`: the rule's
 * usual message where it has none for the situation. */
const char *ssp_rule_message(ssp_rule rule, ssp_rule_situation situation, bool german);

#endif
