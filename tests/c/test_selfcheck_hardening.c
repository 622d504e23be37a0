/* The homeserver.yaml self-check (selfcheck.c): each setting's verdict when
 * it is not hardened, the doors that only some settings open, settings an
 * older Synapse lacks, and the hardened block built from the same table. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp.h"
#include "tests.h"
#include "testutil.h"

/* Every setting the check knows, at its hardened value. */
static const char HARDENED[] =
    "{\"user_directory.search_all_users\": false,"
    " \"limit_profile_requests_to_users_who_share_rooms\": true,"
    " \"require_auth_for_profile_requests\": true,"
    " \"allow_guest_access\": false,"
    " \"enable_registration\": false,"
    " \"registration_requires_token\": false,"
    " \"allow_profile_lookup_over_federation\": false,"
    " \"allow_device_name_lookup_over_federation\": false,"
    " \"auto_join_rooms\": [],"
    " \"presence.enabled\": false,"
    " \"exclude_rooms_from_presence\": [],"
    " \"allow_per_room_profiles\": false,"
    " \"enable_set_displayname\": false,"
    " \"enable_set_avatar_url\": false,"
    " \"include_profile_updates_in_sync\": false,"
    " \"experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms\": true,"
    " \"federation_domain_whitelist\": [],"
    " \"inhibit_user_in_use_error\": true,"
    " \"request_token_inhibit_3pid_errors\": true,"
    " \"enable_3pid_changes\": false,"
    " \"url_preview_enabled\": false,"
    " \"enable_authenticated_media\": true,"
    " \"include_profile_data_on_invite\": false,"
    " \"allow_public_rooms_over_federation\": false,"
    " \"allow_public_rooms_without_auth\": false,"
    " \"email\": false,"
    " \"account_threepid_delegates.msisdn\": false,"
    " \"announcement_rooms\": []}";

/* Only the settings every supported Synapse has, as Synapse's defaults
 * leave them, with the three the original check demanded set. */
static const char REQUIRED_ONLY[] =
    "{\"user_directory.search_all_users\": false,"
    " \"limit_profile_requests_to_users_who_share_rooms\": true,"
    " \"require_auth_for_profile_requests\": true,"
    " \"allow_guest_access\": false,"
    " \"enable_registration\": false,"
    " \"registration_requires_token\": false}";

/* The hardened settings with the members of `changes` (JSON object text) set. */
static json_t *settings_with(const char *changes)
{
    json_t *settings = tu_json(HARDENED), *patch = tu_json(changes);

    json_object_update(settings, patch);
    json_decref(patch);
    return settings;
}

/* The check's result ({"findings", "hardened_block"}), or NULL after
 * reporting a failure. Takes settings. */
static json_t *check(json_t *settings)
{
    char *text = json_dumps(settings, JSON_COMPACT), *result_text = NULL;
    ssp_error err = {0};
    json_t *result = NULL;

    json_decref(settings);
    if (ssp_homeserver_check(text, strlen(text), &result_text, &err) != 0)
        CHECK_FAIL("ssp_homeserver_check(%s) failed: %s", text, err.message);
    else
        result = tu_json(result_text);
    free(result_text);
    free(text);
    return result;
}

static json_t *findings_of(json_t *result)
{
    return json_object_get(result, "findings");
}

static const char *field(const json_t *finding, const char *key)
{
    return json_string_value(json_object_get(finding, key));
}

/* The result's only finding is about `setting`, with `verdict`, and its
 * problem text starts with `problem`. */
