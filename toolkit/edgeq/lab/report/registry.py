"""The report formats, one `Registry`: `--format` choices and help come from here.

Adding a format is one new module that registers its `ReportFormat`
(`FORMAT = FORMATS.register(ReportFormat(...))`) and its name in `modules` below.
"""

from __future__ import annotations

from ...errors import UsageError
from ...registry import Registry
from .base import ReportFormat

FORMATS: Registry[ReportFormat] = Registry(
    "report format",
    error=UsageError,
    package=__name__.rpartition(".")[0],
    modules=("html", "md", "junit", "json"),
)


def names() -> tuple[str, ...]:
    return FORMATS.names()


def help_text() -> str:
    """One line per format, for `edgeq lab report --help`."""
    return "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
