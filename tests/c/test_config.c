/* Configuration parsing and validation (config.c). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

/* Parses `text`; on failure copies the message to err. */
static int parse(const char *text, ssp_config *config, ssp_error *err)
{
    memset(err, 0, sizeof *err);
    return ssp_config_parse(text, strlen(text), config, err);
}

static void config_defaults_apply_when_only_data_dir_is_given(void)
{
    ssp_config c;
    ssp_error err;

    REQUIRE_OK(parse("{\"data_dir\": \"/var/lib/ssp\"}", &c, &err), err);
    CHECK_STR_EQ(c.data_dir, "/var/lib/ssp");
    CHECK(c.database == NULL);
    CHECK_STR_EQ(c.policy_event_type, "org.synapse_school_policy.room");
    CHECK_STR_EQ(c.policy_event_type, SSP_DEFAULT_POLICY_EVENT_TYPE);
    CHECK_INT_EQ(c.moderator_level, 50);
    CHECK_INT_EQ(c.n_service_users, 0);
    CHECK_INT_EQ(c.n_one_way_allowed_events, 0);
    CHECK(!c.unlisted_allow);
    CHECK(c.strict_homeserver_config);
    CHECK(c.enforce);
    CHECK_INT_EQ(c.audit_retention_days, 90);
    CHECK(!c.audit_include_content);
    CHECK_INT_EQ(c.flood_denials_per_minute, 30);
    CHECK_INT_EQ(c.flood_burst, 10);
    CHECK_INT_EQ(c.flood_summary_seconds, 10);
    CHECK(!c.groups_encrypted);
    CHECK_INT_EQ(c.groups_archive_retention_days, 365);
    CHECK_INT_EQ(c.n_schools, 0);
    ssp_config_destroy(&c);
}

static void config_school_given_as_null_takes_every_school_default(void)
{
    ssp_config c;
    ssp_error err;
    const ssp_school *s;

    REQUIRE_OK(parse("{\"data_dir\": \"/d\", \"schools\": {\"gym-nord\": null, \"rs-ost\": {}}}", &c,
                     &err),
               err);
    REQUIRE_INT_EQ(c.n_schools, 2);
    for (size_t i = 0; i < 2; i++) {
        s = &c.schools[i];
        CHECK(!s->messenger);
        CHECK(s->teachers_room);
        CHECK(!s->announcement_room);
        CHECK(s->enforce);
        CHECK_INT_EQ(s->room_creation, SSP_CREATE_TEACHERS);
    }
    CHECK_STR_EQ(c.schools[0].id, "gym-nord");
    CHECK_STR_EQ(c.schools[1].id, "rs-ost");
    ssp_config_destroy(&c);
}

static const char FULL_CONFIG[] =
    "{\"service_users\": [\"@bot:school.example\", \"@sync:school.example\"],"
    " \"data_dir\": \"/var/lib/ssp\","
    " \"policy_event_type\": \"de.example.school_room\","
    " \"moderator_level\": 75,"
    " \"one_way_allowed_events\": [\"m.reaction\", \"m.room.redaction\"],"
    " \"unlisted_users\": \"allow\","
    " \"strict_homeserver_config\": false,"
    " \"enforce\": false,"
    " \"audit\": {\"retention_days\": 30, \"include_content\": true,"
    "   \"flood\": {\"denials_per_minute\": 12, \"burst\": 4, \"summary_seconds\": 60}},"
    " \"groups\": {\"encrypted\": true, \"archive_retention_days\": 30},"
    " \"schools\": {"
    "   \"gym-nord\": {\"messenger\": true, \"teachers_room\": false, \"announcement_room\": true,"
    "                \"room_creation\": \"everyone\", \"enforce\": true},"
    "   \"rs-ost\": {\"room_creation\": \"service_users\"}"
    " }}";

