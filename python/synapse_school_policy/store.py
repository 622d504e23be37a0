"""The module's store as the adapter sees it: its state in the log.

The engine keeps the store's state (connected, spilled records, pending
roster changes); it never calls into Python, so this module polls it once a
second on every process and logs the transitions.
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("synapse_school_policy.store")

STATUS_POLL_MS = 1000


class StoreMonitor:
    """Logs the PostgreSQL store's connection changes and spill activity."""

    def __init__(self, engine: Any, worker: str):
        self._engine = engine
        self._worker = worker
        status = engine.store_status()
        self._connected = status["connected"]
        self._spilled = status["audit_spilled_total"]
        if status.get("roster_skipped"):
            logger.warning(
                "synapse_school_policy on %s: %d stored roster entries or memberships were left "
                "out at load: they break the roster's input rules (a user of another server, a "
                "malformed user id, a school id with a control character or a space; see "
                "docs/admin-api.md). Correct them with PUT /users/{user_id}",
                worker, status["roster_skipped"],
            )
        # Only a store with a connection to lose reports one lost: the
        # embedded store is always "connected" and never spills.
        if not status["connected"]:
            logger.warning(
                "synapse_school_policy on %s: PostgreSQL is unreachable at start-up (%s); "
                "deciding from the local roster cache, audit records go to the spill file "
                "until it is back",
                worker, status["last_error"],
            )

    def check(self) -> None:
        status = self._engine.store_status()
        if self._connected and not status["connected"]:
            logger.error(
                "synapse_school_policy on %s: lost PostgreSQL (%s); decisions continue from "
                "the in-memory roster, audit records and roster changes are kept on disk",
                self._worker, status["last_error"],
            )
        elif not self._connected and status["connected"]:
            logger.warning(
                "synapse_school_policy on %s: PostgreSQL is back; %d audit records had been "
                "spilled, %d still to write, %d roster changes still to push",
                self._worker, status["audit_spilled_total"], status["audit_spill_pending"],
                status["roster_outbox_pending"],
            )
        if status["audit_spilled_total"] > self._spilled and not status["connected"]:
            logger.warning(
                "synapse_school_policy on %s: %d audit records in the spill file (%s)",
                self._worker, status["audit_spill_pending"], status["last_error"],
            )
        self._connected = status["connected"]
        self._spilled = status["audit_spilled_total"]
