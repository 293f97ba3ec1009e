"""Stopping edgeq: Ctrl-C (SIGINT), SIGTERM (`kill`, `timeout`, a cancelled CI job) and
SIGHUP (a closed terminal) all take the same path.

While a command runs, `handlers()` turns each of these signals into `Interrupted` — a
KeyboardInterrupt, so every `finally` and every `except KeyboardInterrupt` that cleans up
after Ctrl-C (the target kills the device's process group and removes its workdir, the
lab releases its leases) does so for SIGTERM too — and sets `STOP`, which threads other
than the main one (the lab's workers) notice at their next `check()`. The exit code is
128 + the signal's number: 130, 143, 129.

Cleanup that must finish runs `shielded()`: `check()` does not raise there, and one more
signal only prints a note (a second one abandons the cleanup).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator

SIGNALS = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
    if s is not None
)  # fmt: skip


class WakingEvent(threading.Event):
    """A threading.Event that also wakes those blocked on something of their own: `on_set`
    registers a function called once the event is set (a pacer's queue, whose waiters then
    block without a timeout instead of waking every fraction of a second to look at the
    event; 140 such waiters, twice a second each, were most of a 256-device lab's wake-ups).

    The functions run in a thread of their own, started without taking any lock of this
    process: `set()` may be called from a signal handler, which interrupts the main thread
    wherever it is — maybe holding the very lock a function needs. They are held weakly (a
    lab's pacers go with the lab)."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[weakref.ref] = []

    def on_set(self, fn: Callable[[], None]) -> None:
        ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") else weakref.ref(fn)
        # a list swapped whole (never changed in place): set() reads it without a lock
        self._listeners = [r for r in self._listeners if r() is not None] + [ref]

    def set(self) -> None:
        super().set()
        fns = [f for f in (r() for r in self._listeners) if f is not None]
        if fns:
            _thread.start_new_thread(_call_all, (fns,))


def _call_all(fns: list[Callable[[], None]]) -> None:
    for fn in fns:
        with contextlib.suppress(Exception):
            fn()


class _StopEvent(WakingEvent):
    """A WakingEvent that can also be waited for with `select` beside sockets: its
    `fileno()` is readable while it is set. A thread that waits for a device's output
    then wakes for a stop at once, instead of waking every fraction of a second to look."""

    def __init__(self) -> None:
        super().__init__()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def set(self) -> None:
        super().set()
        with contextlib.suppress(BlockingIOError):
            os.write(self._w, b"!")

    def clear(self) -> None:
        super().clear()
        with contextlib.suppress(BlockingIOError):
            while os.read(self._r, 512):
                pass

    def fileno(self) -> int:
        return self._r


#: Set when a stop signal arrived; cleared when a command starts (select()-able).
STOP = _StopEvent()
_state = {"signum": signal.SIGINT, "warned": False}
_local = threading.local()


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived (Ctrl-C, SIGTERM or SIGHUP)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption (130 for a plain KeyboardInterrupt)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


def _shielded() -> bool:
    return getattr(_local, "depth", 0) > 0


def check() -> None:
    """Raise Interrupted if a stop signal arrived (not inside `shielded()`)."""
    if STOP.is_set() and not _shielded():
        raise Interrupted(_state["signum"])


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Cleanup that should finish although a stop signal arrived."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def _handle(signum: int, frame: object) -> None:
    first = not STOP.is_set()
    STOP.set()
    if first:
        _state["signum"] = signum
    if _shielded() and not _state["warned"]:
        _state["warned"] = True
        sys.stderr.write(
            "edgeq: cleaning up on the device; send the signal again to abandon the cleanup\n"
        )
        return
    raise Interrupted(_state["signum"] if first else signum)


@contextlib.contextmanager
def handlers() -> Iterator[None]:
    """Install the stop-signal handlers for the duration of a command (main thread only;
    elsewhere this does nothing), restoring the previous ones afterwards. A signal that is
    ignored (SIGHUP under nohup) stays ignored."""
    STOP.clear()
    _state.update(signum=signal.SIGINT, warned=False)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for s in SIGNALS:
        try:
            if signal.getsignal(s) == signal.SIG_IGN:
                continue  # e.g. SIGHUP under nohup: the user asked to ignore it
            previous[s] = signal.signal(s, _handle)
        except (OSError, ValueError):
            pass
    try:
        yield
    finally:
        for s, h in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(s, h)
