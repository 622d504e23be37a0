/*
 * The roster feed inside the engine (roster_feed_api.c; docs/roster-feed.md):
 * the binding's calls, and the URL and message handling they use.
 */
#ifndef SSP_ROSTER_FEED_API_H
#define SSP_ROSTER_FEED_API_H

#include "config.h"
#include "error.h"
#include "roster_feed.h"

typedef struct ssp_engine ssp_engine;

/* Starts the consumer of roster_feed's queue on its own thread. Call on the
 * one process that runs background tasks, after ssp_engine_open. Resolves
 * the URL (url, url_file or url_env) first: a missing file or variable
 * fails here with SSP_ERR_INPUT naming the key. The thread reconnects by
 * itself; ssp_engine_free stops it. */
int ssp_roster_feed_start(ssp_engine *engine, ssp_error *err);

/* *status_json receives (caller frees) "null" when roster_feed is not
 * configured, else {"enabled": true, "running": bool, "state", "connected",
 * "broker" (host:port/vhost, no credentials), "queue", "dead_letter_queue",
 * "lag" (messages ready in the queue, null when unknown), "messages":
 * {"applied", "dead_lettered", "retried"}, "unacked", "users_upserted", "connects",
 * "connected_since_ms" (the last successful connect), "last_applied_ms", "last_error" (broker or store), "last_error_ms",
 * "last_dead_letter" (why the last bad message was rejected)}; only state and the
 * queue names while it runs on another process. */
int ssp_roster_feed_status(ssp_engine *engine, char **status_json, ssp_error *err);

/* The broker URL from roster_feed.url, the file named by url_file (its
 * content, surrounding white space removed) or the environment variable
 * named by url_env; checked. *url is the caller's to free. Reads a file. */
int ssp_feed_resolve_url(const ssp_config *config, char **url, ssp_error *err);

/* Applies one message body through ssp_roster_upsert_batch and says what to
 * do with the message. On REJECTED and RETRY err holds why (for REJECTED the
 * key path, as POST /roster names it). Blocks on the store's fsync. */
ssp_feed_outcome ssp_feed_apply(ssp_engine *engine, const char *body, size_t len,
                                size_t *upserted, ssp_error *err);

#endif
