"""A createRoom body as Synapse reads it: its initial_state, its invitees, an upgrade's body."""
from __future__ import annotations

from typing import Mapping

from .constants import MEMBER

def _initial_state(body: Mapping) -> list[Mapping]:
    events = body.get("initial_state")
    if not isinstance(events, (list, tuple)):
        return []
    return [e for e in events if isinstance(e, Mapping)]


def _state_key_is_empty(event: Mapping) -> bool:
    """The room's join rule, history visibility and guest access are the
    events with state key "" (Synapse reads a missing state_key of an
    initial_state event as ""); others have no effect."""
    return event.get("state_key", "") == ""


def _is_upgrade(body) -> bool:
    """The body Synapse makes for a room upgrade: creation_content names a
    predecessor, and there is no preset."""
    if not isinstance(body, Mapping) or "preset" in body:
        return False
    creation = body.get("creation_content")
    return isinstance(creation, Mapping) and "predecessor" in creation


def create_room_invitees(body, creator: str | None = None) -> list[str]:
    """The invitees of a createRoom body: the unique strings among ``invite``, then the state_key (a str) of
    every initial_state m.room.member event, without the creator; in the order
    of first appearance."""
    if not isinstance(body, Mapping):
        return []
    candidates = []
    invite = body.get("invite")
    if isinstance(invite, (list, tuple)):
        candidates += [u for u in invite if isinstance(u, str)]
    for event in _initial_state(body):
        if event.get("type") == MEMBER and isinstance(event.get("state_key"), str):
            candidates.append(event["state_key"])
    invitees: list[str] = []
    for user in candidates:
        if user != creator and user not in invitees:
            invitees.append(user)
    return invitees
