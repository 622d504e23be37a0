/* The stable rule ids and callback names: the one place they are spelled. */
#include <string.h>

#include "engine.h"

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
    [SSP_CB_ON_USER_LOGIN] = "on_user_login",
    [SSP_CB_CHECK_REGISTRATION_FOR_SPAM] = "check_registration_for_spam",
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

/* Plain-language names of the rules for the audit page, and the German
 * version of the message a client gets (decide.c holds the English one).
 * Index: ssp_rule. */
static const char *const RULE_NAMES_EN[SSP_RULE__COUNT] = {
    [SSP_RULE_NONE] = "",
    [SSP_RULE_NOT_ON_ROSTER] = "Not on the school roster",
    [SSP_RULE_SCHOOL_NOT_ENABLED] = "School has not enabled the messenger",
    [SSP_RULE_ROOM_SCHOOL_NOT_ENABLED] = "Room of a school without the messenger",
    [SSP_RULE_ONE_WAY] = "One-way channel",
    [SSP_RULE_POWER_LEVELS_LOCKED] = "Power levels are managed",
    [SSP_RULE_POLICY_EVENT_LOCKED] = "Room settings are managed",
    [SSP_RULE_NO_SHARED_ROOM] = "No shared class or team",
    [SSP_RULE_ROOM_CREATION_FORBIDDEN] = "Group room creation not allowed",
    [SSP_RULE_PUBLIC_ROOM_FORBIDDEN] = "Public room not allowed",
    [SSP_RULE_GUEST_ACCESS_FORBIDDEN] = "Guest access not allowed",
    [SSP_RULE_PUBLISH_FORBIDDEN] = "Room directory not allowed",
    [SSP_RULE_ALIAS_FORBIDDEN] = "Room address not allowed",
    [SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN] = "Email or phone invite not allowed",
    [SSP_RULE_JOIN_FORBIDDEN] = "Join without invite not allowed",
    [SSP_RULE_FEDERATION_FORBIDDEN] = "Other servers not allowed",
    [SSP_RULE_STAFF_ONLY] = "Teachers' room is staff only",
};

static const char *const RULE_NAMES_DE[SSP_RULE__COUNT] = {
    [SSP_RULE_NONE] = "",
    [SSP_RULE_NOT_ON_ROSTER] = "Nicht im Schulverzeichnis",
    [SSP_RULE_SCHOOL_NOT_ENABLED] = "Messenger für die Schule nicht freigeschaltet",
    [SSP_RULE_ROOM_SCHOOL_NOT_ENABLED] = "Raum einer Schule ohne Messenger",
    [SSP_RULE_ONE_WAY] = "Einweg-Kanal",
    [SSP_RULE_POWER_LEVELS_LOCKED] = "Berechtigungen werden verwaltet",
    [SSP_RULE_POLICY_EVENT_LOCKED] = "Raumeinstellungen werden verwaltet",
    [SSP_RULE_NO_SHARED_ROOM] = "Keine gemeinsame Klasse oder Gruppe",
    [SSP_RULE_ROOM_CREATION_FORBIDDEN] = "Gruppenraum anlegen nicht erlaubt",
    [SSP_RULE_PUBLIC_ROOM_FORBIDDEN] = "Öffentlicher Raum nicht erlaubt",
    [SSP_RULE_GUEST_ACCESS_FORBIDDEN] = "Gastzugang nicht erlaubt",
    [SSP_RULE_PUBLISH_FORBIDDEN] = "Raumverzeichnis nicht erlaubt",
    [SSP_RULE_ALIAS_FORBIDDEN] = "Raumadresse nicht erlaubt",
    [SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN] = "Einladung per E-Mail oder Telefon nicht erlaubt",
    [SSP_RULE_JOIN_FORBIDDEN] = "Beitritt ohne Einladung nicht erlaubt",
    [SSP_RULE_FEDERATION_FORBIDDEN] = "Andere Server nicht erlaubt",
    [SSP_RULE_STAFF_ONLY] = "Lehrerzimmer nur für Lehrkräfte",
};

static const char *const RULE_MESSAGES_DE[SSP_RULE__COUNT] = {
    [SSP_RULE_NONE] = "",
    [SSP_RULE_NOT_ON_ROSTER] =
        "Du stehst in keinem Schulverzeichnis und kannst den Messenger daher nicht nutzen.",
    [SSP_RULE_SCHOOL_NOT_ENABLED] = "Der Messenger ist für deine Schule nicht freigeschaltet.",
    [SSP_RULE_ROOM_SCHOOL_NOT_ENABLED] =
        "Dieser Raum gehört zu einer Schule, deren Messenger nicht freigeschaltet ist.",
    [SSP_RULE_ONE_WAY] = "In diesem Kanal können nur Lehrkräfte schreiben.",
    [SSP_RULE_POWER_LEVELS_LOCKED] = "Die Berechtigungen in Schulräumen verwaltet die Schule.",
    [SSP_RULE_POLICY_EVENT_LOCKED] = "Die Schuleinstellungen dieses Raums verwaltet die Schule.",
    [SSP_RULE_NO_SHARED_ROOM] =
        "Du kannst nur Personen erreichen, mit denen du eine Klasse oder Gruppe teilst.",
    [SSP_RULE_ROOM_CREATION_FORBIDDEN] =
        "An deiner Schule kannst du keine Gruppenräume anlegen; Direktchats sind möglich.",
    [SSP_RULE_PUBLIC_ROOM_FORBIDDEN] = "Räume können nicht öffentlich gemacht werden.",
    [SSP_RULE_GUEST_ACCESS_FORBIDDEN] = "Räume können nicht für Gäste geöffnet werden.",
    [SSP_RULE_PUBLISH_FORBIDDEN] = "Räume können nicht im Raumverzeichnis veröffentlicht werden.",
    [SSP_RULE_ALIAS_FORBIDDEN] = "Raumadressen (Aliase) können nicht angelegt werden.",
    [SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN] =
        "Einladungen per E-Mail oder Telefonnummer sind nicht möglich.",
    [SSP_RULE_JOIN_FORBIDDEN] =
        "Den Räumen deiner Schule kannst du nur mit einer Einladung beitreten.",
    [SSP_RULE_FEDERATION_FORBIDDEN] = "Nutzer anderer Server können hier niemanden erreichen.",
    [SSP_RULE_STAFF_ONLY] = "Das Lehrerzimmer ist nur für Lehrkräfte und Schulleitung der Schule.",
};

const char *ssp_rule_name(ssp_rule rule, bool german)
{
    if ((unsigned)rule >= SSP_RULE__COUNT)
        return "";
    return german ? RULE_NAMES_DE[rule] : RULE_NAMES_EN[rule];
}

const char *ssp_rule_message_de(ssp_rule rule)
{
    if ((unsigned)rule >= SSP_RULE__COUNT)
        return "";
    return RULE_MESSAGES_DE[rule];
}
