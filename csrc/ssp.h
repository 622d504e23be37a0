/*
 * synapse-school-policy engine: public API.
 *
 * Plain C11, no Python. The CPython binding (_core.c) is the only caller in
 * production; the C unit tests and fuzz targets call it directly.
 *
 * Conventions at this boundary:
 * - Functions that can fail take an `ssp_error *` and return 0 on success or
 *   -1 on failure, with err->message naming the bad key or input.
 * - Strings passed in are borrowed: the engine copies what it keeps.
 * - Strings handed out as `char *` are owned by the caller and freed with
 *   free(). `const char *` results point at static storage.
 * - The engine is thread-safe: decisions may run on one thread while roster
 *   writes and audit queries run on others. None of these functions touch
 *   the Python runtime, so the binding may call them without the GIL.
 */
#ifndef SSP_H
#define SSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSP_ERROR_MESSAGE_MAX 512
#define SSP_SCHOOL_ID_MAX 255
#define SSP_MAX_ONE_WAY_ALLOWED_EVENTS 63

typedef enum {
    SSP_OK = 0,
    SSP_ERR_INPUT,  /* the caller's input (config, request body) is invalid */
    SSP_ERR_SYNTAX, /* the caller's input is not well-formed JSON */
    SSP_ERR_NOMEM,  /* an allocation failed */
    SSP_ERR_IO,     /* the store could not be read or written */
    SSP_ERR_STATE,  /* the engine is not in a state that allows the call */
    SSP_ERR_DATABASE,   /* the database answered with an error (SQL, constraint, schema);
                         * the message is the database's: retrying will not help */
    SSP_ERR_UNAVAILABLE /* the database cannot be reached (connection refused or lost);
                         * a retry later can succeed */
} ssp_error_code;

typedef struct ssp_error {
    ssp_error_code code;
    char message[SSP_ERROR_MESSAGE_MAX];
} ssp_error;

/* Rule ids. The order is part of nothing external: only the strings from
 * ssp_rule_id() are stable, and they are listed once, in rules.c. */
typedef enum {
    SSP_RULE_NONE = 0,
    SSP_RULE_NOT_ON_ROSTER,
    SSP_RULE_SCHOOL_NOT_ENABLED,
    SSP_RULE_ROOM_SCHOOL_NOT_ENABLED,
    SSP_RULE_ONE_WAY,
    SSP_RULE_POWER_LEVELS_LOCKED,
    SSP_RULE_POLICY_EVENT_LOCKED,
    SSP_RULE_NO_SHARED_ROOM,
    SSP_RULE_ROOM_CREATION_FORBIDDEN,
    SSP_RULE_PUBLIC_ROOM_FORBIDDEN,
    SSP_RULE_GUEST_ACCESS_FORBIDDEN,
    SSP_RULE_PUBLISH_FORBIDDEN,
    SSP_RULE_ALIAS_FORBIDDEN,
    SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN,
    SSP_RULE_JOIN_FORBIDDEN,
    SSP_RULE_FEDERATION_FORBIDDEN,
    SSP_RULE_STAFF_ONLY,
    SSP_RULE__COUNT
} ssp_rule;

/* The Synapse callback a decision is made for; recorded in the audit log. */
typedef enum {
    SSP_CB_CHECK_LOGIN_FOR_SPAM = 0,
    SSP_CB_USER_MAY_JOIN_ROOM,
    SSP_CB_USER_MAY_INVITE,
    SSP_CB_USER_MAY_CREATE_ROOM,
    SSP_CB_CHECK_EVENT_FOR_SPAM,
    SSP_CB_FEDERATED_USER_MAY_INVITE,
    SSP_CB_USER_MAY_PUBLISH_ROOM,
    SSP_CB_USER_MAY_CREATE_ROOM_ALIAS,
    SSP_CB_USER_MAY_SEND_3PID_INVITE,
    SSP_CB_CHECK_USERNAME_FOR_SPAM,
    SSP_CB_IS_USER_EXPIRED, /* account validity: refuses every request of the user's tokens */
    SSP_CB__COUNT
} ssp_callback;

typedef enum { SSP_ROLE_STUDENT = 0, SSP_ROLE_TEACHER, SSP_ROLE_ADMIN } ssp_role;

