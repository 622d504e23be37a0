/*
 * The start-up self-check of homeserver.yaml: Synapse settings that would
 * let users see or reach people outside their rooms, or let strangers in.
 * The caller hands over the settings as JSON with Synapse's defaults
 * applied; the list of what is wrong and why lives here, once, for the
 * module's start-up and for the `doctor` command alike.
 */
#include <stdlib.h>
#include <string.h>

#include "selfcheck.h"
#include "util.h"

typedef struct setting_rule {
    const char *setting;  /* key in the settings JSON: the homeserver.yaml path */
    bool bad_value;       /* the boolean value that breaks the guarantee */
    const char *problem;
} setting_rule;

static const setting_rule RULES[] = {
    {"user_directory.search_all_users", true,
     "must be false: true lets the user directory show users who share no room with the searcher"},
    {"limit_profile_requests_to_users_who_share_rooms", false,
     "must be true: otherwise anyone can look up any user's profile"},
    {"require_auth_for_profile_requests", false,
     "must be true: otherwise profiles can be read without logging in"},
    {"allow_guest_access", true,
     "must be false: guests are on no roster and could read rooms opened to them"},
};

int ssp_homeserver_check(const char *settings_json, size_t len, char **findings_json,
                         ssp_error *err)
{
    json_error_t json_err;
    json_t *settings, *findings = NULL, *open_registration, *token_required;
    int rc = -1;

    *findings_json = NULL;
    settings = json_loadb(settings_json, len, 0, &json_err);
    if (settings == NULL) {
        if (ssp_json_error_is_oom(&json_err))
            return ssp_fail_nomem(err);
        return ssp_fail(err, SSP_ERR_INPUT, "settings: invalid JSON: %s", json_err.text);
    }
    if (!json_is_object(settings)) {
        ssp_fail(err, SSP_ERR_INPUT, "settings: expected an object");
        goto done;
    }
    findings = json_array();
    if (findings == NULL)
        goto oom;
    for (size_t i = 0; i < sizeof RULES / sizeof RULES[0]; i++) {
        json_t *value = json_object_get(settings, RULES[i].setting);

        if (!json_is_boolean(value)) {
            ssp_fail(err, SSP_ERR_INPUT, "settings.%s: expected a boolean", RULES[i].setting);
            goto done;
        }
        if (json_is_true(value) == RULES[i].bad_value &&
            json_array_append_new(findings, json_pack("{s:s, s:s}", "setting", RULES[i].setting,
                                                      "problem", RULES[i].problem)) != 0)
            goto oom;
    }
    open_registration = json_object_get(settings, "enable_registration");
    token_required = json_object_get(settings, "registration_requires_token");
    if (!json_is_boolean(open_registration) || !json_is_boolean(token_required)) {
        ssp_fail(err, SSP_ERR_INPUT,
                 "settings: enable_registration and registration_requires_token must be booleans");
        goto done;
    }
    if (json_is_true(open_registration) && !json_is_true(token_required) &&
        json_array_append_new(
            findings, json_pack("{s:s, s:s}", "setting", "enable_registration", "problem",
                                "must be false (or registration_requires_token true): open "
                                "registration creates accounts that are on no roster")) != 0)
        goto oom;
    rc = ssp_json_dump_to(findings, findings_json, err);
    goto done;
oom:
    ssp_fail_nomem(err);
done:
    json_decref(findings);
    json_decref(settings);
    return rc;
}
