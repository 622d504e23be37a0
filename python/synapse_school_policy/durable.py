"""Waiting for a denial's audit record without holding a thread.

An enforced denial is answered only once its audit record is durable
(docs/workers.md, "Crash guarantee"). The engine's writer thread signals
each batch it made durable on an eventfd of the engine's (Engine.durable_fd);
Synapse's reactor watches that descriptor, so a waiting denial costs one
Deferred and one timer, and no thread of Synapse's pool, in which Synapse
also encodes every JSON response.

The reactor thread is the only one that touches this object. The writer
moves the engine's last durable id before it writes the eventfd, and
doRead drains the eventfd before it reads the id, so no wake-up is lost: a
batch written between a waiter's first look at the id and its push onto
the heap makes the descriptor readable, and doRead then sees it.

Logcontexts follow Synapse's rules (docs/log_contexts.md in Synapse): the
waiter awaits make_deferred_yieldable(d), which resets to the sentinel
context while it waits and restores the caller's when d fires; d fires from
doRead or a timer, in the sentinel context, inside PreserveLoggingContext
as Synapse's own DeferredEvent.set does.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
from typing import Any

from synapse.module_api import make_deferred_yieldable
from twisted.internet import defer

from synapse_school_policy.synapse_compat import PreserveLoggingContext

logger = logging.getLogger(__name__)

# Timed-out waiters stay on the heap until the writer passes their id; past
# this many, and more dead than alive, the heap is rebuilt without them.
_HEAP_COMPACT_AT = 1024


class _Waiter:
    """One waiting denial: a Deferred fired with True (durable) or False
    (the deadline passed, or the reactor is shutting down). A waiter
    answered before the writer reached its id is dead: it stays on the heap
    until then, and `owner` counts it."""

    __slots__ = ("deferred", "timer", "_owner")

    def __init__(self, owner: "DurableWaiter") -> None:
        self.deferred: defer.Deferred[bool] = defer.Deferred(canceller=self._cancelled)
        self.timer: Any = None
        self._owner = owner

    def fire(self, durable: bool) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not self.deferred.called:  # the timer and doRead may both come
            with PreserveLoggingContext():
                self.deferred.callback(durable)

    def time_out(self) -> None:
        self.timer = None
        if not self.deferred.called:
            self.fire(False)
            self._owner._died()

    @property
    def done(self) -> bool:
        return self.deferred.called

    def _cancelled(self, _deferred: defer.Deferred) -> None:
        # Synapse never cancels a callback (delay_cancellation); for anyone else.
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self._owner._died()


class DurableWaiter:
    """[reactor thread] Awaits audit records' durability through the engine's
    eventfd. An IReadDescriptor for the reactor (fileno, doRead,
    connectionLost, logPrefix)."""

    def __init__(self, engine: Any, reactor: Any):
        self._engine = engine
        self._reactor = reactor
        self._fd = engine.durable_fd()
        self._heap: list[tuple[int, int, _Waiter]] = []
        self._order = itertools.count()
        self._dead = 0
        self._watching = self._fd >= 0
        if self._watching:
            reactor.addReader(self)

    async def wait(self, audit_id: int, timeout: float) -> bool:
        """True once the record `audit_id` is durable, False when `timeout`
        seconds passed first (or the reactor is stopping). Holds no thread."""
        if self._engine.last_durable_id() >= audit_id:
            return True
        if not self._watching or timeout <= 0:
            return False
        waiter = _Waiter(self)
        waiter.timer = self._reactor.callLater(timeout, waiter.time_out)
        heapq.heappush(self._heap, (audit_id, next(self._order), waiter))
        return await make_deferred_yieldable(waiter.deferred)

    def stop(self) -> None:
        """Stops watching; whoever still waits is answered False."""
        if self._watching:
            self._reactor.removeReader(self)
            self._watching = False
        self._release(None)

    @property
    def waiting(self) -> int:
        """Waiters whose answer is still to come."""
        return len(self._heap) - self._dead

    # ---- IReadDescriptor ------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "school_policy_durable"

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        # Must return None and never raise: either makes the reactor drop
        # the descriptor, and every later denial would wait its full timeout.
        try:
            try:
                os.read(self._fd, 8)  # epoll is level-triggered: drain it
            except BlockingIOError:
                pass
            self._release(self._engine.last_durable_id())
        except Exception:  # noqa: BLE001
            logger.exception("synapse_school_policy: the audit durability reader failed")

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        # The reactor's shutdown disconnects every reader. The engine owns
        # the descriptor and closes it with itself; here only the waiters
        # are answered.
        self._watching = False
        self._release(None)

    # ---- internals ----------------------------------------------------------

    def _release(self, last_durable: int | None) -> None:
        """Answers the waiters whose record is durable (all, with False, for None)."""
        heap = self._heap
        while heap and (last_durable is None or heap[0][0] <= last_durable):
            waiter = heapq.heappop(heap)[2]
            if waiter.done:
                self._dead -= 1
            else:
                waiter.fire(last_durable is not None)

    def _died(self) -> None:
        self._dead += 1
        if self._dead > _HEAP_COMPACT_AT and self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].done]
            heapq.heapify(self._heap)
            self._dead = 0
