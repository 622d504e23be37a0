#!/usr/bin/env python3
"""bench: binding_callgrind -- machine instructions per Engine.decide() call
through the CPython binding, for one or more builds of the extension.

Usage:
    VENV/bin/python bench/binding_callgrind.py [--calls N] [SO ...]   # ~2 minutes

Each SO is a built _core extension (for example the version-specific
_core.cpython-311-x86_64-linux-gnu.so and the stable-ABI _core.abi3.so);
without one, the installed module's is used. For each build and case, a
child Python loads that file directly (not the package, so Synapse is not
imported), loads a roster of 1,000 users, and calls decide() N times under
valgrind --tool=callgrind, collecting only inside the binding's
Engine_decide and its callees (--toggle-collect=Engine_decide): argument
conversion, the engine's ssp_decide, and building the result. Instructions
per call = collected Ir / N: deterministic for a build, unlike wall time on
a busy 2-core machine (bench/engine_vs_python.py gives the wall times).

Cases: message  check_event_for_spam, allowed pupil, two-way managed room,
                room facts supplied (policy, power levels, create)
       login    check_login_for_spam, allowed pupil
Needs valgrind.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import types

SERVER = "school.test"
SERVICE_USER = f"@sync:{SERVER}"
USERS = 1000
CASES = ("message", "login")


def load_core(so_path: str):
    """The extension from so_path as synapse_school_policy._core, under a stub
    package, so that bench/engine_call.py can import it."""
    package = types.ModuleType("synapse_school_policy")
    package.__path__ = []
    sys.modules["synapse_school_policy"] = package
    spec = importlib.util.spec_from_file_location("synapse_school_policy._core", so_path)
    core = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
    sys.modules["synapse_school_policy._core"] = core
    package._core = core
    return core


def child(so_path: str, case: str, calls: int) -> None:
    core = load_core(so_path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from engine_call import decide_args

    users = [f"@u{i}:{SERVER}" for i in range(USERS)]
    roster = {"users": [{"user_id": u, "schools": [{"school": "gym-nord", "role": "student"}]} for u in users]}
    with tempfile.TemporaryDirectory(prefix="ssp-bench-binding-") as data_dir:
        config = {"service_users": [SERVICE_USER], "data_dir": data_dir,
                  "schools": {"gym-nord": {"messenger": True}}}
        engine = core.Engine(json.dumps(config), SERVER, "main")
        engine.open()
        engine.roster_upsert(json.dumps(roster))
        if case == "message":
            power_levels = {"users": {users[0]: 50}, "users_default": 0, "events_default": 0,
                            "state_default": 50, "events": {"m.room.power_levels": 100}}
            room = ({"school": "gym-nord", "kind": "course", "two_way": True}, SERVICE_USER,
                    power_levels, {"room_version": "12"}, SERVICE_USER)
            args = [decide_args(callback=core.CB_CHECK_EVENT_FOR_SPAM, actor=u, room_id="!c:" + SERVER,
                                event_type="m.room.message", content={"msgtype": "m.text", "body": "Hallo"},
                                room=room) for u in users[1:101]]
        else:
            args = [decide_args(callback=core.CB_CHECK_LOGIN_FOR_SPAM, actor=u) for u in users[1:101]]
        for a in args:  # every actor is allowed: the common path
            assert engine.decide(*a) is None, engine.decide(*a)
        decide = engine.decide
        seq = [args[i % len(args)] for i in range(calls)]
        for a in seq:
            decide(*a)
        engine.audit_flush()


def measure(so_path: str, case: str, calls: int) -> float:
    with tempfile.TemporaryDirectory(prefix="ssp-callgrind-") as out:
        out_file = os.path.join(out, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--toggle-collect=Engine_decide",
             f"--callgrind-out-file={out_file}", sys.executable, __file__, "--child", so_path, case, str(calls)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # A fixed hash seed: the dict probes of decide()'s lookups
            # depend on it, and with a random seed the message case moves by
            # about 3% between runs of the same build.
            env={**os.environ, "PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"},
        )
        with open(out_file) as f:
            totals = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    return int(totals.group(1)) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--child", nargs=3, metavar=("SO", "CASE", "CALLS"))
    parser.add_argument("builds", nargs="*")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    builds = args.builds
    if not builds:
        spec = importlib.util.find_spec("synapse_school_policy")
        builds = glob.glob(os.path.join(os.path.dirname(spec.origin), "_core.*.so"))
    print(f"== instructions per decide() call in the binding (Engine_decide inclusive), {args.calls} calls, "
          f"Python {sys.version.split()[0]} ==")
    print(f"{'build':45} " + " ".join(f"{c:>10}" for c in CASES))
    for so in builds:
        row = [measure(so, case, args.calls) for case in CASES]
        print(f"{os.path.basename(so):45} " + " ".join(f"{v:10.0f}" for v in row))


if __name__ == "__main__":
    main()
