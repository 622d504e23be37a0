/*
 * The roster feed's consumer thread (see roster_feed.h for the contract):
 * the one file that speaks AMQP (rabbitmq-c).
 *
 * One thread per engine, started through ssp_roster_feed_start
 * (roster_feed_api.c) on the process that runs Synapse's background tasks.
 * It knows nothing of the engine: messages go to its sink, which applies
 * them through the roster API. It never touches Python: the adapter reads
 * its state with ssp_roster_feed_status and logs changes.
 *
 * Per connection: channel 1 consumes (basic.qos prefetch, manual acks),
 * channel 2 publishes dead letters in confirm mode, channel 3 asks the queue
 * depth (passive queue.declare) about once a second for the lag.
 * Acknowledgements may leave delivery order (a dead letter waits for its
 * confirm while later good messages are acknowledged); that reorders only
 * bad messages against good ones, which cannot change the roster.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "roster_feed.h"
#include "roster_feed_message.h"
#include "util.h"

#define CH_CONSUME 1
#define CH_DEAD 2
#define CH_DEPTH 3
#define HEARTBEAT_SECONDS 30
#define CONNECT_TIMEOUT_SECONDS 10
#define RPC_TIMEOUT_SECONDS 30
#define LAG_POLL_MS 1000

typedef enum {
    FEED_STOPPED = 0,
    FEED_CONNECTING,
    FEED_CONSUMING,
    FEED_DISCONNECTED, /* the broker is away or refused us: backing off */
    FEED_STORE_PAUSED  /* the store failed a write: backing off, nothing acknowledged */
} feed_state;

static const char *const STATE_NAMES[] = {"stopped", "connecting", "consuming", "disconnected",
                                          SSP_FEED_STORE_UNAVAILABLE};

/* A delivery waiting for something before it may be acknowledged: the
 * broker's confirm of its dead letter (seq > 0) or PostgreSQL (seq == 0). */
typedef struct pending_ack {
    uint64_t delivery_tag;
    uint64_t seq;
    uint64_t fingerprint; /* of the message dead-lettered */
} pending_ack;



struct ssp_feed {
    ssp_feed_settings settings; /* borrowed strings: the config outlives the feed */
    ssp_feed_sink sink;         /* the engine stops the feed before it closes the store */
    char *url;          /* owned; amqp_parse_url cuts it into info's strings */
    struct amqp_connection_info info;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex; /* guards everything below up to the thread's own fields */
    pthread_cond_t wake;
    bool sync_ready; /* mutex and wake initialised */
    bool stopping;
    feed_state state;
    /* what ssp_feed_read_state copies; its state name and consuming are set
     * there, unacked mirrors n_pending, connected_ms is when the current
     * (or last) connection started consuming */
    ssp_feed_state shown;
    /* the thread's own, per connection */
    amqp_connection_state_t conn;
    uint64_t publish_seq;
    pending_ack *pending; /* capacity: prefetch (the broker delivers no more unacknowledged) */
    size_t n_pending, cap_pending;
    int64_t next_lag_ms;
    /* the thread's own, across connections */
    ssp_poison_list poisoned; /* messages whose dead letter failed */
};

/* ---- checks that need no broker ---- */

int ssp_feed_check_url(const char *path, const char *url, ssp_error *err)
{
    struct amqp_connection_info info;
    char *copy = ssp_strdup(url);
    int status;
    bool tls;

    if (copy == NULL)
        return ssp_fail_nomem(err);
    status = amqp_parse_url(copy, &info);
    tls = status == AMQP_STATUS_OK && info.ssl;
    free(copy);
    if (status != AMQP_STATUS_OK)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: expected an amqp://user:password@host:port/vhost URL (the value is "
                        "not repeated here: it may hold a password)",
                        path);
    if (tls)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: amqps:// (TLS) is not supported; use amqp:// on a trusted network "
                        "or a local TLS tunnel (docs/roster-feed.md)",
                        path);
    return 0;
}

const char *ssp_feed_error_kind(const ssp_error *err)
{
    return err->code == SSP_ERR_SYNTAX ? "invalid_json" : "invalid_input";
}

/* ---- state shared with the status reader ---- */

