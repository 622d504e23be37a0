/*
 * The roster feed's consumer thread (see roster_feed.h for the contract).
 *
 * One thread per engine, started by ssp_roster_feed_start on the process
 * that runs Synapse's background tasks. It never touches Python: the
 * adapter reads its state with ssp_roster_feed_status and logs changes.
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
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "files.h"
#include "roster_feed.h"
#include "store.h"

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
                                          "store_unavailable"};

/* A delivery waiting for something before it may be acknowledged: the
 * broker's confirm of its dead letter (seq > 0) or PostgreSQL (seq == 0). */
typedef struct pending_ack {
    uint64_t delivery_tag;
    uint64_t seq;
} pending_ack;

struct ssp_feed {
    ssp_engine *engine; /* borrowed: the engine stops the feed before it closes the store */
    char *url;          /* owned; amqp_parse_url cuts it into info's strings */
    struct amqp_connection_info info;
    char broker[320]; /* host:port/vhost: no credentials, for status and logs */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex; /* guards everything below up to the thread's own fields */
    pthread_cond_t wake;
    bool stopping;
    feed_state state;
    uint64_t applied, dead_lettered, retried, users, connects;
    int64_t lag; /* messages ready in the queue; -1 unknown */
    uint64_t unacked; /* delivered, not yet acknowledged: mirrors n_pending */
    int64_t last_applied_ms, last_error_ms;
    int64_t connected_ms; /* when the current (or last) connection started consuming */
    char last_error[SSP_ERROR_MESSAGE_MAX];       /* broker or store */
    char last_dead_letter[SSP_ERROR_MESSAGE_MAX]; /* why the last bad message was rejected */
    /* the thread's own, per connection */
    amqp_connection_state_t conn;
    uint64_t publish_seq;
    pending_ack *pending; /* capacity: prefetch (the broker delivers no more unacknowledged) */
    size_t n_pending, cap_pending;
    int64_t next_lag_ms;
};

/* ---- checks that need no broker ---- */

int ssp_feed_check_url(const char *path, const char *url, ssp_error *err)
{
    struct amqp_connection_info info;
    char *copy = ssp_strdup(url);
    int status;

    if (copy == NULL)
        return ssp_fail_nomem(err);
    status = amqp_parse_url(copy, &info);
    if (status != AMQP_STATUS_OK) {
        free(copy);
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: expected an amqp://user:password@host:port/vhost URL (the value is "
                        "not repeated here: it may hold a password)",
                        path);
    }
    if (info.ssl) {
        free(copy);
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: amqps:// (TLS) is not supported; use amqp:// on a trusted network "
                        "or a local TLS tunnel (docs/roster-feed.md)",
                        path);
    }
    free(copy);
    return 0;
}

static char *trimmed_copy(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return ssp_strndup(s, len);
}

int ssp_feed_resolve_url(const ssp_config *config, char **url, ssp_error *err)
{
    char path[128];
    char *data = NULL;
    size_t len = 0;

    *url = NULL;
    if (!config->feed_enabled)
        return ssp_fail(err, SSP_ERR_STATE, "roster_feed: not configured");
    if (config->feed_url != NULL) {
        snprintf(path, sizeof path, "roster_feed.url");
        *url = ssp_strdup(config->feed_url);
    } else if (config->feed_url_file != NULL) {
        snprintf(path, sizeof path, "roster_feed.url_file");
        if (access(config->feed_url_file, R_OK) != 0)
            return ssp_fail(err, SSP_ERR_INPUT, "roster_feed.url_file: cannot read %s: %s",
                            config->feed_url_file, strerror(errno));
        if (ssp_read_file(config->feed_url_file, &data, &len, err) != 0) {
            char why[SSP_ERROR_MESSAGE_MAX];

            snprintf(why, sizeof why, "%s", err->message);
            return ssp_fail(err, err->code, "roster_feed.url_file: %s", why);
        }
        *url = trimmed_copy(data, len);
        free(data);
    } else {
        const char *value = getenv(config->feed_url_env);

        snprintf(path, sizeof path, "roster_feed.url_env");
        if (value == NULL || value[0] == '\0')
            return ssp_fail(err, SSP_ERR_INPUT,
                            "roster_feed.url_env: the environment variable %s is not set or "
                            "empty",
                            config->feed_url_env);
        *url = trimmed_copy(value, strlen(value));
    }
    if (*url == NULL)
        return ssp_fail_nomem(err);
    if ((*url)[0] == '\0' || ssp_feed_check_url(path, *url, err) != 0) {
        if ((*url)[0] == '\0')
            ssp_fail(err, SSP_ERR_INPUT, "%s: the URL is empty", path);
        free(*url);
        *url = NULL;
        return -1;
    }
    return 0;
}

