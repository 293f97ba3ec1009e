"""Contention and trouble on the host: two deploys to one device, a history another
process keeps locked, a results folder that is full or cannot be written."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeq.lab import load_inventory, run_lab
from edgeq.lab.history import History
from tests.support.config import write_config
from tests.support.faults import (
    EASY,
    FAST,
    alive,
    edgeq_proc,
    error_line,
    fill,
    leftovers,
    new_marker,
    script,
    slow_python,
)
from tests.support.lab import write_inventory
from tests.support.procs import wait_for

# --------------------------------------------------------------------------- device lock


@pytest.fixture()
def busy_pi(tmp_path, pi_values, pi_python, artifacts, data_dir):
    """A deploy in another process that holds the Pi for ~6 s; yields it once running."""
    marker = new_marker("busy")
    slow = slow_python(tmp_path / "slow-python", pi_python, marker, 6)
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": pi_values(python=slow)})
    model = artifacts[0] / "model_int8.tflite"
    proc = edgeq_proc(
        ["deploy", "--target", "pi", "--config", cfg, "--model", model, "--data", data_dir,
         "--results", tmp_path / "first", *FAST],
        tmp_path,
    )  # fmt: skip
    try:
        assert wait_for(lambda: alive(marker), 60), "the first deploy never started"
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # (edgeq's own cleanup stops its process on the device)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_second_deploy_with_no_wait_says_the_device_is_busy(busy_pi, pi_deploy):
    res = pi_deploy("--no-wait")
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert f"busy: held by pid {busy_pi.pid}" in line
    assert "edgeq deploy --target pi" in line  # what holds it
    assert "leave out --no-wait" in line


def test_second_deploy_waits_for_the_first(busy_pi, pi_deploy, pi_workdir):
    t0 = time.monotonic()
    res = pi_deploy("--json", budget=EASY)
    assert res.exit_code == 0, res.stderr
    assert f"pi is in use by pid {busy_pi.pid}" in res.stderr and "waiting for it" in res.stderr
    _, err = busy_pi.communicate(timeout=60)
    assert busy_pi.returncode in (0, 1), err  # the first one finished its own run
    assert time.monotonic() - t0 > 2  # and the second waited for it
    assert leftovers(pi_workdir) == []


# --------------------------------------------------------------------------- history


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the write lock, kept
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LOCKER), str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture()
def local_lab(tmp_path, artifacts, lab_sections):
    lab_sections["lab"]["models"] = [str(artifacts[0] / "model_int8.tflite")]
    lab_sections["lab"]["history_timeout_s"] = 1.5
    return write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})


def test_a_locked_history_is_waited_for_then_a_clear_error(cli, tmp_path, local_lab):
    db = tmp_path / "history.sqlite"
    History(db).close()
    locker = _hold_lock(db, 60)
    try:
        t0 = time.monotonic()
        res = cli("lab", "run", "--inventory", local_lab)
        took = time.monotonic() - t0
    finally:
        locker.kill()
        locker.wait()
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert f"the lab history {db} is locked by another process" in line
    assert "stayed locked for 1.5 s" in line and "fuser" in line
    assert took >= 1.5
    with History(db) as h:
        assert h.runs() == []  # nothing was measured, nothing half-recorded


def test_a_history_locked_mid_run_keeps_the_results_aside(tmp_path, local_lab):
    db = tmp_path / "history.sqlite"
    lockers = []

    def on_event(ev):  # once the benchmark runs, another process takes the history
        if ev.phase == "running" and "running the benchmark" in ev.message and not lockers:
            lockers.append(_hold_lock(db, 60))

    try:
        run = run_lab(load_inventory(local_lab), on_event=on_event)
    finally:
        for p in lockers:
            p.kill()
            p.wait()
    assert lockers and run.exit_code == 1 and run.unrecorded == 1
    (notice,) = [n for n in run.notices if "could not be written" in n]
    saved = tmp_path / f"unrecorded-{run.run_id}.json"
    assert str(saved) in notice
    doc = json.loads(saved.read_text())
    (row,) = doc["results"]
    assert row["status"] == "pass" and row["metrics"]["latency_p90"] > 0
    assert any("was not recorded" in n for n in run.notices)


# --------------------------------------------------------------------------- results


def test_full_results_folder_is_found_before_measuring(pi_deploy, tmp_path, tmpfs, pi_workdir):
    results = tmpfs(tmp_path / "results", 64)
    fill(results)
    res = pi_deploy()
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert f"--results {results}: cannot write there (No space left on device)" in line
    assert list(pi_workdir.iterdir()) == []  # the device was never touched
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith("filler")) == []


def test_results_folder_that_fills_during_the_run_falls_back(pi_deploy, tmp_path, tmpfs, pi_python):
    results = tmpfs(tmp_path / "results", 64)
    # the "device" is this machine: while it runs, the host's results disk fills up
    filling = script(
        tmp_path / "filling-python",
        f"case \"$*\" in *--probe*) ;; *) head -c 10000000 /dev/zero > '{results}/big' ;; "
        f'esac\nexec "{pi_python}" "$@"\n',
    )
    res = pi_deploy("--json", python=filling, budget=EASY)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    saved = doc["host"]["saved_to"]
    assert not saved.startswith(str(results))
    assert "No space left on device" in doc["host"]["save_error"]
    assert f"could not write the result to {results}" in res.stderr and saved in res.stderr
    assert json.loads(Path(saved).read_text())["schema"] == "edgeq.deploy/1"
    assert sorted(p.name for p in results.iterdir()) == ["big"]  # nothing half-written


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "a-file" / "results", id="under-a-file"),
        pytest.param(lambda tmp: "/proc/edgeq-results", id="under-proc"),
    ],
)
def test_unwritable_results_folder_is_found_before_measuring(
    deploy_cli, tmp_path, pi_values, artifacts, pi_workdir, where
):
    (tmp_path / "a-file").write_text("not a folder")
    cfg = write_config(tmp_path / "edgeq.toml", {"pi": pi_values()})
    target = where(tmp_path)
    res = deploy_cli("pi", cfg, artifacts[0] / "model_int8.tflite", "--results", target)
    assert res.exit_code == 2
    line = error_line(res.stderr)
    assert f"--results {target}: cannot write there" in line and "choose a writable" in line
    assert list(pi_workdir.iterdir()) == []
