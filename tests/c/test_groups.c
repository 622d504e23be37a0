/* Groups (group.c) and the group index of the roster (roster_index.c),
 * without an engine: the parser's paths, the JSON form, the member lookup,
 * the archive test, the version rule, the index and its reverse index. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "group.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define MATHE                                                                                      \
    "{\"group\": \"course-5f0c7a3f\", \"school\": \"gym-nord\", \"kind\": \"course\","             \
    " \"name\": \"Mathe 7b\", \"topic\": \"Mathematik, Frau Berg\", \"two_way\": false,"           \
    " \"state\": \"active\", \"archive_at_ms\": 1785542400000, \"version\": 17, \"closed\": true," \
    " \"members\": [{\"user_id\": \"@berg:school.example\", \"role\": \"moderator\"},"            \
    " {\"user_id\": \"@ali:school.example\", \"role\": \"member\"},"                               \
    " {\"user_id\": \"@cem:other.example\", \"role\": \"member\"}]}"

/* Parses text with ssp_group_parse; err filled. */
static int parse(const char *group_id, const char *text, const char *path, const char *server,
                 ssp_group **out, ssp_error *err)
{
    json_error_t jerr;
    /* as the admin API loads a body: \u0000 let through to the field checks */
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    int rc;

    if (body == NULL) {
        CHECK_FAIL("invalid JSON in a test: %s: %s", jerr.text, text);
        return -1;
    }
    memset(err, 0, sizeof *err);
    rc = ssp_group_parse(group_id, body, path, server, out, err);
    json_decref(body);
    return rc;
}

static ssp_group *group_of(const char *text)
{
    ssp_group *group = NULL;
    ssp_error err;

    if (parse(NULL, text, "", NULL, &group, &err) != 0)
        CHECK_FAIL("cannot parse %s: %s", text, err.message);
    return group;
}

static void group_with_every_field_is_parsed_and_members_sorted(void)
{
    ssp_group *group = NULL;
    ssp_error err;

    REQUIRE_OK(parse(NULL, MATHE, "", NULL, &group, &err), err);
    CHECK_STR_EQ(group->group_id, "course-5f0c7a3f");
    CHECK_STR_EQ(group->school, "gym-nord");
    CHECK_STR_EQ(group->kind, "course");
    CHECK_STR_EQ(group->name, "Mathe 7b");
    CHECK_STR_EQ(group->topic, "Mathematik, Frau Berg");
    CHECK(!group->two_way);
    CHECK(group->closed);
    CHECK_INT_EQ(group->state, SSP_GROUP_ACTIVE);
    CHECK_INT_EQ(group->archive_at_ms, 1785542400000LL);
    CHECK(group->has_version);
    CHECK_INT_EQ(group->version, 17);
    REQUIRE_INT_EQ(group->n_members, 3);
    CHECK_STR_EQ(group->members[0].user_id, "@ali:school.example");
    CHECK_INT_EQ(group->members[0].role, SSP_GROUP_MEMBER);
    CHECK_STR_EQ(group->members[1].user_id, "@berg:school.example");
    CHECK_INT_EQ(group->members[1].role, SSP_GROUP_MODERATOR);
    CHECK_STR_EQ(group->members[2].user_id, "@cem:other.example");
    free(group);
}

static void group_defaults_are_open_for_nobody_active_and_unversioned(void)
{
    ssp_group *group = group_of("{\"group\": \"t\", \"school\": \"s\", \"kind\": \"team\","
                                " \"name\": \"T\", \"members\": []}");

    REQUIRE(group != NULL);
    CHECK(group->topic == NULL);
    CHECK(!group->two_way);
    CHECK(group->closed);
    CHECK_INT_EQ(group->state, SSP_GROUP_ACTIVE);
    CHECK_INT_EQ(group->archive_at_ms, 0);
    CHECK(!group->has_version);
    CHECK_INT_EQ(group->n_members, 0);
    free(group);
}

