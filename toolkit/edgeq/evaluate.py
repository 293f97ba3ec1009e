"""Host-side evaluation of .tflite artifacts: size, accuracy, drop vs float32, agreement, latency.

Any model: every input is fed (seeded random data for latency and agreement), and each
artifact gets its own row — a file that is not a model, or data that does not fit it, gives
a row with the error and the others are still evaluated.

Data, per artifact:
    --data FILE.npz / image folder   your labelled data (edgeq.evaldata), checked against
                                     each model; a model it does not fit is an error row
    --dataset / Keras-layout --data  the book's dataset (MNIST by default)
    nothing                          MNIST for models that take 28x28 images and score 10
                                     classes; the others are measured without accuracy
A model that is not a classifier (not one [1, N] output) gets "accuracy not applicable".
Without accuracy, output agreement with the float32 sibling (manifest) is measured.

Accuracy is computed by the device runner's own functions (through `edgeq.devapi`), so a
figure measured here and one measured on a device come from one implementation.

Exit codes (`edgeq eval`): 0 every artifact was evaluated (with or without accuracy); 2 at
least one row holds an error (a bad artifact, data that does not fit it); the others are
still evaluated and printed.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import compat, convert, data, devapi, evaldata, fsutil, manifest
from .agreement import DataCheck, check_data, host_accuracy, host_agreement, reference_for
from .errors import EXIT_OK, EXIT_USAGE, DataError, EdgeqError, ModelError

#: Agreement samples when a row has no accuracy and `agreement` is not given.
AUTO_AGREEMENT = 32
BOOK_SAMPLE = [28, 28, 1]


@dataclass
class EvalRow:
    artifact: str
    mode: str | None = None
    bytes: int | None = None
    kb: float | None = None
    sha256: str | None = None
    samples: int | None = None
    correct: int | None = None
    top1: float | None = None
    drop_pp: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_runs: int | None = None
    eval_seconds: float | None = None
    batch_size: int | None = None
    input_dtype: str | None = None
    book_shortcut_top1: float | None = None
    reference: bool = False
    source_model_sha256: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    data: str | None = None
    accuracy_note: str | None = None
    agreement: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalReport:
    dataset: str | None
    data_source: str | None
    runtime: str
    runtime_version: str | None
    rows: list[EvalRow]

    @property
    def exit_code(self) -> int:
        codes = [r.error.get("exit_code", EXIT_USAGE) for r in self.rows if r.error]
        return max(codes) if codes else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "errors": sum(1 for r in self.rows if r.error),
            "dataset": self.dataset,
            "data_source": self.data_source,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "artifacts": [r.to_dict() for r in self.rows],
        }


def collect(paths: list[Path]) -> list[tuple[Path, EdgeqError | None]]:
    """Expand folders to their .tflite files (manifest order first). A path that does not
    exist, or a folder without .tflite files, comes back with its error."""
    found: list[tuple[Path, EdgeqError | None]] = []
    order = {convert.artifact_name(m): i for i, m in enumerate(convert.MODES)}
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.glob("*.tflite"), key=lambda f: (order.get(f.name, 99), f.name))
            if not files:
                found.append((p, ModelError(f"{p}: no .tflite files in that folder")))
            found.extend((f, None) for f in files)
        elif p.is_file():
            found.append((p, None))
        else:
            found.append((p, ModelError(f"artifact not found: {p}")))
    seen: set[Path] = set()
    return [(f, e) for f, e in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def eval_threads() -> int:
    """Accuracy runs use every core of the host (latency is measured on one thread)."""
    return max(
        1,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )


def book_shortcut_input(x_float: np.ndarray) -> np.ndarray:
    """The chapter's int8 input shortcut, (x * 127).astype(int8): kept only to compare."""
    return (x_float * 127).astype(np.int8)


class _Data:
    """Which evaluation data each artifact gets; loaded lazily, once."""

    def __init__(
        self,
        dataset: str | None,
        data_path: Path | None,
        limit: int | None,
        preprocess: tuple[float | None, float | None],
        resize: str,
        input_shapes: dict[str, list[int]] | None,
    ) -> None:
        self.kind = evaldata.kind_of(data_path) if data_path is not None else None
        self.explicit = dataset is not None or data_path is not None
        self.dataset, self.data_path, self.limit = dataset, data_path, limit
        self.preprocess, self.resize, self.input_shapes = preprocess, resize, input_shapes
        self.loaded: data.Dataset | None = None
        self.failed: EdgeqError | None = None
        self.user: evaldata.EvalData | None = None
        self.staged: dict[tuple, Path] = {}

    @property
    def user_data(self) -> bool:
        return self.kind in ("npz", "images")

    def book(self, entries: dict[Path, Any]) -> data.Dataset:
        if self.failed is not None:
            raise self.failed
        if self.loaded is None:
            name = self.dataset or next(
                (e["dataset"] for e in entries.values() if e and e.get("dataset")), None
            )
            try:
                ds = data.load(name or "mnist", self.data_path)
            except EdgeqError as exc:
                self.failed = exc
                raise
            if self.limit:
                idx = data.subset_indices(len(ds.x_test), self.limit)
                ds = data.Dataset(
                    ds.name, ds.x_train, ds.y_train, ds.x_test[idx], ds.y_test[idx], ds.source
                )
            self.loaded = ds
        return self.loaded

    def user_for(self, io: devapi.ModelIO) -> evaldata.EvalData:
        assert self.data_path is not None
        if self.kind == "npz" and self.user is not None:
            return self.user
        d = evaldata.load(
            self.data_path,
            io,
            preprocess_scale=self.preprocess[0],
            preprocess_offset=self.preprocess[1],
            resize=self.resize,
            input_shapes=self.input_shapes,
        )
        d = evaldata.subset(d, self.limit)
        if self.kind == "npz":
            self.user = d
        return d

    def stage(self, d: evaldata.EvalData) -> Path:
        key = (d.source, *((k, a.shape, str(a.dtype)) for k, a in d.arrays.items()))
        if key not in self.staged:
            self.staged[key] = evaldata.stage(d)
        return self.staged[key]


