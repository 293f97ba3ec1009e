"""`edgeq lab run`: every device of the inventory, in parallel, never stopped by one of them.

    resolve the models (the inventory's, `--models`, or trained per [model])
    stage the evaluation data and the host float32 references once
    health check every device (`doctor`), in parallel; quarantine the unhealthy (recorded)
    fan out: per device, under its lock, each model → deploy → budget → regression → history

Retries: only transient transport errors are retried — `ConnectError` (refused,
unreachable, timed out while connecting, connection lost, adb device offline): the states a
rebooting or flaky device passes through. Authentication and host-key errors, runner
failures, failing commands and timeouts are not: retrying cannot fix them, and a timed-out
benchmark would only burn the device's time budget again. The delay is `backoff_s`, doubled
on each further attempt, and never runs past the device's `timeout_s`.

Outcomes per device × model: pass, fail (budget or regression), error (device/transport
error after the retries), quarantined (failed the health check). `LabRun.exit_code` is 0
only if every selected device was healthy and every one of its results passed, else 1.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import convert, fsutil, stage
from .. import deploy as deploy_mod
from .. import doctor as doctor_mod
from ..errors import (
    EXIT_FAILED,
    EXIT_OK,
    CommandTimeout,
    ConnectError,
    EdgeqError,
    UsageError,
)
from ..results import STAT_KEYS, DeployResult
from ..targets import make_target
from . import regress
from .history import History, provenance, utc_now
from .inventory import Device, Inventory
from .lock import DeviceLock

OnEvent = Callable[["Event"], None]


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt after a pause: the transport could not reach the device."""
    return isinstance(exc, ConnectError)


@dataclass(frozen=True)
class Event:
    """Progress of one device, for live displays (`phase`: queued, health, waiting,
    quarantined, running, retry, done)."""

    device: str
    phase: str
    message: str = ""
    done: int = 0
    total: int = 0
    status: str = ""


@dataclass(frozen=True)
class Artifact:
    """A model the lab runs; `name` keys its history series (the file name by default)."""

    name: str
    path: Path
    sha256: str
    bytes: int
    mode: str | None
    dataset: str
    eval_npz: Path | None = None
    reference_top1: float | None = None


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
    error_type: str | None = None
    error_text: str | None = None
    attempts: int = 0
    started_utc: str = ""
    finished_utc: str = ""
    bench_start: float | None = None
    bench_end: float | None = None
    environment: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    findings: list[regress.Finding] = field(default_factory=list)
    since_utc: str | None = None
    last_pass_run_id: str | None = None
    result_id: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        if not full:
            d.pop("result")
        return d


