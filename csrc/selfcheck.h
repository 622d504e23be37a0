/* The start-up self-check of homeserver.yaml (selfcheck.c). */
#ifndef SSP_SELFCHECK_H
#define SSP_SELFCHECK_H

#include <stddef.h>

#include "error.h"

/* Judges Synapse settings given as a JSON object keyed by their
 * homeserver.yaml path, with Synapse's defaults applied (docs/configuration.md,
 * "The homeserver.yaml self-check", lists them with their verdicts).
 * - Required booleans: user_directory.search_all_users,
 *   limit_profile_requests_to_users_who_share_rooms,
 *   require_auth_for_profile_requests, allow_guest_access,
 *   enable_registration, registration_requires_token.
 * - Optional (missing: this Synapse has no such setting, not judged):
 *   booleans presence.enabled, allow_per_room_profiles,
 *   enable_set_displayname, enable_set_avatar_url,
 *   allow_profile_lookup_over_federation,
 *   allow_device_name_lookup_over_federation, include_profile_data_on_invite,
 *   include_profile_updates_in_sync,
 *   experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms,
 *   inhibit_user_in_use_error, request_token_inhibit_3pid_errors,
 *   enable_3pid_changes, url_preview_enabled, enable_authenticated_media,
 *   allow_public_rooms_over_federation, allow_public_rooms_without_auth,
 *   email (an email section lets Synapse send verification mail),
 *   account_threepid_delegates.msisdn (a delegate is set); lists of strings
 *   exclude_rooms_from_presence, auto_join_rooms, announcement_rooms (no
 *   setting: the module's announcement rooms; missing = not known);
 *   federation_domain_whitelist, a list of strings or null.
 * *result_json receives {"findings": [{"setting", "verdict", "problem"}],
 * "hardened_block": "<YAML>"} (caller frees): verdict is "refuse", "warn"
 * or "report"; no findings means clean. The block sets every setting the
 * check knows to its hardened value, under a comment with the verdict and
 * the reason, keeping the operator's own lists where they pass. A value of
 * the wrong type fails with SSP_ERR_INPUT naming settings.<key>. */
int ssp_homeserver_check(const char *settings_json, size_t len, char **result_json,
                         ssp_error *err);

#endif