def evaluate(
    paths: list[Path],
    dataset: str | None = None,
    data_path: Path | None = None,
    limit: int | None = None,
    latency_runs: int = 200,
    batch_size: int = 64,
    progress: Any = None,
    input_shapes: dict[str, list[int]] | None = None,
    agreement: int | None = None,
    preprocess_scale: float | None = None,
    preprocess_offset: float | None = None,
    resize: str = "bilinear",
) -> EvalReport:
    """Evaluate each artifact (all of the test split unless `limit`); never stops at a bad
    one. `agreement`: random samples compared with the float32 sibling (None: 32 for rows
    without accuracy, 0 for the others)."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be a positive number of samples, got {limit}")
    if agreement is not None and agreement < 0:
        raise DataError(f"--agreement must be >= 0, got {agreement}")
    items = collect(paths)
    entries = {f: manifest.manifest_entry(f) for f, e in items if e is None}
    references = _float_references(entries)
    for ref in references:
        items.append((ref, None))
        entries[ref] = manifest.manifest_entry(ref)
    source = _Data(
        dataset,
        data_path,
        limit,
        (preprocess_scale, preprocess_offset),
        resize,
        input_shapes,
    )
    rt_cls, rt_name, rt_version = devapi.find_interpreter()
    rows: list[EvalRow] = []
    for i, (f, problem) in enumerate(items):
        if progress:
            progress(i, len(items), f.name)
        row = EvalRow(artifact=str(f), reference=f in references)
        try:  # a file that fails to load still has a size
            size = f.stat().st_size if f.is_file() else None
        except OSError:
            size = None
        if size is not None:
            row.bytes, row.kb = size, size / 1024
        try:
            if problem is not None:
                raise problem
            compat.check_on_host(f, rt_cls, f"{rt_name} {rt_version}")
            fed = _evaluate_one(row, f, entries.get(f), source, entries, latency_runs, batch_size)
            _agreement(row, f, agreement, input_shapes, fed)
        except EdgeqError as exc:
            row.error = {**exc.to_dict(), "exit_code": exc.exit_code}
        except (RuntimeError, ValueError) as exc:  # the interpreter refused this model
            msg = f"{f}: the host interpreter cannot run it: {' '.join(str(exc).split())[:300]}"
            row.error = {"type": "ModelError", "message": msg, "exit_code": EXIT_USAGE}
        rows.append(row)
    if progress:
        progress(len(items), len(items), "")
    _set_drops(rows)
    if source.loaded is not None:
        ds_name, ds_source = source.loaded.name, source.loaded.source
    elif source.user_data:
        ds_name, ds_source = None, str(data_path)
    else:
        ds_name, ds_source = None, None
    return EvalReport(ds_name, ds_source, rt_name, rt_version, rows)


def _set_drops(rows: list[EvalRow]) -> None:
    """Drop of each row vs the float32 row of the SAME source model (manifest); artifacts
    without a manifest are compared with the only float32 row, if there is exactly one."""
    floats = [r for r in rows if r.mode == "float32" and r.top1 is not None]
    by_source = {r.source_model_sha256: r for r in floats if r.source_model_sha256}
    lone = floats[0] if len(floats) == 1 else None
    for r in rows:
        if r.top1 is None:
            continue
        ref = by_source.get(r.source_model_sha256) if r.source_model_sha256 else lone
        r.drop_pp = None if ref is None or ref.data != r.data else (ref.top1 - r.top1) * 100


def _float_references(entries: dict[Path, Any]) -> list[Path]:
    """float32 siblings (same source model) of listed artifacts whose float32 is not listed."""
    have = {e["source_model_sha256"] for e in entries.values() if e and e["mode"] == "float32"}
    found = []
    for f, e in entries.items():
        if not e or e["source_model_sha256"] in have:
            continue
        sibling = manifest.float32_sibling(f)
        if sibling is not None and sibling != f:
            found.append(sibling)
            have.add(e["source_model_sha256"])
    return found


def _fits_book(io: devapi.ModelIO) -> bool:
    """One input taking 28x28 images and a 10-class output: the book's MNIST-style model."""
    if len(io.inputs) != 1 or io.classes != 10:
        return False
    sig = list(io.inputs[0].shape_signature[1:])
    return len(sig) == 3 and all(s in (-1, w) for s, w in zip(sig, BOOK_SAMPLE, strict=True))


