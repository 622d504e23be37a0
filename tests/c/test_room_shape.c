/* The shape of new rooms (room_shape.c): the JSON Patch operations
 * on_create_room applies to a createRoom request, read as Synapse reads it. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rules/room_shape.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

#define GUEST "{\"type\": \"m.room.guest_access\", \"state_key\": \"\", " \
              "\"content\": {\"guest_access\": \"forbidden\"}}"
#define APPEND_GUEST "{\"op\": \"add\", \"path\": \"/initial_state/-\", \"value\": " GUEST "}"
#define SET_GUEST "{\"op\": \"add\", \"path\": \"/initial_state\", \"value\": [" GUEST "]}"
#define POLICY(content) "{\"type\": \"org.synapse_school_policy.room\", \"state_key\": \"\", " \
                        "\"content\": " content "}"
#define COURSE POLICY("{\"school\": \"gym-nord\", \"kind\": \"course\"}")
#define NO_FEDERATION "{\"op\": \"add\", \"path\": \"/creation_content\", " \
                      "\"value\": {\"m.federate\": false}}"

/* The operations for `request` equal `expected` (JSON text). */
static void check_shape(ssp_engine *engine, const char *request, const char *expected)
{
    json_t *value = tu_json(request), *changes = NULL;
    ssp_error err = {0};
    char *text;

    if (ssp_room_shape(engine, value, &changes, &err) != 0) {
        CHECK_FAIL("ssp_room_shape(%s) failed: %s", request, err.message);
        json_decref(value);
        return;
    }
    text = json_dumps(changes, JSON_COMPACT);
    if (text == NULL || !tu_json_equal_text(text, expected))
        CHECK_FAIL("ssp_room_shape(%s) is %s, expected %s", request, text ? text : "(null)", expected);
    free(text);
    json_decref(changes);
    json_decref(value);
}

static void room_shape_closes_guest_access_of_every_new_room(void)
{
    tu_fixture fx;

    REQUIRE(tu_setup(&fx, NULL));
    check_shape(fx.engine, "{}", "[" SET_GUEST "]");
    check_shape(fx.engine, "{\"initial_state\": null}", "[" SET_GUEST "]");
    /* Synapse iterates {} and "" as no state; the private_chat preset would open guest access. */
    check_shape(fx.engine, "{\"initial_state\": {}}", "[" SET_GUEST "]");
    check_shape(fx.engine, "{\"initial_state\": \"\"}", "[" SET_GUEST "]");
    check_shape(fx.engine, "{\"initial_state\": []}", "[" APPEND_GUEST "]");
    check_shape(fx.engine, "{\"initial_state\": [5, \"x\", null, [1]]}", "[" APPEND_GUEST "]");
    /* The request chose: can_join is refused by user_may_create_room. */
    check_shape(fx.engine,
                "{\"initial_state\": [{\"type\": \"m.room.guest_access\", "
                "\"content\": {\"guest_access\": \"can_join\"}}]}",
                "[]");
    /* Only state key "" counts; a content that is not an object does not. */
    check_shape(fx.engine,
                "{\"initial_state\": [{\"type\": \"m.room.guest_access\", \"state_key\": \"x\", "
                "\"content\": {}}, {\"type\": \"m.room.guest_access\", \"state_key\": null, "
                "\"content\": {}}]}",
                "[" APPEND_GUEST "]");
    /* The last entry of a state key wins, as in Synapse. */
    check_shape(fx.engine,
                "{\"initial_state\": [{\"type\": \"m.room.guest_access\", \"content\": {}}, "
                "{\"type\": \"m.room.guest_access\", \"state_key\": \"\", \"content\": \"x\"}]}",
                "[" APPEND_GUEST "]");
    /* Shapes Synapse refuses itself, and requests that are no object, are left alone. */
    check_shape(fx.engine, "{\"initial_state\": \"abc\"}", "[]");
    check_shape(fx.engine, "{\"initial_state\": {\"type\": \"m.room.guest_access\"}}", "[]");
    check_shape(fx.engine, "{\"initial_state\": 0}", "[]");
    check_shape(fx.engine, "[]", "[]");
    check_shape(fx.engine, "null", "[]");
    tu_teardown(&fx);
}

