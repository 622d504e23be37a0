/* Roster entry and batch parsing (roster.c), without an engine. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

/* Parses `body` as an entry for `user_id`; returns the result and fills err. */
static int parse_entry(const char *user_id, const char *body, const char *path,
                       ssp_roster_user **out, ssp_error *err)
{
    json_t *json = tu_json(body);
    int rc;

    memset(err, 0, sizeof *err);
    rc = ssp_roster_parse_entry(user_id, json, path, out, err);
    json_decref(json);
    return rc;
}

static void roster_entry_with_every_role_is_parsed(void)
{
    ssp_roster_user *user = NULL;
    ssp_error err;

    REQUIRE_OK(parse_entry("@anna:school.example",
                           "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"},"
                           " {\"role\": \"teacher\", \"school\": \"rs-ost\"},"
                           " {\"school\": \"gs-west\", \"role\": \"admin\"}]}",
                           "", &user, &err),
               err);
    REQUIRE(user != NULL);
    CHECK_STR_EQ(user->user_id, "@anna:school.example");
    REQUIRE_INT_EQ(user->n, 3);
    CHECK_STR_EQ(user->memberships[0].school, "gym-nord");
    CHECK_INT_EQ(user->memberships[0].role, SSP_ROLE_STUDENT);
    CHECK_STR_EQ(user->memberships[1].school, "rs-ost");
    CHECK_INT_EQ(user->memberships[1].role, SSP_ROLE_TEACHER);
    CHECK_STR_EQ(user->memberships[2].school, "gs-west");
    CHECK_INT_EQ(user->memberships[2].role, SSP_ROLE_ADMIN);
    free(user);
}

static void roster_entry_round_trips_through_user_to_json(void)
{
    static const char *const bodies[] = {
        "{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"student\"}]}",
        ("{\"schools\": [{\"school\": \"gym-nord\", \"role\": \"teacher\"},"
         " {\"school\": \"r\\u00e9al-schule\", \"role\": \"admin\"}]}"),
        "{\"schools\": []}",
    };

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ssp_roster_user *user = NULL;
        ssp_error err;
        json_t *body = tu_json(bodies[i]), *out, *expected;

        REQUIRE_OK(ssp_roster_parse_entry("@ben:school.example", body, "", &user, &err), err);
        out = ssp_roster_user_to_json("@ben:school.example", user);
        expected = json_deep_copy(body);
        json_object_set_new(expected, "user_id", json_string("@ben:school.example"));
        CHECK(out != NULL);
        if (out != NULL && !json_equal(out, expected)) {
            char *got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);

            CHECK_FAIL("round trip of %s gave %s", bodies[i], got);
            free(got);
        }
        json_decref(out);
        json_decref(expected);
        json_decref(body);
        free(user);
    }
}

static void roster_user_to_json_of_no_user_has_an_empty_school_list(void)
{
    json_t *out = ssp_roster_user_to_json("@gone:school.example", NULL);
    char *text = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    CHECK_STR_EQ(text, "{\"schools\":[],\"user_id\":\"@gone:school.example\"}");
    free(text);
    json_decref(out);
}

typedef struct bad_entry {
    const char *body;
    const char *path;
    const char *message;
} bad_entry;

static const bad_entry BAD_ENTRIES[] = {
    {"[]", "", "body: expected an object"},
    {"{\"schools\": [], \"colour\": 1}", "", "colour: unknown field"},
    {"{\"schools\": [], \"user_id\": \"@a:b\"}", "", "user_id: unknown field"},
    {"{}", "", "schools: expected a list"},
    {"{\"schools\": {}}", "", "schools: expected a list"},
    {"{\"schools\": [\"gym\"]}", "", "schools[0]: expected an object with school and role"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"pupil\"}]}", "",
     "schools[0].role: expected one of teacher, student, admin"},
    {"{\"schools\": [{\"school\": \"gym\"}]}", "",
     "schools[0].role: expected one of teacher, student, admin"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": 1}]}", "",
     "schools[0].role: expected one of teacher, student, admin"},
    {"{\"schools\": [{\"school\": \"a\", \"role\": \"admin\"}, {\"school\": 5, \"role\": \"admin\"}]}",
     "", "schools[1].school: expected a school id"},
    {"{\"schools\": [{\"role\": \"admin\"}]}", "", "schools[0].school: expected a school id"},
    {"{\"schools\": [{\"school\": \"\", \"role\": \"admin\"}]}", "",
     "schools[0].school: expected a school id of 1 to 255 bytes"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"admin\", \"grade\": 5}]}", "",
     "schools[0].grade: unknown field"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"admin\"}, {\"school\": \"x\", \"role\": "
     "\"student\"}, {\"school\": \"gym\", \"role\": \"student\"}]}",
     "", "schools[2].school: gym is listed twice; give one role per school"},
    /* with a path, as inside a batch or the journal */
    {"5", "users[3]", "users[3]: expected an object"},
    {"{\"schools\": [], \"colour\": 1}", "users[3]", "users[3].colour: unknown field"},
    {"{\"schools\": 1}", "users[3]", "users[3].schools: expected a list"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"x\"}]}", "users[3]",
     "users[3].schools[0].role: expected one of teacher, student, admin"},
};

