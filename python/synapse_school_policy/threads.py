"""The module's own thread pools, for the store calls that block.

Synapse's default thread pool (Twisted's reactor pool, at most 10 threads)
is where Synapse encodes every JSON response of the process, hashes
passwords and reads media. A store call that waits there (a slow audit
query, a roster write behind an fsync, a reconciler call while PostgreSQL
stalls) takes a thread from all of that, so the module runs its blocking
calls in two small pools of its own instead (ModuleApi.defer_to_threadpool,
Synapse 1.140.0 and newer): `reads` for the audit's readers (the admin
API's read endpoints and the audit page), `store` for everything else
(roster writes, the reconciler's calls). When the module's store is slow,
only the module's callers wait; a denial's wait for its audit record holds
no thread at all (durable.py).

Every call releases the GIL inside the engine while it waits. The pools
start with the reactor and stop when it shuts down (Twisted's ThreadPool
waits there for a call in progress to return, as it does for Synapse's
own pool).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

# Enough that a slow read does not hold up the next, few enough that the
# readers of one process cannot queue dozens of statements at the store
# (on PostgreSQL each waits for the store's query connection anyway).
READ_THREADS = 2
# Roster writes are serialised by the engine (one fsync or commit each);
# the reconciler runs one call at a time.
STORE_THREADS = 2


class ModuleThreads:
    def __init__(self, api: Any, reactor: Any):
        self._api = api
        self._reads = ThreadPool(minthreads=0, maxthreads=READ_THREADS, name="school_policy_reads")
        self._store = ThreadPool(minthreads=0, maxthreads=STORE_THREADS, name="school_policy_store")
        # Synapse loads modules with the reactor running: this starts the
        # pools at once.
        reactor.callWhenRunning(self._start)
        reactor.addSystemEventTrigger("during", "shutdown", self._stop)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs fn(*args) in the readers' pool: audit pages, charts, the read log."""
        return await self._api.defer_to_threadpool(self._reads, fn, *args)

    async def store(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs fn(*args) in the store's pool: roster writes, the reconciler."""
        return await self._api.defer_to_threadpool(self._store, fn, *args)

    def _start(self) -> None:
        self._reads.start()
        self._store.start()

    def _stop(self) -> None:
        self._reads.stop()
        self._store.stop()
