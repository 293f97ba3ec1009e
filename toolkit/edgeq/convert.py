"""TFLite conversion in every registered mode (`edgeq.quantmodes`), writing the manifest.

Modes (one module each in `edgeq/quantmodes/`; this list is their registry's):
    float32   no quantization
    dynamic   dynamic-range: int8 weights, float activations (no calibration)
    float16   float16 weights
    int8      full integer, int8 input and output, calibrated on the TRAINING split;
              options: keep named layers in float, or pick them until a drop fits
    int16x8   int16 activations, int8 weights (float input/output), calibrated likewise

`manifest.json` beside the artifacts records, per artifact, its bytes, sha256, tensor
dtypes/shapes/quantization, the source model's sha256, how it was calibrated and, for
int8, which layers stayed in float.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, data, evaldata, fsutil, quantmodes, tfenv
from .devapi import preprocessing_rule, to_input
from .errors import UsageError
from .manifest import (
    MANIFEST,
    MANIFEST_SCHEMA,
    artifact_name,
    dataset_of,
    describe_tflite,
    load_manifest,
)
from .quantmodes import Calibration
from .quantmodes.converter import convert_model
from .train import load_model

MODES = quantmodes.MODES
CALIBRATED = quantmodes.CALIBRATED
CALIBRATION_SEED = 0
VALIDATION_SAMPLES = 5000

__all__ = [
    "CALIBRATED",
    "MODES",
    "Calibration",
    "ValidationSet",
    "artifact_name",
    "calibration_set",
    "convert",
    "convert_model",
    "parse_modes",
    "validation_set",
]


def parse_modes(modes: list[str] | tuple[str, ...]) -> list[str]:
    """Validate modes (and expand `all`), keeping the canonical order."""
    wanted: set[str] = set()
    for m in modes or ["float32", "int8"]:
        for part in str(m).split(","):
            part = part.strip().lower()
            if part == "all":
                wanted.update(MODES)
            else:
                wanted.add(quantmodes.get(part).name)
    return [m for m in MODES if m in wanted]


def _train_order(n: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).permutation(n)


def model_inputs(x: np.ndarray) -> np.ndarray:
    """What the converter and the debugger feed: uint8 images get the book's preprocessing,
    real-valued samples (your own, already preprocessed) pass as they are."""
    return x.astype(np.float32, copy=False) if x.dtype.kind == "f" else data.preprocess(x)


def training_data(dataset: str, data_path: Path | None, model: Any) -> data.Dataset:
    """What int8 calibration and `inspect` draw from: the training split of a Keras-layout
    dataset, or your own .npz (`x`, `y`, optional `preprocess_scale`/`preprocess_offset`)
    — its samples become real model inputs here (x * scale + offset; uint8 without those
    keys: the book's x / 127.5 - 1; float: as is), and a missing channel axis is added
    when the model's input has one more dimension of size 1."""
    kind = None if data_path is None else evaldata.kind_of(data_path)
    if kind in (None, "keras"):
        return data.load(dataset, data_path)
    path = Path(data_path).expanduser()
    if kind != "npz":
        raise UsageError(
            f"--data {path}: convert and inspect take your samples as an .npz with x and y "
            f"(an image folder is for deploy, bench and eval); save the images with "
            f"numpy.savez(FILE, x=..., y=...)"
        )
    own = evaldata.load_npz(path)
    if isinstance(own.x, dict):
        raise UsageError(
            f"--data {path}: convert and inspect take one input's samples x (and labels y); "
            f"an .npz with one array per input ({', '.join(own.x)}) is for deploy, bench, "
            f"eval and the lab"
        )
    if own.y is None:
        raise UsageError(
            f"--data {path}: convert and inspect take samples x with labels y (the "
            f"validation of the converted models and inspect's accuracy use them); this "
            f".npz has x only"
        )
    real = {"name": "the Keras model's input", "dtype": np.float32}  # it takes real values
    rule = preprocessing_rule(own.x.dtype, real, own.preprocess_scale,
                              own.preprocess_offset)  # fmt: skip
    x = np.asarray(to_input(own.x, real, rule), dtype=np.float32)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if len(shapes) == 1 and (*x.shape[1:], 1) == shapes[0]:
        x = x[..., None]
    y = own.y.astype(np.int64).reshape(-1)
    return data.Dataset(
        name=path.name, x_train=x, y_train=y, x_test=x[:1], y_test=y[:1], source=own.source,
        split="",
    )  # fmt: skip


def check_fits(model: Any, ds: data.Dataset, model_path: Path) -> None:
    """The model must take the data's samples: calibration (and inspect's statistics) feed
    them to it. A usage error naming both shapes, before any conversion starts."""
    want = tuple(model_inputs(ds.x_train[:1]).shape[1:])
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if len(shapes) != 1 or (None not in shapes[0] and shapes[0] != want):
        got = ", ".join(str(list(s)) for s in shapes)
        what = f"{ds.name} images are" if ds.split else f"the samples in {ds.name} are"
        raise UsageError(
            f"{model_path} takes input {got} but {what} {list(want)}: calibration feeds them "
            f"to the model. Give samples of its input shape as an .npz (--data FILE with x, "
            f"y and optional preprocess_scale/preprocess_offset), or convert without "
            f"calibration (--mode float32, float16 or dynamic)"
        )


def _split(ds: data.Dataset) -> str:
    return f"{ds.name} {ds.split}".strip()


def calibration_set(ds: data.Dataset, samples: int, seed: int = CALIBRATION_SEED) -> Calibration:
    """`samples` images drawn deterministically from the TRAINING split (never the test split)."""
    n = len(ds.x_train)
    if samples < 1:
        raise UsageError(f"--calibration-samples must be >= 1, got {samples}")
    if samples > n:
        raise UsageError(
            f"--calibration-samples {samples} is larger than the training split ({n} images); "
            f"use at most {n}"
        )
    idx = np.sort(_train_order(n, seed)[:samples])
    return Calibration(
        images=model_inputs(ds.x_train[idx]),
        source=f"{_split(ds)}, {samples} images, seed {seed}",
        samples=samples,
    )


@dataclass(frozen=True)
class ValidationSet:
    """Samples (uint8 images as stored, or your own real-valued ones) and labels held out
    for choosing what to keep in float."""

    x: np.ndarray
    y: np.ndarray
    source: str

    @property
    def images(self) -> np.ndarray:
        """Preprocessed float32 images (what the debugger feeds the models)."""
        return model_inputs(self.x)


def validation_set(
    ds: data.Dataset,
    samples: int = VALIDATION_SAMPLES,
    calibration_samples: int = 0,
    seed: int = CALIBRATION_SEED,
) -> ValidationSet:
    """`samples` TRAINING-split images that are not among the first `calibration_samples`
    of the same deterministic order (so never a calibration image, never the test split).

    The model has seen these images in training, so float accuracy on them is high; what
    they measure well is how far int8 moves away from float.
    """
    n = len(ds.x_train)
    left = n - calibration_samples
    if samples < 1:
        raise UsageError(f"--validation-samples must be >= 1, got {samples}")
    if left < 1:
        raise UsageError(
            f"no training images left for validation after {calibration_samples} calibration "
            f"images ({n} in the training split); use fewer --calibration-samples"
        )
    samples = min(samples, left)
    idx = np.sort(_train_order(n, seed)[calibration_samples : calibration_samples + samples])
    return ValidationSet(
        x=ds.x_train[idx],
        y=ds.y_train[idx],
        source=f"{_split(ds)}, {samples} images not used for calibration, seed {seed}",
    )


def _convert_one(
    model: Any,
    mode: str,
    calibration: Calibration | None,
    options: dict[str, Any],
    plan: Any,
    validation: ValidationSet | None,
    progress: Any,
    device: Any = None,
) -> tuple[bytes, dict[str, Any]]:
    """One mode with its options: (flatbuffer, what the options did, for the manifest)."""
    spec = quantmodes.get(mode)
    if spec.convert is not None:
        extra = {"device": device} if device is not None else {}
        done = spec.convert(
            model,
            calibration,
            options,
            plan=plan,
            validation=validation,
            progress=progress,
            **extra,
        )
        if done is not None:
            return done[0], {**spec.manifest_defaults, **done[1]}
    return convert_model(model, mode, calibration), dict(spec.manifest_defaults)


def _split_options(modes: list[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Give each mode the options it declares; an option no chosen mode takes is an error."""

    def given(v: Any) -> bool:  # 0.0 is a value (--max-drop-pp 0), False and [] are not
        return v is not None and v is not False and not (isinstance(v, list | tuple) and not v)

    options = {k: v for k, v in (options or {}).items() if given(v)}
    declared = quantmodes.options()
    for key in options:
        for other in declared[key].conflicts if key in declared else ():
            if other in options:
                flags = declared[other].main_flag, declared[key].main_flag
                raise UsageError(f"use {flags[0]} or {flags[1]}, not both")
        for needed in declared[key].requires if key in declared else ():
            if needed not in options:
                flags = declared[key].main_flag, declared[needed].main_flag
                raise UsageError(f"{flags[0]} is an option of {flags[1]}; add {flags[1]}")
    per_mode: dict[str, dict[str, Any]] = {m: {} for m in modes}
    for key, value in options.items():
        takers = [m for m in modes if key in quantmodes.get(m).options]
        if not takers:
            owners = [m for m in MODES if key in quantmodes.get(m).options]
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"{flag} applies to mode {' or '.join(owners) or '(none)'}; add "
                f"--mode {owners[0] if owners else '...'}"
            )
        for m in takers:
            per_mode[m][key] = value
    return per_mode


def _needs_validation(options: dict[str, Any]) -> bool:
    """Does an option given here need the validation split (as its declaration says)?"""
    declared = quantmodes.options()
    return any(declared[k].validation for k in options if k in declared)


def convert(
    model_path: Path,
    modes: list[str],
    out_dir: Path,
    calibration_samples: int = 500,
    dataset: str | None = None,
    data_path: Path | None = None,
    progress: Any = None,
    *,
    options: dict[str, Any] | None = None,
    validation_samples: int = VALIDATION_SAMPLES,
    step_progress: Any = None,
    device: Any = None,
) -> dict[str, Any]:
    """Convert `model_path` to every mode; write artifacts and `manifest.json` atomically.

    `options` are mode options by name (`keep_float=[...]`, `keep_float_auto=X` for int8);
    each goes to the chosen modes that declare it (`QuantMode.options`).
    `step_progress(done, total, what)` follows the auto search. `device(flatbuffer, what)`
    measures a model's latency on a device ({"ms": …}; `--max-latency-ms` needs it).
    Returns the manifest.
    Modes and options are validated, the model loaded, the calibration set built and the
    output folder checked before anything is written.
    """
    modes = parse_modes(modes)
    per_mode = _split_options(modes, options or {})
    if device is None and any("max_latency_ms" in o for o in per_mode.values()):
        raise UsageError("--max-latency-ms needs --target T: the device each step is measured on")
    model_path = Path(model_path)
    model = load_model(model_path)
    out = fsutil.ensure_writable_dir(out_dir)
    dataset = dataset or dataset_of(model_path)
    calib = validation = None
    if any(m in CALIBRATED for m in modes):
        ds = training_data(dataset, data_path, model)
        check_fits(model, ds, model_path)
        if not ds.split:  # your own samples: no known dataset to evaluate on
            dataset = None
        calib = calibration_set(ds, calibration_samples)
        if any(_needs_validation(o) for o in per_mode.values()):
            validation = validation_set(ds, validation_samples, calibration_samples)
    plans = {}
    for m in modes:
        spec = quantmodes.get(m)
        plans[m] = spec.prepare(model, calib, per_mode[m]) if spec.prepare else None
    tf = tfenv.tf()
    model_sha = fsutil.sha256_file(model_path)
    manifest = load_manifest(out) or {"schema": MANIFEST_SCHEMA, "artifacts": []}
    entries = {a["mode"]: a for a in manifest.get("artifacts", [])}
    for i, mode in enumerate(modes):
        if progress:
            progress(i, len(modes), mode)
        t0 = time.perf_counter()
        blob, applied = _convert_one(
            model,
            mode,
            calib if mode in CALIBRATED else None,
            per_mode[mode],
            plans[mode],
            validation,
            step_progress,
            device if "max_latency_ms" in per_mode[mode] else None,
        )
        seconds = time.perf_counter() - t0
        path = out / artifact_name(mode)
        fsutil.write_bytes(path, blob)
        tensors = describe_tflite(path)
        entries[mode] = {
            "file": path.name,
            "mode": mode,
            "bytes": len(blob),
            "sha256": fsutil.sha256_bytes(blob),
            "input": tensors["input"],
            "output": tensors["output"],
            "source_model": str(model_path),
            "source_model_sha256": model_sha,
            "dataset": dataset,
            "calibration": (
                {"samples": calib.samples, "source": calib.source}
                if mode in CALIBRATED and calib
                else None
            ),
            **applied,
            "convert_seconds": seconds,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"tensorflow": tf.__version__, "edgeq": __version__},
        }
    if progress:
        progress(len(modes), len(modes), "")
    manifest["artifacts"] = [entries[m] for m in MODES if m in entries]
    fsutil.write_json(out / MANIFEST, manifest)
    return manifest