typedef enum {
    SSP_KIND_UNKNOWN = 0, /* missing or unrecognised: treated as managed, fail closed */
    SSP_KIND_COURSE,
    SSP_KIND_TEAM,
    SSP_KIND_TEACHERS,
    SSP_KIND_ANNOUNCEMENT
} ssp_room_kind;

/* A fact the engine may need but the caller has not supplied yet. */
typedef enum { SSP_FACT_UNKNOWN = 0, SSP_FACT_NO, SSP_FACT_YES } ssp_fact;

/* The managed-room state event's content, already extracted by the caller.
 * Strings are borrowed; school and kind_name need not be NUL-terminated.
 * A policy event counts only when it can be trusted: see docs/rules.md,
 * "Which policy event counts". */
typedef struct ssp_room_policy {
    const char *sender;  /* who sent the policy event; NULL when unknown (not trusted) */
    const char *event_id; /* the policy event's id; NULL when unknown */
    const char *creator; /* sender of the room's m.room.create; NULL when unknown */
    bool empty;         /* content {}: the event was "deleted", the room is unmanaged */
    size_t n_keys;      /* keys in the content, to notice added or removed keys */
    const char *school; /* NULL when missing or not a string */
    size_t school_len;
    const char *kind_name; /* NULL when missing or not a string */
    size_t kind_len;
    ssp_room_kind kind;
    bool two_way;
} ssp_room_policy;

/* One entry of a power-levels map (`users` or `events`). Borrowed. */
typedef struct ssp_level_entry {
    const char *key;
    size_t key_len;
    int64_t level;
} ssp_level_entry;

/* An m.room.power_levels content, extracted by the caller. Levels that are
 * missing take the Matrix spec's defaults. The `users` and `events` maps are
 * extracted only for power-level changes (full == true); for other events
 * only the actor's own entry is looked up. */
typedef struct ssp_power_levels {
    int64_t users_default;  /* spec default 0 */
    int64_t events_default; /* spec default 0 */
    int64_t state_default;  /* spec default 50 */
    bool actor_listed;      /* users[actor] exists */
    int64_t actor_level;
    bool full;
    const ssp_level_entry *users;
    size_t n_users;
    const ssp_level_entry *events;
    size_t n_events;
} ssp_power_levels;

/* A borrowed string that need not be NUL-terminated. */
typedef struct ssp_text {
    const char *text;
    size_t len;
} ssp_text;

/* The room's m.room.create event, as far as power goes. Borrowed. */
typedef struct ssp_room_create {
    const char *sender;       /* NULL: the room's create event is not known here */
    const char *room_version; /* NULL: missing, which Synapse reads as "1" */
    size_t room_version_len;
    const ssp_text *additional_creators; /* the string items of content.additional_creators */
    size_t n_additional_creators;
} ssp_room_create;

/* The parts of a room's state that only some rules read: the power-levels
 * content (the actor's level, which one-way rooms, invites and changes to
 * the policy or the power levels ask for) and the create event's content
 * (room_version, additional_creators). A caller for whom reading them
 * costs (the CPython binding) may leave them unread and set
 * ssp_request.room_details. It still points room_power_levels and
 * room_create at its own structs whenever the room has those events (NULL
 * keeps meaning "none") and fills room_create->sender; the engine calls
 * load() at most once per decision, the first time a rule reads the other
 * fields, and load() fills them in the caller's structs.
 *
 * load() runs during ssp_decide with the roster's read lock held: it must
 * not call into the engine. It returns 0, or -1 when it cannot read the
 * facts; the decision is then void: ssp_decide queues no audit record,
 * sets `failed`, and the caller must not act on its verdict. */
typedef struct ssp_room_details {
    int (*load)(struct ssp_room_details *details);
    bool loaded; /* set by the engine once load() has been called */
    bool failed; /* set by the engine: load() returned -1 */
} ssp_room_details;

/* What a createRoom body asks for, extracted by the caller. */
typedef struct ssp_create_room {
    bool is_direct;
    /* Distinct user ids the room starts with besides the creator: `invite`
     * plus the state keys of m.room.member events in initial_state, which
     * Synapse sends without asking user_may_invite. */
    size_t n_invites;
    bool public_preset;        /* preset public_chat */
    bool public_visibility;    /* visibility public: published in the room directory */
    bool sets_alias;           /* room_alias_name */
    bool third_party_invites;  /* a non-empty invite_3pid, or m.room.third_party_invite state */
    bool sets_policy;          /* initial_state holds the policy event */
    bool open_join_rule;       /* initial_state sets a join rule other than invite */
    bool world_readable;       /* initial_state sets history_visibility world_readable */
    bool opens_guest_access;   /* initial_state sets guest_access can_join */
} ssp_create_room;

