"""`manifest.json`: what `edgeq convert` wrote beside its artifacts, and how to read it.

Per artifact (`model_<mode>.tflite`): its bytes, sha256, tensor dtypes/shapes/quantization,
the source model's sha256, how it was calibrated and, for int8, which layers stayed in
float. An entry counts only while its sha256 matches the file on disk.

The float32-sibling rule lives here too: the float32 artifact of the SAME source model
beside a quantized one is what its accuracy drop and output agreement are measured against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import fsutil
from .devapi import RunnerFailure, find_interpreter, make_interpreter, tensor_info
from .errors import ModelError, UsageError

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "edgeq.manifest/1"
DEFAULT_DATASET = "mnist"

__all__ = [
    "MANIFEST",
    "MANIFEST_SCHEMA",
    "artifact_name",
    "dataset_of",
    "describe_tflite",
    "float32_sibling",
    "load_manifest",
    "manifest_entry",
]


def artifact_name(mode: str) -> str:
    return f"model_{mode}.tflite"


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


def float32_sibling(artifact: Path) -> Path | None:
    """The float32 artifact of the same source model as `artifact`: itself when it is the
    float32 one, the `model_float32.tflite` beside it when both manifest entries name the
    same source model sha256, else None (no manifest entry, or no matching sibling)."""
    artifact = Path(artifact)
    entry = manifest_entry(artifact)
    if not entry:
        return None
    if entry.get("mode") == "float32":
        return artifact
    sibling = artifact.with_name(artifact_name("float32"))
    se = manifest_entry(sibling) if sibling.is_file() else None
    if se and se.get("source_model_sha256") == entry.get("source_model_sha256"):
        return sibling
    return None


def dataset_of(model_path: Path) -> str:
    """The dataset a model was trained on, from `metrics.json` beside it (default mnist)."""
    metrics = Path(model_path).with_name("metrics.json")
    try:
        return json.loads(metrics.read_text())["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_DATASET


def describe_tflite(path: Path) -> dict[str, Any]:
    """Tensor dtypes, shapes and quantization of a .tflite file (via the runner's helpers)."""
    interp_cls, _name, _version = find_interpreter()
    try:
        interp = make_interpreter(interp_cls, str(path))
    except RunnerFailure as exc:
        raise ModelError(f"{path}: not a TFLite model ({exc.message})") from None
    return {
        "input": tensor_info(interp.get_input_details()[0]),
        "output": tensor_info(interp.get_output_details()[0]),
    }
