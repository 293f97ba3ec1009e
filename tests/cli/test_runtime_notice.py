"""LiteRT's one-time "Created TensorFlow Lite XNNPACK delegate" line (C++, fd 2) stays out
of edgeq's own output unless --debug. A real `edgeq` process each time: the line comes once
per process, with its first interpreter allocation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.realworld_models import build

NOTICE = "Created TensorFlow Lite XNNPACK delegate"


def _eval(*flags: str) -> subprocess.CompletedProcess:
    model, _ = build()["detector"]
    exe = Path(sys.executable).with_name("edgeq")
    return subprocess.run(
        [exe, *flags, "eval", str(model), "--json"], capture_output=True, text=True, timeout=300
    )


def test_eval_prints_no_runtime_notice_without_debug():
    proc = _eval()
    assert proc.returncode == 0, proc.stderr
    assert NOTICE not in proc.stderr and NOTICE not in proc.stdout


def test_eval_with_debug_shows_the_runtime_notice():
    proc = _eval("--debug")
    assert proc.returncode == 0, proc.stderr
    assert NOTICE in proc.stderr
