"""The models a lab run measures: `--models`, else the inventory's, else trained per
[model]; each staged once (evaluation data, host float32 reference) before the fan-out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import fsutil, manifest
from .. import prepare as prepare_mod
from ..errors import UsageError
from .inventory import Inventory
from .records import Artifact


def resolve_models(
    inv: Inventory,
    models: list[Path] | None = None,
    data_path: Path | None = None,
    say: Callable[[str], None] | None = None,
    labels: list[str] | None = None,
) -> list[Artifact]:
    """The artifacts to run: `--models`, else the inventory's, else trained per [model].

    Each is named by its file name (its parent folder too when two files share a name), or
    by `labels` (one per model, in order). Its history is keyed by its content either way."""
    paths = [Path(m) for m in models] if models else inv.model_paths
    labels = list(labels or [])
    if labels and len(labels) != len(paths):
        raise UsageError(
            f"--label was given {len(labels)} time(s) for {len(paths)} model(s); give one "
            f"label per model, in the order of --models"
        )
    if not paths:
        if not inv.lab["modes"]:
            raise UsageError(
                f"{inv.path}: nothing to run; set models = [...] or modes = [...] in [lab], "
                f"or pass --models"
            )
        for mode in inv.lab["modes"]:
            recipe = {**inv.model, "mode": mode, "dataset": inv.model["dataset"]}
            paths.append(prepare_mod.prepare_artifact(recipe, data_path, say, _epochs(say)))
    out: list[Artifact] = []
    names: dict[str, Path] = {}
    digests: dict[str, Path] = {}
    for i, p in enumerate(paths):
        p = prepare_mod.resolve_artifact(p)
        digest = fsutil.sha256_file(p)
        if digest in digests:
            raise UsageError(
                f"model {p} is listed twice (same content as {digests[digest]}); each model "
                f"runs once per device"
            )
        digests[digest] = p
        name = labels[i] if labels else p.name
        if name in names and not labels:
            name = f"{p.parent.name}/{p.name}"
        if name in names:
            raise UsageError(f"two models are named {name!r}; give each its own --label")
        names[name] = p
        entry = manifest.manifest_entry(p)
        out.append(
            Artifact(
                name=name,
                path=p.resolve(),
                sha256=digest,
                bytes=p.stat().st_size,
                mode=entry["mode"] if entry else None,
                dataset=(entry or {}).get("dataset") or inv.lab["dataset"],
            )
        )
    return out


def _epochs(say: Callable[[str], None] | None) -> Callable[..., None] | None:
    """A training progress function that says one line per finished epoch."""
    if say is None:
        return None

    def progress(epoch: int, epochs: int, batch: int, batches: int, logs: dict) -> None:
        if batch == batches and "accuracy" in logs:
            val = f", val_accuracy {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else ""
            say(f"epoch {epoch}/{epochs}: accuracy {logs['accuracy']:.4f}{val}")

    return progress


def stage_models(
    inv: Inventory,
    artifacts: list[Artifact],
    data_path: Path | None,
    say: Callable[[str], None] | None = None,
) -> list[Artifact]:
    """Check and stage each model's evaluation data and its host reference once, before
    the fan-out; each device's deploy is handed them (`Artifact.staged`) and plans neither
    again. A model the data does not fit is refused here (exit 2), before any device is
    touched."""
    if not inv.lab["accuracy"]:
        return artifacts
    limit = inv.lab["eval_limit"] or None
    out = []
    for a in artifacts:
        staged = prepare_mod.stage_data(a.path, a.dataset, data_path, limit, say)
        out.append(
            replace(
                a,
                eval_npz=staged.plan.eval_npz,
                reference_top1=staged.reference.top1,
                staged=staged,
            )
        )
    return out
