"""The lab's one retry policy (on tenacity): only errors that say they are transient are
retried — `ConnectError` (refused, unreachable, timed out while connecting, connection
lost, adb device offline): the states a rebooting or flaky device passes through.
Authentication and host-key errors, runner failures, failing commands and timeouts are
not: retrying cannot fix them, and a timed-out benchmark would only burn the device's time
budget again. The first delay is `backoff_s`, doubled on each further attempt; no wait runs
past the deadline, and a stop request (Ctrl-C) ends the retries.

A crowded lab (`crowded()` true: the lab itself has more set-ups in flight than the host
can serve at once) makes failures of its own: handshakes dropped by sshd's MaxStartups, a
health-check command starved past its timeout. Then connection errors *and* command
timeouts (`is_crowding`) get `crowded_retries` more attempts, whatever the device's own
`retries` — the lab's load is nobody's device failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

from ..errors import CommandTimeout

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt after a pause (the error itself says so)."""
    return bool(getattr(exc, "transient", False))


def is_crowding(exc: BaseException | None) -> bool:
    """An error a lab crowding its own hosts makes: a connection error or a command that
    ran past its timeout."""
    return exc is not None and (is_transient(exc) or isinstance(exc, CommandTimeout))


@dataclass
class Attempts:
    """What the retries went through: every failed attempt's error, in order."""

    errors: list[BaseException] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.errors)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    backoff_s: float
    #: time.monotonic() after which no further attempt starts (None: no deadline)
    deadline: float | None = None
    stop: threading.Event | None = None
    #: whether the lab is crowded now (None: never)
    crowded: Callable[[], bool] | None = None
    #: extra attempts for a crowding error (`is_crowding`) while the lab is crowded
    crowded_retries: int = 0

    def delay(self, failed_attempts: int) -> float:
        return self.backoff_s * (2 ** (failed_attempts - 1))

    def lab_made(self, exc: BaseException | None) -> bool:
        """Whether `exc` may be the lab's own doing (a crowding error in a crowded lab)."""
        return self.crowded is not None and is_crowding(exc) and self.crowded()

    def _rules(
        self,
        on_retry: Callable[[BaseException, int, float], None] | None,
        attempts: Attempts,
        error_of: Callable[[Any], BaseException | None] | None,
    ) -> dict[str, Any]:
        """tenacity's stop/wait/retry/before-sleep rules of this policy (sync and async)."""

        def error(state: tenacity.RetryCallState) -> BaseException | None:
            if state.outcome is None:
                return None
            if state.outcome.failed:
                return state.outcome.exception()
            return error_of(state.outcome.result()) if error_of else None

        def give_up(state: tenacity.RetryCallState) -> bool:
            limit = self.retries
            if self.lab_made(error(state)):
                limit += self.crowded_retries
            if state.attempt_number > limit:
                return True
            if self.stop is not None and self.stop.is_set():
                return True
            wait = self.delay(state.attempt_number)
            return self.deadline is not None and time.monotonic() + wait >= self.deadline - 1

        def should_retry(state: tenacity.RetryCallState) -> bool:
            if state.outcome is None:
                return False
            if state.outcome.failed:
                attempts.errors.append(state.outcome.exception())
            exc = error(state)
            return exc is not None and (is_transient(exc) or self.lab_made(exc))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                on_retry(error(state), state.attempt_number, self.delay(state.attempt_number))

        return {
            "stop": give_up,
            "wait": lambda state: self.delay(state.attempt_number),
            "retry": should_retry,
            "before_sleep": before_sleep,
            "reraise": True,
            "retry_error_callback": lambda state: state.outcome.result(),
        }

    def call(
        self,
        fn: Callable[[], T],
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        attempts: Attempts | None = None,
        error_of: Callable[[Any], BaseException | None] | None = None,
    ) -> T:
        """`fn()` until it succeeds, raises an error not worth retrying, or the policy gives
        up (then the last error is raised, or the last result returned). `error_of(result)`:
        the error a result stands for (e.g. a health report whose check failed; None: a
        success), retried like a raised one. Every raised failure goes into `attempts`."""
        attempts = attempts if attempts is not None else Attempts()

        def sleep(seconds: float) -> None:
            if self.stop is not None:
                self.stop.wait(seconds)
            else:
                time.sleep(seconds)

        rules = self._rules(on_retry, attempts, error_of)
        return tenacity.Retrying(sleep=sleep, **rules)(fn)

    async def call_async(
        self,
        fn: Callable[[], Awaitable[T]],
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        attempts: Attempts | None = None,
    ) -> T:
        """`call` for a coroutine function, on the running event loop (its waits are
        `asyncio.sleep`; a stop request ends them at the next attempt)."""
        attempts = attempts if attempts is not None else Attempts()
        rules = self._rules(on_retry, attempts, None)
        return await tenacity.AsyncRetrying(**rules)(fn)
