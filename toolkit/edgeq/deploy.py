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

    recipe = Recipe(
        dataset=model_cfg["dataset"],
        epochs=model_cfg["epochs"],
        batch_size=model_cfg["batch_size"],
        seed=model_cfg["seed"],
        width=float(model_cfg["width"]),
        learning_rate=float(model_cfg["learning_rate"]),
        lr_schedule=model_cfg["lr_schedule"],
        augment=model_cfg["augment"],
    ).validate()
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
) -> Measurement:
    """Measure `artifact` on `target` with the runner the target asks for (opened and closed
    inside; its per-run workdir is removed unless the target keeps it), with the settings'
    repetitions, thread sweep, cool-down, governor pin and validity sampling."""
    from . import measure as measure_mod

    runner = runner or choose(target.config, settings)
    return measure_mod.measure(target, runner, Job(Path(artifact), eval_npz, settings), progress)


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
) -> DeployResult:
    """Measure `artifact` on the target and judge it (budget None: measure only)."""
    settings = (settings or RunSettings()).validate()
    artifact = resolve_artifact(artifact)
    runner = choose(target_cfg, settings)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    eval_npz = None
    if with_data:
        _say(progress, f"staging the {dataset} test split")
        eval_npz = stage.eval_data(dataset, data_path, settings.limit)
    ref_top1, ref_path = (None, None)
    if budget is not None and eval_npz is not None:
        ref_top1, ref_path = host_reference(artifact, eval_npz, progress)
    target = make_target(target_cfg, keep=keep)
    got = measure(target, artifact, eval_npz, settings, progress, runner)
    run = got.run
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
            "dataset": dataset,
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
        },
        started_utc=started,
        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if results_dir is not None:
        path = result.save(results_dir)
        _say(progress, f"saved {path}")
        result.host["saved_to"] = str(path)
    return result
