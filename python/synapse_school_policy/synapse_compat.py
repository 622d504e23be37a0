"""Which Synapse releases the module runs on, and the things it needs from
Synapse that the public ModuleApi does not offer.

The compatibility window is written once, in pyproject.toml: the "synapse"
extra pins the newest release tested, the "synapse-oldest" extra the oldest.
Both reach the installed package's metadata, where this file reads them. The
module supports every release from the oldest pin up to the last patch
release of the newest pin's minor version; `make test` runs the integration
tests against both pins.

The private members used (each in one function below, each checked at
start-up by `check_synapse`):

- `api._hs.config`: Synapse's parsed homeserver.yaml, for the start-up
  self-check. ModuleApi exposes no settings beyond a few names.
- `api._store.get_mutual_rooms_between_users`: the rooms two users are both
  joined to (rule 3). ModuleApi has no such query; the store's is cached and
  invalidated across workers.
- `api._store.get_rooms_for_user`: the rooms a user is joined to (the
  reconciler finds the special rooms its owner created). Same reason.
- `api._hs.get_room_member_handler().update_membership`: a membership
  change without Synapse's rate limits (`update_membership` below).
  ModuleApi.update_room_membership applies the invite and join limits of
  an ordinary client, which a reconciler filling a school's rooms would hit
  at once (rc_invites.per_issuer allows a few invites a minute).
- `api._store.get_room_max_stream_ordering`,
  `api._store.get_partial_current_state_deltas` and `api._store.get_event`:
  the changes of rooms' current state since a position of the events
  stream, and their events (what the module takes back after the fact,
  after_the_fact.py). ModuleApi's on_new_event shows every event instead,
  after Synapse has loaded the room's whole state for it.

And three imports from outside synapse.module_api, each named once here:
`KNOWN_ROOM_VERSIONS` (synapse.api.room_versions), whether a room
version gives its creators unlimited power (adopt.py);
`PreserveLoggingContext` (synapse.logging.context), which durable.py needs
to fire the Deferreds that denials await, as Synapse's own code does; and
`LimitExceededError` (synapse.api.errors), Synapse's own 429, which the
flood limit raises (`PolicyLimitExceeded` below). All three are there from
the oldest supported release to the newest (a release without
msc4289_creator_power_enabled knows no room version that has it).
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import Any, Collection

# Synapse's logcontext guard, for firing a Deferred that a caller awaits
# through make_deferred_yieldable (durable.py), as Synapse's own
# DeferredEvent.set does. Not part of the ModuleApi, but a module that fires
# Deferreds needs it; unchanged since before the oldest supported release.
from synapse.api.errors import LimitExceededError
from synapse.logging.context import PreserveLoggingContext
from synapse.module_api.errors import ConfigError

DISTRIBUTION = "synapse-school-policy"
_PIN = re.compile(r"^matrix-synapse(?:\[[^\]]*\])?\s*==\s*([0-9][0-9.]*)\s*;\s*extra\s*==\s*[\"']([a-z-]+)[\"']")


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; a pre-release such as
    1.164.0rc1 counts as its release."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ValueError(f"not a Synapse version: {version!r}")
    return tuple(int(part or 0) for part in match.groups())


def supported_window() -> tuple[str, str]:
    """(oldest, newest): the two Synapse pins of the installed package."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"synapse_school_policy: the package metadata of {DISTRIBUTION} is missing, so the "
            "supported Synapse versions are unknown; install the module with pip"
        ) from exc
    pins = {}
    for requirement in requirements:
        match = _PIN.match(requirement)
        if match is not None:
            pins[match.group(2)] = match.group(1)
    if "synapse" not in pins or "synapse-oldest" not in pins:
        raise ConfigError(
            f"synapse_school_policy: the metadata of {DISTRIBUTION} names no Synapse window "
            "(the 'synapse' and 'synapse-oldest' extras); reinstall the module"
        )
    return pins["synapse-oldest"], pins["synapse"]


def window_text(oldest: str, newest: str) -> str:
    major, minor = _release(newest)[:2]
    return f"Synapse {oldest} to {major}.{minor}.x"


def check_version(synapse_version: str, oldest: str, newest: str) -> None:
    """Raises ConfigError unless oldest <= synapse_version < the minor
    release after newest."""
    running = _release(synapse_version)
    above = _release(newest)[:2]
    if running < _release(oldest) or running[:2] > above:
        raise ConfigError(
            f"synapse_school_policy supports {window_text(oldest, newest)}; this is Synapse "
            f"{synapse_version}. Install a release of the module made for this Synapse "
            "(docs/install.md lists the window of each)"
        )


def check_synapse(api: Any) -> None:
    """Start-up check: the running Synapse is inside the window, and every
    private member this file uses is there. Raises ConfigError naming what
    is wrong."""
    import synapse

    check_version(synapse.__version__, *supported_window())
    missing = []
    config = getattr(getattr(api, "_hs", None), "config", None)
    for section, setting in _HOMESERVER_SETTINGS:
        if not hasattr(getattr(config, section, None), setting):
            missing.append(f"homeserver config {section}.{setting}")
    hs = getattr(api, "_hs", None)
    if not callable(getattr(hs, "get_room_member_handler", None)):
        missing.append("ModuleApi._hs.get_room_member_handler")
    store = getattr(api, "_store", None)
    for name in _STORE_MEMBERS:
        if not callable(getattr(store, name, None)):
            missing.append(f"ModuleApi._store.{name}")
    if missing:
        raise ConfigError(
            f"synapse_school_policy: Synapse {synapse.__version__} lacks what the module needs: "
            + ", ".join(missing)
        )


