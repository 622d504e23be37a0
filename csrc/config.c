/*
 * Module configuration: parsed from the JSON that the adapter makes of the
 * `config:` mapping in homeserver.yaml. Every error names the key's full
 * path, because the operator reads it in Synapse's start-up failure.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ids.h"
#include "roster_feed.h"
#include "util.h"

#define PATH_MAX_LEN 384

typedef int (*key_handler)(ssp_config *config, json_t *value, const char *path, ssp_error *err);

typedef struct key_spec {
    const char *name;
    key_handler handle;
} key_spec;

static int expect_bool(json_t *value, const char *path, bool *out, ssp_error *err)
{
    if (!json_is_boolean(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a boolean", path);
    *out = json_is_true(value);
    return 0;
}

static int expect_int(json_t *value, const char *path, int64_t min, int64_t max, int64_t *out,
                      ssp_error *err)
{
    json_int_t v;

    if (!json_is_integer(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an integer", path);
    v = json_integer_value(value);
    if (v < min || v > max)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected an integer from %lld to %lld", path,
                        (long long)min, (long long)max);
    *out = (int64_t)v;
    return 0;
}

/* Copies a non-empty string; `null_ok` lets JSON null mean "unset". */
static int expect_string(json_t *value, const char *path, bool null_ok, char **out,
                         ssp_error *err)
{
    char *copy;

    if (null_ok && json_is_null(value)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(value) || json_string_length(value) == 0)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a non-empty string%s", path,
                        null_ok ? " or null" : "");
    if (strlen(json_string_value(value)) != json_string_length(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: must not contain NUL characters", path);
    copy = ssp_strdup(json_string_value(value));
    if (copy == NULL)
        return ssp_fail_nomem(err);
    free(*out);
    *out = copy;
    return 0;
}

static void free_string_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static int expect_string_list(json_t *value, const char *path, bool (*valid)(const char *),
                              const char *what, char ***out, size_t *n_out, ssp_error *err)
{
    size_t n, i;
    char **items;
    char item_path[PATH_MAX_LEN];

    if (!json_is_array(value))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a list of %s", path, what);
    n = json_array_size(value);
    items = calloc(n ? n : 1, sizeof *items);
    if (items == NULL)
        return ssp_fail_nomem(err);
    for (i = 0; i < n; i++) {
        json_t *item = json_array_get(value, i);

        snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
        if (expect_string(item, item_path, false, &items[i], err) != 0)
            goto fail;
        if (valid != NULL && !valid(items[i])) {
            ssp_fail(err, SSP_ERR_INPUT, "%s: expected %s, got \"%s\"", item_path, what, items[i]);
            goto fail;
        }
    }
    free_string_list(*out, *n_out);
    *out = items;
    *n_out = n;
    return 0;
fail:
    free_string_list(items, n);
    return -1;
}

static int expect_choice(json_t *value, const char *path, const char *const *choices,
                         const char *choice_list, int *out, ssp_error *err)
{
    if (json_is_string(value)) {
        for (int i = 0; choices[i] != NULL; i++) {
            if (strcmp(json_string_value(value), choices[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    return ssp_fail(err, SSP_ERR_INPUT, "%s: expected one of %s", path, choice_list);
}

/* Walks an object, dispatching each key to its handler; unknown keys fail. */
static int parse_object(ssp_config *config, json_t *object, const char *path,
                        const key_spec *specs, ssp_error *err)
{
    const char *key;
    json_t *value;
    char key_path[PATH_MAX_LEN];

    if (!json_is_object(object))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a mapping", path[0] ? path : "config");
    json_object_foreach(object, key, value) {
        const key_spec *spec = specs;

        while (spec->name != NULL && strcmp(spec->name, key) != 0)
            spec++;
        if (path[0] == '\0')
            snprintf(key_path, sizeof key_path, "%s", key);
        else
            snprintf(key_path, sizeof key_path, "%s.%s", path, key);
        if (spec->name == NULL)
            return ssp_fail(err, SSP_ERR_INPUT, "%s: unknown key", key_path);
        if (spec->handle(config, value, key_path, err) != 0)
            return -1;
    }
    return 0;
}

static bool looks_like_user_id(const char *s)
{
    return ssp_user_id_valid(s);
}

static int on_service_users(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string_list(v, path, looks_like_user_id, "Matrix user ids (@user:server)",
                              &c->service_users, &c->n_service_users, err);
}

static int on_database(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string(v, path, true, &c->database, err);
}

static int on_data_dir(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string(v, path, true, &c->data_dir, err);
}

static int on_policy_event_type(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    if (expect_string(v, path, false, &c->policy_event_type, err) != 0)
        return -1;
    if (strncmp(c->policy_event_type, "m.", 2) == 0)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: the m. namespace is reserved by the Matrix spec; use a namespaced "
                        "type such as " SSP_DEFAULT_POLICY_EVENT_TYPE,
                        path);
    return 0;
}

static int on_moderator_level(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    /* Power levels are canonical-JSON integers: -(2^53)+1 .. (2^53)-1. */
    return expect_int(v, path, -9007199254740991LL, 9007199254740991LL, &c->moderator_level, err);
}

static int on_one_way_allowed_events(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    /* Each one is listed in the power levels of every one-way room. */
    if (json_is_array(v) && json_array_size(v) > SSP_MAX_ONE_WAY_ALLOWED_EVENTS)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: at most %d event types", path,
                        SSP_MAX_ONE_WAY_ALLOWED_EVENTS);
    return expect_string_list(v, path, NULL, "event types", &c->one_way_allowed_events,
                              &c->n_one_way_allowed_events, err);
}

static int on_unlisted_users(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    static const char *const choices[] = {"deny", "allow", NULL};
    int choice = 0;

    if (expect_choice(v, path, choices, "deny, allow", &choice, err) != 0)
        return -1;
    c->unlisted_allow = choice == 1;
    return 0;
}

static int on_strict_homeserver_config(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &c->strict_homeserver_config, err);
}

static int on_enforce(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &c->enforce, err);
}

static int on_retention_days(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 0, 36500, &c->audit_retention_days, err);
}

static int on_include_content(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &c->audit_include_content, err);
}

