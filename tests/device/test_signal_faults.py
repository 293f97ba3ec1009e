"""Stopping edgeq: Ctrl-C in each phase of a deploy (stage, push, run, pull), SIGTERM and
SIGHUP like Ctrl-C (exit 143/129, the device's process group stopped, the workdir gone),
the lab stopped by SIGTERM (leases released), and Ctrl-C while edgeq is still starting.

The signals are real (os.kill); in-process tests send them at a chosen point of the
deploy (a progress line, a finished upload, the runner running, a finished download)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from edgeq.devicelock import DeviceLock
from edgeq.lab.history import History
from edgeq.targets.ssh import SshTarget
from tests.support.config import write_config
from tests.support.faults import FAST, alive, edgeq_proc, leftovers, new_marker, slow_python
from tests.support.lab import write_inventory
from tests.support.procs import wait_for


def _sigint_soon() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _slow_python(tmp_path, pi_python, marker: str, seconds: int = 60) -> str:
    """The device python, but the benchmark (not the --probe) first sleeps."""
    return slow_python(tmp_path / "slow-python", pi_python, marker, seconds)


@pytest.mark.parametrize("phase", ["stage", "push", "run", "pull"])
def test_ctrl_c_in_each_phase(phase, pi_deploy, tmp_path, pi_python, pi_workdir, monkeypatch):
    from edgeq.cli import device

    marker = new_marker(f"phase-{phase}")
    over = {}
    if phase == "stage":
        real = device._progress

        def progress(json_out):
            say = real(json_out)

            def hook(msg):
                say(msg)
                if msg.startswith("staging the"):
                    _sigint_soon()

            return hook

        monkeypatch.setattr(device, "_progress", progress)
    elif phase == "push":
        real_put = SshTarget._put

        def put(self, local, remote):
            real_put(self, local, remote)
            if ".npz.part" in remote:  # the data has arrived, not yet renamed into place
                _sigint_soon()

        monkeypatch.setattr(SshTarget, "_put", put)
    elif phase == "run":
        over["python"] = _slow_python(tmp_path, pi_python, marker)

        def when_running():
            if wait_for(lambda: alive(marker), 60):
                _sigint_soon()

        threading.Thread(target=when_running, daemon=True).start()
    else:
        real_get = SshTarget._get

        def get(self, remote, local):
            real_get(self, remote, local)
            _sigint_soon()

        monkeypatch.setattr(SshTarget, "_get", get)
    t0 = time.monotonic()
    res = pi_deploy(**over)
    assert res.exit_code == 130, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "edgeq: interrupted (SIGINT)"
    assert "Traceback" not in res.stderr
    assert time.monotonic() - t0 < 60
    assert wait_for(lambda: not alive(marker), 5)
    assert leftovers(pi_workdir) == []  # no run folder, no half upload
    assert not list((tmp_path / "results").glob("*.json"))


@pytest.mark.parametrize(
    "sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_sigterm_and_sighup_stop_like_ctrl_c(
    sig, code, tmp_path, pi_values, pi_python, pi_workdir, data_dir, artifacts
):
    marker = new_marker(f"{signal.Signals(sig).name}")
    slow = _slow_python(tmp_path, pi_python, marker, 120)
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": pi_values(python=slow)})
    proc = edgeq_proc(
        ["deploy", "--target", "pi", "--config", cfg, "--model",
         artifacts[0] / "model_int8.tflite", "--data", data_dir, *FAST],
        tmp_path,
    )  # fmt: skip
    try:
        assert wait_for(lambda: alive(marker), 60), "the runner never started"
        assert any(p.name.startswith("run.") for p in pi_workdir.iterdir())
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert f"edgeq: interrupted ({signal.Signals(sig).name})" in err
    assert "Traceback" not in err
    assert time.monotonic() - t0 < 10
    assert not alive(marker)  # the device's process group was stopped, not left at 100 %
    assert leftovers(pi_workdir) == []


def test_sigterm_stops_the_lab_and_releases_the_device(
    tmp_path, pi_python, artifacts, lab_sections
):
    marker = new_marker("lab-term")
    slow = _slow_python(tmp_path, pi_python, marker, 120)
    wd = tmp_path / "host-wd"
    wd.mkdir()
    lab_sections["lab"]["models"] = [str(artifacts[0] / "model_int8.tflite")]
    inv = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {"host": {"transport": "local", "python": slow, "workdir": str(wd)}},
    )
    proc = edgeq_proc(["lab", "run", "--inventory", inv], tmp_path)
    try:
        assert wait_for(lambda: alive(marker), 90), "the benchmark never started"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 15
    assert not alive(marker)
    assert leftovers(wd) == []
    lock_dir = tmp_path / "locks"
    (held,) = [p for p in lock_dir.iterdir()]
    identity = __import__("json").loads(held.read_text())["identity"]
    with DeviceLock(identity, lock_dir, timeout_s=0):  # free at once
        pass
    with History(tmp_path / "history.sqlite") as h:
        (run,) = h.runs()
    assert run["status"] == "interrupted"


def _mapped(pid: int, library: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return library in fh.read()
    except OSError:
        return False


# Two points of edgeq's start-up, told by the native libraries its imports have loaded:
# numpy's (about a third in), sqlite3's (the lab's history, about two thirds in). Both are
# loaded while `edgeq.cli.main` is still being imported.
@pytest.mark.parametrize("library", ["_multiarray_umath", "_sqlite3"])
def test_ctrl_c_during_start_up_prints_no_traceback(tmp_path, library):
    proc = edgeq_proc(["targets"], tmp_path)
    try:
        assert wait_for(lambda: _mapped(proc.pid, library), 30, step=0.002), library
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "edgeq: interrupted", err
