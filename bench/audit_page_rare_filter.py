"""The embedded store's worst case for the audit page: a filter that matches
rarely reads the whole audit.jsonl (1,000,000 records). Run from the repo:

    VENV/bin/python bench/audit_page_rare_filter.py

It takes no options; the store is a temporary directory of about 250 MB,
removed at the end.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import audit_page  # noqa: E402  (bench/audit_page.py: the record generator)
from synapse_school_policy import _core  # noqa: E402

RECORDS = 1_000_000
READER = "@dpo:school.test"
QUERIES = [
    ("user with no records (whole file)", {"user": "@nobody:school.test", "limit": 50}),
    ("user with 50 records", {"user": "@u7:school.test", "limit": 50}),
]


def write_audit_file(data_dir: str, now_ms: int) -> None:
    with open(os.path.join(data_dir, "audit.jsonl"), "w") as f:
        for i, ts, rule, school, actor, event_type in audit_page.records(RECORDS, now_ms):
            record = {"id": i, "ts": ts, "rule": rule, "callback": "check_event_for_spam",
                      "enforced": True, "actor": actor, "target": None,
                      "room_id": "!r:school.test", "event_type": event_type, "school": school,
                      "worker": "main"}
            f.write(json.dumps(record, separators=(",", ":")) + "\n")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    data_dir = tempfile.mkdtemp(prefix="ssp-bench-rare-filter-")
    try:
        write_audit_file(data_dir, int(time.time() * 1000))
        config = {"data_dir": data_dir, "audit": {"readers": [READER]}, "schools": {}}
        engine = _core.Engine(json.dumps(config), "school.test", "main")
        engine.open()
        for label, query in QUERIES:
            request = {"op": "audit", "reader": READER, "server_admin": False, "query": query}
            started = time.monotonic()
            answer = engine.audit_view(json.dumps(request))
            took_ms = (time.monotonic() - started) * 1000
            print(f"embedded    audit, {label}: {took_ms:.0f} ms, "
                  f"{len(answer['body']['records'])} records")
        del engine
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
