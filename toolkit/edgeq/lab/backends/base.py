"""Lab backends: where the lab's devices come from, and how one is held while it is used.

A backend is chosen by the inventory's scheme. A plain `lab.toml` is the `file` backend:
its `[devices.NAME]` tables are the devices and a device is held with `flock(2)` on this
host. `[lab] inventory = "labgrid://HOST:PORT?TAG=VALUE"` (or the same URL given to
`edgeq lab run --inventory`) is the `labgrid` backend: the coordinator's places are the
devices and a device is held by acquiring its place.

A backend module defines one `Backend` subclass and registers it (`@register` here, plus
its module name in `backends/__init__.py`). The scheduler only ever calls:

    discover()                 → raw device tables (the keys of [devices.NAME]) it knows of
    lease(device, owner, s)    → a Lease: acquire(on_wait) waits up to s, release() in finally
    skip_reason(device)        → why not to run a device at all (e.g. tagged unhealthy)
    mark_health(device, ok, …) → make a health verdict visible to others (e.g. a place tag)
    notices()                  → lines to show the user (e.g. a place left acquired)
    interrupt()                → the run is being stopped (Ctrl-C): stop waiting for devices
    close()

Constructors never touch the network; `discover()` may, and raises ConnectError (exit 3)
naming the address and the fix when the source cannot be reached; `BackendUnavailable`
from a lease stops the whole run the same way (it is no device's failure).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...devicelock import DeviceBusy, Lease, OnWait
from ...errors import ConnectError
from ...fields import Field

if TYPE_CHECKING:
    from ..device import Device

__all__ = ["Backend", "BackendUnavailable", "DeviceBusy", "Lease", "OnWait"]


class BackendUnavailable(ConnectError):
    """The inventory's source (e.g. a labgrid coordinator) cannot be reached.

    Not a device's fault: the run stops with exit 3 and no device is recorded as failed."""

    transient = False


class Backend(ABC):
    """Where the devices come from and how one is held (see the module docstring)."""

    #: The inventory URL scheme this backend answers (`file` for a lab.toml path).
    scheme: ClassVar[str] = ""
    #: The name of its own table in lab.toml (e.g. "labgrid"), "" for none.
    table: ClassVar[str] = ""
    #: The keys of that table, declared and validated like every other config key.
    fields: ClassVar[dict[str, Field]] = {}

    #: Set by `lab run --include-quarantined`: also try devices marked unhealthy.
    include_quarantined: bool = False

    def __init__(
        self,
        url: str,
        settings: dict[str, Any],
        lab: dict[str, Any],
        folder: Path,
        where: str,
    ) -> None:
        """`url`: the inventory spec; `settings`: its validated table; `lab`: the [lab] table;
        `folder`: where relative paths start; `where`: for messages (file and table)."""
        self.url = url
        self.settings = settings
        self.lab = lab
        self.folder = folder
        self.where = where

    def discover(self) -> dict[str, dict[str, Any]]:
        """Device tables this backend knows of, keyed by device name (file: none)."""
        return {}

    @abstractmethod
    def lease(self, device: Device, owner: dict[str, Any], timeout_s: float) -> Lease:
        """A lease on `device` (nothing is taken before `acquire`)."""

    def skip_reason(self, device: Device) -> str | None:
        """Why this device must not be used at all this run (None: use it)."""
        return None

    def mark_health(self, device: Device, ok: bool, reason: str) -> None:  # noqa: B027
        """Publish a health-check verdict where others see it (default: nowhere)."""

    def notices(self) -> list[str]:
        """Lines worth telling the user about the backend's state (default: none)."""
        return []

    def interrupt(self) -> None:  # noqa: B027
        """The run is stopping (Ctrl-C): give up waiting for busy devices (default: no-op)."""

    def close(self) -> None:  # noqa: B027
        """Release whatever the backend itself holds (connections, sessions)."""