static void roster_entry_errors_name_the_field(void)
{
    for (size_t i = 0; i < sizeof BAD_ENTRIES / sizeof BAD_ENTRIES[0]; i++) {
        ssp_roster_user *user = (ssp_roster_user *)&user;
        ssp_error err;
        int rc = parse_entry("@a:b.c", BAD_ENTRIES[i].body, BAD_ENTRIES[i].path, &user, &err);

        if (rc != -1 || err.code != SSP_ERR_INPUT || strcmp(err.message, BAD_ENTRIES[i].message) != 0)
            CHECK_FAIL("entry %s (path \"%s\"): rc %d code %d message \"%s\", expected \"%s\"",
                       BAD_ENTRIES[i].body, BAD_ENTRIES[i].path, rc, (int)err.code, err.message,
                       BAD_ENTRIES[i].message);
        CHECK(user == NULL);
    }
}

static void roster_entry_school_ids_longer_than_255_characters_are_rejected(void)
{
    char school[300];
    char *body;
    ssp_roster_user *user = NULL;
    ssp_error err;

    memset(school, 's', sizeof school);
    school[255] = '\0';
    body = tu_format("{\"schools\": [{\"school\": \"%s\", \"role\": \"student\"}]}", school);
    CHECK_OK(parse_entry("@a:b.c", body, "", &user, &err), err);
    free(user);
    free(body);
    school[255] = 's';
    school[256] = '\0';
    body = tu_format("{\"schools\": [{\"school\": \"%s\", \"role\": \"student\"}]}", school);
    user = NULL;
    CHECK_INT_EQ(parse_entry("@a:b.c", body, "", &user, &err), -1);
    CHECK_STR_EQ(err.message, "schools[0].school: expected a school id of 1 to 255 bytes");
    CHECK(user == NULL);
    free(body);
}

static int parse_batch(const char *body, ssp_roster_change **changes, size_t *n, ssp_error *err)
{
    json_t *json = tu_json(body);
    int rc;

    memset(err, 0, sizeof *err);
    rc = ssp_roster_parse_batch(json, NULL, changes, n, err);
    json_decref(json);
    return rc;
}

static void roster_batch_is_parsed_into_changes(void)
{
    ssp_roster_change *changes = NULL;
    size_t n = 99;
    ssp_error err;

    REQUIRE_OK(parse_batch("{\"users\": ["
                           " {\"user_id\": \"@a:s.example\", \"schools\": [{\"school\": \"gym\","
                           " \"role\": \"student\"}]},"
                           " {\"schools\": [], \"user_id\": \"@b:s.example\"},"
                           " {\"user_id\": \"@c:s.example\", \"schools\": [{\"school\": \"gym\","
                           " \"role\": \"teacher\"}, {\"school\": \"rs\", \"role\": \"admin\"}]}]}",
                           &changes, &n, &err),
               err);
    REQUIRE(changes != NULL);
    REQUIRE_INT_EQ(n, 3);
    CHECK_STR_EQ(changes[0].user_id, "@a:s.example");
    REQUIRE(changes[0].user != NULL);
    CHECK_STR_EQ(changes[0].user->user_id, "@a:s.example");
    CHECK_INT_EQ(changes[0].user->n, 1);
    CHECK_STR_EQ(changes[1].user_id, "@b:s.example");
    CHECK(changes[1].user == NULL || changes[1].user->n == 0);
    CHECK_STR_EQ(changes[2].user_id, "@c:s.example");
    REQUIRE(changes[2].user != NULL);
    CHECK_INT_EQ(changes[2].user->n, 2);
    CHECK_INT_EQ(changes[2].user->memberships[1].role, SSP_ROLE_ADMIN);
    ssp_roster_changes_free(changes, n);
}