/* audit.readers: data-protection officers, who read every school's audit
 * and change nothing (audit_view.c decides what each reader sees). */
static int on_audit_readers(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string_list(v, path, looks_like_user_id, "Matrix user ids (@user:server)",
                              &c->audit_readers, &c->n_audit_readers, err);
}

/* audit.flood: past `burst` denials of one actor, rule and callback, at
 * most `denials_per_minute` more get a record of their own; the rest are
 * counted in one summary per `summary_seconds` (audit_flood.h). A summary
 * stays younger than the embedded store's scans allow a record to be out
 * of time order (audit_scan.h). */
static int on_flood_denials_per_minute(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 60000, &c->flood_denials_per_minute, err);
}

static int on_flood_burst(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 1000000, &c->flood_burst, err);
}

static int on_flood_summary_seconds(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 300, &c->flood_summary_seconds, err);
}

static const key_spec FLOOD_KEYS[] = {
    {"denials_per_minute", on_flood_denials_per_minute},
    {"burst", on_flood_burst},
    {"summary_seconds", on_flood_summary_seconds},
    {NULL, NULL},
};

static int on_audit_flood(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return parse_object(c, v, path, FLOOD_KEYS, err);
}

static const key_spec AUDIT_KEYS[] = {
    {"retention_days", on_retention_days},
    {"include_content", on_include_content},
    {"readers", on_audit_readers},
    {"flood", on_audit_flood},
    {NULL, NULL},
};

static int on_audit(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return parse_object(c, v, path, AUDIT_KEYS, err);
}

/* School keys are parsed into the school that is last in c->schools. */
static ssp_school *current_school(ssp_config *c)
{
    return &c->schools[c->n_schools - 1];
}

static int on_school_messenger(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &current_school(c)->messenger, err);
}

static int on_school_teachers_room(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &current_school(c)->teachers_room, err);
}

static int on_school_announcement_room(ssp_config *c, json_t *v, const char *path,
                                       ssp_error *err)
{
    return expect_bool(v, path, &current_school(c)->announcement_room, err);
}

static int on_school_room_creation(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    static const char *const choices[] = {"service_users", "teachers", "everyone", NULL};
    int choice = 0;

    if (expect_choice(v, path, choices, "service_users, teachers, everyone", &choice, err) != 0)
        return -1;
    current_school(c)->room_creation = (ssp_room_creation)choice;
    return 0;
}

static int on_school_enforce(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &current_school(c)->enforce, err);
}