static void set_state(ssp_feed *f, feed_state state)
{
    pthread_mutex_lock(&f->mutex);
    f->state = state;
    if (state != FEED_CONSUMING)
        f->shown.lag = -1;
    pthread_mutex_unlock(&f->mutex);
}

static void set_error(ssp_feed *f, const char *message)
{
    pthread_mutex_lock(&f->mutex);
    snprintf(f->shown.last_error, sizeof f->shown.last_error, "%s", message);
    ssp_utf8_scrub(f->shown.last_error);
    f->shown.last_error_ms = ssp_now_ms();
    pthread_mutex_unlock(&f->mutex);
}

static bool stopping(ssp_feed *f)
{
    bool stop;

    pthread_mutex_lock(&f->mutex);
    stop = f->stopping;
    pthread_mutex_unlock(&f->mutex);
    return stop;
}

/* Sleeps up to ms unless stopped meanwhile; returns whether to stop. */
static bool sleep_unless_stopped(ssp_feed *f, int64_t ms)
{
    struct timespec until;
    bool stop;

    ssp_deadline_after_ms(&until, ms);
    pthread_mutex_lock(&f->mutex);
    while (!f->stopping && pthread_cond_timedwait(&f->wake, &f->mutex, &until) != ETIMEDOUT) {
    }
    stop = f->stopping;
    pthread_mutex_unlock(&f->mutex);
    return stop;
}

static void publish_unacked(ssp_feed *f)
{
    pthread_mutex_lock(&f->mutex);
    f->shown.unacked = f->n_pending;
    pthread_mutex_unlock(&f->mutex);
}

/* ---- AMQP helpers (feed thread only) ---- */

static int reply_fail(amqp_rpc_reply_t reply, const char *what, ssp_error *err)
{
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return ssp_fail(err, SSP_ERR_IO, "%s: %s", what,
                        amqp_error_string2(reply.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = reply.reply.decoded;

            return ssp_fail(err, SSP_ERR_IO, "%s: the broker closed the connection: %u %.*s", what,
                            m->reply_code, (int)m->reply_text.len,
                            (const char *)m->reply_text.bytes);
        }
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = reply.reply.decoded;

            return ssp_fail(err, SSP_ERR_IO, "%s: the broker closed the channel: %u %.*s", what,
                            m->reply_code, (int)m->reply_text.len,
                            (const char *)m->reply_text.bytes);
        }
        return ssp_fail(err, SSP_ERR_IO, "%s: the broker answered with method 0x%08x", what,
                        (unsigned)reply.reply.id);
    default:
        return ssp_fail(err, SSP_ERR_IO, "%s: no reply from the broker", what);
    }
}

static int status_fail(int status, const char *what, ssp_error *err)
{
    if (status == AMQP_STATUS_OK)
        return 0;
    return ssp_fail(err, SSP_ERR_IO, "%s: %s", what, amqp_error_string2(status));
}

/* failed: the connection went wrong. A dead letter still waiting for its
 * confirm then may be what the broker refused: its message is trimmed
 * when it comes again, and rejected the time after. */
