"""The report formats, registered in one place: `--format` choices and help come from here.

Adding a format is one new module with a `FORMAT = ReportFormat(...)` and one line below.
"""

from __future__ import annotations

from . import html, json, junit, md
from .base import ReportFormat

FORMATS: dict[str, ReportFormat] = {
    f.name: f
    for f in (
        html.FORMAT,
        md.FORMAT,
        junit.FORMAT,
        json.FORMAT,
    )
}


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def help_text() -> str:
    """One line per format, for `edgeq lab report --help`."""
    return "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