static void roster_empty_batch_gives_no_changes(void)
{
    ssp_roster_change *changes = NULL;
    size_t n = 99;
    ssp_error err;

    REQUIRE_OK(parse_batch("{\"users\": []}", &changes, &n, &err), err);
    CHECK_INT_EQ(n, 0);
    ssp_roster_changes_free(changes, n);
    ssp_roster_changes_free(NULL, 0);
}

typedef struct bad_batch {
    const char *body;
    const char *message;
} bad_batch;

#define GOOD_USER(id) "{\"user_id\": \"" id "\", \"schools\": [{\"school\": \"gym\", \"role\": \"student\"}]}"

static const bad_batch BAD_BATCHES[] = {
    {"[]", "body: expected an object with a users list, a groups list or both"},
    {"{\"users\": [], \"more\": 1}", "more: unknown field"},
    {"{}", "body: expected a users list, a groups list or both"},
    {"{\"users\": {}}", "users: expected a list"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", 7]}", "users[2]: expected an object"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", {\"schools\": []}]}",
     "users[2].user_id: expected a Matrix user id (@user:server)"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", {\"user_id\": \"bob\", \"schools\": []}]}",
     "users[2].user_id: expected a Matrix user id (@user:server)"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", {\"user_id\": 5, \"schools\": []}]}",
     "users[2].user_id: expected a Matrix user id (@user:server)"},
    {"{\"users\": [" GOOD_USER("@a:s") ", {\"user_id\": \"@b:s\", \"schools\": [{\"school\": \"gym\","
     " \"role\": \"boss\"}]}]}",
     "users[1].schools[0].role: expected one of teacher, student, admin"},
    {"{\"users\": [{\"user_id\": \"@b:s\", \"schools\": [{\"school\": \"gym\", \"role\": \"student\"},"
     " {\"school\": \"gym\", \"role\": \"teacher\"}]}]}",
     "users[0].schools[1].school: gym is listed twice; give one role per school"},
    {"{\"users\": [{\"user_id\": \"@b:s\", \"schools\": [], \"name\": \"Ben\"}]}",
     "users[0].name: unknown field"},
    {"{\"users\": [{\"user_id\": \"@b:s\"}]}", "users[0].schools: expected a list"},
};

static void roster_batch_errors_name_the_user_and_field(void)
{
    for (size_t i = 0; i < sizeof BAD_BATCHES / sizeof BAD_BATCHES[0]; i++) {
        ssp_roster_change *changes = (ssp_roster_change *)&changes;
        size_t n = 99;
        ssp_error err;
        int rc = parse_batch(BAD_BATCHES[i].body, &changes, &n, &err);

        if (rc != -1 || err.code != SSP_ERR_INPUT || strcmp(err.message, BAD_BATCHES[i].message) != 0)
            CHECK_FAIL("batch %s: rc %d code %d message \"%s\", expected \"%s\"", BAD_BATCHES[i].body,
                       rc, (int)err.code, err.message, BAD_BATCHES[i].message);
        CHECK(changes == NULL);
        CHECK_INT_EQ(n, 0);
    }
}

static void roster_user_id_validation(void)
{
    static const char *const valid[] = {"@a:b", "@alice:school.example", "@a:b:8448",
                                        "@a.b_c=d-e/f:[::1]:8448", "@Legacy!#$%&'*~:s"};
    static const char *const invalid[] = {"",       "@",        "@a:",     "@:b",    "a:b",
                                          "@ab",    "@a b:c",   "@a\t:b",  "@a:b\n", "@a\x7f:b",
                                          " @a:b",  "alice",    "@@:",
                                          "@caf\xc3\xa9:b", "@a:b c", "@a:b/x", "@a:\xc3\xa9"};
    char long_id[300];

    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        if (!ssp_user_id_valid(valid[i]))
            CHECK_FAIL("\"%s\" should be a valid user id", valid[i]);
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        if (ssp_user_id_valid(invalid[i]))
            CHECK_FAIL("\"%s\" should not be a valid user id", invalid[i]);
    }
    memset(long_id, 'x', sizeof long_id);
    memcpy(long_id, "@a:", 3);
    long_id[255] = '\0';
    CHECK(ssp_user_id_valid(long_id));
    long_id[255] = 'x';
    long_id[256] = '\0';
    CHECK(!ssp_user_id_valid(long_id));
}

