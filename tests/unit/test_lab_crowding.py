"""The lab's retry policy under its own load, and timing that adds up with --repeat."""

from __future__ import annotations

import pytest

from edgeq.errors import AuthError, CommandTimeout, ConnectError
from edgeq.lab.retry import Attempts, RetryPolicy
from edgeq.measure import combine
from edgeq.runners import Measurement
from edgeq.settings import RunSettings


def flaky(errors):
    """A function failing with `errors` in turn, then answering "ok"."""
    todo = list(errors)

    def fn():
        if todo:
            raise todo.pop(0)
        return "ok"

    return fn


def policy(crowded: bool, retries: int = 0, extra: int = 2) -> RetryPolicy:
    return RetryPolicy(retries, 0.0, crowded=lambda: crowded, crowded_retries=extra)


def test_a_timeout_while_the_lab_is_crowded_is_retried():
    attempts = Attempts()
    fn = flaky([CommandTimeout("workdir: did not finish"), ConnectError("No existing session")])
    assert policy(crowded=True).call(fn, attempts=attempts) == "ok"
    assert attempts.count == 2


def test_a_timeout_in_a_calm_lab_is_not_retried():
    with pytest.raises(CommandTimeout):
        policy(crowded=False, retries=3).call(flaky([CommandTimeout("slow")]))


def test_crowded_retries_are_bounded_and_add_to_the_devices_own():
    attempts = Attempts()
    fn = flaky([ConnectError("dropped")] * 10)
    with pytest.raises(ConnectError):
        policy(crowded=True, retries=1, extra=2).call(fn, attempts=attempts)
    assert attempts.count == 4  # 1 + 1 retry + 2 for the crowd


def test_an_auth_error_is_never_retried_even_when_crowded():
    attempts = Attempts()
    with pytest.raises(AuthError):
        policy(crowded=True).call(flaky([AuthError("refused")]), attempts=attempts)
    assert attempts.count == 1


def test_a_result_standing_for_an_error_is_retried_like_one():
    reports = iter([CommandTimeout("health: workdir"), None])
    got = policy(crowded=True).call(lambda: next(reports), error_of=lambda r: r)
    assert got is None  # the second report passed
    assert policy(crowded=True).lab_made(CommandTimeout("x"))
    assert not policy(crowded=False).lab_made(CommandTimeout("x"))


def _run(p50: float, load_ms: float) -> Measurement:
    run = {
        "latency_ms": {"invoke": {"p50": p50, "mean": p50}},
        "phases_ms": {"load": load_ms, "steady": 1000.0},
    }
    return Measurement(run=run, total_s=2.0)


def test_device_time_counts_every_repetition():
    s = RunSettings(repeat=5).validate()
    reps = [_run(1.0 + i / 10, 100.0) for i in range(5)]
    got = combine({1: reps}, s, [], None)
    assert got.device_seconds() == pytest.approx(5 * 1.1)  # not one repetition's 1.1 s
    single = Measurement(run=reps[0].run)
    assert single.device_seconds() == pytest.approx(1.1)
