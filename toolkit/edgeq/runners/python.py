"""The `python` runner: edgeq's one-file device runner (`edgeq_runner.py`), run by the
device's own python with numpy and a TFLite interpreter.

It pushes the runner, the model and the evaluation data into the device's
content-addressed cache (only what is missing), runs it in the target's private workdir
with the settings' flags, pulls its JSON answer and validates it. In agreement mode it
also pulls the outputs the device saved (into `job.pull_to`); comparing them with the host
reference is `edgeq.hostjudge`'s, after measuring.
"""

from __future__ import annotations

import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import compat, paths
from .. import settings as settings_mod
from ..errors import CommandError, DeviceError, EdgeqError, RunnerError, tail
from ..progress import Progress, say
from ..results import parse_run
from ..targets import Target
from . import register
from .base import Health, Job, Measurement, Runner
from .deviceenv import SETUP_HINT, environment_checks, probe, seen


def stack_checks(health: Health, env: dict[str, Any], python: str) -> None:
    """numpy and an interpreter for that python, each with the command that installs it."""
    if env.get("numpy"):
        health.add("numpy", "ok", env["numpy"])
    else:
        health.add(
            "numpy",
            "fail",
            "numpy is not importable by that python",
            f"{python} -m pip install numpy (or see {SETUP_HINT})",
        )
    if env.get("runtime"):
        health.add(
            "interpreter", "ok", f"{env['runtime']} {env.get('runtime_version') or ''}".strip()
        )
    else:
        health.add(
            "interpreter",
            "fail",
            env.get("runtime_error") or "no TFLite interpreter importable",
            f"{python} -m pip install ai-edge-litert (or tflite-runtime with numpy<2)",
        )


def require(target: Target, timeout: float = 120.0) -> dict[str, Any]:
    """Fail fast: the device python's environment if it has numpy and an interpreter, else
    one RunnerError listing everything missing (before any model or data is sent)."""
    python = target.config.get("python") or "python3"
    try:
        env = probe(target, timeout)
    except RunnerError as exc:
        raise RunnerError(
            f"{exc.message}; run device_scripts/setup_device.sh on the device to install "
            f"python3, numpy and a TFLite interpreter",
            details=exc.details,
        ) from None
    health = Health()
    stack_checks(health, env, python)
    missing = [c for c in health.checks if c.status == "fail"]
    if missing:
        raise RunnerError(
            f"{target.name}: the device's python {env.get('python') or ''} "
            f"({env.get('python_executable') or python}) lacks "
            f"{' and '.join(c.name for c in missing)} — "
            + "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in missing)
            + "; nothing was sent but the runner. device_scripts/setup_device.sh installs "
            "everything at once",
            details={"missing": [c.name for c in missing], "environment": env},
        )
    return env