static void group_id_of_the_path_is_used_and_must_match_the_body(void)
{
    static const char BODY[] = "{\"school\": \"s\", \"kind\": \"class\", \"name\": \"7b\","
                               " \"members\": []}";
    ssp_group *group = NULL;
    ssp_error err;

    REQUIRE_OK(parse("class-7b", BODY, "", NULL, &group, &err), err);
    CHECK_STR_EQ(group->group_id, "class-7b");
    free(group);
    group = NULL;
    REQUIRE_OK(parse("x", "{\"group\": \"x\", \"school\": \"s\", \"kind\": \"class\","
                          " \"name\": \"7b\", \"members\": []}",
                     "", NULL, &group, &err),
               err);
    free(group);
    group = NULL;
    CHECK_INT_EQ(parse("y", "{\"group\": \"x\", \"school\": \"s\", \"kind\": \"class\","
                            " \"name\": \"7b\", \"members\": []}",
                       "", NULL, &group, &err),
                 -1);
    CHECK(group == NULL);
    CHECK_CONTAINS(err.message, "group: does not match the group y of the path");
    CHECK_INT_EQ(parse("has space", BODY, "", NULL, &group, &err), -1);
    CHECK_CONTAINS(err.message, "group: byte 3 (0x20)");
}

/* Every validation error names the key path, under the batch's prefix. */
static void every_validation_error_names_its_path(void)
{
    static const struct {
        const char *body, *message;
    } CASES[] = {
        {"[]", "groups[2]: expected an object"},
        {"{\"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": []}",
         "groups[2].group: expected a group id"},
        {"{\"group\": \"\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": []}",
         "groups[2].group: expected 1 to 255 bytes"},
        {"{\"group\": \"a\\u00e9\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"members\": []}",
         "groups[2].group: byte 1 (0xc3) is not printable ASCII"},
        {"{\"group\": \"g\", \"kind\": \"team\", \"name\": \"n\", \"members\": []}",
         "groups[2].school: expected a school id"},
        {"{\"group\": \"g\", \"school\": \"a b\", \"kind\": \"team\", \"name\": \"n\","
         " \"members\": []}",
         "groups[2].school: "},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"club\", \"name\": \"n\", \"members\": []}",
         "groups[2].kind: expected course, team or class"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"members\": []}",
         "groups[2].name: expected a string"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"\", \"members\": []}",
         "groups[2].name: must not be empty"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"a\\u0000b\","
         " \"members\": []}",
         "groups[2].name: contains a NUL character"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"topic\": 3,"
         " \"members\": []}",
         "groups[2].topic: expected a string"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"two_way\": \"yes\", \"members\": []}",
         "groups[2].two_way: expected true or false"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"closed\": 1,"
         " \"members\": []}",
         "groups[2].closed: expected true or false"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"state\": \"gone\", \"members\": []}",
         "groups[2].state: expected active, archived or deleted"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"archive_at_ms\": -1, \"members\": []}",
         "groups[2].archive_at_ms: expected a non-negative integer"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"version\": 1.5, \"members\": []}",
         "groups[2].version: expected a non-negative integer"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\"}",
         "groups[2].members: expected a list of {user_id, role}"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"members\": {}}",
         "groups[2].members: expected a list of {user_id, role}"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
         " \"members\": [\"@a:school.example\"]}",
         "groups[2].members[0]: expected an object with user_id and role"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\":"
         " [{\"user_id\": \"@a:school.example\", \"role\": \"member\", \"x\": 1}]}",
         "groups[2].members[0].x: unknown field"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\":"
         " [{\"role\": \"member\"}]}",
         "groups[2].members[0].user_id: expected a Matrix user id"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\":"
         " [{\"user_id\": \"ali\", \"role\": \"member\"}]}",
         "groups[2].members[0].user_id: "},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\":"
         " [{\"user_id\": \"@a:elsewhere.example\", \"role\": \"member\"}]}",
         "groups[2].members[0].user_id: "},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": ["
         "{\"user_id\": \"@a:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@b:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@c:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@d:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@e:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@f:school.example\", \"role\": \"teacher\"}]}",
         "groups[2].members[5].role: expected moderator or member"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": ["
         "{\"user_id\": \"@a:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@b:school.example\", \"role\": \"member\"},"
         "{\"user_id\": \"@a:school.example\", \"role\": \"moderator\"}]}",
         "groups[2].members[2].user_id: @a:school.example is listed twice (also "
         "groups[2].members[0])"},
        {"{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": [],"
         " \"colour\": \"red\"}",
         "groups[2].colour: unknown field"},
    };

    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        ssp_group *group = (ssp_group *)&group;
        ssp_error err;

        if (parse(NULL, CASES[i].body, "groups[2]", "school.example", &group, &err) == 0) {
            CHECK_FAIL("accepted %s", CASES[i].body);
            free(group);
            continue;
        }
        CHECK(group == NULL);
        CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
        if (strncmp(err.message, CASES[i].message, strlen(CASES[i].message)) != 0)
            CHECK_FAIL("%s gave \"%s\", expected it to start with \"%s\"", CASES[i].body,
                       err.message, CASES[i].message);
    }
}

