"""Running a .tflite on this host with the device runner's own functions.

The code host and device share — preprocessing, input quantization, batched accuracy —
lives in the device runner (`device_scripts/edgeq_runner.py`, installed as
`edgeq_device.edgeq_runner`), because the device must get it as one self-contained file.
This module is the one place host code reaches it from, so a figure measured on the host
and one measured on a device always come from one implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeq_device import edgeq_runner as runner

from .fsutil import sha256_file

__all__ = ["host_accuracy", "interpreter", "runner"]


def interpreter(artifact: Path, threads: int | None = None) -> tuple[Any, str]:
    """An allocated interpreter for `artifact` and the runtime's "name version"."""
    cls, name, version = runner.find_interpreter()
    interp = runner.make_interpreter(cls, str(artifact), threads)
    interp.allocate_tensors()
    return interp, f"{name} {version or ''}".strip()


def host_accuracy(
    artifact: Path,
    eval_npz: Path,
    limit: int | None = None,
    batch_size: int = 64,
    threads: int | None = None,
) -> dict[str, Any]:
    """Top-1 of `artifact` on a staged evaluation file, on this host (`source: host`)."""
    x, y, scale, offset = runner.load_eval_data(str(eval_npz))
    if limit:
        x, y = x[:limit], y[:limit]
    interp, runtime = interpreter(artifact, threads)
    acc = runner.evaluate_accuracy(
        interp,
        x,
        y,
        runner.DEFAULT_INPUT_SCALE if scale is None else scale,
        runner.DEFAULT_INPUT_OFFSET if offset is None else offset,
        batch_size,
    )
    acc["source"] = "host"
    acc["runtime"] = runtime
    acc["data_sha256"] = sha256_file(eval_npz)
    acc["model_sha256"] = sha256_file(artifact)
    return acc
