"""The Android path's helpers: [targets.android] values reaching an emulated adb server
(tests/support/adb_device.py), and the benchmark_model stand-in.

Every target points at the emulator with `adb_host = "127.0.0.1"` and its private port:
with a non-local host the client never starts an adb server of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeq import config
from edgeq.targets import make_target
from tests.support.adb_device import EmulatedAdbServer

ADB = shutil.which("adb")
STANDIN = Path(__file__).resolve().parent / "standin" / "benchmark_model"
#: A budget the emulated phone passes with the 1-epoch test model.
PHONE_BUDGET = {
    "max_model_kb": 60,
    "max_latency_ms": 1000,
    "latency_percentile": "mean",
    "min_accuracy": 0.3,
    "max_accuracy_drop_pp": 5,
}
ADB_ENV = (
    "ANDROID_SERIAL",
    "ANDROID_ADB_SERVER_PORT",
    "ANDROID_ADB_SERVER_ADDRESS",
    "ADB_SERVER_SOCKET",
    "ADB_VENDOR_KEYS",
    "EDGEQ_BENCHMARK_MODEL",
)


def adb_values(emu: EmulatedAdbServer | None = None, **over) -> dict:
    """[targets.android] values reaching `emu` (host 127.0.0.1: never auto-start a server)."""
    values = {"transport": "adb", "adb_host": "127.0.0.1"}
    if emu is not None:
        values["adb_port"] = emu.port
    values.update(over)
    return values


def adb_target(emu: EmulatedAdbServer | None = None, keep: bool = False, **over):
    return make_target(config.validate_target("android", adb_values(emu, **over), "test"), keep)


def device_path(emu: EmulatedAdbServer, path: str, serial: str | None = None) -> Path:
    """Where a device path lives in the emulator's sandbox on this host."""
    return emu.device(serial).root / path.lstrip("/")
