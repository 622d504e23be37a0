/*
 * Engine internals shared between the engine's .c files. Not installed,
 * not seen by the binding.
 */
#ifndef SSP_PRIVATE_H
#define SSP_PRIVATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>

#include "ssp.h"

/* ---- errors (error.c) ---- */

/* Sets err (if not NULL) and returns -1, so callers can `return ssp_fail(...)`. */
int ssp_fail(ssp_error *err, ssp_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ssp_fail_nomem(ssp_error *err);

/* ---- string hash map (strmap.c) ----
 * Open addressing with linear probing. Keys and values are borrowed: the
 * map owns only its slot array. Values are never NULL. */
typedef struct ssp_strmap {
    struct ssp_strmap_slot *slots;
    size_t capacity; /* power of two, or 0 */
    size_t count;    /* live entries */
    size_t used;     /* live + deleted slots */
} ssp_strmap;

void ssp_strmap_init(ssp_strmap *map);
void ssp_strmap_destroy(ssp_strmap *map);
void *ssp_strmap_get(const ssp_strmap *map, const char *key);
void *ssp_strmap_getn(const ssp_strmap *map, const char *key, size_t len);
/* Inserts or replaces. *previous receives the replaced value or NULL.
 * Returns -1 only when growing the table fails (map unchanged). */
int ssp_strmap_put(ssp_strmap *map, const char *key, void *value, void **previous);
void *ssp_strmap_remove(ssp_strmap *map, const char *key);
/* An ssp_strmap_each callback that free()s each value: for maps that own
 * their values. */
int ssp_strmap_free_value(const char *key, void *value, void *ctx);
/* Calls fn for every entry; stops early when fn returns non-zero. */
int ssp_strmap_each(const ssp_strmap *map, int (*fn)(const char *key, void *value, void *ctx),
                    void *ctx);

/* ---- configuration (config.c) ---- */

typedef enum {
    SSP_CREATE_SERVICE_USERS = 0,
    SSP_CREATE_TEACHERS,
    SSP_CREATE_EVERYONE
} ssp_room_creation;

typedef struct ssp_school {
    char *id;
    bool messenger;
    bool teachers_room;
    bool announcement_room;
    bool enforce;
    ssp_room_creation room_creation;
} ssp_school;

typedef struct ssp_config {
    char **service_users;
    size_t n_service_users;
    char *database;  /* NULL: embedded store */
    char *data_dir;  /* NULL only when database is set */
    char *policy_event_type;
    int64_t moderator_level;
    char **one_way_allowed_events;
    size_t n_one_way_allowed_events;
    bool unlisted_allow;
    bool strict_homeserver_config;
    bool enforce;
    int64_t audit_retention_days;
    bool audit_include_content;
    /* the special rooms' owner and how fast the reconciler may act */
    char *reconciler_localpart;
    int64_t reconciler_actions_per_second;
    int64_t reconciler_batch_size;
    int64_t reconciler_retry_max_seconds;
    ssp_school *schools;
    size_t n_schools;
    /* roster_feed: the school cloud's AMQP queue (roster_feed.c); absent = off.
     * Exactly one of url, url_file, url_env is set when enabled. */
    bool feed_enabled;
    char *feed_url;      /* contains the password: never logged or shown */
    char *feed_url_file; /* a file whose content (trimmed) is the URL */
    char *feed_url_env;  /* an environment variable holding the URL */
    char *feed_queue;
    char *feed_dead_letter_queue;
    int64_t feed_prefetch;
    int64_t feed_retry_max_seconds;
    bool feed_declare; /* declare both queues (durable) on connect */
    /* lookups over the arrays above; keys point into them */
    ssp_strmap service_user_set;
    ssp_strmap school_by_id;
    ssp_strmap one_way_allowed_set;
    /* audit.readers: read every school's audit, change nothing */
    char **audit_readers;
    size_t n_audit_readers;
    ssp_strmap audit_reader_set;
} ssp_config;

#define SSP_DEFAULT_POLICY_EVENT_TYPE "org.synapse_school_policy.room"
#define SSP_DEFAULT_RECONCILER_LOCALPART "school-policy"
#define SSP_DEFAULT_FEED_QUEUE "school-policy.roster"
#define SSP_FEED_DLQ_SUFFIX ".dead-letter"

/* Parses and validates; on success *out is filled and owns its memory. */
int ssp_config_parse(const char *json_text, size_t len, ssp_config *out, ssp_error *err);
void ssp_config_destroy(ssp_config *config);
const ssp_school *ssp_config_school(const ssp_config *config, const char *id, size_t len);

/* ---- roster index (roster.c) ---- */

typedef struct ssp_membership {
    const char *school; /* points into the owning ssp_roster_user allocation */
    ssp_role role;
} ssp_membership;

/* One allocation per user: the struct, the memberships, then the strings. */
typedef struct ssp_roster_user {
    const char *user_id;
    size_t n;
    ssp_membership memberships[];
} ssp_roster_user;

typedef struct ssp_roster_change {
    char *user_id;
    ssp_roster_user *user; /* NULL or n == 0: remove from every school */
} ssp_roster_change;

/* Parses {"schools": [...]} for one user. *out is a new allocation. */
int ssp_roster_parse_entry(const char *user_id, json_t *body, const char *path,
                           ssp_roster_user **out, ssp_error *err);
/* The same for stored data (journal replay): a membership whose school id
 * breaks the rules of ssp_roster_check_school is dropped and counted in
 * *dropped instead of failing the entry. */
int ssp_roster_parse_entry_lenient(const char *user_id, json_t *body, const char *path,
                                   size_t *dropped, ssp_roster_user **out, ssp_error *err);
/* Parses {"users": [...]} into an array of changes (caller frees with
 * ssp_roster_changes_free). Every user_id must pass ssp_roster_check_user_id
 * (server_name NULL: any server) and appear once. */
int ssp_roster_parse_batch(json_t *body, const char *server_name, ssp_roster_change **changes,
                           size_t *n, ssp_error *err);
void ssp_roster_changes_free(ssp_roster_change *changes, size_t n);
json_t *ssp_roster_user_to_json(const char *user_id, const ssp_roster_user *user);
/* The roster's input rules, shared by the admin API, the CLI (through the
 * binding), the journal replay and the PostgreSQL loader. */
#define SSP_USER_ID_MAX 255
/* A Matrix user id: "@" localpart ":" server, at most 255 bytes, the
 * localpart printable ASCII without ":", the server a host name (letters,
 * digits, ".", "-"), IPv4 or [IPv6] address, optional ":port". */
bool ssp_user_id_valid(const char *user_id);
/* The same for len bytes (NUL bytes included, which fail), and, unless
 * server_name is NULL, a user of that server. Fails with SSP_ERR_INPUT and a
 * message starting with path. */
int ssp_roster_check_user_id(const char *path, const char *user_id, size_t len,
                             const char *server_name, ssp_error *err);
/* A school id: 1 to SSP_SCHOOL_ID_MAX bytes, no control character (below
 * 0x20, 0x7f; NUL included) and no space, as in the config. */
int ssp_roster_check_school(const char *path, const char *school, size_t len, ssp_error *err);

typedef struct ssp_roster {
    pthread_rwlock_t lock;
    ssp_strmap users; /* user_id -> ssp_roster_user*, key points into the value */
    const char *server_name; /* borrowed; NULL: users of any server (replay checks) */
    uint64_t skipped;        /* stored entries and rows dropped at load: they break the rules */
} ssp_roster;

int ssp_roster_init(ssp_roster *roster, ssp_error *err);
void ssp_roster_destroy(ssp_roster *roster);
/* Applies a change; takes ownership of change->user either way. Caller holds
 * the write lock. */
int ssp_roster_apply_locked(ssp_roster *roster, const char *user_id, ssp_roster_user *user,
                            ssp_error *err);

/* ---- embedded store (journal.c) ---- */

typedef struct ssp_journal {
    char *path;
    int fd;
    size_t lines; /* lines in the file, to decide when to compact */
    off_t size;   /* bytes known good, to cut off a failed append */
    bool fd_broken;
} ssp_journal;

/* Opens data_dir/roster.jsonl, replays it into the roster and compacts it
 * when it has grown well past the roster's size. */
int ssp_journal_open(ssp_journal *journal, const char *data_dir, ssp_roster *roster,
                     ssp_error *err);
/* Opens data_dir/name like ssp_journal_open, without compacting it: the
 * PostgreSQL store's roster outbox (pgstore.c), whose every line must be
 * pushed to the database in order. */
int ssp_journal_open_named(ssp_journal *journal, const char *data_dir, const char *name,
                           ssp_roster *roster, bool compact_allowed, ssp_error *err);
/* Appends the changes and fsyncs before returning. */
int ssp_journal_append(ssp_journal *journal, const ssp_roster_change *changes, size_t n,
                       ssp_error *err);
/* Appends `len` bytes holding `lines` whole lines and fdatasyncs; on a
 * failed write cuts the file back so the next append starts on a clean line. */
int ssp_journal_write(ssp_journal *journal, const char *buf, size_t len, size_t lines,
                      ssp_error *err);
void ssp_journal_close(ssp_journal *journal);

/* Helpers of the jsonl files (journal.c), shared with reconcile.c. */
int ssp_make_dirs(const char *dir, ssp_error *err);
int ssp_fsync_dir(const char *dir);
/* Reads a whole file; *data is NUL-terminated (caller frees). A missing
 * file reads as empty. */
int ssp_read_file(const char *path, char **data, size_t *len, ssp_error *err);
/* Calls apply for every complete line of data[0..len). Stops at a torn last
 * line (no newline): *good_end is where the whole lines end, *lines their
 * number. A line apply rejects fails the replay with "<path> line N is
 * corrupt (...)", except when apply ran out of memory (SSP_ERR_NOMEM). */
int ssp_jsonl_replay(const char *path, const char *data, size_t len,
                     int (*apply)(void *ctx, const char *line, size_t line_len, ssp_error *err),
                     void *ctx, size_t *lines, size_t *good_end, ssp_error *err);
/* Replaces path (in dir) by what write_content writes to a new file:
 * path.tmp, fsync, rename, fsync dir. A crash leaves the old or the new
 * file whole. write_content returns -1 with errno set on failure. */
int ssp_file_rewrite(const char *dir, const char *path, int (*write_content)(int fd, void *ctx),
                     void *ctx, ssp_error *err);

/* ---- audit (audit.c) ---- */

typedef struct ssp_audit_record {
    struct ssp_audit_record *next;
    int64_t id;
    int64_t ts;
    ssp_rule rule;
    ssp_callback callback;
    bool enforced;
    /* NULL when absent; all point into this allocation */
    const char *actor;
    const char *target;
    const char *room_id;
    const char *event_type;
    const char *school;
} ssp_audit_record;

typedef struct ssp_audit_log {
    pthread_mutex_t mutex;
    pthread_cond_t wake_writer;
    pthread_cond_t written_cond;
    pthread_t writer;
    bool writer_started;
    bool stopping;
    ssp_audit_record *head, *tail; /* queue, oldest first */
    int64_t next_id;
    int64_t last_written_id;
    char *path;
    char *worker;
    int fd;
    bool broken; /* a partial write could not be cut off: writing stopped */
    ssp_audit_stats stats;
    /* PostgreSQL store: no file and no writer thread of its own; pgstore.c's
     * thread drains the queue. wake_fd (an eventfd, or -1) is written when a
     * record arrives on an empty queue. */
    bool external;
    int wake_fd;
} ssp_audit_log;

int ssp_audit_open(ssp_audit_log *log, const char *data_dir, const char *worker, ssp_error *err);
/* The queue alone, for the PostgreSQL store (see `external`). */
int ssp_audit_open_external(ssp_audit_log *log, const char *worker, int wake_fd, ssp_error *err);
void ssp_audit_close(ssp_audit_log *log);
void ssp_audit_free_records(ssp_audit_record *rec);
/* Copies the strings; never blocks on I/O. Returns the record's id (> 0),
 * or -1 only when out of memory. */
int64_t ssp_audit_submit(ssp_audit_log *log, ssp_rule rule, ssp_callback callback, bool enforced,
                         const char *actor, const char *target, const char *room_id,
                         const char *event_type, const char *school);
/* Waits until the record `id` is written (file store: fdatasync'ed;
 * PostgreSQL: committed, or fdatasync'ed in the spill file), at most
 * timeout_ms. 0 once written, -1 on timeout. Blocks: never on the reactor. */
int ssp_audit_wait_written(ssp_audit_log *log, int64_t id, int64_t timeout_ms);
json_t *ssp_audit_record_to_json(const ssp_audit_record *rec, const char *worker);
/* The ssp_audit_query result of both stores: {"records": records (not
 * stolen), "next": next, or null when next is NULL}. NULL when out of memory. */
json_t *ssp_audit_page(json_t *records, const char *next);
/* Parses one stored line; *out is a new allocation. */
int ssp_audit_record_parse(const char *line, size_t len, ssp_audit_record **out, char **worker,
                           ssp_error *err);

/* ---- the PostgreSQL store (pgstore.c) ----
 * Opaque here: only pgstore.c includes libpq-fe.h. */
typedef struct ssp_pgstore ssp_pgstore;

/* Connects (or, when the database is unreachable, falls back to the local
 * roster cache), applies migrations, loads the roster, opens the audit
 * queue and starts the store's background thread. Called once from
 * ssp_engine_open, without the GIL. */
int ssp_pgstore_open(ssp_engine *engine, ssp_error *err);
/* Writes or spills every queued audit record, stops the thread, frees the
 * store and closes the audit queue. */
void ssp_pgstore_close(ssp_engine *engine);
/* Appends roster changes to the local outbox (fsync) and wakes the thread,
 * which pushes them to PostgreSQL in order. Caller holds write_mutex. */
int ssp_pgstore_append_roster(ssp_pgstore *pg, const ssp_roster_change *changes, size_t n,
                              ssp_error *err);
/* audit_view.c's store calls on PostgreSQL [caller thread]: the chart's
 * counts per (bucket, rule) as [[bucket_start_ms, "rule", n], ...] ordered
 * by bucket and rule; one read-log record appended (durable on return);
 * a page of the read log, newest first, confined to `schools` (a JSON
 * array text) unless NULL. */
int ssp_pgstore_audit_chart(ssp_engine *engine, const ssp_audit_filter *filter,
                            int64_t bucket_ms, json_t **rows, ssp_error *err);
int ssp_pgstore_reads_append(ssp_engine *engine, json_t *record, ssp_error *err);
int ssp_pgstore_reads_query(ssp_engine *engine, const char *schools_json, int64_t since_ms,
                            int64_t until_ms, int64_t before_id, size_t limit, json_t **page,
                            ssp_error *err);
/* Whole lines of fd in [0, end), last first, each without its newline; an
 * unterminated tail is passed over. visit returns 0 to go on, 1 to stop, -1
 * to fail (with err set). Returns -1 on failure, else 0. */
typedef int (*ssp_line_visitor)(const char *line, size_t len, void *ctx, ssp_error *err);
int ssp_scan_lines_backwards(int fd, off_t end, ssp_line_visitor visit, void *ctx,
                             ssp_error *err);
/* Scans the embedded store's audit.jsonl backwards from the newest record
 * (or from where records older than filter->before_id end). */
int ssp_audit_scan(ssp_engine *engine, const ssp_audit_filter *filter, ssp_line_visitor visit,
                   void *ctx, ssp_error *err);
/* Parses one jsonl line: *out NULL for an empty or damaged line; -1 only
 * when out of memory. */
int ssp_audit_load_line(const char *line, size_t len, const char *path, json_t **out,
                        ssp_error *err);
/* A cheap test on the raw line: false only when no record of that line
 * can pass the filter's rule, school(s) and user (audit.c). */
bool ssp_audit_line_may_match(const char *line, size_t len, const ssp_audit_filter *filter);
/* The filter's test of one parsed audit record (audit.c). */
bool ssp_audit_matches(json_t *rec, const ssp_audit_filter *filter);
/* The message a client gets for a rule (decide.c), in English. */
const char *ssp_rule_message(ssp_rule rule);
/* The rule's short name and its client message in German (rules.c). */
const char *ssp_rule_name(ssp_rule rule, bool german);
const char *ssp_rule_message_de(ssp_rule rule);
int ssp_pgstore_audit_query(ssp_engine *engine, const ssp_audit_filter *filter,
                            char **result_json, ssp_error *err);
int ssp_pgstore_audit_purge(ssp_engine *engine, int64_t older_than_ms, uint64_t *deleted,
                            ssp_error *err);
void ssp_pgstore_get_status(ssp_pgstore *pg, ssp_store_status *out);

/* Roster entries built from stored rows (roster.c). */
ssp_roster_user *ssp_roster_user_new(const char *user_id, const char **schools,
                                     const ssp_role *roles, size_t n);
/* Returns 0 and sets *role, or -1 for an unknown role name. */
int ssp_role_from_name(const char *name, ssp_role *role);

/* ---- reconciliation ledger (reconcile.c; PostgreSQL: pgstore.c) ---- */

/* One mark. One allocation: the struct, then key, school and user_id. */
typedef struct ssp_mark {
    const char *key; /* "<school length>:<school><user_id>": unique per (school, user) */
    const char *school;
    const char *user_id; /* "" for the school itself */
    int64_t generation;
    int64_t marked_at_ms;
    int64_t attempts;
    int64_t next_attempt_ms;
    int64_t failed_at_ms;
    char *last_error; /* NULL or its own allocation */
} ssp_mark;

/* A (school, kind) -> room_id or (school) -> applied config entry. One
 * allocation: the struct, then key and value. */
typedef struct ssp_ledger_entry {
    const char *key; /* rooms: "<kind>:<school>"; applied: the school id */
    const char *school;
    const char *value;
} ssp_ledger_entry;

/* The embedded store's ledger: data_dir/reconcile.jsonl replayed into memory.
 * `mutex` guards everything here, including appends to the file. */
typedef struct ssp_ledger {
    pthread_mutex_t mutex;
    bool mutex_ready;
    ssp_journal file;
    char *data_dir;
    ssp_strmap marks;   /* key -> ssp_mark* (owned) */
    ssp_strmap rooms;   /* key -> ssp_ledger_entry* (owned) */
    ssp_strmap applied; /* school -> ssp_ledger_entry* (owned) */
    int64_t next_generation;
} ssp_ledger;

/* Replays data_dir/reconcile.jsonl (cutting a torn last line, compacting
 * when it has grown well past the live state) and opens it for appends. */
int ssp_ledger_open(ssp_ledger *ledger, const char *data_dir, ssp_error *err);
void ssp_ledger_close(ssp_ledger *ledger);
/* Marks (schools[i], user_ids[i]) for every i in one append + fdatasync.
 * Duplicate pairs are fine. Nothing is marked when it fails. */
int ssp_ledger_mark_pairs(ssp_ledger *ledger, const char *const *schools,
                          const char *const *user_ids, size_t n, ssp_error *err);
uint64_t ssp_ledger_pending(ssp_ledger *ledger);

/* What a school's status shows besides its config; strings borrowed. */
typedef struct ssp_school_reconcile {
    const char *teachers_room;
    const char *announcement_room;
    uint64_t pending;
    const char *last_error;
    int64_t last_failed_at_ms; /* of last_error, to pick the most recent */
} ssp_school_reconcile;

/* One item of the ssp_reconcile_due list: {"school", "user_id",
 * "generation", "attempts"}. NULL when out of memory. */
json_t *ssp_reconcile_due_item(const char *school, const char *user_id, int64_t generation,
                               int64_t attempts);
/* Builds the ssp_reconcile_status JSON; per_school is in config order. */
int ssp_reconcile_status_text(const ssp_config *config, const ssp_school_reconcile *per_school,
                              char **status_json, ssp_error *err);
/* The applied string of a school: compact JSON, fixed key order. */
void ssp_reconcile_applied_text(const ssp_school *school, char *buf, size_t size);
int ssp_reconcile_check_key(const char *school, const char *user_id, ssp_error *err);
int ssp_reconcile_check_kind(const char *kind, ssp_error *err);

int ssp_pgstore_reconcile_mark(ssp_engine *engine, const char *school,
                               const char *const *user_ids, size_t n, ssp_error *err);
int ssp_pgstore_reconcile_due(ssp_engine *engine, int64_t now_ms, size_t max, char **marks_json,
                              ssp_error *err);
int ssp_pgstore_reconcile_done(ssp_engine *engine, const char *school, const char *user_id,
                               int64_t generation, ssp_error *err);
int ssp_pgstore_reconcile_failed(ssp_engine *engine, const char *school, const char *user_id,
                                 int64_t generation, const char *error, int64_t retry_at_ms,
                                 ssp_error *err);
int ssp_pgstore_reconcile_set_room(ssp_engine *engine, const char *school, const char *kind,
                                   const char *room_id, ssp_error *err);
int ssp_pgstore_reconcile_get_room(ssp_engine *engine, const char *school, const char *kind,
                                   char **room_id, ssp_error *err);
int ssp_pgstore_reconcile_sync_config(ssp_engine *engine, size_t *schools_changed,
                                      ssp_error *err);
int ssp_pgstore_reconcile_status(ssp_engine *engine, char **status_json, ssp_error *err);
/* Connects with config->database, queries, disconnects. */
int ssp_pgstore_reconcile_status_offline(const ssp_config *config, char **status_json,
                                         ssp_error *err);

/* ---- the engine (engine.c) ---- */

#define SSP_EXPIRY_SLOTS 16384
#define SSP_EXPIRY_AUDIT_MS 60000

struct ssp_engine {
    ssp_config config;
    char *server_name;
    char *worker_name;
    ssp_roster roster;
    bool roster_ready;
    pthread_mutex_t write_mutex; /* serialises journal append + roster apply */
    ssp_journal journal;
    bool journal_open;
    ssp_ledger ledger; /* embedded store only */
    bool ledger_open;
    ssp_audit_log audit;
    bool audit_open;
    ssp_pgstore *pg; /* NULL: the embedded store */
    /* The roster feed's consumer (roster_feed.c), or NULL; set once by
     * ssp_roster_feed_start, stopped and freed by ssp_engine_free. */
    struct ssp_feed *feed;
    /* @<reconciler.user>:<server_name>; also a key of config.service_user_set */
    char *reconciler_user;
    /* is_user_expired runs on every request of a refused user's tokens; its
     * denials are audited at most once per user per SSP_EXPIRY_AUDIT_MS.
     * A slot remembers the last audited user by hash; a collision only
     * costs an extra record, never a missing one. */
    /* the embedded store's read log (audit_view.c): appends serialised */
    pthread_mutex_t reads_mutex;
    int64_t reads_next_id; /* 0: not known yet (read from the file at first use) */
    pthread_mutex_t expiry_mutex;
    struct ssp_expiry_slot {
        uint64_t user_hash;
        int64_t audited_ms;
    } expiry_audited[SSP_EXPIRY_SLOTS];
};

bool ssp_engine_is_local(const ssp_engine *engine, const char *user_id);

/* Small helpers (error.c) */
char *ssp_strdup(const char *s);
char *ssp_strndup(const char *s, size_t n);
int64_t ssp_now_ms(void);
/* write(2) until everything is written; -1 with errno on failure. */
int ssp_write_all(int fd, const char *buf, size_t len);
/* Makes *buf (*cap bytes; NULL when 0) hold at least need bytes: when it
 * must grow, to twice need. -1 when out of memory, *buf left as it was. */
int ssp_buf_reserve(char **buf, size_t *cap, size_t need);
/* Joins dir and name; caller frees. */
char *ssp_path_join(const char *dir, const char *name);
bool ssp_utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) of at most max bytes that does
 * not cut a UTF-8 sequence. */
size_t ssp_utf8_prefix(const char *s, size_t len, size_t max);
/* Replaces bytes that are not valid UTF-8 with '?', in place. */
void ssp_utf8_scrub(char *s);
/* Whether a failed jansson load failed for want of memory. */
bool ssp_json_error_is_oom(const json_error_t *error);
/* json_dumps(JSON_COMPACT) that returns NULL instead of a corrupt text. */
char *ssp_json_dumps_checked(const json_t *value);
/* The same into *out (caller frees); 0, or -1 with SSP_ERR_NOMEM. A NULL
 * value (a failed build) counts as out of memory. */
int ssp_json_dump_to(const json_t *value, char **out, ssp_error *err);
/* Grows the map so that n more entries fit without an allocation. */
int ssp_strmap_reserve(ssp_strmap *map, size_t n);

#endif
