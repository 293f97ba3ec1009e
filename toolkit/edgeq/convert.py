"""TFLite conversion in every mode the converter offers, and the artifact manifest.

Modes:
    float32   no quantization
    dynamic   dynamic-range: int8 weights, float activations (no calibration)
    float16   float16 weights
    int8      full integer, int8 input and output, calibrated on the TRAINING split
    int16x8   int16 activations, int8 weights (float input/output), calibrated likewise

`manifest.json` beside the artifacts records, per artifact, its bytes, sha256, tensor
dtypes/shapes/quantization, the source model's sha256 and how it was calibrated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq_device import edgeq_runner as runner

from . import __version__, data, fsutil, tfenv
from .errors import ModelError, UsageError

MODES = ("float32", "dynamic", "float16", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "edgeq.manifest/1"
CALIBRATION_SEED = 0


def parse_modes(modes: list[str] | tuple[str, ...]) -> list[str]:
    """Validate modes (and expand `all`), keeping the canonical order."""
    wanted: set[str] = set()
    for m in modes or ["float32", "int8"]:
        for part in str(m).split(","):
            part = part.strip().lower()
            if part == "all":
                wanted.update(MODES)
            elif part in MODES:
                wanted.add(part)
            else:
                raise UsageError(f"unknown mode {part!r}; choose from {', '.join(MODES)} or all")
    return [m for m in MODES if m in wanted]


def artifact_name(mode: str) -> str:
    return f"model_{mode}.tflite"


@dataclass(frozen=True)
class Calibration:
    images: np.ndarray  # preprocessed float32 [N, H, W, C]
    source: str
    samples: int


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
    idx = np.sort(np.random.RandomState(seed).permutation(n)[:samples])
    return Calibration(
        images=data.preprocess(ds.x_train[idx]),
        source=f"{ds.name} train split, {samples} images, seed {seed}",
        samples=samples,
    )


def convert_model(model: Any, mode: str, calibration: Calibration | None = None) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer in `mode`."""
    tf = tfenv.tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        conv.target_spec.supported_types = [tf.float16]
    if mode in CALIBRATED:
        if calibration is None:
            raise UsageError(f"mode {mode} needs calibration data")
        images = calibration.images

        def representative():
            for i in range(len(images)):
                yield [images[i : i + 1]]

        conv.representative_dataset = representative
        if mode == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        else:
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    try:
        with tfenv.stdout_to_log():
            return conv.convert()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ModelError(f"the TFLite converter cannot produce mode {mode}: {reason}") from None


def describe_tflite(path: Path) -> dict[str, Any]:
    """Tensor dtypes, shapes and quantization of a .tflite file (via the runner's helpers)."""
    interp_cls, _name, _version = runner.find_interpreter()
    try:
        interp = runner.make_interpreter(interp_cls, str(path))
    except runner.RunnerFailure as exc:
        raise ModelError(f"{path}: not a TFLite model ({exc.message})") from None
    return {
        "input": runner.tensor_info(interp.get_input_details()[0]),
        "output": runner.tensor_info(interp.get_output_details()[0]),
    }


def convert(
    model_path: Path,
    modes: list[str],
    out_dir: Path,
    calibration_samples: int = 500,
    dataset: str | None = None,
    data_path: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Convert `model_path` to every mode; write artifacts and `manifest.json` atomically.

    Returns the manifest. Modes are validated, the model loaded, the calibration set built
    and the output folder checked before anything is written.
    """
    from .train import load_model

    modes = parse_modes(modes)
    model_path = Path(model_path)
    model = load_model(model_path)
    out = fsutil.ensure_writable_dir(out_dir)
    dataset = dataset or _dataset_of(model_path)
    calib = None
    if any(m in CALIBRATED for m in modes):
        ds = data.load(dataset, data_path)
        calib = calibration_set(ds, calibration_samples)
    tf = tfenv.tf()
    model_sha = fsutil.sha256_file(model_path)
    manifest = load_manifest(out) or {"schema": MANIFEST_SCHEMA, "artifacts": []}
    entries = {a["mode"]: a for a in manifest.get("artifacts", [])}
    for i, mode in enumerate(modes):
        if progress:
            progress(i, len(modes), mode)
        t0 = time.perf_counter()
        blob = convert_model(model, mode, calib if mode in CALIBRATED else None)
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
            "convert_seconds": seconds,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {"tensorflow": tf.__version__, "edgeq": __version__},
        }
    if progress:
        progress(len(modes), len(modes), "")
    manifest["artifacts"] = [entries[m] for m in MODES if m in entries]
    fsutil.write_json(out / MANIFEST, manifest)
    return manifest


def _dataset_of(model_path: Path) -> str:
    """The dataset a model was trained on, from `metrics.json` beside it (default mnist)."""
    metrics = model_path.with_name("metrics.json")
    try:
        return json.loads(metrics.read_text())["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return "mnist"


def load_manifest(folder: Path) -> dict[str, Any] | None:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise UsageError(f"{p}: not valid JSON ({exc}); delete it to start over") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), list):
        raise UsageError(f"{p}: not an edgeq manifest (no 'artifacts' list)")
    return doc


def manifest_entry(artifact: Path) -> dict[str, Any] | None:
    """The manifest entry of an artifact, if a manifest lists it with a matching sha256."""
    artifact = Path(artifact)
    try:
        manifest = load_manifest(artifact.parent)
    except UsageError:
        return None
    if not manifest:
        return None
    for entry in manifest["artifacts"]:
        if entry.get("file") == artifact.name and entry.get("sha256") == fsutil.sha256_file(
            artifact
        ):
            return entry
    return None
