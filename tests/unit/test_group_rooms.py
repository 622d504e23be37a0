"""The group rooms of the reconciler against the fake Synapse of
test_reconciler.py and a real engine whose group side (group_plan,
groups_of, the group marks and rooms of the ledger) is played by
`GroupEngine` below, as groups-design.md names it. tests/system/
test_group_rooms.py runs the same against a real Synapse and the engine's
own group index."""
import asyncio
import json
import time

import pytest

from support import uid
from synapse_school_policy import _core
from synapse_school_policy.reconciler import Reconciler
from .test_reconciler import OWNER, SERVER, FakeSynapse, gather, members

POLICY = "org.synapse_school_policy.room"
APPLIED = POLICY + ".applied"
MODERATOR = 50


class GroupEngine:
    """The real engine, plus the group side of the design note kept in
    Python: a group snapshot store, group_plan and groups_of, and the
    ledger's group marks and rooms."""

    def __init__(self, engine, opted_in=("gym-nord", "gs-sued")):
        self._e = engine
        self.opted_in = set(opted_in)
        self.groups: dict[str, dict] = {}
        self.marks: dict[tuple[str, str], dict] = {}
        self.rooms: dict[tuple[str, str], str] = {}
        self._generation = 0

    def __getattr__(self, name):
        return getattr(self._e, name)

    @property
    def reconciler_user(self):
        return self._e.reconciler_user

    @property
    def policy_event_type(self):
        return self._e.policy_event_type

    # the group index
    def put(self, group):
        group = {"two_way": False, "closed": True, "state": "active", "topic": None, **group}
        self.groups[group["group"]] = group
        self._mark(group["school"], "group:" + group["group"])

    def group_get(self, group_id):
        g = self.groups.get(group_id)
        return None if g is None else {**g, "room_id": self.rooms.get((g["school"], "group:" + group_id))}

    def group_plan(self, group_id):
        g = self.groups.get(group_id)
        if g is None:
            return None
        state = g["state"]
        if state == "active" and g.get("archive_at_ms") and g["archive_at_ms"] <= time.time() * 1000:
            state = "archived"
        members = []
        for m in g["members"]:
            entry = self._e.roster_get(m["user_id"])
            schools = {s["school"] for s in entry["schools"]} if entry else set()
            ok = bool(schools & self.opted_in)
            why = None if ok else ("not on the roster" if entry is None else "no school of theirs has opted in")
            members.append({"user_id": m["user_id"], "role": m["role"], "member": ok,
                            "power_level": MODERATOR if ok and m["role"] == "moderator" else None,
                            "why": why})
        return {"group": group_id, "school": g["school"], "kind": g["kind"], "name": g["name"],
                "topic": g["topic"], "two_way": g["two_way"], "closed": g["closed"], "state": state,
                "remove_members_now": g["state"] == "deleted" or g.get("expired", False),
                "policy": {"school": g["school"], "kind": g["kind"], "two_way": g["two_way"],
                           "group": group_id},
                "members": members}

    def groups_of(self, user_id):
        return sorted(g for g, v in self.groups.items() if any(m["user_id"] == user_id for m in v["members"]))

    # the ledger's group side
    def _mark(self, school, subject):
        self._generation += 1
        self.marks[(school, subject)] = {"school": school, "user_id": subject, "generation": self._generation,
                                         "attempts": 0, "due": 0, "error": None}

    def reconcile_mark(self, school, subjects):
        for subject in subjects:
            if subject.startswith("group:"):
                self._mark(school, subject)
        users = [u for u in subjects if not u.startswith("group:")]
        if users:
            self._e.reconcile_mark(school, users)

    def reconcile_due(self, now_ms, limit):
        due = self._e.reconcile_due(now_ms, limit)
        due += [dict(m) for m in self.marks.values() if m["due"] <= now_ms]
        return due[:limit]

    def reconcile_done(self, school, subject, generation):
        if subject.startswith("group:"):
            if self.marks.get((school, subject), {}).get("generation") == generation:
                del self.marks[(school, subject)]
            return
        self._e.reconcile_done(school, subject, generation)

    def reconcile_failed(self, school, subject, generation, error, due_ms):
        if subject.startswith("group:"):
            m = self.marks[(school, subject)]
            m.update(attempts=m["attempts"] + 1, due=due_ms, error=error)
            return
        self._e.reconcile_failed(school, subject, generation, error, due_ms)

    def reconcile_set_room(self, school, kind, room_id):
        if kind.startswith("group:"):
            self.rooms[(school, kind)] = room_id
        else:
            self._e.reconcile_set_room(school, kind, room_id)

    def reconcile_get_room(self, school, kind):
        if kind.startswith("group:"):
            return self.rooms.get((school, kind))
        return self._e.reconcile_get_room(school, kind)


