"""Selective int8 through TF's QuantizationDebugger: the engine of int8's keep-float options.

* `Debugger` wraps one calibrated model (calibration runs once). It lists the quantized
  tensors (the names `--keep-float` accepts) and makes int8 flatbuffers with any of them
  kept in float (`denylisted_nodes`, on the debugger's converter path; the model is its
  `get_nondebug_quantized_model()`). `statistics` gives the per-layer figures `edgeq
  inspect` reports.
* `selective_int8` / `auto_keep_float` are the int8 mode's `--keep-float` options.
* `accuracy` is top-1 of a flatbuffer with the device runner's own code.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import devapi, tfenv
from ..errors import ModelError, UsageError
from .base import Calibration
from .converter import convert_model

DEBUG_SAMPLES = 1000

__all__ = [
    "DEBUG_SAMPLES",
    "AutoStep",
    "Debugger",
    "Measure",
    "Node",
    "accuracy",
    "auto_keep_float",
    "float_model",
    "plain_int8",
    "search",
    "selective_int8",
]

# --------------------------------------------------------------------------- debugger


def _feed(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The debugger's dataset: a factory of one-image input lists."""

    def gen():
        for i in range(len(images)):
            yield [images[i : i + 1]]

    return gen


def _float_stats(prefix: str) -> dict[str, Callable]:
    """Direct-compare metrics on the float activations (per invoke; the debugger averages)."""

    def absolute(f):
        return np.abs(np.asarray(f, dtype=np.float64))

    def channel_p999(f):
        """Median over channels of each channel's 99.9th percentile of |x| (NHWC maps only:
        a flat [1, features] tensor has one value per feature and invoke)."""
        a = absolute(f)
        if a.ndim != 4:
            return math.nan
        return float(np.median(np.percentile(a.reshape(-1, a.shape[-1]), 99.9, axis=0)))

    return {
        f"{prefix}absmax": lambda f, q, s, zp: float(absolute(f).max()),
        f"{prefix}p999": lambda f, q, s, zp: float(np.percentile(absolute(f), 99.9)),
        f"{prefix}channel_p999": lambda f, q, s, zp: channel_p999(f),
    }


def _agreement(float_outputs: Sequence[np.ndarray], quant_outputs: Sequence[np.ndarray]) -> float:
    """Model-level debugger metric: do float and int8 predict the same class?"""
    return float(
        np.mean(np.argmax(float_outputs[0], axis=-1) == np.argmax(quant_outputs[0], axis=-1))
    )


@dataclass(frozen=True)
class Node:
    """A quantized tensor: what the debugger calls it and which Keras layers made it."""

    tensor: str  # the debugger's `tensor_name` (its statistics are keyed by it)
    node: str  # the name `denylisted_nodes` matches (differs for graph outputs)
    op: str
    tensor_idx: int
    layers: tuple[str, ...]  # Keras layers fused into the op, in model order

    @property
    def name(self) -> str:
        """Short name: the first Keras layer of the op (or op@index when none is named)."""
        return self.layers[0] if self.layers else f"{self.op.lower()}@{self.tensor_idx}"


def _layers_in(tensor: str, layer_names: Sequence[str]) -> tuple[str, ...]:
    """The Keras layers a (fused) TFLite tensor name mentions, e.g. conv1, bn1, relu1."""
    known = set(layer_names)
    found: set[str] = set()
    for piece in tensor.split(";"):
        for part in piece.split("/"):
            for cand in (part, re.sub(r"_\d+$", "", part)):
                if cand in known:
                    found.add(cand)
    return tuple(n for n in layer_names if n in found)


def _node_name(csv_name: str, debug_name: str) -> str:
    """The denylist name of a tensor, from the debugger's CSV name and the debug model's.

    The debug model names each quantized tensor `<node>1`, and the debugger's CSV strips
    a trailing digit to get `<node>` back. A graph output keeps its own name
    (`StatefulPartitionedCall_1:0`), so stripping yields `...:`, which denylists nothing;
    for those the debug model's name is the node.
    """
    return csv_name if debug_name == csv_name + "1" else debug_name


