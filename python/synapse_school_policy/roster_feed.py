"""The roster feed as the adapter sees it: start it where background tasks
run, log its state changes, feed the metrics.

The consumer itself is the engine's (csrc/roster_feed.c): a C thread that
never takes the GIL and never calls into Python. Here its state is polled
once a second, like the store's, and its transitions go to the log.
"""
from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi

from synapse_school_policy.metrics import bind_roster_feed_gauges

logger = logging.getLogger("synapse_school_policy.roster_feed")

POLL_MS = 1000


def status_of(engine: Any) -> dict[str, Any] | None:
    """The feed's state as GET /status shows it; None without roster_feed."""
    return engine.roster_feed_status()


class FeedMonitor:
    """Logs the roster feed's connection, store pauses and dead letters."""

    def __init__(self, engine: Any):
        self._engine = engine
        self._state: str | None = None
        self._last_error: str | None = None
        self._dead_lettered = 0

    def check(self) -> None:
        status = status_of(self._engine)
        if status is None or not status.get("running"):
            return
        state, error = status["state"], status.get("last_error")
        if state != self._state:
            if state == "consuming":
                logger.info(
                    "roster feed: consuming %s on %s (%d messages waiting)",
                    status["queue"], status["broker"], status["lag"] or 0,
                )
            elif state == "disconnected":
                logger.error(
                    "roster feed: broker %s unavailable (%s); retrying with backoff, nothing is "
                    "lost: unacknowledged messages stay in the queue",
                    status["broker"], error,
                )
            elif state == "store_unavailable":
                logger.error(
                    "roster feed: paused, the store is unavailable (%s); nothing is "
                    "acknowledged until the changes are durable, the messages wait in the queue "
                    "and the feed resumes by itself",
                    error or "PostgreSQL unreachable",
                )
        elif error != self._last_error and error and state != "consuming":
            logger.warning("roster feed: still %s: %s", state, error)
        dead = status["messages"]["dead_lettered"]
        if dead > self._dead_lettered:
            logger.warning(
                "roster feed: %d message(s) moved to %s; the last one: %s",
                dead - self._dead_lettered, status["dead_letter_queue"],
                status.get("last_dead_letter"),
            )
        self._state, self._last_error, self._dead_lettered = state, error, dead


def start(api: ModuleApi, engine: Any) -> FeedMonitor | None:
    """Starts the feed if it is configured and this process runs Synapse's
    background tasks (the main process unless run_background_tasks_on names
    a worker): one consumer per deployment. Raises the engine's InputError
    when url_file or url_env cannot be resolved."""
    if engine.roster_feed_status() is None or not api.should_run_background_tasks():
        return None
    engine.roster_feed_start()
    bind_roster_feed_gauges(lambda: status_of(engine) or {})
    monitor = FeedMonitor(engine)
    api.looping_background_call(monitor.check, POLL_MS, desc="school_policy_roster_feed_status")
    return monitor