def world(tmp_path, rate=1000):
    config = {"data_dir": str(tmp_path), "reconciler": {"actions_per_second": rate},
              "service_users": [uid("sync")],
              "schools": {"gym-nord": {"messenger": True, "teachers_room": False},
                          "gs-sued": {"messenger": True, "teachers_room": False},
                          "rs-west": {"messenger": False, "teachers_room": False}}}
    core = _core.Engine(json.dumps(config), SERVER, "main")
    core.open()
    core.roster_upsert(json.dumps({"users": [
        {"user_id": uid("berg"), "schools": [{"school": "gym-nord", "role": "teacher"}]},
        {"user_id": uid("ali"), "schools": [{"school": "gym-nord", "role": "student"}]},
        {"user_id": uid("bea"), "schools": [{"school": "gym-nord", "role": "student"}]},
        {"user_id": uid("sven"), "schools": [{"school": "gs-sued", "role": "student"}]},
        {"user_id": uid("otto"), "schools": [{"school": "rs-west", "role": "student"}]},
    ]}).encode())
    engine = GroupEngine(core)
    users = {uid(n) for n in ("berg", "ali", "bea", "sven", "otto", "sync", "admin", "guest")}
    synapse = FakeSynapse(users=users)
    rec = Reconciler(synapse, engine, concurrently=gather, service_users=frozenset({uid("sync")}), settle_ms=0)
    return engine, synapse, rec


def mathe(**changes):
    return {"group": "course-7b", "school": "gym-nord", "kind": "course", "name": "Mathe 7b",
            "topic": "Mathematik", "members": [{"user_id": uid("berg"), "role": "moderator"},
                                               {"user_id": uid("ali"), "role": "member"},
                                               {"user_id": uid("bea"), "role": "member"}], **changes}


def run(rec):
    asyncio.run(rec.run_once())


def room_of(engine, group="course-7b", school="gym-nord"):
    return engine.rooms[(school, "group:" + group)]


def actions_audited(engine):
    engine.audit_flush()
    return [(r["action"], r["target"], r["group"], r["reason"])
            for r in reversed(engine.audit_query(kind="action")["records"])]


def invited(synapse, room_id):
    return {k[1] for k, c in synapse.rooms[room_id].items() if k[0] == "m.room.member" and c["membership"] == "invite"}


def test_a_group_gets_one_room_with_its_policy_members_and_moderators(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe())
    run(rec)
    room_id = room_of(engine)
    state = synapse.rooms[room_id]
    assert state[(POLICY, "")] == {"school": "gym-nord", "kind": "course", "two_way": False, "group": "course-7b"}
    assert state[("m.room.guest_access", "")] == {"guest_access": "forbidden"}
    assert state[("m.room.join_rules", "")] == {"join_rule": "invite"}
    assert ("m.room.encryption", "") not in state
    assert synapse.configs[room_id]["creation_content"] == {"m.federate": False}
    assert state[("m.room.name", "")] == {"name": "Mathe 7b"}
    assert members(synapse, room_id) == {OWNER, uid("berg"), uid("ali"), uid("bea")}
    assert state[("m.room.power_levels", "")]["users"] == {uid("berg"): MODERATOR}
    # one way: only moderators post
    assert state[("m.room.power_levels", "")]["events_default"] == MODERATOR
    assert not engine.marks
    audited = actions_audited(engine)
    assert audited[0][:3] == ("room_created", None, "course-7b")
    assert {a[1] for a in audited if a[0] == "member_added"} == {uid("berg"), uid("ali"), uid("bea")}
    assert ("power_changed", uid("berg"), "course-7b") in {a[:3] for a in audited}
    done = len(synapse.actions)
    engine.put(mathe())
    run(rec)
    assert synapse.actions[done:] == []


