"""Where things are: the repository, the small data fixtures, and the full-size data of the
slow tier (EDGEQ_DATA_DIR or ../shared/data, read before the tests hide the variable)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

AMBIENT_DATA_DIR = os.environ.get("EDGEQ_DATA_DIR")  # read before tests hide it


def full_data_dir() -> Path | None:
    """Where the full mnist.npz lives, if anywhere on this machine."""
    env = AMBIENT_DATA_DIR
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (c / "mnist.npz").is_file():
            return c
    return None
