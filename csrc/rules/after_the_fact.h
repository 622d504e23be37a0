/*
 * The rules after the fact (after_the_fact.c): what Synapse lets through
 * with no callback before it, taken back once the event is in the room.
 * The adapter hands over each event that changed a room's current state
 * (Synapse's current state delta stream, on the background-tasks process),
 * and the room's state when asked; the engine decides from that alone
 * whether anything must be done:
 *
 * - one_way: a member event of someone below the moderator level in a
 *   one-way room (the announcement room included) that carries text: a
 *   reason, a key of its own, or a display name or avatar that is not the
 *   member's global profile. Redacted; the profile restored (threat model
 *   R3).
 * - room_creation_forbidden: a third person invited into a direct chat at
 *   the same moment as the second, through another worker. The later
 *   invite is withdrawn (R14).
 * - public_room_forbidden, guest_access_forbidden: a room made here whose
 *   current join rules, history visibility or guest access a remote member
 *   opened, which state resolution can bring back after
 *   check_event_for_spam soft-failed it. Closed again (R13).
 * - A managed room upgraded by a service user: its policy event is carried
 *   into the new room, which Synapse does not copy (R16).
 *
 * The caller reads the event in steps, as the engine asks (NEED_*): most
 * events are decided on whether they are state events and who sent them.
 * Nothing here allocates or waits: an action's audit record is queued, as
 * a denial's is.
 */
#ifndef SSP_RULES_AFTER_THE_FACT_H
#define SSP_RULES_AFTER_THE_FACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rules/request.h"
#include "rule_texts.h"

typedef struct ssp_engine ssp_engine;

/* A JSON value as far as the rules read it: its kind, and its text when it
 * is a string. Borrowed; the text need not be NUL-terminated. */
typedef enum {
    SSP_VALUE_ABSENT = 0,
    SSP_VALUE_NULL,
    SSP_VALUE_BOOL,
    SSP_VALUE_STRING,
    SSP_VALUE_OTHER /* a number, a list, an object */
} ssp_value_kind;

typedef struct ssp_value {
    ssp_value_kind kind;
    const char *text; /* SSP_VALUE_STRING */
    size_t len;
} ssp_value;

/* One key of a member event's content. */
typedef struct ssp_content_key {
    const char *key; /* need not be NUL-terminated */
    size_t key_len;
    ssp_value value;
} ssp_content_key;

/* A member of the room as its current state shows them: joined or invited. */
typedef struct ssp_member_seen {
    const char *event_id; /* their current member event */
    bool joined;          /* join; otherwise invite */
    int64_t stream_ordering;
} ssp_member_seen;

/* The room's current join rules, history visibility or guest access. */
typedef struct ssp_state_seen {
    bool open;           /* a join rule other than invite; world_readable; can_join */
    const char *sender;  /* NULL: the room has no such event */
    const char *event_id;
} ssp_state_seen;

/* What the caller has read so far; each step is asked for by a NEED_*. */
typedef struct ssp_event_seen {
    /* Always. */
    const char *sender;
    bool is_state;

    /* SSP_AFTER_NEED_TYPE */
    bool type_read;
    const char *type;
    const char *state_key; /* NULL: not a state event */

    /* SSP_AFTER_NEED_EVENT */
    bool event_read;
    const char *event_id;
    const char *room_id;
    bool outlier; /* Synapse has not the state at it: nothing to judge */
    int64_t stream_ordering;
    /* m.room.member: the content's keys (at most n_keys; more_keys: there
     * were more than the caller could hold, which counts as text) */
    const ssp_content_key *keys;
    size_t n_keys;
    bool more_keys;
    ssp_value membership;
    /* m.room.tombstone: content.replacement_room */
    ssp_value replacement_room;

    /* SSP_AFTER_NEED_ROOM: the room's current state */
    bool room_read;
    const ssp_room_policy *policy;      /* NULL: no policy event (sender, creator, id set) */
    const ssp_power_levels *power_levels; /* the sender's entry; NULL: none */
    const ssp_room_create *create;      /* NULL: no create event */
    /* the member event the room's state holds for state_key is this event */
    bool is_current;
    ssp_state_seen join_rules, history, guest_access;

    /* SSP_AFTER_NEED_MEMBERS: the room's joined and invited members */
    bool members_read;
    const ssp_member_seen *members;
    size_t n_members;

    /* SSP_AFTER_NEED_PROFILE: the global profile of the member (state_key) */
    bool profile_known;
    ssp_value profile_displayname; /* NULL or STRING */
    ssp_value profile_avatar_url;

    /* SSP_AFTER_NEED_ADMIN: whether the sender is a server admin */
    ssp_fact sender_admin;
} ssp_event_seen;

typedef enum {
    SSP_AFTER_NOTHING = 0,
    SSP_AFTER_NEED_TYPE,    /* read the event's type and state key */
    SSP_AFTER_NEED_EVENT,   /* read the event's id, room, metadata and content */
    SSP_AFTER_NEED_ROOM,    /* read the room's current state (the fields above) */
    SSP_AFTER_NEED_MEMBERS, /* list the room's joined and invited members */
    SSP_AFTER_NEED_PROFILE, /* look up the member's global profile (I/O) */
    SSP_AFTER_NEED_ADMIN,   /* look up whether the sender is a server admin (I/O) */
    /* Redact the event; then, when `restore`, rejoin the member (state_key)
     * with their global profile, as themself. */
    SSP_AFTER_REDACT,
    /* Withdraw the invite the event is: the sender takes back the invite
     * of state_key. */
    SSP_AFTER_WITHDRAW,
    /* Send the state events of `close` (ssp_after_close_state) into the
     * room, as a local member with the power to. */
    SSP_AFTER_CLOSE,
    /* Send the room's policy event, as it is, into replacement_room, as the
     * sender (who upgraded the room). Not audited: nothing is refused. */
    SSP_AFTER_CARRY_POLICY
} ssp_after_kind;

/* The state events of SSP_AFTER_CLOSE, as bits. */
enum {
    SSP_CLOSE_JOIN_RULES = 1u << 0,
    SSP_CLOSE_HISTORY = 1u << 1,
    SSP_CLOSE_GUEST_ACCESS = 1u << 2
};

typedef struct ssp_after_action {
    ssp_after_kind kind;
    /* The actions that take something back (REDACT, WITHDRAW, CLOSE): the
     * rule, whether it is enforced (report-only: audited, nothing done),
     * the school and the queued audit record, as a denial has them. */
    ssp_rule rule;
    bool enforced;
    char school[SSP_SCHOOL_ID_MAX + 1];
    int64_t audit_id;
    bool restore;   /* REDACT */
    unsigned close; /* CLOSE: SSP_CLOSE_* bits */
    /* The event the action undoes (for CLOSE the state event that opened
     * the room; else the event seen). Borrowed from ssp_event_seen. */
    const char *undone_event_id;
} ssp_after_action;

/* Decides what, if anything, must be done about an event after the fact.
 * Reads memory only and allocates nothing until it acts: an action is
 * decided once per undone event (an event seen twice, a room state several
 * events show), and its audit record is queued then. */
void ssp_after_event(ssp_engine *engine, const ssp_event_seen *ev, ssp_after_action *out);

/* The state event `bit` (one SSP_CLOSE_* bit) of a CLOSE action: its type
 * and the one key and value of its content. Returns false for any other
 * value of `bit`. */
bool ssp_after_close_state(unsigned bit, const char **type, const char **key,
                           const char **value);

#endif