static const key_spec SCHOOL_KEYS[] = {
    {"messenger", on_school_messenger},
    {"teachers_room", on_school_teachers_room},
    {"announcement_room", on_school_announcement_room},
    {"room_creation", on_school_room_creation},
    {"enforce", on_school_enforce},
    {NULL, NULL},
};

static int on_schools(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    const char *id;
    json_t *school_json;
    char school_path[PATH_MAX_LEN];
    size_t n;

    if (!json_is_object(v))
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a mapping of school id to settings",
                        path);
    n = json_object_size(v);
    c->schools = calloc(n ? n : 1, sizeof *c->schools);
    if (c->schools == NULL)
        return ssp_fail_nomem(err);
    json_object_foreach(v, id, school_json) {
        ssp_school *school = &c->schools[c->n_schools];

        snprintf(school_path, sizeof school_path, "%s.%s", path, id);
        /* The rule of every school id the roster takes (ids.c). */
        if (ssp_check_school_id(school_path, id, strlen(id), err) != 0)
            return -1;
        school->id = ssp_strdup(id);
        if (school->id == NULL)
            return ssp_fail_nomem(err);
        school->teachers_room = true;
        school->enforce = c->enforce;
        school->room_creation = SSP_CREATE_TEACHERS;
        c->n_schools++;
        if (json_is_null(school_json))
            continue; /* `gym-nord:` with nothing under it takes every default */
        if (parse_object(c, school_json, school_path, SCHOOL_KEYS, err) != 0)
            return -1;
    }
    return 0;
}

/* A Matrix localpart (the spec's historical grammar, lower case only). */
static bool localpart_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("._=-/+", ch)))
            return false;
    }
    return true;
}

static int on_reconciler_user(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    if (expect_string(v, path, false, &c->reconciler_localpart, err) != 0)
        return -1;
    if (!localpart_valid(c->reconciler_localpart))
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: expected a user localpart of 1 to 64 characters a-z, 0-9 and ._=-/+ "
                        "(the module makes it @<localpart>:<server_name>)",
                        path);
    return 0;
}

static int on_reconciler_rate(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 1000, &c->reconciler_actions_per_second, err);
}

static int on_reconciler_batch(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 10000, &c->reconciler_batch_size, err);
}

static int on_reconciler_retry_max(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 86400, &c->reconciler_retry_max_seconds, err);
}

static const key_spec RECONCILER_KEYS[] = {
    {"user", on_reconciler_user},
    {"actions_per_second", on_reconciler_rate},
    {"batch_size", on_reconciler_batch},
    {"retry_max_seconds", on_reconciler_retry_max},
    {NULL, NULL},
};

static int on_reconciler(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return parse_object(c, v, path, RECONCILER_KEYS, err);
}

/* ---- groups (groups.c) ---- */

static int on_groups_encrypted(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &c->groups_encrypted, err);
}

static int on_groups_retention(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 0, 36500, &c->groups_archive_retention_days, err);
}

static const key_spec GROUPS_KEYS[] = {
    {"encrypted", on_groups_encrypted},
    {"archive_retention_days", on_groups_retention},
    {NULL, NULL},
};

static int on_groups(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return parse_object(c, v, path, GROUPS_KEYS, err);
}

/* ---- roster_feed (the consumer is roster_feed.c) ---- */

static int on_feed_url(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    if (expect_string(v, path, false, &c->feed_url, err) != 0)
        return -1;
    /* The URL is checked without echoing it: it holds the password. */
    return ssp_feed_check_url(path, c->feed_url, err);
}

static int on_feed_url_file(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string(v, path, false, &c->feed_url_file, err);
}

static int on_feed_url_env(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_string(v, path, false, &c->feed_url_env, err);
}

/* AMQP queue names are short strings: at most 255 bytes. */
static int expect_queue_name(json_t *v, const char *path, char **out, ssp_error *err)
{
    if (expect_string(v, path, false, out, err) != 0)
        return -1;
    if (strlen(*out) > 255)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: a queue name has at most 255 bytes", path);
    if (strncmp(*out, "amq.", 4) == 0)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: names starting with \"amq.\" are reserved by the broker", path);
    return 0;
}

static int on_feed_queue(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_queue_name(v, path, &c->feed_queue, err);
}

static int on_feed_dlq(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_queue_name(v, path, &c->feed_dead_letter_queue, err);
}

static int on_feed_prefetch(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 65535, &c->feed_prefetch, err);
}

static int on_feed_retry_max(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, 1, 3600, &c->feed_retry_max_seconds, err);
}