static void config_full_config_sets_every_value(void)
{
    ssp_config c;
    ssp_error err;
    const ssp_school *nord, *ost;

    REQUIRE_OK(parse(FULL_CONFIG, &c, &err), err);
    REQUIRE_INT_EQ(c.n_service_users, 2);
    CHECK_STR_EQ(c.service_users[0], "@bot:school.example");
    CHECK_STR_EQ(c.service_users[1], "@sync:school.example");
    CHECK_STR_EQ(c.policy_event_type, "de.example.school_room");
    CHECK_INT_EQ(c.moderator_level, 75);
    REQUIRE_INT_EQ(c.n_one_way_allowed_events, 2);
    CHECK_STR_EQ(c.one_way_allowed_events[1], "m.room.redaction");
    CHECK(c.unlisted_allow);
    CHECK(!c.strict_homeserver_config);
    CHECK(!c.enforce);
    CHECK_INT_EQ(c.audit_retention_days, 30);
    CHECK(c.audit_include_content);
    CHECK_INT_EQ(c.flood_denials_per_minute, 12);
    CHECK_INT_EQ(c.flood_burst, 4);
    CHECK_INT_EQ(c.flood_summary_seconds, 60);
    CHECK(c.groups_encrypted);
    CHECK_INT_EQ(c.groups_archive_retention_days, 30);
    REQUIRE_INT_EQ(c.n_schools, 2);
    nord = ssp_config_school(&c, "gym-nord", 8);
    ost = ssp_config_school(&c, "rs-ost", 6);
    REQUIRE(nord != NULL && ost != NULL);
    CHECK(nord->messenger);
    CHECK(!nord->teachers_room);
    CHECK(nord->announcement_room);
    CHECK_INT_EQ(nord->room_creation, SSP_CREATE_EVERYONE);
    CHECK(nord->enforce);
    CHECK(!ost->messenger);
    CHECK_INT_EQ(ost->room_creation, SSP_CREATE_SERVICE_USERS);
    CHECK(!ost->enforce);
    CHECK(ssp_strmap_get(&c.service_user_set, "@sync:school.example") != NULL);
    CHECK(ssp_strmap_get(&c.service_user_set, "@other:school.example") == NULL);
    ssp_config_destroy(&c);
}

static void config_check_accepts_a_full_config(void)
{
    ssp_error err = {0};

    CHECK_OK(ssp_config_check(FULL_CONFIG, strlen(FULL_CONFIG), &err), err);
}

static void config_check_reads_only_len_bytes(void)
{
    /* Not NUL-terminated: the buffer ends right after the closing brace. */
    static const char text[] = "{\"data_dir\": \"/d\"}GARBAGE";
    char *buf = malloc(18);
    ssp_error err = {0};

    REQUIRE(buf != NULL);
    memcpy(buf, text, 18);
    CHECK_OK(ssp_config_check(buf, 18, &err), err);
    free(buf);
}

static void config_school_lookup_uses_the_given_length(void)
{
    ssp_config c;
    ssp_error err;

    REQUIRE_OK(parse("{\"data_dir\": \"/d\", \"schools\": {\"gym\": {}, \"gym-nord\": {}}}", &c, &err),
               err);
    CHECK(ssp_config_school(&c, "gym-nord-x", 3) == &c.schools[0]);
    CHECK(ssp_config_school(&c, "gym-nord-x", 8) == &c.schools[1]);
    CHECK(ssp_config_school(&c, "gym-nord-x", 10) == NULL);
    CHECK(ssp_config_school(&c, "", 0) == NULL);
    ssp_config_destroy(&c);
}

typedef struct bad_case {
    const char *members; /* added to {"data_dir": "/d", ...} */
    const char *message; /* the whole expected message */
} bad_case;

