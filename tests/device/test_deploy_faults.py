"""Every fault a deploy can meet over SSH: one line on stderr, the documented exit code,
and nothing left behind in the device's workdir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import sshd
from tests.support.config import write_config
from tests.support.device_venv import NO_INTERPRETER_PACKAGES, ensure_venv

FAST = ["--runs", "20", "--min-s", "0", "--warmup-runs", "2"]
EDGEQ = str(Path(sys.executable).with_name("edgeq"))


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("edgeq: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name != "edgeq-cache")


@pytest.fixture()
def run_deploy(deploy_cli, tmp_path, pi_server, pi_python, pi_workdir, artifacts):
    """deploy --target pi with the given target keys overridden; returns the CLI result."""

    def go(model=None, budget=None, extra=(), **over):
        values = pi_server.target_values(python=pi_python, workdir=str(pi_workdir))
        values.update(over)
        cfg = write_config(tmp_path / "edgeq.toml", {"pi": values}, budget)
        return deploy_cli("pi", cfg, model or artifacts[0] / "model_int8.tflite", *extra)

    return go


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_wrong_port(run_deploy, pi_workdir):
    res = run_deploy(port=sshd.free_port())
    assert res.exit_code == 3
    assert "cannot connect to [127.0.0.1]" in _error_line(res.stderr)


def test_wrong_key(run_deploy, tmp_path):
    res = run_deploy(key_file=str(sshd.keygen(tmp_path / "intruder")))
    assert res.exit_code == 3 and "ssh-copy-id" in _error_line(res.stderr)


def test_unknown_host_key(run_deploy, tmp_path):
    kh = tmp_path / "empty_known_hosts"
    kh.write_text("")
    line = _error_line(run_deploy(known_hosts=str(kh)).stderr)
    assert "unknown host key" in line and "accept_new_host_key = true" in line
    assert "ssh-keyscan" in line


def test_corrupt_model_is_refused_on_the_host(run_deploy, artifacts, tmp_path, pi_workdir):
    good = (artifacts[0] / "model_int8.tflite").read_bytes()
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(good[:8] + b"\xff" * 200)  # TFL3 header, garbage after
    res = run_deploy(model=bad)
    assert res.exit_code == 2  # the host's interpreter refuses it before anything is sent
    assert f"{bad}: not a loadable TFLite model" in _error_line(res.stderr)
    assert list(pi_workdir.iterdir()) == []


def test_runner_crash_shows_remote_stderr_tail(run_deploy, tmp_path, pi_python, pi_workdir):
    crash = _script(
        tmp_path / "crashing-python",
        'echo "Fatal Python error: Segmentation fault" >&2; kill -SEGV $$\n',
    )
    res = run_deploy(python=crash)
    line = _error_line(res.stderr)
    assert res.exit_code == 3 and "Segmentation fault" in line and "killed by SIGSEGV" in line
    assert _leftovers(pi_workdir) == []


def test_hang_past_timeout_is_killed(run_deploy, tmp_path, pi_workdir):
    marker = f"edgeq-hang-{os.getpid()}"
    hang = _script(tmp_path / "hanging-python", f"exec sleep 300 # {marker}\n")
    res = run_deploy(python=f"{hang} {marker}", extra=["--timeout", "3"])
    assert res.exit_code == 3
    assert "did not finish within 3 s" in _error_line(res.stderr)
    time.sleep(0.5)
    ps = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
    assert _leftovers(pi_workdir) == []


def test_truncated_json(run_deploy, tmp_path, pi_python, pi_workdir):
    wrapper = _script(
        tmp_path / "truncating-python",
        f'"{pi_python}" "$@"; rc=$?\n'
        'while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done\n'
        'head -c 300 "$out" > "$out.t" && mv "$out.t" "$out"; exit $rc\n',
    )
    res = run_deploy(python=wrapper)
    assert res.exit_code == 3
    assert "not valid JSON" in _error_line(res.stderr) and "truncated" in res.stderr
    assert _leftovers(pi_workdir) == []


def test_device_without_an_interpreter(run_deploy, pi_workdir):
    bare = ensure_venv(NO_INTERPRETER_PACKAGES, "numpy-only-venv")
    res = run_deploy(python=str(bare))
    line = _error_line(res.stderr)
    assert res.exit_code == 3
    assert "no TFLite interpreter" in line and "pip install ai-edge-litert" in line
    assert _leftovers(pi_workdir) == []


def test_missing_python_on_device(run_deploy, pi_workdir):
    res = run_deploy(python="/nonexistent/python3")
    assert res.exit_code == 3 and "not found on the device" in _error_line(res.stderr)


def test_hostile_names_are_quoted(deploy_cli, tmp_path, pi_server, pi_python, artifacts):
    canary = f"edgeq-canary-{os.getpid()}"
    nasty = f'it\'s a "pi" $(touch {canary}) `touch {canary}`; x'
    base = tmp_path / f"work dir 'q' $(touch {canary})"
    base.mkdir()
    model = tmp_path / f'my model\'s "best" $(touch {canary}).tflite'
    model.write_bytes((artifacts[0] / "model_int8.tflite").read_bytes())
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {nasty: pi_server.target_values(python=pi_python, workdir=str(base))},
        {
            "max_model_kb": 100,
            "max_latency_ms": 100,
            "min_accuracy": 0,
            "max_accuracy_drop_pp": 100,
        },
    )
    res = deploy_cli(nasty, cfg, model, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["target"]["name"] == nasty
    for where in (Path.home(), tmp_path, Path.cwd(), base, Path("/")):
        assert not (where / canary).exists(), where
    assert _leftovers(base) == []
    assert len(list((tmp_path / "results").glob("*.json"))) == 1


def test_sigint_during_the_run(tmp_path, pi_server, pi_python, pi_workdir, data_dir, artifacts):
    marker = f"edgeq-sigint-{os.getpid()}"
    slow = _script(tmp_path / "slow-python", f'sleep 120 # {marker}\nexec "{pi_python}" "$@"\n')
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"pi": pi_server.target_values(python=f"{slow} {marker}", workdir=str(pi_workdir))},
    )
    env = {**os.environ, "EDGEQ_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [
            EDGEQ,
            "deploy",
            "--target",
            "pi",
            "--config",
            str(cfg),
            "--model",
            str(artifacts[0] / "model_int8.tflite"),
            "--data",
            str(data_dir),
            *FAST,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the runner is running on the "device"
        if subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the runner never started: " + proc.communicate()[1])
    assert any(p.name.startswith("run.") for p in pi_workdir.iterdir())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1
    assert _leftovers(pi_workdir) == []
