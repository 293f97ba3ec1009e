"""Deploy: stage → transport → runner → validate → verdict → save.

`deploy()` is the whole of `edgeq deploy` (and, without a budget, of `edgeq bench`);
`measure()` is the device part alone. It knows no transport and no runner by name: the
target comes from `edgeq.targets` (by its `transport`), the runner from `edgeq.runners`
(by the target's `runner`). Without an artifact, `prepare_artifact()` trains and converts
per the [model] recipe, reusing an earlier result with the same content hash.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, convert, data, fsutil, stage
from .budget import Budget, check_judgeable, judge
from .errors import EdgeqError, ModelError, RunnerError, UsageError
from .fields import TargetConfig
from .results import DeployResult
from .runners import Job, Measurement, Runner, choose
from .settings import RunSettings
from .targets import Target, make_target

__all__ = [
    "RunSettings",
    "dataset_of",
    "deploy",
    "device_lock",
    "host_reference",
    "measure",
    "prepare_artifact",
    "resolve_artifact",
]

Progress = Callable[[str], None]


def _say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


# --------------------------------------------------------------------------- artifacts


def prepare_artifact(
    model_cfg: dict[str, Any],
    data_path: Path | None = None,
    progress: Progress | None = None,
    train_progress: Any = None,
) -> Path:
    """Train + convert per the [model] recipe, or reuse the cached result of the same recipe."""
    from .train import Recipe, train

    recipe = Recipe.from_model_config(model_cfg).validate()
    mode = model_cfg["mode"]
    source = data.resolve(recipe.dataset, data_path)
    data_id = fsutil.sha256_file(source) if source else f"download:{recipe.dataset}"
    key = recipe.key(f"{data_id}|cal={model_cfg['calibration_samples']}")
    folder = stage.cache_root() / "models" / key
    artifact = folder / convert.artifact_name(mode)
    if artifact.is_file() and convert.manifest_entry(artifact):
        _say(progress, f"reusing {artifact} (recipe {key})")
        return artifact
    if not (folder / "model.keras").is_file():
        _say(progress, f"training {recipe.epochs} epoch(s) on {recipe.dataset} (recipe {key})")
        train(recipe, folder, data_path, progress=train_progress)
    modes = sorted({mode, "float32"}, key=convert.MODES.index)
    _say(progress, f"converting to {', '.join(modes)}")
    convert.convert(
        folder / "model.keras",
        modes,
        folder,
        model_cfg["calibration_samples"],
        recipe.dataset,
        data_path,
    )
    return artifact


def dataset_of(artifact: Path, default: str = "mnist") -> str:
    """The dataset an artifact was made for, from its manifest (else `default`)."""
    entry = convert.manifest_entry(Path(artifact)) if Path(artifact).is_file() else None
    return (entry or {}).get("dataset") or default


def resolve_artifact(path: Path) -> Path:
    """The artifact if it is a TFLite model this host can load, else ModelError (exit 2)
    naming the user's file — before anything is sent to a device."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"artifact not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(
            f"{p}: not a TFLite flatbuffer (no TFL3 identifier); use a .tflite from `edgeq convert`"
        )
    check_loadable(p)
    return p


def check_loadable(p: Path) -> None:
    """Load the model with the host's interpreter (its flatbuffer verifier finds truncated
    and damaged files). Operators the host lacks are the device's business (a custom or
    delegate op may exist only there), and without a host interpreter nothing is checked."""
    from edgeq_device import edgeq_runner as runner

    try:
        cls, _, _ = runner.find_interpreter()
    except runner.RunnerFailure:
        return
    try:
        runner.make_interpreter(cls, str(p))
    except runner.RunnerFailure as exc:
        if exc.kind == "BadModel":
            why = exc.message.split(": ", 1)[-1]
            raise ModelError(
                f"{p}: not a loadable TFLite model ({why}); the file is truncated or damaged "
                f"— copy it again, or re-create it with `edgeq convert`"
            ) from None


