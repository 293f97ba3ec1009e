"""The `file` backend: the devices are the `[devices.NAME]` tables of lab.toml, and a
device is held with `flock(2)` on this host (see `edgeq.devicelock`). Scope: one lab host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...devicelock import DeviceLock, lock_dir_of
from . import register
from .base import Backend, Lease


@register
class FileBackend(Backend):
    scheme = "file"

    @property
    def lock_dir(self) -> Path:
        return lock_dir_of(self.lab.get("lock_dir") or "", self.folder)

    def lease(self, device: Any, owner: dict[str, Any], timeout_s: float) -> Lease:
        return DeviceLock(device.identity, self.lock_dir, timeout_s, owner=owner)