static void disconnect(ssp_feed *f, bool failed)
{
    if (f->conn == NULL)
        return;
    for (size_t i = 0; failed && i < f->n_pending; i++) {
        if (f->pending[i].seq != 0)
            ssp_poison_note(&f->poisoned, f->pending[i].fingerprint);
    }
    /* Closing without acknowledging returns every unacknowledged delivery
     * to the queue; a polite close may fail on a dead socket, which is fine. */
    (void)amqp_connection_close(f->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(f->conn);
    f->conn = NULL;
    f->n_pending = 0;
    f->publish_seq = 0;
    publish_unacked(f);
}

static int open_channel(ssp_feed *f, amqp_channel_t ch, ssp_error *err)
{
    amqp_channel_open(f->conn, ch);
    return reply_fail(amqp_get_rpc_reply(f->conn), "channel.open", err);
}

static int declare_queue(ssp_feed *f, amqp_channel_t ch, const char *name, bool passive,
                         uint32_t *ready, ssp_error *err)
{
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(f->conn, ch, amqp_cstring_bytes(name),
                                                     passive, 1, 0, 0, amqp_empty_table);

    if (ok == NULL)
        return reply_fail(amqp_get_rpc_reply(f->conn), passive ? "queue depth" : "queue.declare",
                          err);
    if (ready != NULL)
        *ready = ok->message_count;
    return 0;
}

static int feed_connect(ssp_feed *f, ssp_error *err)
{
    const ssp_feed_settings *c = &f->settings;
    struct timeval connect_tv = {CONNECT_TIMEOUT_SECONDS, 0}, rpc_tv = {RPC_TIMEOUT_SECONDS, 0};
    amqp_socket_t *socket;
    uint32_t ready = 0;

    f->conn = amqp_new_connection();
    if (f->conn == NULL)
        return ssp_fail_nomem(err);
    socket = amqp_tcp_socket_new(f->conn);
    if (socket == NULL)
        return ssp_fail_nomem(err);
    if (status_fail(amqp_socket_open_noblock(socket, f->info.host, f->info.port, &connect_tv),
                    "connect", err) != 0)
        return -1;
    if (status_fail(amqp_set_rpc_timeout(f->conn, &rpc_tv), "rpc timeout", err) != 0)
        return -1;
    if (reply_fail(amqp_login(f->conn, f->info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
                              HEARTBEAT_SECONDS, AMQP_SASL_METHOD_PLAIN, f->info.user,
                              f->info.password),
                   "login", err) != 0)
        return -1;
    if (open_channel(f, CH_CONSUME, err) != 0 || open_channel(f, CH_DEAD, err) != 0 ||
        open_channel(f, CH_DEPTH, err) != 0)
        return -1;
    if (c->declare &&
        (declare_queue(f, CH_CONSUME, c->queue, false, &ready, err) != 0 ||
         declare_queue(f, CH_DEAD, c->dead_letter_queue, false, NULL, err) != 0))
        return -1;
    /* Without declaring, both queues must exist: a dead letter published to
     * a missing queue would be dropped by the broker. */
    if (!c->declare &&
        (declare_queue(f, CH_DEPTH, c->queue, true, &ready, err) != 0 ||
         declare_queue(f, CH_DEAD, c->dead_letter_queue, true, NULL, err) != 0))
        return -1;
    amqp_basic_qos(f->conn, CH_CONSUME, 0, (uint16_t)c->prefetch, 0);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "basic.qos", err) != 0)
        return -1;
    amqp_confirm_select(f->conn, CH_DEAD);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "confirm.select", err) != 0)
        return -1;
    amqp_basic_consume(f->conn, CH_CONSUME, amqp_cstring_bytes(c->queue), amqp_empty_bytes,
                       0, 0, 0, amqp_empty_table);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "basic.consume", err) != 0)
        return -1;
    pthread_mutex_lock(&f->mutex);
    f->shown.connects++;
    f->shown.connected_ms = ssp_now_ms();
    f->state = FEED_CONSUMING;
    f->shown.lag = ready;
    pthread_mutex_unlock(&f->mutex);
    f->next_lag_ms = ssp_now_ms() + LAG_POLL_MS;
    return 0;
}

static int ack(ssp_feed *f, uint64_t delivery_tag, ssp_error *err)
{
    return status_fail(amqp_basic_ack(f->conn, CH_CONSUME, delivery_tag, 0), "basic.ack", err);
}

/* basic.ack on the dead-letter channel: acknowledge the originals. */
static int on_confirm(ssp_feed *f, uint64_t seq, bool multiple, ssp_error *err)
{
    size_t kept = 0;
    uint64_t done = 0;

    for (size_t i = 0; i < f->n_pending; i++) {
        pending_ack p = f->pending[i];

        if (p.seq != 0 && (p.seq == seq || (multiple && p.seq <= seq))) {
            if (ack(f, p.delivery_tag, err) != 0)
                return -1;
            ssp_poison_forget(&f->poisoned, p.fingerprint);
            done++;
        } else {
            f->pending[kept++] = p;
        }
    }
    f->n_pending = kept;
    pthread_mutex_lock(&f->mutex);
    f->shown.dead_lettered += done;
    f->shown.unacked = f->n_pending;
    pthread_mutex_unlock(&f->mutex);
    return 0;
}

/* PostgreSQL: acknowledges the applied deliveries once the outbox that
 * holds them has been committed (nothing pending means everything appended
 * before this call, by this thread included, is in the database). */
