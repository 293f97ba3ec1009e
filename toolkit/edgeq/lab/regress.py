"""Regressions: is tonight's figure worse than this device × model's recent past?

Per device × model × metric the baseline is the last K (`window`, default 10) PASSING
results in the history. Noisy metrics (latencies, peak RSS) get a noise band around the
baseline median:

    half = max(k · 1.4826 · MAD, min_rel · |median|)      defaults k = 3, min_rel = 7 %

1.4826·MAD estimates the standard deviation robustly, so k is "how many sigmas" and a
noisy device gets a wider band by itself. The `min_rel` floor keeps a quiet device from
flagging ordinary jitter: with ±3 % noise two nights differ by at most ~6.2 %, so ±3 %
never trips it while a 20 % slowdown always does (even at −3 % noise it is +16 %). Worse
than median + half is a regression; better than median − half is noted as an improvement.
Deterministic metrics are compared tightly: accuracy may not drop more than
`accuracy_tolerance_pp` (0.1 pp) below the median, the model may not grow more than
`size_tolerance_bytes` (0). A noisy metric is judged once `min_history` (3) passing runs
exist; a tight one from the first.

A band metric regresses only when the figure is beyond the band AND significantly worse at
`level` (95 %) by the test `edgeq compare` uses with one run on one side
(`stats.runs_difference`: this run against the spread of the series's last K valid runs on
the log scale, the current failure streak left out — see `run_to_run`). A suspect run (its validity
is not `valid`: contended, dispersed, frequency or temperature moved) is not judged on
band metrics at all: it is recorded as `suspect`, never as a regression nor as a baseline
(the baseline is passing runs only).

On a shared host the machine's own speed changes for tenths of a second to seconds at a
time, and a run's p50 lands in one mode or another with nothing in the model changed. So
`latency_p50`/`latency_p90` are judged on each run's steadiest stretch (`latency_steady_p50`/
`_p90`: the percentile in the run's window of consecutive invokes with the lowest p50, from
runner 1.5) once the series has `min_history` passing runs of it (`steady = false`: the
whole run); the message gives both figures.

A valid run that would regress on a band metric is first measured again: `confirm` (2)
fresh runs on the same device, as LNT's `--rerun` does, and judged on the best of the
three (`confirmed`): one process can land in a slow mode of its own that nothing in its
own figures tells from a regression, so a regression stands only when every run bears it
out (the lab scheduler does the re-runs; see `scheduler.to_confirm`).

Because only passing runs form the baseline, a regression stays flagged night after night
— "failing since <date> (last pass <run id>)" — until the figure is back in the band, which
is reported as a recovery.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from ..stats import runs_difference
from .history import History

MAD_TO_SIGMA = 1.4826
#: Checks about reaching the device, not about the model (reported as the result's error).
INFRA = ("health", "run", "lock")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    worse: str  # "higher" or "lower"
    kind: str  # "band" (noisy), "accuracy" or "size" (tight)
    unit: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("latency_p50", "higher", "band", "ms"),
        MetricSpec("latency_p90", "higher", "band", "ms"),
        MetricSpec("latency_p99", "higher", "band", "ms"),
        MetricSpec("latency_mean", "higher", "band", "ms"),
        MetricSpec("latency_steady_p50", "higher", "band", "ms"),
        MetricSpec("latency_steady_p90", "higher", "band", "ms"),
        MetricSpec("e2e_latency_p50", "higher", "band", "ms"),
        MetricSpec("e2e_latency_p90", "higher", "band", "ms"),
        MetricSpec("peak_rss_kb", "higher", "band", "KB"),
        MetricSpec("model_footprint_kb", "higher", "band", "KB"),
        MetricSpec("accuracy", "lower", "accuracy", ""),
        MetricSpec("model_bytes", "higher", "size", "B"),
    )
}


#: A latency metric and its figure in the run's steadiest stretch (see `evaluate`).
STEADY = {"latency_p50": "latency_steady_p50", "latency_p90": "latency_steady_p90"}


@dataclass(frozen=True)
class Policy:
    """The [regression] table of lab.toml."""

    window: int = 10
    k: float = 3.0
    min_history: int = 3
    min_rel: float = 0.07
    accuracy_tolerance_pp: float = 0.1
    size_tolerance_bytes: int = 0
    #: the confidence a band metric's regression needs (see the module's docstring)
    level: float = 0.95
    #: what a series is: "content" (the model's sha256: a changed model starts a new
    #: series) or "name" (its name/label: a model that changes under one name is judged
    #: against its own past, e.g. a nightly retrain)
    series: str = "content"
    #: fresh re-runs that must bear out a band regression (see `confirmed`)
    confirm: int = 2
    #: judge latency_p50/p90 on each run's steadiest stretch when the runner reports it
    steady: bool = True
    metrics: tuple[str, ...] = (
        "latency_p50",
        "latency_p90",
        "model_footprint_kb",
        "accuracy",
        "model_bytes",
    )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "metrics" in kw:
            kw["metrics"] = tuple(kw["metrics"])
        return cls(**kw)


def mad(values: list[float]) -> float:
    """Median absolute deviation from the median."""
    m = statistics.median(values)
    return statistics.median(abs(v - m) for v in values)


def _fmt(value: float, spec: MetricSpec) -> str:
    if spec.kind == "accuracy":
        return f"{value:.2%}"
    if spec.kind == "size" or spec.unit == "KB":
        return f"{value:,.0f} {spec.unit}"
    return f"{value:.4g} {spec.unit}"


def judge_metric(
    name: str,
    value: float,
    baseline: list[float],
    policy: Policy,
    spread: list[float] | None = None,
) -> dict[str, Any]:
    """One regression check (a `checks` row): value vs the baseline of passing runs (the
    band) and, for a band metric, vs `spread` (the run-to-run variation the test uses;
    default: the baseline)."""
    spec = METRICS[name]
    check = {"name": f"regression:{name}", "kind": "regression", "measured": value, "unit": ""}
    check["unit"] = spec.unit
    need = policy.min_history if spec.kind == "band" else 1
    if len(baseline) < need:
        return {
            **check,
            "passed": None,
            "limit": None,
            "op": "<=" if spec.worse == "higher" else ">=",
            "message": f"not judged: {len(baseline)} of {need} passing runs in the history",
        }
    median = statistics.median(baseline)
    n = len(baseline)
    if spec.kind == "band":
        half = max(policy.k * MAD_TO_SIGMA * mad(baseline), policy.min_rel * abs(median))
        band = f"median {_fmt(median, spec)} ± {_fmt(half, spec)} of the last {n} passes"
    elif spec.kind == "accuracy":
        half = policy.accuracy_tolerance_pp / 100
        band = f"median {_fmt(median, spec)} − {policy.accuracy_tolerance_pp:g} pp (last {n})"
    else:
        half = float(policy.size_tolerance_bytes)
        band = f"median {_fmt(median, spec)} + {half:,.0f} B (last {n} passes)"
    eps = 1e-12 * max(1.0, abs(median))
    if spec.worse == "higher":
        limit, op = median + half, "<="
        passed = value <= limit + eps
        better = value < median - half
    else:
        limit, op = median - half, ">="
        passed = value >= limit - eps
        better = value > median + half
    test_text = ""
    if spec.kind == "band" and not passed:
        test = runs_difference(spread if spread else baseline, [value], policy.level)
        if test is None:
            test_text = "; the baseline has no spread to test against (band alone)"
        else:
            worse = test.delta > 0 if spec.worse == "higher" else test.delta < 0
            significant = test.significant and worse
            test_text = (
                f"; {'significant' if significant else 'not significant'} at "
                f"{policy.level:.0%} vs the run-to-run spread (p = {test.p_value:.3f})"
            )
            passed = not significant
            check["p_value"] = test.p_value
    if not passed:
        change = (value - median) / median if median else float("inf")
        msg = f"{name} regressed: {_fmt(value, spec)} ({change:+.1%}) vs {band}{test_text}"
    elif test_text:
        change = (value - median) / median if median else float("inf")
        msg = f"{name} beyond the band but within the noise: {_fmt(value, spec)} "
        msg += f"({change:+.1%}) vs {band}{test_text}"
    elif better:
        msg = f"{name} improved: {_fmt(value, spec)} vs {band}"
    else:
        msg = f"{name} within {band}"
    return {**check, "passed": passed, "limit": limit, "op": op, "message": msg}


def evaluate(
    history: History,
    device: str,
    model: str,
    metrics: dict[str, float],
    policy: Policy,
    suspect: str = "",
    op_profile: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Regression checks for a new result (computed before it is written). `model` is the
    series key: the model's sha256 (a different model is a new series, never a regression
    of another one), or its name for histories written without one (or with
    `policy.series = "name"`). `suspect`: why the run's validity is not valid (then band
    metrics are not judged). A latency regression of a result with an `op_profile` names
    the operators that account for it, against the baseline's profiles."""
    checks = []
    baseline_profiles: list[dict[str, Any]] | None = None
    for name in policy.metrics:
        if name not in metrics or metrics[name] is None:
            continue
        spec = METRICS[name]
        if suspect and spec.kind == "band":
            checks.append(
                {
                    "name": f"regression:{name}",
                    "kind": "regression",
                    "measured": float(metrics[name]),
                    "unit": spec.unit,
                    "passed": None,
                    "limit": None,
                    "op": "<=" if spec.worse == "higher" else ">=",
                    "message": f"not judged: the run is suspect ({suspect})",
                }
            )
            continue
        judged, baseline = name, None
        steady = STEADY.get(name) if policy.steady else None
        if steady and metrics.get(steady) is not None:
            baseline = history.passing_values(
                device, model, steady, policy.window, by=policy.series
            )
            judged = steady if len(baseline) >= policy.min_history else name
        if judged == name:
            baseline = history.passing_values(device, model, name, policy.window, by=policy.series)
        spread = None
        if spec.kind == "band":
            measured = history.measured_values(
                device, model, judged, 5 * policy.window, by=policy.series
            )
            spread = run_to_run(measured)[: policy.window]
        check = judge_metric(judged, float(metrics[judged]), baseline, policy, spread)
        if judged != name:
            check["name"], check["judged_on"] = f"regression:{name}", judged
            check["message"] += f" (the run's steadiest stretch; whole run {metrics[name]:.4g} ms)"
        if check["passed"] is False and "latency" in name and op_profile:
            if baseline_profiles is None:
                baseline_profiles = history.passing_op_profiles(
                    device, model, policy.window, by=policy.series
                )
            where = localise(op_profile, baseline_profiles)
            if where:
                check["operators"] = where["operators"]
                check["message"] += f"; where: {where['text']}"
        checks.append(check)
    return checks