/* The shape of an event's content, for what a one-way room lets through.
 * Extracted for m.room.redaction and m.reaction only. Borrowed. */
typedef struct ssp_event_shape {
    size_t n_content_keys;
    bool has_redacts;         /* content["redacts"] exists */
    const char *content_redacts; /* content["redacts"] when it is a string, else NULL */
    bool has_relation;        /* content["m.relates_to"] is a mapping */
    size_t n_relation_keys;
    const char *rel_type;     /* NULL when missing or not a string */
    size_t rel_type_len;
    bool relation_event_id;   /* m.relates_to.event_id is a string */
    const char *key;          /* m.relates_to.key; NULL when missing or not a string */
    size_t key_len;
} ssp_event_shape;

typedef struct ssp_request {
    ssp_callback callback;
    const char *actor;      /* user id doing the action; required */
    const char *target;     /* invitee, or NULL */
    const char *room_id;    /* or NULL */
    const char *event_type; /* or NULL */
    const char *state_key;  /* NULL unless the event is a state event */
    /* The event's own content, extracted when it is the policy event or a
     * power-levels event (state key ""); NULL otherwise. */
    const ssp_room_policy *new_policy;
    const ssp_power_levels *new_power_levels;
    /* SSP_FACT_UNKNOWN: the room's state has not been looked up yet; NO:
     * the room carries no policy event; YES: `room` holds it (with its
     * sender and the room's creator). The room's current power levels and
     * create event come with it (NULL when it has none). */
    ssp_fact room_managed;
    const ssp_room_policy *room;
    const ssp_power_levels *room_power_levels;
    const ssp_room_create *room_create;
    /* NULL: room_power_levels and room_create are complete. Otherwise
     * their contents are read on first use (see ssp_room_details). */
    ssp_room_details *room_details;
    /* check_event_for_spam of m.room.join_rules / m.room.history_visibility /
     * m.room.guest_access: the event sets a join rule other than invite /
     * world_readable history / guest access. */
    bool opens_join_rule;
    bool opens_history;
    bool opens_guest_access;
    const ssp_event_shape *shape; /* check_event_for_spam; NULL when not extracted */
    const char *redacts; /* the event an m.room.redaction redacts; NULL when not given */
    /* user_may_join_room: whether the actor is already joined (a join->join
     * is a profile change). Asked for with NEED_MEMBERSHIP. */
    ssp_fact actor_joined;
    /* user_may_invite: users whose membership is join or invite. Asked for
     * with NEED_MEMBER_COUNT. */
    bool member_count_known;
    int64_t member_count;
    const ssp_create_room *create; /* user_may_create_room; NULL otherwise */
    ssp_fact is_invited;           /* user_may_join_room */
    /* The policy events of the rooms actor and target are both joined to
     * (entries with empty content or no school stand for unmanaged rooms).
     * Asked for with NEED_SHARED_ROOMS. */
    ssp_fact shared_known;
    const ssp_room_policy *shared_rooms;
    size_t n_shared_rooms;
    ssp_fact actor_is_admin; /* UNKNOWN until the engine asks for it */
} ssp_request;

typedef enum {
    SSP_VERDICT_ALLOW = 0,
    SSP_VERDICT_DENY,        /* final; the audit record has been queued */
    SSP_VERDICT_NEED_ROOM,   /* look up the room's policy event and ask again */
    SSP_VERDICT_NEED_ADMIN,  /* look up whether the actor is a server admin and ask again */
    SSP_VERDICT_NEED_SHARED_ROOMS, /* look up the rooms actor and target share, ask again */
    SSP_VERDICT_ALLOW_SYNC_POWER_LEVELS, /* allowed; once the event is in the room, bring
                                          * events_default in line (ssp_power_levels_update) */
    SSP_VERDICT_NEED_MEMBERSHIP,  /* look up whether the actor is joined to the room, ask again */
    SSP_VERDICT_NEED_MEMBER_COUNT /* count the room's joined and invited users, ask again */
} ssp_verdict;