static int ack_committed(ssp_feed *f, ssp_error *err)
{
    size_t kept = 0;
    bool any = false;

    for (size_t i = 0; i < f->n_pending && !any; i++)
        any = f->pending[i].seq == 0;
    if (!any)
        return 0;
    if (!f->sink.committed(f->sink.ctx))
        return 0;
    for (size_t i = 0; i < f->n_pending; i++) {
        if (f->pending[i].seq == 0) {
            if (ack(f, f->pending[i].delivery_tag, err) != 0)
                return -1;
        } else {
            f->pending[kept++] = f->pending[i];
        }
    }
    f->n_pending = kept;
    publish_unacked(f);
    return 0;
}

static bool awaiting_commit(const ssp_feed *f)
{
    for (size_t i = 0; i < f->n_pending; i++) {
        if (f->pending[i].seq == 0)
            return true;
    }
    return false;
}

static int poll_lag(ssp_feed *f, ssp_error *err)
{
    uint32_t ready = 0;

    if (ssp_now_ms() < f->next_lag_ms)
        return 0;
    if (declare_queue(f, CH_DEPTH, f->settings.queue, true, &ready, err) != 0)
        return -1;
    pthread_mutex_lock(&f->mutex);
    f->shown.lag = ready;
    pthread_mutex_unlock(&f->mutex);
    f->next_lag_ms = ssp_now_ms() + LAG_POLL_MS;
    return 0;
}