def band_failures(checks: list[dict[str, Any]]) -> list[str]:
    """The band metrics (latencies, memory) that regressed in `checks`."""
    out = []
    for c in checks:
        name = str(c.get("name", "")).partition(":")[2]
        if c.get("passed") is False and name in METRICS and METRICS[name].kind == "band":
            out.append(name)
    return out


def confirmed(first: dict[str, float], reruns: list[dict[str, float]], names: list[str]):
    """A band regression borne out (or not) by fresh re-runs, as LNT's `--rerun`: a process
    started again on the same device. One process can land in a slow mode of its own
    (memory layout, a migration, a neighbour's burst) that no statistics of that run can tell
    from a regression, and noise only ever adds time: the result is judged on the BEST of
    the first run and the re-runs, so a regression stands only when every fresh run is
    beyond the band. Returns (the metrics to judge and record, the `confirmation` block
    kept with the result)."""
    metrics = dict(first)
    block: dict[str, Any] = {"reruns": len(reruns), "metrics": {}}
    for steady in [STEADY[n] for n in names if n in STEADY and first.get(STEADY[n]) is not None]:
        kept = [first[steady], *(r[steady] for r in reruns if r.get(steady) is not None)]
        metrics[steady] = min(kept)  # the steady figure a latency is judged on, alike
    for name in names:
        values = [first[name], *(r[name] for r in reruns if r.get(name) is not None)]
        best = min(values) if METRICS[name].worse == "higher" else max(values)
        metrics[name] = best
        block["metrics"][name] = {"values": values, "best": best}
    block["text"] = "; ".join(
        f"{n} {_fmt(first[n], METRICS[n])} beyond the band, re-measured {len(reruns)} more "
        f"time{'s' if len(reruns) != 1 else ''} "
        f"({', '.join(_fmt(v, METRICS[n]) for v in block['metrics'][n]['values'][1:]) or '-'}):"
        f" judged on the best, {_fmt(metrics[n], METRICS[n])}"
        for n in names
    )
    return metrics, block


