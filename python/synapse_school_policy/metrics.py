"""Prometheus metrics, registered in the default registry that Synapse serves."""
from __future__ import annotations

from typing import Callable

from prometheus_client import Counter, Gauge
from prometheus_client.core import REGISTRY

PREFIX = "synapse_school_policy_"


def _existing(name: str):
    # A second SchoolPolicy in one process (tests, a reload) must reuse the
    # collectors: prometheus_client refuses duplicate names.
    return REGISTRY._names_to_collectors.get(name)  # noqa: SLF001


def _counter(name: str, doc: str, labels: list[str]) -> Counter:
    existing = _existing(PREFIX + name)
    return existing if existing is not None else Counter(PREFIX + name, doc, labels)


def _gauge(name: str, doc: str) -> Gauge:
    existing = _existing(PREFIX + name)
    return existing if existing is not None else Gauge(PREFIX + name, doc)


DECISIONS = _counter(
    "decisions",
    "Policy decisions by callback, rule and outcome: allowed (rule is empty), denied, or "
    "report_only (would have been denied, but enforce is false).",
    ["callback", "rule", "outcome"],
)
AUDIT_QUEUE_DEPTH = _gauge("audit_queue_depth", "Audit records waiting to be written.")
DENIALS_NOT_DURABLE = _counter(
    "denials_not_durable",
    "Enforced denials whose audit record the store did not confirm (fdatasync or commit) in "
    "time: answered 503 to local users, as denials to remote servers; never allowed. The "
    "record stays queued.",
    [],
)
ROSTER_ENTRIES = _gauge("roster_entries", "Users on the roster held in memory.")
DENIALS_LIMITED = _gauge(
    "denials_limited_total",
    "Denials past the flood limit (audit.flood), since start: answered M_LIMIT_EXCEEDED and "
    "counted in a summary audit record instead of a record each (a counter: it only grows).",
)
AUDIT_SUMMARIES = _gauge(
    "audit_summaries_total",
    "Summary audit records of floods written out since start (a counter: it only grows).",
)
AUDIT_SUMMARIES_OPEN = _gauge(
    "audit_summaries_open",
    "Flood summaries still counting (each written when its span ends; a crash loses their "
    "counts).",
)
AUDIT_SPILLED_TOTAL = _gauge(
    "audit_spilled_total",
    "Audit records written to the local spill file because PostgreSQL was unreachable, since "
    "start (a counter: it only grows).",
)
AUDIT_SPILL_PENDING = _gauge(
    "audit_spill_pending", "Audit records in the spill file, waiting for PostgreSQL."
)
ROSTER_OUTBOX_PENDING = _gauge(
    "roster_outbox_pending", "Roster changes made here and not yet in PostgreSQL."
)
RECONCILE_PENDING = _gauge(
    "reconcile_pending",
    "Marks of (school, user) waiting for the reconciler to bring the special rooms in line.",
)
RECONCILE_FAILURES = _counter(
    "reconcile_failures",
    "Reconciler attempts that failed (Synapse refused an action, a room was not ready); each is "
    "retried with backoff. Store outages pause the reconciler and are not counted here.",
    [],
)
GROUP_RECONCILE_FAILURES = _counter(
    "group_reconcile_failures",
    "Reconciler attempts on a group's room that failed (Synapse refused an action, the room "
    "could not be created or adopted); each is retried with backoff. Also counted in "
    "reconcile_failures_total.",
    [],
)
GROUP_ACTIONS = _counter(
    "group_actions",
    "What the reconciler did in group rooms, by action: room_created, member_added, "
    "member_removed, invite_withdrawn, power_changed, room_updated, room_archived, "
    "room_reopened, room_adopted, room_replaced. Each is also an audit record (kind action).",
    ["action"],
)
GROUP_ACTION_NAMES = (
    "room_created", "room_adopted", "member_added", "member_removed", "invite_withdrawn",
    "power_changed", "room_updated", "room_archived", "room_reopened", "room_replaced",
)
for _action in GROUP_ACTION_NAMES:
    # Served (as 0) from the start, before the first group.
    GROUP_ACTIONS.labels(action=_action)