static void check_one_finding(json_t *result, const char *setting, const char *verdict,
                              const char *problem)
{
    json_t *findings = findings_of(result), *finding = json_array_get(findings, 0);

    if (json_array_size(findings) != 1) {
        char *text = json_dumps(findings, JSON_COMPACT);

        CHECK_FAIL("%s: expected one finding, got %s", setting, text ? text : "(null)");
        free(text);
        return;
    }
    CHECK_STR_EQ(field(finding, "setting"), setting);
    CHECK_STR_EQ(field(finding, "verdict"), verdict);
    if (field(finding, "problem") == NULL ||
        strncmp(field(finding, "problem"), problem, strlen(problem)) != 0)
        CHECK_FAIL("%s: problem \"%s\", expected it to start with \"%s\"", setting,
                   field(finding, "problem"), problem);
}

static void check_no_findings(json_t *result, const char *situation)
{
    if (json_array_size(findings_of(result)) != 0) {
        char *text = json_dumps(findings_of(result), JSON_COMPACT);

        CHECK_FAIL("%s: expected no findings, got %s", situation, text ? text : "(null)");
        free(text);
    }
}

/* The input error's message for these settings (JSON text). */
static void check_input_error(const char *settings, const char *message)
{
    char *result = NULL;
    ssp_error err = {0};

    if (ssp_homeserver_check(settings, strlen(settings), &result, &err) == 0) {
        CHECK_FAIL("%s was accepted: %s", settings, result);
        free(result);
        return;
    }
    CHECK(result == NULL);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_STR_EQ(err.message, message);
}

static void hardened_settings_are_clean(void)
{
    json_t *result = check(settings_with("{}"));

    REQUIRE(result != NULL);
    check_no_findings(result, "every setting hardened");
    json_decref(result);
}

/* One setting away from its hardened value: its verdict, and the problem
 * text that names the hardened value. */
static void each_setting_alone_gets_its_verdict(void)
{
    static const struct {
        const char *change, *setting, *verdict, *problem;
    } cases[] = {
        {"{\"user_directory.search_all_users\": true}", "user_directory.search_all_users",
         "refuse",
         "must be false: true lets the user directory show users who share no room with the "
         "searcher"},
        {"{\"limit_profile_requests_to_users_who_share_rooms\": false}",
         "limit_profile_requests_to_users_who_share_rooms", "refuse",
         "must be true: otherwise anyone can look up any user's profile"},
        {"{\"require_auth_for_profile_requests\": false}", "require_auth_for_profile_requests",
         "refuse", "must be true: otherwise profiles can be read without logging in"},
        {"{\"allow_guest_access\": true}", "allow_guest_access", "refuse",
         "must be false: guests are on no roster and could read rooms opened to them"},
        {"{\"enable_registration\": true}", "enable_registration", "refuse",
         "must be false (or registration_requires_token true): open registration creates "
         "accounts that are on no roster"},
        {"{\"allow_profile_lookup_over_federation\": true, "
         "\"federation_domain_whitelist\": [\"trusted.example\"]}",
         "allow_profile_lookup_over_federation", "refuse", "must be false: "},
        {"{\"allow_device_name_lookup_over_federation\": true, "
         "\"federation_domain_whitelist\": [\"trusted.example\"]}",
         "allow_device_name_lookup_over_federation", "refuse", "must be false: "},
        {"{\"auto_join_rooms\": [\"#lobby:school.example\"]}", "auto_join_rooms", "refuse",
         "must be []: "},
        {"{\"presence.enabled\": true}", "presence.enabled", "warn", "should be false: "},
        {"{\"allow_per_room_profiles\": true}", "allow_per_room_profiles", "warn",
         "should be false: "},
        {"{\"enable_set_displayname\": true}", "enable_set_displayname", "warn",
         "should be false: "},
        {"{\"enable_set_avatar_url\": true}", "enable_set_avatar_url", "warn",
         "should be false: "},
        {"{\"include_profile_updates_in_sync\": true}", "include_profile_updates_in_sync", "warn",
         "should be false: "},
        {"{\"experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms\": false}",
         "experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms", "warn",
         "should be true: "},
        {"{\"federation_domain_whitelist\": null}", "federation_domain_whitelist", "warn",
         "should be [] or a list of trusted servers: "},
        {"{\"url_preview_enabled\": true}", "url_preview_enabled", "warn", "should be false: "},
        {"{\"enable_authenticated_media\": false}", "enable_authenticated_media", "warn",
         "should be true: "},
        {"{\"include_profile_data_on_invite\": true}", "include_profile_data_on_invite", "report",
         "should be false: "},
        {"{\"allow_public_rooms_over_federation\": true}", "allow_public_rooms_over_federation",
         "report", "should be false: "},
        {"{\"allow_public_rooms_without_auth\": true}", "allow_public_rooms_without_auth",
         "report", "should be false: "},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *result = check(settings_with(cases[i].change));

        if (result == NULL)
            continue;
        check_one_finding(result, cases[i].setting, cases[i].verdict, cases[i].problem);
        json_decref(result);
    }
}

