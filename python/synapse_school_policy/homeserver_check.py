"""The homeserver.yaml self-check: gathers the Synapse settings the engine
judges (csrc/selfcheck.c), from a running Synapse or from a YAML file, with
Synapse's defaults applied."""
from __future__ import annotations

import json
from typing import Any, Mapping

from synapse_school_policy import _core


def settings_from_yaml(config: Mapping[str, Any]) -> dict[str, bool]:
    """The settings as Synapse would read them from homeserver.yaml."""
    user_directory = config.get("user_directory") or {}
    return {
        "user_directory.search_all_users": bool(user_directory.get("search_all_users", False)),
        "limit_profile_requests_to_users_who_share_rooms": bool(
            config.get("limit_profile_requests_to_users_who_share_rooms", False)
        ),
        "require_auth_for_profile_requests": bool(config.get("require_auth_for_profile_requests", False)),
        "allow_guest_access": bool(config.get("allow_guest_access", False)),
        "enable_registration": bool(config.get("enable_registration", False)),
        "registration_requires_token": bool(config.get("registration_requires_token", False)),
    }


def settings_from_synapse(hs_config: Any) -> dict[str, bool]:
    """The settings of the running Synapse (its parsed config objects)."""
    return {
        "user_directory.search_all_users": bool(hs_config.userdirectory.user_directory_search_all_users),
        "limit_profile_requests_to_users_who_share_rooms": bool(
            hs_config.server.limit_profile_requests_to_users_who_share_rooms
        ),
        "require_auth_for_profile_requests": bool(hs_config.server.require_auth_for_profile_requests),
        "allow_guest_access": bool(hs_config.registration.allow_guest_access),
        "enable_registration": bool(hs_config.registration.enable_registration),
        "registration_requires_token": bool(hs_config.registration.registration_requires_token),
    }


def findings(settings: Mapping[str, bool]) -> list[dict[str, str]]:
    """[{"setting": ..., "problem": ...}] for every setting that breaks the rules."""
    return _core.check_homeserver(json.dumps(settings))


def describe(found: list[dict[str, str]]) -> str:
    return "; ".join(f"{f['setting']}: {f['problem']}" for f in found)
