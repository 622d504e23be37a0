/*
 * The roster feed inside the engine: which broker URL the config names,
 * the consumer (roster_feed.c) started with the roster API as the place its
 * messages go, and the feed's status. A message is a POST /roster body and
 * goes through ssp_roster_upsert_batch: one parser, one validator, the same
 * durability as the admin API.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_state.h"
#include "files.h"
#include "roster.h"
#include "roster_feed.h"
#include "roster_feed_api.h"
#include "store.h"
#include "util.h"

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
    /* The consumer refuses these before reading them; here for any caller. */
    if ((int64_t)len > engine->config.feed_max_message_bytes) {
        ssp_fail(err, SSP_ERR_INPUT,
                 "body: %zu bytes, more than roster_feed.max_message_bytes (%lld)", len,
                 (long long)engine->config.feed_max_message_bytes);
        return SSP_FEED_REJECTED;
    }
    /* jansson would say "line -1, column -1" */
    if (len == 0) {
        ssp_fail(err, SSP_ERR_SYNTAX,
                 "body: the message is empty; expected a POST /roster body (a JSON object "
                 "with a users list)");
        return SSP_FEED_REJECTED;
    }
    if (ssp_roster_upsert_batch(engine, body, len, upserted, err) == 0)
        return SSP_FEED_APPLIED;
    /* Only the message's own fault dead-letters it; memory, disk and an
     * engine that is not open are the store's, and the message waits. */
    return err->code == SSP_ERR_INPUT || err->code == SSP_ERR_SYNTAX ? SSP_FEED_REJECTED
                                                                      : SSP_FEED_RETRY;
}

/* The sink's apply: the roster API. */
static ssp_feed_outcome apply_message(void *ctx, const char *body, size_t len, size_t *upserted,
                                      ssp_error *err)
{
    return ssp_feed_apply(ctx, body, len, upserted, err);
}

/* The sink's committed: nothing waits in the store's outbox, so every
 * change applied before this call is in the database. */
static bool outbox_empty(void *ctx)
{
    ssp_engine *engine = ctx;
    ssp_store_status status;

    memset(&status, 0, sizeof status);
    ssp_store_read_status(engine->store, &status);
    return status.roster_outbox_pending == 0;
}

int ssp_roster_feed_start(ssp_engine *engine, ssp_error *err)
{
    const ssp_config *c = &engine->config;
    ssp_feed_settings settings;
    ssp_feed_sink sink;
    ssp_feed *feed;
    char *url = NULL;

    if (!c->feed_enabled)
        return ssp_fail(err, SSP_ERR_STATE, "roster_feed: not configured");
    if (!engine->roster_ready)
        return ssp_fail(err, SSP_ERR_STATE, "the store is not open");
    if (__atomic_load_n(&engine->feed, __ATOMIC_ACQUIRE) != NULL)
        return ssp_fail(err, SSP_ERR_STATE, "roster_feed: already started");
    if (ssp_feed_resolve_url(c, &url, err) != 0)
        return -1;
    settings = (ssp_feed_settings){c->feed_queue, c->feed_dead_letter_queue, c->feed_prefetch,
                                   c->feed_retry_max_seconds, c->feed_max_message_bytes,
                                   c->feed_declare};
    sink = (ssp_feed_sink){engine, apply_message, ssp_store_commits_roster_later(engine->store),
                           outbox_empty};
    if (ssp_feed_start(url, &settings, &sink, &feed, err) != 0)
        return -1;
    __atomic_store_n(&engine->feed, feed, __ATOMIC_RELEASE);
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
        ssp_feed_state st;
        const char *state;

        /* PostgreSQL away: changes wait in the outbox, unacknowledged, and
         * the broker stops delivering at prefetch; say so. Read before
         * taking the feed's lock: the store has locks of its own. */
        memset(&store, 0, sizeof store);
        ssp_store_read_status(engine->store, &store);
        ssp_feed_read_state(f, &st);
        state = st.state;
        if (st.consuming && ssp_store_commits_roster_later(engine->store) && !store.connected)
            state = SSP_FEED_STORE_UNAVAILABLE;
        root = json_pack(
            "{s:b, s:b, s:s, s:b, s:s, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I},"
            " s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
            "enabled", 1, "running", 1, "state", state, "connected", st.consuming, "broker",
            st.broker, "queue", c->feed_queue, "dead_letter_queue", c->feed_dead_letter_queue,
            "lag", st.lag < 0 ? json_null() : json_integer(st.lag), "messages", "applied",
            (json_int_t)st.applied, "dead_lettered", (json_int_t)st.dead_lettered, "retried",
            (json_int_t)st.retried, "trimmed", (json_int_t)st.trimmed, "rejected",
            (json_int_t)st.rejected, "unacked", (json_int_t)st.unacked, "users_upserted",
            (json_int_t)st.users, "connects", (json_int_t)st.connects, "connected_since_ms",
            st.connected_ms ? json_integer(st.connected_ms) : json_null(), "last_applied_ms",
            st.last_applied_ms ? json_integer(st.last_applied_ms) : json_null(), "last_error",
            st.last_error[0] ? json_string(st.last_error) : json_null(), "last_error_ms",
            st.last_error_ms ? json_integer(st.last_error_ms) : json_null(), "last_dead_letter",
            st.last_dead_letter[0] ? json_string(st.last_dead_letter) : json_null());
    }
    rc = ssp_json_dump_to(root, status_json, err);
    json_decref(root);
    return rc;
}