static void error_of_a_body_of_its_own_has_no_prefix(void)
{
    ssp_group *group = NULL;
    ssp_error err;

    CHECK_INT_EQ(parse("g", "{\"school\": \"s\", \"kind\": \"team\", \"name\": \"n\", \"members\": ["
                            "{\"user_id\": \"@a:school.example\", \"role\": \"boss\"}]}",
                       "", NULL, &group, &err),
                 -1);
    CHECK_STR_EQ(err.message, "members[0].role: expected moderator or member");
    CHECK_INT_EQ(parse("g", "5", "", NULL, &group, &err), -1);
    CHECK_STR_EQ(err.message, "body: expected an object");
}

static void deleted_group_may_leave_its_members_out(void)
{
    ssp_group *group = group_of("{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\","
                                " \"name\": \"n\", \"state\": \"deleted\", \"topic\": null}");

    REQUIRE(group != NULL);
    CHECK_INT_EQ(group->state, SSP_GROUP_DELETED);
    CHECK_INT_EQ(group->n_members, 0);
    CHECK(group->topic == NULL);
    free(group);
}

static void check_round_trip(const char *text)
{
    ssp_group *group = group_of(text), *again = NULL;
    json_t *json, *json_again;
    ssp_error err;

    REQUIRE(group != NULL);
    json = ssp_group_to_json(group);
    REQUIRE(json != NULL);
    REQUIRE_OK(ssp_group_parse(NULL, json, "", NULL, &again, &err), err);
    json_again = ssp_group_to_json(again);
    if (!json_equal(json, json_again))
        CHECK_FAIL("round trip of %s changed it", text);
    CHECK_INT_EQ(again->n_members, group->n_members);
    CHECK_INT_EQ(again->version, group->version);
    CHECK(again->has_version == group->has_version);
    json_decref(json);
    json_decref(json_again);
    free(again);
    free(group);
}

static void group_round_trips_through_to_json(void)
{
    json_t *json;
    ssp_group *group;
    char *text;

    check_round_trip(MATHE);
    check_round_trip("{\"group\": \"t\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"T\","
                     " \"two_way\": true, \"closed\": false, \"state\": \"archived\","
                     " \"members\": []}");
    group = group_of(MATHE);
    REQUIRE(group != NULL);
    json = ssp_group_to_json(group);
    text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
    /* what the API answers: every field, members sorted */
    CHECK_STR_EQ(text,
                 "{\"archive_at_ms\":1785542400000,\"closed\":true,\"group\":\"course-5f0c7a3f\","
                 "\"kind\":\"course\",\"members\":[{\"role\":\"member\",\"user_id\":"
                 "\"@ali:school.example\"},{\"role\":\"moderator\",\"user_id\":"
                 "\"@berg:school.example\"},{\"role\":\"member\",\"user_id\":"
                 "\"@cem:other.example\"}],\"name\":\"Mathe 7b\",\"school\":\"gym-nord\","
                 "\"state\":\"active\",\"topic\":\"Mathematik, Frau Berg\",\"two_way\":false,"
                 "\"version\":17}");
    free(text);
    json_decref(json);
    free(group);
}