typedef struct ssp_decision {
    ssp_verdict verdict;
    ssp_rule rule;           /* set when verdict is DENY */
    bool enforced;           /* false: report-only, the caller lets the action through */
    const char *message;     /* static text for the client, set when DENY */
    char school[SSP_SCHOOL_ID_MAX + 1]; /* school the rule applied for, or "" */
    /* DENY: the id of the audit record queued for it, to wait for with
     * ssp_decision_wait_durable; 0 when none was queued (is_user_expired's
     * repeats, an engine without a store, out of memory). */
    int64_t audit_id;
} ssp_decision;

typedef struct ssp_engine ssp_engine;

/* ---- rule ids (rules.c) ---- */
const char *ssp_rule_id(ssp_rule rule);           /* "" for SSP_RULE_NONE */
ssp_rule ssp_rule_from_id(const char *id);        /* SSP_RULE_NONE if unknown */
const char *ssp_callback_name(ssp_callback cb);   /* NULL if out of range */

/* ---- configuration (config.c) ---- */

/* Validates a module config given as JSON text. Returns 0 or -1 with the
 * offending key's path in err->message. */
int ssp_config_check(const char *json_text, size_t len, ssp_error *err);

/* ---- homeserver.yaml self-check (selfcheck.c) ---- */

/* Checks Synapse settings given as a JSON object of booleans keyed by their
 * homeserver.yaml path (user_directory.search_all_users,
 * limit_profile_requests_to_users_who_share_rooms,
 * require_auth_for_profile_requests, allow_guest_access,
 * enable_registration, registration_requires_token), with Synapse's
 * defaults applied. *findings_json receives a JSON list of
 * {"setting", "problem"} (empty when all is well; caller frees). */
int ssp_homeserver_check(const char *settings_json, size_t len, char **findings_json,
                         ssp_error *err);

/* ---- engine lifecycle (engine.c) ---- */

/* Seeds jansson's hash function. Call once per process before any thread
 * uses the engine. */
void ssp_global_init(void);

/* Creates an engine from config JSON. `server_name` decides which users are
 * local; `worker_name` is written into audit records. Returns NULL on
 * failure. The store is not opened yet. */
ssp_engine *ssp_engine_new(const char *config_json, size_t len, const char *server_name,
                           const char *worker_name, ssp_error *err);

/* Opens the store named by the config, loads the roster into memory and
 * starts the audit writer thread. May block on disk I/O. */
int ssp_engine_open(ssp_engine *engine, ssp_error *err);

/* How to open the store (ssp_engine_open_with). Zeroed: as ssp_engine_open. */
typedef struct ssp_open_options {
    /* The command line's open, beside a Synapse that may be
     * running:
     * - PostgreSQL: the store opens as a worker does (with the engine's
     *   worker_name for its files in data_dir), but only with the database
     *   reachable (else SSP_ERR_UNAVAILABLE with the database's message); its thread
     *   pushes roster writes through the same statement and trigger as the
     *   admin API's and stops on ssp_engine_free, after pushing.
     * - Embedded store: read only, since data_dir belongs to the running
     *   Synapse. roster.jsonl and reconcile.jsonl are read (whole lines
     *   only: a line Synapse is appending is not there yet) into a private
     *   copy and replayed from it; nothing in data_dir is compacted, cut or
     *   rewritten; audit queries read audit.jsonl. Roster writes fail with
     *   SSP_ERR_STATE; the reconcile state's writers change the private copy only,
     *   which is gone on ssp_engine_free: do not call them.
     * Reads of the audit through ssp_audit_view are recorded in the read log
     * as the admin API's are (both stores). An offline engine makes no
     * decisions: on the embedded store nothing would write their records. */
    bool offline;
} ssp_open_options;

/* ssp_engine_open with options (NULL: the defaults). */
int ssp_engine_open_with(ssp_engine *engine, const ssp_open_options *options, ssp_error *err);

/* Waits up to timeout_ms until every roster change and audit record this
 * engine wrote is in the store itself (PostgreSQL: pushed to the database,
 * not only in the local outbox or spill file; the embedded store writes
 * through at once). Fails with SSP_ERR_IO and the store's last error when
 * it is not there in time. (engine.c) */
int ssp_store_sync(ssp_engine *engine, int64_t timeout_ms, ssp_error *err);

