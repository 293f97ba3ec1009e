"""Where the accuracy of an Android run is measured, and saying so.

`benchmark_model` feeds random inputs: it measures speed, not accuracy. The same artifact
(same sha256) is therefore evaluated either

* on the device, by edgeq's Python runner, when the target's `python` has numpy and a
  TFLite interpreter (Termux on a rooted phone, a chroot, a lab image): `source: device`;
* or on this host with the host's interpreter: `source: host`, with a note saying why.

The target's `use_python_runner` picks: `true` (device, fail if it cannot), `false`
(host), `auto` (device when the probe finds a usable python, else host). Both paths
compute top-1 with the same function (`edgeq_device.edgeq_runner.evaluate_accuracy`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeq import stage
from edgeq.errors import CommandError, RunnerError, tail
from edgeq.fsutil import sha256_file
from edgeq.results import parse_run
from edgeq.targets import Target

Progress = Callable[[str], None]


def mode(target: Target) -> bool | str:
    """The target's `use_python_runner`: True, False or "auto"."""
    value = target.config.get("use_python_runner", "auto")
    return "auto" if value is None else value


def device_python_status(target: Target) -> tuple[bool, str]:
    """Can the target's python run the edgeq runner? (usable, reason) — probes the device."""
    try:
        env = target.probe()
    except RunnerError as exc:
        return False, exc.message
    if not env.get("numpy"):
        return False, f"{target.python_argv()[0]} has no numpy"
    if not env.get("runtime"):
        return False, env.get("runtime_error") or "no TFLite interpreter importable"
    return True, f"{env['runtime']} {env.get('runtime_version') or ''}".strip()


def evaluate_on_host(
    artifact: Path, eval_npz: Path, limit: int | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Top-1 of `artifact` on this host (the device runner's own functions)."""
    from edgeq_device import edgeq_runner as runner

    x, y, scale, offset = runner.load_eval_data(str(eval_npz))
    if limit:
        x, y = x[:limit], y[:limit]
    cls, name, version = runner.find_interpreter()
    interp = runner.make_interpreter(cls, str(artifact))
    interp.allocate_tensors()
    acc = runner.evaluate_accuracy(
        interp,
        x,
        y,
        runner.DEFAULT_INPUT_SCALE if scale is None else scale,
        runner.DEFAULT_INPUT_OFFSET if offset is None else offset,
        batch_size,
    )
    acc["source"] = "host"
    acc["runtime"] = f"{name} {version or ''}".strip()
    acc["data_sha256"] = sha256_file(eval_npz)
    acc["model_sha256"] = sha256_file(artifact)
    return acc


def evaluate_on_device(
    target: Target, remote_model: str, eval_npz: Path, settings: Any
) -> dict[str, Any]:
    """Top-1 measured on the device by the edgeq Python runner (one timed run only)."""
    remote_runner = target.ensure_file(stage.runner_path(), ".py")
    remote_data = target.ensure_file(eval_npz, ".npz")
    out_remote = f"{target.workdir}/accuracy.json"
    argv = [
        *target.python_argv(),
        remote_runner,
        remote_model,
        "--data",
        remote_data,
        "--out",
        out_remote,
        "--threads",
        str(settings.threads),
        "--batch-size",
        str(settings.batch_size),
        "--runs",
        "1",
        "--min-s",
        "0",
        "--warmup-runs",
        "0",
        "--warmup-min-s",
        "0",
    ]
    if settings.eval_limit:
        argv += ["--limit", str(settings.eval_limit)]
    res = target.run(argv, timeout=settings.timeout, check=False, killable=True)
    with tempfile.TemporaryDirectory(prefix="edgeq-acc-") as tmp:
        local = Path(tmp) / "accuracy.json"
        try:
            target.get(out_remote, local)
            text = local.read_text(errors="replace")
        except (CommandError, OSError):
            text = res.stdout
    if res.exit_code != 0 and not text.strip():
        raise RunnerError(
            f"{target.name}: the Python runner failed while measuring accuracy on the device "
            f"(exit {res.exit_code}): {tail(res.stderr or res.stdout, 3) or 'no output'}"
        )
    doc = parse_run(text, target.name)
    acc = doc.get("accuracy")
    if not acc:
        raise RunnerError(f"{target.name}: the Python runner returned no accuracy")
    env = doc.get("environment") or {}
    acc["source"] = "device"
    acc["runtime"] = f"{env.get('runtime')} {env.get('runtime_version') or ''}".strip()
    acc["python"] = env.get("python")
    acc["model_sha256"] = doc["model"]["sha256"]
    return acc


def measure_accuracy(
    target: Target,
    artifact: Path,
    remote_model: str,
    eval_npz: Path,
    settings: Any,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Accuracy on the device or the host per `use_python_runner`; the dict says which."""
    choice = mode(target)
    reason = "use_python_runner = false"
    if choice is True or choice == "auto":
        usable, why = device_python_status(target)
        if usable:
            if progress:
                progress(f"measuring accuracy on {target.name} with its python ({why})")
            acc = evaluate_on_device(target, remote_model, eval_npz, settings)
            acc["note"] = "measured on the device by the edgeq Python runner"
            return acc
        if choice is True:
            raise RunnerError(
                f"{target.name}: use_python_runner = true but the device's python cannot run "
                f"the edgeq runner ({why}); install numpy and ai-edge-litert for it, or set "
                f'use_python_runner = "auto" to evaluate on the host'
            )
        reason = f"no usable python on the device ({why})"
    if progress:
        progress(f"evaluating accuracy of the same artifact on this host ({reason})")
    acc = evaluate_on_host(artifact, eval_npz, settings.eval_limit, settings.batch_size)
    acc["note"] = (
        f"benchmark_model measures latency only; accuracy of the same artifact evaluated on "
        f"the host with {acc['runtime']} — {reason}"
    )
    return acc