# The store's methods the module calls (one function each, below).
_STORE_MEMBERS = (
    "get_mutual_rooms_between_users",
    "get_rooms_for_user",
    "get_room_max_stream_ordering",
    "get_partial_current_state_deltas",
    "get_event",
)

# The settings of Synapse's parsed config that the self-check reads:
# (config section attribute, setting attribute).
_HOMESERVER_SETTINGS = (
    ("userdirectory", "user_directory_search_all_users"),
    ("server", "limit_profile_requests_to_users_who_share_rooms"),
    ("server", "require_auth_for_profile_requests"),
    ("registration", "allow_guest_access"),
    ("registration", "enable_registration"),
    ("registration", "registration_requires_token"),
)


def homeserver_config(api: Any) -> Any:
    """Synapse's parsed homeserver.yaml (private: `api._hs.config`)."""
    return api._hs.config  # noqa: SLF001


# What homeserver_setting answers for a setting this Synapse does not have.
ABSENT: Any = object()


def homeserver_setting(config: Any, section: str, attribute: str) -> Any:
    """One parsed setting, `config.<section>.<attribute>`, or ABSENT when
    this Synapse has no such setting. The hardening settings of the
    self-check are read this way: some are newer than the oldest supported
    Synapse (exclude_rooms_from_presence, include_profile_updates_in_sync
    are not in 1.140.0), so a missing one is skipped, not an error; the ones
    in _HOMESERVER_SETTINGS are required by check_synapse."""
    return getattr(getattr(config, section, None), attribute, ABSENT)


async def mutual_rooms(api: Any, user_a: str, user_b: str) -> Collection[str]:
    """The ids of the rooms both users are joined to (private:
    `api._store.get_mutual_rooms_between_users`, cached by Synapse)."""
    return await api._store.get_mutual_rooms_between_users(frozenset((user_a, user_b)))  # noqa: SLF001


async def rooms_for_user(api: Any, user_id: str) -> Collection[str]:
    """The ids of the rooms the user is joined to (private:
    `api._store.get_rooms_for_user`, cached by Synapse)."""
    return await api._store.get_rooms_for_user(user_id)  # noqa: SLF001


async def update_membership(api: Any, sender: str, target: str, room_id: str, membership: str) -> None:
    """Sets target's membership in the room as sender (a local user), as
    ModuleApi.update_room_membership does, but without the rate limits of a
    client (private: `api._hs.get_room_member_handler().update_membership`
    with ratelimit=False). Synapse adds the joining user's profile itself."""
    from synapse.module_api import UserID, create_requester

    await api._hs.get_room_member_handler().update_membership(  # noqa: SLF001
        requester=create_requester(sender),
        target=UserID.from_string(target),
        room_id=room_id,
        action=membership,
        content={},
        ratelimit=False,
    )


def creators_have_unlimited_power(room_version: str) -> bool:
    """True for room versions whose creators have unlimited power and are
    absent from power_levels (room version 12 on, MSC4289)."""
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS

    version = KNOWN_ROOM_VERSIONS.get(room_version)
    return bool(getattr(version, "msc4289_creator_power_enabled", False))


def events_stream_position(api: Any) -> int:
    """How far this process has seen the events stream persisted (private:
    `api._store.get_room_max_stream_ordering`, kept in memory and
    replicated to workers): the current state deltas up to it are final."""
    return api._store.get_room_max_stream_ordering()  # noqa: SLF001


async def state_deltas(api: Any, since: int, until: int) -> tuple[int, list[Any]]:
    """The changes of rooms' current state after `since` up to `until`, at
    most about a hundred: (the position they reach, [StateDelta with
    room_id, event_type, state_key, event_id (None: state removed)]);
    changes made by state resolution included (private:
    `api._store.get_partial_current_state_deltas`, the current state delta
    stream Synapse's user directory and room stats follow)."""
    return await api._store.get_partial_current_state_deltas(since, until)  # noqa: SLF001


async def event(api: Any, event_id: str) -> Any:
    """The event, or None (private: `api._store.get_event`, from Synapse's
    event cache)."""
    return await api._store.get_event(event_id, allow_none=True)  # noqa: SLF001


class PolicyLimitExceeded(LimitExceededError):
    """Synapse's own 429 `M_LIMIT_EXCEEDED`, as its rate limits answer: the
    `Retry-After` header and `retry_after_ms`, and the pause Synapse takes
    before it answers (after the request's locks are released), which slows
    a client that loops without waiting; plus the module's message and its
    `school_policy` field, which LimitExceededError's body leaves out."""

    def __init__(self, message: str, retry_after_ms: int, fields: dict, pause: float):
        super().__init__("school_policy", retry_after_ms=retry_after_ms, pause=pause)
        self.msg = message
        self._fields = fields

    def error_dict(self, config: Any) -> dict:
        return {**super().error_dict(config), **self._fields}