STORE_CONNECTED = _gauge(
    "store_connected", "1 while the store is usable (PostgreSQL connected, or the embedded store)."
)


GROUPS = _gauge(
    "groups",
    "Groups (courses, teams, classes) the module keeps, deleted ones included, summed over the "
    "configured schools; read at most once a minute.",
)


def bind_groups_gauge(count: Callable[[], float]) -> None:
    GROUPS.set_function(count)


def bind_engine_gauges(queue_depth: Callable[[], float], roster_entries: Callable[[], float]) -> None:
    """Points the gauges at the live engine; they are read at scrape time."""
    AUDIT_QUEUE_DEPTH.set_function(queue_depth)
    ROSTER_ENTRIES.set_function(roster_entries)


def bind_flood_gauges(stats: Callable[[], dict]) -> None:
    """The flood limit's gauges, read from the engine's flood_stats() at scrape time."""
    DENIALS_LIMITED.set_function(lambda: stats()["limited"])
    AUDIT_SUMMARIES.set_function(lambda: stats()["summaries"])
    AUDIT_SUMMARIES_OPEN.set_function(lambda: stats()["open_summaries"])


def bind_store_gauges(status: Callable[[], dict]) -> None:
    """Store gauges, read from the engine's store_status() at scrape time."""
    AUDIT_SPILLED_TOTAL.set_function(lambda: status()["audit_spilled_total"])
    AUDIT_SPILL_PENDING.set_function(lambda: status()["audit_spill_pending"])
    ROSTER_OUTBOX_PENDING.set_function(lambda: status()["roster_outbox_pending"])
    RECONCILE_PENDING.set_function(lambda: status()["reconcile_pending"])
    STORE_CONNECTED.set_function(lambda: 1.0 if status()["connected"] else 0.0)


# ---- the roster feed (docs/roster-feed.md); only on the process that runs it ----
ROSTER_FEED_CONNECTED = _gauge(
    "roster_feed_connected", "1 while the roster feed is connected to the broker and consuming."
)
ROSTER_FEED_LAG = _gauge(
    "roster_feed_lag",
    "Messages ready in the roster feed's queue, not yet delivered to the module (-1: unknown, "
    "e.g. while disconnected).",
)


def _labelled_gauge(name: str, doc: str, labels: list[str]) -> Gauge:
    existing = _existing(PREFIX + name)
    return existing if existing is not None else Gauge(PREFIX + name, doc, labels)


ROSTER_FEED_MESSAGES = _labelled_gauge(
    "roster_feed_messages_total",
    "Roster feed messages since start by outcome: applied (durable, acknowledged), "
    "dead_lettered (invalid, moved to the dead-letter queue), retried (the store refused the "
    "write; the message went back to the queue), rejected (the broker refused even a trimmed "
    "dead letter: rejected without requeueing). A counter: it only grows.",
    ["outcome"],
)
ROSTER_FEED_OUTCOMES = ("applied", "dead_lettered", "retried", "rejected")
for _outcome in ROSTER_FEED_OUTCOMES:
    # Every outcome is served (as 0) from the start, also without a feed.
    ROSTER_FEED_MESSAGES.labels(outcome=_outcome)


def bind_roster_feed_gauges(status: Callable[[], dict]) -> None:
    """Roster feed gauges, read from the engine's roster_feed_status() at scrape time."""
    ROSTER_FEED_CONNECTED.set_function(lambda: 1.0 if status().get("connected") else 0.0)
    ROSTER_FEED_LAG.set_function(
        lambda: float(status()["lag"]) if status().get("lag") is not None else -1.0
    )
    for outcome in ROSTER_FEED_OUTCOMES:
        ROSTER_FEED_MESSAGES.labels(outcome=outcome).set_function(
            lambda outcome=outcome: float(status().get("messages", {}).get(outcome, 0))
        )
