"""The `file` backend: the devices are the `[devices.NAME]` tables of lab.toml, and a
device is held with `flock(2)` on this host (see `flock.py`). Scope: one lab host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import register
from .base import Backend, Lease
from ...devicelock import DeviceLock, default_lock_dir


@register
class FileBackend(Backend):
    scheme = "file"

    @property
    def lock_dir(self) -> Path:
        value = self.lab.get("lock_dir") or ""
        if not value:
            return default_lock_dir()
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.folder / p

    def lease(self, device: Any, owner: dict[str, Any], timeout_s: float) -> Lease:
        return DeviceLock(device.identity, self.lock_dir, timeout_s, owner=owner)
