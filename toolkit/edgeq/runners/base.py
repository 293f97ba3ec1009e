"""The Runner interface: what measures a model on a device.

A runner says what it needs from a device (`check`: the health check `edgeq doctor` and
the lab run) and measures (`measure`: push what is missing, run, pull, validate) returning
an `edgeq.run/1` document. It judges nothing on the host: what only the host can judge
(output agreement, the accuracy of a device that cannot compute it) it leaves in the
`Measurement` for `edgeq.hostjudge`, the step after measuring. Two implementations:
`python` (edgeq's one-file runner) and `benchmark_model` (TFLite's native binary). A
target picks one with `runner = "auto" | "python" | "benchmark_model"`.

To add a runner: a module in this package with a `@register`ed `Runner` subclass (its
`name`, the target keys it reads in `fields`, its own run settings in `options`,
`configured()` for `auto`, `check()` and `measure()`), and its module name in
`runners/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from ..errors import EdgeqError
from ..fields import Field, TargetConfig
from ..progress import Progress
from ..settings import RunSettings, Spec
from ..targets import Target


@dataclass(frozen=True)
class HealthCheck:
    """One line of a health check: ok, warn (usable, but know this) or fail (unusable)."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
    #: the error behind a failure, kept as the object (type, transient, evidence)
    error: EdgeqError | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error"] = self.error.to_dict() if self.error else None
        return d


@dataclass
class Health:
    """What a runner found out about a device: its checks and the device environment."""

    checks: list[HealthCheck] = field(default_factory=list)
    environment: dict[str, Any] | None = None

    def add(self, *args: Any, **kw: Any) -> HealthCheck:
        check = HealthCheck(*args, **kw)
        self.checks.append(check)
        return check


@dataclass(frozen=True)
class Job:
    """What to measure: the artifact, the staged evaluation data (or None), the settings,
    the shapes of dynamic inputs (`NAME=d0,d1,…`) and how many agreement samples to run
    (0: none) — compared with `reference` on the host. `probe`: check what the device needs
    before sending the model and data (fail fast); False when a health check just did (the
    lab), and for every repetition after the first. `pull_to`: the host folder where a runner
    puts what it pulls for the host to judge (the agreement outputs)."""

    artifact: Path
    eval_npz: Path | None
    settings: RunSettings
    input_shapes: tuple[str, ...] = ()
    agreement: int = 0
    reference: Path | None = None
    probe: bool = True
    pull_to: Path | None = None
    #: check the operators the model needs against the device's runtime before sending
    #: it (`edgeq.compat`; cached per runtime) — the first repetition only
    compat: bool = True

    def first_only(self, first: bool) -> Job:
        """This job for one repetition: accuracy, agreement and the probe happen once."""
        if first:
            return self
        return replace(self, eval_npz=None, agreement=0, probe=False, compat=False)


def run_device_seconds(run: dict[str, Any]) -> float:
    """Seconds one run document says the device spent: its phases plus the accuracy pass."""
    seconds = sum(v for v in (run.get("phases_ms") or {}).values() if v) / 1000
    if run.get("accuracy"):
        seconds += run["accuracy"].get("seconds") or 0.0
    return seconds


@dataclass
class Measurement:
    """A runner's answer: the validated run document and the facts of getting it."""

    run: dict[str, Any]
    bytes_sent: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    runner_process_s: float = 0.0
    total_s: float = 0.0
    workdir: str | None = None
    kept: bool = False
    #: how the files travelled ("sftp", "exec", "copy", "adb")
    transfer_method: str = ""
    #: for the host to judge: the device's agreement outputs pulled here (or why they
    #: could not be), and why accuracy is to be evaluated on the host (None: it is not)
    outputs: Path | None = None
    outputs_error: str | None = None
    host_accuracy: str | None = None
    #: seconds the device spent measuring, over every repetition (None: this run's phases)
    device_measure_s: float | None = None

    def device_seconds(self) -> float:
        """Device time of the measurement: every repetition's phases (+ accuracy), so that
        it and the orchestration add up to the total whatever `--repeat` was."""
        if self.device_measure_s is not None:
            return self.device_measure_s
        return run_device_seconds(self.run)

    def facts(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("run")
        return d

    @classmethod
    def of(cls, target: Target, run: dict[str, Any], run_s: float, started: float, workdir):
        """The measurement of a finished run: the target's transfer facts and the times
        (`started`: time.perf_counter() when the runner began)."""
        import time

        return cls(
            run=run,
            bytes_sent=target.bytes_sent,
            files=target.files_sent,
            runner_process_s=run_s,
            total_s=time.perf_counter() - started,
            workdir=workdir,
            kept=target.keep,
            transfer_method=target.transfer_method,
        )


class Runner(ABC):
    """Measures a model on a target. Creating one touches nothing."""

    name: ClassVar[str] = ""
    #: Target keys this runner reads (declared like every config key).
    fields: ClassVar[dict[str, Field]] = {}
    #: Which of those keys hold host-side paths.
    path_fields: ClassVar[tuple[str, ...]] = ()
    #: Run settings of this runner's own (e.g. benchmark_model's delegate switches): each
    #: becomes a `deploy`/`bench` option, a lab [run] key and a `RunSettings` value; the
    #: runner renders them into its command line itself.
    options: ClassVar[tuple[Spec, ...]] = ()
    #: `runner = "auto"` asks the runners in this order (lowest first) whether they are
    #: `configured()` for the target; the fallback says yes to every target.
    auto_order: ClassVar[int] = 50
    #: The latency statistics the runner reports, per latency kind (a budget percentile
    #: outside them is judged at the nearest higher one, see `edgeq.budget.substitute`).
    latency_reports: ClassVar[dict[str, tuple[str, ...]]] = {
        "invoke": ("min", "p5", "p50", "p90", "p95", "p99", "max", "mean", "std"),
        "end_to_end": ("min", "p5", "p50", "p90", "p95", "p99", "max", "mean", "std"),
    }

    def __init__(self, tcfg: TargetConfig, settings: RunSettings) -> None:
        self.tcfg = tcfg
        self.settings = settings

    @classmethod
    def configured(cls, tcfg: TargetConfig, settings: RunSettings) -> bool:
        """For `runner = "auto"`: is this runner set up for the target? (first wins)"""
        return False

    @abstractmethod
    def check(self, target: Target) -> Health:
        """What the device must have for this runner; an open target, never raises for a
        device problem (each is a failing check with its fix)."""

    @abstractmethod
    def measure(self, target: Target, job: Job, progress: Progress | None = None) -> Measurement:
        """Measure `job` on `target` (opened and closed here); DeviceError on failure."""

    def accuracy_note(self) -> str:
        return ""
