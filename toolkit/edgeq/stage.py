"""Staging: the files a deploy sends to the device, made once and reused by content hash.

The evaluation data is the test split as uint8 images + labels (+ the preprocessing the
runner must apply), written deterministically and cached under the edgeq cache folder, so
the same data always has the same sha256 and a second deploy sends nothing.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__, data, fsutil
from .hostrun import DEFAULT_INPUT_OFFSET, DEFAULT_INPUT_SCALE


def cache_root() -> Path:
    """$EDGEQ_CACHE_DIR, else $XDG_CACHE_HOME/edgeq, else ~/.cache/edgeq."""
    env = os.environ.get("EDGEQ_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeq"


def runner_path() -> Path:
    """The device runner shipped with this edgeq."""
    return Path(str(resources.files("edgeq_device") / "edgeq_runner.py"))


def eval_data(dataset: str, data_path: Path | None = None, limit: int | None = None) -> Path:
    """The staged evaluation file for the dataset's test split (cached by content)."""
    source = data.resolve(dataset, data_path)
    src_id = fsutil.sha256_file(source) if source else f"download:{dataset}"
    key = fsutil.sha256_bytes(f"{src_id}|{limit}|{__version__}".encode())[:20]
    out = cache_root() / "staging" / f"{dataset}-test-{key}.npz"
    if out.is_file():
        return out
    ds = data.load(dataset, data_path)
    x, y = ds.x_test, ds.y_test
    if limit:
        idx = data.subset_indices(len(x), limit)
        x, y = x[idx], y[idx]
    with fsutil.atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            x=np.ascontiguousarray(x, dtype=np.uint8),
            y=np.ascontiguousarray(y).astype(np.uint8),
            preprocess_scale=np.float64(DEFAULT_INPUT_SCALE),
            preprocess_offset=np.float64(DEFAULT_INPUT_OFFSET),
        )
    return out