def _csv_rows(debugger: Any) -> list[dict[str, str]]:
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


@contextlib.contextmanager
def _tf_quiet() -> Iterator[None]:
    with tfenv.stdout_to_log(), tfenv.native_stderr_to_log():
        yield


class Debugger:
    """TF's QuantizationDebugger on one model, calibrated once.

    `nodes` are the quantized tensors in graph order; `quantized(keep)` is the int8
    flatbuffer (int8 input and output) with the tensors `keep` computed in float.
    """

    def __init__(self, model: Any, calibration: Calibration) -> None:
        tf = tfenv.tf()
        self._tf = tf
        self.model = model
        self.calibration = calibration
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration.representative_dataset()
        try:
            with _tf_quiet():
                self._dbg = tf.lite.experimental.QuantizationDebugger(
                    converter=conv,
                    debug_dataset=_feed(calibration.images[:1]),
                    debug_options=self._options(()),
                )
                self._dbg.run()
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ModelError(
                f"the quantization debugger cannot handle this model: {reason}"
            ) from None
        layer_names = [layer.name for layer in model.layers]
        with _tf_quiet():
            debug_names = {
                t["index"]: t["name"]
                for t in tf.lite.Interpreter(
                    model_content=self._dbg.get_debug_quantized_model()
                ).get_tensor_details()
            }
        self.nodes = [
            Node(
                tensor=r["tensor_name"],
                node=_node_name(r["tensor_name"], debug_names.get(int(r["tensor_idx"]), "")),
                op=r["op_name"],
                tensor_idx=int(r["tensor_idx"]),
                layers=_layers_in(r["tensor_name"], layer_names)
                or (
                    (layer_names[-1],) if r["tensor_name"].startswith("StatefulPartitioned") else ()
                ),
            )
            for r in _csv_rows(self._dbg)
        ]

    def _options(self, keep: Sequence[str], **kw: Any):
        return self._tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(keep) or None, fully_quantize=True, **kw
        )

    def resolve(self, names: Sequence[str], flag: str = "--keep-float") -> list[Node]:
        """Nodes by short name, by any Keras layer fused into them, or by tensor name."""
        picked: list[Node] = []
        for raw in names:
            name = raw.strip()
            match = [
                n for n in self.nodes if name in (n.tensor, n.node, n.name) or name in n.layers
            ]
            if not match:
                valid = ", ".join(dict.fromkeys(n.name for n in self.nodes))
                raise UsageError(
                    f"unknown node {name!r} for {flag}; valid names: {valid} "
                    f"(or a tensor name as `edgeq inspect` prints it)"
                )
            picked += [n for n in match if n not in picked]
        return picked

    def quantized(self, keep: Sequence[Node] = ()) -> bytes:
        """The int8 model with the `keep` nodes in float (the debugger's non-debug model)."""
        options = self._options([n.node for n in keep])
        with _tf_quiet():
            try:
                self._dbg.options = options
            except ValueError:
                # Every quantized tensor denylisted: the setter stores the options, then
                # finds no NumericVerify op to debug and raises. The non-debug model the
                # options describe is still what we want.
                if self._dbg.options is not options:
                    raise
            return self._dbg.get_nondebug_quantized_model()

    def statistics(
        self, float_model: bytes, images: np.ndarray
    ) -> tuple[list[dict[str, str]], dict[str, float]]:
        """Per-layer rows (the debugger's CSV, with our float-activation columns) and its
        model statistics, on `images`.

        Runs the debug model through a second debugger given the model contents: on the
        converter path TF does not keep intermediate tensors alive, so direct comparisons of
        float activations would read reused buffers.
        """
        tf = self._tf
        with _tf_quiet():
            self._dbg.options = self._options(())
            debug_model = self._dbg.get_debug_quantized_model()
            dbg = tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=debug_model,
                float_model_content=float_model,
                debug_dataset=_feed(images),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    layer_direct_compare_metrics=_float_stats("float_"),
                    model_debug_metrics={"argmax_agreement": _agreement},
                ),
            )
            with warnings.catch_warnings():
                # the debugger's nanmean over a metric that is NaN for every image
                warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
                dbg.run()
        return _csv_rows(dbg), {k: float(v) for k, v in dbg.model_statistics.items()}


