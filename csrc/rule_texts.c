/*
 * The rules' texts, spelled once: for each rule its stable id, its name on
 * the audit page and what a client is told, in English and German; and the
 * Synapse callbacks' names. Index: ssp_rule (ssp_callback).
 *
 * A rule has a usual message and, for some, messages for situations where
 * the usual one would mislead (ssp_rule_situation): an invitee who breaks
 * the rule, a reaction in a one-way channel. A situation a rule has no
 * message for gets the usual one. Clients get the English message; the
 * audit page shows the names and usual messages in both languages.
 */
#include <string.h>

#include "rule_texts.h"

typedef struct rule_text {
    const char *en;
    const char *de;
} rule_text;

typedef struct rule_info {
    const char *id; /* stable: audit records, the client's error, docs/rules.md */
    rule_text name;
    rule_text says[SSP_SAY__COUNT]; /* [SSP_SAY_USUAL] always; others when they differ */
} rule_info;

static const rule_info RULES[SSP_RULE__COUNT] = {
    [SSP_RULE_NONE] = {"", {"", ""}, {[SSP_SAY_USUAL] = {"", ""}}},
    [SSP_RULE_NOT_ON_ROSTER] =
        {"not_on_roster",
         {"Not on the school roster", "Nicht im Schulverzeichnis"},
         {[SSP_SAY_USUAL] = {"You are not on a school roster, so you cannot use the messenger.",
                             "Du stehst in keinem Schulverzeichnis und kannst den Messenger daher "
                             "nicht nutzen."},
          [SSP_SAY_ABOUT_TARGET] = {"The invited user is not on a school roster.",
                                    "Die eingeladene Person steht in keinem Schulverzeichnis."}}},
    [SSP_RULE_SCHOOL_NOT_ENABLED] =
        {"school_not_enabled",
         {"School has not enabled the messenger", "Messenger für die Schule nicht freigeschaltet"},
         {[SSP_SAY_USUAL] = {"The messenger is not enabled for your school.",
                             "Der Messenger ist für deine Schule nicht freigeschaltet."},
          [SSP_SAY_ABOUT_TARGET] = {"The messenger is not enabled for the invited user's school.",
                                    "Der Messenger ist für die Schule der eingeladenen Person "
                                    "nicht freigeschaltet."}}},
    [SSP_RULE_ROOM_SCHOOL_NOT_ENABLED] =
        {"room_school_not_enabled",
         {"Room of a school without the messenger", "Raum einer Schule ohne Messenger"},
         {[SSP_SAY_USUAL] = {"This room belongs to a school whose messenger is not enabled.",
                             "Dieser Raum gehört zu einer Schule, deren Messenger nicht "
                             "freigeschaltet ist."}}},
    [SSP_RULE_ONE_WAY] =
        {"one_way",
         {"One-way channel", "Einweg-Kanal"},
         {[SSP_SAY_USUAL] = {"Only teachers can post in this channel.",
                             "In diesem Kanal können nur Lehrkräfte schreiben."},
          [SSP_SAY_REACTION] = {"Only emoji reactions are possible in this channel.",
                                "In diesem Kanal sind nur Emoji-Reaktionen möglich."},
          [SSP_SAY_INVITE] = {"Only teachers can invite people into this channel.",
                              "Nur Lehrkräfte können Personen in diesen Kanal einladen."}}},
    [SSP_RULE_POWER_LEVELS_LOCKED] =
        {"power_levels_locked",
         {"Power levels are managed", "Berechtigungen werden verwaltet"},
         {[SSP_SAY_USUAL] = {"Power levels in school rooms are managed by the school.",
                             "Die Berechtigungen in Schulräumen verwaltet die Schule."}}},
    [SSP_RULE_POLICY_EVENT_LOCKED] =
        {"policy_event_locked",
         {"Room settings are managed", "Raumeinstellungen werden verwaltet"},
         {[SSP_SAY_USUAL] = {"This room's school settings are managed by the school.",
                             "Die Schuleinstellungen dieses Raums verwaltet die Schule."}}},
    [SSP_RULE_NO_SHARED_ROOM] =
        {"no_shared_room",
         {"No shared class or team", "Keine gemeinsame Klasse oder Gruppe"},
         {[SSP_SAY_USUAL] = {"You can only contact people you share a class or team with.",
                             "Du kannst nur Personen erreichen, mit denen du eine Klasse oder "
                             "Gruppe teilst."}}},
    [SSP_RULE_ROOM_CREATION_FORBIDDEN] =
        {"room_creation_forbidden",
         {"Group room creation not allowed", "Gruppenraum anlegen nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"You cannot create group rooms at your school; direct chats are "
                             "possible.",
                             "An deiner Schule kannst du keine Gruppenräume anlegen; Direktchats "
                             "sind möglich."},
          [SSP_SAY_DIRECT_CHAT] = {"A direct chat is for two people; a teacher can create a group "
                                   "room.",
                                   "Ein Direktchat ist für zwei Personen; eine Lehrkraft kann "
                                   "einen Gruppenraum anlegen."}}},
    [SSP_RULE_PUBLIC_ROOM_FORBIDDEN] =
        {"public_room_forbidden",
         {"Public room not allowed", "Öffentlicher Raum nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Rooms cannot be made public.",
                             "Räume können nicht öffentlich gemacht werden."}}},
    [SSP_RULE_GUEST_ACCESS_FORBIDDEN] =
        {"guest_access_forbidden",
         {"Guest access not allowed", "Gastzugang nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Rooms cannot be opened to guests.",
                             "Räume können nicht für Gäste geöffnet werden."}}},
    [SSP_RULE_PUBLISH_FORBIDDEN] =
        {"publish_forbidden",
         {"Room directory not allowed", "Raumverzeichnis nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Rooms cannot be published in the room directory.",
                             "Räume können nicht im Raumverzeichnis veröffentlicht werden."}}},
    [SSP_RULE_ALIAS_FORBIDDEN] =
        {"alias_forbidden",
         {"Room address not allowed", "Raumadresse nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Room addresses (aliases) cannot be created.",
                             "Raumadressen (Aliase) können nicht angelegt werden."}}},
    [SSP_RULE_THIRD_PARTY_INVITE_FORBIDDEN] =
        {"third_party_invite_forbidden",
         {"Email or phone invite not allowed", "Einladung per E-Mail oder Telefon nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Invitations by email or phone number are not possible.",
                             "Einladungen per E-Mail oder Telefonnummer sind nicht möglich."}}},
    [SSP_RULE_JOIN_FORBIDDEN] =
        {"join_forbidden",
         {"Join without invite not allowed", "Beitritt ohne Einladung nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"You can only join your school's rooms when you are invited.",
                             "Den Räumen deiner Schule kannst du nur mit einer Einladung "
                             "beitreten."}}},
    [SSP_RULE_FEDERATION_FORBIDDEN] =
        {"federation_forbidden",
         {"Other servers not allowed", "Andere Server nicht erlaubt"},
         {[SSP_SAY_USUAL] = {"Users of other servers cannot contact users here.",
                             "Nutzer anderer Server können hier niemanden erreichen."},
          [SSP_SAY_OTHER_SERVER] = {"You cannot join rooms of other servers.",
                                    "Räumen anderer Server kannst du nicht beitreten."}}},
    [SSP_RULE_STAFF_ONLY] =
        {"staff_only",
         {"Teachers' room is staff only", "Lehrerzimmer nur für Lehrkräfte"},
         {[SSP_SAY_USUAL] = {"The teachers' room is only for the school's teachers and admins.",
                             "Das Lehrerzimmer ist nur für Lehrkräfte und Schulleitung der "
                             "Schule."},
          [SSP_SAY_ABOUT_TARGET] = {"Only the school's teachers and admins can be in the teachers' "
                                    "room.",
                                    "Im Lehrerzimmer können nur Lehrkräfte und Schulleitung der "
                                    "Schule sein."}}},
};

