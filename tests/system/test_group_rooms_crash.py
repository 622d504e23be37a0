"""A SIGKILL during a burst of group creations, on both stores: after the
restart every group has exactly one room, with every member in it.

The reconciler records a room after Synapse created it; a crash between the
two leaves a room the owner is in and the ledger does not name. It must be
found again (by the group id in its policy event), never made twice. The
burst is paced (actions_per_second) so that the kill lands while rooms are
being created."""
from __future__ import annotations

import uuid

import pytest

from harness.client import request, wait_for
from support import School, base_config, members, membership, uid

pytestmark = pytest.mark.integration

OWNER = uid("school-policy")
GROUPS = 24
TEACHERS = [f"lehrer{i}" for i in range(3)]
PUPILS = [f"kind{i}" for i in range(12)]


def group_members(i):
    return [TEACHERS[i % 3]] + [PUPILS[(i + k) % len(PUPILS)] for k in range(4)]


def roster_message():
    users = [{"user_id": uid(t), "schools": [membership("gym-nord", "teacher")]} for t in TEACHERS]
    users += [{"user_id": uid(p), "schools": [membership("gym-nord", "student")]} for p in PUPILS]
    groups = [{"group": f"crash-{i:02d}", "school": "gym-nord", "kind": "course", "name": f"Kurs {i:02d}",
               "members": [{"user_id": uid(u), "role": "moderator" if u in TEACHERS else "member"}
                           for u in group_members(i)]}
              for i in range(GROUPS)]
    return {"users": users, "groups": groups}


def room_ids(world):
    """group id -> recorded room id, through GET /groups (paged)."""
    found, start = {}, None
    while True:
        query = {"school": "gym-nord", "limit": "100", **({"from": start} if start else {})}
        status, body = world.admin_api("GET", "/groups", query=query)
        assert status == 200, body
        for group in body["groups"]:
            found[group["group"]] = group.get("room_id")
        start = body.get("next")
        if not start:
            return found


def rooms_named(world, name):
    status, body = request(world.server.base_url, "GET", "/_synapse/admin/v1/rooms",
                           token=world.users["root"].token, query={"search_term": name, "limit": "100"})
    assert status == 200, body
    return [room["room_id"] for room in body["rooms"] if room["name"] == name]


@pytest.mark.parametrize("store", ["embedded", "postgres"])
def test_a_sigkill_during_a_burst_of_group_creations_leaves_one_room_per_group(
        store, synapse_factory, postgres, tmp_path):
    overrides = {}
    if store == "postgres":
        dbname = f"school_policy_crash_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    config = base_config(tmp_path / "store", **overrides)
    config["schools"]["gym-nord"]["teachers_room"] = False
    config["reconciler"] = {"actions_per_second": 25}
    world = School(synapse_factory(config))
    world.register("sync")
    world.register("root", admin=True)
    for name in TEACHERS + PUPILS:
        world.register(name)
    status, body = world.admin_api("POST", "/roster", roster_message())
    assert status == 200 and body == {"upserted": len(TEACHERS) + len(PUPILS), "groups": GROUPS}, body

    def some_but_not_all():
        made = [g for g, room in room_ids(world).items() if room]
        return 2 <= len(made) < GROUPS or None

    wait_for(some_but_not_all, timeout=60, interval=0.05, what="the burst to be under way")
    world.server.kill()
    world.server.start()

    def all_in_place():
        rooms = room_ids(world)
        if len(rooms) != GROUPS or not all(rooms.values()):
            return None
        for i in range(GROUPS):
            expected = {uid(u) for u in group_members(i)} | {OWNER}
            if members(world, rooms[f"crash-{i:02d}"]) != expected:
                return None
        return rooms

    rooms = wait_for(all_in_place, timeout=120, what="every group's room with its members")
    for i in range(GROUPS):
        assert rooms_named(world, f"Kurs {i:02d}") == [rooms[f"crash-{i:02d}"]]

    def settled():
        status, body = world.admin_api("GET", "/status")
        gym = body["schools"]["gym-nord"]
        return gym if gym["pending"] == 0 else None

    gym = wait_for(settled, timeout=60, what="nothing pending")
    assert gym["last_error"] is None and gym["groups"] == {"count": GROUPS, "rooms_pending": 0}
