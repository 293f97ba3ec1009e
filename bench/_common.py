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


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of `values`."""
    import statistics

    vals = [float(v) for v in values]
    return {
        "n": len(vals),
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
    }


def pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """ "mean ± std" of `values` × `scale` (percent by default)."""
    s = spread(values)
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def code_hash(*modules: str) -> str:
    """sha256 of edgeq source files (relative to toolkit/edgeq), to key cached results."""
    import hashlib

    h = hashlib.sha256()
    root = REPO / "toolkit" / "edgeq"
    for rel in modules:
        for f in sorted(root.glob(rel)):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]
