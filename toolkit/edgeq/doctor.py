"""`edgeq doctor`: is a target usable, and if not, what exactly to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .config import TargetConfig
from .errors import EXIT_DEVICE, EXIT_OK, DeviceError
from .targets import make_target


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    target: str
    transport: str
    address: str
    checks: list[DoctorCheck] = field(default_factory=list)
    environment: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_DEVICE

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "transport": self.transport,
            "address": self.address,
            "checks": [asdict(c) for c in self.checks],
            "environment": self.environment,
        }


def diagnose(tcfg: TargetConfig) -> DoctorReport:
    """Run every check; a failing step records its reason and the fix, never raises."""
    target = make_target(tcfg)
    rep = DoctorReport(tcfg.name, tcfg.transport, target.describe())
    add = rep.checks.append
    try:
        target.open()
    except DeviceError as exc:
        add(DoctorCheck("reachable", "fail", exc.message))
        return rep
    try:
        add(DoctorCheck("reachable", "ok", f"connected to {target.describe()}"))
        try:
            wd = target.workdir
            add(DoctorCheck("workdir", "ok", f"created and removed {wd}"))
        except DeviceError as exc:
            add(
                DoctorCheck(
                    "workdir",
                    "fail",
                    exc.message,
                    f'set workdir = "/a/writable/folder" in [targets.{tcfg.name}]',
                )
            )
            return rep
        try:
            env = target.probe()
        except DeviceError as exc:
            add(DoctorCheck("python", "fail", exc.message))
            return rep
        rep.environment = env
        add(DoctorCheck("python", "ok", f"{env.get('python')} ({env.get('python_executable')})"))
        add(
            DoctorCheck(
                "architecture",
                "ok",
                f"{env.get('machine')} · {env.get('cpu_model') or 'cpu unknown'} · "
                f"{env.get('cores')} cores",
            )
        )
        add(DoctorCheck("os", "ok", f"{env.get('os')} · kernel {env.get('kernel')}"))
        if env.get("emulated"):
            add(
                DoctorCheck(
                    "emulated",
                    "warn",
                    f"emulated CPU ({env.get('emulation_evidence')}); latency figures "
                    f"are not representative",
                )
            )
        if env.get("numpy"):
            add(DoctorCheck("numpy", "ok", env["numpy"]))
        else:
            add(
                DoctorCheck(
                    "numpy",
                    "fail",
                    "numpy is not importable by that python",
                    f"{tcfg.get('python')} -m pip install numpy",
                )
            )
        if env.get("runtime"):
            add(
                DoctorCheck(
                    "interpreter",
                    "ok",
                    f"{env['runtime']} {env.get('runtime_version') or ''}".strip(),
                )
            )
        else:
            add(
                DoctorCheck(
                    "interpreter",
                    "fail",
                    env.get("runtime_error") or "no TFLite interpreter importable",
                    f"{tcfg.get('python')} -m pip install ai-edge-litert "
                    f"(or tflite-runtime with numpy<2)",
                )
            )
        gov = env.get("cpu_governor")
        if gov and gov not in ("performance",):
            add(
                DoctorCheck(
                    "cpu_governor",
                    "warn",
                    f"governor is {gov!r}; latency will vary",
                    "echo performance | sudo tee "
                    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
                )
            )
        thr = env.get("throttling")
        if thr and any(v for k, v in thr.items() if k != "raw"):
            add(
                DoctorCheck(
                    "throttling",
                    "warn",
                    f"throttling flags {thr['raw']}",
                    "check the power supply and cooling",
                )
            )
    finally:
        target.close()
    return rep