def _evaluate_one(
    row: EvalRow,
    path: Path,
    entry: dict[str, Any] | None,
    source: _Data,
    entries: dict[Path, Any],
    latency_runs: int,
    batch_size: int,
) -> Path | None:
    size = path.stat().st_size
    row.bytes, row.kb, row.sha256 = size, size / 1024, fsutil.sha256_file(path)
    row.mode = entry["mode"] if entry else _guess_mode(path)
    row.source_model_sha256 = entry.get("source_model_sha256") if entry else None
    io = devapi.model_io(path)
    row.inputs = [t.to_dict() for t in io.inputs]
    row.outputs = [t.to_dict() for t in io.outputs]
    row.input_dtype = io.inputs[0].dtype if io.inputs else None
    check: DataCheck | None = None
    fed: Path | None = None

    if source.user_data:
        d = source.user_for(io)
        check = check_data(io, d, source.input_shapes)
        row.data = d.source
        fed = source.stage(d)
        if check.applicable:
            t0 = time.perf_counter()
            acc = host_accuracy(
                path, source.stage(d), None, batch_size, eval_threads(), source.input_shapes
            )
            _set_accuracy(row, acc, time.perf_counter() - t0)
        else:
            row.accuracy_note = check.note
    elif source.explicit or _fits_book(io):
        ds = source.book(entries)
        book = evaldata.EvalData(
            ds.x_test,
            ds.y_test,
            ds.source,
            "npz",
            devapi.DEFAULT_INPUT_SCALE,
            devapi.DEFAULT_INPUT_OFFSET,
        )
        check = check_data(io, book, source.input_shapes)
        row.data = ds.source
        if check.applicable:
            _book_accuracy(row, path, io, ds, batch_size)
        else:
            row.accuracy_note = check.note
    else:
        row.accuracy_note = io.accuracy_note or (
            "not measured: no evaluation data for it (give --data FILE.npz or an image "
            "folder CLASS_NAME/*.png)"
        )

    # the data's samples set the dynamic dimensions they fill (as on the device)
    sample_shape = check.sample_shape if check is not None else None
    shapes = devapi.resolve_shapes(io, source.input_shapes, sample_shape)
    lat_interp = devapi.open_model(path, threads=1)
    devapi.apply_shapes(lat_interp, shapes, path)
    specs = [devapi.input_spec(d) for d in lat_interp.get_input_details()]
    sample = next(devapi.random_inputs(specs, 1, seed=0))
    args = argparse.Namespace(
        warmup_runs=20, warmup_min_s=0.1, runs=latency_runs, min_s=0.2, max_s=10.0
    )
    lat = devapi.benchmark(lat_interp, sample, args)["latency_ms"]["invoke"]
    row.latency_p50_ms, row.latency_p90_ms, row.latency_runs = lat["p50"], lat["p90"], lat["count"]
    return fed


def _set_accuracy(row: EvalRow, acc: dict[str, Any], seconds: float) -> None:
    row.samples, row.correct, row.top1 = acc["samples"], acc["correct"], acc["top1"]
    row.batch_size, row.eval_seconds = acc["batch_size"], seconds


def _book_accuracy(
    row: EvalRow, path: Path, io: devapi.ModelIO, ds: data.Dataset, batch_size: int
) -> None:
    interp = devapi.open_model(path, threads=eval_threads())
    interp.allocate_tensors()
    t0 = time.perf_counter()
    acc = devapi.evaluate_accuracy(
        interp,
        ds.x_test,
        ds.y_test,
        devapi.DEFAULT_INPUT_SCALE,
        devapi.DEFAULT_INPUT_OFFSET,
        batch_size=batch_size,
    )
    _set_accuracy(row, acc, time.perf_counter() - t0)
    if io.inputs[0].dtype == "int8":
        interp.allocate_tensors()
        row.book_shortcut_top1 = _shortcut_accuracy(interp, ds.x_test, ds.y_test, batch_size)


def _agreement(
    row: EvalRow,
    path: Path,
    samples: int | None,
    input_shapes: dict[str, list[int]] | None,
    data_npz: Path | None = None,
) -> None:
    """Outputs vs the float32 sibling's, on the samples of the user's data (`data_npz`,
    staged as a device gets it) when --data fed the model, else on seeded random inputs."""
    n = samples if samples is not None else (AUTO_AGREEMENT if row.top1 is None else 0)
    if not n:
        return
    ref = reference_for(path)
    if ref.kind == "same model":
        if samples is None:
            return  # nothing to compare with here: say so only when asked for
        row.agreement = {
            "reference": None,
            "note": "no float32 sibling in a manifest to compare with (on a device, the "
            "host interpreter is the reference)",
        }
        return
    row.agreement = host_agreement(path, n, 0, input_shapes, ref, data_npz=data_npz).to_dict()


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