def run_to_run(measured: list[tuple[str, float]]) -> list[float]:
    """The values that show a series's run-to-run variation, from its valid measured runs
    (newest first): all of them but the current failure streak. Passing runs alone would be
    truncated by the test itself (a run that fails never joins them), and on a series whose
    processes land in two modes the baseline would shrink to one mode and flag the other
    for ever; the current streak is left out so that a real regression stays flagged."""
    values = list(measured)
    while values and values[0][0] != "pass":
        values.pop(0)
    return [v for _, v in values]


# --------------------------------------------------------------------------- operators


def _op_rows(op_profile: dict[str, Any]) -> dict[tuple[Any, str], dict[str, Any]]:
    """{(node, op type): {label, avg_ms}} of a run document's op profile."""
    from ..profile import from_run

    prof = from_run({"op_profile": op_profile})
    if prof is None:
        return {}
    return {(r.node, r.type): {"label": r.label, "avg_ms": r.avg_ms} for r in prof.rows}


def localise(
    current: dict[str, Any], baselines: list[dict[str, Any]], share: float = 0.8, most: int = 3
) -> dict[str, Any] | None:
    """The operators that account for a latency change: each node's avg ms now vs its
    median over the baseline profiles (nodes matched by index and op type), the largest
    increases first until they cover `share` of the total increase (at most `most`).
    None without a baseline profile or an increase."""
    now = _op_rows(current)
    before: dict[tuple[Any, str], list[float]] = {}
    for b in baselines:
        for key, row in _op_rows(b).items():
            before.setdefault(key, []).append(row["avg_ms"])
    if not now or not before:
        return None
    base = {k: statistics.median(v) for k, v in before.items()}
    total_now = sum(r["avg_ms"] for r in now.values())
    total_before = sum(base.values())
    change = total_now - total_before
    deltas = sorted(
        ((now[k]["avg_ms"] - base.get(k, 0.0), k) for k in now),
        key=lambda d: -d[0],
    )
    rising = sum(d for d, _ in deltas if d > 0)
    if rising <= 0:
        return None
    ops, covered = [], 0.0
    for d, key in deltas:
        if d <= 0 or len(ops) >= most:
            break
        ops.append(
            {
                "node": key[0],
                "type": key[1],
                "label": now[key]["label"],
                "before_ms": base.get(key),
                "now_ms": now[key]["avg_ms"],
                "delta_ms": d,
            }
        )
        covered += d
        if covered >= share * rising:
            break
    text = "; ".join(
        f"{o['label']} {o['type']} "
        f"{'new' if o['before_ms'] is None else format(o['before_ms'], '.3g')} → "
        f"{o['now_ms']:.3g} ms, {o['delta_ms']:+.3g} ms of {change:+.3g} ms"
        for o in ops
    )
    return {"operators": ops, "change_ms": change, "text": text}