/* Registration with a token is no open registration, but it lets anyone
 * ask which user ids exist. */
static void registration_with_a_token_only_warns_about_user_enumeration(void)
{
    json_t *result = check(settings_with(
        "{\"enable_registration\": true, \"registration_requires_token\": true}"));

    REQUIRE(result != NULL);
    check_no_findings(result, "token registration, inhibit_user_in_use_error true");
    json_decref(result);
    result = check(settings_with("{\"enable_registration\": true, "
                                 "\"registration_requires_token\": true, "
                                 "\"inhibit_user_in_use_error\": false}"));
    REQUIRE(result != NULL);
    check_one_finding(result, "inhibit_user_in_use_error", "warn", "should be true: ");
    json_decref(result);
    result = check(settings_with("{\"inhibit_user_in_use_error\": false}"));
    REQUIRE(result != NULL);
    check_no_findings(result, "registration off, inhibit_user_in_use_error false");
    json_decref(result);
}

/* The 3PID settings matter only where Synapse can verify an address. */
static void threepid_settings_count_only_with_email_or_phone_verification(void)
{
    static const char *const loose = "{\"request_token_inhibit_3pid_errors\": false, "
                                     "\"enable_3pid_changes\": true";
    static const char *const verifiers[] = {"", ", \"email\": true",
                                            ", \"account_threepid_delegates.msisdn\": true"};

    for (size_t i = 0; i < sizeof verifiers / sizeof verifiers[0]; i++) {
        char *change = tu_format("%s%s}", loose, verifiers[i]);
        json_t *result = check(settings_with(change)), *findings;

        free(change);
        if (result == NULL)
            continue;
        findings = findings_of(result);
        if (i == 0) {
            check_no_findings(result, "no verification configured");
        } else if (json_array_size(findings) != 2) {
            CHECK_FAIL("verifier %zu: expected two findings, got %zu", i,
                       json_array_size(findings));
        } else {
            CHECK_STR_EQ(field(json_array_get(findings, 0), "setting"),
                         "request_token_inhibit_3pid_errors");
            CHECK_STR_EQ(field(json_array_get(findings, 1), "setting"), "enable_3pid_changes");
            CHECK_STR_EQ(field(json_array_get(findings, 1), "verdict"), "warn");
        }
        json_decref(result);
    }
}

/* Without federation nobody can ask: the lookups are not judged. With a
 * list of servers, those servers can. */
static void federation_lookups_are_refused_unless_federation_is_closed(void)
{
    static const char *const lookups = "\"allow_profile_lookup_over_federation\": true, "
                                       "\"allow_device_name_lookup_over_federation\": true";
    char *change = tu_format("{%s}", lookups);
    json_t *result = check(settings_with(change));

    free(change);
    REQUIRE(result != NULL);
    check_no_findings(result, "lookups on, federation_domain_whitelist []");
    json_decref(result);
    change = tu_format("{%s, \"federation_domain_whitelist\": [\"other.example\"]}", lookups);
    result = check(settings_with(change));
    free(change);
    REQUIRE(result != NULL);
    CHECK_INT_EQ(json_array_size(findings_of(result)), 2);
    CHECK_STR_EQ(field(json_array_get(findings_of(result), 0), "verdict"), "refuse");
    json_decref(result);
    change = tu_format("{%s, \"federation_domain_whitelist\": null}", lookups);
    result = check(settings_with(change));
    free(change);
    REQUIRE(result != NULL);
    /* both refusals, and the warning about the open federation */
    CHECK_INT_EQ(json_array_size(findings_of(result)), 3);
    json_decref(result);
}

