"""The real `benchmark_model` binaries the native-runner tests run (LiteRT builds; see
their README.md and PROVENANCE.txt): `x86_64/` (XNNPACK off), `x86_64-xnnpack/` and
`aarch64/` (static, run here under qemu-user through binfmt_misc).

One setting finds them: `$EDGEQ_BENCHMARK_MODEL_DIR`, default `../shared/tools/benchmark_model`
beside the repository. A test that needs a binary that is missing or cannot run FAILS —
in CI and locally — with what to install or set: these tests are the proof that the
native path works, so they never skip.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIR_ENV = "EDGEQ_BENCHMARK_MODEL_DIR"
DEFAULT_DIR = REPO.parent / "shared" / "tools" / "benchmark_model"
FLAVOURS = ("x86_64", "x86_64-xnnpack", "aarch64")
#: QEMU 7.2's default CPU model gives wrong int8 results with LiteRT's kernels.
QEMU_ENV = {"QEMU_CPU": "cortex-a72"}
#: What the tool prints when it runs without --graph: proof that it started.
_NO_GRAPH = "Please specify the name of your TF Lite input file"


def binary_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def binary(flavour: str) -> Path:
    """The real binary of `flavour`, checked to start on this machine (else pytest.fail
    with the fix)."""
    assert flavour in FLAVOURS, flavour
    path = binary_dir() / flavour / "benchmark_model"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the real benchmark_model is missing: {path} (set ${DIR_ENV} to the folder "
            f"holding {', '.join(f'{f}/benchmark_model' for f in FLAVOURS)})",
            pytrace=False,
        )
    why = _cannot_start(str(path), flavour)
    if why:
        pytest.fail(f"{path} does not start here: {why}", pytrace=False)
    return path


@functools.cache
def _cannot_start(path: str, flavour: str) -> str:
    """'' when the binary starts (it answers "specify --graph"), else why and the fix."""
    try:
        res = subprocess.run(
            [path], capture_output=True, text=True, timeout=120, env={**os.environ, **QEMU_ENV}
        )
    except OSError as exc:
        if flavour == "aarch64":
            return (
                f"{exc.strerror}; an aarch64 binary needs qemu-user through binfmt_misc: "
                f"apt-get install qemu-user-static binfmt-support, `mount -t binfmt_misc "
                f"binfmt_misc /proc/sys/fs/binfmt_misc`, `update-binfmts --enable "
                f"qemu-aarch64` (.ci/run does this)"
            )
        return exc.strerror or str(exc)
    text = res.stdout + res.stderr
    if _NO_GRAPH in text:
        return ""
    hint = " (apt-get install libprotobuf32)" if "libprotobuf" in text else ""
    return f"exit {res.returncode}: {text.strip()[-300:]}{hint}"
