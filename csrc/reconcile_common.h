/*
 * The reconcile state's shared parts (reconcile_common.c): the input
 * checks and the result texts that reconcile.c (the reconcile logic) and both
 * stores' reconcile state (reconcile_file.c, pg_reconcile.c) use, so that both stores
 * answer alike.
 */
#ifndef SSP_RECONCILE_COMMON_H
#define SSP_RECONCILE_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

#define SSP_RECONCILE_ROOM_ID_MAX 255
#define SSP_RECONCILE_ERROR_TEXT_MAX 4096
/* A mark's subject: "" (the school), a user id, or "group:" + a group id
 * (a group's room); the same "group:" + id names a group's room where a
 * room kind is asked for. */
#define SSP_RECONCILE_GROUP_PREFIX "group:"
#define SSP_RECONCILE_SUBJECT_MAX (sizeof SSP_RECONCILE_GROUP_PREFIX - 1 + 255)

/* What a school's status shows besides its config; strings borrowed. */
typedef struct ssp_school_reconcile {
    const char *teachers_room;
    const char *announcement_room;
    uint64_t pending;
    const char *last_error;
    int64_t last_failed_at_ms; /* of last_error, to pick the most recent */
} ssp_school_reconcile;

/* s is UTF-8 of at most max bytes. */
bool ssp_reconcile_text_ok(const char *s, size_t max);
/* school a school id; user_id "", a Matrix user id or "group:" + a group id. */
int ssp_reconcile_check_key(const char *school, const char *user_id, ssp_error *err);
/* "teachers", "announcement" or "group:" + a group id. */
int ssp_reconcile_check_kind(const char *kind, ssp_error *err);
/* One item of the ssp_reconcile_due list: {"school", "user_id",
 * "generation", "attempts"}. NULL when out of memory. */
json_t *ssp_reconcile_due_item(const char *school, const char *user_id, int64_t generation,
                               int64_t attempts);
/* Builds the ssp_reconcile_status JSON; per_school is in config order. */
int ssp_reconcile_status_text(const ssp_config *config, const ssp_school_reconcile *per_school,
                              char **status_json, ssp_error *err);
/* The applied string of a school: compact JSON, fixed key order. */
void ssp_reconcile_applied_text(const ssp_school *school, char *buf, size_t size);

#endif
