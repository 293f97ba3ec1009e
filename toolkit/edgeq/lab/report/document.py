"""The report document: everything a report shows, built once from the history.

Every format renders this one dict (the `json` format is the dict itself), so the HTML,
the Markdown step summary and the JUnit file can never disagree. Its parts:

    run, counts, devices      the run, how many results per status, each device's worst
                              status and environment (never blank: "–" for unknown)
    matrix                    device × model of the run; each cell has the statuses of
                              the last N results of that series (newest last) and the
                              anchor of the result's details
    failing                   what broke, since when (the first bad run) and where
    results                   the details of each result of the run, with its trend:
                              the last N points of the series with the regression band
                              the regress module used at each point (median ± k·MAD)
    sweep                     the latest sweep run's candidates with their Pareto fronts

A series is one device × model; a model is known by its content (`artifact_sha256`, as the
history keys it) when the row has one, else by its name, and shown by its name (`model`:
the file name or the `--label` it was run with).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable
from typing import Any

from ...errors import UsageError
from ...status import HARMLESS, RECORDED, rank, worst
from ..history import History, utc_now
from ..regress import METRICS, Policy, judge_metric

REPORT_SCHEMA = "edgeq.lab-report/2"
#: Metrics kept per trend point (the plots draw the first four, each with its band).
TREND_METRICS = ("latency_p50", "latency_p90", "accuracy", "model_bytes", "peak_rss_kb")
#: Metrics of a sweep candidate (`edgeq sweep` records them).
SWEEP_METRICS = ("model_bytes", "accuracy", "latency_p90", "latency_p50")
#: Environment shown per device, in order (`environment_summary` fills them).
ENV_FIELDS = ("SoC / model", "arch", "OS", "runtime", "governor", "temperature", "throttling")
UNKNOWN = "–"
STREAK_KINDS = ("regression", "failure", "error")


# --------------------------------------------------------------------------- identities


def model_key(row: dict[str, Any]) -> str:
    """What makes two results the same model: its content when recorded, else its name
    (the history's own series key, `history.series_key`)."""
    return row.get("artifact_sha256") or row["model"]


def model_label(row: dict[str, Any]) -> str:
    return row["model"]


def is_sweep(settings: dict[str, Any]) -> bool:
    return settings.get("kind") == "sweep"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def anchor(row: dict[str, Any]) -> str:
    """The HTML id of a result's details (unique: the history's row id is in it)."""
    return f"r{row['id']}-{_slug(row['device'])}-{_slug(model_label(row))}"


def _settings(run: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(run.get("settings_json") or "{}")
    except ValueError:
        return {}


# --------------------------------------------------------------------------- environment


def _join(*parts: Any) -> str:
    seen: list[str] = []
    for p in parts:
        if p not in (None, "") and str(p) not in seen:
            seen.append(str(p))
    return " · ".join(seen)


def _throttling(value: Any) -> str:
    if not isinstance(value, dict):
        return UNKNOWN
    flags = [k.replace("_", " ") for k, v in value.items() if k != "raw" and v is True]
    now = [f for f in flags if not f.endswith("occurred")]
    past = [f for f in flags if f.endswith("occurred")]
    if not flags:
        return "none"
    return ", ".join(now + past) + (f" ({value['raw']})" if value.get("raw") else "")


def environment_summary(env: dict[str, Any] | None) -> dict[str, str]:
    """The device facts a reader wants, as text ("–" where the device did not say).

    Reads both the device runner's environment (machine, cpu_model, runtime…) and the
    benchmark_model path's (device_model, cpu_abi…)."""
    env = env or {}
    temp = env.get("temperature_c")
    runtime = _join(env.get("runtime"), env.get("runtime_version")).replace(" · ", " ")
    arch = _join(env.get("machine"), env.get("cpu_abi"))
    if env.get("emulated"):
        arch = f"{arch or UNKNOWN} (emulated)"
    return {
        "SoC / model": _join(env.get("device_model"), env.get("cpu_model")) or UNKNOWN,
        "arch": arch or UNKNOWN,
        "OS": _join(env.get("os")) or UNKNOWN,
        "runtime": runtime or UNKNOWN,
        "governor": _join(env.get("cpu_governor")) or UNKNOWN,
        "temperature": UNKNOWN if not isinstance(temp, (int, float)) else f"{temp:.1f} °C",
        "throttling": _throttling(env.get("throttling")),
    }


# --------------------------------------------------------------------------- bands


def _recorded_limit(row: dict[str, Any], metric: str) -> float | None:
    for c in row.get("checks") or []:
        if c["name"] == f"regression:{metric}" and c.get("limit") is not None:
            return float(c["limit"])
    return None


def band(
    metric: str,
    value: float,
    baseline: list[float],
    policy: Policy,
    recorded_limit: float | None = None,
) -> dict[str, Any] | None:
    """The regression band of one point, as `regress.judge_metric` drew it (None while the
    series had too few passing runs to be judged).

    The limit is judge_metric's; when the check recorded at that point has another limit
    (a per-device [regression] override the run's settings do not carry) the recorded
    one wins, since it is what the run was judged against."""
    judged = judge_metric(metric, value, baseline, policy)
    if judged["limit"] is None:
        return None
    median = statistics.median(baseline)
    limit, source = float(judged["limit"]), "policy"
    if recorded_limit is not None and not math.isclose(
        recorded_limit, limit, rel_tol=1e-9, abs_tol=1e-12
    ):
        limit, source = recorded_limit, "check"
    spec = METRICS[metric]
    half = abs(limit - median)
    if spec.kind == "band":
        lower, upper = median - half, median + half
    elif spec.worse == "lower":
        lower, upper = limit, None
    else:
        lower, upper = None, limit
    return {
        "median": median,
        "lower": lower,
        "upper": upper,
        "limit": limit,
        "n": len(baseline),
        "source": source,
    }


def trend_points(
    series: list[dict[str, Any]], policy_of: Callable[[str], Policy]
) -> list[dict[str, Any]]:
    """Every point of a series (oldest first) with the band regress used at it: the last
    `window` passing values before it, judged with the policy of the point's run."""
    points = []
    for i, s in enumerate(series):
        policy = policy_of(s["run_id"])
        bands = {}
        for metric in TREND_METRICS:
            value = s["metrics"].get(metric)
            if value is None or metric not in policy.metrics or metric not in METRICS:
                continue
            baseline = [
                p["metrics"][metric]
                for p in reversed(series[:i])
                if p["status"] == "pass" and p["metrics"].get(metric) is not None
            ][: policy.window]
            b = band(metric, value, baseline, policy, _recorded_limit(s, metric))
            if b is not None:
                bands[metric] = b
        points.append(
            {
                "result_id": s["id"],
                "run_id": s["run_id"],
                "started_utc": s["started_utc"],
                "status": s["status"],
                **{m: s["metrics"].get(m) for m in TREND_METRICS},
                "bands": bands,
                "regressed": sorted(
                    c["name"].split(":", 1)[1]
                    for c in s["checks"]
                    if c["kind"] == "regression" and c.get("passed") is False
                ),
            }
        )
    return points


# --------------------------------------------------------------------------- streaks


def _streak_from_series(series: list[dict[str, Any]]) -> tuple[str, str, str | None]:
    """(since_utc, first bad run, last pass run) walking back from the series' end; busy
    results say nothing about the model and are stepped over."""
    since = (series[-1]["started_utc"], series[-1]["run_id"])
    last_pass = None
    for s in reversed(series[:-1]):
        if s["status"] == "pass":
            last_pass = s["run_id"]
            break
        if s["status"] != "busy":
            since = (s["started_utc"], s["run_id"])
    return since[0], since[1], last_pass


def _failing_entry(r: dict[str, Any], series: list[dict[str, Any]]) -> dict[str, Any]:
    streak = [f for f in r["findings"] if f["kind"] in STREAK_KINDS and f.get("since_utc")]
    if streak:
        oldest = min(streak, key=lambda f: f["since_utc"])
        since_utc, since_run, last_pass = (
            oldest["since_utc"],
            oldest.get("since_run_id") or r["run_id"],
            oldest.get("last_pass_run_id"),
        )
    else:
        since_utc, since_run, last_pass = _streak_from_series(series)
    failed = [c for c in r["checks"] if c.get("passed") is False]
    return {
        "device": r["device"],
        "model": r["model_label"],
        "model_key": r["model_key"],
        "status": r["status"],
        "anchor": r["anchor"],
        "checks": [c["name"] for c in failed],
        "reason": r["reason"],
        "since_utc": since_utc,
        "since_run_id": since_run,
        "last_pass_run_id": last_pass,
        "messages": [f["message"] for f in r["findings"] if f["kind"] in STREAK_KINDS],
    }


# --------------------------------------------------------------------------- sweeps


def pareto_front(points: list[dict[str, Any]], x: str, y: str) -> list[int]:
    """Indices of the points no other point beats: lower `x` (cost) and higher `y`."""
    front = []
    for i, p in enumerate(points):
        dominated = any(
            q[x] <= p[x] and q[y] >= p[y] and (q[x] < p[x] or q[y] > p[y])
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def sweep_of(history: History, run_id: str | None = None) -> dict[str, Any] | None:
    """The latest sweep run (settings `kind = "sweep"`; or the sweep run `run_id`) with its
    candidates and, per device, the size × accuracy and latency × accuracy Pareto fronts."""
    run = next(
        (
            r
            for r in history.runs()
            if is_sweep(_settings(r)) and (run_id is None or r["run_id"] == run_id)
        ),
        None,
    )
    if run is None:
        return None
    candidates = []
    for r in history.results(run_id=run["run_id"], full=False):
        m = r["metrics"]
        if m.get("accuracy") is None or m.get("model_bytes") is None:
            continue
        latency = m.get("latency_p90", m.get("latency_p50"))
        candidates.append(
            {
                "device": r["device"],
                "model": model_label(r),
                "model_key": model_key(r),
                "status": r["status"],
                **{k: m.get(k) for k in SWEEP_METRICS},
                "latency": latency,
                "front_size": False,
                "front_latency": False,
            }
        )
    for device in sorted({c["device"] for c in candidates}):
        mine = [c for c in candidates if c["device"] == device]
        for i in pareto_front(mine, "model_bytes", "accuracy"):
            mine[i]["front_size"] = True
        timed = [c for c in mine if c["latency"] is not None]
        for i in pareto_front(timed, "latency", "accuracy"):
            timed[i]["front_latency"] = True
    latency_metric = (
        "latency_p90" if any(c["latency_p90"] is not None for c in candidates) else "latency_p50"
    )
    return {
        "run_id": run["run_id"],
        "started_utc": run["started_utc"],
        "settings": _settings(run),
        "latency_metric": latency_metric,
        "candidates": candidates,
    }


# --------------------------------------------------------------------------- the document


def _pick_run(history: History, run_id: str | None) -> dict[str, Any]:
    if run_id is None:
        runs = history.runs()
        if not runs:
            raise UsageError(
                f"{history.path}: the lab history has no runs yet; run `edgeq lab run`"
            )
        # The nightly run, not a sweep recorded after it (a sweep has its own section).
        run = next((r for r in runs if not is_sweep(_settings(r))), runs[0])
        return dict(run)
    run = history.run(run_id)
    if run is None:
        known = ", ".join(r["run_id"] for r in history.runs(limit=5))
        raise UsageError(f"{history.path}: no run {run_id!r}; recent runs: {known or 'none'}")
    return run


def top_operators(result: dict[str, Any], top: int = 5) -> list[dict[str, Any]]:
    """The `top` operators by device time of a result with an op profile (else [])."""
    from ...profile import from_run

    prof = from_run((result or {}).get("run") or {})
    if prof is None:
        return []
    return [
        {"label": r.label, "type": r.type, "avg_ms": r.avg_ms, "percent": r.percent}
        for r in prof.rows[:top]
    ]


def build(
    history: History, run_id: str | None = None, trend_runs: int = 30, matrix_runs: int = 10
) -> dict[str, Any]:
    """The report document for one run (default: the latest that is not a sweep)."""
    if trend_runs < 1 or matrix_runs < 1:
        raise UsageError("--trend-runs and --matrix-runs must be >= 1")
    run = _pick_run(history, run_id)
    run["settings"] = _settings(run)
    run.pop("settings_json", None)
    run_id = run["run_id"]

    policies: dict[str, Policy] = {}

    def policy_of(rid: str) -> Policy:
        if rid not in policies:
            other = run if rid == run_id else history.run(rid) or {}
            settings = other.get("settings") or _settings(other)
            policies[rid] = Policy.from_dict(settings.get("regression") or {})
        return policies[rid]

    results = history.results(run_id=run_id, full=True)
    by_device: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        full = r.pop("result", None) or {}  # the deploy document: in the history only
        r["top_ops"], r["op_changes"] = top_operators(full), full.get("op_changes") or {}
        r["model_key"], r["model_label"], r["anchor"] = model_key(r), model_label(r), anchor(r)
        if r["device"] not in by_device:
            by_device[r["device"]] = history.results(device=r["device"], full=False)

    failing, cells = [], []
    for r in results:
        upto = [s for s in by_device[r["device"]] if model_key(s) == r["model_key"]]
        upto = upto[: next(i for i, s in enumerate(upto) if s["id"] == r["id"]) + 1]
        points = trend_points(upto, policy_of)
        r["trend"] = points[-trend_runs:]
        r["measured_points"] = sum(any(p[m] is not None for m in TREND_METRICS) for p in r["trend"])
        cells.append(
            {
                "device": r["device"],
                "model": r["model_label"],
                "model_key": r["model_key"],
                "status": r["status"],
                "anchor": r["anchor"],
                "history": [
                    {"run_id": p["run_id"], "started_utc": p["started_utc"], "status": p["status"]}
                    for p in points[-matrix_runs:]
                ],
            }
        )
        if r["status"] not in HARMLESS:
            failing.append(_failing_entry(r, upto))
    failing.sort(key=lambda f: (rank(f["status"]), f["since_utc"] or "", f["device"], f["model"]))

    device_order = [d for d in run["settings"].get("devices") or [] if d in by_device]
    device_order += [d for d in by_device if d not in device_order]
    models: dict[str, str] = {}
    for r in results:
        models.setdefault(r["model_key"], r["model_label"])

    devices = []
    for name in device_order:
        rows = [r for r in results if r["device"] == name]
        env, env_run = _environment(history, name, rows)
        statuses = {r["status"] for r in rows}
        # a device that measured something is healthy: an error of one model on it is the
        # model's (shown in its cell), not the device's
        measured = statuses & {"pass", "fail"}
        model_errors = sorted(r["model_label"] for r in rows if r["status"] == "error")
        devices.append(
            {
                "device": name,
                "transport": rows[0]["transport"],
                "address": rows[0]["address"],
                "status": worst(measured) if measured else worst(statuses),
                "model_errors": model_errors if measured else [],
                "environment": env,
                "environment_run_id": env_run,
                "environment_summary": environment_summary(env),
            }
        )

    counts = dict.fromkeys(RECORDED, 0)
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    findings = [f for r in results for f in r["findings"]]
    return {
        "schema": REPORT_SCHEMA,
        "generated_utc": utc_now(),
        "db": str(history.path),
        "ok": run["status"] == "pass",
        "run": run,
        "counts": counts,
        "devices": devices,
        "matrix": {
            "runs": matrix_runs,
            "devices": device_order,
            "models": [{"key": k, "label": v} for k, v in models.items()],
            "cells": cells,
        },
        "failing": failing,
        "recovered": [f for f in findings if f["kind"] == "recovery"],
        "results": sorted(
            results, key=lambda r: (rank(r["status"]), r["device"], r["model_label"])
        ),
        "findings": findings,
        "trend_runs": trend_runs,
        "sweep": sweep_of(history),
    }


def _environment(
    history: History, device: str, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """This run's environment of a device (a measured result's, else the health check's);
    when it has none (a device that could not be reached), the latest one on record,
    with the run it came from."""
    for r in sorted(rows, key=lambda r: r["status"] not in ("pass", "fail", "suspect")):
        if r.get("environment"):
            return r["environment"], r["run_id"]
    first = min(r["id"] for r in rows)
    for r in reversed(history.results(device=device, full=True)):
        if r["id"] < first and r.get("environment"):
            return r["environment"], r["run_id"]
    return None, None