static const bad_case BAD_CASES[] = {
    {"\"unknown_key\": 1", "unknown_key: unknown key"},
    {"\"service_users\": \"@bot:x\"",
     "service_users: expected a list of Matrix user ids (@user:server)"},
    {"\"service_users\": [\"@bot:x\", 5]", "service_users[1]: expected a non-empty string"},
    {"\"service_users\": [\"@bot:x\", \"\"]", "service_users[1]: expected a non-empty string"},
    {"\"service_users\": [\"@bot:x\", \"bob\"]",
     "service_users[1]: expected Matrix user ids (@user:server), got \"bob\""},
    {"\"service_users\": [\"@bot:x\", \"@bob\"]",
     "service_users[1]: expected Matrix user ids (@user:server), got \"@bob\""},
    {"\"database\": 5", "database: expected a non-empty string or null"},
    {"\"database\": \"\"", "database: expected a non-empty string or null"},
    {"\"policy_event_type\": 1", "policy_event_type: expected a non-empty string"},
    {"\"policy_event_type\": null", "policy_event_type: expected a non-empty string"},
    {"\"policy_event_type\": \"m.room.school\"",
     "policy_event_type: the m. namespace is reserved by the Matrix spec; use a namespaced type "
     "such as org.synapse_school_policy.room"},
    {"\"moderator_level\": \"50\"", "moderator_level: expected an integer"},
    {"\"moderator_level\": 50.5", "moderator_level: expected an integer"},
    {"\"moderator_level\": 9007199254740992",
     "moderator_level: expected an integer from -9007199254740991 to 9007199254740991"},
    {"\"one_way_allowed_events\": \"m.reaction\"",
     "one_way_allowed_events: expected a list of event types"},
    {"\"one_way_allowed_events\": [\"m.reaction\", null]",
     "one_way_allowed_events[1]: expected a non-empty string"},
    {"\"unlisted_users\": \"maybe\"", "unlisted_users: expected one of deny, allow"},
    {"\"unlisted_users\": true", "unlisted_users: expected one of deny, allow"},
    {"\"strict_homeserver_config\": \"yes\"", "strict_homeserver_config: expected a boolean"},
    {"\"enforce\": 1", "enforce: expected a boolean"},
    {"\"audit\": []", "audit: expected a mapping"},
    {"\"audit\": {\"retention_days\": \"90\"}", "audit.retention_days: expected an integer"},
    {"\"audit\": {\"retention_days\": -1}",
     "audit.retention_days: expected an integer from 0 to 36500"},
    {"\"audit\": {\"retention_days\": 36501}",
     "audit.retention_days: expected an integer from 0 to 36500"},
    {"\"audit\": {\"flood\": 30}", "audit.flood: expected a mapping"},
    {"\"groups\": true", "groups: expected a mapping"},
    {"\"groups\": {\"x\": 1}", "groups.x: unknown key"},
    {"\"groups\": {\"encrypted\": \"no\"}", "groups.encrypted: expected a boolean"},
    {"\"groups\": {\"archive_retention_days\": -1}",
     "groups.archive_retention_days: expected an integer from 0 to 36500"},
    {"\"groups\": {\"archive_retention_days\": 1.5}",
     "groups.archive_retention_days: expected an integer"},
    {"\"audit\": {\"flood\": {\"per_minute\": 30}}", "audit.flood.per_minute: unknown key"},
    {"\"audit\": {\"flood\": {\"denials_per_minute\": 0}}",
     "audit.flood.denials_per_minute: expected an integer from 1 to 60000"},
    {"\"audit\": {\"flood\": {\"denials_per_minute\": 1.5}}",
     "audit.flood.denials_per_minute: expected an integer"},
    {"\"audit\": {\"flood\": {\"burst\": 0}}",
     "audit.flood.burst: expected an integer from 1 to 1000000"},
    {"\"audit\": {\"flood\": {\"burst\": true}}", "audit.flood.burst: expected an integer"},
    {"\"audit\": {\"flood\": {\"summary_seconds\": 301}}",
     "audit.flood.summary_seconds: expected an integer from 1 to 300"},
    {"\"audit\": {\"flood\": {\"summary_seconds\": 0}}",
     "audit.flood.summary_seconds: expected an integer from 1 to 300"},
    {"\"audit\": {\"include_content\": \"no\"}", "audit.include_content: expected a boolean"},
    {"\"audit\": {\"keep\": 1}", "audit.keep: unknown key"},
    {"\"schools\": []", "schools: expected a mapping of school id to settings"},
    {"\"schools\": {\"gym-nord\": 5}", "schools.gym-nord: expected a mapping"},
    {"\"schools\": {\"gym-nord\": {\"messenger\": \"yes\"}}",
     "schools.gym-nord.messenger: expected a boolean"},
    {"\"schools\": {\"gym-nord\": {\"teachers_room\": 1}}",
     "schools.gym-nord.teachers_room: expected a boolean"},
    {"\"schools\": {\"gym-nord\": {\"announcement_room\": null}}",
     "schools.gym-nord.announcement_room: expected a boolean"},
    {"\"schools\": {\"gym-nord\": {\"enforce\": \"true\"}}",
     "schools.gym-nord.enforce: expected a boolean"},
    {"\"schools\": {\"gym-nord\": {\"room_creation\": \"admins\"}}",
     "schools.gym-nord.room_creation: expected one of service_users, teachers, everyone"},
    {"\"schools\": {\"gym-nord\": {\"room_creation\": 1}}",
     "schools.gym-nord.room_creation: expected one of service_users, teachers, everyone"},
    {"\"schools\": {\"gym-nord\": {\"colour\": \"red\"}}", "schools.gym-nord.colour: unknown key"},
    {"\"schools\": {\"ok\": {}, \"gym nord\": {}}",
     "schools.gym nord: contains a space (U+0020); a school id has no white space (Unicode "
     "White_Space, the no-break spaces included)"},
    {"\"schools\": {\"ok\": {}, \"gym\\u00a0nord\": {}}",
     "schools.gym\xc2\xa0nord: contains a space (U+00A0); a school id has no white space "
     "(Unicode White_Space, the no-break spaces included)"},
    {"\"schools\": {\"gym\\u3000nord\": {}}",
     "schools.gym\xe3\x80\x80nord: contains a space (U+3000); a school id has no white space "
     "(Unicode White_Space, the no-break spaces included)"},
    {"\"schools\": {\"gym\\u0085nord\": {}}",
     "schools.gym\xc2\x85nord: contains a control character"},
    {"\"schools\": {\"gym\\u0090nord\": {}}",
     "schools.gym\xc2\x90nord: contains a control character"},
    {"\"schools\": {\"\": {}}", "schools.: expected a school id of 1 to 255 bytes"},
};

