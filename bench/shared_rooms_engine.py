"""Part 1 of bench/shared_rooms.py: the engine's shared-room decision (see that file)."""

import gc
import json
import random
import shutil
import statistics
import tempfile
import time
from typing import Any

from synapse_school_policy import _core
from benchlib import log
from shared_rooms_world import (
    Deadline,
    INVITE_ROOM,
    SCHOOLS,
    SERVER,
    pct,
    qualifies,
    school_of_user,
    uid,
)

# ---- part 1: the engine ----------------------------------------------------------

def decide_args(callback: int, actor: str, target: str | None, room_id: str | None, room_known: bool,
                room_policy: Any, actor_admin: int, shared_rooms: Any) -> tuple:
    # decide(callback, actor, target, room_id, event_type, state_key, content, room,
    #        actor_admin, is_invited, shared_rooms, actor_membership, member_count, redacts)
    # (python/synapse_school_policy/_core.pyi). Every room here was created by
    # the sync, which also sent its policy event: room = (policy content,
    # policy sender, power levels, create content, creator, policy event id).
    sync = f"@sync:{SERVER}"
    room = (room_policy, sync, None, {"room_version": "12"}, sync, None) if room_known else None
    shared = [(p, sync, sync) for p in shared_rooms] if shared_rooms is not None else None
    return (callback, actor, target, room_id, None, None, None, room,
            actor_admin, None, shared, None, None, None)


def part1(args, policies: list[dict | None], rng: random.Random, deadline: Deadline) -> dict:
    data_dir = tempfile.mkdtemp(prefix="ssp-bench-shared-")
    res: dict[str, Any] = {}
    try:
        config = {"data_dir": data_dir, "schools": SCHOOLS, "service_users": [f"@sync:{SERVER}"]}
        engine = _core.Engine(json.dumps(config), SERVER, "bench")
        engine.open()
        t = time.perf_counter()
        body = json.dumps({"users": [
            {"user_id": uid(i), "schools": [{"school": school_of_user(i),
                                             "role": "teacher" if i % 40 == 0 else "student"}]}
            for i in range(args.users)]})
        res["roster_json_s"] = time.perf_counter() - t
        t = time.perf_counter()
        written = engine.roster_upsert(body)["upserted"]
        res["roster_load_s"] = time.perf_counter() - t
        res["roster_size"] = engine.roster_size()
        del body
        log(f"engine: roster_upsert of {written} users {res['roster_load_s']:.2f}s "
            f"(+{res['roster_json_s']:.2f}s building the JSON); roster_size {res['roster_size']}")

        qual = [p for p in policies if qualifies(p)]
        nonqual = [p for p in policies if not qualifies(p)]  # None and rs-west announcement rooms
        res["room_mix"] = (len(qual), len(nonqual), sum(p is None for p in policies))
        # Actors and targets: gym-nord users on the roster (i % 3 != 2), distinct.
        pool = [i for i in rng.sample(range(args.users), min(args.users, 6000)) if school_of_user(i) == "gym-nord"]
        pairs = [(uid(pool[j]), uid(pool[j + 1])) for j in range(0, len(pool) - 1, 2)][:2048]

        def shared(k: int, last_qualifies: bool) -> list:
            lst = [rng.choice(nonqual) for _ in range(k - 1 if last_qualifies else k)]
            if last_qualifies:
                lst.append(rng.choice(qual))
            return lst

        cb, no = _core.CB_USER_MAY_INVITE, _core.FACT_NO
        cases: list[tuple[str, Any, list[tuple]]] = []
        cases.append(("invite, room not known -> NEED_ROOM", _core.NEED_ROOM,
                      [decide_args(cb, a, b, INVITE_ROOM, False, None, _core.FACT_UNKNOWN, None) for a, b in pairs]))
        cases.append(("unmanaged room, shared not known -> NEED_SHARED_ROOMS", _core.NEED_SHARED_ROOMS,
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, _core.FACT_UNKNOWN, None) for a, b in pairs]))
        cases.append(("0 shared rooms -> denied (audited)", "no_shared_room",
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, no, []) for a, b in pairs]))
        for k in (1, 5, 20):
            cases.append((f"{k} shared, qualifying one last -> allowed", None,
                          [decide_args(cb, a, b, INVITE_ROOM, True, None, no, shared(k, True)) for a, b in pairs]))
        cases.append(("20 shared, none qualifies -> denied (audited)", "no_shared_room",
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, no, shared(20, False)) for a, b in pairs]))

        decide = engine.decide
        for name, expected, arglists in cases:
            for a in arglists:
                out = decide(*a)
                got = out[0] if isinstance(out, tuple) else out
                if got != expected:
                    raise AssertionError(f"{name}: expected {expected!r}, got {out!r} for {a[1]} -> {a[2]}")
        log(f"engine: {len(cases)} cases checked on {len(pairs)} actor/target pairs each; timing "
            f"{args.batches} batches x {args.batch} decisions per case, interleaved")
        samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        n_pairs = len(pairs)
        offset = 0
        gc.disable()
        try:
            for _ in range(args.batches):
                if deadline.passed():
                    break
                for name, _, arglists in cases:
                    batch = [arglists[(offset + j) % n_pairs] for j in range(args.batch)]
                    t0 = time.perf_counter_ns()
                    for a in batch:
                        decide(*a)
                    samples[name].append((time.perf_counter_ns() - t0) / args.batch)
                offset += args.batch
        finally:
            gc.enable()
        engine.audit_flush()
        res["audit"] = engine.audit_stats()
        res["engine"] = [(name, len(s), statistics.median(s), pct(s, 99)) for name, s in samples.items()]
        res["engine_by_name"] = {name: statistics.median(s) for name, s in samples.items()}
        res["engine_ref"] = engine  # kept for the churn demonstration
        res["data_dir"] = data_dir
        return res
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