ssp_feed_outcome ssp_feed_apply(ssp_engine *engine, const char *body, size_t len,
                                size_t *upserted, ssp_error *err)
{
    *upserted = 0;
    if (len > SSP_FEED_MAX_BODY) {
        ssp_fail(err, SSP_ERR_INPUT, "body: %zu bytes, more than the %u a message may hold", len,
                 SSP_FEED_MAX_BODY);
        return SSP_FEED_REJECTED;
    }
    if (ssp_roster_upsert_batch(engine, body, len, upserted, err) == 0)
        return SSP_FEED_APPLIED;
    /* Only the message's own fault dead-letters it; memory, disk and an
     * engine that is not open are the store's, and the message waits. */
    return err->code == SSP_ERR_INPUT || err->code == SSP_ERR_SYNTAX ? SSP_FEED_REJECTED
                                                                      : SSP_FEED_RETRY;
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
        f->lag = -1;
    pthread_mutex_unlock(&f->mutex);
}

static void set_error(ssp_feed *f, const char *message)
{
    pthread_mutex_lock(&f->mutex);
    snprintf(f->last_error, sizeof f->last_error, "%s", message);
    ssp_utf8_scrub(f->last_error);
    f->last_error_ms = ssp_now_ms();
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

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
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
    f->unacked = f->n_pending;
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

static void disconnect(ssp_feed *f)
{
    if (f->conn == NULL)
        return;
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
    const ssp_config *c = &f->engine->config;
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
    if (c->feed_declare &&
        (declare_queue(f, CH_CONSUME, c->feed_queue, false, &ready, err) != 0 ||
         declare_queue(f, CH_DEAD, c->feed_dead_letter_queue, false, NULL, err) != 0))
        return -1;
    /* Without declaring, both queues must exist: a dead letter published to
     * a missing queue would be dropped by the broker. */
    if (!c->feed_declare &&
        (declare_queue(f, CH_DEPTH, c->feed_queue, true, &ready, err) != 0 ||
         declare_queue(f, CH_DEAD, c->feed_dead_letter_queue, true, NULL, err) != 0))
        return -1;
    amqp_basic_qos(f->conn, CH_CONSUME, 0, (uint16_t)c->feed_prefetch, 0);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "basic.qos", err) != 0)
        return -1;
    amqp_confirm_select(f->conn, CH_DEAD);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "confirm.select", err) != 0)
        return -1;
    amqp_basic_consume(f->conn, CH_CONSUME, amqp_cstring_bytes(c->feed_queue), amqp_empty_bytes,
                       0, 0, 0, amqp_empty_table);
    if (reply_fail(amqp_get_rpc_reply(f->conn), "basic.consume", err) != 0)
        return -1;
    pthread_mutex_lock(&f->mutex);
    f->connects++;
    f->connected_ms = ssp_now_ms();
    f->state = FEED_CONSUMING;
    f->lag = ready;
    pthread_mutex_unlock(&f->mutex);
    f->next_lag_ms = ssp_now_ms() + LAG_POLL_MS;
    return 0;
}

static int ack(ssp_feed *f, uint64_t delivery_tag, ssp_error *err)
{
    return status_fail(amqp_basic_ack(f->conn, CH_CONSUME, delivery_tag, 0), "basic.ack", err);
}

/* Publishes the rejected message to the dead-letter queue with the error
 * in its headers, keeping the original's properties and headers. The
 * original is acknowledged when the broker confirms (on_confirm). */
