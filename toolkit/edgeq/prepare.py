"""The host half of a deploy: everything decided and checked before a device is touched.

    prepare_artifact(model_cfg)  train + convert per the [model] recipe (or reuse it)
    resolve_artifact(path)       a TFLite file this host can load, else ModelError (exit 2)
    plan_data(artifact, ...)     the evaluation data to send (staged and checked), or why none
    host_reference(artifact, npz) top-1 of the float32 model it came from, on the same data
    prepare(target_cfg, ...)     all of that → one `DeployRequest` for the device half

`deploy.run_request(request)` is the device half (lock → target → runner → validate →
verdict → save). The lab stages each model's data and reference once (`Staged`) and hands
them to `prepare`, which then plans nothing again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeq_device import edgeq_runner as runner

from . import __version__, convert, data, evaldata, fsutil, manifest
from .agreement import check_data, host_accuracy
from .budget import Budget, check_judgeable
from .devapi import load_eval_data, model_io, parse_input_shapes, resolve_shapes
from .errors import ModelError, UsageError
from .fields import TargetConfig
from .paths import cache_root
from .progress import Progress, say
from .runners import Runner, choose
from .settings import DEFAULT_AGREEMENT, RunSettings
from .train import Recipe, train

__all__ = [
    "DataPlan",
    "DeployRequest",
    "HostReference",
    "Staged",
    "check_loadable",
    "dataset_of",
    "host_reference",
    "plan_data",
    "prepare",
    "prepare_artifact",
    "resolve_artifact",
]


# --------------------------------------------------------------------------- artifacts


def prepare_artifact(
    model_cfg: dict[str, Any],
    data_path: Path | None = None,
    progress: Progress | None = None,
    train_progress: Any = None,
) -> Path:
    """Train + convert per the [model] recipe, or reuse the cached result of the same recipe."""

    recipe = Recipe.from_model_config(model_cfg).validate()
    mode = model_cfg["mode"]
    source = data.resolve(recipe.dataset, data_path)
    data_id = fsutil.sha256_file(source) if source else f"download:{recipe.dataset}"
    key = recipe.key(f"{data_id}|cal={model_cfg['calibration_samples']}")
    folder = cache_root() / "models" / key
    artifact = folder / manifest.artifact_name(mode)
    if artifact.is_file() and manifest.manifest_entry(artifact):
        say(progress, f"reusing {artifact} (recipe {key})")
        return artifact
    if not (folder / "model.keras").is_file():
        say(progress, f"training {recipe.epochs} epoch(s) on {recipe.dataset} (recipe {key})")
        train(recipe, folder, data_path, progress=train_progress)
    modes = sorted({mode, "float32"}, key=convert.MODES.index)
    say(progress, f"converting to {', '.join(modes)}")
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
    entry = manifest.manifest_entry(Path(artifact)) if Path(artifact).is_file() else None
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


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class HostReference:
    """Top-1 of the float32 model an artifact came from, on the deploy's data, evaluated on
    this host (what the budget's accuracy drop is measured against); empty when there is
    no float32 sibling, no data or no budget."""

    top1: float | None = None
    path: str | None = None


def host_reference(
    artifact: Path, eval_npz: Path, progress: Progress | None = None
) -> tuple[float | None, str | None]:
    """Host accuracy of the float32 model the artifact came from, on the same data (cached)."""

    entry = manifest.manifest_entry(artifact)
    if entry and entry["mode"] == "float32":
        ref = artifact
    else:
        ref = artifact.with_name(manifest.artifact_name("float32"))
        ref_entry = manifest.manifest_entry(ref) if ref.is_file() else None
        if not (
            entry and ref_entry and ref_entry["source_model_sha256"] == entry["source_model_sha256"]
        ):
            return None, None
    key = f"{fsutil.sha256_file(ref)}|{fsutil.sha256_file(eval_npz)}|{__version__}"
    cache = cache_root() / "host-reference.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key], str(ref)
    say(progress, f"evaluating the float32 reference {ref.name} on the host")
    acc = host_accuracy(ref, eval_npz)
    known[key] = acc["top1"]
    try:
        fsutil.write_json(cache, known)
    except UsageError:
        pass
    return acc["top1"], str(ref)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataPlan:
    """What evaluation data a deploy sends, decided (and checked) on the host before
    anything is pushed: the staged file, or why there is none."""

    eval_npz: Path | None
    note: str | None = None
    source: str | None = None
    dataset: str | None = None
    #: the data gives accuracy (labelled, and the model a classifier); else it only feeds
    #: the model, and the outputs on it are compared with the host's (output agreement)
    accuracy: bool = True


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

    io = model_io(artifact)
    opts = data_options or {}
    if not with_data:
        resolve_shapes(io, input_shapes)
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
        check = check_data(io, d, input_shapes)
        say(progress, f"staging {d.describe()}")
        staged = evaldata.stage(evaldata.subset(d, limit))
        if not check.applicable:
            # not a classifier, or no labels: the data still feeds the model (benchmark
            # input, and the samples whose outputs are compared with the host's)
            return DataPlan(staged, check.note, d.source, accuracy=False)
        return DataPlan(staged, None, d.source)
    if not _mnist_like(io, dataset):
        resolve_shapes(io, input_shapes)
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
    say(progress, f"staging the {dataset} test split")
    npz = evaldata.stage_dataset(dataset, data_path, limit)
    x, y, scale, offset = load_eval_data(str(npz))
    check_data(io, evaldata.EvalData(x, y, str(npz), "npz", scale, offset), input_shapes)
    return DataPlan(npz, None, str(npz), dataset)


@dataclass(frozen=True)
class Staged:
    """What the lab staged for a model once, before the fan-out: its data plan and its host
    reference. Given to `prepare`, a deploy plans neither again."""

    plan: DataPlan
    reference: HostReference = field(default_factory=HostReference)


def stage_data(
    artifact: Path,
    dataset: str,
    data_path: Path | None,
    limit: int | None,
    progress: Progress | None = None,
) -> Staged:
    """The data plan and host reference of a model, for every deploy of it to share."""
    plan = plan_data(artifact, dataset, data_path, True, limit, {}, None, progress)
    reference = HostReference()
    if plan.eval_npz is not None and plan.accuracy:
        reference = HostReference(*host_reference(artifact, plan.eval_npz, progress))
    return Staged(plan, reference)


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class DeployRequest:
    """Everything the device half of a deploy needs, prepared and checked on the host."""

    target: TargetConfig
    #: the artifact, checked loadable, and its sha256 when it was checked
    artifact: Path
    sha256: str
    plan: DataPlan
    reference: HostReference
    #: validated; `agreement` is the resolved number of agreement samples (0: none)
    settings: RunSettings
    agreement: int
    runner: Runner
    budget: Budget | None = None
    #: the user's `NAME=d0,d1,…` strings, as given
    input_shapes: tuple[str, ...] = ()
    keep: bool = False
    results_dir: Path | None = None
    #: check what the device needs before sending anything (False right after a health check)
    probe: bool = True
    #: when preparing began (wall clock, and time.perf_counter() for the total)
    started_utc: str = ""
    clock_start: float = 0.0

    @property
    def eval_npz(self) -> Path | None:
        return self.plan.eval_npz


def prepare(
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
    staged: Staged | None = None,
    runner: str | None = None,
) -> DeployRequest:
    """Check on the host everything that can be checked before anything is pushed — the
    results folder, the artifact (a TFLite flatbuffer the host interpreter can load), the
    runner, the input shapes and the evaluation data against the model's input (see
    `plan_data`) — and stage the data and the float32 reference (budget only). `staged`:
    what the lab staged for this model already (used instead of planning again)."""
    settings = (settings or RunSettings()).validate()
    if results_dir is not None:
        fsutil.check_writable_dir(results_dir, "--results")
    artifact = resolve_artifact(artifact)
    shapes = parse_input_shapes(input_shapes or ())
    sent_sha = fsutil.sha256_file(artifact)
    runner = choose(target_cfg, settings, runner)  # `runner`: a name (bench --runner)
    if budget is not None:  # a percentile the runner cannot report: refused before any push
        check_judgeable(
            budget,
            runner.name,
            runner.latency_reports.get(budget.latency_kind, ()),
            target_cfg.name,
        )
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    if staged is not None:
        plan = staged.plan
    else:
        plan = plan_data(
            artifact, dataset, data_path, with_data, settings.limit, shapes, data_options, progress
        )
    agreement = settings.agreement
    if agreement is None:
        agreement = DEFAULT_AGREEMENT if plan.eval_npz is None or not plan.accuracy else 0
    reference = HostReference()
    if budget is not None and plan.eval_npz is not None and plan.accuracy:
        if staged is not None:
            reference = staged.reference
        else:
            reference = HostReference(*host_reference(artifact, plan.eval_npz, progress))
    return DeployRequest(
        target=target_cfg,
        artifact=artifact,
        sha256=sent_sha,
        plan=plan,
        reference=reference,
        settings=settings,
        agreement=agreement,
        runner=runner,
        budget=budget,
        input_shapes=tuple(input_shapes or ()),
        keep=keep,
        results_dir=results_dir,
        probe=probe,
        started_utc=started,
        clock_start=t0,
    )