def host_reference(
    artifact: Path, eval_npz: Path, progress: Progress | None = None
) -> tuple[float | None, str | None]:
    """Host accuracy of the float32 model the artifact came from, on the same data (cached)."""
    from .hostrun import host_accuracy

    entry = convert.manifest_entry(artifact)
    if entry and entry["mode"] == "float32":
        ref = artifact
    else:
        ref = artifact.with_name(convert.artifact_name("float32"))
        ref_entry = convert.manifest_entry(ref) if ref.is_file() else None
        if not (
            entry and ref_entry and ref_entry["source_model_sha256"] == entry["source_model_sha256"]
        ):
            return None, None
    key = f"{fsutil.sha256_file(ref)}|{fsutil.sha256_file(eval_npz)}|{__version__}"
    cache = stage.cache_root() / "host-reference.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key], str(ref)
    _say(progress, f"evaluating the float32 reference {ref.name} on the host")
    acc = host_accuracy(ref, eval_npz)
    known[key] = acc["top1"]
    try:
        fsutil.write_json(cache, known)
    except UsageError:
        pass
    return acc["top1"], str(ref)


# --------------------------------------------------------------------------- measuring


def measure(
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
    repetitions, thread sweep, cool-down, governor pin and validity sampling. `probe`:
    check what the device needs before sending model and data (False right after a health
    check)."""
    from . import measure as measure_mod

    runner = runner or choose(target.config, settings)
    job = Job(Path(artifact), eval_npz, settings, tuple(input_shapes), agreement, probe=probe)
    return measure_mod.measure(target, runner, job, progress)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataPlan:
    """What evaluation data a deploy sends, decided (and checked) on the host before
    anything is pushed: the staged file, or why there is none."""

    eval_npz: Path | None
    note: str | None = None
    source: str | None = None
    dataset: str | None = None


def _mnist_like(io: Any, dataset: str) -> bool:
    """Could the book's dataset feed this model? (one input of 28×28(×1), 10 classes)"""
    if len(io.inputs) != 1 or io.classes != 10 or dataset not in data.DATASETS:
        return False
    sig = [d for d in io.inputs[0].shape_signature[1:] if d != 1]
    return sig in ([28, 28], [784], [-1, -1]) or sorted(sig) == [28, 28]


def plan_data(
    artifact: Path,
    dataset: str,
    data_path: Path | None,
    with_data: bool,
    limit: int | None,
    input_shapes: dict[str, list[int]],
    data_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> DataPlan:
    """Stage the evaluation data for `artifact`, after checking its shapes, dtypes and
    label range against the model's input (DataError, exit 2, naming both and the fix)."""
    from . import evaldata, hostrun

    io = hostrun.model_io(artifact)
    opts = data_options or {}
    if not with_data:
        hostrun.resolve_shapes(io, input_shapes)
        return DataPlan(None, "not measured: --no-data")
    kind = evaldata.kind_of(data_path) if data_path is not None else "keras"
    if kind in ("npz", "images"):
        d = evaldata.load(
            data_path,
            io,
            preprocess_scale=opts.get("preprocess_scale"),
            preprocess_offset=opts.get("preprocess_offset"),
            resize=opts.get("resize") or "bilinear",
            input_shapes=input_shapes,
        )
        check = hostrun.check_data(io, d, input_shapes)
        if not check.applicable:
            return DataPlan(None, check.note, d.source)
        _say(progress, f"staging {d.describe()}")
        return DataPlan(evaldata.stage(evaldata.subset(d, limit)), None, d.source)
    if not _mnist_like(io, dataset):
        hostrun.resolve_shapes(io, input_shapes)
        if data_path is not None:  # asked for this dataset explicitly: say why it cannot be
            raise UsageError(
                f"{data_path}: the {dataset} test split (28×28 images, 10 classes) does not fit "
                f"{artifact.name}, whose input is {io.describe_inputs()}; give --data "
                f"FILE.npz (x, y) or an image folder CLASS_NAME/*.png for it, or --no-data"
            )
        why = io.accuracy_note or "not measured: no evaluation data for this model"
        if io.classes is not None:
            why = (
                "not measured: no evaluation data for this model (give --data FILE.npz or "
                "an image folder CLASS_NAME/*.png)"
            )
        return DataPlan(None, why)
    _say(progress, f"staging the {dataset} test split")
    npz = stage.eval_data(dataset, data_path, limit)
    x, y, scale, offset = hostrun.load_eval_data(str(npz))
    hostrun.check_data(io, evaldata.EvalData(x, y, str(npz), "npz", scale, offset), input_shapes)
    return DataPlan(npz, None, str(npz), dataset)


def device_lock(target_cfg: TargetConfig, wait: bool = True, timeout_s: float = 3600.0):
    """The device's lock — the one `edgeq lab run` takes (keyed by the device's identity,
    in the same folder), so two measurements never share a device. Not yet acquired: use
    `with lock.acquire(on_wait):`; DeviceBusy (exit 3, naming the holder) if it is held
    longer than `timeout_s`, or at once with `wait=False`."""
    import os
    import sys

    from .lab.backends.flock import DeviceLock, default_lock_dir

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
    dataset: str = "mnist",
    data_path: Path | None = None,
    budget: Budget | None = None,
    settings: RunSettings | None = None,
    keep: bool = False,
    results_dir: Path | None = Path("results"),
    progress: Progress | None = None,
    with_data: bool = True,
    input_shapes: list[str] | tuple[str, ...] | None = None,
    data_options: dict[str, Any] | None = None,
    probe: bool = True,
    runner: str | None = None,
) -> DeployResult:
    """Measure `artifact` on the target and judge it (budget None: measure only) with the
    target's runner, or `runner` when given.

    Everything that can be checked on the host is checked before anything is pushed: the
    results folder, the artifact (a TFLite flatbuffer the host interpreter can load), the
    input shapes, and the evaluation data against the model's input (see `plan_data`). If
    saving still fails at the end, the result goes to a fallback folder (`host.saved_to`
    says where). If edgeq fails after the measurement (a bug), what was measured is saved
    as a partial record."""
    measured: list[Measurement] = []
    try:
        return _deploy(
            target_cfg, artifact, dataset, data_path, budget, settings, keep, results_dir,
            progress, with_data, input_shapes, data_options, probe, measured, runner,
        )  # fmt: skip
    except (EdgeqError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if measured and results_dir is not None:
            path = _save_partial(results_dir, target_cfg, Path(artifact), measured[0], exc)
            if path is not None:
                _say(progress, f"saved the measurement so far to {path}")
        raise


def _deploy(
    target_cfg: TargetConfig,
    artifact: Path,
    dataset: str,
    data_path: Path | None,
    budget: Budget | None,
    settings: RunSettings | None,
    keep: bool,
    results_dir: Path | None,
    progress: Progress | None,
    with_data: bool,
    input_shapes: list[str] | tuple[str, ...] | None,
    data_options: dict[str, Any] | None,
    probe: bool,
    measured: list[Measurement],
    runner_name: str | None = None,
) -> DeployResult:
    from . import hostrun
    from .settings import DEFAULT_AGREEMENT

    settings = (settings or RunSettings()).validate()
    if results_dir is not None:
        fsutil.check_writable_dir(results_dir, "--results")
    artifact = resolve_artifact(artifact)
    shapes = hostrun.parse_input_shapes(input_shapes or ())
    sent_sha = fsutil.sha256_file(artifact)
    runner = choose(target_cfg, settings, runner_name)
    if budget is not None:
        check_judgeable(
            budget,
            runner.name,
            runner.latency_reports.get(budget.latency_kind, ()),
            target_cfg.name,
        )
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    plan = plan_data(
        artifact, dataset, data_path, with_data, settings.limit, shapes, data_options, progress
    )
    eval_npz = plan.eval_npz
    agreement = settings.agreement
    if agreement is None:
        agreement = DEFAULT_AGREEMENT if eval_npz is None else 0
    ref_top1, ref_path = (None, None)
    if budget is not None and eval_npz is not None:
        ref_top1, ref_path = host_reference(artifact, eval_npz, progress)
    target = make_target(target_cfg, keep=keep)
    got = measure(
        target,
        artifact,
        eval_npz,
        settings,
        progress,
        runner,
        tuple(input_shapes or ()),
        agreement,
        probe,
    )
    measured.append(got)
    run = got.run
    if not run.get("accuracy") and plan.note:
        run["accuracy_note"] = plan.note
    if agreement and not (run.get("agreement") or {}).get("report"):
        section = run.get("agreement") if isinstance(run.get("agreement"), dict) else {}
        run["agreement"] = {
            **section,
            "report": None,
            "note": section.get("error")
            or f"not measured: the {runner.name} runner returns no model outputs",
        }
    now_sha = fsutil.sha256_file(artifact) if artifact.is_file() else "(deleted)"
    if now_sha != sent_sha:
        raise ModelError(
            f"{artifact} changed while the deploy ran (sha256 {sent_sha[:12]}… when it was "
            f"checked, {now_sha[:12]}… now); the measurement is of content that is gone and "
            f"is not saved — run again once the file is no longer being written"
        )
    if run["model"]["sha256"] != sent_sha:
        raise RunnerError(
            f"{target_cfg.name}: the device ran a different model than sent "
            f"(sha256 mismatch); clear its cache folder {target.cache_dir}"
        )
    verdict = (
        judge(budget, run, ref_top1, accept_invalid=settings.accept_invalid)
        if budget is not None
        else None
    )
    total = time.perf_counter() - t0
    device_s = sum(v for v in run.get("phases_ms", {}).values() if v) / 1000
    if run.get("accuracy"):
        device_s += run["accuracy"].get("seconds") or 0.0
    entry = convert.manifest_entry(artifact)
    result = DeployResult(
        target={
            "name": target_cfg.name,
            "transport": target_cfg.transport,
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
            "float32_reference": ref_path,
            "float32_reference_top1": ref_top1,
            "budget": budget.to_dict() if budget else None,
            "settings": settings.to_dict(),
            "runner": runner.name,
            "input_shapes": list(input_shapes or ()),
        },
        started_utc=started,
        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if results_dir is not None:
        save(result, results_dir, progress)
    return result


def fallback_dir() -> Path:
    """Where results go when their folder cannot take them."""
    return stage.cache_root() / "unsaved-results"


def save(result: DeployResult, results_dir: Path, progress: Progress | None = None) -> Path:
    """Save the result (atomically: never half a file) in `results_dir`, else in the
    fallback folder, else the temp folder — saying where it went and why."""
    try:
        path = result.save(results_dir)
    except (OSError, UsageError) as exc:
        why = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)
        result.host["save_error"] = f"{results_dir}: {why}"
        for folder in (fallback_dir(), Path(tempfile.gettempdir()) / "edgeq-unsaved-results"):
            try:
                path = result.save(folder)
                break
            except (OSError, UsageError):
                continue
        else:
            raise UsageError(
                f"cannot save the result in {results_dir} ({why}) nor in {fallback_dir()}; "
                f"free some space and run again"
            ) from None
        _say(
            progress,
            f"warning: could not write the result to {results_dir} ({why}); saved it to "
            f"{path} instead",
        )
    else:
        _say(progress, f"saved {path}")
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
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target_cfg.name)
    for folder in (Path(results_dir), fallback_dir()):
        try:
            return fsutil.write_json(folder / f"{stamp}_{safe}.partial.json", doc)
        except (OSError, UsageError):
            continue
    return None