static void room_shape_keeps_managed_rooms_from_federating(void)
{
    tu_fixture fx;

    REQUIRE(tu_setup(&fx, NULL));
    check_shape(fx.engine,
                "{\"initial_state\": [" POLICY("{\"school\": \"gym-nord\", \"kind\": \"teachers\"}")
                "], \"power_level_content_override\": {}}",
                "[" APPEND_GUEST ", " NO_FEDERATION "]");
    /* Also over an explicit true, or a value that is not false. */
    check_shape(fx.engine,
                "{\"initial_state\": [" POLICY("{\"kind\": \"teachers\"}") "], "
                "\"creation_content\": {\"m.federate\": true, \"type\": \"x\"}}",
                "[" APPEND_GUEST ", {\"op\": \"add\", \"path\": \"/creation_content/m.federate\", "
                "\"value\": false}]");
    check_shape(fx.engine,
                "{\"initial_state\": [" POLICY("{\"kind\": \"teachers\"}") "], "
                "\"creation_content\": {\"m.federate\": false}}",
                "[" APPEND_GUEST "]");
    check_shape(fx.engine,
                "{\"initial_state\": [" POLICY("{\"kind\": \"teachers\"}") "], "
                "\"creation_content\": [1]}",
                "[" APPEND_GUEST ", " NO_FEDERATION "]");
    /* Any policy event of state key "": the empty one too (an unmanaged room, no power levels). */
    check_shape(fx.engine, "{\"initial_state\": [" POLICY("{}") "]}",
                "[" APPEND_GUEST ", " NO_FEDERATION "]");
    check_shape(fx.engine,
                "{\"initial_state\": [{\"type\": \"org.synapse_school_policy.room\", "
                "\"state_key\": \"x\", \"content\": {\"school\": \"gym-nord\"}}]}",
                "[" APPEND_GUEST "]");
    tu_teardown(&fx);
}

static void room_shape_aligns_the_power_levels_synapse_will_use(void)
{
    tu_fixture fx;

    REQUIRE(tu_setup(&fx, "\"one_way_allowed_events\": [\"m.reaction\", \"a/b~c\"], "
                          "\"moderator_level\": 40"));
    /* No power levels given: the override is created. */
    check_shape(fx.engine, "{\"initial_state\": [" COURSE "]}",
                "[" APPEND_GUEST ", " NO_FEDERATION ", {\"op\": \"add\", "
                "\"path\": \"/power_level_content_override\", \"value\": {\"events_default\": 40, "
                "\"events\": {\"m.room.redaction\": 0, \"m.reaction\": 0, \"a/b~c\": 0}}}]");
    /* An override: only what is missing, keys escaped (RFC 6901). */
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE "], \"creation_content\": {\"m.federate\": false}, "
                "\"power_level_content_override\": {\"events_default\": \" 4_0 \", "
                "\"events\": {\"m.reaction\": \"0\", \"m.room.redaction\": 1}}}",
                "[" APPEND_GUEST ", {\"op\": \"add\", "
                "\"path\": \"/power_level_content_override/events/m.room.redaction\", \"value\": 0}, "
                "{\"op\": \"add\", \"path\": \"/power_level_content_override/events/a~1b~0c\", "
                "\"value\": 0}]");
    /* An events that is not an object is replaced. */
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE "], \"creation_content\": {\"m.federate\": false}, "
                "\"power_level_content_override\": {\"events_default\": 40, \"events\": [1]}}",
                "[" APPEND_GUEST ", {\"op\": \"add\", \"path\": \"/power_level_content_override/events\", "
                "\"value\": {\"m.room.redaction\": 0, \"m.reaction\": 0, \"a/b~c\": 0}}]");
    /* initial_state's power levels replace Synapse's defaults and the override: patched there. */
    check_shape(fx.engine,
                "{\"initial_state\": [{\"type\": \"m.room.power_levels\", \"content\": {}}, " COURSE
                ", {\"type\": \"m.room.power_levels\", \"content\": {\"events_default\": 40, "
                "\"events\": {\"m.room.redaction\": 0, \"m.reaction\": 0}}}], "
                "\"creation_content\": {\"m.federate\": false}, \"power_level_content_override\": 5}",
                "[" APPEND_GUEST ", {\"op\": \"add\", \"path\": \"/initial_state/2/content/events/a~1b~0c\", "
                "\"value\": 0}]");
    /* A null content there leaves the override in charge; another non-object, Synapse refuses. */
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE ", {\"type\": \"m.room.power_levels\", \"content\": null}], "
                "\"creation_content\": {\"m.federate\": false}, "
                "\"power_level_content_override\": {\"events_default\": 40}}",
                "[" APPEND_GUEST ", {\"op\": \"add\", \"path\": \"/power_level_content_override/events\", "
                "\"value\": {\"m.room.redaction\": 0, \"m.reaction\": 0, \"a/b~c\": 0}}]");
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE ", {\"type\": \"m.room.power_levels\", \"content\": \"x\"}], "
                "\"creation_content\": {\"m.federate\": false}}",
                "[" APPEND_GUEST "]");
    /* Two-way: events_default 0; the last policy entry counts. */
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE ", " POLICY("{\"school\": \"gym-nord\", \"two_way\": true}")
                "], \"creation_content\": {\"m.federate\": false}, "
                "\"power_level_content_override\": {\"events_default\": 40}}",
                "[" APPEND_GUEST ", {\"op\": \"add\", "
                "\"path\": \"/power_level_content_override/events_default\", \"value\": 0}]");
    check_shape(fx.engine,
                "{\"initial_state\": [" COURSE ", " POLICY("\"junk\"") "]}",
                "[" APPEND_GUEST ", " NO_FEDERATION "]");
    tu_teardown(&fx);
}

