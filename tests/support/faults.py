"""Fixtures for the fault matrix (docs/fault-matrix.md): a "Pi" whose target keys a test
overrides, small filesystems that fill up (tmpfs), scripts that stand in for the device's
python to misbehave in one precise way, and checks that nothing was left behind."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_FLAGS, write_config

EDGEQ = str(Path(sys.executable).with_name("edgeq"))
FAST = list(FAST_FLAGS)
#: A budget every working device passes with the 1-epoch test model.
EASY = {"max_model_kb": 200, "max_latency_ms": 100, "min_accuracy": 0.3, "max_accuracy_drop_pp": 20}


def error_line(stderr: str, prefix: str = "edgeq: error:") -> str:
    """The one error line of a failed command (and there is exactly one)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def leftovers(base: Path) -> list[str]:
    """What a run left in a workdir base: run folders, and unfinished uploads in the cache."""
    if not base.is_dir():
        return []
    left = sorted(p.name for p in base.iterdir() if p.name != "edgeq-cache")
    cache = base / "edgeq-cache"
    if cache.is_dir():
        left += sorted(f"edgeq-cache/{p.name}" for p in cache.iterdir() if ".part" in p.name)
    return left


def cached(base: Path, suffix: str) -> list[str]:
    cache = base / "edgeq-cache"
    return sorted(p.name for p in cache.glob(f"*{suffix}")) if cache.is_dir() else []


def script(path: Path, body: str) -> str:
    """An executable shell script standing in for a device program."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def slow_python(path: Path, python: str, marker: str, seconds: float = 60) -> str:
    """A device python (as a `python = ...` value) whose benchmark runs first sleep; the
    --probe does not. `marker` is in its command line, for pgrep."""
    script(
        path,
        'm=$1; shift\ncase "$*" in *--probe*) ;; *) sleep ' + str(seconds) + " ;; esac\n"
        f'exec "{python}" "$@"\n',
    )
    return f"{path} {marker}"


_markers = itertools.count()


def new_marker(label: str) -> str:
    """A string no other test (nor an earlier one of this session) puts in a command line."""
    return f"edgeq-{label}-{os.getpid()}-{next(_markers)}"


def alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def wait_for(cond, timeout: float = 60.0, step: float = 0.1) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture()
def pi_values(pi_server, pi_python, pi_workdir):
    """The [targets.pi] keys of the default test "Pi"; call with overrides."""

    def values(**over):
        v = pi_server.target_values(python=pi_python, workdir=str(pi_workdir))
        v.update(over)
        return v

    return values


@pytest.fixture()
def pi_deploy(deploy_cli, tmp_path, pi_values, artifacts):
    """`edgeq deploy --target pi` in-process with the target keys overridden."""

    def go(*extra, model=None, budget=None, fast=True, **over):
        cfg = write_config(tmp_path / "edgeq.toml", {"pi": pi_values(**over)}, budget)
        return deploy_cli("pi", cfg, model or artifacts[0] / "model_int8.tflite", *extra, fast=fast)

    return go


@pytest.fixture()
def tmpfs(tmp_path):
    """mount(path, size_kb): a small tmpfs at `path` (root only), unmounted afterwards."""
    mounts: list[Path] = []

    def mount(path: Path, size_kb: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for p in reversed(mounts):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the filesystem holding `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    for i in range(64):  # the last partial page, in small files
        try:
            (folder / f"filler{i}").write_bytes(b"\0" * 512)
        except OSError:
            break


def edgeq_proc(args, tmp_path, **kw) -> subprocess.Popen:
    """The real `edgeq` console script in a subprocess (for signals and orphans)."""
    env = {**os.environ, "EDGEQ_CACHE_DIR": str(tmp_path / "cache"), **kw.pop("env", {})}
    return subprocess.Popen(
        [EDGEQ, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        **kw,
    )