/* Flushes pending audit records, stops the writer thread and frees
 * everything. Accepts NULL. */
void ssp_engine_free(ssp_engine *engine);

/* Whether a failed self-check stops Synapse (strict_homeserver_config). */
bool ssp_engine_strict_homeserver_config(const ssp_engine *engine);

/* The configured policy event type; owned by the engine. */
const char *ssp_engine_policy_event_type(const ssp_engine *engine);

/* ---- Matrix facts the rules depend on (matrix.c) ---- */

#define SSP_EMOJI_KEY_MAX 64

/* Whether the room version gives the room's creators unlimited power
 * (MSC4289: 12, org.matrix.hydra.11 and every version newer than the legacy
 * list). NULL (the create event has no room_version) reads as "1". */
bool ssp_room_version_creators_have_power(const char *version, size_t len);

/* Whether a reaction key is an emoji: valid UTF-8 of 1..SSP_EMOJI_KEY_MAX
 * bytes, made of emoji code points and their modifiers, with ASCII digits,
 * '#' and '*' only in keycaps. Free text is not. */
bool ssp_emoji_key(const char *key, size_t len);

/* ---- decisions (decide.c) ---- */

/* Decides one request from memory without blocking on I/O. On a final
 * denial it queues the audit record (out->audit_id). The roster is read
 * under one read lock for the whole decision: one snapshot. When the
 * request's room_details could not be loaded (room_details->failed), the
 * decision is void and nothing was audited. */
void ssp_decide(ssp_engine *engine, const ssp_request *request, ssp_decision *out);

/* Waits until the audit record of a denial (ssp_decision.audit_id) is
 * durable: fdatasync'ed in audit.jsonl, or committed in PostgreSQL (or
 * fdatasync'ed in the spill file while the database is away), at most
 * timeout_ms. Returns true once it is (also for audit_id <= 0: nothing to
 * wait for), false on timeout. Blocks: call it off the reactor, without
 * the GIL. Concurrent waiters share the writer's batches. */
bool ssp_decision_wait_durable(ssp_engine *engine, int64_t audit_id, int64_t timeout_ms);

/* What a managed room's power levels must say so that clients show the
 * composer as the policy wants it: while one-way, events_default is the
 * moderator level and the event types still open to everyone (redactions,
 * one_way_allowed_events) are listed at level 0; while two-way,
 * events_default is 0. */
typedef struct ssp_power_levels_patch {
    bool set_events_default;
    int64_t events_default;
    /* event types to list at level 0; the strings belong to the engine */
    const char *open_events[SSP_MAX_ONE_WAY_ALLOWED_EVENTS + 1];
    size_t n_open_events;
} ssp_power_levels_patch;

/* Fills *patch with what `current` (NULL: no power-levels event; its maps
 * extracted in full) lacks. Returns true when anything is to change, false
 * when the room is unmanaged or already consistent. */
bool ssp_power_levels_update(const ssp_engine *engine, const ssp_room_policy *policy,
                             const ssp_power_levels *current, ssp_power_levels_patch *patch);

/* ---- special rooms' targets (reconcile_plan.c; the settings: engine.c) ---- */

/* What the special rooms of `school` should look like for `user_id` ("":
 * the school itself, a member of nothing). *plan_json receives (caller frees)
 * {"school", "user_id", "owner": the rooms' owner, "messenger": bool,
 *  "rooms": [{"kind": "teachers" | "announcement", "enabled": bool,
 *             "member": bool, "power_level": int | null, "name": str,
 *             "policy": the managed-room event content}]}.
 * `enabled` is false for every room of a school that has not opted in (its
 * rooms are then left as they are: rule 1 freezes them). Reads memory only. */
int ssp_reconcile_plan(ssp_engine *engine, const char *school, const char *user_id,
                       char **plan_json, ssp_error *err);

/* The user that owns the special rooms, @<reconciler.user>:<server_name>;
 * owned by the engine. The rules exempt it like a service user. */
const char *ssp_engine_reconciler_user(const ssp_engine *engine);

typedef struct ssp_reconciler_settings {
    int64_t actions_per_second; /* room changes per second, at most */
    int64_t batch_size;         /* marks taken per round */
    int64_t retry_max_seconds;  /* cap of the backoff after Synapse refuses */
} ssp_reconciler_settings;

