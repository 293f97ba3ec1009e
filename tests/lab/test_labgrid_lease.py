"""Leases on labgrid places, below the scheduler: a place held by this very user outside
edgeq is waited for like anybody's (no marker: not a crashed run), and a coordinator lost in
the middle of a run is `BackendUnavailable` (the run stops, exit 3), not a device failure."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from edgeq.lab.backends import BackendUnavailable, DeviceBusy
from edgeq.lab.backends.labgrid import LabgridBackend
from tests.support import labgrid as lg


def backend(address: str, tmp_path, **settings) -> LabgridBackend:
    values = {"timeout_s": 5, "poll_s": 0.2, **settings}
    lab = {"lock_dir": str(tmp_path / "locks")}
    return LabgridBackend(f"labgrid://{address}", values, lab, tmp_path, "test [labgrid]")


def device(b: LabgridBackend, place: str):
    return SimpleNamespace(name=place, lock_key=f"labgrid://{b.address}/{place}")


def test_a_place_this_user_holds_by_hand_is_waited_for_then_busy(labgrid_rig, tmp_path):
    lab = labgrid_rig["lab"]
    lab.client("-p", "held", "acquire")  # same host and user as edgeq, no edgeq marker
    b = backend(lab.address, tmp_path)
    try:
        waits = []
        lease = b.lease(device(b, "held"), {"run_id": "t"}, 1.5)
        t0 = time.monotonic()
        with pytest.raises(DeviceBusy) as exc:
            lease.acquire(waits.append)
        assert f"place held is busy: held by {b.coordinator.me};" in exc.value.message
        assert 1.4 < time.monotonic() - t0 < 10
        assert waits and "waiting for place held" in waits[0]
        assert not any("ended without releasing" in n for n in b.notices())
        assert lab.show("held")["acquired"] == b.coordinator.me  # still the user's
    finally:
        b.close()
        lab.client("-p", "held", "release")


def test_losing_the_coordinator_mid_run_is_backend_unavailable(tmp_path):
    if lg.available():
        pytest.skip(lg.available())
    lab = lg.Lab(tmp_path / "coordinator").start()
    b = backend(lab.address, tmp_path)
    try:
        lab.client("-p", "lonely", "create")
        b.coordinator.open()
        lab.stop()  # the coordinator goes away after the run started
        lease = b.lease(device(b, "lonely"), {"run_id": "t"}, 5)
        with pytest.raises(BackendUnavailable) as exc:
            lease.acquire()
        assert f"coordinator at {lab.address} is unreachable" in exc.value.message
        assert exc.value.exit_code == 3 and not lease.held
        assert not any((tmp_path / "locks").glob("*.acquired"))
    finally:
        b.close()
        lab.stop()
