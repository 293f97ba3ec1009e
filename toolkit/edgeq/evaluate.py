"""Host-side evaluation of .tflite artifacts: size, accuracy, drop vs float32, latency.

Accuracy is computed by the device runner's own functions (`edgeq_device.edgeq_runner`),
so a figure measured here and one measured on a device come from one implementation.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq_device import edgeq_runner as runner

from . import convert, data, fsutil
from .errors import ModelError, UsageError


@dataclass
class EvalRow:
    artifact: str
    mode: str | None
    bytes: int
    kb: float
    sha256: str
    samples: int
    correct: int
    top1: float
    drop_pp: float | None
    latency_p50_ms: float
    latency_p90_ms: float
    latency_runs: int
    eval_seconds: float
    batch_size: int
    input_dtype: str
    book_shortcut_top1: float | None = None
    reference: bool = False
    source_model_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalReport:
    dataset: str
    data_source: str
    runtime: str
    runtime_version: str | None
    rows: list[EvalRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "data_source": self.data_source,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "artifacts": [r.to_dict() for r in self.rows],
        }


def collect(paths: list[Path]) -> list[Path]:
    """Expand folders to their .tflite files (manifest order first); check files exist."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.glob("*.tflite"))
            if not files:
                raise UsageError(f"{p}: no .tflite files in that folder")
            order = {convert.artifact_name(m): i for i, m in enumerate(convert.MODES)}
            found.extend(sorted(files, key=lambda f: (order.get(f.name, 99), f.name)))
        elif p.is_file():
            found.append(p)
        else:
            raise UsageError(f"artifact not found: {p}")
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def eval_threads() -> int:
    """Accuracy runs use every core of the host (latency is measured on one thread)."""
    import os

    return max(
        1,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )


def book_shortcut_input(x_float: np.ndarray) -> np.ndarray:
    """The chapter's int8 input shortcut, (x * 127).astype(int8): kept only to compare."""
    return (x_float * 127).astype(np.int8)


def evaluate(
    paths: list[Path],
    dataset: str | None = None,
    data_path: Path | None = None,
    limit: int | None = None,
    latency_runs: int = 200,
    batch_size: int = 64,
    progress: Any = None,
) -> EvalReport:
    """Evaluate each artifact on the test split (all of it unless `limit`)."""
    files = collect(paths)
    entries = {f: convert.manifest_entry(f) for f in files}
    references = _float_references(entries)
    for ref in references:
        files.append(ref)
        entries[ref] = convert.manifest_entry(ref)
    if dataset is None:
        dataset = next((e["dataset"] for e in entries.values() if e and e.get("dataset")), None)
    ds = data.load(dataset or "mnist", data_path)
    x_test, y_test = ds.x_test, ds.y_test
    if limit:
        idx = data.subset_indices(len(x_test), limit)
        x_test, y_test = x_test[idx], y_test[idx]
    interp_cls, rt_name, rt_version = runner.find_interpreter()
    rows: list[EvalRow] = []
    for i, f in enumerate(files):
        if progress:
            progress(i, len(files), f.name)
        rows.append(
            _evaluate_one(f, entries[f], interp_cls, x_test, y_test, latency_runs, batch_size)
        )
        rows[-1].reference = f in references
    if progress:
        progress(len(files), len(files), "")
    _set_drops(rows)
    return EvalReport(ds.name, ds.source, rt_name, rt_version, rows)


def _set_drops(rows: list[EvalRow]) -> None:
    """Drop of each row vs the float32 row of the SAME source model (manifest); artifacts
    without a manifest are compared with the only float32 row, if there is exactly one."""
    floats = [r for r in rows if r.mode == "float32"]
    by_source = {r.source_model_sha256: r for r in floats if r.source_model_sha256}
    lone = floats[0] if len(floats) == 1 else None
    for r in rows:
        ref = by_source.get(r.source_model_sha256) if r.source_model_sha256 else lone
        r.drop_pp = None if ref is None else (ref.top1 - r.top1) * 100


def _float_references(entries: dict[Path, Any]) -> list[Path]:
    """float32 siblings (same source model) of listed artifacts whose float32 is not listed."""
    have = {e["source_model_sha256"] for e in entries.values() if e and e["mode"] == "float32"}
    found = []
    for f, e in entries.items():
        if not e or e["source_model_sha256"] in have:
            continue
        sibling = f.with_name(convert.artifact_name("float32"))
        se = convert.manifest_entry(sibling) if sibling.is_file() else None
        if se and se.get("source_model_sha256") == e["source_model_sha256"]:
            found.append(sibling)
            have.add(e["source_model_sha256"])
    return found


def _evaluate_one(
    path: Path,
    entry: dict[str, Any] | None,
    interp_cls: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    latency_runs: int,
    batch_size: int,
) -> EvalRow:
    try:
        interp = runner.make_interpreter(interp_cls, str(path), threads=eval_threads())
        interp.allocate_tensors()
    except runner.RunnerFailure as exc:
        raise ModelError(f"{path}: not a TFLite model ({exc.message})") from None
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot allocate the model ({exc})") from None
    inp = interp.get_input_details()[0]
    t0 = time.perf_counter()
    acc = runner.evaluate_accuracy(interp, x_test, y_test, batch_size=batch_size)
    seconds = time.perf_counter() - t0

    shortcut = None
    if np.dtype(inp["dtype"]) == np.int8:
        interp.allocate_tensors()
        shortcut = _shortcut_accuracy(interp, x_test, y_test, batch_size)

    lat_interp = runner.make_interpreter(interp_cls, str(path), threads=1)
    lat_interp.allocate_tensors()
    lat_inp = lat_interp.get_input_details()[0]
    sample = runner.quantize_input(data.preprocess(x_test[:1]), lat_inp)
    args = argparse.Namespace(
        warmup_runs=20, warmup_min_s=0.1, runs=latency_runs, min_s=0.2, max_s=10.0
    )
    lat = runner.benchmark(lat_interp, sample, args)["latency_ms"]["invoke"]
    size = path.stat().st_size
    return EvalRow(
        artifact=str(path),
        mode=entry["mode"] if entry else _guess_mode(path),
        bytes=size,
        kb=size / 1024,
        sha256=fsutil.sha256_file(path),
        samples=acc["samples"],
        correct=acc["correct"],
        top1=acc["top1"],
        drop_pp=None,
        latency_p50_ms=lat["p50"],
        latency_p90_ms=lat["p90"],
        latency_runs=lat["count"],
        eval_seconds=seconds,
        batch_size=acc["batch_size"],
        input_dtype=np.dtype(inp["dtype"]).name,
        book_shortcut_top1=shortcut,
        source_model_sha256=entry.get("source_model_sha256") if entry else None,
    )


def _shortcut_accuracy(interp: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    xf = data.preprocess(x)
    correct = 0
    for s in range(0, len(xf), batch_size):
        chunk = xf[s : s + batch_size]
        interp.resize_tensor_input(inp["index"], [len(chunk), *inp["shape"][1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], book_shortcut_input(chunk))
        interp.invoke()
        pred = interp.get_tensor(out["index"]).reshape(len(chunk), -1).argmax(axis=1)
        correct += int((pred == y[s : s + batch_size]).sum())
    return correct / len(xf)


def _guess_mode(path: Path) -> str | None:
    stem = path.stem
    for m in convert.MODES:
        if stem.endswith(m):
            return m
    return None
