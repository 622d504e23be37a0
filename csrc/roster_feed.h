/*
 * The roster feed: a consumer of the school cloud's AMQP (RabbitMQ) queue,
 * on its own thread (roster_feed.c). Internal to the engine; the binding
 * sees only ssp_roster_feed_start / ssp_roster_feed_status in ssp.h.
 *
 * A message is a POST /roster body. It goes through the same function as
 * POST /roster (ssp_roster_upsert_batch: one parser, one validator, the same
 * durability), and is acknowledged only once that change is durable:
 * - embedded store: when ssp_roster_upsert_batch returns (roster.jsonl and
 *   reconcile.jsonl fsynced);
 * - PostgreSQL: when the local outbox holding it has been committed to the
 *   database (the trigger marks the reconcile state in the same
 *   transaction).
 * A message that does not parse or validate is published to the dead-letter
 * queue with the error in its headers and acknowledged once the broker has
 * confirmed the dead letter. Anything else (the store failing, the broker
 * going away) leaves the message unacknowledged: the connection is closed,
 * the broker requeues it, and the thread reconnects with backoff.
 */
#ifndef SSP_ROSTER_FEED_H
#define SSP_ROSTER_FEED_H

#include "config.h"
#include "ssp.h"

/* Larger messages are dead-lettered without being parsed. */
#define SSP_FEED_MAX_BODY (64u * 1024u * 1024u)

/* Header names of a dead letter. */
#define SSP_FEED_HEADER_ERROR "x-school-policy-error"
#define SSP_FEED_HEADER_KIND "x-school-policy-error-kind"
#define SSP_FEED_HEADER_QUEUE "x-school-policy-queue"
#define SSP_FEED_HEADER_AT "x-school-policy-rejected-at"

typedef enum {
    SSP_FEED_APPLIED = 0, /* the change is in the store */
    SSP_FEED_REJECTED,    /* the message is bad: dead-letter it, never retry */
    SSP_FEED_RETRY        /* the store failed: leave it unacknowledged, retry later */
} ssp_feed_outcome;

typedef struct ssp_feed ssp_feed;

/* Checks that url is an amqp:// URL rabbitmq-c can use. The message names
 * `path` and never repeats the URL, which holds the password. */
int ssp_feed_check_url(const char *path, const char *url, ssp_error *err);

/* The broker URL from roster_feed.url, the file named by url_file (its
 * content, surrounding white space removed) or the environment variable
 * named by url_env; checked. *url is the caller's to free. Reads a file. */
int ssp_feed_resolve_url(const ssp_config *config, char **url, ssp_error *err);

/* Applies one message body through ssp_roster_upsert_batch and says what to
 * do with the message. On REJECTED and RETRY err holds why (for REJECTED the
 * key path, as POST /roster names it). Blocks on the store's fsync. */
ssp_feed_outcome ssp_feed_apply(ssp_engine *engine, const char *body, size_t len,
                                size_t *upserted, ssp_error *err);

/* "invalid_json" (SSP_ERR_SYNTAX) or "invalid_input": the kind header. */
const char *ssp_feed_error_kind(const ssp_error *err);

/* Stops the thread (waits for it: at most about a second) and frees the
 * feed. Accepts NULL. Called by ssp_engine_free before the store closes. */
void ssp_feed_stop(ssp_feed *feed);

#endif
