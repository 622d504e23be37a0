/*
 * The start-up self-check of homeserver.yaml: Synapse settings that would
 * let users see or reach people outside their rooms, let strangers in, or
 * widen a residual risk of docs/threat-model.md. The caller hands over the
 * settings as JSON with Synapse's defaults applied.
 *
 * One table (HARDENING below) says, for each setting, its hardened value,
 * what the check does when the setting is not hardened (refuse start-up,
 * warn, or only report) and why. The findings and the hardened block that
 * `doctor` prints both come from it, for the module's start-up and for
 * `doctor` alike; docs/configuration.md shows the same table.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfcheck.h"
#include "util.h"

typedef enum verdict { VERDICT_REFUSE, VERDICT_WARN, VERDICT_REPORT } verdict;

static const char *const VERDICT_NAMES[] = {"refuse", "warn", "report"};
/* How a finding's problem text begins, by verdict. */
static const char *const VERDICT_VERBS[] = {"must be", "should be", "should be"};

typedef enum setting_kind {
    KIND_BOOL,
    KIND_LIST,         /* a list of strings */
    KIND_LIST_OR_NULL, /* a list of strings, or null */
} setting_kind;

/* A growing text; after a failed allocation it stays failed (and is
 * freed by its owner as usual). */
typedef struct text {
    char *data;
    size_t len, cap;
    bool failed;
} text;

