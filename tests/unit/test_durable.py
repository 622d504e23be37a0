"""The wait for an audit record without a thread (durable.py): the reactor
watches the engine's eventfd and fires each waiting denial's Deferred once
its record is durable, or when its time is up. Driven here by hand: a fake
reactor (Twisted's task.Clock for the timers), a real engine for the
eventfd's protocol, and a fake engine whose writer is the test."""
import json
import os
import select

import pytest
from twisted.internet import defer, task

from support import SERVER_NAME as SERVER
from synapse_school_policy import _core
from synapse_school_policy.durable import DurableWaiter


class FakeReactor(task.Clock):
    """Timers from task.Clock; the readers it was given."""

    def __init__(self):
        super().__init__()
        self.readers = set()

    def addReader(self, reader):  # noqa: N802
        self.readers.add(reader)

    def removeReader(self, reader):  # noqa: N802
        self.readers.discard(reader)


class FakeEngine:
    """The engine's side of the protocol: the writer moves the id, then
    writes the eventfd."""

    def __init__(self):
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.last = 0

    def durable_fd(self):
        return self.fd

    def last_durable_id(self):
        return self.last

    def write(self, up_to):
        self.last = up_to
        os.eventfd_write(self.fd, 1)

    def readable(self):
        try:
            value = os.eventfd_read(self.fd)
        except BlockingIOError:
            return False
        os.eventfd_write(self.fd, value)
        return True


def start(waiter, audit_id, timeout=5.0):
    return defer.ensureDeferred(waiter.wait(audit_id, timeout))


def test_a_record_already_durable_is_answered_without_a_deferred_or_a_timer():
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    assert reactor.readers == {waiter} and waiter.fileno() == engine.fd
    engine.last = 7
    d = start(waiter, 7)
    assert d.called and d.result is True
    assert reactor.getDelayedCalls() == [] and waiter.waiting == 0


def test_waiters_fire_in_id_order_as_the_writer_gets_there():
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    third, first, second = start(waiter, 3), start(waiter, 1), start(waiter, 2)
    assert not any(d.called for d in (first, second, third)) and waiter.waiting == 3
    engine.write(2)
    waiter.doRead()
    assert first.result is True and second.result is True and not third.called
    assert not engine.readable(), "doRead drains the eventfd (epoll is level-triggered)"
    waiter.doRead()  # a wake-up with nothing new answers nobody
    assert not third.called
    engine.write(5)
    waiter.doRead()
    assert third.result is True and waiter.waiting == 0
    assert reactor.getDelayedCalls() == [], "every timer is cancelled once its record is durable"


def test_a_record_written_between_the_look_and_the_wait_is_not_missed():
    """The writer moves the id, then writes the eventfd: the reader that
    comes after it sees the id, whenever the waiter joined."""
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    d = start(waiter, 1)
    engine.write(1)  # after the waiter's look at the id
    assert engine.readable()
    waiter.doRead()
    assert d.result is True


def test_the_deadline_answers_false_once_and_the_writer_later_finds_it_answered():
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    late, patient = start(waiter, 1, timeout=5.0), start(waiter, 2, timeout=30.0)
    reactor.advance(4.9)
    assert not late.called
    reactor.advance(0.2)
    assert late.result is False and not patient.called
    assert waiter.waiting == 1
    engine.write(2)
    waiter.doRead()
    assert patient.result is True and waiter.waiting == 0


def test_timed_out_waiters_do_not_pile_up_while_the_store_writes_nothing():
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    results = [start(waiter, i, timeout=1.0) for i in range(1, 5001)]
    reactor.advance(1.0)
    assert all(d.result is False for d in results)
    assert len(waiter._heap) < 2100, "the dead are dropped from the heap"
    survivor = start(waiter, 6000, timeout=1.0)
    engine.write(6000)
    waiter.doRead()
    assert survivor.result is True and waiter.waiting == 0


def test_the_reactors_shutdown_answers_every_waiter_false():
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    d = start(waiter, 1)
    waiter.connectionLost(None)
    assert d.result is False
    assert start(waiter, 2).result is False, "no reader: nothing would ever answer"


def test_a_failing_engine_never_makes_the_reader_raise_or_return_a_value():
    """Either would make the reactor drop the descriptor for good."""
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    d = start(waiter, 1)

    def broken():
        raise RuntimeError("engine gone")

    engine.last_durable_id = broken
    engine.write(1)
    assert waiter.doRead() is None
    assert not d.called
    engine.last_durable_id = lambda: 1
    waiter.doRead()
    assert d.result is True


def test_the_engines_writer_thread_signals_the_eventfd(tmp_path):
    config = {"data_dir": str(tmp_path / "store"), "schools": {"gym-nord": {"messenger": True}}}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    reactor = FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    denial = engine.decide(_core.CB_CHECK_LOGIN_FOR_SPAM, f"@nobody:{SERVER}", None, None, None, None,
                           None, None, _core.FACT_NO, None, None, None, None)
    d = start(waiter, denial.audit_id)
    # As the reactor does: wait until the writer thread makes it readable.
    readable, _, _ = select.select([waiter.fileno()], [], [], 5.0)
    assert readable, "the writer thread never signalled the eventfd"
    assert engine.last_durable_id() >= denial.audit_id
    waiter.doRead()
    assert d.called and d.result is True
    assert engine.audit_stalled_ms() == 0


@pytest.mark.parametrize("timeout", [0, -1])
def test_no_time_to_wait_is_an_answer_at_once(timeout):
    engine, reactor = FakeEngine(), FakeReactor()
    waiter = DurableWaiter(engine, reactor)
    assert start(waiter, 1, timeout=timeout).result is False
