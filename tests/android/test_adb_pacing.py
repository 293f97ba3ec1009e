"""Connects through one adb server are paced (`targets.pacing`, the lab's `connect_per_host`):
the REAL adb client, eight phones on one emulated adb server that answers every request
late (as a busy exporter host's server does), eight targets opened at the same moment.
The server itself counts the requests it is answering at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgeq.targets import pacing
from tests.support.adb_device import DeviceSpec
from tests.support.android import adb_target

PHONES = 8
DELAY_S = 0.3  # per request: long enough that unpaced connects overlap


def open_all_at_once(emu) -> tuple[int, list[str]]:
    """Open eight targets at once → (the server's peak of open connections while they
    connected, each target's answer to one command afterwards)."""
    targets = [adb_target(emu, serial=f"phone{i}") for i in range(PHONES)]
    start = threading.Barrier(PHONES)

    def connect(target) -> None:
        start.wait()  # all eight at the same moment
        target.open()

    try:
        with ThreadPoolExecutor(PHONES) as pool:
            list(pool.map(connect, targets))
        peak = emu.peak_serving  # only the connects so far
        emu.answer_delay_s = 0.0
        return peak, [t.run(["echo", "ok"]).stdout.strip() for t in targets]
    finally:
        for t in targets:
            t.close()


@pytest.mark.parametrize("limit", [2, PHONES])
def test_adb_connects_to_one_server_are_paced(phones, monkeypatch, limit):
    emu = phones(devices=[DeviceSpec(serial=f"phone{i}") for i in range(PHONES)])
    pacer = pacing.Pacer(limit)
    monkeypatch.setattr(pacing, "CONNECTIONS", pacer)
    emu.answer_delay_s = DELAY_S
    peak, answers = open_all_at_once(emu)
    print(f"limit {limit}: server peak {peak}, pacer peak {pacer.peak}, waits {pacer.waits}")
    assert answers == ["ok"] * PHONES  # every phone reached, through its own serial
    assert pacer.in_flight() == 0
    if limit < PHONES:
        # never more than `limit` connects in flight at the adb server, whatever the lab's
        # parallelism; the others waited their turn
        assert pacer.peak == limit
        assert pacer.waits >= PHONES - limit
        assert 1 <= peak <= limit, peak
    else:
        # the control: unpaced, the same eight connects pile up at the server (so the bound
        # above is the pacer's doing, and the server's count can see a breach)
        assert peak > 2, peak
