"""Connection pacing: at most a few connection set-ups in flight per address.

One host often serves many devices (the phones on an exporter host share its sshd; a
board farm's serial servers; the test "Pis" behind one sshd). OpenSSH drops new
connections at random once more than `MaxStartups` (default `10:30:100`: from 10
unauthenticated connections on) are being set up at once, and a busy adb server answers
late: a lab that opens every connection at the same moment makes its own failures. So
every `Target.open()` waits for a slot of its address (`Target.pace_key()`; None: not
paced) — `PER_HOST` (8, below MaxStartups' 10) at a time — whatever `--parallel` is.

SSH handshakes are also bounded over all addresses together: at most `TOTAL` (8) in
flight in the process (`SETUPS`, the lab's `connect_total`), taken after the TCP connect
(waiting for a powered-off device holds no slot). A handshake is CPU work for this host
(key exchange, authentication, Python on every packet, all under one GIL), so more of them
at once than that finishes none sooner; what it did do, measured (`bench/lab_scaling.py`,
256 devices on 256 addresses, 2 cores): 256 handshakes queued on the GIL at once, each
waiting thread waking every 5 ms to ask for it — 6,000 futex calls per device-run against
600 for 8 devices, and 1.4–1.7x the lab CPU per device-run. With this bound and the
lab's on health checks (`health_total`): 1,450–1,600 futex calls and 1.1–1.25x; with
waiters that sleep until woken (below) instead of looking twice a second: ~1,100 and 1.04x.

`Pacer` is also what the lab uses to pace its health checks per address (its own
instance: a health check opens a connection inside its slot, so the two must not share
one). `peak` and `waits` are kept for tests and benchmarks.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

#: Connection set-ups in flight per address (below OpenSSH's MaxStartups start of 10).
PER_HOST = 8
#: SSH handshakes in flight in the whole process, over all addresses.
TOTAL = 8
#: The one key of `SETUPS`.
ALL = "*"


class Pacer:
    """A bounded number of holders per key; `slot(key)` waits for one (a None key: no wait).

    `limit` may be changed while in use. `hold_s`: a holder stops counting against the
    limit after that many seconds (it keeps running; a device that hangs, or is powered off
    and waits for its connect timeout, cannot keep others out longer than that).

    Waiters queue per key, first come first served, and none of them polls: a freed slot
    wakes the first, which on taking it wakes the next to look; only the first waits with a
    timeout, and only with `hold_s` (until the oldest counted holder stops counting). A
    stop event given to `slot` ends the wait at once if it is an `interrupts.WakingEvent`
    (it wakes every waiter when set); any other event is looked at every POLL_S. (Every
    waiter waking twice a second to look was most of the wake-ups of a 256-device lab,
    whose health checks queue here.)"""

    #: how often a waiter looks at a stop event that cannot wake it
    POLL_S = 0.5

    def __init__(
        self, limit: int = PER_HOST, name: str = "connection set-ups", hold_s: float | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a pacer's limit must be >= 1")
        self._limit = limit
        self.name = name
        self.hold_s = hold_s
        #: with hold_s: per key, when each holder took its slot
        self._since: dict[str, dict[int, float]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        #: per key with waiters: one condition (on the one lock) per waiter, in arrival order
        self._queues: dict[str, deque[threading.Condition]] = {}
        #: the stop events that wake this pacer's waiters
        self._hooked: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        #: the most holders one key ever had at once
        self.peak = 0
        #: slots that had to wait, and the seconds they waited in all
        self.waits = 0
        self.waited_s = 0.0
        #: waits that ended without being woken (a timeout: hold_s, or a stop polled for)
        self.timeouts = 0

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        with self._lock:
            self._limit = value
            for queue in self._queues.values():
                queue[0].notify()  # a raised limit: the first looks (and wakes the next)

    def _wake_all(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                for waiter in queue:
                    waiter.notify()

    def _counted(self, key: str, now: float) -> int:
        """Holders of `key` that count against the limit now (lock held)."""
        if self.hold_s is None:
            return self._in_flight.get(key, 0)
        return sum(1 for t in self._since.get(key, {}).values() if now - t < self.hold_s)

    def _next_expiry(self, key: str, now: float) -> float | None:
        """Seconds until a holder of `key` stops counting (None: never; lock held)."""
        if self.hold_s is None:
            return None
        ends = [t + self.hold_s for t in self._since.get(key, {}).values() if now - t < self.hold_s]
        return max(min(ends) - now, 0.0) + 0.001 if ends else None

    def in_flight(self, key: str | None = None) -> int:
        """Holders of `key` now (None: of every key)."""
        with self._lock:
            if key is None:
                return sum(self._in_flight.values())
            return self._in_flight.get(key, 0)

    def waiting(self) -> int:
        """Waiters now, over every key."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def _hook(self, stop: threading.Event | None) -> bool:
        """Whether `stop` wakes this pacer's waiters when set (registering once; lock
        held)."""
        if stop is None:
            return True
        on_set = getattr(stop, "on_set", None)
        if on_set is None:
            return False
        if stop not in self._hooked:
            self._hooked.add(stop)
            on_set(self._wake_all)
        return True

    def _wait_turn(self, key: str, stop: threading.Event | None, woken_by_stop: bool) -> None:
        """Queue behind `key`'s waiters until first with a slot free, or stopped (lock
        held)."""
        me = threading.Condition(self._lock)
        queue = self._queues.setdefault(key, deque())
        queue.append(me)
        try:
            while True:
                now = time.monotonic()
                first = queue[0] is me
                if first and self._counted(key, now) < self.limit:
                    return
                if stop is not None and stop.is_set():
                    return
                timeout = self._next_expiry(key, now) if first else None
                if not woken_by_stop:
                    timeout = self.POLL_S if timeout is None else min(timeout, self.POLL_S)
                if not me.wait(timeout):
                    self.timeouts += 1
        finally:
            first = queue[0] is me
            queue.remove(me)
            if not queue:
                del self._queues[key]
            elif first:
                queue[0].notify()  # the next one looks: maybe another slot is free

    @contextmanager
    def slot(self, key: str | None, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold one of `key`'s slots for the `with` block. `stop` (set: Ctrl-C) ends the
        wait early; the block then runs anyway and finds the stop request itself."""
        if key is None:
            yield
            return
        t0 = time.monotonic()
        token = next(self._tokens)
        with self._lock:
            woken_by_stop = self._hook(stop)
            waited = key in self._queues or self._counted(key, t0) >= self.limit
            if waited:  # behind those already waiting, even if a slot is free this instant
                self._wait_turn(key, stop, woken_by_stop)
            now = time.monotonic()
            self.peak = max(self.peak, self._counted(key, now) + 1)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            if self.hold_s is not None:
                self._since.setdefault(key, {})[token] = now
            if waited:
                self.waits += 1
                self.waited_s += now - t0
        try:
            yield
        finally:
            with self._lock:
                left = self._in_flight[key] - 1
                if left:
                    self._in_flight[key] = left
                else:
                    del self._in_flight[key]
                if self.hold_s is not None:
                    since = self._since[key]
                    del since[token]
                    if not since:
                        del self._since[key]
                queue = self._queues.get(key)
                if queue:
                    queue[0].notify()

    def reset_stats(self) -> None:
        with self._lock:
            self.peak = max(self._in_flight.values(), default=0)
            self.waits, self.waited_s, self.timeouts = 0, 0.0, 0


#: The process-wide pacer of `Target.open()`, per address...
CONNECTIONS = Pacer(PER_HOST)
#: ... and the SSH handshakes over all addresses (taken inside an address's slot, always
#: in that order).
SETUPS = Pacer(TOTAL, "SSH handshakes, all addresses")