@dataclass(frozen=True)
class Finding:
    """A failure with its streak ("failing since …") or a recovery, for the reports."""

    device: str
    model: str
    kind: str  # "regression" | "failure" | "error" | "recovery"
    check: str
    message: str
    since_utc: str | None = None
    since_run_id: str | None = None
    last_pass_run_id: str | None = None
    #: what differs between the last passing run and this one (`edgeq.changes`)
    changed: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["changed"] = list(self.changed)
        return d


def since_text(since_utc: str | None, last_pass: str | None) -> str:
    day = (since_utc or "")[:10] or "?"
    tail = f"last pass {last_pass}" if last_pass else "never passed"
    return f"failing since {day} ({tail})"


def _streak(
    earlier: list[dict[str, Any]], failed_here: Any, now: tuple[str, str]
) -> tuple[str, str]:
    """Walk back over earlier results while `failed_here(row)` is True (None: no verdict on
    that row, keep walking); return (since_utc, since_run_id) of the earliest failure."""
    since = now
    for row in earlier:
        verdict = failed_here(row)
        if verdict is None:
            continue
        if not verdict:
            break
        since = (row["started_utc"], row["run_id"])
    return since


def annotate(
    history: History,
    device: str,
    model: str,
    run_id: str,
    started_utc: str,
    status: str,
    checks: list[dict[str, Any]],
    label: str | None = None,
    by: str = "content",
) -> tuple[list[Finding], str | None, str | None]:
    """Findings for a new result (before it is written): each failing check with its
    streak, the device error/quarantine streak, and recoveries. `model` is the series key
    (see `evaluate`), `label` the name messages show (default: the key). Returns
    (findings, since_utc of the result's failure streak, last pass run id)."""
    # A busy result (the device was somebody else's) says nothing, nor does a suspect one
    # (its latency was disturbed): streaks skip them.
    earlier = [
        r for r in history.series(device, model, by=by) if r["status"] not in ("busy", "suspect")
    ]
    model = label or model
    last_pass = next((r["run_id"] for r in earlier if r["status"] == "pass"), None)
    now = (started_utc, run_id)
    findings: list[Finding] = []

    def row_failed(row: dict[str, Any]) -> bool | None:
        return row["status"] != "pass"

    since_utc = None
    if status not in ("pass", "busy", "suspect"):
        since_utc, since_run = _streak(earlier, row_failed, now)
        if status in ("error", "quarantined"):
            why = "; ".join(
                c.get("message") or c["name"]
                for c in checks
                if c["kind"] in INFRA and c.get("passed") is False
            )
            findings.append(
                Finding(
                    device,
                    model,
                    "error",
                    status,
                    f"{device} × {model}: {status}: {why or status}; "
                    f"{since_text(since_utc, last_pass)}",
                    since_utc,
                    since_run,
                    last_pass,
                )
            )
    for c in checks:
        name = c["name"]
        if c.get("passed") is False and c["kind"] not in INFRA:

            def check_failed(row: dict[str, Any], name: str = name) -> bool | None:
                if row["status"] == "pass":
                    return False
                got = row["checks"].get(name)
                return None if got is None else not got

            s_utc, s_run = _streak(earlier, check_failed, now)
            kind = "regression" if c["kind"] == "regression" else "failure"
            findings.append(
                Finding(
                    device,
                    model,
                    kind,
                    name,
                    f"{device} × {model}: {c.get('message') or name}; "
                    f"{since_text(s_utc, last_pass)}",
                    s_utc,
                    s_run,
                    last_pass,
                )
            )
        elif c.get("passed") is True:
            prev = next((r for r in earlier if r["checks"].get(name) is not None), None)
            if prev is not None and prev["checks"][name] is False:

                def was_failed(row: dict[str, Any], name: str = name) -> bool | None:
                    got = row["checks"].get(name)
                    return None if got is None else not got

                s_utc, s_run = _streak(earlier, was_failed, (prev["started_utc"], prev["run_id"]))
                findings.append(
                    Finding(
                        device,
                        model,
                        "recovery",
                        name,
                        f"{device} × {model}: {name.split(':', 1)[-1]} recovered "
                        f"({c.get('message') or 'passes again'}); had been failing since "
                        f"{s_utc[:10]}",
                        s_utc,
                        s_run,
                        last_pass,
                    )
                )
    if status == "pass" and earlier and earlier[0]["status"] != "pass":
        prev = (earlier[0]["started_utc"], earlier[0]["run_id"])
        s_utc, s_run = _streak(earlier, row_failed, prev)
        findings.append(
            Finding(
                device,
                model,
                "recovery",
                "result",
                f"{device} × {model}: passes again; had been failing since {s_utc[:10]} "
                + (f"(last pass {last_pass})" if last_pass else "(it had never passed before)"),
                s_utc,
                s_run,
                last_pass,
            )
        )
    return findings, since_utc, last_pass
