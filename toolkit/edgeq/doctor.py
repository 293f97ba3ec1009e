"""`edgeq doctor`: is a target usable, and if not, what exactly to do about it.

The transport part (reachable, a private workdir) is the same for every target; what the
device must have beyond that is the chosen runner's to say (`Runner.check`): the Python
runner needs python + numpy + an interpreter, the benchmark_model runner only the binary.
The lab's health check is this same diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import EXIT_DEVICE, EXIT_OK, DeviceError, UsageError
from .fields import TargetConfig
from .runners import HealthCheck, Runner, choose
from .settings import RunSettings
from .targets import make_target

DoctorCheck = HealthCheck  # the name the CLI and older code use


@dataclass
class DoctorReport:
    target: str
    transport: str
    address: str
    runner: str = ""
    checks: list[HealthCheck] = field(default_factory=list)
    environment: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def failures(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_DEVICE

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "transport": self.transport,
            "address": self.address,
            "runner": self.runner,
            "checks": [c.to_dict() for c in self.checks],
            "environment": self.environment,
        }


def diagnose(
    tcfg: TargetConfig, settings: RunSettings | None = None, runner: Runner | None = None
) -> DoctorReport:
    """Run every check; a failing step records its reason, the fix and the error object,
    never raises for a device problem."""
    target = make_target(tcfg)
    if settings is not None:
        target.io_timeout = settings.timeout
    rep = DoctorReport(tcfg.name, tcfg.transport, target.describe())
    add = rep.checks.append
    try:
        runner = runner or choose(tcfg, settings)
    except UsageError as exc:
        add(HealthCheck("runner", "fail", exc.message, error=exc))
        return rep
    rep.runner = runner.name
    try:
        target.open()
    except DeviceError as exc:
        add(HealthCheck("reachable", "fail", exc.message, error=exc))
        return rep
    try:
        add(HealthCheck("reachable", "ok", f"connected to {target.describe()}"))
        try:
            wd = target.workdir
            add(HealthCheck("workdir", "ok", f"created and removed {wd}"))
        except DeviceError as exc:
            add(
                HealthCheck(
                    "workdir",
                    "fail",
                    exc.message,
                    f'set workdir = "/a/writable/folder" in {tcfg.where}',
                    error=exc,
                )
            )
            return rep
        add(HealthCheck("runner", "ok", runner.name))
        try:
            health = runner.check(target)
        except DeviceError as exc:  # e.g. the connection dropped half-way
            add(HealthCheck("device", "fail", exc.message, error=exc))
            return rep
        rep.checks += health.checks
        rep.environment = health.environment
    finally:
        target.close()
    return rep