static void announcement_rooms_must_be_excluded_from_presence_while_presence_is_on(void)
{
    json_t *result = check(settings_with(
        "{\"presence.enabled\": true, \"announcement_rooms\": [\"!a:school.example\", "
        "\"!b:school.example\"], \"exclude_rooms_from_presence\": [\"!a:school.example\"]}"));
    json_t *findings;

    REQUIRE(result != NULL);
    findings = findings_of(result);
    REQUIRE_INT_EQ(json_array_size(findings), 2);
    CHECK_STR_EQ(field(json_array_get(findings, 0), "setting"), "presence.enabled");
    CHECK_STR_EQ(field(json_array_get(findings, 1), "setting"), "exclude_rooms_from_presence");
    CHECK_STR_EQ(field(json_array_get(findings, 1), "verdict"), "warn");
    CHECK_CONTAINS(field(json_array_get(findings, 1), "problem"),
                   "should be a list of every announcement room (missing: [\"!b:school.example\"])");
    json_decref(result);

    /* Every one listed, presence off, or the rooms not known: nothing to say. */
    result = check(settings_with(
        "{\"presence.enabled\": true, \"announcement_rooms\": [\"!a:school.example\"], "
        "\"exclude_rooms_from_presence\": [\"!z:school.example\", \"!a:school.example\"]}"));
    REQUIRE(result != NULL);
    check_one_finding(result, "presence.enabled", "warn", "should be false: ");
    json_decref(result);
    result = check(settings_with("{\"announcement_rooms\": [\"!a:school.example\"]}"));
    REQUIRE(result != NULL);
    check_no_findings(result, "presence off");
    json_decref(result);
    result = check(settings_with("{\"presence.enabled\": true}"));
    REQUIRE(result != NULL);
    check_one_finding(result, "presence.enabled", "warn", "should be false: ");
    json_decref(result);
}

/* Synapse 1.140.0 lacks some settings; a fake config may lack all the
 * optional ones. What is missing is not judged, and not an error. */
static void settings_an_older_synapse_lacks_are_not_judged(void)
{
    json_t *settings = settings_with("{\"presence.enabled\": true}"), *result;

    json_object_del(settings, "exclude_rooms_from_presence");
    json_object_del(settings, "include_profile_updates_in_sync");
    json_object_set_new(settings, "announcement_rooms", json_pack("[s]", "!a:school.example"));
    result = check(settings);
    REQUIRE(result != NULL);
    check_one_finding(result, "presence.enabled", "warn", "should be false: ");
    json_decref(result);
    result = check(tu_json(REQUIRED_ONLY));
    REQUIRE(result != NULL);
    check_no_findings(result, "only the required settings");
    CHECK_CONTAINS(json_string_value(json_object_get(result, "hardened_block")),
                   "\nexclude_rooms_from_presence: []\n");
    json_decref(result);
}

/* What Synapse 1.163.2 leaves when homeserver.yaml sets only the original
 * three: the new refusal, and what it warns about. */
