/*
 * The engine's group API (groups.c): PUT, GET and DELETE /groups/{group},
 * GET /groups?school=, a user's groups, the plan the reconciler carries
 * out for a group's room, and the groups half of the POST /roster batch
 * (roster.c). A write is made durable through the store (store.h), which
 * marks (school, "group:" + id) in the reconcile state, before it is
 * applied to the index (roster_index.h). The group itself is group.h.
 *
 * Threads: every function may be called from any thread; writes block on
 * the store (call them without the GIL), reads are of memory under the
 * roster's read lock, except ssp_group_get, which asks the store for the
 * group's room.
 */
#ifndef SSP_GROUPS_H
#define SSP_GROUPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "group.h"

typedef struct ssp_engine ssp_engine;

/* The "groups" list of a batch body (absent: *n = 0, *groups NULL): every
 * group with its id in the body, members of server_name (NULL: any), each
 * group id once; errors name the path ("groups[2].members[5].role: ...").
 * *groups is a new array of new groups (ssp_groups_free). */
int ssp_groups_parse_batch(json_t *body, const char *server_name, ssp_group ***groups, size_t *n,
                           ssp_error *err);
void ssp_groups_free(ssp_group **groups, size_t n);

/* Refuses a group of a school the config does not have, naming the path
 * ("groups[3].school", or "school" for a body of its own: batch false). */
int ssp_groups_check_schools(ssp_engine *engine, ssp_group *const *groups, size_t n, bool batch,
                             ssp_error *err);

/* Applies the version rule to each group against the index, then stores the
 * groups that pass (durably; the store marks them for reconciliation) and
 * applies them, all under the roster's write mutex. Takes every groups[i]
 * (set to NULL). ignored (n entries, or NULL) says which were stale;
 * *applied counts the others. A snapshot without a version keeps the stored
 * version; an archived one without a time of archiving gets now as its
 * archive_at_ms (the retention counts from it). */
int ssp_groups_commit(ssp_engine *engine, ssp_group **groups, size_t n, bool *ignored,
                      size_t *applied, ssp_error *err);

/* PUT /groups/{group}. *group_json receives the stored group (caller
 * frees), with "ignored": true when the body's version was not higher than
 * the stored one (nothing changed then). Durable before return. */
int ssp_group_put(ssp_engine *engine, const char *group_id, const char *body, size_t len,
                  char **group_json, ssp_error *err);
/* GET /groups/{group}: the group with "room_id" (the recorded room or
 * null); *group_json NULL when the index has no such group. */
int ssp_group_get(ssp_engine *engine, const char *group_id, char **group_json, ssp_error *err);
/* DELETE /groups/{group}: stores the group as deleted with a version above
 * the stored one. *existed false (nothing written) when there is none. */
int ssp_group_delete(ssp_engine *engine, const char *group_id, bool *existed, ssp_error *err);
/* GET /groups?school=: {"groups": [...], "next": id or null}, ordered by
 * group id, the groups after `from` (NULL: from the first), at most limit
 * (1..1000). Deleted groups are listed too (state "deleted"). */
int ssp_groups_list(ssp_engine *engine, const char *school, const char *from, size_t limit,
                    char **page_json, ssp_error *err);
/* The ids of the groups listing user_id, sorted: a JSON list. */
int ssp_groups_of(ssp_engine *engine, const char *user_id, char **ids_json, ssp_error *err);
/* What the reconciler must make true of the group's room at now_ms (< 0:
 * the clock's now; see
 * docs/groups.md): the group's fields, "state" (archived also when
 * archive_at_ms passed), "remove_members_now", "encrypted", "policy" (the
 * policy event's content) and "members" [{"user_id", "role", "member",
 * "power_level", "why"}]. *plan_json NULL when the index has no such group. */
int ssp_group_plan(ssp_engine *engine, const char *group_id, int64_t now_ms, char **plan_json,
                   ssp_error *err);
/* Groups in the index (deleted ones included). */
size_t ssp_groups_count(ssp_engine *engine);

#endif