static int dead_letter(ssp_feed *f, const amqp_envelope_t *env, const ssp_error *why,
                       ssp_error *err)
{
    const ssp_config *c = &f->engine->config;
    const amqp_basic_properties_t *in = &env->message.properties;
    amqp_basic_properties_t props = *in;
    amqp_table_entry_t *entries;
    size_t n_in = (in->_flags & AMQP_BASIC_HEADERS_FLAG) ? (size_t)in->headers.num_entries : 0;
    size_t n = 0;
    int status;

    entries = calloc(n_in + 4, sizeof *entries);
    if (entries == NULL)
        return ssp_fail_nomem(err);
    /* Borrowed from the envelope, which outlives the publish call. */
    for (size_t i = 0; i < n_in; i++) {
        const amqp_table_entry_t *e = &in->headers.entries[i];

        if (e->key.len > 16 && memcmp(e->key.bytes, "x-school-policy-", 16) == 0)
            continue; /* a re-published dead letter gets fresh headers */
        entries[n++] = *e;
    }
    entries[n].key = amqp_cstring_bytes(SSP_FEED_HEADER_ERROR);
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = amqp_cstring_bytes(why->message);
    entries[n].key = amqp_cstring_bytes(SSP_FEED_HEADER_KIND);
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = amqp_cstring_bytes(ssp_feed_error_kind(why));
    entries[n].key = amqp_cstring_bytes(SSP_FEED_HEADER_QUEUE);
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = amqp_cstring_bytes(c->feed_queue);
    entries[n].key = amqp_cstring_bytes(SSP_FEED_HEADER_AT);
    entries[n].value.kind = AMQP_FIELD_KIND_I64;
    entries[n++].value.value.i64 = ssp_now_ms();
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.headers.num_entries = (int)n;
    props.headers.entries = entries;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    /* mandatory: should the queue be gone, the broker returns the message
     * (basic.return) instead of confirming a message it dropped. */
    status = amqp_basic_publish(f->conn, CH_DEAD, amqp_empty_bytes,
                                amqp_cstring_bytes(c->feed_dead_letter_queue), 1, 0, &props,
                                env->message.body);
    free(entries);
    if (status_fail(status, "publish to the dead-letter queue", err) != 0)
        return -1;
    f->pending[f->n_pending].delivery_tag = env->delivery_tag;
    f->pending[f->n_pending++].seq = ++f->publish_seq;
    publish_unacked(f);
    return 0;
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
            done++;
        } else {
            f->pending[kept++] = p;
        }
    }
    f->n_pending = kept;
    pthread_mutex_lock(&f->mutex);
    f->dead_lettered += done;
    f->unacked = f->n_pending;
    pthread_mutex_unlock(&f->mutex);
    return 0;
}

/* PostgreSQL: acknowledges the applied deliveries once the outbox that
 * holds them has been committed (nothing pending means everything appended
 * before this call, by this thread included, is in the database). */