static void synapse_defaults_refuse_profile_lookups_over_federation(void)
{
    json_t *settings = tu_json(REQUIRED_ONLY), *result, *findings;
    json_t *defaults = tu_json(
        "{\"allow_profile_lookup_over_federation\": true,"
        " \"allow_device_name_lookup_over_federation\": false, \"auto_join_rooms\": [],"
        " \"presence.enabled\": true, \"exclude_rooms_from_presence\": [],"
        " \"allow_per_room_profiles\": true, \"enable_set_displayname\": true,"
        " \"enable_set_avatar_url\": true, \"include_profile_updates_in_sync\": false,"
        " \"experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms\": false,"
        " \"federation_domain_whitelist\": null, \"inhibit_user_in_use_error\": false,"
        " \"request_token_inhibit_3pid_errors\": false, \"enable_3pid_changes\": true,"
        " \"url_preview_enabled\": false, \"enable_authenticated_media\": true,"
        " \"include_profile_data_on_invite\": true, \"allow_public_rooms_over_federation\": false,"
        " \"allow_public_rooms_without_auth\": false, \"email\": false,"
        " \"account_threepid_delegates.msisdn\": false, \"announcement_rooms\": []}");
    static const char *const expected[][2] = {
        {"allow_profile_lookup_over_federation", "refuse"},
        {"presence.enabled", "warn"},
        {"allow_per_room_profiles", "warn"},
        {"enable_set_displayname", "warn"},
        {"enable_set_avatar_url", "warn"},
        {"experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms", "warn"},
        {"federation_domain_whitelist", "warn"},
        {"include_profile_data_on_invite", "report"},
    };

    json_object_update(settings, defaults);
    json_decref(defaults);
    result = check(settings);
    REQUIRE(result != NULL);
    findings = findings_of(result);
    REQUIRE_INT_EQ(json_array_size(findings), sizeof expected / sizeof expected[0]);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        CHECK_STR_EQ(field(json_array_get(findings, i), "setting"), expected[i][0]);
        CHECK_STR_EQ(field(json_array_get(findings, i), "verdict"), expected[i][1]);
    }
    json_decref(result);
}

static void values_of_the_wrong_type_are_named(void)
{
    char *settings;

    check_input_error("[]", "settings: expected an object");
    check_input_error("{\"user_directory.search_all_users\": false}",
                      "settings.limit_profile_requests_to_users_who_share_rooms: expected a "
                      "boolean");
    settings = tu_format("%.*s, \"presence.enabled\": \"untracked\"}",
                         (int)strlen(REQUIRED_ONLY) - 1, REQUIRED_ONLY);
    check_input_error(settings, "settings.presence.enabled: expected a boolean");
    free(settings);
    settings = tu_format("%.*s, \"auto_join_rooms\": [\"#a:x\", 1]}",
                         (int)strlen(REQUIRED_ONLY) - 1, REQUIRED_ONLY);
    check_input_error(settings, "settings.auto_join_rooms: expected a list of strings");
    free(settings);
    settings = tu_format("%.*s, \"federation_domain_whitelist\": {}}",
                         (int)strlen(REQUIRED_ONLY) - 1, REQUIRED_ONLY);
    check_input_error(settings,
                      "settings.federation_domain_whitelist: expected a list of strings or null");
    free(settings);
    settings = tu_format("%.*s, \"announcement_rooms\": null}", (int)strlen(REQUIRED_ONLY) - 1,
                         REQUIRED_ONLY);
    check_input_error(settings, "settings.announcement_rooms: expected a list of strings");
    free(settings);
}

/* Number of times `needle` occurs in `s`. */
static int occurrences(const char *s, const char *needle)
{
    int n = 0;

    for (const char *at = strstr(s, needle); at != NULL; at = strstr(at + 1, needle))
        n++;
    return n;
}

/* The block sets every setting once, each under the comment of its
 * verdict and reason, each section once. */
