"""The lab's health check: `edgeq doctor` for the device's chosen runner, retried while
the device is transiently unreachable; a device that fails it is quarantined (recorded,
with the reason, and not measured)."""

from __future__ import annotations

import time
from typing import Any

from .. import doctor as doctor_mod
from .. import status as st
from ..doctor import DoctorReport
from ..errors import EdgeqError
from ..settings import RunSettings
from .device import Device
from .records import DeviceOutcome, describe
from .retry import Attempts, RetryPolicy, is_transient


def _reason(rep: DoctorReport) -> str:
    return "; ".join(
        f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in rep.failures
    )


def transiently_unreachable(rep: DoctorReport) -> bool:
    """A report that failed only because the device could not be reached just now."""
    failed = rep.failures
    return bool(failed) and failed[0].error is not None and is_transient(failed[0].error)


def failure_of(rep: DoctorReport) -> BaseException | None:
    """The error a report's first failing check stands for (None: passed, or no error)."""
    failed = rep.failures
    return failed[0].error if failed else None


def check(
    dev: Device,
    settings: RunSettings,
    policy: RetryPolicy,
    on_retry: Any = None,
) -> DeviceOutcome:
    """Diagnose `dev` (its lease is held by the caller); never raises for the device."""
    out = DeviceOutcome(dev.name, dev.transport, dev.address, dev.identity, st.Status.PASS)
    t0 = time.monotonic()
    attempts = Attempts()
    tries = 0

    def diagnose() -> DoctorReport:
        nonlocal tries
        tries += 1
        return doctor_mod.diagnose(tcfg, settings)

    try:
        tcfg = dev.resolved_target()
        rep = policy.call(
            diagnose,
            on_retry=on_retry,
            attempts=attempts,
            error_of=failure_of,
        )
        out.health = rep.to_dict()
        if rep.failures:
            out.status, out.reason = st.Status.QUARANTINED, _reason(rep)
            out.error = rep.failures[0].error
    except EdgeqError as exc:
        out.status, out.reason, out.error = st.Status.QUARANTINED, exc.message, exc
    except Exception as exc:  # a bug must not stop the other devices
        out.status, out.error = st.Status.QUARANTINED, exc
        out.reason = f"{describe(exc)} (in the health check)"
    out.health_attempts = max(1, tries)
    out.health_s = time.monotonic() - t0
    return out