static void stored_form_lists_ids_by_role_and_reads_back_the_same_group(void)
{
    ssp_group *group = group_of(MATHE), *again = NULL;
    json_t *stored, *json, *json_again;
    ssp_error err;
    char *text;

    REQUIRE(group != NULL);
    stored = ssp_group_to_stored_json(group);
    REQUIRE(stored != NULL);
    text = json_dumps(json_object_get(stored, "moderators"), JSON_COMPACT);
    CHECK_STR_EQ(text, "[\"@berg:school.example\"]");
    free(text);
    text = json_dumps(json_object_get(stored, "members"), JSON_COMPACT);
    CHECK_STR_EQ(text, "[\"@ali:school.example\",\"@cem:other.example\"]");
    free(text);
    REQUIRE_OK(ssp_group_parse_stored(stored, &again, &err), err);
    json = ssp_group_to_json(group);
    json_again = ssp_group_to_json(again);
    CHECK(json_equal(json, json_again));
    /* the API's form is not the stored form, nor the other way round */
    {
        ssp_group *none = NULL;

        CHECK_INT_EQ(ssp_group_parse(NULL, stored, "", NULL, &none, &err), -1);
        CHECK(none == NULL);
        CHECK_INT_EQ(ssp_group_parse_stored(json, &none, &err), -1);
        CHECK(none == NULL);
    }
    json_decref(stored);
    json_decref(json);
    json_decref(json_again);
    free(again);
    free(group);
}

static void stored_form_refuses_a_user_listed_twice_or_a_bad_id(void)
{
    static const char *const BAD[] = {
        "{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
        " \"members\": [\"@a:x\"], \"moderators\": [\"@a:x\"]}",
        "{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
        " \"members\": [\"a\"], \"moderators\": []}",
        "{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
        " \"members\": [5], \"moderators\": []}",
        "{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\", \"name\": \"n\","
        " \"members\": []}",
    };

    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        json_t *body = tu_json(BAD[i]);
        ssp_group *group = NULL;
        ssp_error err;

        if (ssp_group_parse_stored(body, &group, &err) == 0) {
            CHECK_FAIL("accepted %s", BAD[i]);
            free(group);
        } else {
            CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
            CHECK(group == NULL);
        }
        json_decref(body);
    }
}

static void member_of_finds_listed_users_only(void)
{
    ssp_group *group = group_of(MATHE);
    const ssp_group_member *member;
    static const char LONGER[] = "@berg:school.example.org";

    REQUIRE(group != NULL);
    member = ssp_group_member_of(group, "@berg:school.example", strlen("@berg:school.example"));
    REQUIRE(member != NULL);
    CHECK_INT_EQ(member->role, SSP_GROUP_MODERATOR);
    CHECK(ssp_group_member_of(group, "@ali:school.example", 19) != NULL);
    CHECK(ssp_group_member_of(group, "@cem:other.example", 18) != NULL);
    /* a prefix of a listed id, and a listed id as a prefix (length-aware) */
    CHECK(ssp_group_member_of(group, "@berg:school.exampl", 19) == NULL);
    CHECK(ssp_group_member_of(group, LONGER, strlen(LONGER)) == NULL);
    CHECK(ssp_group_member_of(group, LONGER, strlen("@berg:school.example")) != NULL);
    CHECK(ssp_group_member_of(group, "@aaa:school.example", 19) == NULL);
    CHECK(ssp_group_member_of(group, "@zed:school.example", 19) == NULL);
    free(group);
}