void ssp_engine_reconciler_settings(const ssp_engine *engine, ssp_reconciler_settings *out);

/* ---- roster (roster.c) ---- */

/* PUT /users/{user_id}. `body` is the request JSON. On success *entry_json
 * receives the stored entry as JSON (caller frees). Durable before return. */
int ssp_roster_put(ssp_engine *engine, const char *user_id, const char *body, size_t len,
                   char **entry_json, ssp_error *err);

/* POST /roster. *upserted receives the number of users written. */
int ssp_roster_upsert_batch(ssp_engine *engine, const char *body, size_t len, size_t *upserted,
                            ssp_error *err);

/* Validates a POST /roster body as ssp_roster_upsert_batch does, without an
 * engine (the CLI's import): every user of server_name, each once. On
 * success *users_json receives the users as a JSON list of stored entries
 * (caller frees). */
int ssp_roster_check_batch(const char *body, size_t len, const char *server_name,
                           char **users_json, ssp_error *err);

/* Removes the user from every school. *existed tells whether they were on the roster. */
int ssp_roster_delete(ssp_engine *engine, const char *user_id, bool *existed, ssp_error *err);

/* GET /users/{user_id}: *entry_json receives the entry (caller frees) or
 * NULL when the user is not on the roster. */
int ssp_roster_get(ssp_engine *engine, const char *user_id, char **entry_json, ssp_error *err);

size_t ssp_roster_size(ssp_engine *engine);

/* ---- the roster feed (roster_feed.c; docs/roster-feed.md) ---- */

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

/* ---- audit (audit.c; the queue: audit_queue.c) ---- */

typedef struct ssp_audit_filter {
    int64_t since_ms;   /* 0: no lower bound */
    int64_t until_ms;   /* 0: no upper bound */
    const char *rule;   /* NULL: any */
    const char *school; /* NULL: any */
    const char *user;   /* NULL: any; matches actor or target */
    size_t limit;       /* 1..1000 */
    int64_t before_id;  /* 0: from the newest; otherwise records with a smaller id */
    /* NULL: any school; otherwise only records of one of these n_schools
     * schools (a school admin's scope, forced by audit_view.c) */
    const char *const *schools;
    size_t n_schools;
} ssp_audit_filter;

/* Queries the audit log, newest first. *result_json receives
 * {"records": [...], "next": "<id>" | null} (caller frees). Blocks on disk
 * I/O and waits for queued records to be written first. */
int ssp_audit_query(ssp_engine *engine, const ssp_audit_filter *filter, char **result_json,
                    ssp_error *err);

/* The audit for readers in a browser or through the admin API
 * (audit_view.c): who may read which school's records, the read log, the
 * chart's aggregate and the rule names. `request` is JSON:
 *   {"op": "access" | "audit" | "chart" | "reads" | "status" | "rules" | "write",
 *    "reader": "@user:server", "server_admin": bool, "query": {...}}
 * where query holds since, until, from, limit, bucket (integers) and rule,
 * school, user (strings), each optional. *response_json receives
 * {"status": 200, "body": {...}} or {"status": 403, "error": "..."} (caller
 * frees). Bad input fails with SSP_ERR_INPUT naming the field; a store that
 * cannot record the read fails with SSP_ERR_IO and nothing is returned.
 * Blocks on disk or the database. */
int ssp_audit_view(ssp_engine *engine, const char *request, size_t len, char **response_json,
                   ssp_error *err);

/* Waits until every queued audit record is on disk. */
int ssp_audit_flush(ssp_engine *engine, ssp_error *err);

typedef struct ssp_audit_stats {
    uint64_t queued;      /* records submitted since start */
    uint64_t written;     /* records durably written since start */
    uint64_t queue_depth; /* waiting to be written */
    uint64_t write_errors;
} ssp_audit_stats;

void ssp_audit_get_stats(ssp_engine *engine, ssp_audit_stats *out);

/* ---- store status (engine.c; ssp_audit_purge: audit.c) ---- */

