/*
 * The rules' texts (rule_texts.c): the rule ids, the Synapse callbacks, and for
 * each rule its stable id, its names and its messages in English and
 * German, spelled in one table.
 */
#ifndef SSP_RULE_TEXTS_H
#define SSP_RULE_TEXTS_H

#include <stdbool.h>

/* Rule ids. The order is part of nothing external: only the strings from
 * ssp_rule_id() are stable, and they are listed once, in rule_texts.c. */
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
    /* account validity, after single sign-on and before the browser gets its
     * one-time login token: refuses at the end of the SSO flow */
    SSP_CB_ON_USER_LOGIN,
    /* an account that single sign-on is about to create (Synapse's
     * auth_provider_id set); without a provider it is the school cloud's
     * own registration, allowed */
    SSP_CB_CHECK_REGISTRATION_FOR_SPAM,
    /* no Synapse callback: what the module takes back after the fact, from
     * the changes of rooms' state (rules/after_the_fact.c) */
    SSP_CB_AFTER_THE_FACT,
    SSP_CB__COUNT
} ssp_callback;

/* When a denial tells the client more than the rule's usual message
 */
typedef enum {
    SSP_SAY_USUAL = 0,
    SSP_SAY_ABOUT_TARGET, /* the invitee, not the actor, breaks the rule */
    SSP_SAY_REACTION,     /* one_way: a reaction that is not an emoji on an event */
    SSP_SAY_INVITE,       /* one_way: an invite into the channel */
    SSP_SAY_OTHER_SERVER, /* federation_forbidden: joining a room of another server */
    SSP_SAY_DIRECT_CHAT,  /* room_creation_forbidden: a third person in a direct chat */
    SSP_SAY__COUNT
} ssp_rule_situation;

/* The rule's name on the audit page (rules.c). */
const char *ssp_rule_name(ssp_rule rule, bool german);
/* What a client is told when the rule denies in `situation`: the rule's
 * usual message where it has none for the situation. */
const char *ssp_rule_message(ssp_rule rule, ssp_rule_situation situation, bool german);

const char *ssp_rule_id(ssp_rule rule);           /* "" for SSP_RULE_NONE */
ssp_rule ssp_rule_from_id(const char *id);        /* SSP_RULE_NONE if unknown */
const char *ssp_callback_name(ssp_callback cb);   /* NULL if out of range */

#endif
