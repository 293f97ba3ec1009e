"""The lab's one retry policy (on tenacity): only errors that say they are transient are
retried — `ConnectError` (refused, unreachable, timed out while connecting, connection
lost, adb device offline): the states a rebooting or flaky device passes through.
Authentication and host-key errors, runner failures, failing commands and timeouts are
not: retrying cannot fix them, and a timed-out benchmark would only burn the device's time
budget again. The first delay is `backoff_s`, doubled on each further attempt; no wait runs
past the deadline, and a stop request (Ctrl-C) ends the retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt after a pause (the error itself says so)."""
    return bool(getattr(exc, "transient", False))


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

    def delay(self, failed_attempts: int) -> float:
        return self.backoff_s * (2 ** (failed_attempts - 1))

    def call(
        self,
        fn: Callable[[], T],
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        attempts: Attempts | None = None,
        retry_if: Callable[[Any], bool] | None = None,
    ) -> T:
        """`fn()` until it succeeds, raises a non-transient error, or the policy gives up
        (then the last error is raised). `retry_if(result)`: also retry on a result (e.g. a
        health report whose failure was transient). Every failure goes into `attempts`."""
        attempts = attempts if attempts is not None else Attempts()

        def give_up(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number > self.retries:
                return True
            if self.stop is not None and self.stop.is_set():
                return True
            wait = self.delay(state.attempt_number)
            return self.deadline is not None and time.monotonic() + wait >= self.deadline - 1

        def should_retry(state: tenacity.RetryCallState) -> bool:
            if state.outcome is None:
                return False
            if state.outcome.failed:
                exc = state.outcome.exception()
                attempts.errors.append(exc)
                return is_transient(exc)
            return bool(retry_if and retry_if(state.outcome.result()))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception() if state.outcome.failed else None
                on_retry(exc, state.attempt_number, self.delay(state.attempt_number))

        def sleep(seconds: float) -> None:
            if self.stop is not None:
                self.stop.wait(seconds)
            else:
                time.sleep(seconds)

        retrying = tenacity.Retrying(
            stop=give_up,
            wait=lambda state: self.delay(state.attempt_number),
            retry=should_retry,
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        return retrying(fn)