/* For a rule id out of range; no decision denies without a rule. */
static const rule_text UNKNOWN_RULE = {"This action is not allowed by the school policy.",
                                       "Diese Aktion erlaubt die Schulrichtlinie nicht."};

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
    [SSP_CB_AFTER_THE_FACT] = "after_the_fact",
};

const char *ssp_rule_id(ssp_rule rule)
{
    if ((unsigned)rule >= SSP_RULE__COUNT)
        return "";
    return RULES[rule].id;
}

ssp_rule ssp_rule_from_id(const char *id)
{
    for (int r = 1; r < SSP_RULE__COUNT; r++) {
        if (strcmp(RULES[r].id, id) == 0)
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

const char *ssp_rule_name(ssp_rule rule, bool german)
{
    if ((unsigned)rule >= SSP_RULE__COUNT)
        return "";
    return german ? RULES[rule].name.de : RULES[rule].name.en;
}

const char *ssp_rule_message(ssp_rule rule, ssp_rule_situation situation, bool german)
{
    const rule_text *text = &UNKNOWN_RULE;

    if (rule > SSP_RULE_NONE && (unsigned)rule < SSP_RULE__COUNT) {
        text = &RULES[rule].says[SSP_SAY_USUAL];
        if ((unsigned)situation < SSP_SAY__COUNT && RULES[rule].says[situation].en != NULL)
            text = &RULES[rule].says[situation];
    }
    return german ? text->de : text->en;
}
