#!/usr/bin/env python3
"""bench: roster_feed_import -- how fast a school cloud's import arrives
through the roster feed (RabbitMQ), from the first publish until the
module's store holds every user.

Usage (with the virtualenv that has Synapse, pika and the module installed):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/roster_feed_import.py                       # 10,000 users, ~1-3 min
    $VENV/bin/python bench/roster_feed_import.py --store postgres
    $VENV/bin/python bench/roster_feed_import.py --users 1000 --batches 1  # smoke run

Options: --users N (10000), --batches 1,100 (users per message: each value
is one import of N new users, in the same run), --store embedded|postgres
(embedded), --prefetch N (100, as shipped), --time-limit S (900).

What it does: starts a throwaway PostgreSQL (Synapse's database, and the
module's with --store postgres), a throwaway RabbitMQ on free ports
(tests/harness/rabbitmq.py) and Synapse with the module consuming
school-policy.roster. For each batch size it publishes N users (persistent
messages, publisher confirms, one connection) and polls GET /status until
the feed has upserted them all; then it checks that the store holds every
one (the embedded store's roster.jsonl, or PostgreSQL's roster table) and
that the queue is empty. It prints the publish time, the time from the first
publish until the last user was applied, users/s, and, separately, how long
the broker took to take the messages, and when the feed had acknowledged the
last one (the publisher waits for each
publisher confirm, as a careful school cloud does, so with one user per
message the publisher sets the live pace). Then the same again as a backlog:
Synapse is stopped, the N users are published, Synapse starts, and the time
runs from the feed connecting until the last user is applied (the engine's
connected_since_ms and last_applied_ms: the feed starts before Synapse's HTTP
API answers): the consumer's own drain rate.

The school has messenger on and no special rooms, so that the reconciler has
marks to clear but no rooms to fill: the reconciler's own pace is measured by
bench/reconcile_rate.py. Only loopback traffic; every loop is bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import pika  # noqa: E402

from harness.client import register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.rabbitmq import RabbitMQServer  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402
from benchlib import log  # noqa: E402

SERVER_NAME = SynapseServer.DEFAULT_SERVER_NAME
ADMIN_API = "/_synapse/client/school_policy/v1"
QUEUE = "school-policy.roster"
URL_ENV = "SSP_BENCH_ROSTER_FEED_URL"
ROLES = ("student", "student", "student", "teacher")


def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def feed_status(server, token) -> dict:
    status, body = request(server.base_url, "GET", ADMIN_API + "/status", token=token)
    if status != 200:
        raise RuntimeError(f"GET /status: {status} {body}")
    return body["roster_feed"]


def stored_users(args, work, pg, prefix: str) -> int:
    if args.store == "embedded":
        seen = set()
        with open(os.path.join(work, "store", "roster.jsonl")) as f:
            for line in f:
                entry = json.loads(line)
                if entry["user_id"].startswith(f"@{prefix}") and entry.get("schools"):
                    seen.add(entry["user_id"])
        return len(seen)
    out = subprocess.run(
        [os.path.join(pg.bindir, "psql"), "-At", pg.dsn("policy"), "-c",
         f"SELECT count(DISTINCT user_id) FROM school_policy.roster WHERE user_id LIKE '@{prefix}%'"],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout.strip())


def run_import(args, server, token, broker, work, pg, batch: int, backlog: bool = False) -> dict:
    prefix = f"b{batch}{'q' if backlog else 'u'}"
    names = [f"{prefix}{i:06d}" for i in range(args.users)]
    bodies = []
    for start in range(0, len(names), batch):
        users = [{"user_id": uid(n), "schools": [{"school": "gym-nord", "role": ROLES[i % 4]}]}
                 for i, n in enumerate(names[start:start + batch], start)]
        bodies.append(json.dumps({"users": users}).encode())
    if backlog:
        server.stop()  # the burst waits in the queue while nobody consumes
        before = 0
    else:
        before = feed_status(server, token)["users_upserted"]
    connection = broker.connect()
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    channel.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    t0 = time.monotonic()
    for body in bodies:
        channel.basic_publish("", QUEUE, body, props)
    published = time.monotonic() - t0
    connection.close()
    if backlog:
        # The feed starts consuming while Synapse is still starting, before
        # its HTTP API answers: the engine's own clock times the drain, from
        # connected_since_ms to last_applied_ms.
        server.start()
    deadline = t0 + args.time_limit
    while True:
        status = feed_status(server, token)
        if status["users_upserted"] - before >= args.users:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {status['users_upserted'] - before} users after "
                               f"{args.time_limit}s: {status}")
        time.sleep(0.02)
    applied = time.monotonic() - t0
    if backlog:
        applied = (status["last_applied_ms"] - status["connected_since_ms"]) / 1000
        acked_base = status["connected_since_ms"] / 1000
    # Acknowledged means durable: once nothing is ready in the queue and the
    # feed holds nothing unacknowledged, the store must hold every user.
    connection = broker.connect()
    channel = connection.channel()
    while (channel.queue_declare(QUEUE, durable=True, passive=True).method.message_count
           or feed_status(server, token)["unacked"]):
        if time.monotonic() > deadline:
            raise RuntimeError("messages still unacknowledged at the time limit")
        time.sleep(0.02)
    acked = time.time() - acked_base if backlog else time.monotonic() - t0
    connection.close()
    stored = stored_users(args, work, pg, prefix)
    if stored != args.users:
        raise RuntimeError(f"the store holds {stored} of {args.users} users")
    return {"batch": batch, "backlog": backlog, "messages": len(bodies), "published_s": published,
            "applied_s": applied, "acked_s": acked, "users_per_s": args.users / applied,
            "dead_lettered": status["messages"]["dead_lettered"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--store", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--time-limit", type=float, default=900)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="ssp-bench-feed-")
    pg = PostgresCluster().start()
    broker = RabbitMQServer()
    server = None
    try:
        t = time.monotonic()
        broker.start()
        log(f"rabbitmq up in {time.monotonic() - t:.1f} s on port {broker.port}")
        config = {
            "service_users": [uid("sync")],
            "data_dir": os.path.join(work, "store"),
            "schools": {"gym-nord": {"messenger": True, "teachers_room": False}},
            "roster_feed": {"url_env": URL_ENV, "queue": QUEUE, "prefetch": args.prefetch},
        }
        if args.store == "postgres":
            pg.create_database("policy")
            config["database"] = pg.dsn("policy")
        server = SynapseServer(os.path.join(work, "synapse"), module_config=config,
                               database=pg.create_database("synapse"), env={URL_ENV: broker.url})
        server.start()
        token = register_user(server, "sync", "bench password", admin=True).token
        results = []
        for backlog in (False, True):
            for batch in (int(b) for b in args.batches.split(",")):
                result = run_import(args, server, token, broker, work, pg, batch, backlog)
                results.append(result)
                log(f"batch {batch}: {result}")
        print()
        print(f"roster feed import: {args.users} users, store {args.store}, prefetch {args.prefetch}")
        print("| import | users per message | messages | publish (s) | to all applied (s) "
              "| users/s | to all acknowledged (s) |")
        print("|---|---|---|---|---|---|---|")
        for r in results:
            kind = ("backlog: from the feed connecting" if r["backlog"]
                    else "live: from the first publish")
            print(f"| {kind} | {r['batch']} | {r['messages']} | {r['published_s']:.1f} | "
                  f"{r['applied_s']:.1f} | {r['users_per_s']:,.0f} | {r['acked_s']:.1f} |")
    finally:
        if server is not None:
            server.stop()
        broker.close()
        pg.stop()


if __name__ == "__main__":
    main()