/* Parses with JSON_ALLOW_NUL, as the admin API does, so that "\u0000"
 * reaches the field checks. */
static json_t *json_with_nul(const char *text)
{
    json_error_t jerr;
    json_t *json = json_loads(text, JSON_ALLOW_NUL, &jerr);

    if (json == NULL)
        CHECK_FAIL("test JSON does not parse: %s: %s", text, jerr.text);
    return json;
}

static const bad_entry BAD_SCHOOL_IDS[] = {
    {"{\"schools\": [{\"school\": \"gym\\nnord\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"gym\\u0000\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"\\u0000\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"a\", \"role\": \"admin\"}, {\"school\": \"gym\\t\", \"role\": "
     "\"student\"}]}",
     "", "schools[1].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"gym\\u007f\", \"role\": \"student\"}]}", "users[4]",
     "users[4].schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"\\u001fgym\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"gym nord\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a space (U+0020); a school id has no white space (Unicode "
     "White_Space, the no-break spaces included)"},
    {"{\"schools\": [{\"school\": \"gym\\u00a0nord\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a space (U+00A0); a school id has no white space (Unicode "
     "White_Space, the no-break spaces included)"},
    {"{\"schools\": [{\"school\": \"\\u202fgym\", \"role\": \"student\"}]}", "users[2]",
     "users[2].schools[0].school: contains a space (U+202F); a school id has no white space "
     "(Unicode White_Space, the no-break spaces included)"},
    {"{\"schools\": [{\"school\": \"gym\\u009b\", \"role\": \"student\"}]}", "",
     "schools[0].school: contains a control character"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"teacher\\u0000x\"}]}", "",
     "schools[0].role: expected one of teacher, student, admin"},
    {"{\"schools\": [{\"school\": \"gym\", \"role\": \"teacher\\u0000\"}]}", "",
     "schools[0].role: expected one of teacher, student, admin"},
};

static void roster_school_ids_with_control_characters_or_nul_are_rejected(void)
{
    for (size_t i = 0; i < sizeof BAD_SCHOOL_IDS / sizeof BAD_SCHOOL_IDS[0]; i++) {
        ssp_roster_user *user = (ssp_roster_user *)&user;
        ssp_error err = {0};
        json_t *json = json_with_nul(BAD_SCHOOL_IDS[i].body);
        int rc = ssp_roster_parse_entry("@a:b.c", json, BAD_SCHOOL_IDS[i].path, &user, &err);

        if (rc != -1 || err.code != SSP_ERR_INPUT ||
            strcmp(err.message, BAD_SCHOOL_IDS[i].message) != 0)
            CHECK_FAIL("entry %s: rc %d code %d message \"%s\", expected \"%s\"",
                       BAD_SCHOOL_IDS[i].body, rc, (int)err.code, err.message,
                       BAD_SCHOOL_IDS[i].message);
        CHECK(user == NULL);
        json_decref(json);
    }
}

static void roster_lenient_entry_drops_bad_school_ids_and_counts_them(void)
{
    json_t *json = json_with_nul("{\"schools\": [{\"school\": \"gym\\nx\", \"role\": \"student\"},"
                                 " {\"school\": \"rs\", \"role\": \"teacher\"},"
                                 " {\"school\": \"a b\", \"role\": \"nonsense\"}]}");
    ssp_roster_user *user = NULL;
    ssp_error err = {0};
    size_t dropped = 0;

    REQUIRE_OK(ssp_roster_parse_entry_lenient("@a:b.c", json, "entry", &dropped, &user, &err), err);
    REQUIRE(user != NULL);
    CHECK_INT_EQ(dropped, 2);
    REQUIRE_INT_EQ(user->n, 1);
    CHECK_STR_EQ(user->memberships[0].school, "rs");
    CHECK_INT_EQ(user->memberships[0].role, SSP_ROLE_TEACHER);
    free(user);
    json_decref(json);
    /* anything else still fails the entry */
    json = tu_json("{\"schools\": [{\"school\": \"rs\", \"role\": \"boss\"}]}");
    user = NULL;
    CHECK_INT_EQ(ssp_roster_parse_entry_lenient("@a:b.c", json, "entry", &dropped, &user, &err), -1);
    CHECK_STR_EQ(err.message, "entry.schools[0].role: expected one of teacher, student, admin");
    CHECK(user == NULL);
    json_decref(json);
}

