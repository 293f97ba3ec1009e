"""Markdown: the overview for a CI step summary or a chat message."""

from __future__ import annotations

from typing import Any

from ... import textsafe
from ...status import look
from . import text
from .base import ReportFormat
from .registry import FORMATS


def _md(s: str | None) -> str:
    """Text for a table cell or a list item: HTML escaped (a device or inventory could put
    `<script>` there), `|` escaped, control characters shown, one line."""
    return textsafe.markdown(s or "")


def overview(doc: dict[str, Any]) -> list[str]:
    """The device × model matrix as a table: tonight's status and the last runs."""
    matrix = doc["matrix"]
    cells = {(c["device"], c["model_key"]): c for c in matrix["cells"]}
    models = matrix["models"]
    lines = [
        f"### Overview (last {matrix['runs']} runs per device × model, newest last)",
        "",
        "| device | " + " | ".join(_md(m["label"]) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for device in matrix["devices"]:
        row = []
        for m in models:
            c = cells.get((device, m["key"]))
            row.append(
                "–" if c is None else f"{text.badge(c['status'])} `{text.strip(c['history'])}`"
            )
        lines.append(f"| {_md(device)} | " + " | ".join(row) + " |")
    lines += ["", f"Legend: {text.legend()}", ""]
    return lines


def render(doc: dict[str, Any]) -> str:
    run = doc["run"]
    status = run["status"].upper()
    lines = [f"## edgeq lab: {status} — run `{run['run_id']}`", "", text.headline(doc), ""]
    lines += overview(doc)
    if doc["failing"]:
        lines += ["### Failing", ""]
        for f in doc["failing"]:
            what = ", ".join(f["checks"]) or f["status"]
            lines.append(
                f"- **{text.badge(f['status'])}** {_md(f['device'])} × {_md(f['model'])}: "
                f"{_md(what)} — {text.since(f)}"
            )
            lines += [f"  - {_md(m)}" for m in f["messages"]]
        lines.append("")
    if doc["recovered"]:
        lines += ["### Recovered", ""] + [f"- {_md(f['message'])}" for f in doc["recovered"]]
        lines.append("")
    lines += [
        "### Results",
        "",
        "| device | model | status | p50 ms | p90 ms | accuracy | size KB | notes |",
        "|---|---|---|--:|--:|--:|--:|---|",
    ]
    for r in doc["results"]:
        f = text.figures(r["metrics"])
        st = r["status"] if r["status"] == "pass" else f"**{look(r['status']).label}**"
        lines.append(
            f"| {_md(r['device'])} | {_md(r['model_label'])} | {st} | {f['p50']} | "
            f"{f['p90']} | {f['accuracy']} | {f['size']} | {_md(text.note(r))} |"
        )
    sweep = doc.get("sweep")
    if sweep:
        front = [c for c in sweep["candidates"] if c["front_size"] or c["front_latency"]]
        lines += [
            "",
            f"Sweep `{sweep['run_id']}`: {len(sweep['candidates'])} candidates, "
            f"{len(front)} on a Pareto front (see the HTML report).",
        ]
    lines += ["", f"History: `{doc['db']}`", ""]
    return "\n".join(lines)


FORMAT = FORMATS.register(ReportFormat("md", ".md", "Markdown overview (CI step summary)", render))
