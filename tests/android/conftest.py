"""Fixtures for the Android path: emulated adb servers driven by the REAL adb client.

Every target points at the emulator with `adb_host = "127.0.0.1"` and its private port:
with a non-local host the client never starts an adb server of its own, so no test can
leave a real server behind (each emulator's teardown also checks for one).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeq import config
from edgeq.targets import make_target
from tests.emulators.adb_device import EmulatedAdbServer, find_real_adb_servers

ADB = shutil.which("adb")
STANDIN = Path(__file__).resolve().parent / "standin" / "benchmark_model"
SAMPLES = Path(__file__).resolve().parent / "samples"
ADB_ENV = (
    "ANDROID_SERIAL",
    "ANDROID_ADB_SERVER_PORT",
    "ANDROID_ADB_SERVER_ADDRESS",
    "ADB_SERVER_SOCKET",
    "ADB_VENDOR_KEYS",
    "EDGEQ_BENCHMARK_MODEL",
)


@pytest.fixture()
def phones(tmp_path, monkeypatch):
    """Start emulated adb servers; stopped at teardown, with no real adb server left."""
    if ADB is None:
        pytest.skip("needs the adb client: sudo apt-get install adb (.ci/run installs it)")
    for var in ADB_ENV:
        monkeypatch.delenv(var, raising=False)
    started: list[EmulatedAdbServer] = []

    def start(**kw) -> EmulatedAdbServer:
        emu = EmulatedAdbServer(tmp_path / f"phone{len(started)}", **kw).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
        assert find_real_adb_servers(emu.port) == [], "a real adb server was left running"


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
