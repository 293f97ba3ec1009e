"""Lab reports from the history: JSON (the document the others are rendered from),
Markdown (a CI step summary), JUnit XML (one testcase per device × model × check) and
self-contained HTML (tables plus latency / accuracy / size trend plots as embedded PNGs).
"""

from __future__ import annotations

import base64
import html
import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import fsutil
from ..errors import UsageError
from .history import History, utc_now

REPORT_SCHEMA = "edgeq.lab-report/1"
FORMATS = ("html", "md", "junit", "json")
SUFFIX = {"html": ".html", "md": ".md", "junit": ".xml", "json": ".json"}
TREND_METRICS = ("latency_p50", "latency_p90", "accuracy", "model_bytes", "peak_rss_kb")
ORDER = {"error": 0, "quarantined": 1, "fail": 2, "pass": 3}


def build(history: History, run_id: str | None = None, trend_runs: int = 30) -> dict[str, Any]:
    """The report document for one run (default: the latest) with its trends."""
    run_id = run_id or history.latest_run_id()
    if run_id is None:
        raise UsageError(f"{history.path}: the lab history has no runs yet; run `edgeq lab run`")
    run = history.run(run_id)
    if run is None:
        known = ", ".join(r["run_id"] for r in history.runs(limit=5))
        raise UsageError(f"{history.path}: no run {run_id!r}; recent runs: {known}")
    run["settings"] = json.loads(run.pop("settings_json") or "{}")
    results = history.results(run_id=run_id, full=False)
    counts = {s: 0 for s in ORDER}
    for r in results:
        counts[r["status"]] += 1
    devices: dict[str, dict[str, Any]] = {}
    for r in results:
        d = devices.setdefault(
            r["device"],
            {
                "device": r["device"],
                "transport": r["transport"],
                "address": r["address"],
                "status": "pass",
                "models": [],
                "environment": r.get("environment"),
            },
        )
        d["models"].append(r["model"])
        if ORDER[r["status"]] < ORDER[d["status"]]:
            d["status"] = r["status"]
        d["environment"] = d["environment"] or r.get("environment")
    trends = _trends(history, run, results, trend_runs)
    for r in results:
        r.pop("environment", None)
    return {
        "schema": REPORT_SCHEMA,
        "generated_utc": utc_now(),
        "db": str(history.path),
        "ok": run["status"] == "pass",
        "run": run,
        "counts": counts,
        "devices": list(devices.values()),
        "results": results,
        "findings": [f for r in results for f in r["findings"]],
        "trends": trends,
    }


