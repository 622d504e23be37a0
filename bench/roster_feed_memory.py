"""The memory one large roster feed message leaves behind.

Starts a throwaway RabbitMQ (tests/harness) and an engine on the embedded
store consuming its queue in this process, publishes one message of
--users users (about 86 bytes each), and prints this process's resident
memory before, the highest seen while the message is applied, and 2 s
after: what the parse took and did not give back.

    VENV/bin/python bench/roster_feed_memory.py --users 600000    # ~52 MB, ~1 min
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from benchlib import log  # noqa: E402
from harness.rabbitmq import RabbitMQServer  # noqa: E402

from synapse_school_policy import _core  # noqa: E402


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    import pika

    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=600_000)
    args = parser.parse_args()
    broker = RabbitMQServer().start()
    try:
        os.environ["SSP_BENCH_FEED_URL"] = broker.url
        config = {"data_dir": tempfile.mkdtemp(prefix="ssp-bench-feed-"),
                  "schools": {f"s{i}": {"messenger": True} for i in range(20)},
                  "roster_feed": {"url_env": "SSP_BENCH_FEED_URL", "max_message_bytes": 134217728}}
        engine = _core.Engine(json.dumps(config), "s.test", "main")
        engine.open()
        engine.roster_feed_start()
        while not engine.roster_feed_status()["connected"]:
            time.sleep(0.1)
        body = json.dumps({"users": [
            {"user_id": f"@user{i:07d}:s.test", "schools": [{"school": f"s{i % 20}", "role": "student"}]}
            for i in range(args.users)]}).encode()
        log(f"message: {len(body) / 1e6:.1f} MB, {args.users:,} users; resident before: {rss_mb()} MB")
        connection = broker.connect()
        channel = connection.channel()
        channel.queue_declare("school-policy.roster", durable=True)
        channel.basic_publish("", "school-policy.roster", body, pika.BasicProperties(delivery_mode=2))
        connection.close()
        del body
        peak = 0
        while engine.roster_feed_status()["messages"]["applied"] < 1:
            peak = max(peak, rss_mb())
            time.sleep(0.05)
        time.sleep(2)
        log(f"applied: resident at the highest {peak} MB, 2 s after {rss_mb()} MB "
            f"(roster of {engine.roster_size():,})")
    finally:
        broker.close()


if __name__ == "__main__":
    main()
