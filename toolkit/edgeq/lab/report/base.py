"""The one interface every report format implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Document = dict[str, Any]


@dataclass(frozen=True)
class ReportFormat:
    """A report format: its `--format` name, the suffix of the file it writes (a folder
    `--out` gets `lab-report<suffix>`), one line for `--help`, and `render(doc) -> str`
    from the document that `document.build` makes out of the history."""

    name: str
    suffix: str
    description: str
    render: Callable[[Document], str]
