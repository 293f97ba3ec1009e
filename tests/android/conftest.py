"""Fixtures for the Android path: emulated adb servers driven by the REAL adb client
(helpers: tests/support/android.py).

Every target points at the emulator with `adb_host = "127.0.0.1"` and its private port:
with a non-local host the client never starts an adb server of its own, so no test can
leave a real server behind (each emulator's teardown also checks for one).
"""

from __future__ import annotations

import pytest

from tests.support.adb_device import EmulatedAdbServer, find_real_adb_servers
from tests.support.android import ADB, ADB_ENV


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
