"""Deploy: stage → transport → runner → validate → verdict → save.

`deploy()` is the whole of `edgeq deploy` (and, without a budget, of `edgeq bench`);
`measure()` is the device part alone. It knows no transport and no runner by name: the
target comes from `edgeq.targets` (by its `transport`), the runner from `edgeq.runners`
(by the target's `runner`). Without an artifact, `prepare_artifact()` trains and converts
per the [model] recipe, reusing an earlier result with the same content hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, convert, data, fsutil, stage
from .budget import Budget, judge
from .errors import ModelError, RunnerError, UsageError
from .fields import TargetConfig
from .results import DeployResult
from .runners import Job, Measurement, Runner, choose
from .settings import RunSettings
from .targets import Target, make_target

__all__ = [
    "RunSettings",
    "dataset_of",
    "deploy",
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
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"artifact not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(
            f"{p}: not a TFLite flatbuffer (no TFL3 identifier); use a .tflite from `edgeq convert`"
        )
    return p


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
) -> Measurement:
    """Measure `artifact` on `target` with the runner the target asks for (opened and closed
    inside; its per-run workdir is removed unless the target keeps it), with the settings'
    repetitions, thread sweep, cool-down, governor pin and validity sampling."""
    from . import measure as measure_mod

    runner = runner or choose(target.config, settings)
    job = Job(Path(artifact), eval_npz, settings, tuple(input_shapes), agreement)
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
) -> DeployResult:
    """Measure `artifact` on the target and judge it (budget None: measure only).

    Everything that can be checked on the host is checked before anything is pushed: the
    artifact (a TFLite flatbuffer the host interpreter can load), the input shapes, and
    the evaluation data against the model's input (see `plan_data`)."""
    from . import hostrun
    from .settings import DEFAULT_AGREEMENT

    settings = (settings or RunSettings()).validate()
    artifact = resolve_artifact(artifact)
    shapes = hostrun.parse_input_shapes(input_shapes or ())
    runner = choose(target_cfg, settings)
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
        target, artifact, eval_npz, settings, progress, runner, tuple(input_shapes or ()), agreement
    )
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
    if run["model"]["sha256"] != fsutil.sha256_file(artifact):
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
    measured = sum(v for v in run.get("phases_ms", {}).values() if v) / 1000
    if run.get("accuracy"):
        measured += run["accuracy"].get("seconds") or 0.0
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
        transfer={"bytes_sent": got.bytes_sent, "files": got.files},
        timing={
            "total_s": total,
            "runner_process_s": got.runner_process_s,
            "device_measure_s": measured,
            "orchestration_s": total - measured,
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
        path = result.save(results_dir)
        _say(progress, f"saved {path}")
        result.host["saved_to"] = str(path)
    return result
