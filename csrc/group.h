/*
 * One group (a course, a team, a class) as the school cloud sends it
 * (group.c): the parser and validator shared by PUT /groups/{group}, the
 * {"users", "groups"} batch of POST /roster, the roster feed, the command
 * line and the journal replay; its JSON form; the member lookup; the
 * archive test; the version rule. No index and no store here: the index is
 * roster_index.h, the engine API groups.h.
 */
#ifndef SSP_GROUP_H
#define SSP_GROUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SSP_GROUP_ID_MAX 255

typedef enum { SSP_GROUP_ACTIVE = 0, SSP_GROUP_ARCHIVED, SSP_GROUP_DELETED } ssp_group_state;
typedef enum { SSP_GROUP_MEMBER = 0, SSP_GROUP_MODERATOR } ssp_group_role;

typedef struct ssp_group_member {
    const char *user_id; /* points into the group's allocation */
    ssp_group_role role;
} ssp_group_member;

/* One allocation: the struct, the members (sorted by user_id, strcmp), then
 * the strings. Immutable once built: a change replaces the whole group.
 * free() releases it. */
typedef struct ssp_group {
    const char *group_id;
    const char *school; /* the owning school */
    const char *kind;   /* "course" | "team" | "class" */
    const char *name;
    const char *topic; /* NULL when absent */
    bool two_way;      /* default false */
    bool closed;       /* default true */
    ssp_group_state state; /* default active */
    int64_t archive_at_ms; /* 0: none */
    bool has_version;
    int64_t version;
    size_t n_members;
    ssp_group_member members[];
} ssp_group;

/* Parses one group. group_id NULL: taken from body["group"] (the batch);
 * otherwise the path's id (PUT /groups/{group}: a "group" key in the body,
 * if present, must equal it). path prefixes every error ("groups[2]"), so
 * that errors read "groups[2].members[5].role: expected moderator or member";
 * "" for a body of its own ("members[5].role: ..."). server_name NULL:
 * member ids of any server. Returns 0 and sets *out to a new allocation
 * (caller frees), or -1 with SSP_ERR_INPUT (the message names the key path)
 * or SSP_ERR_NOMEM, *out NULL. body is only read. */
int ssp_group_parse(const char *group_id, json_t *body, const char *path,
                    const char *server_name, ssp_group **out, ssp_error *err);
/* The group as JSON (what ssp_group_parse reads back to the same group):
 * a new reference, NULL when out of memory. */
json_t *ssp_group_to_json(const ssp_group *group);
/* The member entry of user_id (len bytes), or NULL. Binary search. */
const ssp_group_member *ssp_group_member_of(const ssp_group *group, const char *user_id,
                                            size_t user_id_len);
/* Archived by state, or by archive_at_ms <= now_ms. A deleted group counts
 * as archived too: its room is read-only and shared by nobody. */
bool ssp_group_is_archived(const ssp_group *group, int64_t now_ms);

/* The version rule: whether incoming replaces stored (NULL: none stored).
 * A snapshot whose version is not higher than the stored one is ignored;
 * a snapshot without a version is applied, and keeps the stored version
 * (ssp_group_copy_as sets it), so a stale message stays stale after it. */
bool ssp_group_supersedes(const ssp_group *stored, const ssp_group *incoming);

/* A copy of group with the given state, version and has_version: the
 * deleted form of a group, or an unversioned snapshot that keeps the stored
 * version. New allocation (caller frees), NULL when out of memory. */
ssp_group *ssp_group_copy_as(const ssp_group *group, ssp_group_state state, bool has_version,
                             int64_t version);

/* The stored form of a group (the embedded store's groups.jsonl): the
 * JSON form with "members" and "moderators" as lists of user ids, which
 * loads several times faster than a list of objects. A new reference, NULL
 * when out of memory. */
json_t *ssp_group_to_stored_json(const ssp_group *group);
/* Reads the stored form back: the rules of ssp_group_parse (member ids of
 * any server). *out a new allocation, or -1 with SSP_ERR_INPUT or
 * SSP_ERR_NOMEM. */
int ssp_group_parse_stored(json_t *body, ssp_group **out, ssp_error *err);

/* The names of the enums, as JSON carries them. */
const char *ssp_group_state_name(ssp_group_state state);
const char *ssp_group_role_name(ssp_group_role role);

/* A group id: 1-255 bytes of printable ASCII without space. Fails with
 * SSP_ERR_INPUT, the message starting with path. */
int ssp_check_group_id(const char *path, const char *group_id, size_t len, ssp_error *err);

#endif
