"""Result documents: what a device run returns, validated before it is trusted, and the
deploy record edgeq saves under results/.

Two schemas, both versioned:
    edgeq.run/1     one run on the device (written by the device runner or built from
                    benchmark_model's output), documented in device_scripts/README.md
    edgeq.deploy/1  a deploy: target, artifact, the run, transfer, timing, verdict
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, fsutil, textsafe
from .errors import RunnerError

RUN_SCHEMA = "edgeq.run/1"
DEPLOY_SCHEMA = "edgeq.deploy/1"
STAT_KEYS = ("count", "min", "p5", "p50", "p90", "p95", "p99", "max", "mean", "std")
#: The runner's steadiest stretch (runner ≥ 1.5; `edgeq_runner.steady_stats`): what a
#: regression test compares, kept with the other statistics of the invoke latency.
STEADY_KEYS = ("steady_p50", "steady_p90", "steady_window")
PHASES = ("load", "allocate", "first_inference", "warmup", "steady_state")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_steady(stats: dict[str, Any], kind: str, bad: Any) -> None:
    """The steadiest stretch is one window of the run's own samples: its p50 cannot be below
    the run's fastest invoke nor above the run's p50 (the lowest window median is at most
    the median of all), and its p90 not below its p50. A device that says otherwise would
    hide a regression from the lab, which judges latency on it."""
    low, high = stats.get("steady_p50"), stats.get("steady_p90")
    if low is None:
        return
    lo = stats.get("min") if _num(stats.get("min")) else 0.0
    hi = stats.get("p50") if _num(stats.get("p50")) else math.inf
    slack = 1e-9 + 1e-6 * abs(hi if math.isfinite(hi) else low)
    if not lo - slack <= low <= hi + slack:
        raise bad(f"latency_ms.{kind}.steady_p50", "between the run's min and its p50")
    if high is not None and high < low - slack:
        raise bad(f"latency_ms.{kind}.steady_p90", "at least steady_p50")


def validate_run(doc: Any, origin: str = "device") -> dict[str, Any]:
    """Check a run document's structure and types; RunnerError (exit 3) names the bad key."""

    def bad(key: str, want: str) -> RunnerError:
        return RunnerError(f"{origin}: invalid result: {key} must be {want}")

    if not isinstance(doc, dict):
        raise bad("the document", "a JSON object")
    if doc.get("schema") != RUN_SCHEMA:
        raise bad("schema", f"{RUN_SCHEMA!r} (got {doc.get('schema')!r})")
    if doc.get("ok") is not True:
        raise bad("ok", "true for a successful run")
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        raise bad("model.sha256", "a string")
    if not _num(model.get("bytes")):
        raise bad("model.bytes", "a number")
    lat = doc.get("latency_ms")
    if not isinstance(lat, dict) or not isinstance(lat.get("invoke"), dict):
        raise bad("latency_ms.invoke", "an object")
    for kind, stats in lat.items():
        if stats is None:
            continue
        if not isinstance(stats, dict) or not _num(stats.get("count")) or stats["count"] < 1:
            raise bad(f"latency_ms.{kind}.count", "a positive number")
        for k in STAT_KEYS + STEADY_KEYS:
            if k in stats and stats[k] is not None and not _num(stats[k]):
                raise bad(f"latency_ms.{kind}.{k}", "a finite number or absent")
        _check_steady(stats, kind, bad)
    phases = doc.get("phases_ms")
    if not isinstance(phases, dict):
        raise bad("phases_ms", "an object")
    for k, v in phases.items():
        if v is not None and not _num(v):
            raise bad(f"phases_ms.{k}", "a number or null")
    acc = doc.get("accuracy")
    if acc is not None:
        if not isinstance(acc, dict):
            raise bad("accuracy", "an object or null")
        for k in ("samples", "correct", "top1"):
            if not _num(acc.get(k)):
                raise bad(f"accuracy.{k}", "a number")
        if not 0 <= acc["top1"] <= 1 or acc["correct"] > acc["samples"]:
            raise bad("accuracy.top1", "within 0..1 and consistent with correct/samples")
    env = doc.get("environment")
    if not isinstance(env, dict) or not isinstance(env.get("machine"), str):
        raise bad("environment.machine", "a string")
    clean = textsafe.deep(doc)  # what the device wrote is shown to people: no escapes
    doc.clear()
    doc.update(clean)
    why = inconsistency(doc)
    if why:
        raise RunnerError(
            f"{origin}: the device's result is inconsistent: {why}; it is not trusted (no "
            f"verdict, never a baseline) — check the device's clock and runner",
            details={"inconsistent": why},
        )
    return doc