static int parse_batch_on(const char *server, const char *body, ssp_roster_change **changes,
                          size_t *n, ssp_error *err)
{
    json_t *json = json_with_nul(body);
    int rc;

    memset(err, 0, sizeof *err);
    rc = ssp_roster_parse_batch(json, server, changes, n, err);
    json_decref(json);
    return rc;
}

static const bad_batch BAD_BATCHES_ON_SERVER[] = {
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", " GOOD_USER("@c:s") ", "
     GOOD_USER("@a:s") "]}",
     "users[3].user_id: duplicate of users[0]"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:s") ", {\"user_id\": \"@b:s\", "
     "\"schools\": []}]}",
     "users[2].user_id: duplicate of users[1]"},
    {"{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@b:evil.example") "]}",
     "users[1].user_id: @b:evil.example is a user of another server; the roster holds users of s "
     "only"},
    {"{\"users\": [" GOOD_USER("@a:S") "]}",
     "users[0].user_id: @a:S is a user of another server; the roster holds users of s only"},
    {"{\"users\": [" GOOD_USER("@a:s:8448") "]}",
     "users[0].user_id: @a:s:8448 is a user of another server; the roster holds users of s only"},
    {"{\"users\": [" GOOD_USER("@a\\u0000:s") "]}", "users[0].user_id: contains a NUL character"},
    {"{\"users\": [" GOOD_USER("@a:s\\u0000") "]}", "users[0].user_id: contains a NUL character"},
    {"{\"users\": [" GOOD_USER("@a\\n:s") "]}", "users[0].user_id: contains a control character"},
    {"{\"users\": [" GOOD_USER("@caf\\u00e9:s") "]}",
     "users[0].user_id: expected a Matrix user id (@user:server); the localpart is printable "
     "ASCII without spaces"},
    {"{\"users\": [" GOOD_USER("@a:s/x") "]}",
     "users[0].user_id: expected a Matrix user id (@user:server); the server name is a host name "
     "with an optional port"},
    {"{\"users\": [" GOOD_USER("@a:s") ", {\"user_id\": \"@b:s\", \"schools\": [{\"school\": "
     "\"gym\\u0000\", \"role\": \"student\"}]}]}",
     "users[1].schools[0].school: contains a control character"},
};

static void roster_batch_on_a_server_rejects_duplicates_remote_users_and_bad_text(void)
{
    for (size_t i = 0; i < sizeof BAD_BATCHES_ON_SERVER / sizeof BAD_BATCHES_ON_SERVER[0]; i++) {
        ssp_roster_change *changes = (ssp_roster_change *)&changes;
        size_t n = 99;
        ssp_error err;
        int rc = parse_batch_on("s", BAD_BATCHES_ON_SERVER[i].body, &changes, &n, &err);

        if (rc != -1 || err.code != SSP_ERR_INPUT ||
            strcmp(err.message, BAD_BATCHES_ON_SERVER[i].message) != 0)
            CHECK_FAIL("batch %s: rc %d code %d message \"%s\", expected \"%s\"",
                       BAD_BATCHES_ON_SERVER[i].body, rc, (int)err.code, err.message,
                       BAD_BATCHES_ON_SERVER[i].message);
        CHECK(changes == NULL);
        CHECK_INT_EQ(n, 0);
    }
}

