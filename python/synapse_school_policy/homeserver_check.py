"""The homeserver.yaml self-check: gathers the Synapse settings the engine
judges, from a running Synapse or from a YAML file, with Synapse's defaults
applied. Which settings matter, their verdicts (refuse, warn, report), the
reasons and the hardened block all live in the engine (csrc/selfcheck.c)."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from synapse_school_policy import _core, synapse_compat


def _rooms(value: Any) -> list[str]:
    return [str(room) for room in value or ()]


def _servers(value: Any) -> list[str] | None:
    """federation_domain_whitelist: None (every server) or the servers
    (Synapse keeps them as the keys of a dict)."""
    return None if value is None else sorted(str(server) for server in value)


# Each setting the engine judges: its key in the settings (the
# homeserver.yaml path), where the running Synapse keeps it
# (config section, attribute) and how its value is read.
_FROM_SYNAPSE: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("user_directory.search_all_users", "userdirectory", "user_directory_search_all_users", bool),
    ("limit_profile_requests_to_users_who_share_rooms", "server",
     "limit_profile_requests_to_users_who_share_rooms", bool),
    ("require_auth_for_profile_requests", "server", "require_auth_for_profile_requests", bool),
    ("allow_guest_access", "registration", "allow_guest_access", bool),
    ("enable_registration", "registration", "enable_registration", bool),
    ("registration_requires_token", "registration", "registration_requires_token", bool),
    ("allow_profile_lookup_over_federation", "federation", "allow_profile_lookup_over_federation", bool),
    ("allow_device_name_lookup_over_federation", "federation",
     "allow_device_name_lookup_over_federation", bool),
    ("auto_join_rooms", "registration", "auto_join_rooms", _rooms),
    ("presence.enabled", "server", "presence_enabled", bool),
    ("exclude_rooms_from_presence", "server", "rooms_to_exclude_from_presence", _rooms),
    ("allow_per_room_profiles", "server", "allow_per_room_profiles", bool),
    ("enable_set_displayname", "registration", "enable_set_displayname", bool),
    ("enable_set_avatar_url", "registration", "enable_set_avatar_url", bool),
    ("include_profile_updates_in_sync", "server", "include_profile_updates_in_sync", bool),
    ("experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms", "experimental",
     "msc4263_limit_key_queries_to_users_who_share_rooms", bool),
    ("federation_domain_whitelist", "federation", "federation_domain_whitelist", _servers),
    ("inhibit_user_in_use_error", "registration", "inhibit_user_in_use_error", bool),
    ("request_token_inhibit_3pid_errors", "server", "request_token_inhibit_3pid_errors", bool),
    ("enable_3pid_changes", "registration", "enable_3pid_changes", bool),
    ("url_preview_enabled", "media", "url_preview_enabled", bool),
    ("enable_authenticated_media", "media", "enable_authenticated_media", bool),
    ("include_profile_data_on_invite", "server", "include_profile_data_on_invite", bool),
    ("allow_public_rooms_over_federation", "server", "allow_public_rooms_over_federation", bool),
    ("allow_public_rooms_without_auth", "server", "allow_public_rooms_without_auth", bool),
    ("email", "email", "can_verify_email", bool),
    ("account_threepid_delegates.msisdn", "registration", "account_threepid_delegate_msisdn", bool),
)


def settings_from_synapse(hs_config: Any, announcement_rooms: list[str] | None = None) -> dict[str, Any]:
    """The settings of the running Synapse (its parsed config objects).
    Settings this Synapse does not have are left out, and not judged."""
    settings: dict[str, Any] = {}
    for key, section, attribute, read in _FROM_SYNAPSE:
        value = synapse_compat.homeserver_setting(hs_config, section, attribute)
        if value is not synapse_compat.ABSENT:
            settings[key] = read(value)
    if announcement_rooms is not None:
        settings["announcement_rooms"] = announcement_rooms
    return settings


def settings_from_yaml(config: Mapping[str, Any], announcement_rooms: list[str] | None = None) -> dict[str, Any]:
    """The settings as Synapse 1.163 would read them from homeserver.yaml."""
    def section(name: str) -> Mapping[str, Any]:
        value = config.get(name)
        return value if isinstance(value, Mapping) else {}

    presence = section("presence").get("enabled")
    auth_delegated = bool(section("matrix_authentication_service").get("enabled", False))
    # The obsolete flag closes both room-directory settings (synapse/config/server.py).
    public_rooms_local_only = bool(config.get("restrict_public_rooms_to_local_users", False))
    settings = {
        "user_directory.search_all_users": bool(section("user_directory").get("search_all_users", False)),
        "limit_profile_requests_to_users_who_share_rooms": bool(
            config.get("limit_profile_requests_to_users_who_share_rooms", False)
        ),
        "require_auth_for_profile_requests": bool(config.get("require_auth_for_profile_requests", False)),
        "allow_guest_access": bool(config.get("allow_guest_access", False)),
        "enable_registration": bool(config.get("enable_registration", False)),
        "registration_requires_token": bool(config.get("registration_requires_token", False)),
        "allow_profile_lookup_over_federation": bool(config.get("allow_profile_lookup_over_federation", True)),
        "allow_device_name_lookup_over_federation": bool(
            config.get("allow_device_name_lookup_over_federation", False)
        ),
        "auto_join_rooms": _rooms(config.get("auto_join_rooms")),
        # "untracked" is on too: status messages still travel.
        "presence.enabled": bool(config.get("use_presence", True) if presence is None else presence),
        "exclude_rooms_from_presence": _rooms(config.get("exclude_rooms_from_presence")),
        "allow_per_room_profiles": bool(config.get("allow_per_room_profiles", True)),
        "enable_set_displayname": bool(config.get("enable_set_displayname", True)),
        "enable_set_avatar_url": bool(config.get("enable_set_avatar_url", True)),
        "include_profile_updates_in_sync": bool(config.get("include_profile_updates_in_sync", False)),
        "experimental_features.msc4263_limit_key_queries_to_users_who_share_rooms": bool(
            section("experimental_features").get("msc4263_limit_key_queries_to_users_who_share_rooms", False)
        ),
        "federation_domain_whitelist": _servers(config.get("federation_domain_whitelist")),
        "inhibit_user_in_use_error": bool(config.get("inhibit_user_in_use_error", False)),
        "request_token_inhibit_3pid_errors": bool(config.get("request_token_inhibit_3pid_errors", False)),
        "enable_3pid_changes": bool(config.get("enable_3pid_changes", not auth_delegated)),
        "url_preview_enabled": bool(config.get("url_preview_enabled", False)),
        "enable_authenticated_media": bool(config.get("enable_authenticated_media", True)),
        "include_profile_data_on_invite": bool(config.get("include_profile_data_on_invite", True)),
        "allow_public_rooms_over_federation": not public_rooms_local_only
        and bool(config.get("allow_public_rooms_over_federation", False)),
        "allow_public_rooms_without_auth": not public_rooms_local_only
        and bool(config.get("allow_public_rooms_without_auth", False)),
        "email": bool(section("email")),
        "account_threepid_delegates.msisdn": bool(section("account_threepid_delegates").get("msisdn")),
    }
    if announcement_rooms is not None:
        settings["announcement_rooms"] = announcement_rooms
    return settings


def announcement_rooms(reconcile_status: Mapping[str, Any]) -> list[str]:
    """The announcement rooms the module keeps, from a reconcile status
    (Engine.reconcile_status or reconcile_status_offline)."""
    return sorted(
        school["announcement_room"]
        for school in reconcile_status.get("schools", {}).values()
        if school.get("announcement_room")
    )


def check(settings: Mapping[str, Any]) -> dict[str, Any]:
    """{"findings": [{"setting", "verdict", "problem"}], "hardened_block": str}:
    verdict is "refuse", "warn" or "report"; no findings is clean."""
    return _core.check_homeserver(json.dumps(settings))


def describe(found: list[dict[str, str]]) -> str:
    return "; ".join(f"{f['setting']}: {f['problem']}" for f in found)