#: The order latency statistics must keep (those present).
ORDER = ("min", "p5", "p50", "p90", "p95", "p99", "max")


def _close_le(a: float, b: float) -> bool:
    """a <= b, forgiving the last bits of floating-point rounding."""
    return a <= b + 1e-9 * max(1.0, abs(a), abs(b))


def inconsistency(doc: dict[str, Any]) -> str | None:
    """What in a (type-checked) run document cannot be true, or None: latencies negative,
    statistics out of order, a mean outside [min, max], a spread larger than the range,
    fewer measurements than samples shown, samples outside [min, max]."""
    for kind, stats in (doc.get("latency_ms") or {}).items():
        if not isinstance(stats, dict):
            continue
        where = f"latency_ms.{kind}"
        got = {k: stats[k] for k in (*ORDER, "mean", "std") if _num(stats.get(k))}
        for k, v in got.items():
            if v < 0:
                return f"{where}.{k} = {v:g} ms is negative"
        seq = [(k, got[k]) for k in ORDER if k in got]
        for (ka, a), (kb, b) in itertools.pairwise(seq):
            if not _close_le(a, b):
                return f"{where}.{ka} = {a:g} ms exceeds {kb} = {b:g} ms"
        lo, hi = got.get("min"), got.get("max")
        mean = got.get("mean")
        bounded = lo is not None and hi is not None
        if mean is not None and bounded and not (_close_le(lo, mean) and _close_le(mean, hi)):
            return f"{where}.mean = {mean:g} ms is outside [min, max] = [{lo:g}, {hi:g}]"
        std = got.get("std")
        if std is not None and bounded and not _close_le(std, hi - lo):
            return f"{where}.std = {std:g} ms exceeds the range max - min = {hi - lo:g} ms"
        if stats.get("count") == 1 and lo is not None and hi is not None and lo != hi:
            return f"{where}: one measurement, but min {lo:g} != max {hi:g}"
    samples = doc.get("latency_samples_ms")
    if isinstance(samples, dict) and isinstance(samples.get("invoke"), list):
        values = samples["invoke"]
        stats = (doc.get("latency_ms") or {}).get("invoke") or {}
        if any(not _num(v) for v in values):
            return "latency_samples_ms.invoke holds a value that is not a finite number"
        count = stats.get("count")
        if _num(count) and count < len(values):
            return f"latency_ms.invoke.count = {count:g} is below the {len(values)} samples sent"
        lo, hi = stats.get("min"), stats.get("max")
        inside = not values or not (_num(lo) and _num(hi))
        if not inside and not (_close_le(lo, min(values)) and _close_le(max(values), hi)):
            return (
                f"latency_samples_ms.invoke spans [{min(values):g}, {max(values):g}] ms, "
                f"outside [min, max] = [{lo:g}, {hi:g}]"
            )
    for k, v in (doc.get("phases_ms") or {}).items():
        if v is not None and v < 0:
            return f"phases_ms.{k} = {v:g} ms is negative"
    return None


#: The longest name part of a result file (a target name can be any length).
STEM_MAX = 80


def file_stem(name: str, limit: int = STEM_MAX) -> str:
    """A file-name part from a user's or device's name: only `[A-Za-z0-9._-]`, at most
    `limit` characters; a longer name keeps its start and gets a hash of the whole, so it
    stays stable and unique."""
    import hashlib

    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    safe = safe.lstrip(".") or "_"
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