static int ack_committed(ssp_feed *f, ssp_error *err)
{
    ssp_store_status st;
    size_t kept = 0;
    bool any = false;

    for (size_t i = 0; i < f->n_pending && !any; i++)
        any = f->pending[i].seq == 0;
    if (!any)
        return 0;
    ssp_store_get_status(f->engine, &st);
    if (st.roster_outbox_pending != 0)
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

/* One delivery. Returns 0, -1 on a broker failure, 1 when the store failed
 * (the message stays unacknowledged). */
static int handle(ssp_feed *f, const amqp_envelope_t *env, ssp_error *err)
{
    ssp_error why = {SSP_OK, ""};
    size_t upserted = 0;
    ssp_feed_outcome outcome;

    if (f->n_pending >= f->cap_pending)
        return ssp_fail(err, SSP_ERR_STATE, "more unacknowledged deliveries than prefetch");
    outcome = ssp_feed_apply(f->engine, env->message.body.bytes, env->message.body.len, &upserted,
                             &why);
    if (outcome == SSP_FEED_RETRY) {
        pthread_mutex_lock(&f->mutex);
        f->retried++;
        pthread_mutex_unlock(&f->mutex);
        ssp_fail(err, why.code, "the store refused a roster change: %s", why.message);
        return 1;
    }
    if (outcome == SSP_FEED_REJECTED) {
        pthread_mutex_lock(&f->mutex);
        memcpy(f->last_dead_letter, why.message, sizeof why.message);
        f->last_dead_letter[sizeof f->last_dead_letter - 1] = '\0';
        ssp_utf8_scrub(f->last_dead_letter);
        pthread_mutex_unlock(&f->mutex);
        return dead_letter(f, env, &why, err);
    }
    pthread_mutex_lock(&f->mutex);
    f->applied++;
    f->users += upserted;
    f->last_applied_ms = ssp_now_ms();
    pthread_mutex_unlock(&f->mutex);
    if (ssp_store_commits_roster_later(f->engine->store)) {
        f->pending[f->n_pending].delivery_tag = env->delivery_tag;
        f->pending[f->n_pending++].seq = 0;
        publish_unacked(f);
        return 0;
    }
    return ack(f, env->delivery_tag, err);
}

static int poll_lag(ssp_feed *f, ssp_error *err)
{
    uint32_t ready = 0;

    if (ssp_now_ms() < f->next_lag_ms)
        return 0;
    if (declare_queue(f, CH_DEPTH, f->engine->config.feed_queue, true, &ready, err) != 0)
        return -1;
    pthread_mutex_lock(&f->mutex);
    f->lag = ready;
    pthread_mutex_unlock(&f->mutex);
    f->next_lag_ms = ssp_now_ms() + LAG_POLL_MS;
    return 0;
}

/* A frame that is not a delivery: confirms, and the broker closing things. */
static int other_frame(ssp_feed *f, ssp_error *err)
{
    amqp_frame_t frame;

    if (status_fail(amqp_simple_wait_frame(f->conn, &frame), "read", err) != 0)
        return -1;
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
                        f->engine->config.feed_dead_letter_queue);
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

/* Consumes until stopped (0), a broker failure (-1) or a store failure (1). */
static int consume(ssp_feed *f, ssp_error *err)
{
    while (!stopping(f)) {
        amqp_envelope_t env;
        amqp_rpc_reply_t reply;
        struct timeval tv = {0, 0};
        int rc;

        if (ssp_store_commits_roster_later(f->engine->store) && ack_committed(f, err) != 0)
            return -1;
        if (poll_lag(f, err) != 0)
            return -1;
        amqp_maybe_release_buffers(f->conn);
        if (awaiting_commit(f))
            tv.tv_usec = 20000;
        else
            tv.tv_usec = 250000;
        reply = amqp_consume_message(f->conn, &env, &tv, 0);
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (other_frame(f, err) != 0)
                return -1;
            continue;
        }
        if (reply_fail(reply, "consume", err) != 0)
            return -1;
        rc = handle(f, &env, err);
        amqp_destroy_envelope(&env);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void *feed_main(void *arg)
{
    ssp_feed *f = arg;
    int64_t broker_backoff = 1000, store_backoff = 1000;
    const int64_t max_ms = f->engine->config.feed_retry_max_seconds * 1000;

    while (!stopping(f)) {
        ssp_error err = {SSP_OK, ""};
        int rc;

        set_state(f, FEED_CONNECTING);
        rc = feed_connect(f, &err);
        if (rc == 0) {
            broker_backoff = 1000;
            rc = consume(f, &err);
        }
        disconnect(f);
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
        if (f->last_applied_ms > f->last_error_ms)
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
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->mutex);
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

int ssp_roster_feed_start(ssp_engine *engine, ssp_error *err)
{
    ssp_feed *f;
    sigset_t all, old;
    int rc;

    if (!engine->config.feed_enabled)
        return ssp_fail(err, SSP_ERR_STATE, "roster_feed: not configured");
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    if (__atomic_load_n(&engine->feed, __ATOMIC_ACQUIRE) != NULL)
        return ssp_fail(err, SSP_ERR_STATE, "roster_feed: already started");
    f = calloc(1, sizeof *f);
    if (f == NULL)
        return ssp_fail_nomem(err);
    f->engine = engine;
    f->lag = -1;
    f->cap_pending = (size_t)engine->config.feed_prefetch;
    f->pending = calloc(f->cap_pending, sizeof *f->pending);
    if (f->pending == NULL) {
        free(f);
        return ssp_fail_nomem(err);
    }
    if (pthread_mutex_init(&f->mutex, NULL) != 0) {
        free(f->pending);
        free(f);
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster feed's mutex");
    }
    if (pthread_cond_init(&f->wake, NULL) != 0) {
        pthread_mutex_destroy(&f->mutex);
        free(f->pending);
        free(f);
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot create the roster feed's condition");
    }
    if (ssp_feed_resolve_url(&engine->config, &f->url, err) != 0) {
        feed_free(f);
        return -1;
    }
    /* The URL was checked by ssp_feed_resolve_url, so this parse succeeds. */
    if (amqp_parse_url(f->url, &f->info) != AMQP_STATUS_OK) {
        feed_free(f);
        return ssp_fail(err, SSP_ERR_INPUT, "roster_feed: the broker URL does not parse");
    }
    snprintf(f->broker, sizeof f->broker, "%s:%d%s%s", f->info.host, f->info.port,
             f->info.vhost[0] == '/' ? "" : "/", f->info.vhost);
    /* The thread takes no signal: Python's handlers run on the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&f->thread, NULL, feed_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        feed_free(f);
        return ssp_fail(err, SSP_ERR_NOMEM, "cannot start the roster feed's thread: %s",
                        strerror(rc));
    }
    f->thread_started = true;
    __atomic_store_n(&engine->feed, f, __ATOMIC_RELEASE);
    return 0;
}

int ssp_roster_feed_status(ssp_engine *engine, char **status_json, ssp_error *err)
{
    const ssp_config *c = &engine->config;
    ssp_feed *f = __atomic_load_n(&engine->feed, __ATOMIC_ACQUIRE);
    json_t *root;
    int rc;

    *status_json = NULL;
    if (!c->feed_enabled) {
        *status_json = ssp_strdup("null");
        return *status_json != NULL ? 0 : ssp_fail_nomem(err);
    }
    if (f == NULL) {
        root = json_pack("{s:b, s:b, s:s, s:s, s:s}", "enabled", 1, "running", 0, "state",
                         "not_running_here", "queue", c->feed_queue, "dead_letter_queue",
                         c->feed_dead_letter_queue);
    } else {
        ssp_store_status store;
        const char *state;

        /* PostgreSQL away: changes wait in the outbox, unacknowledged, and
         * the broker stops delivering at prefetch; say so. Read before
         * taking the feed's mutex: the store has locks of its own. */
        ssp_store_get_status(engine, &store);
        pthread_mutex_lock(&f->mutex);
        state = STATE_NAMES[f->state];
        if (f->state == FEED_CONSUMING && ssp_store_commits_roster_later(engine->store) && !store.connected)
            state = STATE_NAMES[FEED_STORE_PAUSED];
        root = json_pack(
            "{s:b, s:b, s:s, s:b, s:s, s:s, s:s, s:o, s:{s:I, s:I, s:I},"
            " s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
            "enabled", 1, "running", 1, "state", state, "connected",
            f->state == FEED_CONSUMING, "broker", f->broker, "queue", c->feed_queue,
            "dead_letter_queue", c->feed_dead_letter_queue, "lag",
            f->lag < 0 ? json_null() : json_integer(f->lag), "messages", "applied",
            (json_int_t)f->applied, "dead_lettered", (json_int_t)f->dead_lettered, "retried",
            (json_int_t)f->retried, "unacked", (json_int_t)f->unacked, "users_upserted",
            (json_int_t)f->users, "connects",
            (json_int_t)f->connects, "connected_since_ms",
            f->connected_ms ? json_integer(f->connected_ms) : json_null(), "last_applied_ms",
            f->last_applied_ms ? json_integer(f->last_applied_ms) : json_null(), "last_error",
            f->last_error[0] ? json_string(f->last_error) : json_null(), "last_error_ms",
            f->last_error_ms ? json_integer(f->last_error_ms) : json_null(), "last_dead_letter",
            f->last_dead_letter[0] ? json_string(f->last_dead_letter) : json_null());
        pthread_mutex_unlock(&f->mutex);
    }
    rc = ssp_json_dump_to(root, status_json, err);
    json_decref(root);
    return rc;
}