static int on_feed_max_message_bytes(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_int(v, path, SSP_FEED_MIN_MESSAGE_BYTES, SSP_FEED_MAX_MESSAGE_BYTES,
                      &c->feed_max_message_bytes, err);
}

static int on_feed_declare(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    return expect_bool(v, path, &c->feed_declare, err);
}

static const key_spec FEED_KEYS[] = {
    {"url", on_feed_url},
    {"url_file", on_feed_url_file},
    {"url_env", on_feed_url_env},
    {"queue", on_feed_queue},
    {"dead_letter_queue", on_feed_dlq},
    {"prefetch", on_feed_prefetch},
    {"retry_max_seconds", on_feed_retry_max},
    {"max_message_bytes", on_feed_max_message_bytes},
    {"declare_queues", on_feed_declare},
    {NULL, NULL},
};

static int on_roster_feed(ssp_config *c, json_t *v, const char *path, ssp_error *err)
{
    int sources;

    if (json_is_null(v))
        return 0; /* roster_feed: null is the same as leaving it out */
    if (parse_object(c, v, path, FEED_KEYS, err) != 0)
        return -1;
    sources = (c->feed_url != NULL) + (c->feed_url_file != NULL) + (c->feed_url_env != NULL);
    if (sources != 1)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: give exactly one of url, url_file, url_env (the broker's "
                        "amqp://user:password@host:port/vhost URL), got %d",
                        path, sources);
    if (c->feed_queue == NULL && (c->feed_queue = ssp_strdup(SSP_DEFAULT_FEED_QUEUE)) == NULL)
        return ssp_fail_nomem(err);
    if (c->feed_dead_letter_queue == NULL) {
        size_t n = strlen(c->feed_queue) + sizeof SSP_FEED_DLQ_SUFFIX;

        if ((c->feed_dead_letter_queue = malloc(n)) == NULL)
            return ssp_fail_nomem(err);
        snprintf(c->feed_dead_letter_queue, n, "%s%s", c->feed_queue, SSP_FEED_DLQ_SUFFIX);
        if (strlen(c->feed_dead_letter_queue) > 255)
            return ssp_fail(err, SSP_ERR_INPUT,
                            "%s.dead_letter_queue: the default (queue + \"%s\") is longer than "
                            "255 bytes; name it",
                            path, SSP_FEED_DLQ_SUFFIX);
    }
    if (strcmp(c->feed_queue, c->feed_dead_letter_queue) == 0)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s.dead_letter_queue: must differ from queue (\"%s\")", path,
                        c->feed_queue);
    c->feed_enabled = true;
    return 0;
}

static const key_spec TOP_KEYS[] = {
    {"service_users", on_service_users},
    {"database", on_database},
    {"data_dir", on_data_dir},
    {"policy_event_type", on_policy_event_type},
    {"moderator_level", on_moderator_level},
    {"one_way_allowed_events", on_one_way_allowed_events},
    {"unlisted_users", on_unlisted_users},
    {"strict_homeserver_config", on_strict_homeserver_config},
    {"enforce", on_enforce},
    {"audit", on_audit},
    {"reconciler", on_reconciler},
    {"roster_feed", on_roster_feed},
    {"groups", on_groups},
    {"schools", on_schools},
    {NULL, NULL},
};

static int build_lookups(ssp_config *c, ssp_error *err)
{
    for (size_t i = 0; i < c->n_service_users; i++) {
        if (ssp_strmap_put(&c->service_user_set, c->service_users[i], c->service_users[i],
                           NULL) != 0)
            return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < c->n_schools; i++) {
        if (ssp_strmap_put(&c->school_by_id, c->schools[i].id, &c->schools[i], NULL) != 0)
            return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < c->n_audit_readers; i++) {
        if (ssp_strmap_put(&c->audit_reader_set, c->audit_readers[i], c->audit_readers[i],
                           NULL) != 0)
            return ssp_fail_nomem(err);
    }
    for (size_t i = 0; i < c->n_one_way_allowed_events; i++) {
        if (ssp_strmap_put(&c->one_way_allowed_set, c->one_way_allowed_events[i],
                           c->one_way_allowed_events[i], NULL) != 0)
            return ssp_fail_nomem(err);
    }
    return 0;
}

