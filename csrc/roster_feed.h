/*
 * The roster feed's consumer (roster_feed.c): a thread consuming the school
 * cloud's AMQP (RabbitMQ) queue. It knows nothing of the engine: the
 * engine starts it with the queue's settings and a sink that applies a
 * message (roster_feed_api.c), and stops it before the store closes.
 *
 * A message is a POST /roster body. The sink applies it as POST /roster
 * does, and the message is acknowledged only once that change is durable:
 * - embedded store: when the sink's apply returns (roster.jsonl and
 *   reconcile.jsonl fsynced);
 * - PostgreSQL (sink.commits_later): once the sink says the local outbox
 *   holding it has been committed to the database (the trigger marks the
 *   reconcile state in the same transaction).
 * A message that does not parse or validate is published to the dead-letter
 * queue with the error in its headers and acknowledged once the broker has
 * confirmed the dead letter. Anything else (the store failing, the broker
 * going away) leaves the message unacknowledged: the connection is closed,
 * the broker requeues it, and the thread reconnects with backoff.
 */
#ifndef SSP_ROSTER_FEED_H
#define SSP_ROSTER_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* roster_feed.max_message_bytes: its default and range. A larger body is
 * dead-lettered (reason too_large) without being read into memory. The
 * top is RabbitMQ's own limit (max_message_size cannot go higher). */
#define SSP_FEED_DEFAULT_MESSAGE_BYTES (INT64_C(64) * 1024 * 1024)
#define SSP_FEED_MIN_MESSAGE_BYTES INT64_C(1024)
#define SSP_FEED_MAX_MESSAGE_BYTES (INT64_C(512) * 1024 * 1024)
/* After applying a body of at least this size, the feed's thread gives the
 * memory its parse took back to the system (malloc_trim). */
#define SSP_FEED_TRIM_BYTES (INT64_C(4) * 1024 * 1024)

/* Header names of a dead letter. */
#define SSP_FEED_HEADER_ERROR "x-school-policy-error"
#define SSP_FEED_HEADER_KIND "x-school-policy-error-kind"
#define SSP_FEED_HEADER_QUEUE "x-school-policy-queue"
#define SSP_FEED_HEADER_AT "x-school-policy-rejected-at"
/* On a copy that is not the message as it came: what was left out. */
#define SSP_FEED_HEADER_DROPPED "x-school-policy-dropped"

/* The kind header of a message over max_message_bytes. */
#define SSP_FEED_KIND_TOO_LARGE "too_large"

/* The state a feed shows while the store refuses or cannot take its changes. */
#define SSP_FEED_STORE_UNAVAILABLE "store_unavailable"

typedef enum {
    SSP_FEED_APPLIED = 0, /* the change is in the store */
    SSP_FEED_REJECTED,    /* the message is bad: dead-letter it, never retry */
    SSP_FEED_RETRY        /* the store failed: leave it unacknowledged, retry later */
} ssp_feed_outcome;

/* The queue's settings (roster_feed in the config). The strings are
 * borrowed and outlive the feed. */
typedef struct ssp_feed_settings {
    const char *queue;
    const char *dead_letter_queue;
    int64_t prefetch;          /* unacknowledged deliveries at most */
    int64_t retry_max_seconds; /* cap of the reconnect backoff */
    int64_t max_message_bytes; /* a larger body is dead-lettered unread */
    bool declare;              /* declare both queues (durable) on connect */
} ssp_feed_settings;

/* Where the messages go. Called on the feed's thread. */
typedef struct ssp_feed_sink {
    void *ctx;
    /* Applies one message body and says what to do with the message. On
     * REJECTED and RETRY err holds why (for REJECTED the key path, as
     * POST /roster names it). Blocks on the store. */
    ssp_feed_outcome (*apply)(void *ctx, const char *body, size_t len, size_t *upserted,
                              ssp_error *err);
    /* An applied change reaches the shared store later than apply returns:
     * the delivery is acknowledged once committed() is true. */
    bool commits_later;
    /* Whether every change applied so far is in the shared store. */
    bool (*committed)(void *ctx);
} ssp_feed_sink;

typedef struct ssp_feed ssp_feed;

/* Checks that url is an amqp:// URL rabbitmq-c can use. The message names
 * `path` and never repeats the URL, which holds the password. */
int ssp_feed_check_url(const char *path, const char *url, ssp_error *err);

/* "invalid_json" (SSP_ERR_SYNTAX) or "invalid_input": the kind header. */
const char *ssp_feed_error_kind(const ssp_error *err);

/* Starts the consumer thread. url (checked with ssp_feed_check_url) is
 * taken over, also on failure; settings and sink are copied. */
int ssp_feed_start(char *url, const ssp_feed_settings *settings, const ssp_feed_sink *sink,
                   ssp_feed **out, ssp_error *err);

/* What the feed has done and where it is, for ssp_roster_feed_status. */
typedef struct ssp_feed_state {
    const char *state; /* "connecting", "consuming", "disconnected", "store_unavailable", ... */
    bool consuming;
    char broker[320]; /* host:port/vhost: no credentials */
    int64_t lag;      /* messages ready in the queue; -1 unknown */
    uint64_t applied, dead_lettered, retried, unacked, users, connects;
    /* dead letters published as a trimmed copy (a header table too large
     * to publish, a body over the limit, or a copy that failed before), and
     * messages rejected without one (the trimmed copy failed too) */
    uint64_t trimmed, rejected;
    int64_t connected_ms, last_applied_ms, last_error_ms; /* 0: never */
    char last_error[SSP_ERROR_MESSAGE_MAX];               /* broker or store; "" when none */
    char last_dead_letter[SSP_ERROR_MESSAGE_MAX];         /* why the last bad message was rejected */
} ssp_feed_state;

/* A consistent copy of the feed's state, taken under its lock. */
void ssp_feed_read_state(ssp_feed *feed, ssp_feed_state *out);

/* Stops the thread (waits for it: at most about a second) and frees the
 * feed. Accepts NULL. Called by ssp_engine_free before the store closes. */
void ssp_feed_stop(ssp_feed *feed);

#endif
