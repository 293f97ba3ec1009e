"""Where edgeq keeps things on this host: its cache folder and the device runner it ships."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["cache_root", "runner_path"]


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
