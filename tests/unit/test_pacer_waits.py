"""The pacer's waiters do not poll: a freed slot, a raised limit, a holder past `hold_s` or
a stop wakes them, in arrival order. (Each of 140 health checks waiting for a lab-wide place
woke twice a second to look; in a 256-device lab that was most of its wake-ups.)"""

from __future__ import annotations

import threading
import time

import pytest

from edgeq import interrupts
from edgeq.targets import pacing
from tests.support.procs import wait_for

pytestmark = pytest.mark.unit


def _queue_up(pacer, n, stop=None, key="k", hold=0.0):
    """Start `n` threads that each take a slot of `key` once (in order: each is queued
    before the next starts); returns the threads and the order they got in."""
    order: list[int] = []
    threads = []

    def take(i):
        with pacer.slot(key, stop):
            order.append(i)
            if hold:
                time.sleep(hold)

    for i in range(n):
        t = threading.Thread(target=take, args=(i,), daemon=True)
        t.start()
        wait_for(lambda i=i: pacer.waiting() >= i + 1, 5, step=0.005)
        threads.append(t)
    return threads, order


def _hold(pacer, key="k"):
    """A holder of one slot until the returned event is set."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        with pacer.slot(key):
            holding.set()
            release.wait(30)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert holding.wait(5)
    return release, t


def test_waiters_sleep_until_a_slot_is_freed_and_come_in_arrival_order():
    pacer = pacing.Pacer(1)
    stop = interrupts.WakingEvent()
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 20, stop, hold=0.01)
    time.sleep(1.2)  # long enough for a waiter that polls every 0.5 s to have looked twice
    assert order == []
    release.set()
    for t in [*threads, holder]:
        t.join(5)
    assert order == list(range(20))  # first come, first served
    assert pacer.timeouts == 0  # not one wait ran out: nobody looked without being woken
    assert pacer.peak == 1
    assert pacer.in_flight() == 0 and pacer.waiting() == 0


def test_a_waking_stop_lets_every_waiter_out_at_once():
    pacer = pacing.Pacer(1)
    stop = interrupts.WakingEvent()
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 10, stop)
    t0 = time.monotonic()
    stop.set()
    for t in threads:
        t.join(5)
    assert sorted(order) == list(range(10))  # all out while the holder still holds
    assert time.monotonic() - t0 < 2.0
    assert pacer.timeouts == 0
    release.set()
    holder.join(5)


def test_a_plain_event_as_stop_is_looked_at_every_poll():
    """An event that cannot wake the pacer still ends the wait: it is polled."""
    pacer = pacing.Pacer(1)
    stop = threading.Event()
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 3, stop)
    stop.set()
    for t in threads:
        t.join(5)
    assert sorted(order) == [0, 1, 2]
    assert pacer.timeouts >= 1  # found by looking, not by being woken
    release.set()
    holder.join(5)


def test_a_raised_limit_wakes_the_waiters():
    pacer = pacing.Pacer(1)
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 3, hold=5.0)  # each keeps its slot: all three at once
    pacer.limit = 4
    wait_for(lambda: len(order) >= 3, 3, step=0.01)
    assert sorted(order) == [0, 1, 2]
    assert pacer.peak == 4
    assert pacer.timeouts == 0
    release.set()
    for t in [*threads, holder]:
        t.join(10)


def test_only_the_first_waiter_times_out_for_a_holder_past_hold_s():
    """hold_s: the first waiter wakes when the hung holder stops counting; the others stay
    asleep until it is in (one timeout, not one per waiter)."""
    pacer = pacing.Pacer(1, hold_s=0.3)
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 5, interrupts.WakingEvent(), hold=0.05)
    for t in threads:
        t.join(10)
    # the first waited for the hung holder to pass hold_s, each other one for the one
    # before it to leave
    assert order == list(range(5))
    assert pacer.timeouts == 1
    assert pacer.peak == 1
    release.set()
    holder.join(5)


def test_the_stop_signal_event_wakes_a_pacer_through_a_thread_of_its_own():
    """interrupts.STOP is set from a signal handler, which may interrupt a thread holding
    the pacer's lock: the wake-up runs elsewhere, so set() never waits for that lock."""
    pacer = pacing.Pacer(1)
    stop = interrupts.WakingEvent()
    release, holder = _hold(pacer)
    threads, order = _queue_up(pacer, 2, stop)
    with pacer._lock:  # as if set() interrupted a thread inside the pacer
        stop.set()  # returns although the lock is held here
        assert order == []
    for t in threads:
        t.join(5)
    assert sorted(order) == [0, 1]
    release.set()
    holder.join(5)