static void group_is_archived_by_state_or_by_date(void)
{
    ssp_group *dated = group_of("{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\","
                                " \"name\": \"n\", \"archive_at_ms\": 1000, \"members\": []}");
    ssp_group *archived = group_of("{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\","
                                   " \"name\": \"n\", \"state\": \"archived\", \"members\": []}");
    ssp_group *deleted = group_of("{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\","
                                  " \"name\": \"n\", \"state\": \"deleted\"}");
    ssp_group *active = group_of("{\"group\": \"g\", \"school\": \"s\", \"kind\": \"team\","
                                 " \"name\": \"n\", \"members\": []}");

    REQUIRE(dated && archived && deleted && active);
    CHECK(!ssp_group_is_archived(dated, 999));
    CHECK(ssp_group_is_archived(dated, 1000));
    CHECK(ssp_group_is_archived(archived, 0));
    CHECK(ssp_group_is_archived(deleted, 0));
    CHECK(!ssp_group_is_archived(active, INT64_MAX));
    free(dated);
    free(archived);
    free(deleted);
    free(active);
}

static void snapshot_not_newer_than_the_stored_one_does_not_supersede_it(void)
{
    ssp_group *v17 = group_of(MATHE), *v16, *v18, *none;
    ssp_error err;

    REQUIRE(v17 != NULL);
    v16 = ssp_group_copy_as(v17, SSP_GROUP_ACTIVE, true, 16);
    v18 = ssp_group_copy_as(v17, SSP_GROUP_ARCHIVED, true, 18);
    none = ssp_group_copy_as(v17, SSP_GROUP_ACTIVE, false, 0);
    REQUIRE(v16 && v18 && none);
    CHECK(ssp_group_supersedes(NULL, v16));
    CHECK(!ssp_group_supersedes(v17, v16));
    CHECK(!ssp_group_supersedes(v17, v17));
    CHECK(ssp_group_supersedes(v17, v18));
    CHECK(!ssp_group_supersedes(v18, v17));
    /* unversioned: applied (the engine keeps the stored version) */
    CHECK(ssp_group_supersedes(v17, none));
    CHECK(ssp_group_supersedes(none, v16));
    /* the copy keeps everything but what it was asked to change */
    CHECK_INT_EQ(v18->state, SSP_GROUP_ARCHIVED);
    CHECK_STR_EQ(v18->topic, v17->topic);
    CHECK_INT_EQ(v18->n_members, 3);
    CHECK_STR_EQ(v18->members[1].user_id, "@berg:school.example");
    (void)err;
    free(v16);
    free(v18);
    free(none);
    free(v17);
}

/* The group ids of the reverse index for user_id, sorted, joined by ",". */
static void groups_of_text(ssp_roster *roster, const char *user_id, char *out, size_t size)
{
    const ssp_group *const *groups;
    size_t n = ssp_roster_groups_of(roster, user_id, strlen(user_id), &groups);
    const char *ids[16];

    out[0] = '\0';
    for (size_t i = 0; i < n && i < 16; i++) {
        size_t j = i;

        while (j > 0 && strcmp(ids[j - 1], groups[i]->group_id) > 0) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = groups[i]->group_id;
    }
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "", ids[i]);
}

static ssp_group *team(const char *id, const char *members)
{
    char *text = tu_format("{\"group\": \"%s\", \"school\": \"s\", \"kind\": \"team\","
                           " \"name\": \"n\", \"members\": [%s]}",
                           id, members);
    ssp_group *group = group_of(text);

    free(text);
    return group;
}

#define M(u) "{\"user_id\": \"@" u ":x.example\", \"role\": \"member\"}"