# --------------------------------------------------------------------------- accuracy


def accuracy(blob: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of a flatbuffer on uint8 images, with the device runner's own code."""
    cls, _, _ = devapi.find_interpreter()
    with tempfile.TemporaryDirectory(prefix="edgeq-inspect-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(blob)
        interp = devapi.make_interpreter(cls, str(path))
        interp.allocate_tensors()
        return float(devapi.evaluate_accuracy(interp, x, y)["top1"])


def float_model(model: Any) -> bytes:
    """The float32 flatbuffer of `model` (the reference every int8 variant is judged by)."""
    return convert_model(model, "float32")


def plain_int8(model: Any, calibration: Calibration) -> bytes:
    """The int8 flatbuffer of `model` with nothing kept in float."""
    return convert_model(model, "int8", calibration)


# --------------------------------------------------------------------------- keep float


def selective_int8(dbg: Debugger, keep: Sequence[Node]) -> tuple[bytes, dict[str, Any]]:
    """int8 with the `keep` nodes (from `dbg.resolve`) in float (`--keep-float`)."""
    return dbg.quantized(keep), {"keep_float": [_node_doc(n) for n in keep]}


def _node_doc(n: Node) -> dict[str, Any]:
    return {"name": n.name, "op": n.op, "node": n.node}


@dataclass
class AutoStep:
    kept: list[str]
    added: str | None
    bytes: int
    size_cost_bytes: int
    validation_accuracy: float
    drop_pp: float
    #: the mixed model's latency on the device (with --max-latency-ms), the figure judged
    latency_ms: float | None = None
    #: within the latency limit (always, without one): the search went on from this step
    accepted: bool = True
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: measure(keep, added) -> (flatbuffer, its step) for one set of float layers
Measure = Callable[[list[Node], Node | None], tuple[bytes, AutoStep]]


def search(
    order: Sequence[Node],
    measure: Measure,
    max_drop_pp: float,
    max_latency_ms: float | None = None,
) -> tuple[bytes, list[Node], list[AutoStep]]:
    """The keep-float search: from full int8, add the next layer of `order` (worst error
    first) to the float set while the drop is over `max_drop_pp`. With `max_latency_ms` a
    step whose measured latency is over the limit is rejected (that layer stays int8 and
    the next one is tried on top of the last accepted set); the latency is never exceeded,
    so when full int8 is already over it nothing is kept in float. Returns the accepted
    model, its float layers and every step (accepted or not), each with why."""
    limit = max_latency_ms

    def over(step: AutoStep) -> bool:
        return limit is not None and (step.latency_ms is None or step.latency_ms > limit)

    def ms(step: AutoStep) -> str:
        return f"{step.latency_ms:.3f} ms" if step.latency_ms is not None else "no latency"

    def accepted(step: AutoStep) -> str:
        fits = "<=" if step.drop_pp <= max_drop_pp else ">"
        return f"drop {step.drop_pp:+.2f} pp {fits} {max_drop_pp:g} pp" + (
            f", {ms(step)} <= {limit:g} ms" if limit is not None else ""
        )

    blob, best = measure([], None)
    steps = [best]
    keep: list[Node] = []
    if over(best):
        best.accepted = False
        best.why = (
            f"full int8 is already over the limit ({ms(best)} > {limit:g} ms): "
            f"no layer can be kept in float"
        )
        return blob, keep, steps
    best.why = accepted(best)
    for node in order:
        if best.drop_pp <= max_drop_pp:
            break
        candidate = [*keep, node]
        cand_blob, step = measure(candidate, node)
        steps.append(step)
        if over(step):
            step.accepted = False
            step.why = f"{ms(step)} > {limit:g} ms: {node.name} stays int8"
            continue
        blob, best, keep = cand_blob, step, candidate
        step.why = accepted(step)
    return blob, keep, steps


def auto_keep_float(
    dbg: Debugger,
    validation: Any,
    max_drop_pp: float,
    progress: Any = None,
    *,
    max_latency_ms: float | None = None,
    latency: Callable[[bytes, str], dict[str, Any]] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Keep the worst layers (by the debugger's rmse/scale) in float, one at a time, until
    the drop vs float on `validation` (training-split images) is ≤ `max_drop_pp`.

    With `max_latency_ms`, `latency(flatbuffer, what)` measures each step's model on the
    device ({"ms": the figure judged, ...}) and a layer is kept in float only while that
    stays within the limit (see `search`)."""
    if validation is None:
        raise UsageError("--keep-float-auto needs a validation split (training images)")
    if max_drop_pp < 0:
        raise UsageError(f"--max-drop-pp must be >= 0, got {max_drop_pp}")
    if max_latency_ms is not None and latency is None:
        raise UsageError("--max-latency-ms needs a device to measure on (--target T)")
    model, calibration = dbg.model, dbg.calibration
    float_blob = float_model(model)
    rows, _ = dbg.statistics(float_blob, validation.images[:DEBUG_SAMPLES])
    error = {
        r["tensor_name"]: math.sqrt(float(r["mean_squared_error"])) / float(r["scale"])
        for r in rows
    }
    order = sorted(dbg.nodes, key=lambda n: -error.get(n.tensor, 0.0))
    f_acc = accuracy(float_blob, validation.x, validation.y)
    total = len(order) + 1
    base: list[int] = []  # full int8's size, what each step's size cost is against
    device: dict[str, Any] = {}  # where the latency was measured (from `latency`)

    def measure(keep: list[Node], added: Node | None) -> tuple[bytes, AutoStep]:
        what = f"keeping {added.name} in float" if added else "int8, nothing kept in float"
        if progress:
            progress(len(keep), total, what)
        blob = plain_int8(model, calibration) if not keep else dbg.quantized(keep)
        if not base:  # full int8 is measured first
            base.append(len(blob))
        acc = accuracy(blob, validation.x, validation.y)
        ms = None
        if max_latency_ms is not None and latency is not None:
            got = latency(blob, what)
            ms = got["ms"]
            device.update({k: v for k, v in got.items() if k != "ms"})
        return blob, AutoStep(
            kept=[n.name for n in keep],
            added=added.name if added else None,
            bytes=len(blob),
            size_cost_bytes=len(blob) - base[0],
            validation_accuracy=acc,
            drop_pp=(f_acc - acc) * 100,
            latency_ms=ms,
        )

    blob, keep, steps = search(order, measure, max_drop_pp, max_latency_ms)
    if progress:
        progress(total, total, "")
    final = max(i for i, s in enumerate(steps) if s.accepted) if steps[0].accepted else 0
    doc: dict[str, Any] = {
        "max_drop_pp": max_drop_pp,
        "reached": steps[final].drop_pp <= max_drop_pp,
        "validation": validation.source,
        "float_validation_accuracy": f_acc,
        "order": [n.name for n in order],
        "steps": [s.to_dict() for s in steps],
        "final_step": final,
    }
    if max_latency_ms is not None:
        doc["max_latency_ms"] = max_latency_ms
        doc["within_latency"] = steps[0].accepted
        doc["device"] = device
    return blob, {"keep_float": [_node_doc(n) for n in keep], "keep_float_auto": doc}