def test_a_room_created_but_not_recorded_before_a_crash_is_found_again(tmp_path):
    engine, synapse, rec = world(tmp_path)
    orphan = synapse.add_room(OWNER, {"school": "gym-nord", "kind": "course", "two_way": False,
                                      "group": "course-7b"})
    engine.put(mathe())
    run(rec)
    assert room_of(engine) == orphan
    assert not [a for a in synapse.actions if a[0] == "create"]
    assert members(synapse, orphan) == {OWNER, uid("berg"), uid("ali"), uid("bea")}


def test_removal_kicks_withdraws_invites_and_lowers_a_lost_moderator(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe())
    run(rec)
    room_id = room_of(engine)
    synapse.rooms[room_id][("m.room.member", uid("bea"))] = {"membership": "invite"}  # not joined yet
    # Frau Berg is now a plain member (a substitute took over); Ali and Bea left the course.
    engine.put(mathe(version=2, members=[{"user_id": uid("berg"), "role": "member"}]))
    run(rec)
    assert members(synapse, room_id) == {OWNER, uid("berg")}
    assert invited(synapse, room_id) == set()
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["users"] == {}
    audited = actions_audited(engine)
    assert ("member_removed", uid("ali"), "course-7b",
            "no longer listed in the course 'Mathe 7b' by the school cloud") in audited
    assert ("invite_withdrawn", uid("bea"), "course-7b",
            "no longer listed in the course 'Mathe 7b' by the school cloud") in audited
    lowered = [a for a in audited if a[0] == "power_changed" and a[1] == uid("berg")]
    assert lowered[-1][3].endswith("(power level 50 -> 0)")


def test_the_owner_service_users_admins_and_open_group_guests_are_never_removed(tmp_path):
    engine, synapse, rec = world(tmp_path)
    synapse.admins.add(uid("admin"))
    engine.put(mathe(closed=False))
    run(rec)
    room_id = room_of(engine)
    for user in (uid("sync"), uid("admin"), uid("guest")):
        synapse.rooms[room_id][("m.room.member", user)] = {"membership": "join"}
    engine.put(mathe(version=2, closed=False))
    run(rec)
    assert {uid("sync"), uid("admin"), uid("guest")} <= members(synapse, room_id)
    # closed again: the guest goes, the protected stay
    engine.put(mathe(version=3, closed=True))
    run(rec)
    assert uid("guest") not in members(synapse, room_id)
    assert {OWNER, uid("sync"), uid("admin")} <= members(synapse, room_id)


def test_a_member_none_of_whose_schools_opted_in_is_not_added(tmp_path):
    engine, synapse, rec = world(tmp_path)
    team = {"group": "team-robotik", "school": "gym-nord", "kind": "team", "name": "Robotik", "two_way": True,
            "members": [{"user_id": uid("berg"), "role": "moderator"}, {"user_id": uid("sven"), "role": "member"},
                        {"user_id": uid("otto"), "role": "member"}]}
    engine.put(team)
    run(rec)
    room_id = room_of(engine, "team-robotik")
    assert members(synapse, room_id) == {OWNER, uid("berg"), uid("sven")}
    assert synapse.rooms[room_id][("m.room.power_levels", "")].get("events_default", 0) == 0


def test_a_user_who_leaves_every_opted_in_school_leaves_the_group_rooms(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe())
    run(rec)
    room_id = room_of(engine)
    engine.roster_put(uid("ali"), json.dumps({"schools": [{"school": "rs-west", "role": "student"}]}).encode())
    run(rec)
    assert uid("ali") not in members(synapse, room_id)
    audited = actions_audited(engine)
    assert ("member_removed", uid("ali"), "course-7b",
            "listed in the course 'Mathe 7b', but no school of theirs has opted in") in audited


