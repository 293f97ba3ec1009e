"""A labgrid coordinator that stops answering for a while (the real coordinator of the
labgrid rig, paused with SIGSTOP, resumed with SIGCONT): its timed-out requests are the
lab's crowding, sent again with backoff — no device is failed, quarantined or tagged — and
only a pause longer than `patience_s` stops the run, with one clear error and the results
measured before it kept in the history."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edgeq.lab import load_inventory, run_lab
from edgeq.lab.backends import BackendUnavailable
from tests.support.lab import write_inventory

TIMEOUT_S = 1.0  # [labgrid] timeout_s: a request unanswered this long is sent again


def inventory(tmp_path: Path, rig, lab_sections, artifacts, **labgrid) -> Path:
    folder, _ = artifacts
    sections = {k: dict(v) for k, v in lab_sections.items()}
    sections["lab"].update(
        inventory=f"{rig['lab'].url}?suite=pair",
        models=[str(folder / "model_int8.tflite")],
        retries=0,  # nothing of the device's own retries may hide the coordinator's
    )
    sections["labgrid"] = {**rig["labgrid"], "timeout_s": TIMEOUT_S, **labgrid}
    return write_inventory(tmp_path / "lab.toml", sections, {})


class Pause:
    """SIGSTOP the coordinator on the first lab event of `phase` (for `device`, if given),
    SIGCONT `for_s` later (or at `resume()`)."""

    def __init__(self, pid: int, phase: str, for_s: float | None, device: str | None = None):
        self.pid, self.phase, self.for_s, self.device = pid, phase, for_s, device
        self.at: float | None = None
        self.resumed = threading.Event()

    def __call__(self, event) -> None:
        if self.at is not None or event.phase != self.phase:
            return
        if self.device and event.device != self.device:
            return
        os.kill(self.pid, signal.SIGSTOP)
        self.at = time.monotonic()
        if self.for_s is not None:
            threading.Timer(self.for_s, self.resume).start()

    def resume(self) -> None:
        if not self.resumed.is_set():
            os.kill(self.pid, signal.SIGCONT)
            self.resumed.set()


def release_by_hand(lab, places: list[str], timeout: float = 30) -> None:
    """What the error tells the user to do for a place a late request took."""
    deadline = time.time() + timeout
    while set(places) & set(lab.acquired()) and time.time() < deadline:
        for p in places:
            lab.client("-p", p, "release", check=False)
        time.sleep(0.5)


def test_a_coordinator_paused_past_its_timeout_does_not_stop_the_run(
    tmp_path, labgrid_rig, lab_sections, artifacts
):
    lab = labgrid_rig["lab"]
    inv = load_inventory(inventory(tmp_path, labgrid_rig, lab_sections, artifacts))
    # paused once the places are known and before the first is acquired: both acquires
    # wait on a coordinator that does not answer for 3.5 timeouts
    pause = Pause(lab.proc.pid, "queued", 3.5 * TIMEOUT_S)
    co = inv.backend.coordinator
    try:
        t0 = time.monotonic()
        run = run_lab(inv, on_event=pause)
    finally:
        pause.resume()
    assert pause.at is not None and pause.at - t0 < 5
    assert {r.device: r.status for r in run.results} == {"pi-a": "pass", "pi-b": "pass"}, [
        r.reason for r in run.results
    ]
    assert run.exit_code == 0
    assert co.retried >= 2  # both acquires timed out at least once and were sent again
    assert not any("could not release" in n for n in run.notices), run.notices
    for name in ("pi-a", "pi-b"):
        info = lab.show(name)
        assert "edgeq-health" not in info["tags"]  # the lab's wait is nobody's bad health
    assert not {"pi-a", "pi-b"} & set(lab.acquired())
    assert lab.client("reservations").stdout.strip() == ""


def test_a_pause_longer_than_patience_stops_the_run_and_keeps_what_was_measured(
    tmp_path, labgrid_rig, lab_sections, artifacts
):
    lab = labgrid_rig["lab"]
    path = inventory(tmp_path, labgrid_rig, lab_sections, artifacts, patience_s=4)
    inv = load_inventory(path)
    # one device at a time: pi-a is measured, then the coordinator stops answering for good
    pause = Pause(lab.proc.pid, "done", None, device="pi-a")
    try:
        t0 = time.monotonic()
        with pytest.raises(BackendUnavailable) as exc:
            run_lab(inv, parallel=1, on_event=pause)
        spent = time.monotonic() - pause.at
    finally:
        pause.resume()
        release_by_hand(lab, ["pi-a", "pi-b"])
    message = exc.value.message
    assert exc.value.exit_code == 3 and "\n" not in message
    assert f"the labgrid coordinator at {lab.address} did not answer AcquirePlace" in message
    assert "patience_s = 4" in message and "overloaded or stopped" in message
    # the late acquire may still happen: the message says how to undo it
    assert f"labgrid-client -x {lab.address} -p pi-b release" in message
    assert "the 1 result(s) measured before are kept in the history" in message
    assert 3 < spent < 4 + 3 * TIMEOUT_S + 10, spent  # bounded: patience, not forever
    assert time.monotonic() - t0 < 120
    db = sqlite3.connect(tmp_path / "history.sqlite")
    rows = db.execute("SELECT device, status FROM results").fetchall()
    assert rows == [("pi-a", "pass")]
    assert db.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    assert "edgeq-health" not in lab.show("pi-b")["tags"]
