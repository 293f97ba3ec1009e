"""Retries: a device that is unreachable at first (rebooting) is retried with backoff and
then runs; a wrong key is never retried."""

from __future__ import annotations

import threading
import time

from edgeq.lab import load_inventory, run_lab
from tests.support import sshd
from tests.support.lab import PI_SSHD, write_inventory


def test_unreachable_device_is_retried_until_it_is_back(
    tmp_path, pi_python, artifacts, lab_sections
):
    folder, _ = artifacts
    booting = sshd.SshServer(tmp_path / "booting", extra_config=PI_SSHD)  # not started yet
    wrong_key = sshd.keygen(tmp_path / "wrong_key")
    locked_out = sshd.SshServer(tmp_path / "locked", extra_config=PI_SSHD).start()
    wd = tmp_path / "wd"
    wd.mkdir()
    lab_sections["lab"].update(models=[str(folder / "model_int8.tflite")], retries=3, backoff_s=1.0)
    inv = load_inventory(
        write_inventory(
            tmp_path / "lab.toml",
            lab_sections,
            {
                "booting": booting.target_values(python=pi_python, workdir=str(wd)),
                "locked-out": locked_out.target_values(key_file=str(wrong_key)),
            },
        )
    )
    booted = threading.Event()

    def on_event(ev):  # it "boots" during the first backoff, whenever that comes
        if ev.device == "booting" and ev.phase == "retry" and not booted.is_set():
            booted.set()
            booting.start()

    try:
        t0 = time.monotonic()
        run = run_lab(inv, on_event=on_event)
        took = time.monotonic() - t0
    finally:
        booting.stop()
        locked_out.stop()
    assert booted.is_set()
    dev = {d.name: d for d in run.devices}
    assert dev["booting"].status == "pass" and dev["booting"].health_attempts >= 2
    assert dev["locked-out"].status == "quarantined" and dev["locked-out"].health_attempts == 1
    assert "refused" in dev["locked-out"].reason
    assert dev["locked-out"].health_s < 5  # no backoff spent on an auth failure
    assert took >= 1.0  # the first backoff was waited
    (ok,) = [r for r in run.results if r.device == "booting"]
    assert ok.status == "pass"