__attribute__((format(printf, 2, 3))) static void text_add(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || ssp_buf_reserve(&t->data, &t->cap, t->len + (size_t)n + 1) != 0) {
        t->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A JSON value as YAML: JSON is YAML's flow style, and ASCII escapes keep
 * any room id or server name a valid double-quoted scalar. */
static void text_add_json(text *t, const json_t *value)
{
    char *dumped = value != NULL ? json_dumps(value, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

    if (dumped == NULL) {
        t->failed = true;
        return;
    }
    text_add(t, "%s", dumped);
    free(dumped);
}

/* ---- the facts a row's judgement depends on (each checked for its type first) ---- */

static bool is_true(const json_t *settings, const char *key)
{
    return json_is_true(json_object_get(settings, key));
}

static bool registration_without_token(const json_t *settings)
{
    return is_true(settings, "enable_registration") &&
           !is_true(settings, "registration_requires_token");
}

static bool registration_open(const json_t *settings)
{
    return is_true(settings, "enable_registration");
}

/* Synapse can verify an e-mail address or a phone number, so the 3PID
 * endpoints work at all. */
static bool threepid_verification(const json_t *settings)
{
    return is_true(settings, "email") || is_true(settings, "account_threepid_delegates.msisdn");
}

/* Other homeservers may talk to this one: every server, or listed ones. */
static bool federation_open(const json_t *settings)
{
    const json_t *whitelist = json_object_get(settings, "federation_domain_whitelist");

    return !json_is_array(whitelist) || json_array_size(whitelist) > 0;
}

static bool list_has(const json_t *list, const char *s)
{
    size_t i;
    const json_t *item;

    json_array_foreach(list, i, item) {
        if (strcmp(json_string_value(item), s) == 0)
            return true;
    }
    return false;
}

/* ---- the list settings: when they undermine the rules, and their hardened value ---- */

typedef struct list_rule {
    /* Whether `value` (present, of the right type) is not hardened; may add
     * a detail to the problem text. */
    bool (*unsafe)(const json_t *settings, const json_t *value, text *detail);
    /* The block's value, a new reference (NULL when out of memory); `value`
     * is NULL when this Synapse has no such setting. */
    json_t *(*block_value)(const json_t *settings, const json_t *value);
} list_rule;

/* The module's announcement rooms this list leaves out (a new list), or
 * NULL when out of memory. */
static json_t *rooms_missing_from(const json_t *settings, const json_t *list)
{
    const json_t *rooms = json_object_get(settings, "announcement_rooms");
    json_t *missing = json_array();
    size_t i;
    const json_t *room;

    if (missing == NULL)
        return NULL;
    json_array_foreach(rooms, i, room) {
        if ((list == NULL || !list_has(list, json_string_value(room))) &&
            json_array_append(missing, (json_t *)room) != 0) {
            json_decref(missing);
            return NULL;
        }
    }
    return missing;
}

/* Only while presence is on: off, nobody's presence goes anywhere. */
static bool excluded_rooms_unsafe(const json_t *settings, const json_t *value, text *detail)
{
    json_t *missing;
    bool unsafe;

    if (!is_true(settings, "presence.enabled"))
        return false;
    missing = rooms_missing_from(settings, value);
    if (missing == NULL) {
        detail->failed = true;
        return true;
    }
    unsafe = json_array_size(missing) > 0;
    if (unsafe) {
        text_add(detail, " (missing: ");
        text_add_json(detail, missing);
        text_add(detail, ")");
    }
    json_decref(missing);
    return unsafe;
}

/* The operator's list, with every announcement room added. */
static json_t *excluded_rooms_block(const json_t *settings, const json_t *value)
{
    json_t *missing = rooms_missing_from(settings, value);
    json_t *all = value != NULL ? json_copy((json_t *)value) : json_array();

    if (missing == NULL || all == NULL || json_array_extend(all, missing) != 0) {
        json_decref(missing);
        json_decref(all);
        return NULL;
    }
    json_decref(missing);
    return all;
}

static bool whitelist_unsafe(const json_t *settings, const json_t *value, text *detail)
{
    (void)settings;
    (void)detail;
    return json_is_null(value);
}

/* The operator's list of trusted servers, or none. */
static json_t *whitelist_block(const json_t *settings, const json_t *value)
{
    (void)settings;
    return json_is_array(value) ? json_incref((json_t *)value) : json_array();
}

static bool auto_join_unsafe(const json_t *settings, const json_t *value, text *detail)
{
    (void)settings;
    (void)detail;
    return json_array_size(value) > 0;
}

static json_t *empty_list_block(const json_t *settings, const json_t *value)
{
    (void)settings;
    (void)value;
    return json_array();
}

static const list_rule EXCLUDED_ROOMS = {excluded_rooms_unsafe, excluded_rooms_block};
static const list_rule WHITELIST = {whitelist_unsafe, whitelist_block};
static const list_rule AUTO_JOIN = {auto_join_unsafe, empty_list_block};

/* ---- the table ---- */

typedef struct hardening_row {
    const char *setting; /* the homeserver.yaml path: "key" or "section.key" */
    verdict verdict;     /* what a value that is not hardened gets */
    setting_kind kind;
    /* Every supported Synapse has it: missing is an input error. Otherwise
     * a missing setting (a Synapse without it) is not judged, and the block
     * still writes it (Synapse ignores keys it does not know). */
    bool required;
    bool hardened; /* KIND_BOOL: the hardened value */
    /* KIND_BOOL: NULL when any other value undermines the rules; otherwise
     * only while this holds (the door the setting guards is open at all). */
    bool (*door_open)(const json_t *settings);
    const list_rule *list; /* KIND_LIST and KIND_LIST_OR_NULL */
    const char *want;      /* the hardened value, as the problem text says it */
    const char *reason;
} hardening_row;

/* Rows of one "section." are next to each other: the block writes each
 * section once. The first five rows are the original check, in its order. */
static const hardening_row HARDENING[] = {
    {"user_directory.search_all_users", VERDICT_REFUSE, KIND_BOOL, true, false, NULL, NULL,
     "false", "true lets the user directory show users who share no room with the searcher"},
    {"limit_profile_requests_to_users_who_share_rooms", VERDICT_REFUSE, KIND_BOOL, true, true,
     NULL, NULL, "true", "otherwise anyone can look up any user's profile"},
    {"require_auth_for_profile_requests", VERDICT_REFUSE, KIND_BOOL, true, true, NULL, NULL,
     "true", "otherwise profiles can be read without logging in"},
    {"allow_guest_access", VERDICT_REFUSE, KIND_BOOL, true, false, NULL, NULL, "false",
     "guests are on no roster and could read rooms opened to them"},
    {"enable_registration", VERDICT_REFUSE, KIND_BOOL, true, false, registration_without_token,
     NULL, "false (or registration_requires_token true)",
     "open registration creates accounts that are on no roster"},
    {"allow_profile_lookup_over_federation", VERDICT_REFUSE, KIND_BOOL, false, false,
     federation_open, NULL, "false",
     "otherwise any other homeserver can read any local user's name, avatar and profile fields "
     "without sharing a room (not judged while federation_domain_whitelist is [])"},
    {"allow_device_name_lookup_over_federation", VERDICT_REFUSE, KIND_BOOL, false, false,
     federation_open, NULL, "false",
     "true shows the names of any local user's devices to any other homeserver (not judged "
     "while federation_domain_whitelist is [])"},
    {"auto_join_rooms", VERDICT_REFUSE, KIND_LIST, false, false, NULL, &AUTO_JOIN, "[]",
     "every new account joins these rooms, so users of every school meet there, outside the "
     "rooms the roster gives them"},
    {"presence.enabled", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL, "false",
     "presence and status messages reach everyone who shares a room with the user (in the "
     "announcement room the whole school), and GET /rooms/{id}/initialSync shows them whatever "
     "exclude_rooms_from_presence says"},
    {"exclude_rooms_from_presence", VERDICT_WARN, KIND_LIST, false, false, NULL, &EXCLUDED_ROOMS,
     "a list of every announcement room",
     "while presence is on, everyone in an announcement room sees the presence and status "
     "message of the whole school (Synapse 1.157 or newer)"},
    {"allow_per_room_profiles", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL, "false",
     "true lets a user show a name and avatar of their choice in one room, free text that a "
     "one-way room's members see"},
    {"enable_set_displayname", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL, "false",
     "true lets users rename themselves, and the name shows in every room they are in, the "
     "announcement room included (the school cloud sets names through the admin API)"},
    {"enable_set_avatar_url", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL, "false",
     "true lets users change their picture, which shows in every room they are in, the "
     "announcement room included"},
    {"include_profile_updates_in_sync", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL,
     "false",
     "true sends every profile change, free-text custom profile fields included, to everyone "
     "who shares a room with the user"},
    {"experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms", VERDICT_WARN,
     KIND_BOOL, false, true, NULL, NULL, "true",
     "otherwise any user can read any local user's device keys and device names through "
     "/keys/query; even on, /keys/claim and to-device messages stay open to anyone"},
    {"federation_domain_whitelist", VERDICT_WARN, KIND_LIST_OR_NULL, false, false, NULL,
     &WHITELIST, "[] or a list of trusted servers",
     "otherwise every homeserver can send to-device messages to local users, receive their "
     "knocks and fetch media by URI"},
    {"inhibit_user_in_use_error", VERDICT_WARN, KIND_BOOL, false, true, registration_open, NULL,
     "true",
     "while registration is on (with a token), /register/available tells anyone which user ids "
     "exist"},
    {"request_token_inhibit_3pid_errors", VERDICT_WARN, KIND_BOOL, false, true,
     threepid_verification, NULL, "true",
     "while e-mail or phone verification is configured, the requestToken endpoints tell anyone, "
     "without logging in, whether an address belongs to an account"},
    {"enable_3pid_changes", VERDICT_WARN, KIND_BOOL, false, false, threepid_verification, NULL,
     "false",
     "while e-mail or phone verification is configured, true lets users attach addresses of "
     "their own to accounts the school cloud manages, which makes the accounts findable by "
     "those addresses"},
    {"url_preview_enabled", VERDICT_WARN, KIND_BOOL, false, false, NULL, NULL, "false",
     "true makes the homeserver fetch the links users read and keep what they show; the linked "
     "site sees the request, and any user may ask for the stored preview"},
    {"enable_authenticated_media", VERDICT_WARN, KIND_BOOL, false, true, NULL, NULL, "true",
     "false lets anyone who has a file's mxc:// URI download it without logging in"},
    {"include_profile_data_on_invite", VERDICT_REPORT, KIND_BOOL, false, false, NULL, NULL,
     "false",
     "an invite passes user_may_invite before Synapse copies the invitee's name and avatar into "
     "it, so they reach only inviters rule 3 allows; false also keeps them out of invites from "
     "server admins, who skip that callback"},
    {"allow_public_rooms_over_federation", VERDICT_REPORT, KIND_BOOL, false, false, NULL, NULL,
     "false",
     "only service users can publish rooms, so the room directory holds only theirs; true "
     "shows it to every other homeserver"},
    {"allow_public_rooms_without_auth", VERDICT_REPORT, KIND_BOOL, false, false, NULL, NULL,
     "false",
     "only service users can publish rooms, so the room directory holds only theirs; true "
     "shows it to anyone without logging in"},
};

#define N_ROWS (sizeof HARDENING / sizeof HARDENING[0])

/* Settings that are no row of their own but that rows depend on. */
typedef struct fact {
    const char *key;
    setting_kind kind;
    bool required;
} fact;

static const fact FACTS[] = {
    /* with enable_registration: registration needs a token */
    {"registration_requires_token", KIND_BOOL, true},
    /* an email section that lets Synapse send verification mail */
    {"email", KIND_BOOL, false},
    /* a phone-number verification delegate is set */
    {"account_threepid_delegates.msisdn", KIND_BOOL, false},
    /* not a setting: the module's announcement rooms (missing: not known) */
    {"announcement_rooms", KIND_LIST, false},
};

/* ---- reading the settings ---- */

static bool has_kind(const json_t *value, setting_kind kind)
{
    size_t i;
    const json_t *item;

    if (kind == KIND_BOOL)
        return json_is_boolean(value);
    if (kind == KIND_LIST_OR_NULL && json_is_null(value))
        return true;
    if (!json_is_array(value))
        return false;
    json_array_foreach(value, i, item) {
        if (!json_is_string(item))
            return false;
    }
    return true;
}

static int check_kind(const json_t *settings, const char *key, setting_kind kind, bool required,
                      ssp_error *err)
{
    static const char *const EXPECTED[] = {"a boolean", "a list of strings",
                                           "a list of strings or null"};
    const json_t *value = json_object_get(settings, key);

    if ((value == NULL && !required) || (value != NULL && has_kind(value, kind)))
        return 0;
    return ssp_fail(err, SSP_ERR_INPUT, "settings.%s: expected %s", key, EXPECTED[kind]);
}

static int check_settings(const json_t *settings, ssp_error *err)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        if (check_kind(settings, HARDENING[i].setting, HARDENING[i].kind, HARDENING[i].required,
                       err) != 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof FACTS / sizeof FACTS[0]; i++) {
        if (check_kind(settings, FACTS[i].key, FACTS[i].kind, FACTS[i].required, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- the findings ---- */

/* Whether the row's setting undermines the rules; the detail goes into
 * the problem text. A setting this Synapse lacks is not judged. */
static bool row_unsafe(const hardening_row *row, const json_t *settings, text *detail)
{
    const json_t *value = json_object_get(settings, row->setting);

    if (value == NULL)
        return false;
    if (row->kind != KIND_BOOL)
        return row->list->unsafe(settings, value, detail);
    return json_is_true(value) != row->hardened &&
           (row->door_open == NULL || row->door_open(settings));
}

static int add_finding(json_t *findings, const hardening_row *row, const char *detail)
{
    text problem = {0};
    json_t *finding;
    int rc = -1;

    text_add(&problem, "%s %s%s: %s", VERDICT_VERBS[row->verdict], row->want, detail,
             row->reason);
    if (!problem.failed) {
        finding = json_pack("{s:s, s:s, s:s}", "setting", row->setting, "verdict",
                            VERDICT_NAMES[row->verdict], "problem", problem.data);
        rc = json_array_append_new(findings, finding); /* steals finding, also NULL */
    }
    free(problem.data);
    return rc;
}

/* The findings, in the table's order; NULL when out of memory. */
static json_t *judge(const json_t *settings)
{
    json_t *findings = json_array();

    for (size_t i = 0; findings != NULL && i < N_ROWS; i++) {
        text detail = {0};
        bool unsafe;

        unsafe = row_unsafe(&HARDENING[i], settings, &detail);
        if (detail.failed ||
            (unsafe && add_finding(findings, &HARDENING[i], detail.data ? detail.data : "") != 0)) {
            json_decref(findings);
            findings = NULL;
        }
        free(detail.data);
    }
    return findings;
}

/* ---- the hardened block ---- */

static void block_row(text *block, const hardening_row *row, const json_t *settings,
                      const char **section, size_t *section_len)
{
    const char *dot = strchr(row->setting, '.');
    const char *key = dot != NULL ? dot + 1 : row->setting;
    size_t len = dot != NULL ? (size_t)(dot - row->setting) : 0;
    const char *indent = dot != NULL ? "  " : "";
    json_t *value;

    if (len != *section_len || strncmp(row->setting, *section, len) != 0) {
        if (len > 0)
            text_add(block, "%.*s:\n", (int)len, row->setting);
        *section = row->setting;
        *section_len = len;
    }
    text_add(block, "%s# %s: %s %s: %s\n", indent, VERDICT_NAMES[row->verdict],
             VERDICT_VERBS[row->verdict], row->want, row->reason);
    text_add(block, "%s%s: ", indent, key);
    if (row->kind == KIND_BOOL) {
        text_add(block, "%s\n", row->hardened ? "true" : "false");
        return;
    }
    value = row->list->block_value(settings, json_object_get(settings, row->setting));
    text_add_json(block, value);
    text_add(block, "\n");
    json_decref(value);
}

static const char BLOCK_HEADER[] =
    "# Hardened homeserver.yaml settings for synapse-school-policy. Merge them into\n"
    "# homeserver.yaml: a key that is already there takes the value below. Each comment\n"
    "# says what the start-up self-check does otherwise (refuse, warn, report) and why\n"
    "# (docs/configuration.md, \"The homeserver.yaml self-check\").\n";

/* The block's text (caller frees), or NULL when out of memory. */
static char *hardened_block(const json_t *settings)
{
    text block = {0};
    const char *section = "";
    size_t section_len = 0;

    text_add(&block, "%s", BLOCK_HEADER);
    for (size_t i = 0; i < N_ROWS; i++)
        block_row(&block, &HARDENING[i], settings, &section, &section_len);
    if (block.failed) {
        free(block.data);
        return NULL;
    }
    return block.data;
}

int ssp_homeserver_check(const char *settings_json, size_t len, char **result_json,
                         ssp_error *err)
{
    json_error_t json_err;
    json_t *settings, *findings = NULL, *result = NULL;
    char *block = NULL;
    int rc = -1;

    *result_json = NULL;
    settings = json_loadb(settings_json, len, 0, &json_err);
    if (settings == NULL) {
        if (ssp_json_error_is_oom(&json_err))
            return ssp_fail_nomem(err);
        return ssp_fail(err, SSP_ERR_INPUT, "settings: invalid JSON: %s", json_err.text);
    }
    if (!json_is_object(settings)) {
        ssp_fail(err, SSP_ERR_INPUT, "settings: expected an object");
        goto done;
    }
    if (check_settings(settings, err) != 0)
        goto done;
    findings = judge(settings);
    block = hardened_block(settings);
    if (findings == NULL || block == NULL) {
        ssp_fail_nomem(err);
        goto done;
    }
    /* "o" steals findings, also on failure */
    result = json_pack("{s:o, s:s}", "findings", findings, "hardened_block", block);
    findings = NULL;
    rc = ssp_json_dump_to(result, result_json, err);
done:
    free(block);
    json_decref(result);
    json_decref(findings);
    json_decref(settings);
    return rc;
}