static void index_keeps_groups_and_who_they_list(void)
{
    ssp_roster roster;
    ssp_error err;
    char got[256];

    REQUIRE_OK(ssp_roster_init(&roster, &err), err);
    pthread_rwlock_wrlock(&roster.lock);
    CHECK_OK(ssp_roster_apply_group_locked(&roster, team("a", M("u") "," M("v")), &err), err);
    CHECK_OK(ssp_roster_apply_group_locked(&roster, team("b", M("v") "," M("w")), &err), err);
    pthread_rwlock_unlock(&roster.lock);
    CHECK(ssp_roster_group(&roster, "a", 1) != NULL);
    CHECK(ssp_roster_group(&roster, "ab", 1) != NULL);
    CHECK(ssp_roster_group(&roster, "c", 1) == NULL);
    groups_of_text(&roster, "@v:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "a,b");
    groups_of_text(&roster, "@u:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "a");
    /* a new snapshot of a replaces the old one: u leaves, w joins */
    pthread_rwlock_wrlock(&roster.lock);
    CHECK_OK(ssp_roster_apply_group_locked(&roster, team("a", M("v") "," M("w")), &err), err);
    pthread_rwlock_unlock(&roster.lock);
    groups_of_text(&roster, "@u:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "");
    groups_of_text(&roster, "@w:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "a,b");
    groups_of_text(&roster, "@nobody:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "");
    CHECK_INT_EQ(ssp_roster_group(&roster, "a", 1)->n_members, 2);
    ssp_roster_destroy(&roster); /* frees the groups and the reverse index */
}

static void index_reserved_for_a_batch_applies_every_group(void)
{
    ssp_roster roster;
    ssp_group *batch[3];
    ssp_error err;
    char got[256];

    REQUIRE_OK(ssp_roster_init(&roster, &err), err);
    batch[0] = team("a", M("u"));
    batch[1] = team("b", M("u") "," M("v"));
    batch[2] = team("a", M("u") "," M("v")); /* a again, later in the batch */
    pthread_rwlock_wrlock(&roster.lock);
    CHECK_OK(ssp_roster_reserve_groups_locked(&roster, (const ssp_group *const *)batch, 3, &err),
             err);
    for (int i = 0; i < 3; i++)
        CHECK_OK(ssp_roster_apply_group_locked(&roster, batch[i], &err), err);
    pthread_rwlock_unlock(&roster.lock);
    groups_of_text(&roster, "@u:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "a,b");
    groups_of_text(&roster, "@v:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "a,b");
    ssp_roster_destroy(&roster);
}

static void index_replaced_at_load_drops_the_old_groups(void)
{
    ssp_roster roster;
    ssp_strmap loaded;
    ssp_group *b = team("b", M("v")), *c = team("c", M("v") "," M("u"));
    ssp_error err;
    char got[256];

    REQUIRE_OK(ssp_roster_init(&roster, &err), err);
    pthread_rwlock_wrlock(&roster.lock);
    CHECK_OK(ssp_roster_apply_group_locked(&roster, team("a", M("u")), &err), err);
    pthread_rwlock_unlock(&roster.lock);
    ssp_strmap_init(&loaded);
    REQUIRE(b && c);
    CHECK_INT_EQ(ssp_strmap_put(&loaded, b->group_id, b, NULL), 0);
    CHECK_INT_EQ(ssp_strmap_put(&loaded, c->group_id, c, NULL), 0);
    CHECK_OK(ssp_roster_replace_groups(&roster, &loaded, &err), err);
    CHECK_INT_EQ(loaded.count, 0);
    CHECK(ssp_roster_group(&roster, "a", 1) == NULL);
    groups_of_text(&roster, "@u:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "c");
    groups_of_text(&roster, "@v:x.example", got, sizeof got);
    CHECK_STR_EQ(got, "b,c");
    ssp_strmap_destroy(&loaded);
    ssp_roster_destroy(&roster);
}

void run_groups_tests(void)
{
    RUN(group_with_every_field_is_parsed_and_members_sorted);
    RUN(group_defaults_are_open_for_nobody_active_and_unversioned);
    RUN(group_id_of_the_path_is_used_and_must_match_the_body);
    RUN(every_validation_error_names_its_path);
    RUN(error_of_a_body_of_its_own_has_no_prefix);
    RUN(deleted_group_may_leave_its_members_out);
    RUN(group_round_trips_through_to_json);
    RUN(stored_form_lists_ids_by_role_and_reads_back_the_same_group);
    RUN(stored_form_refuses_a_user_listed_twice_or_a_bad_id);
    RUN(member_of_finds_listed_users_only);
    RUN(group_is_archived_by_state_or_by_date);
    RUN(snapshot_not_newer_than_the_stored_one_does_not_supersede_it);
    RUN(index_keeps_groups_and_who_they_list);
    RUN(index_reserved_for_a_batch_applies_every_group);
    RUN(index_replaced_at_load_drops_the_old_groups);
}
