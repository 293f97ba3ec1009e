"""Shared by the bench scripts: a model to measure without training a full one."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_int8_model(out: Path) -> Path:
    """A 1-epoch book CNN converted to int8 (cached in `out`); latency does not depend on
    how well it was trained, only on its graph."""
    art = out / "model_int8.tflite"
    if art.is_file():
        return art
    from edgeq import convert, train

    fixtures = REPO / "tests" / "fixtures"
    res = train.train(train.Recipe(epochs=1), out, fixtures / "mnist.npz")
    convert.convert(res.model_path, ["float32", "int8"], out, 200, "mnist", fixtures)
    return art


def setup_env() -> None:
    os.environ.setdefault("EDGEQ_CACHE_DIR", "/tmp/edgeq-bench-cache")