static void config_wrong_values_are_rejected_with_the_full_key_path(void)
{
    for (size_t i = 0; i < sizeof BAD_CASES / sizeof BAD_CASES[0]; i++) {
        char *text = tu_format("{\"data_dir\": \"/d\", %s}", BAD_CASES[i].members);
        ssp_error err = {0};
        int rc = ssp_config_check(text, strlen(text), &err);

        if (rc != -1 || err.code != SSP_ERR_INPUT || strcmp(err.message, BAD_CASES[i].message) != 0)
            CHECK_FAIL("config %s: rc %d code %d message \"%s\", expected \"%s\"", text, rc,
                       (int)err.code, err.message, BAD_CASES[i].message);
        free(text);
    }
}

static void config_root_that_is_not_an_object_is_rejected(void)
{
    ssp_error err = {0};

    CHECK_INT_EQ(ssp_config_check("[]", 2, &err), -1);
    CHECK_STR_EQ(err.message, "config: expected a mapping");
    CHECK_INT_EQ(ssp_config_check("\"x\"", 3, &err), -1);
    CHECK_CONTAINS(err.message, "config:");
}

static void config_data_dir_is_required_without_database(void)
{
    static const char *const texts[] = {"{}", "{\"data_dir\": null}", "{\"enforce\": true}"};
    ssp_error err;

    for (size_t i = 0; i < 3; i++) {
        memset(&err, 0, sizeof err);
        CHECK_INT_EQ(ssp_config_check(texts[i], strlen(texts[i]), &err), -1);
        CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
        CHECK_CONTAINS(err.message, "data_dir: required when database is not set");
    }
}

static void config_database_without_data_dir_is_accepted(void)
{
    static const char text[] = "{\"database\": \"postgresql://ssp@db/ssp\"}";
    ssp_config c;
    ssp_error err;

    REQUIRE_OK(parse(text, &c, &err), err);
    CHECK_STR_EQ(c.database, "postgresql://ssp@db/ssp");
    CHECK(c.data_dir == NULL);
    ssp_config_destroy(&c);
}

