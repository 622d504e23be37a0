/*
 * The validated configuration (config.c). Read-only once parsed: every
 * thread may read it without a lock.
 */
#ifndef SSP_CONFIG_H
#define SSP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strmap.h"

#define SSP_MAX_ONE_WAY_ALLOWED_EVENTS 63

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
    /* audit.flood: the flood limit of denials (audit_flood.h) */
    int64_t flood_denials_per_minute;
    int64_t flood_burst;
    int64_t flood_summary_seconds;
    /* the special rooms' owner and how fast the reconciler may act */
    char *reconciler_localpart;
    int64_t reconciler_actions_per_second;
    int64_t reconciler_batch_size;
    int64_t reconciler_retry_max_seconds;
    /* groups: the group rooms (groups.c) */
    bool groups_encrypted;                 /* default false */
    int64_t groups_archive_retention_days; /* members removed this long after archiving */
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
    int64_t feed_max_message_bytes; /* larger bodies are dead-lettered unread */
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

/* Validates a module config given as JSON text. Returns 0 or -1 with the
 * offending key's path in err->message. */
int ssp_config_check(const char *json_text, size_t len, ssp_error *err);

/* Parses and validates; on success *out is filled and owns its memory. */
int ssp_config_parse(const char *json_text, size_t len, ssp_config *out, ssp_error *err);
void ssp_config_destroy(ssp_config *config);
const ssp_school *ssp_config_school(const ssp_config *config, const char *id, size_t len);

#endif