@register
class PythonRunner(Runner):
    """edgeq_runner.py on the device's python."""

    name = "python"
    auto_order = 100

    @classmethod
    def configured(cls, tcfg, settings) -> bool:
        return True

    def check(self, target: Target) -> Health:
        """python, architecture, OS, emulation, numpy, interpreter, governor, throttling."""
        health = Health()
        python = target.config.get("python") or "python3"
        try:
            env = probe(target)
        except DeviceError as exc:
            health.add("python", "fail", exc.message, SETUP_HINT, error=exc)
            return health
        health.environment = env
        health.add("python", "ok", f"{env.get('python')} ({env.get('python_executable')})")
        environment_checks(health, env)
        stack_checks(health, env, python)
        return health

    def _profiler(self, job: Job) -> Path | None:
        """The native binary for `op_profiling` (None when not asked for); UsageError when
        it is asked for and none is configured."""
        if not job.settings.op_profiling:
            return None
        from .benchmark_model import require_binary

        found = require_binary(
            job.settings,
            self.tcfg,
            "--op-profiling needs TFLite's native benchmark_model on the device (the LiteRT "
            "Python API has no op profiler)",
        )
        return found

    def argv(self, target: Target, remote_runner: str, remote_model: str, out: str,
             remote_data: str | None, job: Job) -> list[str]:  # fmt: skip
        """The device runner's command line for `job` (settings, shapes, agreement)."""
        argv = [
            *target.python_argv(),
            remote_runner,
            remote_model,
            "--out",
            out,
            *settings_mod.argv(job.settings),
        ]
        if remote_data:
            argv += ["--data", remote_data]
        for shape in job.input_shapes:
            argv += ["--input-shape", shape]
        if job.agreement:
            argv += [
                "--agreement",
                str(job.agreement),
                "--agreement-seed",
                str(job.settings.agreement_seed),
                "--outputs-out",
                f"{target.workdir}/agreement.npz",
            ]
        return argv

    def measure(self, target: Target, job: Job, progress: Progress | None = None) -> Measurement:
        t0 = time.perf_counter()
        profiler = self._profiler(job)  # before anything is sent: a usage error if missing
        with target:
            say(progress, f"connected to {target.name} ({target.describe()})")
            remote_runner = target.ensure_file(paths.runner_path(), ".py")
            env = None
            if job.probe:
                say(progress, f"checking the python on {target.name}")
                env = require(target, min(120.0, self.settings.timeout))
            if job.compat:
                say(progress, f"checking the model's operators against {target.name}'s runtime")
                env = env or seen(target)
                env = env or probe(target, min(120.0, self.settings.timeout))
                compat.check_on_python(target, remote_runner, env, job.artifact)
            sending = [job.artifact.name] + ([job.eval_npz.name] if job.eval_npz else [])
            say(progress, f"sending {', '.join(sending)} (unless already on the device)")
            remote_model = target.ensure_file(job.artifact, ".tflite")
            remote_data = target.ensure_file(job.eval_npz, ".npz") if job.eval_npz else None
            say(progress, f"sent {target.bytes_sent:,} bytes")
            workdir = target.workdir
            out_remote = f"{workdir}/result.json"
            argv = self.argv(target, remote_runner, remote_model, out_remote, remote_data, job)
            say(progress, f"running the benchmark on {target.name}")
            t_run = time.perf_counter()
            res = target.run(argv, timeout=job.settings.timeout, check=False, killable=True)
            run_s = time.perf_counter() - t_run
            say(progress, f"fetching the result from {target.name}")
            text = pull_text(target, out_remote)
            try:
                doc = interpret(target, res, text, {remote_model: str(job.artifact)})
            except RunnerError as exc:
                if exc.details.get("runner_error_type") in MODEL_ERRORS:
                    # never keep a file the runner could not load in the device cache
                    target.run(["rm", "-f", remote_model], timeout=30, check=False)
                raise
            if profiler is not None:
                say(progress, f"per-operator profile on {target.name} with benchmark_model")
                doc["op_profile"] = op_profile_alongside(
                    target, profiler, remote_model, job.settings
                )
            outputs, why = None, None
            if job.agreement:
                outputs, why = pull_outputs(target, job, doc, f"{workdir}/agreement.npz")
            if target.keep:
                say(progress, f"kept the workdir {workdir} on {target.name}")
        got = Measurement.of(target, doc, run_s, t0, workdir)
        got.outputs, got.outputs_error = outputs, why
        return got


def op_profile_alongside(
    target: Target, binary: Path, remote_model: str, settings: Any
) -> dict[str, Any] | None:
    """The op profile of the model already on the device, from the native benchmark_model
    pushed alongside (the LiteRT Python API has no op profiler)."""
    import shlex

    from edgeq_android.parser import parse_output

    from ..targets import quote_argv
    from . import benchmark_model as bm

    remote_bin = target.ensure_file(binary, "-benchmark_model")
    q = shlex.quote(remote_bin)
    target.run(f"[ -x {q} ] || chmod 755 {q}", timeout=30)
    cmd = bm.argv(settings.with_(op_profiling=True), remote_bin, remote_model)
    res = target.run(quote_argv(cmd) + " 2>&1", timeout=settings.timeout, check=False)
    if res.exit_code != 0:
        raise RunnerError.of(
            f"{target.name}: benchmark_model (for the op profile) failed (exit "
            f"{res.exit_code}): {tail(res.stdout, 3) or 'no output'}",
            res,
        )
    prof = parse_output(res.stdout).op_profile
    if prof is not None:
        prof["source"] = "benchmark_model alongside the Python runner (its own timed runs)"
    return prof