typedef struct ssp_store_status {
    bool postgres;                  /* false: the embedded store */
    bool connected;                 /* PostgreSQL reachable (always true for the embedded store) */
    uint64_t audit_spilled_total;   /* records written to the spill file since start */
    uint64_t audit_spill_pending;   /* records in the spill file, waiting for the database */
    uint64_t roster_outbox_pending; /* roster changes not yet in the database */
    uint64_t connects;              /* successful (re)connections since start */
    int64_t roster_version;         /* last roster change version applied */
    uint64_t reconcile_pending;     /* marks in the reconcile state (PostgreSQL: a
                                     * count the store thread refreshes about once a second) */
    char last_error[SSP_ERROR_MESSAGE_MAX]; /* the last database error, or "" */
    uint64_t roster_skipped;        /* stored roster entries and rows skipped at load since start:
                                     * they break the input rules (docs/admin-api.md) */
} ssp_store_status;

void ssp_store_get_status(ssp_engine *engine, ssp_store_status *out);

/* Deletes the audit records written before `before_ms`, an absolute time
 * (ms since the epoch, not a duration: a caller with an age computes
 * now - age). PostgreSQL store only; blocks on the database. */
int ssp_audit_purge(ssp_engine *engine, int64_t before_ms, uint64_t *deleted, ssp_error *err);

/* ---- reconcile state (reconcile.c; kept by the store: reconcile_file.c or pg_reconcile.c) ----
 *
 * Stage 1 of applying the special rooms ("teachers", "announcement"): a
 * roster change marks (school, user) dirty; a reconciler applies the target
 * memberships and clears the mark. A mark is keyed (school, user_id);
 * user_id "" stands for the school itself (ensure its rooms exist, sweep
 * their members). Every (re)mark takes a new, strictly larger generation and
 * resets attempts and next_attempt_ms (last_error stays until done), so a
 * mark made while the reconciler worked survives its done().
 *
 * Roster changes mark automatically: the embedded store marks the user's old
 * and new schools in the same write (before the roster journal); PostgreSQL
 * marks them in a trigger on school_policy.roster, so plain SQL is marked too.
 *
 * All functions need an open engine (else SSP_ERR_STATE), may block on disk
 * or the database, and are thread-safe. Strings handed out are the caller's
 * to free(). */

/* Marks (school, user_ids[i]) for every i; "" is the school itself.
 * Durable before return. */
int ssp_reconcile_mark(ssp_engine *engine, const char *school, const char *const *user_ids,
                       size_t n, ssp_error *err);

/* *marks_json receives [{"school","user_id","generation","attempts"}] of at
 * most `max` marks with next_attempt_ms <= now_ms, ordered by
 * next_attempt_ms then marked_at_ms. Does not remove them. */
int ssp_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                      ssp_error *err);

/* Removes the mark only if its generation is still `generation`; a mark
 * that was renewed meanwhile (or is gone) is left as it is. */
int ssp_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                       int64_t generation, ssp_error *err);

/* Only if the generation matches: attempts + 1, next_attempt_ms = retry_at_ms,
 * last_error = error, failed_at_ms = now. */
int ssp_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                         int64_t generation, const char *error, int64_t retry_at_ms,
                         ssp_error *err);

/* The special rooms registry: (school, kind) -> room id, kind "teachers" or
 * "announcement". room_id NULL forgets the room. */
int ssp_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                           const char *room_id, ssp_error *err);

/* *room_id receives the room id (caller frees) or NULL when none is known. */
int ssp_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                           char **room_id, ssp_error *err);

/* For every school in the config, the applied string is
 * {"messenger":b,"teachers_room":b,"announcement_room":b} (compact, in that
 * order). Where the stored one differs or is absent: marks (school, "") and
 * (school, u) for every roster user u of the school, then stores the new
 * string (marks first: a crash between leaves harmless extra marks).
 * *schools_changed receives the number of such schools. */
int ssp_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed, ssp_error *err);

/* *status_json receives {"schools": {"<id>": {"messenger": bool (config),
 * "teachers_room": "!room"|null, "announcement_room": "!room"|null,
 * "pending": <marks of the school>, "last_error": <last_error of the most
 * recently failed pending mark of the school>|null}}}, every school of the
 * config in config order. */
int ssp_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err);

/* The same JSON without an engine, for the CLI while Synapse runs. The
 * embedded store's data_dir/reconcile.jsonl is only read (a missing file is
 * an empty reconcile state); with `database` set, connects and queries. */
int ssp_reconcile_status_offline(const char *config_json, size_t len, char **status_json,
                                 ssp_error *err);

#endif
