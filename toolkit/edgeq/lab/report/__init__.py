"""Lab reports from the history, one module per format behind one interface.

    document.py   build(history, run_id, trend_runs, matrix_runs): the report document
                  (overview matrix, failing list, details with trends and regression
                  bands, environment, sweep) that every format renders
    base.py       ReportFormat: name, file suffix, description, render(doc) -> str
    registry.py   FORMATS: the formats, registered in one place
    html.py       one self-contained page (Jinja2 templates in templates/, PNG plots)
    md.py         Markdown overview for CI step summaries
    junit.py      JUnit XML, a testcase per device × model × check
    json.py       the document itself
    plots.py      the trend and Pareto figures
    output.py     parse_formats, render, write / write_all (a file or a folder)

Add a format: a module with `FORMAT = ReportFormat(name, suffix, description, render)`
and its line in registry.py; `edgeq lab report --format` picks it up.
"""

from __future__ import annotations

from typing import Any

from . import registry
from .base import ReportFormat
from .document import REPORT_SCHEMA, build, model_key, model_label, pareto_front
from .output import parse_formats, render, write, write_all
from .registry import FORMATS

__all__ = [
    "FORMATS",
    "REPORT_SCHEMA",
    "ReportFormat",
    "build",
    "model_key",
    "model_label",
    "pareto_front",
    "parse_formats",
    "registry",
    "render",
    "to_html",
    "to_junit",
    "to_markdown",
    "write",
    "write_all",
]


def to_markdown(doc: dict[str, Any]) -> str:
    return FORMATS["md"].render(doc)


def to_junit(doc: dict[str, Any]) -> str:
    return FORMATS["junit"].render(doc)


def to_html(doc: dict[str, Any]) -> str:
    return FORMATS["html"].render(doc)