def pull_outputs(
    target: Target, job: Job, doc: dict[str, Any], remote: str
) -> tuple[Path | None, str | None]:
    """Pull the outputs the device saved in agreement mode into `job.pull_to` (a temporary
    folder when the job names none): (the local file, None), or (None, why not). Nothing
    to pull when the run has no agreement samples."""
    section = doc.get("agreement")
    if not isinstance(section, dict) or not section.get("samples"):
        return None, None
    folder = job.pull_to or Path(tempfile.mkdtemp(prefix="edgeq-agree-"))
    local = folder / "agreement.npz"
    try:
        target.get(remote, local)
    except (EdgeqError, OSError) as exc:
        return None, getattr(exc, "message", str(exc))
    return local, None


def pull_text(target: Target, remote: str) -> str | None:
    """A small result file from the device as text, None if it is not there."""
    with tempfile.TemporaryDirectory(prefix="edgeq-pull-") as tmp:
        local = Path(tmp) / "result.json"
        try:
            target.get(remote, local)
        except (CommandError, OSError):
            return None
        cap_mb = float(target.config.get("result_max_mb") or 8)
        size = local.stat().st_size
        if size > cap_mb * 1024 * 1024:
            raise RunnerError(
                f"{target.name}: the device's result is {size / 1048576:,.1f} MB, over the "
                f"{cap_mb:g} MB cap; it is not read nor saved — raise result_max_mb in "
                f"{target.config.where} if the runner really writes that much",
                details={"result_bytes": size},
            )
        return local.read_text(errors="replace")


#: The runner's error types that mean "this model cannot be loaded here".
MODEL_ERRORS = ("BadModel", "UnsupportedOp")


def interpret(
    target: Target, res: Any, text: str | None, aliases: dict[str, str] | None = None
) -> dict[str, Any]:
    """The runner's answer (its result file, else its stdout) as a validated run document;
    RunnerError with the device's evidence (command, exit code, stderr tail) otherwise.
    `aliases` maps device paths to what the user knows them as (the cached model → the
    artifact's own path) in messages."""
    evidence = {"command": res.command, "exit_code": res.exit_code, "stderr": res.stderr}
    if text is None and res.exit_code == 127:
        raise RunnerError(
            f"{target.name}: python {target.config.get('python')!r} not found on the device "
            f'(exit 127); install python3 there or set python = "..." in '
            f"{target.config.where}",
            **evidence,
        )
    if text is None:
        text = res.stdout
    if res.exit_code != 0:
        msg = None
        kind = None
        try:
            doc = json.loads(text)
            err = doc.get("error") or {}
            msg = err.get("message")
            kind = err.get("type")
            hint = err.get("hint")
            if hint:
                msg = f"{msg}; {hint}"
        except (ValueError, AttributeError, TypeError):
            pass
        if msg:
            for device_path, known_as in (aliases or {}).items():
                msg = msg.replace(device_path, known_as)
        stderr_tail = tail(res.stderr, 3)
        detail = msg or "no result document"
        if res.exit_code > 128 and not msg:
            try:
                detail = f"killed by {signal.Signals(res.exit_code - 128).name}, {detail}"
            except ValueError:
                pass
        raise RunnerError(
            f"{target.name}: the runner failed (exit {res.exit_code}): {detail}"
            + (f" — device stderr: {stderr_tail}" if stderr_tail and not msg else ""),
            **evidence,
            details={"runner_error_type": kind} if kind else None,
        )
    return parse_run(text, target.name)
