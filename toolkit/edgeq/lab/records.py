"""What a lab run produces: per device × model results, per device outcomes, the run.

Records keep the exception behind a failure as the object (`error`), as Fabric's
GroupResult does: its type, message (with the fix), whether it was transient and its
evidence (command, exit status, output tails) stay available until something renders or
stores them. Nothing parses a message to learn what kind of failure it was.
"""

from __future__ import annotations

import secrets
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import status as st
from ..compat import UnsupportedOp
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, EdgeqError
from .metrics import budget_checks, flatten_metrics
from .regress import Finding

if TYPE_CHECKING:
    from ..results import DeployResult


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def describe(exc: BaseException) -> str:
    """One line for an error: edgeq's own message, or the type and text of a bug."""
    if isinstance(exc, EdgeqError):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"


def error_doc(exc: BaseException | None) -> dict[str, Any] | None:
    """The error as data: type, message, transient, evidence; a traceback for a bug."""
    if exc is None:
        return None
    if isinstance(exc, EdgeqError):
        return exc.to_dict()
    return {
        "type": type(exc).__name__,
        "message": describe(exc),
        "transient": False,
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


@dataclass(frozen=True)
class Event:
    """Progress of one device, for live displays (`phase`: queued, waiting, health,
    quarantined, busy, running, retry, done)."""

    device: str
    phase: str
    message: str = ""
    done: int = 0
    total: int = 0
    status: str = ""


OnEvent = Callable[[Event], None]


@dataclass(frozen=True)
class Artifact:
    """A model the lab runs. Its history series is keyed by `sha256` (its content); `name`
    is what reports show (the file name, or the label given with --label)."""

    name: str
    path: Path
    sha256: str
    bytes: int
    mode: str | None
    dataset: str
    eval_npz: Path | None = None
    reference_top1: float | None = None
    #: what was staged for it once before the fan-out (`edgeq.prepare.Staged`: data plan,
    #: host reference), handed to each of its deploys; not part of the report
    staged: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "staged"}
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


@dataclass
class ResultRecord:
    """One device × model outcome: what goes into the history, plus its findings."""

    run_id: str
    device: str
    transport: str
    address: str
    identity: str
    model: str
    status: str
    reason: str = ""
    tags: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    artifact_path: str = ""
    artifact_sha256: str = ""
    mode: str | None = None
    attempts: int = 0
    started_utc: str = ""
    finished_utc: str = ""
    bench_start: float | None = None
    bench_end: float | None = None
    environment: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    since_utc: str | None = None
    last_pass_run_id: str | None = None
    result_id: int | None = None
    #: the last error (kept as the object) and the earlier attempts' errors
    error: BaseException | None = field(default=None, repr=False, compare=False)
    earlier_errors: list[BaseException] = field(default_factory=list, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == st.Status.PASS

    @property
    def error_type(self) -> str | None:
        return type(self.error).__name__ if self.error is not None else None

    @property
    def error_text(self) -> str | None:
        """Every attempt's error, then the evidence of the last one (or its traceback)."""
        if self.error is None:
            return None
        tried = [*self.earlier_errors, self.error]
        lines = [f"attempt {i}: {type(e).__name__}: {describe(e)}" for i, e in enumerate(tried, 1)]
        doc = error_doc(self.error) or {}
        for key in ("command", "exit_status", "stdout_tail", "stderr_tail"):
            if doc.get(key) not in (None, ""):
                lines.append(f"{key.replace('_', ' ')}: {doc[key]}")
        if doc.get("traceback"):
            lines.append(doc["traceback"])
        return "\n".join(lines)

    def to_row(self) -> dict[str, Any]:
        """The history row (plain data: the error rendered as type, text and a document)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row.pop("error")
        row.pop("earlier_errors")
        row["findings"] = [f.to_dict() for f in self.findings]
        row["error_type"] = self.error_type
        row["error_text"] = self.error_text
        row["error"] = error_doc(self.error)
        return row

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        d = self.to_row()
        run = (self.result or {}).get("run") or {}
        d["runner"] = (run.get("runner") or {}).get("name")
        d["accuracy_source"] = run.get("accuracy_source")  # device | host | None
        if not full:
            d.pop("result")
        return d


def with_deploy(
    rec: ResultRecord,
    res: DeployResult,
    attempts: int = 1,
    checks: Sequence[dict[str, Any]] = (),
) -> ResultRecord:
    """`rec` filled in from a finished deploy: pass/fail by its verdict, the attempts, the
    device environment, the flat metrics, the result document and the checks (`checks`
    first, then the budget's). The lab scheduler and the sweep record results this way."""
    rec.status = str(st.Status.PASS if res.verdict.passed else st.Status.FAIL)
    rec.attempts = attempts
    rec.environment = res.run.get("environment")
    rec.metrics = flatten_metrics(res)
    rec.result = res.to_dict()
    rec.checks = [*checks, *budget_checks(res)]
    return rec


@dataclass
class DeviceOutcome:
    name: str
    transport: str
    address: str
    identity: str
    status: str  # see edgeq.status
    reason: str = ""
    health_s: float = 0.0
    health_attempts: int = 0
    lock_wait_s: float = 0.0
    health: dict[str, Any] | None = None
    results: list[ResultRecord] = field(default_factory=list)
    error: BaseException | None = field(default=None, repr=False, compare=False)
    #: times the device was set aside (and run again after the others) because it failed
    #: while the lab itself crowded its host (see `retry.RetryPolicy.crowded`)
    deferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["results"] = [f"{r.device}/{r.model}" for r in self.results]
        d["error"] = error_doc(self.error)
        return d


@dataclass
class LabRun:
    run_id: str
    started_utc: str
    finished_utc: str
    inventory: str
    db: str
    models: list[Artifact]
    devices: list[DeviceOutcome]
    results: list[ResultRecord]
    wall_s: float = 0.0
    notices: list[str] = field(default_factory=list)
    #: results the history could not take (saved aside; see the notices)
    unrecorded: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.unrecorded
            and all(d.status in st.HARMLESS for d in self.devices)
            and all(r.status in st.HARMLESS for r in self.results)
        )

    @property
    def exit_code(self) -> int:
        """0 all harmless; 2 when a model needs an operator a device's runtime lacks (the
        exit code `deploy`/`bench`/`eval` give it); else 1."""
        if self.ok:
            return EXIT_OK
        if any(isinstance(r.error, UnsupportedOp) for r in self.results):
            return EXIT_USAGE
        return EXIT_FAILED

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in st.RECORDED}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "run_id": self.run_id,
            "started_utc": self.started_utc,
            "finished_utc": self.finished_utc,
            "wall_s": self.wall_s,
            "inventory": self.inventory,
            "db": self.db,
            "counts": self.counts(),
            "models": [a.to_dict() for a in self.models],
            "devices": [d.to_dict() for d in self.devices],
            "results": [r.to_dict() for r in self.results],
            "findings": [f.to_dict() for f in self.findings],
            "notices": self.notices,
            "unrecorded": self.unrecorded,
        }