static void config_school_enforce_inherits_global_enforce_in_any_key_order(void)
{
    static const char *const texts[] = {
        "{\"enforce\": false, \"data_dir\": \"/d\", \"schools\": {\"a\": {}, \"b\": null}}",
        "{\"schools\": {\"a\": {}, \"b\": null}, \"data_dir\": \"/d\", \"enforce\": false}",
        ("{\"data_dir\": \"/d\", \"schools\": {\"a\": {\"messenger\": true}, \"b\": null}, "
         "\"enforce\": false}"),
    };

    for (size_t i = 0; i < 3; i++) {
        ssp_config c;
        ssp_error err;

        REQUIRE_OK(parse(texts[i], &c, &err), err);
        CHECK(!c.enforce);
        REQUIRE_INT_EQ(c.n_schools, 2);
        if (c.schools[0].enforce || c.schools[1].enforce)
            CHECK_FAIL("a school enforces although global enforce is false: %s", texts[i]);
        ssp_config_destroy(&c);
    }
}

static void config_school_enforce_overrides_global_enforce(void)
{
    ssp_config c;
    ssp_error err;

    REQUIRE_OK(parse("{\"schools\": {\"a\": {\"enforce\": true}, \"b\": {}}, \"enforce\": false, "
                     "\"data_dir\": \"/d\"}",
                     &c, &err),
               err);
    REQUIRE_INT_EQ(c.n_schools, 2);
    CHECK(c.schools[0].enforce);
    CHECK(!c.schools[1].enforce);
    ssp_config_destroy(&c);

    REQUIRE_OK(parse("{\"data_dir\": \"/d\", \"schools\": {\"a\": {\"enforce\": false}, \"b\": {}}}",
                     &c, &err),
               err);
    CHECK(!c.schools[0].enforce);
    CHECK(c.schools[1].enforce);
    ssp_config_destroy(&c);
}

