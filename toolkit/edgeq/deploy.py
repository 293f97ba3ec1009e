"""Deploy, the device half: lock → target → runner → validate → judge → verdict → save.

The lock is `device_lock()`, taken by the caller around a deploy (`edgeq deploy`/`bench`;
the lab holds each device's lease while it runs its models).

`deploy()` is the whole of `edgeq deploy` (and, without a budget, of `edgeq bench`): it
prepares a `DeployRequest` on the host (`edgeq.prepare`: artifact, data plan, host
reference) and runs it with `run_request()`. `run_on_device()` is the measurement alone,
followed by what the host judges about it (`hostjudge`: output agreement, the accuracy a
device could not measure). Nothing here knows a transport or a runner by name: the target
comes from `edgeq.targets` (by its `transport`), the runner from the request.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import __version__, fsutil, hostjudge, manifest
from . import measure as measure_mod
from .budget import Budget, check_judgeable, judge, judged_latency
from .devicelock import DeviceLock, default_lock_dir
from .errors import EdgeqError, ModelError, RunnerError, UsageError
from .fields import TargetConfig
from .paths import cache_root
from .prepare import DeployRequest, prepare
from .privdir import ensure_local
from .progress import Progress, say
from .results import DeployResult, file_stem
from .runners import Job, Measurement, Runner, choose
from .settings import RunSettings
from .targets import Target, make_target

__all__ = [
    "DeployRequest",
    "RunSettings",
    "deploy",
    "device_lock",
    "latency_meter",
    "run_on_device",
    "run_request",
    "save",
]


# --------------------------------------------------------------------------- measuring


def run_on_device(
    target: Target,
    artifact: Path,
    eval_npz: Path | None,
    settings: RunSettings,
    progress: Progress | None = None,
    runner: Runner | None = None,
    input_shapes: tuple[str, ...] = (),
    agreement: int = 0,
    probe: bool = True,
) -> Measurement:
    """Measure `artifact` on `target` with the runner the target asks for (opened and closed
    inside; its per-run workdir is removed unless the target keeps it), with the settings'
    repetitions, thread sweep, cool-down, governor pin and validity sampling; then judge on
    the host what the device brought back (agreement, host accuracy). `probe`: check what
    the device needs before sending model and data (False right after a health check)."""
    runner = runner or choose(target.config, settings)
    target.io_timeout = settings.timeout
    with tempfile.TemporaryDirectory(prefix="edgeq-pulled-") as pulled:
        job = Job(
            Path(artifact),
            eval_npz,
            settings,
            tuple(input_shapes),
            agreement,
            probe=probe,
            pull_to=Path(pulled),
        )
        got = measure_mod.repeat_runs(target, runner, job, progress)
        hostjudge.after_measuring(got, job, progress)
    got.outputs = None  # judged, and gone with the folder
    return got


def device_lock(target_cfg: TargetConfig, wait: bool = True, timeout_s: float = 3600.0):
    """The device's lock — the one `edgeq lab run` takes (keyed by the device's identity,
    in the same folder), so two measurements never share a device. Not yet acquired: use
    `with lock.acquire(on_wait):`; DeviceBusy (exit 3, naming the holder) if it is held
    longer than `timeout_s`, or at once with `wait=False`."""
    import os
    import sys

    return DeviceLock(
        make_target(target_cfg).identity(),
        default_lock_dir(),
        timeout_s if wait else 0.0,
        owner={"command": " ".join(["edgeq", *sys.argv[1:]])[:200], "pid": os.getpid()},
        fix="wait for it to finish (leave out --no-wait) or try again later",
    )


# --------------------------------------------------------------------------- deploy


def deploy(
    target_cfg: TargetConfig,
    artifact: Path,
    *args: Any,
    progress: Progress | None = None,
    **kwargs: Any,
) -> DeployResult:
    """Measure `artifact` on the target and judge it (budget None: measure only); takes
    the arguments of `prepare.prepare`.

    Everything that can be checked on the host is checked before anything is pushed (see
    `prepare.prepare`; `staged`: what the lab staged for the model already). If saving
    still fails at the end, the result goes to a fallback folder (`host.saved_to` says
    where). If edgeq fails after the measurement (a bug), what was measured is saved as a
    partial record."""
    request = prepare(target_cfg, artifact, *args, progress=progress, **kwargs)
    return run_request(request, progress)


#: What `latency_meter` measures with: a latency-only run, light but still timed for half a
#: second after a short warm-up (no accuracy, no agreement inputs).
LATENCY_ONLY = {"runs": 50, "min_s": 0.5, "warmup_runs": 5, "warmup_min_s": 0.2, "agreement": 0}


def latency_meter(
    target_cfg: TargetConfig,
    budget: Budget | None = None,
    progress: Progress | None = None,
    wait: bool = True,
) -> Any:
    """A function `meter(flatbuffer, what)` that measures a model's latency on the target
    (the deploy machinery: prepare → device lock → run_request, with the target's runner
    and LATENCY_ONLY settings; no data, nothing saved) and returns {"ms": the budget's
    latency figure, "metric", "runner", "target", "settings", ...}. The runner is checked
    against the budget's percentile now, before anything is measured."""
    budget = budget or Budget()
    settings = RunSettings(**LATENCY_ONLY).validate()
    runner = choose(target_cfg, settings)
    check_judgeable(
        budget,
        runner.name,
        runner.latency_reports.get(budget.latency_kind, ()),
        target_cfg.name,
    )
    lock = device_lock(target_cfg, wait=wait)
    probed: list[bool] = []

    def meter(blob: bytes, what: str = "") -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="edgeq-step-") as tmp:
            path = Path(tmp) / "model.tflite"
            path.write_bytes(blob)
            request = prepare(
                target_cfg,
                path,
                settings=settings,
                results_dir=None,
                with_data=False,
                probe=not probed,
            )
            say(progress, f"measuring on {target_cfg.name}: {what}".rstrip(": "))
            with lock.acquire(lambda msg: say(progress, f"{target_cfg.name}: {msg}")):
                result = run_request(request, None)
        probed.append(True)
        ms, how, at = judged_latency(result.run, budget)
        if ms is None:
            raise RunnerError(
                f"{target_cfg.name}: the {runner.name} runner reported no "
                f"{budget.latency_percentile} ({budget.latency_kind}) latency"
            )
        env = result.run.get("environment") or {}
        return {
            "ms": float(ms),
            "metric": f"{at} {budget.latency_kind}" + (f" ({how})" if how else ""),
            "target": target_cfg.name,
            "address": result.target.get("address"),
            "runner": runner.name,
            "runtime": f"{env.get('runtime') or ''} {env.get('runtime_version') or ''}".strip(),
            "machine": env.get("machine"),
            "settings": dict(LATENCY_ONLY),
        }

    return meter