@dataclass
class DeviceOutcome:
    name: str
    transport: str
    address: str
    identity: str
    status: str  # pass | fail | error | quarantined | skipped
    reason: str = ""
    health_s: float = 0.0
    health_attempts: int = 0
    lock_wait_s: float = 0.0
    health: dict[str, Any] | None = None
    results: list[ResultRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["results"] = [f"{r.device}/{r.model}" for r in self.results]
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

    @property
    def ok(self) -> bool:
        return all(d.status in ("pass", "skipped") for d in self.devices) and all(
            r.passed for r in self.results
        )

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED

    @property
    def findings(self) -> list[regress.Finding]:
        return [f for r in self.results for f in r.findings]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("pass", "fail", "error", "quarantined")}
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
            "models": [
                {k: str(v) if isinstance(v, Path) else v for k, v in asdict(a).items()}
                for a in self.models
            ],
            "devices": [d.to_dict() for d in self.devices],
            "results": [r.to_dict() for r in self.results],
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------- models


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def resolve_models(
    inv: Inventory,
    models: list[Path] | None = None,
    data_path: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> list[Artifact]:
    """The artifacts to run: `--models`, else the inventory's, else trained per [model]."""
    paths = [Path(m) for m in models] if models else inv.model_paths
    if not paths:
        if not inv.lab["modes"]:
            raise UsageError(
                f"{inv.path}: nothing to run; set models = [...] or modes = [...] in [lab], "
                f"or pass --models"
            )
        for mode in inv.lab["modes"]:
            recipe = {**inv.model, "mode": mode, "dataset": inv.model["dataset"]}
            paths.append(deploy_mod.prepare_artifact(recipe, data_path, say, _epochs(say)))
    out: list[Artifact] = []
    names: dict[str, Path] = {}
    for p in paths:
        p = deploy_mod.resolve_artifact(p)
        name = p.name
        if name in names and names[name].resolve() != p.resolve():
            name = f"{p.parent.name}/{p.name}"
        if name in names:
            raise UsageError(f"model {p} is listed twice; each model runs once per device")
        names[name] = p
        entry = convert.manifest_entry(p)
        out.append(
            Artifact(
                name=name,
                path=p.resolve(),
                sha256=fsutil.sha256_file(p),
                bytes=p.stat().st_size,
                mode=entry["mode"] if entry else None,
                dataset=(entry or {}).get("dataset") or inv.lab["dataset"],
            )
        )
    return out


def _epochs(say: Callable[[str], None] | None) -> Callable[..., None] | None:
    """A training progress function that says one line per finished epoch."""
    if say is None:
        return None

    def progress(epoch: int, epochs: int, batch: int, batches: int, logs: dict) -> None:
        if batch == batches and "accuracy" in logs:
            val = f", val_accuracy {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else ""
            say(f"epoch {epoch}/{epochs}: accuracy {logs['accuracy']:.4f}{val}")

    return progress


def stage_models(
    inv: Inventory,
    artifacts: list[Artifact],
    data_path: Path | None,
    say: Callable[[str], None] | None = None,
) -> list[Artifact]:
    """Stage the evaluation data and compute the host references once, before the fan-out
    (both are cached, so every device's deploy then finds them ready)."""
    if not inv.lab["accuracy"]:
        return artifacts
    limit = inv.lab["eval_limit"] or None
    staged = []
    for a in artifacts:
        npz = stage.eval_data(a.dataset, data_path, limit)
        ref, _ = deploy_mod.host_reference(a.path, npz, say)
        staged.append(Artifact(**{**asdict(a), "eval_npz": npz, "reference_top1": ref}))
    return staged


# --------------------------------------------------------------------------- metrics


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flatten_metrics(res: DeployResult) -> dict[str, float]:
    """Every numeric figure of a deploy, flat (`latency_p90`, `phase_load_ms`, …)."""
    run = res.run
    out: dict[str, float] = {}
    for kind, prefix in (("invoke", "latency"), ("end_to_end", "e2e_latency")):
        stats = (run.get("latency_ms") or {}).get(kind) or {}
        for k in STAT_KEYS:
            if _num(stats.get(k)):
                out[f"{prefix}_{k}"] = float(stats[k])
    for phase, v in (run.get("phases_ms") or {}).items():
        if _num(v):
            out[f"phase_{phase}_ms"] = float(v)
    acc = run.get("accuracy")
    if acc:
        out["accuracy"] = float(acc["top1"])
        out["accuracy_samples"] = float(acc["samples"])
    out["model_bytes"] = float(run["model"]["bytes"])
    rss = (run.get("memory") or {}).get("peak_rss_kb")
    if _num(rss):
        out["peak_rss_kb"] = float(rss)
    for c in res.verdict.checks if res.verdict else ():
        if c.metric == "accuracy_drop" and _num(c.measured):
            out["accuracy_drop_pp"] = float(c.measured)
    out["bytes_sent"] = float(res.bytes_sent)
    for k in ("total_s", "runner_process_s", "orchestration_s"):
        if _num(res.timing.get(k)):
            out[f"deploy_{k}"] = float(res.timing[k])
    return out


def budget_checks(res: DeployResult) -> list[dict[str, Any]]:
    rows = []
    for c in res.verdict.checks if res.verdict else ():
        if c.measured is None:
            text = f"{c.metric}: {c.note or 'not measured'}"
        else:
            unit = f" {c.unit}" if c.unit else ""
            text = f"{c.metric} {c.measured:.4g}{unit} (limit {c.op} {c.limit:g}{unit})"
            if c.note:
                text += f"; {c.note}"
        rows.append(
            {
                "name": f"budget:{c.metric}",
                "kind": "budget",
                "passed": c.passed,
                "measured": c.measured,
                "limit": c.limit,
                "op": c.op,
                "unit": c.unit,
                "message": text,
            }
        )
    return rows


# --------------------------------------------------------------------------- the lab


def judge_and_record(history: History, rec: ResultRecord, policy: regress.Policy) -> ResultRecord:
    """Add the regression checks (vs the history) to a measured result, settle its status,
    find its streaks and recoveries, then write it in one transaction."""
    if rec.status in ("pass", "fail"):
        rec.checks += regress.evaluate(history, rec.device, rec.model, rec.metrics, policy)
        failing = [c for c in rec.checks if c.get("passed") is False]
        rec.status = "fail" if failing else "pass"
        rec.reason = "; ".join(c["message"] for c in failing)
    rec.findings, rec.since_utc, rec.last_pass_run_id = regress.annotate(
        history, rec.device, rec.model, rec.run_id, rec.started_utc, rec.status, rec.checks
    )
    rec.finished_utc = rec.finished_utc or utc_now()
    rec.result_id = history.record(asdict(rec))
    return rec


class _Lab:
    """State shared by the workers of one run (history writes are serialized by History)."""

    def __init__(
        self,
        inv: Inventory,
        history: History,
        run_id: str,
        artifacts: list[Artifact],
        data_path: Path | None,
        on_event: OnEvent | None,
    ) -> None:
        self.inv = inv
        self.history = history
        self.run_id = run_id
        self.artifacts = artifacts
        self.data_path = data_path
        self._on_event = on_event
        self._event_lock = threading.Lock()
        self.stop = threading.Event()

    def event(self, device: str, phase: str, message: str = "", **kw: Any) -> None:
        if self._on_event:
            with self._event_lock:
                self._on_event(Event(device, phase, message, **kw))

    def lock(self, dev: Device) -> DeviceLock:
        return DeviceLock(
            dev.identity,
            self.inv.lock_dir,
            float(self.inv.lab["lock_timeout_s"]),
            owner={"run_id": self.run_id, "device": dev.name},
        )

    def backoff(self, attempt: int) -> float:
        return float(self.inv.lab["backoff_s"]) * (2 ** (attempt - 1))

    def models_for(self, dev: Device) -> list[Artifact]:
        return [a for a in self.artifacts if not dev.modes or a.mode in dev.modes]

    def base_record(self, dev: Device, art: Artifact, status: str) -> ResultRecord:
        return ResultRecord(
            run_id=self.run_id,
            device=dev.name,
            transport=dev.transport,
            address=dev.address,
            identity=dev.identity,
            model=art.name,
            status=status,
            tags=list(dev.tags),
            features=list(dev.features),
            artifact_path=str(art.path),
            artifact_sha256=art.sha256,
            mode=art.mode,
            started_utc=utc_now(),
        )

    def localize(self, dev: Device, message: str) -> str:
        """Transport messages name edgeq.toml's [targets.NAME]; here the entry is a device."""
        return message.replace(
            f"[targets.{dev.name}]", f"[devices.{dev.name}] of {self.inv.path.name}"
        )

    def write(self, rec: ResultRecord) -> ResultRecord:
        dev = self.inv.devices[rec.device]
        policy = regress.Policy.from_dict(self.inv.regression_for(dev))
        return judge_and_record(self.history, rec, policy)

    # ------------------------------------------------------------------ health

    def health(self, dev: Device) -> DeviceOutcome:
        """`doctor` under the device's lock; transient connection failures are retried."""
        out = DeviceOutcome(dev.name, dev.transport, dev.address, dev.identity, "pass")
        t0 = time.monotonic()
        self.event(dev.name, "health", "checking")
        try:
            tcfg = dev.resolved_target()
            attempt = 0
            while True:
                attempt += 1
                out.health_attempts = attempt
                with self.lock(dev).acquire(lambda m: self.event(dev.name, "waiting", m)) as lk:
                    out.lock_wait_s += lk.waited_s
                    self.event(dev.name, "health", "doctor")
                    rep = doctor_mod.diagnose(tcfg)
                out.health = rep.to_dict()
                failed = [c for c in rep.checks if c.status == "fail"]
                out.status = "quarantined" if failed else "pass"
                out.reason = self.localize(
                    dev,
                    "; ".join(
                        f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
                        for c in failed
                    ),
                )
                retry = (
                    failed
                    and failed[0].name == "reachable"
                    and attempt <= dev.retries
                    and self._transient_connect(tcfg)
                )
                if not retry:
                    break
                wait = self.backoff(attempt)
                self.event(dev.name, "retry", f"unreachable; retry {attempt} in {wait:g} s")
                time.sleep(wait)
        except EdgeqError as exc:
            out.status, out.reason = "quarantined", self.localize(dev, exc.message)
        except Exception as exc:  # a bug must not stop the other devices
            out.status = "quarantined"
            out.reason = f"internal error in the health check: {type(exc).__name__}: {exc}"
        out.health_s = time.monotonic() - t0
        if out.status == "quarantined":
            self.event(dev.name, "quarantined", out.reason, status="quarantined")
        return out

    @staticmethod
    def _transient_connect(tcfg: Any) -> bool:
        """Was the doctor's 'unreachable' a transient ConnectError (worth a retry)?"""
        try:
            with make_target(tcfg):
                return True  # reachable again: flaky, retry the doctor
        except EdgeqError as exc:
            return is_transient(exc)

    def quarantine(self, dev: Device, outcome: DeviceOutcome) -> None:
        env = (outcome.health or {}).get("environment")
        for art in self.models_for(dev):
            rec = self.base_record(dev, art, "quarantined")
            rec.reason = outcome.reason
            rec.environment = env
            rec.error_type = "Quarantined"
            rec.error_text = outcome.reason
            rec.checks = [
                {"name": "health", "kind": "health", "passed": False, "message": outcome.reason}
            ]
            outcome.results.append(self.write(rec))

    # ------------------------------------------------------------------ benchmark

    def device_job(self, dev: Device, outcome: DeviceOutcome) -> DeviceOutcome:
        arts = self.models_for(dev)
        if not arts:
            outcome.status = "skipped"
            outcome.reason = f"no model of mode {', '.join(dev.modes)} in this run"
            self.event(dev.name, "done", outcome.reason, status="skipped")
            return outcome
        lock = self.lock(dev)
        try:
            lock.acquire(lambda m: self.event(dev.name, "waiting", m, total=len(arts)))
        except EdgeqError as exc:
            for art in arts:
                outcome.results.append(self.write(self.error_record(dev, art, exc, 0)))
            return self.conclude(outcome)
        try:
            deadline = time.monotonic() + dev.timeout_s
            for i, art in enumerate(arts):
                if self.stop.is_set():
                    break
                self.event(dev.name, "running", art.name, done=i, total=len(arts))
                rec = self.run_one(dev, art, deadline, outcome)
                rec.metrics["lock_wait_s"] = lock.waited_s if i == 0 else 0.0
                rec.metrics["health_lock_wait_s"] = outcome.lock_wait_s if i == 0 else 0.0
                outcome.results.append(self.write(rec))
                self.event(
                    dev.name, "running", f"{art.name}: {rec.status}", done=i + 1, total=len(arts)
                )
        finally:
            lock.release()
        return self.conclude(outcome)

    def conclude(self, outcome: DeviceOutcome) -> DeviceOutcome:
        statuses = {r.status for r in outcome.results}
        outcome.status = next(
            (s for s in ("error", "fail") if s in statuses), "pass" if statuses else "skipped"
        )
        bad = [r for r in outcome.results if not r.passed]
        outcome.reason = "; ".join(f"{r.model}: {r.reason}" for r in bad)
        self.event(outcome.name, "done", outcome.reason, status=outcome.status)
        return outcome

    def error_record(
        self,
        dev: Device,
        art: Artifact,
        exc: BaseException,
        attempts: int,
        earlier: list[BaseException] | None = None,
    ) -> ResultRecord:
        """An error row: the last error as the reason, every attempt's error in the text."""
        rec = self.base_record(dev, art, "error")
        msg = self.localize(dev, _describe(exc))
        if attempts > 1:
            msg += f" (after {attempts} attempts)"
        rec.reason = msg
        rec.attempts = attempts
        rec.error_type = type(exc).__name__
        tried = [*(earlier or []), exc]
        lines = [
            f"attempt {i}: {type(e).__name__}: {self.localize(dev, _describe(e))}"
            for i, e in enumerate(tried, 1)
        ]
        if not isinstance(exc, EdgeqError):
            lines.append("".join(traceback.format_exception(exc)))
        elif exc.to_dict().get("stderr_tail"):
            lines.append(f"device stderr: {exc.to_dict()['stderr_tail']}")
        rec.error_text = "\n".join(lines)
        rec.checks = [{"name": "run", "kind": "run", "passed": False, "message": msg}]
        return rec

    def run_one(
        self, dev: Device, art: Artifact, deadline: float, outcome: DeviceOutcome
    ) -> ResultRecord:
        """Deploy one model (with retries on transient errors) and judge it against the budget."""
        started = utc_now()
        bench_start = time.time()
        errors: list[BaseException] = []
        inv = self.inv
        res = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining < 1:
                errors.append(_timeout_error(dev, art))
                break
            try:
                tcfg = dev.resolved_target()
                settings = deploy_mod.RunSettings(
                    **inv.run_for(dev),
                    eval_limit=inv.lab["eval_limit"] or None,
                    timeout=remaining,
                ).validate()
                res = deploy_mod.deploy(
                    tcfg,
                    art.path,
                    art.dataset,
                    self.data_path,
                    inv.budget_for(dev),
                    settings,
                    keep=False,
                    results_dir=None,
                    progress=lambda m: self.event(dev.name, "running", f"{art.name}: {m}"),
                    with_data=bool(inv.lab["accuracy"]),
                )
                break
            except Exception as e:  # recorded: one device never stops the lab
                errors.append(e)
                wait = self.backoff(len(errors))
                if (
                    is_transient(e)
                    and not self.stop.is_set()
                    and len(errors) <= dev.retries
                    and time.monotonic() + wait < deadline - 1
                ):
                    self.event(
                        dev.name,
                        "retry",
                        f"{art.name}: {type(e).__name__}; retry {len(errors)} in {wait:g} s",
                    )
                    time.sleep(wait)
                    continue
                break
        bench_end = time.time()
        attempts = len(errors) + (res is not None)
        if res is None:
            rec = self.error_record(dev, art, errors[-1], attempts, errors[:-1])
        else:
            rec = self.base_record(dev, art, "pass" if res.verdict.passed else "fail")
            rec.attempts = attempts
            rec.environment = res.run.get("environment")
            rec.metrics = flatten_metrics(res)
            rec.result = res.to_dict()
            rec.checks = [
                {
                    "name": "health",
                    "kind": "health",
                    "passed": True,
                    "message": f"doctor ok ({outcome.health_s:.1f} s)",
                },
                {
                    "name": "run",
                    "kind": "run",
                    "passed": True,
                    "message": f"ran ({attempts} attempt{'s' if attempts > 1 else ''})",
                },
                *budget_checks(res),
            ]
        rec.started_utc = started
        rec.bench_start, rec.bench_end = bench_start, bench_end
        return rec


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EdgeqError):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"


