/*
 * A request as the caller extracted it from a Synapse callback, and the
 * decision on it: the types of ssp_decide (decide.h). Types only.
 */
#ifndef SSP_REQUEST_H
#define SSP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "rules/room_state.h"
#include "rule_texts.h"

/* A fact the engine may need but the caller has not supplied yet. */
typedef enum { SSP_FACT_UNKNOWN = 0, SSP_FACT_NO, SSP_FACT_YES } ssp_fact;

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
    /* initial_state holds the room's m.room.guest_access (state key ""),
     * whatever its content: Synapse then adds none of its own */
    bool sets_guest_access;
    /* The body Synapse makes for a room upgrade: creation_content names a
     * predecessor and there is no preset. The caller passes the
     * predecessor's id as the request's room_id. */
    bool is_upgrade;
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
    /* invitee, or NULL. For the callbacks of signing in (check_login_for_spam,
     * on_user_login, check_registration_for_spam, is_user_expired): the
     * identity provider's id as Synapse names it ("oidc-school-cloud"), or
     * NULL; recorded as the audit record's target, never judged as a user. */
    const char *target;
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
    SSP_VERDICT_NEED_MEMBER_COUNT, /* count the room's joined and invited users, ask again */
    /* Not from ssp_decide: the binding's after_event answers these for
     * SSP_AFTER_NEED_PROFILE and SSP_AFTER_NEED_MEMBERS
     * (rules/after_the_fact.h), facts the adapter looks up like the
     * others (with SSP_VERDICT_NEED_ROOM and _NEED_ADMIN for theirs). */
    SSP_VERDICT_NEED_PROFILE,
    SSP_VERDICT_NEED_MEMBERS
} ssp_verdict;

typedef struct ssp_decision {
    ssp_verdict verdict;
    ssp_rule rule;           /* set when verdict is DENY */
    bool enforced;           /* false: report-only, the caller lets the action through */
    const char *message;     /* static text for the client, set when DENY */
    char school[SSP_SCHOOL_ID_MAX + 1]; /* school the rule applied for, or "" */
    /* DENY: the id of the audit record queued for it, to wait for with
     * ssp_decision_wait_durable; 0 when none was queued (is_user_expired's
     * repeats, a denial past the flood limit, an engine without a store,
     * out of memory). */
    int64_t audit_id;
    /* DENY: > 0 when the denial is past the flood limit (audit.flood): it
     * is counted in a summary record, not a record of its own, and the
     * actor may try again in this many ms (M_LIMIT_EXCEEDED). The rule,
     * message and enforced are the denial's, as without the limit. */
    int64_t retry_after_ms;
} ssp_decision;

#endif
