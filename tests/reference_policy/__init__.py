"""A pure-Python reference model of the engine's decisions.

It is written from docs/rules.md, docs/special-rooms.md and
docs/threat-model.md (every door and its guard), not from the C code, so
that the differential tests compare two independent readings of the rules.
It also serves as the "equivalent pure-Python policy" the benchmarks race
the C engine against. Nothing in the module imports it.

decide() mirrors the binding's ``Engine.decide``:

    decide(callback, actor, target, room_id, event_type, state_key, content,
           room, actor_admin, is_invited, shared_rooms, actor_membership,
           member_count)

with the callback given by name and ``actor_admin`` as None / False / True
(the binding's FACT_UNKNOWN / FACT_NO / FACT_YES). A fact given as None is
"not known yet": the model answers NEED_* when it needs it.

- ``room``: None, or the 5-tuple (policy content, policy sender, power levels
  content, m.room.create content, m.room.create sender), each possibly None.
- ``shared_rooms``: None, or a list of 3-tuples (policy content, policy
  sender, m.room.create sender), one per room actor and target share.
- ``actor_membership``: the actor's membership in the room ("" = none).
- ``member_count``: users with membership join or invite in the room.

Answers: ALLOW (None), one of the NEED_* strings, SYNC_POWER_LEVELS, or a
denial (rule, enforced, school) with school None when there is none.

room_shape(request) mirrors ``Engine.room_shape``: the JSON Patch "add"
operations on_create_room applies to a createRoom request (docs/rules.md,
"How new rooms are shaped").

after_event(event, state, profile, sender_admin) mirrors
``Engine.after_event``: what the module takes back after the fact
(docs/rules.md, "After the fact"). ``event`` and the values of ``state``
are objects with Synapse's event attributes (type, sender, room_id,
event_id, content, is_state(), get_state_key(), internal_metadata with
is_outlier() and stream_ordering). Answers: None, NEED_PROFILE, NEED_ADMIN,
or (kind, rule, enforced, school, undone event id, room id, user id, sender,
state) with school None when there is none.
"""
# The model in parts: constants.py (answers, event types), emoji.py (a
# reaction's key), create_room.py (a createRoom body), model.py (decide),
# groups.py (group rooms), after_fact.py (after_event), shape.py
# (room_shape).
from .constants import (  # noqa: F401
    ALLOW,
    NEED_ADMIN,
    NEED_MEMBER_COUNT,
    NEED_MEMBERSHIP,
    NEED_PROFILE,
    NEED_ROOM,
    NEED_SHARED_ROOMS,
    SYNC_POWER_LEVELS,
)
from .create_room import create_room_invitees  # noqa: F401
from .emoji import is_emoji_key, is_emoji_reaction  # noqa: F401
from .model import ReferencePolicy  # noqa: F401