static void roster_batch_on_a_server_accepts_its_users_with_a_port(void)
{
    ssp_roster_change *changes = NULL;
    size_t n = 0;
    ssp_error err;

    REQUIRE_OK(parse_batch_on("s.example:8448",
                              "{\"users\": [" GOOD_USER("@a:s.example:8448") ", "
                              GOOD_USER("@B_=/+.-:s.example:8448") "]}",
                              &changes, &n, &err),
               err);
    CHECK_INT_EQ(n, 2);
    ssp_roster_changes_free(changes, n);
    /* without a server name, any server's users pass (the journal's old
     * entries); duplicates never do */
    REQUIRE_OK(parse_batch_on(NULL, "{\"users\": [" GOOD_USER("@a:x") ", " GOOD_USER("@a:y") "]}",
                              &changes, &n, &err),
               err);
    CHECK_INT_EQ(n, 2);
    ssp_roster_changes_free(changes, n);
    CHECK_INT_EQ(parse_batch_on(NULL, "{\"users\": [" GOOD_USER("@a:x") ", " GOOD_USER("@a:x") "]}",
                                &changes, &n, &err),
                 -1);
    CHECK_STR_EQ(err.message, "users[1].user_id: duplicate of users[0]");
}

static void roster_large_batch_finds_a_late_duplicate(void)
{
    size_t count = 5000, len = 0, cap = count * 80 + 64;
    char *body = malloc(cap);
    ssp_roster_change *changes = NULL;
    size_t n = 0;
    ssp_error err;

    REQUIRE(body != NULL);
    len += (size_t)snprintf(body + len, cap - len, "{\"users\": [");
    for (size_t i = 0; i < count; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"user_id\": \"@u%zu:s\", \"schools\": []}", i ? "," : "",
                                i == count - 1 ? (size_t)1234 : i);
    snprintf(body + len, cap - len, "]}");
    CHECK_INT_EQ(parse_batch_on("s", body, &changes, &n, &err), -1);
    CHECK_STR_EQ(err.message, "users[4999].user_id: duplicate of users[1234]");
    free(body);
}

static void roster_user_id_check_names_the_path_and_counts_bytes(void)
{
    char long_id[300];
    ssp_error err = {0};

    memset(long_id, 'x', sizeof long_id);
    memcpy(long_id, "@a:", 3);
    CHECK_OK(ssp_check_user_id("user_id", long_id, 255, NULL, &err), err);
    CHECK_INT_EQ(ssp_check_user_id("user_id", long_id, 256, NULL, &err), -1);
    CHECK_STR_EQ(err.message, "user_id: is longer than 255 bytes");
    CHECK_INT_EQ(ssp_check_user_id("users[2].user_id", "@a:b\0c", 6, "b", &err), -1);
    CHECK_STR_EQ(err.message, "users[2].user_id: contains a NUL character");
    CHECK_OK(ssp_check_user_id("user_id", "@a:b", 4, "b", &err), err);
    CHECK_OK(ssp_check_school_id("school", "gym-nord", 8, &err), err);
    CHECK_INT_EQ(ssp_check_school_id("school", "gym\0", 4, &err), -1);
    CHECK_STR_EQ(err.message, "school: contains a control character");
}

/* Every code point, as UTF-8, alone and inside an id: the 25 of Unicode's
 * White_Space and the 65 controls are refused, everything else is taken;
 * text that is not UTF-8 is refused. */
static void roster_school_id_refuses_exactly_white_space_and_controls(void)
{
    static const uint32_t white_space[] = {0x09,   0x0a,   0x0b,   0x0c,   0x0d,   0x20,   0x85,
                                           0xa0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                           0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
                                           0x2029, 0x202f, 0x205f, 0x3000};
    size_t refused = 0, spaces = 0;
    ssp_error err = {0};

    CHECK_INT_EQ(sizeof white_space / sizeof white_space[0], 25);
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        char id[8] = "g";
        size_t n;
        bool listed = false;
        int rc;

        if (cp >= 0xd800 && cp <= 0xdfff)
            continue; /* no UTF-8 form */
        n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n == 1) {
            id[1] = (char)cp;
        } else {
            unsigned char *u = (unsigned char *)id + 1;

            u[0] = (unsigned char)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | (cp >> (6 * (n - 1))));
            for (size_t k = 1; k < n; k++)
                u[k] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3f));
        }
        for (size_t k = 0; k < 25; k++)
            listed = listed || white_space[k] == cp;
        CHECK(ssp_is_white_space(cp) == listed);
        rc = ssp_check_school_id("school", id, n + 1, &err);
        if (rc != 0) {
            refused++;
            if (strstr(err.message, "contains a space") != NULL)
                spaces++;
        }
        if ((rc != 0) != (listed || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
            CHECK_FAIL("U+%04X: rc %d (%s)", (unsigned)cp, rc, err.message);
    }
    /* 65 controls; of the 25 spaces, 6 are controls too (tab..CR, NEL) */
    CHECK_INT_EQ(refused, 65 + 25 - 6);
    CHECK_INT_EQ(spaces, 25 - 6);
    CHECK_INT_EQ(ssp_check_school_id("school", "gym\xc2", 4, &err), -1);
    CHECK_STR_EQ(err.message, "school: is not valid UTF-8");
    CHECK_INT_EQ(ssp_check_school_id("school", "\xc0\xa0", 2, &err), -1); /* overlong space */
    CHECK_STR_EQ(err.message, "school: is not valid UTF-8");
    CHECK_INT_EQ(ssp_check_school_id("school", "\xed\xa0\x80", 3, &err), -1); /* a surrogate */
    CHECK_STR_EQ(err.message, "school: is not valid UTF-8");
    CHECK_OK(ssp_check_school_id("school", "gymnasium-s\xc3\xbc" "d", 14, &err), err);
}