int ssp_config_parse(const char *json_text, size_t len, ssp_config *out, ssp_error *err)
{
    json_error_t json_err;
    json_t *root, *schools;
    int rc = -1;

    memset(out, 0, sizeof *out);
    ssp_strmap_init(&out->service_user_set);
    ssp_strmap_init(&out->school_by_id);
    ssp_strmap_init(&out->one_way_allowed_set);
    ssp_strmap_init(&out->audit_reader_set);
    out->moderator_level = 50;
    out->enforce = true;
    out->strict_homeserver_config = true;
    out->audit_retention_days = 90;
    out->flood_denials_per_minute = 30;
    out->flood_burst = 10;
    out->flood_summary_seconds = 10;
    out->reconciler_actions_per_second = 5;
    out->reconciler_batch_size = 100;
    out->reconciler_retry_max_seconds = 300;
    out->groups_archive_retention_days = 365;
    out->feed_prefetch = 100;
    out->feed_retry_max_seconds = 60;
    out->feed_max_message_bytes = SSP_FEED_DEFAULT_MESSAGE_BYTES;
    out->feed_declare = true;

    root = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &json_err);
    if (root == NULL) {
        if (ssp_json_error_is_oom(&json_err))
            ssp_fail_nomem(err);
        else
            ssp_fail(err, SSP_ERR_INPUT, "config: invalid JSON at line %d, column %d: %s",
                     json_err.line, json_err.column, json_err.text);
        goto done;
    }
    /* `enforce` is the default of every school's own `enforce`, so it must
     * be known before the schools are read, whatever the key order. */
    if (json_is_object(root) && json_object_get(root, "enforce") != NULL &&
        on_enforce(out, json_object_get(root, "enforce"), "enforce", err) != 0)
        goto done;
    schools = json_is_object(root) ? json_object_get(root, "schools") : NULL;
    if (schools != NULL) {
        /* Parse schools last for the same reason. */
        json_incref(schools);
        json_object_del(root, "schools");
    }
    rc = parse_object(out, root, "", TOP_KEYS, err);
    if (rc == 0 && schools != NULL)
        rc = on_schools(out, schools, "schools", err);
    json_decref(schools);
    if (rc != 0)
        goto done;
    if (out->policy_event_type == NULL) {
        out->policy_event_type = ssp_strdup(SSP_DEFAULT_POLICY_EVENT_TYPE);
        if (out->policy_event_type == NULL) {
            rc = ssp_fail_nomem(err);
            goto done;
        }
    }
    if (out->reconciler_localpart == NULL) {
        out->reconciler_localpart = ssp_strdup(SSP_DEFAULT_RECONCILER_LOCALPART);
        if (out->reconciler_localpart == NULL) {
            rc = ssp_fail_nomem(err);
            goto done;
        }
    }
    if (out->database == NULL && out->data_dir == NULL) {
        rc = ssp_fail(err, SSP_ERR_INPUT,
                      "data_dir: required when database is not set (the embedded store keeps "
                      "the roster and the audit log there)");
        goto done;
    }
    rc = build_lookups(out, err);
done:
    json_decref(root);
    if (rc != 0)
        ssp_config_destroy(out);
    return rc;
}

void ssp_config_destroy(ssp_config *c)
{
    free_string_list(c->service_users, c->n_service_users);
    free(c->database);
    free(c->data_dir);
    free(c->policy_event_type);
    free(c->reconciler_localpart);
    free(c->feed_url);
    free(c->feed_url_file);
    free(c->feed_url_env);
    free(c->feed_queue);
    free(c->feed_dead_letter_queue);
    free_string_list(c->one_way_allowed_events, c->n_one_way_allowed_events);
    for (size_t i = 0; i < c->n_schools; i++)
        free(c->schools[i].id);
    free(c->schools);
    ssp_strmap_destroy(&c->service_user_set);
    ssp_strmap_destroy(&c->school_by_id);
    ssp_strmap_destroy(&c->one_way_allowed_set);
    ssp_strmap_destroy(&c->audit_reader_set);
    free_string_list(c->audit_readers, c->n_audit_readers);
    memset(c, 0, sizeof *c);
}

const ssp_school *ssp_config_school(const ssp_config *config, const char *id, size_t len)
{
    return ssp_strmap_getn(&config->school_by_id, id, len);
}

int ssp_config_check(const char *json_text, size_t len, ssp_error *err)
{
    ssp_config config;

    if (ssp_config_parse(json_text, len, &config, err) != 0)
        return -1;
    ssp_config_destroy(&config);
    return 0;
}