def _trends(
    history: History, run: dict[str, Any], results: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Per device × model of this run: the last `limit` results up to this run."""
    out = []
    end = run.get("finished_utc") or "9999"
    for r in results:
        series = [
            s
            for s in history.results(device=r["device"], model=r["model"], full=False)
            if s["started_utc"] <= end
        ][-limit:]
        out.append(
            {
                "device": r["device"],
                "model": r["model"],
                "points": [
                    {
                        "run_id": s["run_id"],
                        "started_utc": s["started_utc"],
                        "status": s["status"],
                        **{m: s["metrics"].get(m) for m in TREND_METRICS},
                    }
                    for s in series
                ],
            }
        )
    return out


# --------------------------------------------------------------------------- text helpers


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def _row_figures(r: dict[str, Any]) -> dict[str, str]:
    m = r["metrics"]
    return {
        "p50": _f(m.get("latency_p50")),
        "p90": _f(m.get("latency_p90")),
        "accuracy": _f(m.get("accuracy"), "{:.2%}"),
        "size": _f(m.get("model_bytes") / 1024 if m.get("model_bytes") else None, "{:.1f}"),
        "rss": _f(m.get("peak_rss_kb") / 1024 if m.get("peak_rss_kb") else None, "{:.1f}"),
    }


def _since(f: dict[str, Any]) -> str:
    last = f["last_pass_run_id"]
    day = (f["since_utc"] or "")[:10]
    return f"failing since {day} ({f'last pass {last}' if last else 'never passed'})"


def _since_for(r: dict[str, Any], check: str) -> str:
    """ "failing since …" of one check of a result ('' if it has no streak)."""
    for f in r["findings"]:
        if f["kind"] != "recovery" and f["check"] in (check, r["status"]):
            return _since(f)
    return ""


def _note(r: dict[str, Any]) -> str:
    """The reason of a non-passing result and since when its oldest failure has lasted."""
    streak = [f for f in r["findings"] if f["kind"] in ("regression", "failure", "error")]
    text = r["reason"] or ""
    if streak:
        oldest = min(streak, key=lambda f: f["since_utc"] or "")
        text += f" — {_since(oldest)}"
    return text


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _headline(doc: dict[str, Any]) -> str:
    c = doc["counts"]
    run = doc["run"]
    n_dev = len(doc["devices"])
    sha = (run.get("git_sha") or "")[:10]
    return (
        f"{c['pass']} passed · {c['fail']} failed · {_n(c['error'], 'error')} · "
        f"{c['quarantined']} quarantined — {_n(len(doc['results']), 'result')} on "
        f"{_n(n_dev, 'device')}; "
        f"{run['started_utc']} → {run.get('finished_utc') or 'unfinished'}; "
        f"edgeq {run['edgeq_version']}" + (f" ({sha})" if sha else "") + f" on {run['host']}"
    )


# --------------------------------------------------------------------------- markdown


def to_markdown(doc: dict[str, Any]) -> str:
    """A summary for `$GITHUB_STEP_SUMMARY` or a chat message."""
    run = doc["run"]
    status = {"pass": "PASS", "fail": "FAIL"}.get(run["status"], run["status"].upper())
    lines = [f"## edgeq lab: {status} — run `{run['run_id']}`", "", _headline(doc), ""]
    regs = [f for f in doc["findings"] if f["kind"] in ("regression", "failure", "error")]
    recs = [f for f in doc["findings"] if f["kind"] == "recovery"]
    if regs:
        lines += ["### Failing", ""] + [f"- {_md(f['message'])}" for f in regs] + [""]
    if recs:
        lines += ["### Recovered", ""] + [f"- {_md(f['message'])}" for f in recs] + [""]
    lines += [
        "### Results",
        "",
        "| device | model | status | p50 ms | p90 ms | accuracy | size KB | notes |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    for r in sorted(doc["results"], key=lambda r: (ORDER[r["status"]], r["device"], r["model"])):
        f = _row_figures(r)
        status = r["status"] if r["status"] == "pass" else f"**{r['status'].upper()}**"
        lines.append(
            f"| {_md(r['device'])} | {_md(r['model'])} | {status} | {f['p50']} | {f['p90']} | "
            f"{f['accuracy']} | {f['size']} | {_md(_note(r))} |"
        )
    lines += ["", f"History: `{doc['db']}`", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- junit


def to_junit(doc: dict[str, Any]) -> str:
    """JUnit XML: a testsuite per device, a testcase per device × model × check."""
    run = doc["run"]
    root = ET.Element("testsuites", name=f"edgeq lab {run['run_id']}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    by_device: dict[str, list[dict[str, Any]]] = {}
    for r in doc["results"]:
        by_device.setdefault(r["device"], []).append(r)
    for device, rows in by_device.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"lab.{device}",
            timestamp=run["started_utc"],
            hostname=run["host"],
        )
        props = ET.SubElement(suite, "properties")
        for k in ("run_id", "edgeq_version", "git_sha"):
            ET.SubElement(props, "property", name=k, value=str(run.get(k) or ""))
        ET.SubElement(props, "property", name="address", value=rows[0]["address"])
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for r in rows:
            for c in r["checks"]:
                counts["tests"] += 1
                case = ET.SubElement(
                    suite, "testcase", classname=f"{device}.{r['model']}", name=c["name"]
                )
                if c["passed"] is None:
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message=c["message"])
                elif c["passed"] is False:
                    infra = c["kind"] in ("health", "run")
                    tag = "error" if infra else "failure"
                    counts["errors" if infra else "failures"] += 1
                    kind = r["status"] if infra else c["kind"]
                    el = ET.SubElement(case, tag, message=c["message"], type=kind)
                    detail = [c["message"]]
                    since = _since_for(r, c["name"])
                    if since:
                        detail.append(since)
                    if infra and r.get("error_text"):
                        detail.append(r["error_text"])
                    el.text = "\n".join(detail)
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


# --------------------------------------------------------------------------- html


def plots(doc: dict[str, Any]) -> dict[str, bytes]:
    """PNG figures: latency trend per device, accuracy trend, model size trend."""
    from ..plotting import plt

    trends = doc["trends"]
    devices = sorted({t["device"] for t in trends})
    out: dict[str, bytes] = {}
    if not trends:
        return out

    def when(p: dict[str, Any]) -> datetime:
        return datetime.strptime(p["started_utc"], "%Y-%m-%dT%H:%M:%SZ")

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    cols = min(3, len(devices))
    rows = -(-len(devices) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.0 * rows), squeeze=False, sharex=False
    )
    for ax, device in zip(axes.flat, devices, strict=False):
        for t in (t for t in trends if t["device"] == device):
            pts = [p for p in t["points"] if p["latency_p90"] is not None]
            if not pts:
                continue
            (line,) = ax.plot(
                [when(p) for p in pts],
                [p["latency_p90"] for p in pts],
                marker="o",
                ms=3,
                label=f"{t['model']} p90",
            )
            ax.plot(
                [when(p) for p in pts],
                [p["latency_p50"] for p in pts],
                ls="--",
                color=line.get_color(),
                lw=1,
                label=f"{t['model']} p50",
            )
            bad = [p for p in pts if p["status"] != "pass"]
            ax.scatter(
                [when(p) for p in bad],
                [p["latency_p90"] for p in bad],
                marker="x",
                color="red",
                zorder=3,
            )
        ax.set_title(device, fontsize=10)
        ax.set_ylabel("latency (ms)")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(devices) :]:
        ax.axis("off")
    fig.suptitle("latency per device (× = not passing)", fontsize=11)
    fig.tight_layout()
    out["latency"] = png(fig)

    for metric, title, scale, unit in (
        ("accuracy", "accuracy on the device", 100.0, "top-1 (%)"),
        ("model_bytes", "model size", 1 / 1024, "KB"),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        for t in trends:
            pts = [p for p in t["points"] if p[metric] is not None]
            if pts:
                ax.plot(
                    [when(p) for p in pts],
                    [p[metric] * scale for p in pts],
                    marker="o",
                    ms=3,
                    label=f"{t['device']} · {t['model']}",
                )
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        out["accuracy" if metric == "accuracy" else "size"] = png(fig)
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
font-size:.9em;text-align:left}th{background:#f3f3f3}.pass{color:#17702a}.fail,.error,
.quarantined{color:#b00020;font-weight:bold}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f6f6f6;padding:0 .2em}.muted{color:#666;font-size:.9em}
"""


def to_html(doc: dict[str, Any]) -> str:
    """One self-contained page: summary, findings, results table and the trend plots."""
    e = html.escape
    run = doc["run"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>edgeq lab {e(run['run_id'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>edgeq lab: <span class='{e(run['status'])}'>{e(run['status'].upper())}</span>"
        f" — run <code>{e(run['run_id'])}</code></h1>",
        f"<p>{e(_headline(doc))}</p>",
    ]
    regs = [f for f in doc["findings"] if f["kind"] in ("regression", "failure", "error")]
    recs = [f for f in doc["findings"] if f["kind"] == "recovery"]
    if regs:
        parts.append("<h2>Failing</h2><ul>")
        parts += [f"<li class='fail'>{e(f['message'])}</li>" for f in regs]
        parts.append("</ul>")
    if recs:
        parts.append("<h2>Recovered</h2><ul>")
        parts += [f"<li class='pass'>{e(f['message'])}</li>" for f in recs]
        parts.append("</ul>")
    parts.append(
        "<h2>Results</h2><table><tr><th>device</th><th>model</th><th>status</th>"
        "<th>p50 ms</th><th>p90 ms</th><th>accuracy</th><th>size KB</th><th>peak RSS MiB</th>"
        "<th>notes</th></tr>"
    )
    for r in sorted(doc["results"], key=lambda r: (ORDER[r["status"]], r["device"], r["model"])):
        f = _row_figures(r)
        parts.append(
            f"<tr><td>{e(r['device'])}</td><td>{e(r['model'])}</td>"
            f"<td class='{e(r['status'])}'>{e(r['status'])}</td><td>{f['p50']}</td>"
            f"<td>{f['p90']}</td><td>{f['accuracy']}</td><td>{f['size']}</td>"
            f"<td>{f['rss']}</td><td>{e(_note(r))}</td></tr>"
        )
    parts.append(
        "</table><h2>Devices</h2><table><tr><th>device</th><th>transport</th>"
        "<th>address</th><th>status</th><th>environment</th></tr>"
    )
    for d in doc["devices"]:
        env = d.get("environment") or {}
        desc = " · ".join(
            str(x)
            for x in (
                env.get("machine"),
                env.get("cpu_model"),
                env.get("os"),
                env.get("python") and f"python {env.get('python')}",
                env.get("runtime") and f"{env.get('runtime')} {env.get('runtime_version') or ''}",
            )
            if x
        )
        parts.append(
            f"<tr><td>{e(d['device'])}</td><td>{e(d['transport'])}</td><td>{e(d['address'])}"
            f"</td><td class='{e(d['status'])}'>{e(d['status'])}</td><td>{e(desc)}</td></tr>"
        )
    parts.append("</table><h2>Trends</h2>")
    for name, data in plots(doc).items():
        b64 = base64.b64encode(data).decode()
        parts.append(
            f"<figure><img alt='{name} trend' src='data:image/png;base64,{b64}'>"
            f"<figcaption class='muted'>{name}</figcaption></figure>"
        )
    parts.append(
        f"<p class='muted'>history {e(doc['db'])} · generated {e(doc['generated_utc'])}"
        "</p></body></html>"
    )
    return "\n".join(parts)


# --------------------------------------------------------------------------- output


def render(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "md":
        return to_markdown(doc)
    if fmt == "junit":
        return to_junit(doc) + "\n"
    if fmt == "html":
        return to_html(doc)
    raise UsageError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write(doc: dict[str, Any], fmt: str, out: Path) -> Path:
    """Render and write atomically (a folder `out` gets `lab-report.<ext>`)."""
    text = render(doc, fmt)
    out = Path(out)
    if out.is_dir():
        out = out / f"lab-report{SUFFIX[fmt]}"
    fsutil.write_text(out, text)
    return out