static void block_sets_every_setting_once_under_its_reason(void)
{
    json_t *result = check(settings_with("{}"));
    const char *block;

    REQUIRE(result != NULL);
    block = json_string_value(json_object_get(result, "hardened_block"));
    REQUIRE(block != NULL);
    CHECK(strncmp(block, "# Hardened homeserver.yaml settings", 35) == 0);
    CHECK_INT_EQ(occurrences(block, "\nuser_directory:\n"), 1);
    CHECK_INT_EQ(occurrences(block, "\npresence:\n"), 1);
    CHECK_INT_EQ(occurrences(block, "\nexperimental_features:\n"), 1);
    CHECK_CONTAINS(block, "\nuser_directory:\n  # refuse: must be false: true lets the user "
                          "directory show users who share no room with the searcher\n"
                          "  search_all_users: false\n");
    CHECK_CONTAINS(block, "\n# refuse: must be true: otherwise anyone can look up any user's "
                          "profile\nlimit_profile_requests_to_users_who_share_rooms: true\n");
    CHECK_CONTAINS(block, "\npresence:\n  # warn: should be false: ");
    CHECK_CONTAINS(block, "\n  enabled: false\n");
    CHECK_CONTAINS(block, "\n  msc4263_limit_key_queries_to_users_who_share_rooms: true\n");
    CHECK_CONTAINS(block, "\n# report: should be false: ");
    CHECK_CONTAINS(block, "\ninclude_profile_data_on_invite: false\n");
    CHECK_CONTAINS(block, "\nallow_profile_lookup_over_federation: false\n");
    CHECK_CONTAINS(block, "\nauto_join_rooms: []\n");
    CHECK_CONTAINS(block, "\nfederation_domain_whitelist: []\n");
    /* 24 settings, each under one comment line, and the header's 4 lines */
    CHECK_INT_EQ(occurrences(block, "# refuse: "), 8);
    CHECK_INT_EQ(occurrences(block, "# warn: "), 13);
    CHECK_INT_EQ(occurrences(block, "# report: "), 3);
    CHECK_INT_EQ(occurrences(block, "\n"), 4 + 3 + 24 * 2);
    /* no helper fact is a setting of the block */
    CHECK(strstr(block, "announcement_rooms:") == NULL);
    CHECK(strstr(block, "registration_requires_token:") == NULL);
    json_decref(result);
}

/* The operator's trusted servers and excluded rooms stay; the announcement
 * rooms are added; JSON escapes keep odd ids valid YAML. */
static void block_keeps_the_operators_lists_and_adds_the_announcement_rooms(void)
{
    json_t *result = check(settings_with(
        "{\"federation_domain_whitelist\": [\"a.example\", \"b.example\"],"
        " \"exclude_rooms_from_presence\": [\"!mine:school.example\"],"
        " \"announcement_rooms\": [\"!mine:school.example\", \"!ann\\\"\\u00e9:school.example\"],"
        " \"auto_join_rooms\": [\"#lobby:school.example\"]}"));
    const char *block;

    REQUIRE(result != NULL);
    block = json_string_value(json_object_get(result, "hardened_block"));
    REQUIRE(block != NULL);
    CHECK_CONTAINS(block, "\nfederation_domain_whitelist: [\"a.example\",\"b.example\"]\n");
    CHECK_CONTAINS(block, "\nexclude_rooms_from_presence: "
                          "[\"!mine:school.example\",\"!ann\\\"\\u00E9:school.example\"]\n");
    CHECK_CONTAINS(block, "\nauto_join_rooms: []\n");
    json_decref(result);
}

void run_selfcheck_hardening_tests(void)
{
    RUN(hardened_settings_are_clean);
    RUN(each_setting_alone_gets_its_verdict);
    RUN(registration_with_a_token_only_warns_about_user_enumeration);
    RUN(threepid_settings_count_only_with_email_or_phone_verification);
    RUN(federation_lookups_are_refused_unless_federation_is_closed);
    RUN(announcement_rooms_must_be_excluded_from_presence_while_presence_is_on);
    RUN(settings_an_older_synapse_lacks_are_not_judged);
    RUN(synapse_defaults_refuse_profile_lookups_over_federation);
    RUN(values_of_the_wrong_type_are_named);
    RUN(block_sets_every_setting_once_under_its_reason);
    RUN(block_keeps_the_operators_lists_and_adds_the_announcement_rooms);
}
