"""Hostile neighbours and silent links (issue 21): another real Unix user of this machine
plants folders, files and symlinks where edgeq works; a TCP proxy in front of the test
sshd stops carrying data in the middle of a deploy. edgeq must refuse the folders (exit 2,
one line naming the folder and the fix), never run or overwrite what the other user
planted, and end a silent link with exit 3 within its timeout — or within seconds of a
SIGTERM."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeq import paths
from edgeq.devicelock import DeviceLock, lock_file
from edgeq.lab.history import History
from tests.support.config import write_config
from tests.support.faults import EASY, FAST, edgeq_proc, error_line
from tests.support.lab import write_inventory
from tests.support.silentproxy import SilentProxy


@pytest.fixture(scope="module")
def bob():
    """A second, unprivileged Unix user (made for this module, deleted afterwards)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root with useradd (passwd package; .ci/run installs it)")
    name = f"edgeqbob{os.getpid() % 100000}"
    subprocess.run(
        ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "-f", name], capture_output=True)


def as_bob(bob, *argv: str) -> None:
    subprocess.run(list(argv), check=True, user=bob.pw_uid, group=bob.pw_gid)


@pytest.fixture()
def shared_tmp() -> Iterator[Path]:
    """A world-writable sticky folder in /tmp that bob can reach (the tests' TMPDIR)."""
    d = Path(tempfile.mkdtemp(prefix="edgeq-shared-"))
    d.chmod(0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _env(shared: Path) -> dict[str, str]:
    return {"TMPDIR": str(shared), "EDGEQ_LOCK_DIR": ""}  # the default lock folder


def _deploy(tmp_path, cfg, target, model, data_dir, *extra, env=None):
    proc = edgeq_proc(
        ["deploy", "--target", target, "--config", cfg, "--model", model, "--data", data_dir,
         "--results", tmp_path / "results", *FAST, *extra],
        tmp_path,
        env=env or {},
    )  # fmt: skip
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err, time.monotonic() - t0


def _plant_runner(bob, cache: Path, marker: Path) -> Path:
    """bob's cache folder (0777) holding, under the runner's sha256 name, his own code."""
    digest = hashlib.sha256(paths.runner_path().read_bytes()).hexdigest()
    as_bob(bob, "mkdir", "-p", "-m", "777", str(cache))
    evil = cache / f"{digest}.py"
    as_bob(bob, "sh", "-c", f'echo \'open({str(marker)!r}, "w").write("pwned")\' > {evil}')
    return evil


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_a_co_users_cache_folder_is_refused_and_their_code_never_runs(
    where, bob, shared_tmp, tmp_path, pi_server, pi_python, artifacts, data_dir
):
    marker = tmp_path / "pwned"
    if where == "local":
        base = shared_tmp / f"edgeq-local-{os.geteuid()}"  # the local target's default
        as_bob(bob, "mkdir", "-m", "777", str(base))
        targets = {"host": {"transport": "local", "python": pi_python}}
        name, folder = "host", base
    else:  # workdir = a shared folder, as edgeq.toml.example's "/tmp"
        base = shared_tmp
        values = pi_server.target_values(python=pi_python, workdir=str(shared_tmp))
        targets = {"pi": values}
        name, folder = "pi", shared_tmp / "edgeq-cache"
    evil = _plant_runner(bob, base / "edgeq-cache", marker)
    cfg = write_config(tmp_path / "edgeq.toml", targets, EASY)
    model = artifacts[0] / "model_int8.tflite"
    code, _, err, took = _deploy(tmp_path, cfg, name, model, data_dir, env=_env(shared_tmp))
    assert code == 2, err
    line = error_line(err)
    assert f"refusing to use {folder} " in line
    assert f"belongs to uid {bob.pw_uid}" in line and "rm -rf" in line
    assert not marker.exists()  # bob's code did not run
    assert evil.stat().st_uid == bob.pw_uid and "pwned" in evil.read_text()  # untouched
    assert not list(base.glob("run.*"))  # nothing of ours was made in bob's folder
    assert took < 60
    if where == "ssh":  # without bob's folder: made private, and the deploy works
        shutil.rmtree(folder)
        code, _, err, _ = _deploy(tmp_path, cfg, name, model, data_dir, env=_env(shared_tmp))
        assert code == 0, err
        assert (folder.stat().st_mode & 0o777) == 0o700 and folder.stat().st_uid == 0


def test_a_planted_lock_symlink_never_overwrites_a_root_only_file(
    bob, shared_tmp, tmp_path, pi_python, artifacts, data_dir
):
    victim = tmp_path / "root-only"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    locks = shared_tmp / f"edgeq-locks-{os.geteuid()}"  # the default lock folder
    as_bob(bob, "mkdir", "-m", "777", str(locks))
    planted = lock_file(locks, f"local://{socket.gethostname()}")
    as_bob(bob, "ln", "-s", str(victim), str(planted))
    cfg = write_config(
        tmp_path / "edgeq.toml", {"host": {"transport": "local", "python": pi_python}}, EASY
    )
    model = artifacts[0] / "model_int8.tflite"
    code, _, err, _ = _deploy(tmp_path, cfg, "host", model, data_dir, env=_env(shared_tmp))
    assert code == 2, err
    line = error_line(err)
    assert f"refusing to use {locks} as the device-lock folder" in line
    assert "EDGEQ_LOCK_DIR" in line
    assert victim.read_text() == "secret\n"
    # a symlink in a folder of our own (left by anyone) is not followed either
    mine = tmp_path / "my-locks"
    mine.mkdir(mode=0o700)
    os.symlink(victim, lock_file(mine, "ssh://pi@10.0.0.7:22"))
    with pytest.raises(Exception, match="it is a symlink") as exc:
        DeviceLock("ssh://pi@10.0.0.7:22", mine, timeout_s=0).acquire()
    assert getattr(exc.value, "exit_code", None) == 2
    assert victim.read_text() == "secret\n"


def _silent_pi(pi_server, pi_python, workdir: Path, proxy: SilentProxy) -> dict:
    """The test Pi's keys, reached through `proxy` (its host key known at the proxy's port)."""
    kind, key = (pi_server.root / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    known = workdir.parent / f"known_hosts-{proxy.port}"
    known.write_text(f"[127.0.0.1]:{proxy.port} {kind} {key}\n")
    return pi_server.target_values(
        python=pi_python, workdir=str(workdir), port=proxy.port, known_hosts=str(known)
    )


#: Client → server bytes before the runner's upload: the handshake, the login and a few
#: short commands take well under this; the runner alone is over 50 KB.
PUSH_AT = 24_000


def test_a_silent_link_during_the_push_ends_with_exit_3(
    pi_server, pi_python, pi_workdir, tmp_path, artifacts, data_dir
):
    assert paths.runner_path().stat().st_size > 2 * PUSH_AT
    proxy = SilentProxy(pi_server.port, after=PUSH_AT)
    try:
        cfg = write_config(
            tmp_path / "edgeq.toml", {"pi": _silent_pi(pi_server, pi_python, pi_workdir, proxy)}
        )
        model = artifacts[0] / "model_int8.tflite"
        code, _, err, took = _deploy(tmp_path, cfg, "pi", model, data_dir, "--timeout", "5")
    finally:
        proxy.close()
    assert proxy.silent.is_set()
    assert code == 3, err
    line = error_line(err)
    assert "no data from [127.0.0.1]:" in line and "during the push" in line
    assert "check its network" in line
    assert took < 30, took  # 5 s of silence, the cleanup given up quickly: not 300 s
    assert not list(tmp_path.glob("results/*.json"))


def test_sigterm_ends_a_deploy_stuck_on_a_silent_link(
    pi_server, pi_python, pi_workdir, tmp_path, artifacts, data_dir
):
    proxy = SilentProxy(pi_server.port, after=PUSH_AT)
    try:
        cfg = write_config(
            tmp_path / "edgeq.toml", {"pi": _silent_pi(pi_server, pi_python, pi_workdir, proxy)}
        )
        proc = edgeq_proc(
            ["deploy", "--target", "pi", "--config", cfg, "--model",
             artifacts[0] / "model_int8.tflite", "--data", data_dir, "--timeout", "600", *FAST],
            tmp_path,
        )  # fmt: skip
        err, took = _sigterm_once_stuck(proc, proxy, "deploy")
    finally:
        proxy.close()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert took < 8, took


def test_the_lab_records_a_silent_device_and_ends(
    pi_server, pi_python, tmp_path, artifacts, lab_sections
):
    wd = tmp_path / "pi-wd"
    wd.mkdir()
    # the health check passes (its own connection), then the link goes silent in the push
    proxy = SilentProxy(pi_server.port, after=PUSH_AT, silent_on=2)
    lab_sections["lab"].update(
        models=[str(artifacts[0] / "model_int8.tflite")], timeout_s=6, retries=0
    )
    inv = write_inventory(
        tmp_path / "lab.toml",
        lab_sections,
        {"pi": _silent_pi(pi_server, pi_python, wd, proxy)},
    )
    try:
        proc = edgeq_proc(["lab", "run", "--inventory", inv], tmp_path)
        t0 = time.monotonic()
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        took = time.monotonic() - t0
    finally:
        proxy.close()
    assert proxy.silent.is_set()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert took < 60, took
    with History(tmp_path / "history.sqlite") as h:
        (run,) = h.runs()
        (row,) = h.results(run["run_id"])
    assert run["status"] != "running"
    assert row["status"] == "error" and row["device"] == "pi"
    assert "no data from" in row["reason"] and "during the push" in row["reason"], row


def test_sigterm_ends_a_lab_stuck_on_a_silent_link(
    pi_server, pi_python, tmp_path, artifacts, lab_sections
):
    wd = tmp_path / "pi-wd"
    wd.mkdir()
    proxy = SilentProxy(pi_server.port, after=PUSH_AT, silent_on=2)
    lab_sections["lab"].update(
        models=[str(artifacts[0] / "model_int8.tflite")], timeout_s=600, retries=0
    )
    inv = write_inventory(
        tmp_path / "lab.toml", lab_sections, {"pi": _silent_pi(pi_server, pi_python, wd, proxy)}
    )
    try:
        proc = edgeq_proc(["lab", "run", "--inventory", inv], tmp_path)
        err, took = _sigterm_once_stuck(proc, proxy, "lab")
    finally:
        proxy.close()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert took < 10, took
    with History(tmp_path / "history.sqlite") as h:
        (run,) = h.runs()
    assert run["status"] == "interrupted"


def _sigterm_once_stuck(proc, proxy, what: str) -> tuple[str, float]:
    """Wait until `proc` is stuck on the silent link, send one SIGTERM: (stderr, seconds
    it took to end). The process is killed whatever happens."""
    try:
        assert proxy.silent.wait(120), f"the {what} never reached the push"
        time.sleep(1.0)
        assert proc.poll() is None  # stuck on the silent link
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        return err, time.monotonic() - t0
    finally:
        proc.kill()
