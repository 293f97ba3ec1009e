"""Helpers of the fault tests (docs/fault-matrix.md; the `test_*_faults.py` files): scripts that
stand in for the device's python to misbehave in one precise way, filesystems filled to the
last byte, the real `edgeq` in a subprocess, and checks that nothing was left behind.
Their fixtures (pi_values, pi_deploy, tmpfs) are in tests/conftest.py."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from tests.support.config import FAST_FLAGS

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
