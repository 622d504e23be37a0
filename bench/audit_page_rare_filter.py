"""The embedded store's worst case for the audit page: a filter that matches
rarely reads the whole audit.jsonl (1,000,000 records). Run from the repo:

    VENV/bin/python bench/audit_page_rare_filter.py
"""
import json, os, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import audit_page as b
from synapse_school_policy import _core
d = tempfile.mkdtemp(); now = int(time.time()*1000)
with open(os.path.join(d, "audit.jsonl"), "w") as f:
    for i, ts, rule, school, actor, et in b.records(1_000_000, now):
        f.write(json.dumps({"id": i, "ts": ts, "rule": rule, "callback": "check_event_for_spam", "enforced": True, "actor": actor, "target": None, "room_id": "!r:school.test", "event_type": et, "school": school, "worker": "main"}, separators=(",", ":")) + "\n")
e = _core.Engine(json.dumps({"data_dir": d, "audit": {"readers": ["@dpo:school.test"]}, "schools": {}}), "school.test", "main"); e.open()
for label, q in [("user with no records (whole file)", {"user": "@nobody:school.test", "limit": 50}), ("user with 50 records", {"user": "@u7:school.test", "limit": 50})]:
    t = time.monotonic(); r = (e.audit_view(json.dumps({"op": "audit", "reader": "@dpo:school.test", "server_admin": False, "query": q}))); 
    print(f"embedded    audit, {label}: {(time.monotonic()-t)*1000:.0f} ms, {len(r['body']['records'])} records")
