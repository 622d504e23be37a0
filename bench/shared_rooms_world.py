"""The world of bench/shared_rooms.py: its users, rooms and policies, and the helpers both parts share."""

import random
import time


SERVER = "school.test"
POLICY_TYPE = "org.synapse_school_policy.room"
SCHOOLS = {"gym-nord": {"messenger": True, "announcement_room": True},
           "rs-west": {"messenger": True}}
INVITE_ROOM = f"!directchat:{SERVER}"

# current_state_events as a fresh Synapse 1.163.2 database has it: the table and
# its constraints/index from full_schemas/72/full.sql.postgres, the column added
# by delta 74/03, the two indexes created by background updates
# (events_bg_updates.py: current_state_events_stream_ordering_idx, delta 77/14;
# state.py: current_state_events_members_room_index, delta 87/03). Left out,
# because they need the events table and only act on writes: the NOT VALID
# foreign key event_stream_ordering -> events(stream_ordering) (74/03, 79/04)
# and the check_event_stream_ordering trigger (74/04).
CSE_TABLE = """
CREATE TABLE current_state_events (
    event_id text NOT NULL,
    room_id text NOT NULL,
    type text NOT NULL,
    state_key text NOT NULL,
    membership text
);
ALTER TABLE current_state_events ADD COLUMN event_stream_ordering BIGINT;
"""
CSE_INDEXES = """
ALTER TABLE ONLY current_state_events
    ADD CONSTRAINT current_state_events_event_id_key UNIQUE (event_id);
ALTER TABLE ONLY current_state_events
    ADD CONSTRAINT current_state_events_room_id_type_state_key_key UNIQUE (room_id, type, state_key);
CREATE INDEX current_state_events_member_index ON current_state_events USING btree (state_key)
    WHERE (type = 'm.room.member'::text);
CREATE INDEX current_state_events_stream_ordering_idx ON current_state_events (event_stream_ordering);
CREATE INDEX current_state_events_members_room_index ON current_state_events (room_id, membership)
    WHERE type='m.room.member';
"""
CSE_SCHEMA = CSE_TABLE + CSE_INDEXES

# What simple_select_onecol builds for get_rooms_for_user (roommember.py):
# keyvalues type, membership, state_key in that order; '?' becomes %s.
ROOMS_FOR_USER_SQL = ("SELECT room_id FROM current_state_events "
                      "WHERE type = %s AND membership = %s AND state_key = %s")
# The SQL part of a cold get_room_state(room, [(POLICY_TYPE, "")]) (the state id;
# the event itself then comes from the event cache or event_json: not timed).
POLICY_STATE_SQL = ("SELECT type, state_key, event_id FROM current_state_events "
                    "WHERE room_id = %s AND type = %s AND state_key = %s")



def uid(i: int) -> str:
    return f"@u{i}:{SERVER}"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def fmt_us(ns: float) -> str:
    return f"{ns / 1000:.1f}" if ns < 1e7 else f"{ns / 1000:.0f}"


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


# ---- the world -------------------------------------------------------------------

def school_of_user(i: int) -> str:
    return "rs-west" if i % 3 == 2 else "gym-nord"


def make_policies(n_rooms: int, rng: random.Random) -> list[dict | None]:
    """45% gym-nord course, 35% rs-west course, 5% announcement of each school,
    10% unmanaged (None)."""
    out: list[dict | None] = []
    for _ in range(n_rooms):
        x = rng.random()
        if x < 0.45:
            out.append({"school": "gym-nord", "kind": "course", "two_way": True})
        elif x < 0.80:
            out.append({"school": "rs-west", "kind": "course", "two_way": True})
        elif x < 0.85:
            out.append({"school": "gym-nord", "kind": "announcement", "two_way": False})
        elif x < 0.90:
            out.append({"school": "rs-west", "kind": "announcement", "two_way": False})
        else:
            out.append(None)
    return out


def qualifies(policy: dict | None) -> bool:
    """Rule 3's qualifying room under SCHOOLS (mirrors decide.c room_qualifies)."""
    if policy is None:
        return False
    school = SCHOOLS.get(policy.get("school"))
    if school is None or not school.get("messenger"):
        return False
    return policy.get("kind") != "announcement" or bool(school.get("announcement_room"))


def room_id_of(i: int, rng_bits: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    r = random.Random(rng_bits * 1_000_003 + i)
    return "!" + "".join(r.choice(letters) for _ in range(18)) + f":{SERVER}"