/* A frame that is not a delivery: confirms, and the broker closing things. */
static int other_frame(ssp_feed *f, const amqp_frame_t *frame_in, ssp_error *err)
{
    const amqp_frame_t frame = *frame_in;

    if (frame.frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *m = frame.payload.method.decoded;

        return frame.channel == CH_DEAD ? on_confirm(f, m->delivery_tag, m->multiple, err) : 0;
    }
    case AMQP_BASIC_NACK_METHOD:
        return ssp_fail(err, SSP_ERR_IO, "the broker could not store a dead letter");
    case AMQP_BASIC_RETURN_METHOD: {
        /* The returned message's content follows; read it off the wire,
         * then reconnect: the original is redelivered and tried again. */
        amqp_message_t returned;

        if (reply_fail(amqp_read_message(f->conn, frame.channel, &returned, 0),
                       "read a returned dead letter", err) != 0)
            return -1;
        amqp_destroy_message(&returned);
        return ssp_fail(err, SSP_ERR_IO, "the dead-letter queue %s does not exist",
                        f->settings.dead_letter_queue);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        return ssp_fail(err, SSP_ERR_IO, "the broker cancelled the consumer (queue deleted?)");
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = frame.payload.method.decoded;

        return ssp_fail(err, SSP_ERR_IO, "the broker closed channel %u: %u %.*s", frame.channel,
                        m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = frame.payload.method.decoded;

        return ssp_fail(err, SSP_ERR_IO, "the broker closed the connection: %u %.*s",
                        m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    }
    default:
        return 0;
    }
}

/* ---- a delivery, read frame by frame ---- */

/* A delivery as read off the wire: its properties (copied into pool, so
 * that the connection's buffers can be released while the body comes in)
 * and its body, unless the body is over max_message_bytes. */
typedef struct delivery {
    uint64_t tag;
    bool redelivered;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    uint64_t body_size; /* as the content header announced it */
    bool too_large;     /* over max_message_bytes: body not kept */
    amqp_bytes_t body;  /* malloc'ed (empty when too_large) */
    uint64_t fingerprint;
} delivery;

static void delivery_free(delivery *d)
{
    free(d->body.bytes);
    d->body.bytes = NULL;
    empty_amqp_pool(&d->pool);
}

/* The next frame of the consuming channel; frames of the others (confirms,
 * the broker closing things) are handled as they come between. */
static int next_consume_frame(ssp_feed *f, amqp_frame_t *frame, ssp_error *err)
{
    for (;;) {
        if (status_fail(amqp_simple_wait_frame(f->conn, frame), "read", err) != 0)
            return -1;
        if (frame->channel == CH_CONSUME)
            return 0;
        if (other_frame(f, frame, err) != 0)
            return -1;
    }
}

/* Reads the content header and the body of the delivery whose basic.deliver
 * just came. A body over max_message_bytes is read off the wire and thrown
 * away frame by frame: its size is known from the header, before anything
 * is allocated for it. */
static int read_delivery(ssp_feed *f, const amqp_basic_deliver_t *deliver, delivery *d,
                         ssp_error *err)
{
    amqp_frame_t frame;
    uint64_t got = 0;

    d->tag = deliver->delivery_tag;
    d->redelivered = deliver->redelivered != 0;
    if (next_consume_frame(f, &frame, err) != 0)
        return -1;
    if (frame.frame_type != AMQP_FRAME_HEADER)
        return ssp_fail(err, SSP_ERR_IO, "read: expected a content header after basic.deliver");
    d->body_size = frame.payload.properties.body_size;
    if (ssp_amqp_props_copy(&d->pool, frame.payload.properties.decoded, &d->props) != 0)
        return ssp_fail_nomem(err);
    d->too_large = d->body_size > (uint64_t)f->settings.max_message_bytes;
    if (!d->too_large) {
        d->body.bytes = malloc(d->body_size > 0 ? (size_t)d->body_size : 1);
        if (d->body.bytes == NULL)
            return ssp_fail_nomem(err);
        d->body.len = (size_t)d->body_size;
    }
    amqp_maybe_release_buffers_on_channel(f->conn, CH_CONSUME);
    while (got < d->body_size) {
        if (next_consume_frame(f, &frame, err) != 0)
            return -1;
        if (frame.frame_type != AMQP_FRAME_BODY ||
            frame.payload.body_fragment.len > d->body_size - got)
            return ssp_fail(err, SSP_ERR_IO, "read: a body frame that does not fit the header");
        if (!d->too_large)
            memcpy((char *)d->body.bytes + got, frame.payload.body_fragment.bytes,
                   frame.payload.body_fragment.len);
        got += frame.payload.body_fragment.len;
        /* each frame's buffer goes back at once: a large body never sits
         * in the connection's pool */
        amqp_maybe_release_buffers_on_channel(f->conn, CH_CONSUME);
    }
    d->fingerprint = ssp_amqp_fingerprint(&d->props, d->body_size, d->body.bytes, d->body.len);
    return 0;
}

/* ---- dead letters ---- */

/* What a dead letter needs beyond the delivery. */
typedef struct dead_reason {
    const char *kind;    /* the kind header: invalid_json, invalid_input, too_large */
    const char *message; /* the error header */
} dead_reason;

/* What the properties of a content header may take: rabbitmq-c encodes
 * them into one frame of frame_max bytes, after the frame's header (7),
 * the class, weight and body size (12) and before the frame end (1). */
static size_t properties_budget(ssp_feed *f)
{
    int frame_max = amqp_get_frame_max(f->conn);

    return frame_max > 1024 ? (size_t)frame_max - 7 - 12 - 1 - 64 : 0;
}

static void set_text_entry(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
}

/* Publishes the rejected message to the dead-letter queue with the error
 * in its headers. As it came (properties and headers kept) when that fits
 * a frame; otherwise, or when a copy of it failed before, a trimmed copy:
 * the properties without the original headers, and the body unless it is
 * over max_message_bytes, with x-school-policy-dropped saying what was
 * left out. The original is acknowledged when the broker confirms
 * (on_confirm). A message whose trimmed copy failed too is rejected
 * without requeueing: no message comes back in a loop. */
static int dead_letter(ssp_feed *f, const delivery *d, const dead_reason *why, ssp_error *err)
{
    const ssp_feed_settings *c = &f->settings;
    const amqp_basic_properties_t *in = &d->props;
    amqp_basic_properties_t props = *in;
    amqp_table_entry_t *entries;
    size_t n_in = (in->_flags & AMQP_BASIC_HEADERS_FLAG) ? (size_t)in->headers.num_entries : 0;
    size_t n = 0, ours, headers_bytes = (in->_flags & AMQP_BASIC_HEADERS_FLAG)
                                            ? ssp_amqp_table_size(&in->headers)
                                            : 0;
    int level = ssp_poison_level(&f->poisoned, d->fingerprint);
    bool trimmed = d->too_large || level > 0;
    char dropped[160] = "";
    int status;

    if (level >= 2) {
        /* the trimmed copy failed too: give the message up, said once */
        if (status_fail(amqp_basic_reject(f->conn, CH_CONSUME, d->tag, 0), "basic.reject", err) !=
            0)
            return -1;
        ssp_poison_forget(&f->poisoned, d->fingerprint);
        pthread_mutex_lock(&f->mutex);
        f->shown.rejected++;
        {
            static const char NOTE[] =
                "rejected without a dead letter (the broker refused even a trimmed copy): ";
            size_t room = sizeof f->shown.last_dead_letter - sizeof NOTE;

            memcpy(f->shown.last_dead_letter, NOTE, sizeof NOTE - 1);
            memcpy(f->shown.last_dead_letter + sizeof NOTE - 1, why->message,
                   strnlen(why->message, room) + 1);
            f->shown.last_dead_letter[sizeof f->shown.last_dead_letter - 1] = '\0';
        }
        ssp_utf8_scrub(f->shown.last_dead_letter);
        pthread_mutex_unlock(&f->mutex);
        return 0;
    }
    entries = calloc(n_in + 5, sizeof *entries);
    if (entries == NULL)
        return ssp_fail_nomem(err);
    /* Borrowed from the delivery, which outlives the publish call. */
    for (size_t i = 0; i < n_in; i++) {
        const amqp_table_entry_t *e = &in->headers.entries[i];

        if (e->key.len > 16 && memcmp(e->key.bytes, "x-school-policy-", 16) == 0)
            continue; /* a re-published dead letter gets fresh headers */
        entries[n++] = *e;
    }
    ours = n;
    set_text_entry(&entries[n++], SSP_FEED_HEADER_ERROR, why->message);
    set_text_entry(&entries[n++], SSP_FEED_HEADER_KIND, why->kind);
    set_text_entry(&entries[n++], SSP_FEED_HEADER_QUEUE, c->queue);
    entries[n].key = amqp_cstring_bytes(SSP_FEED_HEADER_AT);
    entries[n].value.kind = AMQP_FIELD_KIND_I64;
    entries[n++].value.value.i64 = ssp_now_ms();
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.headers.num_entries = (int)n;
    props.headers.entries = entries;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    /* Never hand rabbitmq-c properties that do not fit: it would send the
     * publish method, fail on the header and leave the channel broken. */
    if (!trimmed && ssp_amqp_props_size(&props) > properties_budget(f))
        trimmed = true;
    if (trimmed) {
        int used = 0;

        if (n_in > 0)
            used = snprintf(dropped, sizeof dropped, "headers: %zu entries, %zu bytes", n_in,
                            headers_bytes);
        if (d->too_large)
            snprintf(dropped + used, sizeof dropped - (size_t)used, "%sbody: %llu bytes",
                     used > 0 ? "; " : "", (unsigned long long)d->body_size);
        /* our headers only, moved to the front */
        memmove(entries, entries + ours, (n - ours) * sizeof *entries);
        n -= ours;
        if (dropped[0] != '\0')
            set_text_entry(&entries[n++], SSP_FEED_HEADER_DROPPED, dropped);
        props.headers.num_entries = (int)n;
    }
    /* mandatory: should the queue be gone, the broker returns the message
     * (basic.return) instead of confirming a message it dropped. */
    status = amqp_basic_publish(f->conn, CH_DEAD, amqp_empty_bytes,
                                amqp_cstring_bytes(c->dead_letter_queue), 1, 0, &props,
                                d->too_large ? amqp_empty_bytes : d->body);
    free(entries);
    if (status != AMQP_STATUS_OK)
        ssp_poison_note(&f->poisoned, d->fingerprint); /* tried again trimmed on its redelivery */
    if (status_fail(status, "publish to the dead-letter queue", err) != 0)
        return -1;
    f->pending[f->n_pending].delivery_tag = d->tag;
    f->pending[f->n_pending].fingerprint = d->fingerprint;
    f->pending[f->n_pending++].seq = ++f->publish_seq;
    if (trimmed) {
        pthread_mutex_lock(&f->mutex);
        f->shown.trimmed++;
        pthread_mutex_unlock(&f->mutex);
    }
    publish_unacked(f);
    return 0;
}
/* Returns what a large message's parse took to the system: glibc keeps
 * freed memory in the thread's arena, so a 60 MiB message would leave the
 * process a gigabyte larger. On the feed's thread, never a decision's;
 * mallopt is left alone (it would change Synapse's allocator). */
static void give_memory_back(void)
{
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

/* One delivery, read. Returns 0, -1 on a broker failure, 1 when the store
 * failed (the message stays unacknowledged). */
static int handle(ssp_feed *f, delivery *d, ssp_error *err)
{
    ssp_error why = {SSP_OK, ""};
    size_t upserted = 0;
    ssp_feed_outcome outcome;
    dead_reason reason;

    if (f->n_pending >= f->cap_pending)
        return ssp_fail(err, SSP_ERR_STATE, "more unacknowledged deliveries than prefetch");
    if (d->too_large) {
        ssp_fail(&why, SSP_ERR_INPUT,
                 "body: %llu bytes, more than roster_feed.max_message_bytes (%lld); not read",
                 (unsigned long long)d->body_size, (long long)f->settings.max_message_bytes);
        outcome = SSP_FEED_REJECTED;
    } else {
        outcome = f->sink.apply(f->sink.ctx, d->body.bytes, d->body.len, &upserted, &why);
    }
    if (outcome == SSP_FEED_RETRY) {
        pthread_mutex_lock(&f->mutex);
        f->shown.retried++;
        pthread_mutex_unlock(&f->mutex);
        ssp_fail(err, why.code, "the store refused a roster change: %s", why.message);
        return 1;
    }
    if (outcome == SSP_FEED_REJECTED) {
        pthread_mutex_lock(&f->mutex);
        memcpy(f->shown.last_dead_letter, why.message, sizeof why.message);
        f->shown.last_dead_letter[sizeof f->shown.last_dead_letter - 1] = '\0';
        ssp_utf8_scrub(f->shown.last_dead_letter);
        pthread_mutex_unlock(&f->mutex);
        reason.kind = d->too_large ? SSP_FEED_KIND_TOO_LARGE : ssp_feed_error_kind(&why);
        reason.message = why.message;
        return dead_letter(f, d, &reason, err);
    }
    pthread_mutex_lock(&f->mutex);
    f->shown.applied++;
    f->shown.users += upserted;
    f->shown.last_applied_ms = ssp_now_ms();
    pthread_mutex_unlock(&f->mutex);
    if (f->sink.commits_later) {
        f->pending[f->n_pending].delivery_tag = d->tag;
        f->pending[f->n_pending].fingerprint = d->fingerprint;
        f->pending[f->n_pending++].seq = 0;
        publish_unacked(f);
        return 0;
    }
    return ack(f, d->tag, err);
}

/* A basic.deliver came: read the message, then handle it. */
static int receive(ssp_feed *f, const amqp_frame_t *frame, ssp_error *err)
{
    amqp_basic_deliver_t deliver = *(const amqp_basic_deliver_t *)frame->payload.method.decoded;
    delivery d;
    int rc;

    memset(&d, 0, sizeof d);
    init_amqp_pool(&d.pool, 4096);
    rc = read_delivery(f, &deliver, &d, err);
    if (rc == 0)
        rc = handle(f, &d, err);
    /* the body (a dead letter may have needed it) first, then what parsing
     * it left behind */
    delivery_free(&d);
    if (!d.too_large && d.body_size >= SSP_FEED_TRIM_BYTES)
        give_memory_back();
    return rc;
}

/* Consumes until stopped (0), a broker failure (-1) or a store failure (1).
 * Frames are read one by one (not with amqp_consume_message, which would
 * allocate a message's whole body before its size could be checked). */
static int consume(ssp_feed *f, ssp_error *err)
{
    while (!stopping(f)) {
        amqp_frame_t frame;
        struct timeval tv = {0, 0};
        int status, rc;

        if (f->sink.commits_later && ack_committed(f, err) != 0)
            return -1;
        if (poll_lag(f, err) != 0)
            return -1;
        amqp_maybe_release_buffers(f->conn);
        tv.tv_usec = awaiting_commit(f) ? 20000 : 250000;
        status = amqp_simple_wait_frame_noblock(f->conn, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT)
            continue;
        if (status_fail(status, "consume", err) != 0)
            return -1;
        if (frame.frame_type == AMQP_FRAME_METHOD && frame.channel == CH_CONSUME &&
            frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD)
            rc = receive(f, &frame, err);
        else
            rc = other_frame(f, &frame, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void *feed_main(void *arg)
{
    ssp_feed *f = arg;
    int64_t broker_backoff = 1000, store_backoff = 1000;
    const int64_t max_ms = f->settings.retry_max_seconds * 1000;

    while (!stopping(f)) {
        ssp_error err = {SSP_OK, ""};
        int rc;

        set_state(f, FEED_CONNECTING);
        rc = feed_connect(f, &err);
        if (rc == 0) {
            broker_backoff = 1000;
            rc = consume(f, &err);
        }
        disconnect(f, rc != 0);
        if (rc == 0)
            break;
        set_error(f, err.message);
        if (rc > 0) {
            set_state(f, FEED_STORE_PAUSED);
            if (sleep_unless_stopped(f, store_backoff))
                break;
            store_backoff = store_backoff * 2 > max_ms ? max_ms : store_backoff * 2;
        } else {
            set_state(f, FEED_DISCONNECTED);
            if (sleep_unless_stopped(f, broker_backoff))
                break;
            broker_backoff = broker_backoff * 2 > max_ms ? max_ms : broker_backoff * 2;
        }
        pthread_mutex_lock(&f->mutex);
        /* A store that has taken a change since is healthy again. */
        if (f->shown.last_applied_ms > f->shown.last_error_ms)
            store_backoff = 1000;
        pthread_mutex_unlock(&f->mutex);
    }
    set_state(f, FEED_STOPPED);
    return NULL;
}

/* ---- lifecycle ---- */

static void feed_free(ssp_feed *f)
{
    if (f == NULL)
        return;
    if (f->sync_ready) {
        pthread_cond_destroy(&f->wake);
        pthread_mutex_destroy(&f->mutex);
    }
    free(f->pending);
    free(f->url);
    free(f);
}

void ssp_feed_stop(ssp_feed *f)
{
    if (f == NULL)
        return;
    if (f->thread_started) {
        pthread_mutex_lock(&f->mutex);
        f->stopping = true;
        pthread_cond_broadcast(&f->wake);
        pthread_mutex_unlock(&f->mutex);
        pthread_join(f->thread, NULL);
    }
    feed_free(f);
}

int ssp_feed_start(char *url, const ssp_feed_settings *settings, const ssp_feed_sink *sink,
                   ssp_feed **out, ssp_error *err)
{
    ssp_feed *f = calloc(1, sizeof *f);
    sigset_t all, old;
    int rc;

    *out = NULL;
    if (f == NULL) {
        free(url);
        return ssp_fail_nomem(err);
    }
    f->url = url;
    f->settings = *settings;
    f->sink = *sink;
    f->shown.lag = -1;
    f->cap_pending = (size_t)settings->prefetch;
    f->pending = calloc(f->cap_pending, sizeof *f->pending);
    if (f->pending == NULL) {
        ssp_fail_nomem(err);
        goto fail;
    }
    if (pthread_mutex_init(&f->mutex, NULL) != 0) {
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster feed's mutex");
        goto fail;
    }
    if (pthread_cond_init(&f->wake, NULL) != 0) {
        pthread_mutex_destroy(&f->mutex);
        ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster feed's condition");
        goto fail;
    }
    f->sync_ready = true;
    /* The caller checked the URL (ssp_feed_check_url), so this parse succeeds. */
    if (amqp_parse_url(f->url, &f->info) != AMQP_STATUS_OK) {
        ssp_fail(err, SSP_ERR_INPUT, "roster_feed: the broker URL does not parse");
        goto fail;
    }
    snprintf(f->shown.broker, sizeof f->shown.broker, "%s:%d%s%s", f->info.host, f->info.port,
             f->info.vhost[0] == '/' ? "" : "/", f->info.vhost);
    /* The thread takes no signal: Python's handlers run on the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&f->thread, NULL, feed_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ssp_fail(err, SSP_ERR_NOMEM, "cannot start the roster feed's thread: %s", strerror(rc));
        goto fail;
    }
    f->thread_started = true;
    *out = f;
    return 0;
fail:
    feed_free(f);
    return -1;
}

void ssp_feed_read_state(ssp_feed *f, ssp_feed_state *out)
{
    pthread_mutex_lock(&f->mutex);
    *out = f->shown;
    out->state = STATE_NAMES[f->state];
    out->consuming = f->state == FEED_CONSUMING;
    pthread_mutex_unlock(&f->mutex);
}
