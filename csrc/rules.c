/* The stable rule ids and callback names: the one place they are spelled. */
#include <string.h>

#include "ssp.h"

static const char *const RULE_IDS[SSP_RULE__COUNT] = {
    [SSP_RULE_NONE] = "",
    [SSP_RULE_NOT_ON_ROSTER] = "not_on_roster",
    [SSP_RULE_SCHOOL_NOT_ENABLED] = "school_not_enabled",
    [SSP_RULE_ROOM_SCHOOL_NOT_ENABLED] = "room_school_not_enabled",
    [SSP_RULE_ONE_WAY] = "one_way",
    [SSP_RULE_POWER_LEVELS_LOCKED] = "power_levels_locked",
    [SSP_RULE_POLICY_EVENT_LOCKED] = "policy_event_locked",
    [SSP_RULE_NO_SHARED_ROOM] = "no_shared_room",
    [SSP_RULE_ROOM_CREATION_FORBIDDEN] = "room_creation_forbidden",
    [SSP_RULE_PUBLIC_ROOM_FORBIDDEN] = "public_room_forbidden",
    [SSP_RULE_GUEST_ACCESS_FORBIDDEN] = "guest_access_forbidden",
    [SSP_RULE_PUBLISH_FORBIDDEN] = "publish_forbidden",
    [SSP_RULE_ALIAS_FORBIDDEN] = "alias_forbidden",
    [SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN] = "third_party_invite_forbidden",
    [SSP_RULE_JOIN_FORBIDDEN] = "join_forbidden",
    [SSP_RULE_FEDERATION_FORBIDDEN] = "federation_forbidden",
    [SSP_RULE_STAFF_ONLY] = "staff_only",
};

static const char *const CALLBACK_NAMES[SSP_CB__COUNT] = {
    [SSP_CB_CHECK_LOGIN_FOR_SPAM] = "check_login_for_spam",
    [SSP_CB_USER_MAY_JOIN_ROOM] = "user_may_join_room",
    [SSP_CB_USER_MAY_INVITE] = "user_may_invite",
    [SSP_CB_USER_MAY_CREATE_ROOM] = "user_may_create_room",
    [SSP_CB_CHECK_EVENT_FOR_SPAM] = "check_event_for_spam",
    [SSP_CB_FEDERATED_USER_MAY_INVITE] = "federated_user_may_invite",
    [SSP_CB_USER_MAY_PUBLISH_ROOM] = "user_may_publish_room",
    [SSP_CB_USER_MAY_CREATE_ROOM_ALIAS] = "user_may_create_room_alias",
    [SSP_CB_USER_MAY_SEND_3PID_INVITE] = "user_may_send_3pid_invite",
    [SSP_CB_CHECK_USERNAME_FOR_SPAM] = "check_username_for_spam",
    [SSP_CB_IS_USER_EXPIRED] = "is_user_expired",
};

const char *ssp_rule_id(ssp_rule rule)
{
    if ((unsigned)rule >= SSP_RULE__COUNT)
        return "";
    return RULE_IDS[rule];
}

ssp_rule ssp_rule_from_id(const char *id)
{
    for (int r = 1; r < SSP_RULE__COUNT; r++) {
        if (strcmp(RULE_IDS[r], id) == 0)
            return (ssp_rule)r;
    }
    return SSP_RULE_NONE;
}

const char *ssp_callback_name(ssp_callback cb)
{
    if ((unsigned)cb >= SSP_CB__COUNT)
        return NULL;
    return CALLBACK_NAMES[cb];
}
