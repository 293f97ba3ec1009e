"""A deploy's figures as the lab stores them: flat numeric metrics and check rows."""

from __future__ import annotations

from typing import Any

from ..results import STAT_KEYS, STEADY_KEYS, DeployResult


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flatten_metrics(res: DeployResult) -> dict[str, float]:
    """Every numeric figure of a deploy, flat (`latency_p90`, `phase_load_ms`, …)."""
    run = res.run
    out: dict[str, float] = {}
    for kind, prefix in (("invoke", "latency"), ("end_to_end", "e2e_latency")):
        stats = (run.get("latency_ms") or {}).get(kind) or {}
        for k in STAT_KEYS + STEADY_KEYS:
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
    memory = run.get("memory") or {}
    for key in ("peak_rss_kb", "model_footprint_kb"):
        if _num(memory.get(key)):
            out[key] = float(memory[key])
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
            text = f"{c.metric} {c.measured:.4g}{unit}"
            if c.limit is not None:
                text += f" (limit {c.op} {c.limit:g}{unit})"
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