def _timeout_error(dev: Device, art: Artifact) -> EdgeqError:
    return CommandTimeout(
        f"{dev.name}: the per-device time budget (timeout_s = {dev.timeout_s:g} s) ran out "
        f"before {art.name}; raise timeout_s for [devices.{dev.name}] or lighten [run]"
    )


def run_lab(
    inv: Inventory,
    models: list[Path] | None = None,
    data_path: Path | None = None,
    only: str | None = None,
    parallel: int | None = None,
    db: Path | None = None,
    on_event: OnEvent | None = None,
    say: Callable[[str], None] | None = None,
    command: str = "",
) -> LabRun:
    """Run the lab once: health check, quarantine, fan-out, history. Never raises for a
    device's failure (it is recorded); raises EdgeqError only for bad input (exit 2)."""
    t0 = time.monotonic()
    devices = inv.select(only)
    if not devices:
        known = sorted({x for d in inv.devices.values() for x in (d.name, *d.tags, *d.features)})
        raise UsageError(
            f"--only {only!r} selects no enabled device in {inv.path}; names, tags and "
            f"features there: {', '.join(known) or '(none)'}"
        )
    workers = parallel or inv.lab["parallel"]
    if workers < 1:
        raise UsageError("--parallel must be >= 1")
    data_path = data_path or inv.data_path
    artifacts = stage_models(inv, resolve_models(inv, models, data_path, say), data_path, say)
    history = History(db or inv.db_path)
    run_id = new_run_id()
    started = utc_now()
    settings = {
        "only": only,
        "parallel": workers,
        "models": [a.name for a in artifacts],
        "devices": [d.name for d in devices],
        "run": inv.run,
        "budget": inv.budget,
        "regression": inv.regression,
        "python": sys.version.split()[0],
        "pid": os.getpid(),
    }
    history.start_run(run_id, started, str(inv.path), inv.sha256, command, settings, provenance())
    lab = _Lab(inv, history, run_id, artifacts, data_path, on_event)
    for d in devices:
        lab.event(d.name, "queued", "", total=len(lab.models_for(d)))
    status = "interrupted"
    try:
        pool = ThreadPoolExecutor(max_workers=min(workers, len(devices)))
        try:
            checked = list(pool.map(lab.health, devices))
            healthy = []
            for dev, out in zip(devices, checked, strict=True):
                if out.status == "quarantined":
                    lab.quarantine(dev, out)
                else:
                    healthy.append((dev, out))
            list(pool.map(lambda pair: lab.device_job(*pair), healthy))
        except BaseException:
            # Ctrl-C: no new benchmark starts; running ones end by their own timeouts.
            lab.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        outcomes = checked  # the jobs completed the outcomes in place
        results = [r for o in outcomes for r in o.results]
        run = LabRun(
            run_id,
            started,
            utc_now(),
            str(inv.path),
            str(history.path),
            artifacts,
            outcomes,
            results,
            time.monotonic() - t0,
        )
        status = "pass" if run.ok else "fail"
        history.finish_run(run_id, status, run.exit_code)
        return run
    finally:
        if status == "interrupted":
            try:
                history.finish_run(run_id, "interrupted", None)
            except Exception:
                pass
        history.close()


__all__ = [
    "Artifact",
    "DeviceOutcome",
    "Event",
    "LabRun",
    "ResultRecord",
    "is_transient",
    "judge_and_record",
    "resolve_models",
    "run_lab",
]