#: The top-level keys of an edgeq.run/1 document (device_scripts/README.md), including
#: those the host adds; a device's answer keeps only these.
RUN_KEYS = frozenset(
    [
        "schema",
        "ok",
        "runner",
        "started_utc",
        "finished_utc",
        "model",
        "settings",
        "benchmark_inputs",
        "phases_ms",
        "warmup",
        "latency_ms",
        "latency_samples_ms",
        "sampling",
        "contention",
        "accuracy",
        "accuracy_note",
        "accuracy_source",
        "agreement",
        "memory",
        "environment",
        "error",
        "benchmark_model",
        "delegates",
        "op_profile",
        "validity",
        "cooldown",
        "governor_pin",
        "repeat",
        "run",
        "threads_sweep",
        "dropped_keys",
    ]
)


def parse_run(text: str, origin: str = "device") -> dict[str, Any]:
    """JSON text from the device → a validated run document (keys the schema does not
    know are dropped and named in `dropped_keys`)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        snippet = text.strip()[-80:]
        raise RunnerError(
            f"{origin}: the runner's answer is not valid JSON ({exc.msg} at char {exc.pos}; "
            f"truncated?) — ends with {snippet!r}"
        ) from None
    if isinstance(doc, dict) and doc.get("ok") is False and isinstance(doc.get("error"), dict):
        err = doc["error"]
        hint = f"; {err['hint']}" if err.get("hint") else ""
        raise RunnerError(f"{origin}: runner failed: {err.get('message')}{hint}")
    if isinstance(doc, dict):
        unknown = sorted(k for k in doc if k not in RUN_KEYS)
        for k in unknown:
            del doc[k]
        if unknown:
            doc["dropped_keys"] = [textsafe.one_line(k)[:80] for k in unknown[:20]]
    return validate_run(doc, origin)


@dataclass(frozen=True)
class Check:
    """One budget check: measured vs limit, and where the figure came from."""

    metric: str
    measured: float | None
    limit: float | None  # None: no limit in the budget (not judged)
    op: str  # "<=" or ">="
    passed: bool | None  # None: not judged (see note)
    unit: str = ""
    source: str = ""
    note: str = ""
    #: latency checks: the statistic judged (the budget's percentile, or the nearest
    #: higher one the runner reports)
    judged_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(tuple(Check(**c) for c in d["checks"]))


@dataclass(frozen=True)
class DeployResult:
    """Everything a deploy learned; saved as results/<utc>_<target>.json."""

    target: dict[str, Any]
    artifact: dict[str, Any]
    run: dict[str, Any]
    verdict: Verdict | None
    transfer: dict[str, Any]
    timing: dict[str, Any]
    host: dict[str, Any] = field(default_factory=dict)
    started_utc: str = ""
    finished_utc: str = ""
    schema: str = DEPLOY_SCHEMA
    edgeq_version: str = __version__

    @property
    def bytes_sent(self) -> int:
        return int(self.transfer.get("bytes_sent", 0))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.to_dict() if self.verdict else None
        d["bytes_sent"] = self.bytes_sent
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeployResult:
        if d.get("schema") != DEPLOY_SCHEMA:
            raise RunnerError(f"not an edgeq deploy result (schema {d.get('schema')!r})")
        validate_run(d["run"], "saved result")
        return cls(
            target=d["target"],
            artifact=d["artifact"],
            run=d["run"],
            verdict=Verdict.from_dict(d["verdict"]) if d.get("verdict") else None,
            transfer=d["transfer"],
            timing=d["timing"],
            host=d.get("host", {}),
            started_utc=d.get("started_utc", ""),
            finished_utc=d.get("finished_utc", ""),
            edgeq_version=d.get("edgeq_version", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> DeployResult:
        return cls.from_dict(json.loads(text))

    def save(self, folder: Path) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        safe = file_stem(self.target["name"])
        path = Path(folder) / f"{stamp}_{safe}.json"
        n = 1
        while path.exists():
            n += 1
            path = Path(folder) / f"{stamp}-{n}_{safe}.json"
        fsutil.write_text(path, self.to_json() + "\n")
        return path
