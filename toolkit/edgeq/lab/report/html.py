"""HTML: one self-contained page (Jinja2 templates with autoescape, figures as data: PNGs).

No script, no font, no stylesheet or image is fetched: the page makes no request at all,
so it can be mailed, kept as a CI artifact or opened offline. It reads at phone width.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ...status import LOOKS, RECORDED, look
from . import plots, text
from .base import ReportFormat
from .registry import FORMATS


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("edgeq.lab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        badge=text.badge,
        num=text.num,
        day=text.day,
        since=text.since,
        note=text.note,
        figures=text.figures,
        look=look,
        breakable=breakable,
    )
    return env


def breakable(label: str) -> Markup:
    """`label` escaped, with line-break opportunities after `_`, `.` and `-`: a long model
    file name wraps between its words, never inside one."""
    out = Markup("")
    for ch in str(label):
        out += escape(ch)
        if ch in "_.-":
            out += Markup("<wbr>")
    return out


def data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def render(doc: dict[str, Any]) -> str:
    matrix = doc["matrix"]
    cells = {(c["device"], c["model_key"]): c for c in matrix["cells"]}
    trends = {r["anchor"]: data_uri(plots.trend_png(r)) for r in doc["results"]}
    sweep = doc.get("sweep")
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            doc=doc,
            run=doc["run"],
            cells=cells,
            trends=trends,
            pareto=data_uri(plots.pareto_png(sweep)) if sweep else None,
            looks={s.value: lk for s, lk in LOOKS.items()},
            recorded=RECORDED,
            headline=text.headline(doc),
            env_fields=list(doc["devices"][0]["environment_summary"]) if doc["devices"] else [],
        )
    )


FORMAT = FORMATS.register(
    ReportFormat("html", ".html", "one self-contained page with the plots", render)
)
