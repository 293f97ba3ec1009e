"""`edgeq compare A B`: did B get slower, less accurate or bigger than A — really?

A and B are two deploy result files (`results/*.json`, schema edgeq.deploy/1) or two run
ids of a lab history (then every device × model the two runs share is compared). For each
pair it reports the change in p50, p90, accuracy and size, and what changed between them
(model, runtime and version, runner, edgeq version, device OS/kernel, governor, settings:
`edgeq.changes`). Latency changes are tested where the test covers what varies:

  * the unit of the test is the run (a fresh process), not the sample: on a busy or
    frequency-scaling machine a fresh process lands in one of several modes, so the samples
    of one process say nothing about the next one. With repetitions (`--repeat N`, N ≥ 3) on
    both sides, the per-repetition p50s (p90s) of A against B's (Welch's t-test on the logs,
    `stats.runs_difference`); with repetitions on one side only, B's one run against A's
    spread (a prediction interval), or the other way round;
  * with one run per side the samples of each are still compared (a bootstrap of the
    medians, kept as `within_run`), but that covers only the variation inside one process:
    no significance is claimed and the conclusion says so;
  * else (e.g. benchmark_model, which prints no samples): the change, untested.

On a shared host the machine's own speed changes for tenths of a second to seconds at a
time, so a whole run's p50 lands in one mode or another (on this project's 2-core host, 0.27
or 0.315 ms for the same model). Runner 1.5 also reports each run's steadiest stretch (the
p50/p90 of its window of consecutive invokes with the lowest p50, `steady_p50`/`steady_p90`);
when both sides have it and it can be tested, the conclusion and `--max-slowdown` go by it
(`judged_on` in the JSON), and the table shows both.

Two different models (their sha256 differ) are said to be different first: their latency
difference is a comparison of two models, not a slowdown, and is never tested or failed.
It ends with one line, e.g. "B is 7.1 % slower at p50 (significant at 95 %)" or "no
significant change". With `max_slowdown_pct`, a pair whose slowdown is above it — and
significant, when it could be tested — fails (exit 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .changes import describe, diff_facts, facts
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .lab.history import History
from .stats import Difference, quantile_difference, runs_difference

METRICS = ("p50", "p90")
#: The runner's steadiest stretch of each run (runner ≥ 1.5, `results.STEADY_KEYS`): what the
#: test of a headline percentile uses when both sides have it.
STEADY = {"p50": "steady_p50", "p90": "steady_p90"}
#: Repetitions a side needs for its runs to stand as a sample of processes.
MIN_REPEATS = 3


@dataclass
class Side:
    """One measured device × model: its figures and what a test can use."""

    label: str
    device: str
    model: str
    key: str
    runner: str
    p50: float | None
    p90: float | None
    accuracy: float | None
    bytes: int | None
    samples: list[float] | None = None
    reps: dict[str, list[float]] | None = None
    #: the steadiest stretch's figures (`steady_p50`, `steady_p90`), one run or the
    #: repetitions' median
    steady: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    validity: str | None = None


def side_from_run(
    label: str,
    device: str,
    model: str,
    key: str,
    run: dict[str, Any],
    result: dict[str, Any] | None = None,
) -> Side:
    lat = (run.get("latency_ms") or {}).get("invoke") or {}
    samples = (run.get("latency_samples_ms") or {}).get("invoke")
    rep = run.get("repeat") or {}
    reps = None
    keys = (*METRICS, *STEADY.values())
    if rep.get("runs"):
        reps = {m: [r[m] for r in rep["runs"] if r.get(m) is not None] for m in keys}
    steady = {
        k: v
        for k in STEADY.values()
        if (v := (rep.get(k) or {}).get("median") if rep else lat.get(k)) is not None
    }
    acc = run.get("accuracy") or {}
    return Side(
        label=label,
        device=device,
        model=model,
        key=key,
        runner=(run.get("runner") or {}).get("name", "?"),
        p50=rep.get("p50", {}).get("median") if rep else lat.get("p50"),
        p90=rep.get("p90", {}).get("median") if rep else lat.get("p90"),
        accuracy=acc.get("top1"),
        bytes=(run.get("model") or {}).get("bytes"),
        samples=list(samples) if samples else None,
        reps=reps,
        steady=steady,
        facts=facts(result if result is not None else run),
        validity=(run.get("validity") or {}).get("verdict"),
    )


def load(spec: str, db: Path | None) -> dict[tuple[str, str], Side]:
    """The sides of a result file, or of a history run id (needs `db`)."""
    path = Path(spec)
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a readable edgeq result ({exc})") from None
        if doc.get("schema") != "edgeq.deploy/1" or not isinstance(doc.get("run"), dict):
            raise UsageError(
                f"{path}: not an edgeq deploy result (schema edgeq.deploy/1); give a file from "
                f"results/ or a lab run id"
            )
        art, tgt = doc.get("artifact") or {}, doc.get("target") or {}
        model = Path(str(art.get("path") or "model")).name
        side = side_from_run(
            str(path), tgt.get("name", "?"), model, art.get("sha256", ""), doc["run"], doc
        )
        return {(side.device, side.key): side}
    if db is None or not Path(db).is_file():
        raise UsageError(
            f"{spec!r} is neither a result file nor, without a lab history (--db or "
            f"--inventory), a run id"
        )

    with History(Path(db)) as h:
        rows = h.results(run_id=spec, full=True)
        if not rows:
            recent = ", ".join(r["run_id"] for r in h.runs(limit=5)) or "none"
            raise UsageError(f"{db}: no results for run {spec!r}; recent runs: {recent}")
    out = {}
    for r in rows:
        run = (r.get("result") or {}).get("run")
        if not run:
            continue  # quarantined, busy or error: nothing was measured
        key = r.get("artifact_sha256") or r["model"]
        out[(r["device"], key)] = side_from_run(
            spec, r["device"], r["model"], key, run, r.get("result")
        )
    return out


@dataclass
class Change:
    metric: str
    a: float | None
    b: float | None
    test: Difference | None = None
    note: str = ""
    #: the bootstrap of one process's samples against the other's: variation inside a
    #: process only, never a significance claim
    within_run: Difference | None = None

    @property
    def relative(self) -> float | None:
        if self.a in (None, 0) or self.b is None:
            return None
        return (self.b - self.a) / self.a

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "a": self.a,
            "b": self.b,
            "relative": self.relative,
            "test": self.test.to_dict() if self.test else None,
            "within_run": self.within_run.to_dict() if self.within_run else None,
            "note": self.note,
        }


@dataclass
class PairResult:
    a: Side
    b: Side
    changes: dict[str, Change] = field(default_factory=dict)
    headline: str = "p50"
    max_slowdown_pct: float | None = None
    changed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def different_models(self) -> bool:
        return any(c["field"] == "model_sha256" for c in self.changed)

    @property
    def judged(self) -> str:
        """The row the conclusion and `--max-slowdown` go by: the headline percentile in each
        run's steadiest stretch when both sides have it and it could be tested (the whole
        run's figure moves with the host's speed), else the headline itself."""
        steady = self.changes.get(STEADY.get(self.headline, ""))
        if steady is not None and steady.relative is not None and steady.test is not None:
            return steady.metric
        return self.headline

    @property
    def slowdown_exceeded(self) -> bool:
        c = self.changes[self.judged]
        if self.max_slowdown_pct is None or c.relative is None or self.different_models:
            return False
        over = c.relative * 100 > self.max_slowdown_pct
        return over and (c.test is None or c.test.significant)

    def what_changed(self) -> str:
        return describe(self.changed)

    def conclusion(self) -> str:
        c = self.changes[self.headline]
        at = self.headline
        if self.judged != self.headline and not self.different_models:
            c = self.changes[self.judged]
            at = f"{self.headline} (each run's steadiest stretch)"
        if self.different_models:
            sha = next(x for x in self.changed if x["field"] == "model_sha256")
            head = (
                f"A and B are different models ({str(sha['a'])[:12]} vs {str(sha['b'])[:12]}): "
                f"not a slowdown of one model"
            )
            if c.relative is None:
                return head
            way = "higher" if c.relative > 0 else "lower"
            return f"{head}; B's {self.headline} is {abs(c.relative) * 100:.1f} % {way} (untested)"
        if c.relative is None:
            return f"{self.headline} not comparable (missing on one side)"
        pct = abs(c.relative) * 100
        way = "slower" if c.relative > 0 else "faster"
        if c.test is None:
            return f"B is {pct:.1f} % {way} at {at} (not tested: {c.note})"
        level = f"{c.test.level:.0%}"
        if c.test.significant:
            return f"B is {pct:.1f} % {way} at {at} (significant at {level})"
        p = c.test.p_value
        return f"no significant change at {at} ({pct:.1f} % {way}, p = {p:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.b.device,
            "model": self.b.model,
            "a": {
                "source": self.a.label,
                "runner": self.a.runner,
                "model": self.a.model,
                "validity": self.a.validity,
            },
            "b": {
                "source": self.b.label,
                "runner": self.b.runner,
                "model": self.b.model,
                "validity": self.b.validity,
            },
            "different_models": self.different_models,
            "what_changed": self.changed,
            "what_changed_text": self.what_changed(),
            "changes": {k: v.to_dict() for k, v in self.changes.items()},
            "conclusion": self.conclusion(),
            "judged_on": self.judged,
            "slowdown_exceeded": self.slowdown_exceeded,
        }


def compare_sides(
    a: Side, b: Side, headline: str = "p50", max_slowdown_pct: float | None = None
) -> PairResult:
    res = PairResult(a, b, headline=headline, max_slowdown_pct=max_slowdown_pct)
    res.changed = diff_facts(a.facts, b.facts)
    rows = [("p50", 0.5), ("p90", 0.9)]
    rows += [(STEADY[m], None) for m in METRICS if STEADY[m] in a.steady and STEADY[m] in b.steady]
    for m, q in rows:
        ch = Change(m, _figure(a, m), _figure(b, m))
        if res.different_models:
            ch.note = "different models: not tested"
            res.changes[m] = ch
            continue
        runs_a = _runs(a, m)
        runs_b = _runs(b, m)
        if len(runs_a) >= MIN_REPEATS or len(runs_b) >= MIN_REPEATS:
            ch.test = runs_difference(runs_a, runs_b)
            ch.note = (
                f"{len(runs_a)} vs {len(runs_b)} runs (a fresh process each)"
                if ch.test is not None
                else "the runs show no spread to judge the change against"
            )
        else:
            ch.note = (
                f"one run per side: process-to-process variation is not covered (repeat "
                f"with --repeat {MIN_REPEATS} on both sides to test it)"
            )
            if q and a.samples and b.samples and len(a.samples) >= 5 and len(b.samples) >= 5:
                ch.within_run = quantile_difference(a.samples, b.samples, q)
        res.changes[m] = ch
    res.changes["accuracy"] = Change("accuracy", a.accuracy, b.accuracy)
    res.changes["size"] = Change(
        "size",
        None if a.bytes is None else float(a.bytes),
        None if b.bytes is None else float(b.bytes),
    )
    return res


def _figure(side: Side, metric: str) -> float | None:
    return side.steady.get(metric) if metric.startswith("steady_") else getattr(side, metric)


def _runs(side: Side, metric: str) -> list[float]:
    """The side's per-run figures: one per repetition, else its one run's."""
    if side.reps and side.reps.get(metric):
        return list(side.reps[metric])
    value = _figure(side, metric)
    return [] if value is None else [value]


@dataclass
class Comparison:
    pairs: list[PairResult]
    only_a: list[str]
    only_b: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if any(p.slowdown_exceeded for p in self.pairs) else EXIT_OK

    def conclusion(self) -> str:
        if not self.pairs:
            return "nothing to compare: the two sides share no device × model"
        if len(self.pairs) == 1:
            return self.pairs[0].conclusion()
        worse = [
            p
            for p in self.pairs
            if "slower" in p.conclusion() and "significant at" in p.conclusion()
        ]
        if not worse:
            return f"no significant slowdown in {len(self.pairs)} device × model pairs"
        return f"{len(worse)} of {len(self.pairs)} pairs significantly slower: " + "; ".join(
            f"{p.b.device} × {p.b.model}: {p.conclusion()}" for p in worse
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "pairs": [p.to_dict() for p in self.pairs],
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "conclusion": self.conclusion(),
        }


def compare(
    a_spec: str,
    b_spec: str,
    db: Path | None = None,
    headline: str = "p50",
    max_slowdown_pct: float | None = None,
) -> Comparison:
    if headline not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got {headline!r}")
    if max_slowdown_pct is not None and not max_slowdown_pct >= 0:
        raise UsageError(f"--max-slowdown must be a percentage >= 0, got {max_slowdown_pct}")
    a, b = load(a_spec, db), load(b_spec, db)
    if len(a) == 1 and len(b) == 1:  # two single results: compare them whatever their names
        pairs = [compare_sides(*a.values(), *b.values(), headline, max_slowdown_pct)]
        return Comparison(pairs, [], [])
    keys = [k for k in a if k in b]
    pairs = [compare_sides(a[k], b[k], headline, max_slowdown_pct) for k in keys]
    name = lambda s: f"{s.device} × {s.model}"  # noqa: E731
    return Comparison(
        pairs,
        [name(a[k]) for k in a if k not in b],
        [name(b[k]) for k in b if k not in a],
    )