static void level_from_json_reads_levels_as_synapse_does(void)
{
    static const struct {
        const char *json;
        bool is_level;
        int64_t level;
    } cases[] = {
        {"50", true, 50},
        {"-3", true, -3},
        {"\"50\"", true, 50},
        {"\" \\t+50\\u001c\"", true, 50},
        {"\"-0\"", true, 0},
        {"\"5_0\"", true, 50},
        {"\"9223372036854775807\"", true, INT64_MAX},
        {"\"-9223372036854775808\"", true, INT64_MIN},
        {"\"9223372036854775808\"", false, 0},
        {"\"-9223372036854775809\"", false, 0},
        {"\"_5\"", false, 0},
        {"\"5_\"", false, 0},
        {"\"1__0\"", false, 0},
        {"\"+\"", false, 0},
        {"\"\"", false, 0},
        {"\"5 0\"", false, 0},
        {"\"0x10\"", false, 0},
        {"\"\\u0665\"", false, 0}, /* int() reads other scripts' digits; Synapse's rooms never hold them */
        {"50.0", false, 0},
        {"true", false, 0},
        {"null", false, 0},
        {"[50]", false, 0},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *value = tu_json(cases[i].json);
        int64_t level = 12345;
        bool is_level = ssp_level_from_json(value, &level);

        if (is_level != cases[i].is_level || (is_level && level != cases[i].level))
            CHECK_FAIL("ssp_level_from_json(%s) is %d/%lld", cases[i].json, is_level, (long long)level);
        json_decref(value);
    }
}

static void power_levels_patch_json_lists_only_what_changes(void)
{
    ssp_power_levels_patch patch = {0};
    json_t *value;
    char *text;

    value = ssp_power_levels_patch_json(&patch);
    text = json_dumps(value, JSON_COMPACT);
    CHECK_STR_EQ(text, "{}");
    free(text);
    json_decref(value);
    patch.set_events_default = true;
    patch.events_default = 50;
    patch.open_events[0] = "m.room.redaction";
    patch.n_open_events = 1;
    value = ssp_power_levels_patch_json(&patch);
    text = json_dumps(value, JSON_COMPACT);
    CHECK(tu_json_equal_text(text, "{\"events_default\": 50, \"events\": {\"m.room.redaction\": 0}}"));
    free(text);
    json_decref(value);
}

void run_room_shape_tests(void)
{
    RUN(room_shape_closes_guest_access_of_every_new_room);
    RUN(room_shape_keeps_managed_rooms_from_federating);
    RUN(room_shape_aligns_the_power_levels_synapse_will_use);
    RUN(level_from_json_reads_levels_as_synapse_does);
    RUN(power_levels_patch_json_lists_only_what_changes);
}
