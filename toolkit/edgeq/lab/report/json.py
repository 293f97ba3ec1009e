"""JSON: the report document itself (schema `edgeq.lab-report/2`), for other tools."""

from __future__ import annotations

import json
from typing import Any

from .base import ReportFormat
from .registry import FORMATS


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


FORMAT = FORMATS.register(ReportFormat("json", ".json", "the report document as JSON", render))