static void roster_check_batch_gives_the_users_or_names_the_field(void)
{
    static const char good[] =
        "{\"users\": [{\"user_id\": \"@a:s\", \"schools\": [{\"school\": \"gym\", \"role\": "
        "\"teacher\"}]}, {\"user_id\": \"@b:s\", \"schools\": []}]}";
    static const char dup[] = "{\"users\": [" GOOD_USER("@a:s") ", " GOOD_USER("@a:s") "]}";
    static const char nul[] = "{\"users\": [{\"user_id\": \"@a:s\", \"schools\": [{\"school\": "
                              "\"g\\u0000\", \"role\": \"student\"}]}]}";
    char *users = (char *)"x";
    ssp_error err = {0};

    REQUIRE_OK(ssp_roster_check_batch(good, strlen(good), "s", &users, &err), err);
    CHECK(tu_json_equal_text(users, "[{\"user_id\": \"@a:s\", \"schools\": [{\"school\": \"gym\", "
                                    "\"role\": \"teacher\"}]}, {\"user_id\": \"@b:s\", "
                                    "\"schools\": []}]"));
    free(users);
    CHECK_INT_EQ(ssp_roster_check_batch(dup, strlen(dup), "s", &users, &err), -1);
    CHECK_STR_EQ(err.message, "users[1].user_id: duplicate of users[0]");
    CHECK(users == NULL);
    CHECK_INT_EQ(ssp_roster_check_batch(nul, strlen(nul), "s", &users, &err), -1);
    CHECK_STR_EQ(err.message, "users[0].schools[0].school: contains a control character");
    CHECK_INT_EQ(ssp_roster_check_batch(good, strlen(good), "other", &users, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_INPUT);
    CHECK_INT_EQ(ssp_roster_check_batch("{\"users\": [\xff]}", 13, "s", &users, &err), -1);
    CHECK_INT_EQ(err.code, SSP_ERR_SYNTAX);
    CHECK(users == NULL);
}

void run_roster_parse_tests(void)
{
    RUN(roster_entry_with_every_role_is_parsed);
    RUN(roster_entry_round_trips_through_user_to_json);
    RUN(roster_user_to_json_of_no_user_has_an_empty_school_list);
    RUN(roster_entry_errors_name_the_field);
    RUN(roster_entry_school_ids_longer_than_255_characters_are_rejected);
    RUN(roster_batch_is_parsed_into_changes);
    RUN(roster_empty_batch_gives_no_changes);
    RUN(roster_batch_errors_name_the_user_and_field);
    RUN(roster_user_id_validation);
    RUN(roster_school_ids_with_control_characters_or_nul_are_rejected);
    RUN(roster_lenient_entry_drops_bad_school_ids_and_counts_them);
    RUN(roster_batch_on_a_server_rejects_duplicates_remote_users_and_bad_text);
    RUN(roster_batch_on_a_server_accepts_its_users_with_a_port);
    RUN(roster_large_batch_finds_a_late_duplicate);
    RUN(roster_user_id_check_names_the_path_and_counts_bytes);
    RUN(roster_check_batch_gives_the_users_or_names_the_field);
    RUN(roster_school_id_refuses_exactly_white_space_and_controls);
}