static void config_invalid_json_reports_line_and_column(void)
{
    static const char text[] = "{\n  \"data_dir\": \"/d\",\n  \"enforce\": tru\n}";
    ssp_error err = {0};

    CHECK_INT_EQ(ssp_config_check(text, strlen(text), &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(err.message, "config: invalid JSON at line 3, column 16: invalid token near 'tru'");
}

static void config_truncated_json_is_rejected(void)
{
    static const char text[] = "{\"data_dir\": \"/d\"";
    ssp_error err = {0};

    CHECK_INT_EQ(ssp_config_check(text, strlen(text), &err), -1);
    CHECK_CONTAINS(err.message, "config: invalid JSON at line 1");
    CHECK_INT_EQ(ssp_config_check("", 0, &err), -1);
    CHECK_CONTAINS(err.message, "config: invalid JSON");
}

static void config_duplicate_keys_are_rejected(void)
{
    static const char *const texts[] = {
        "{\"data_dir\": \"/a\", \"data_dir\": \"/b\"}",
        "{\"data_dir\": \"/a\", \"schools\": {\"gym\": {}, \"gym\": {}}}",
        "{\"data_dir\": \"/a\", \"schools\": {\"gym\": {\"messenger\": true, \"messenger\": false}}}",
    };

    for (size_t i = 0; i < 3; i++) {
        ssp_error err = {0};

        CHECK_INT_EQ(ssp_config_check(texts[i], strlen(texts[i]), &err), -1);
        CHECK_CONTAINS(err.message, "config: invalid JSON at line 1, column ");
        CHECK_CONTAINS(err.message, ": duplicate object key near '\"");
    }
}

static void config_m_namespace_policy_type_is_rejected_but_similar_names_are_not(void)
{
    static const char bad[] = "{\"data_dir\": \"/d\", \"policy_event_type\": \"m.school\"}";
    static const char good[] = "{\"data_dir\": \"/d\", \"policy_event_type\": \"mx.school\"}";
    ssp_error err = {0};

    CHECK_INT_EQ(ssp_config_check(bad, strlen(bad), &err), -1);
    CHECK_CONTAINS(err.message, "policy_event_type: the m. namespace is reserved");
    CHECK_OK(ssp_config_check(good, strlen(good), &err), err);
}

static void config_strings_with_nul_characters_are_rejected(void)
{
    /* jansson rejects \u0000 unless asked to allow it; either way it must fail. */
    static const char text[] = "{\"data_dir\": \"/d\\u0000x\"}";
    ssp_error err = {0};

    CHECK_INT_EQ(ssp_config_check(text, strlen(text), &err), -1);
}

static void config_long_school_ids_are_limited_to_255_characters(void)
{
    char id[300];
    char *text;
    ssp_error err = {0};

    memset(id, 'a', sizeof id);
    id[255] = '\0';
    text = tu_format("{\"data_dir\": \"/d\", \"schools\": {\"%s\": {}}}", id);
    CHECK_OK(ssp_config_check(text, strlen(text), &err), err);
    free(text);
    id[255] = 'a';
    id[256] = '\0';
    text = tu_format("{\"data_dir\": \"/d\", \"schools\": {\"%s\": {}}}", id);
    CHECK_INT_EQ(ssp_config_check(text, strlen(text), &err), -1);
    CHECK_CONTAINS(err.message, "expected a school id of 1 to 255 bytes");
    free(text);
}

static void config_one_way_allowed_events_are_limited_to_63(void)
{
    char list[64 * 16] = "";
    char *text;
    ssp_error err = {0};
    ssp_config c;

    for (int i = 0; i < 63; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"e.%d\"", i ? ", " : "", i);
    text = tu_format("{\"data_dir\": \"/d\", \"one_way_allowed_events\": [%s]}", list);
    REQUIRE_OK(parse(text, &c, &err), err);
    CHECK_INT_EQ(c.n_one_way_allowed_events, 63);
    CHECK(ssp_strmap_get(&c.one_way_allowed_set, "e.62") != NULL);
    CHECK(ssp_strmap_get(&c.one_way_allowed_set, "e.63") == NULL);
    ssp_config_destroy(&c);
    free(text);
    snprintf(list + strlen(list), sizeof list - strlen(list), ", \"e.63\"");
    text = tu_format("{\"data_dir\": \"/d\", \"one_way_allowed_events\": [%s]}", list);
    CHECK_INT_EQ(ssp_config_check(text, strlen(text), &err), -1);
    CHECK_STR_EQ(err.message, "one_way_allowed_events: at most 63 event types");
    free(text);
}

static void config_rule_ids_round_trip(void)
{
    for (int r = 1; r < SSP_RULE__COUNT; r++) {
        const char *id = ssp_rule_id((ssp_rule)r);

        CHECK(id[0] != '\0');
        CHECK_INT_EQ(ssp_rule_from_id(id), r);
    }
    CHECK_STR_EQ(ssp_rule_id(SSP_RULE_NONE), "");
    CHECK_STR_EQ(ssp_rule_id(SSP_RULE__COUNT), "");
    CHECK_INT_EQ(ssp_rule_from_id("no_such_rule"), SSP_RULE_NONE);
    CHECK_INT_EQ(ssp_rule_from_id(""), SSP_RULE_NONE);
    CHECK_STR_EQ(ssp_rule_id(SSP_RULE_SCHOOL_NOT_ENABLED), "school_not_enabled");
    CHECK_STR_EQ(ssp_callback_name(SSP_CB_USER_MAY_INVITE), "user_may_invite");
    CHECK(ssp_callback_name(SSP_CB__COUNT) == NULL);
}

void run_config_tests(void)
{
    RUN(config_defaults_apply_when_only_data_dir_is_given);
    RUN(config_school_given_as_null_takes_every_school_default);
    RUN(config_full_config_sets_every_value);
    RUN(config_check_accepts_a_full_config);
    RUN(config_check_reads_only_len_bytes);
    RUN(config_school_lookup_uses_the_given_length);
    RUN(config_wrong_values_are_rejected_with_the_full_key_path);
    RUN(config_root_that_is_not_an_object_is_rejected);
    RUN(config_data_dir_is_required_without_database);
    RUN(config_database_without_data_dir_is_accepted);
    RUN(config_school_enforce_inherits_global_enforce_in_any_key_order);
    RUN(config_school_enforce_overrides_global_enforce);
    RUN(config_invalid_json_reports_line_and_column);
    RUN(config_truncated_json_is_rejected);
    RUN(config_duplicate_keys_are_rejected);
    RUN(config_m_namespace_policy_type_is_rejected_but_similar_names_are_not);
    RUN(config_strings_with_nul_characters_are_rejected);
    RUN(config_long_school_ids_are_limited_to_255_characters);
    RUN(config_one_way_allowed_events_are_limited_to_63);
    RUN(config_rule_ids_round_trip);
}
