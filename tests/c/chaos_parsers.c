/*
 * Allocation failures in the parsers: the config, the homeserver.yaml
 * self-check, roster bodies and entries, the string map, and the
 * createRoom request as room shaping reads it.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "check.h"
#include "rules/room_shape.h"
#include "ssp_private.h"
#include "testutil.h"

static void chaos_config_check_fails_cleanly_at_every_allocation(void)
{
    char *config = tu_config("/var/lib/ssp", FULL_CONFIG_MEMBERS);
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_config_check(config, strlen(config), &err);
        disarm();
        if (chaos_hit == HIT_NONE) {
            CHECK_OK(rc, err);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_config_check", &o);
    free(config);
}

/* Findings of every verdict, a finding with a detail, lists in the block. */
static const char HOMESERVER_SETTINGS[] =
    "{\"user_directory.search_all_users\": true,"
    " \"limit_profile_requests_to_users_who_share_rooms\": true,"
    " \"require_auth_for_profile_requests\": true, \"allow_guest_access\": false,"
    " \"enable_registration\": true, \"registration_requires_token\": true,"
    " \"presence.enabled\": true, \"exclude_rooms_from_presence\": [\"!a:x\"],"
    " \"announcement_rooms\": [\"!a:x\", \"!b:x\"], \"federation_domain_whitelist\": [\"s.x\"],"
    " \"include_profile_data_on_invite\": true, \"auto_join_rooms\": [\"#l:x\"]}";

static void chaos_homeserver_check_fails_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_error err;
        char *result = NULL;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_homeserver_check(HOMESERVER_SETTINGS, strlen(HOMESERVER_SETTINGS), &result, &err);
        disarm();
        if (rc != 0 && result != NULL)
            COMPLAIN(&o, "N=%ld: failed, yet left a result", n);
        free(result);
        if (chaos_hit == HIT_NONE) {
            CHECK_OK(rc, err);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_homeserver_check", &o);
}

static const char ENTRY[] =
    "{\"schools\": [{\"school\": \"gym-sued\", \"role\": \"teacher\"}, {\"school\": \"gym-nord\","
    " \"role\": \"admin\"}, {\"school\": \"rs-ost\", \"role\": \"student\"}]}";

static void chaos_roster_parse_batch_fails_cleanly_at_every_allocation(void)
{
    json_t *body = tu_json(BATCH); /* loaded before arming: only the parser is under test */
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        ssp_roster_change *changes = (ssp_roster_change *)&changes;
        size_t count = 99;
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_roster_parse_batch(body, "school.example", &changes, &count, &err);
        disarm();
        if (rc != 0 && (changes != NULL || count != 0))
            CHECK_FAIL("N=%ld: failed ssp_roster_parse_batch left changes %p count %zu", n,
                       (void *)changes, count);
        if (rc == 0) {
            CHECK_INT_EQ(count, 3);
            ssp_roster_changes_free(changes, count);
        }
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_parse_batch", &o);
    json_decref(body);
}

static void chaos_roster_check_batch_fails_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        char *users = (char *)"x";
        ssp_error err;
        int rc;

        memset(&err, 0, sizeof err);
        arm(n);
        rc = ssp_roster_check_batch(BATCH, strlen(BATCH), "school.example", &users, &err);
        disarm();
        if (rc != 0 && users != NULL)
            CHECK_FAIL("N=%ld: failed ssp_roster_check_batch left users %p", n, (void *)users);
        free(rc == 0 ? users : NULL);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_roster_check_batch", &o);
}

