"""The run document's schema keys (results.RUN_KEYS) cover every top-level key the device
runner writes: a key missing there would be dropped from every real result as 'unknown'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeq.results import RUN_KEYS

pytestmark = pytest.mark.unit

RUNNER = Path(__file__).resolve().parents[2] / "device_scripts" / "edgeq_runner.py"


def test_every_key_the_device_runner_writes_is_in_the_schema():
    src = RUNNER.read_text()
    # the function that builds the run document: from its literal to the next def
    start = src.index('    doc = {\n        "schema": SCHEMA,')
    body = src[start : src.index("\ndef ", start)]
    literal = body[: body.index("\n    }\n")]
    written = set(re.findall(r'\bdoc\["([a-z_]+)"\]\s*=', body))
    written |= set(re.findall(r'^        "([a-z_]+)":', literal, re.M))
    assert {"schema", "latency_ms", "environment", "contention", "memory"} <= written
    assert written - RUN_KEYS == set()
