"""Words and figures the text formats share (the status words come from edgeq.status)."""

from __future__ import annotations

from typing import Any

from ...status import RECORDED, look

UNKNOWN = "–"


def num(v: Any, fmt: str = "{:.3f}") -> str:
    return UNKNOWN if v is None else fmt.format(v)


def figures(metrics: dict[str, float]) -> dict[str, str]:
    """A result's headline figures as text ("–" when not measured)."""
    m = metrics
    return {
        "p50": num(m.get("latency_p50")),
        "p90": num(m.get("latency_p90")),
        "accuracy": num(m.get("accuracy"), "{:.2%}"),
        "size": num(m["model_bytes"] / 1024 if m.get("model_bytes") else None, "{:.1f}"),
        "rss": num(m["peak_rss_kb"] / 1024 if m.get("peak_rss_kb") else None, "{:.1f}"),
    }


def badge(status: str) -> str:
    """`✗ FAIL`: the symbol and the word, never the colour alone."""
    lk = look(status)
    return f"{lk.symbol} {lk.label}"


def strip(history: list[dict[str, Any]]) -> str:
    """The statuses of a series' last runs as symbols, oldest first."""
    return "".join(look(h["status"]).symbol for h in history)


def legend() -> str:
    return " · ".join(f"{look(s).symbol} {s}" for s in RECORDED)


def day(utc: str | None) -> str:
    return (utc or "")[:10] or "?"


def since(entry: dict[str, Any]) -> str:
    """ "failing since 2025-03-11 (first bad run run-11, last pass run-10)"."""
    last = entry.get("last_pass_run_id")
    tail = f"last pass {last}" if last else "never passed"
    return (
        f"failing since {day(entry['since_utc'])} (first bad run {entry['since_run_id']}, {tail})"
    )


def since_for_check(r: dict[str, Any], check: str) -> str:
    """ "failing since …" of one check of a result ('' when it has no streak)."""
    for f in r["findings"]:
        if f["kind"] != "recovery" and f["check"] in (check, r["status"]):
            tail = f"last pass {f['last_pass_run_id']}" if f["last_pass_run_id"] else "never passed"
            return f"failing since {day(f['since_utc'])} ({tail})"
    return ""


def note(r: dict[str, Any]) -> str:
    """The reason of a non-passing result and since when its oldest failure has lasted."""
    streak = [f for f in r["findings"] if f["kind"] in ("regression", "failure", "error")]
    text = r["reason"] or ""
    if streak:
        oldest = min(streak, key=lambda f: f["since_utc"] or "")
        last = oldest["last_pass_run_id"]
        tail = f"last pass {last}" if last else "never passed"
        text += f" — failing since {day(oldest['since_utc'])} ({tail})"
    return text


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def headline(doc: dict[str, Any]) -> str:
    c = doc["counts"]
    run = doc["run"]
    sha = (run.get("git_sha") or "")[:10]
    parts = [f"{c.get(s, 0)} {s}" for s in RECORDED if c.get(s) or s in ("pass", "fail")]
    return (
        " · ".join(parts)
        + f" — {plural(len(doc['results']), 'result')} on {plural(len(doc['devices']), 'device')}"
        + f"; {run['started_utc']} → {run.get('finished_utc') or 'unfinished'}"
        + f"; edgeq {run['edgeq_version']}"
        + (f" ({sha})" if sha else "")
        + f" on {run['host']}"
    )