static void chaos_roster_parse_entry_and_to_json_fail_cleanly_at_every_allocation(void)
{
    outcomes o;
    long n;

    memset(&o, 0, sizeof o);
    for (n = 1; n <= MAX_RUNS; n++) {
        json_error_t jerr;
        json_t *body, *out = NULL;
        ssp_roster_user *user = (ssp_roster_user *)&user;
        ssp_error err;
        int rc = -1;
        char *text = NULL;

        memset(&err, 0, sizeof err);
        arm(n);
        /* the whole path of a PUT body: load, parse, serialise */
        body = json_loads(ENTRY, JSON_REJECT_DUPLICATES, &jerr);
        if (body != NULL) {
            rc = ssp_roster_parse_entry("@anna:school.example", body, "", &user, &err);
            if (rc == 0) {
                out = ssp_roster_user_to_json("@anna:school.example", user);
                text = out ? json_dumps(out, JSON_COMPACT) : NULL;
            } else if (user != NULL) {
                CHECK_FAIL("N=%ld: failed ssp_roster_parse_entry left *out set", n);
            }
        }
        disarm();
        if (rc == 0)
            free(user);
        free(text);
        json_decref(out);
        json_decref(body);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            CHECK(text != NULL);
            break;
        }
        if (body != NULL && rc != 0)
            judge(&o, n, rc, &err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("load + ssp_roster_parse_entry + ssp_roster_user_to_json", &o);
}

static void chaos_strmap_put_leaves_the_map_unchanged_when_growing_fails(void)
{
    ssp_strmap map;
    static char keys[7][8];
    int value = 1;

    ssp_strmap_init(&map);
    for (int i = 0; i < 7; i++)
        snprintf(keys[i], sizeof keys[i], "k%d", i);
    arm(1);
    CHECK_INT_EQ(ssp_strmap_put(&map, keys[0], &value, NULL), -1);
    disarm();
    CHECK_INT_EQ(map.count, 0);
    CHECK(ssp_strmap_get(&map, keys[0]) == NULL);
    for (int i = 0; i < 6; i++)
        REQUIRE_INT_EQ(ssp_strmap_put(&map, keys[i], &value, NULL), 0);
    arm(1);
    CHECK_INT_EQ(ssp_strmap_put(&map, keys[6], &value, NULL), -1);
    disarm();
    CHECK_INT_EQ(map.count, 6);
    CHECK(ssp_strmap_get(&map, keys[6]) == NULL);
    for (int i = 0; i < 6; i++)
        CHECK(ssp_strmap_get(&map, keys[i]) == &value);
    ssp_strmap_destroy(&map);
}

static void chaos_room_shape_fails_cleanly_at_every_allocation(void)
{
    static const char REQUEST[] =
        "{\"initial_state\": [{\"type\": \"org.synapse_school_policy.room\", \"content\": "
        "{\"school\": \"gym-nord\", \"kind\": \"course\"}}, {\"type\": \"m.room.power_levels\", "
        "\"content\": {\"events\": {\"m.sticker\": 1}}}], \"creation_content\": {\"m.federate\": true}}";
    tu_fixture fx;
    outcomes o;
    json_t *request = NULL;
    long n;

    memset(&o, 0, sizeof o);
    if (!tu_setup(&fx, "\"one_way_allowed_events\": [\"m.reaction\", \"a/b\"]"))
        goto out;
    request = tu_json(REQUEST);
    for (n = 1; n <= MAX_RUNS; n++) {
        json_t *changes = json_null();
        int rc;

        memset(&fx.err, 0, sizeof fx.err);
        arm(n);
        rc = ssp_room_shape(fx.engine, request, &changes, &fx.err);
        disarm();
        CHECK(rc == 0 ? json_is_array(changes) : changes == NULL);
        /* Every failure is reported as such: the adapter never applies half a shape. */
        CHECK(rc == 0 || fx.err.code == SSP_ERR_NOMEM);
        json_decref(changes);
        if (chaos_hit == HIT_NONE) {
            CHECK_INT_EQ(rc, 0);
            break;
        }
        judge(&o, n, rc, &fx.err);
    }
    o.runs = n - 1;
    CHECK(n > 1 && n <= MAX_RUNS);
    report("ssp_room_shape", &o);
out:
    json_decref(request);
    tu_teardown(&fx);
}

void run_chaos_parsers_tests(void)
{
    RUN(chaos_config_check_fails_cleanly_at_every_allocation);
    RUN(chaos_homeserver_check_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_parse_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_check_batch_fails_cleanly_at_every_allocation);
    RUN(chaos_roster_parse_entry_and_to_json_fail_cleanly_at_every_allocation);
    RUN(chaos_strmap_put_leaves_the_map_unchanged_when_growing_fails);
    RUN(chaos_room_shape_fails_cleanly_at_every_allocation);
}