def run_request(request: DeployRequest, progress: Progress | None = None) -> DeployResult:
    """The device half of a deploy: target → runner → validate → judge → verdict → save
    (the caller holds the device's lock, see `device_lock`)."""
    measured: list[Measurement] = []
    try:
        return _run_request(request, progress, measured)
    except (EdgeqError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if measured and request.results_dir is not None:
            path = _save_partial(
                request.results_dir, request.target, request.artifact, measured[0], exc
            )
            if path is not None:
                say(progress, f"saved the measurement so far to {path}")
        raise


def _run_request(
    req: DeployRequest, progress: Progress | None, measured: list[Measurement]
) -> DeployResult:
    artifact, plan, runner, settings = req.artifact, req.plan, req.runner, req.settings
    target = make_target(req.target, keep=req.keep)
    got = run_on_device(
        target,
        artifact,
        plan.eval_npz,
        settings,
        progress,
        runner,
        req.input_shapes,
        req.agreement,
        req.probe,
    )
    measured.append(got)
    run = got.run
    if not run.get("accuracy") and plan.note:
        run["accuracy_note"] = plan.note
    if req.agreement and not (run.get("agreement") or {}).get("report"):
        section = run.get("agreement") if isinstance(run.get("agreement"), dict) else {}
        run["agreement"] = {
            **section,
            "report": None,
            "note": section.get("error")
            or f"not measured: the {runner.name} runner returns no model outputs",
        }
    _check_model(req, run, target)
    budget, ref_top1 = req.budget, req.reference.top1
    verdict = (
        judge(budget, run, ref_top1, accept_invalid=settings.accept_invalid)
        if budget is not None
        else None
    )
    total = time.perf_counter() - req.clock_start
    device_s = got.device_seconds()  # every repetition's, not only the reported one
    entry = manifest.manifest_entry(artifact)
    result = DeployResult(
        target={
            "name": req.target.name,
            "transport": req.target.transport,
            "address": target.describe(),
        },
        artifact={
            "path": str(artifact),
            "sha256": run["model"]["sha256"],
            "bytes": run["model"]["bytes"],
            "mode": entry["mode"] if entry else None,
            "dataset": plan.dataset,
            "data": plan.source,
        },
        run=run,
        verdict=verdict,
        transfer={
            "bytes_sent": got.bytes_sent,
            "files": got.files,
            "method": got.transfer_method or None,
        },
        timing={
            "total_s": total,
            "runner_process_s": got.runner_process_s,
            "device_measure_s": device_s,
            "orchestration_s": total - device_s,
        },
        host={
            "float32_reference": req.reference.path,
            "float32_reference_top1": ref_top1,
            "budget": budget.to_dict() if budget else None,
            "settings": settings.to_dict(),
            "runner": runner.name,
            "input_shapes": list(req.input_shapes),
            "kept": kept_note(target, got.workdir) if got.kept else None,
        },
        started_utc=req.started_utc,
        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if req.results_dir is not None:
        save(result, req.results_dir, progress)
    return result


def kept_note(target: Target, workdir: str | None) -> dict[str, Any]:
    """Where a `--keep` run folder is and how to remove it (no later run sweeps it)."""
    remove = f"rm -rf {workdir}"
    if target.transport == "local":
        remove = "edgeq cache prune --kept (or " + remove + ")"
    else:
        remove += f" on {target.describe()}"
    return {"workdir": workdir, "target": target.name, "remove": remove}


def _check_model(req: DeployRequest, run: dict[str, Any], target: Target) -> None:
    """The measured model is the one sent, and the artifact did not change meanwhile."""
    artifact, sent_sha = req.artifact, req.sha256
    now_sha = fsutil.sha256_file(artifact) if artifact.is_file() else "(deleted)"
    if now_sha != sent_sha:
        raise ModelError(
            f"{artifact} changed while the deploy ran (sha256 {sent_sha[:12]}… when it was "
            f"checked, {now_sha[:12]}… now); the measurement is of content that is gone and "
            f"is not saved — run again once the file is no longer being written"
        )
    if run["model"]["sha256"] != sent_sha:
        raise RunnerError(
            f"{req.target.name}: the device ran a different model than sent "
            f"(sha256 mismatch); clear its cache folder {target.cache_dir}"
        )


def fallback_dir() -> Path:
    """Where results go when their folder cannot take them."""
    return cache_root() / "unsaved-results"


def save(result: DeployResult, results_dir: Path, progress: Progress | None = None) -> Path:
    """Save the result (atomically: never half a file) in `results_dir`, else in the
    fallback folder, else the temp folder — saying where it went and why."""
    try:
        path = result.save(results_dir)
    except (OSError, UsageError) as exc:
        why = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)
        result.host["save_error"] = f"{results_dir}: {why}"
        unsaved = Path(tempfile.gettempdir()) / f"edgeq-unsaved-results-{os.geteuid()}"

        def save_to(folder: Path) -> Path:
            if folder == unsaved:  # in a shared folder: private, or not at all
                ensure_local(folder, "the last-resort results folder")
            return result.save(folder)

        path = fsutil.write_first((fallback_dir(), unsaved), save_to)
        if path is None:
            raise UsageError(
                f"cannot save the result in {results_dir} ({why}) nor in {fallback_dir()}; "
                f"free some space and run again"
            ) from None
        say(
            progress,
            f"warning: could not write the result to {results_dir} ({why}); saved it to "
            f"{path} instead",
        )
    else:
        say(progress, f"saved {path}")
    result.host["saved_to"] = str(path)
    return path


def _save_partial(
    results_dir: Path, target_cfg: TargetConfig, artifact: Path, got: Measurement, exc: Exception
) -> Path | None:
    """A partial record (schema edgeq.deploy-partial/1): the measurement and the error."""
    doc = {
        "schema": "edgeq.deploy-partial/1",
        "edgeq_version": __version__,
        "error": {"type": type(exc).__name__, "message": str(exc)},
        "target": {"name": target_cfg.name, "transport": target_cfg.transport},
        "artifact": {"path": str(artifact), "sha256": got.run["model"]["sha256"]},
        "run": got.run,
        "transfer": {"bytes_sent": got.bytes_sent, "files": got.files},
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = file_stem(target_cfg.name)
    return fsutil.write_first(
        (Path(results_dir), fallback_dir()),
        lambda folder: fsutil.write_json(folder / f"{stamp}_{safe}.partial.json", doc),
    )
