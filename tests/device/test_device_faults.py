"""The device and the connection: a disk that fills up during the push, a workdir base
that cannot be written, a connection that drops in the middle (the sshd is killed), a
command that hangs. Each: the documented exit code, one line naming the fix, nothing left
on the device."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.config import write_config
from tests.support.faults import (
    EASY,
    FAST,
    alive,
    cached,
    edgeq_proc,
    error_line,
    leftovers,
    new_marker,
    script,
    slow_python,
)
from tests.support.lab import PI_SSHD
from tests.support.procs import kill_device, wait_for


@pytest.mark.parametrize("transfer", ["sftp", "exec"])
def test_disk_fills_up_during_the_push(pi_deploy, tmp_path, tmpfs, transfer):
    # 128 KB: the runner (27 KB) and the model (42 KB) fit, the evaluation data (160 KB)
    # does not — the disk fills up in the middle of its upload.
    small = tmpfs(tmp_path / "small-disk", 128)
    res = pi_deploy(workdir=str(small), transfer=transfer)
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert "no space left on the device for mnist-test-" in line
    assert "KB free" in line and 'set workdir = "/a/bigger/disk"' in line
    assert leftovers(small) == []  # the partial upload was removed
    assert not cached(small, ".npz")
    assert cached(small, ".tflite")  # what did fit stays cached for the next run


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "a-file" / "edgeq", id="under-a-file"),
        pytest.param(lambda tmp: "/proc/edgeq-work", id="under-proc"),
    ],
)
def test_workdir_base_not_writable(pi_deploy, tmp_path, where):
    (tmp_path / "a-file").write_text("not a folder")
    base = where(tmp_path)
    res = pi_deploy(workdir=str(base))
    assert res.exit_code == 3
    line = error_line(res.stderr)
    assert f"cannot create edgeq's folders under {base} on the device" in line
    assert 'set workdir = "/a/writable/folder" in [targets.pi]' in line


def test_connection_drop_mid_run_exits_3_and_the_next_run_cleans_up(
    sshd_factory, pi_python, tmp_path, data_dir, artifacts, cli
):
    server = sshd_factory(extra_config=PI_SSHD)
    base = tmp_path / "pi-base"
    base.mkdir()
    marker = new_marker("drop")
    slow = slow_python(tmp_path / "slow-python", pi_python, marker, 30)
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"pi": server.target_values(python=slow, workdir=str(base))},
    )
    model = artifacts[0] / "model_int8.tflite"
    args = ["deploy", "--target", "pi", "--model", model, "--data", data_dir]
    proc = edgeq_proc([*args, "--config", cfg, *FAST], tmp_path)
    assert wait_for(lambda: alive(marker), 60), proc.stderr.read() if proc.poll() else ""
    kill_device(server)  # pull the plug: the sshd and every session under it
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 15  # noticed at once, not after a long timeout
    assert proc.returncode == 3, err
    line = error_line(err)
    assert "closed the session" in line or ("connection to" in line and "lost" in line)
    # The device could not be cleaned while it was gone; its run folder is an orphan of
    # a process that has exited...
    assert [p.name for p in base.iterdir() if p.name.startswith("run.")]
    # ...and the next run on the device, once it is back, removes it.
    server.start()
    again = write_config(
        tmp_path / "again.toml",
        {"pi": server.target_values(python=pi_python, workdir=str(base))},
        EASY,
    )
    res = cli(*args, "--config", again, "--results", tmp_path / "results", *FAST)
    assert res.exit_code == 0, res.stderr
    assert leftovers(base) == []


def test_a_hanging_command_is_stopped_with_its_process_group(pi_deploy, tmp_path, pi_workdir):
    marker = new_marker("hang-group")
    naps = [f"{n}{os.getpid()}" for n in (71, 72, 73)]  # sleeps no other test starts
    # the "runner" starts helpers of its own, then hangs: all of them must go
    hang = script(
        tmp_path / "hanging-python",
        f"sleep {naps[0]} & sleep {naps[1]} & sh -c 'sleep {naps[2]}' & wait # {marker}\n",
    )
    t0 = time.monotonic()
    res = pi_deploy("--timeout", "3", python=f"{hang} {marker}")
    assert res.exit_code == 3
    assert "did not finish within 3 s" in error_line(res.stderr)
    assert time.monotonic() - t0 < 30
    assert wait_for(lambda: not alive(marker), 5)
    for n in naps:
        assert not alive(f"sleep {n}"), n
    assert leftovers(pi_workdir) == []
