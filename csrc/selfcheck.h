/* The start-up self-check of homeserver.yaml (selfcheck.c). */
#ifndef SSP_SELFCHECK_H
#define SSP_SELFCHECK_H

#include <stddef.h>

#include "error.h"

/* Checks Synapse settings given as a JSON object of booleans keyed by their
 * homeserver.yaml path (user_directory.search_all_users,
 * limit_profile_requests_to_users_who_share_rooms,
 * require_auth_for_profile_requests, allow_guest_access,
 * enable_registration, registration_requires_token), with Synapse's
 * defaults applied. *findings_json receives a JSON list of
 * {"setting", "problem"} (empty when all is well; caller frees). */
int ssp_homeserver_check(const char *settings_json, size_t len, char **findings_json,
                         ssp_error *err);

#endif