def test_archived_turns_read_only_then_empties_and_deleted_empties_at_once(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe())
    run(rec)
    room_id = room_of(engine)
    engine.put(mathe(version=2, state="archived"))
    run(rec)
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == 100
    assert members(synapse, room_id) == {OWNER, uid("berg"), uid("ali"), uid("bea")}
    engine.put(mathe(version=3, state="archived", expired=True))
    run(rec)
    assert members(synapse, room_id) == {OWNER}
    engine.put(mathe(version=4))
    run(rec)
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == MODERATOR
    synapse.rooms[room_id][("m.room.member", uid("sync"))] = {"membership": "join"}
    engine.put(mathe(version=5, state="deleted"))
    run(rec)
    assert members(synapse, room_id) == {OWNER}
    audited = actions_audited(engine)
    assert ("member_removed", uid("ali"), "course-7b", "the course 'Mathe 7b' was deleted") in audited
    assert "room_archived" in {a[0] for a in audited}


def test_archive_at_ms_brings_the_group_back_without_a_message(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe(archive_at_ms=int(time.time() * 1000) + 150))
    run(rec)
    room_id = room_of(engine)
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == MODERATOR
    run(rec)
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == MODERATOR
    time.sleep(0.2)
    run(rec)
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == 100


def test_a_moderators_two_way_stands_until_the_school_cloud_changes_it(tmp_path):
    engine, synapse, rec = world(tmp_path)
    engine.put(mathe())
    run(rec)
    room_id = room_of(engine)
    synapse.rooms[room_id][(POLICY, "")] = {**synapse.rooms[room_id][(POLICY, "")], "two_way": True}
    engine.put(mathe(version=2, name="Mathe 7b (neu)"))
    run(rec)
    assert synapse.rooms[room_id][(POLICY, "")]["two_way"] is True
    assert synapse.rooms[room_id][("m.room.name", "")] == {"name": "Mathe 7b (neu)"}
    assert synapse.rooms[room_id][("m.room.power_levels", "")].get("events_default", 0) == 0
    engine.put(mathe(version=3, name="Mathe 7b (neu)", two_way=True))
    run(rec)
    engine.put(mathe(version=4, name="Mathe 7b (neu)", two_way=False))
    run(rec)
    assert synapse.rooms[room_id][(POLICY, "")]["two_way"] is False
    assert synapse.rooms[room_id][("m.room.power_levels", "")]["events_default"] == MODERATOR


def test_a_refused_group_action_is_retried_and_counted(tmp_path):
    from prometheus_client import REGISTRY

    def failures():
        return REGISTRY.get_sample_value("synapse_school_policy_group_reconcile_failures_total") or 0.0

    engine, synapse, rec = world(tmp_path)
    synapse.refuse.add(uid("ali"))
    before = failures()
    engine.put(mathe())
    run(rec)
    mark = engine.marks[("gym-nord", "group:course-7b")]
    assert mark["attempts"] == 1 and "refused invite of @ali:school.test" in mark["error"]
    assert failures() == before + 1
    # the others are in already
    assert members(synapse, room_of(engine)) == {OWNER, uid("berg"), uid("bea")}
    synapse.refuse.clear()
    mark["due"] = 0
    run(rec)
    assert not engine.marks
    assert uid("ali") in members(synapse, room_of(engine))


def test_many_groups_in_one_batch_send_one_power_levels_event_per_room(tmp_path):
    engine, synapse, rec = world(tmp_path)
    for i in range(5):
        engine.put(mathe(group=f"course-{i}", name=f"Kurs {i}"))
    run(rec)
    rooms = {room_of(engine, f"course-{i}") for i in range(5)}
    assert len(rooms) == 5 and len([a for a in synapse.actions if a[0] == "create"]) == 5
    power_events = [a for a in synapse.actions if a[0] == "power_levels"]
    assert sorted(r for _, r in power_events) == sorted(rooms)


def test_encrypted_groups_get_encrypted_rooms(tmp_path):
    engine, synapse, _ = world(tmp_path)
    rec = Reconciler(synapse, engine, concurrently=gather, groups_encrypted=True, settle_ms=0)
    engine.put(mathe())
    run(rec)
    assert synapse.rooms[room_of(engine)][("m.room.encryption", "")] == {"algorithm": "m.megolm.v1.aes-sha2"}


@pytest.mark.parametrize("subject,expected", [("group:course-7b", "course-7b"), ("@ali:x", None), ("", None)])
def test_group_of(subject, expected):
    from synapse_school_policy.group_rooms import group_of

    assert group_of(subject) == expected
