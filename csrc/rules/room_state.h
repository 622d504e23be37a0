/*
 * A room's state as the rules read it, extracted by the caller (the
 * binding from Synapse's events; the C tests by hand): the policy event,
 * the power levels and the create event. Types only. All strings are
 * borrowed.
 */
#ifndef SSP_ROOM_STATE_H
#define SSP_ROOM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SSP_KIND_UNKNOWN = 0, /* missing or unrecognised: treated as managed, fail closed */
    SSP_KIND_COURSE,
    SSP_KIND_TEAM,
    SSP_KIND_TEACHERS,
    SSP_KIND_ANNOUNCEMENT,
    SSP_KIND_CLASS /* a group room of a school class, one-way like a course */
} ssp_room_kind;

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
    /* The group whose room this is (content.group), or NULL when the
     * content has no `group` key. A `group` that is not a string is "" with
     * group_len 0: a group id no index holds, so the room fails closed like
     * one naming an unknown group (rules/groups.h). */
    const char *group;
    size_t group_len;
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

#endif
