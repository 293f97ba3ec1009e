"""Per-layer quantization error of full-int8 against float, and selective quantization.

Everything here goes through TF's `tf.lite.experimental.QuantizationDebugger`:

* `Debugger` wraps one calibrated model (calibration runs once). It lists the quantized
  tensors (the names `--keep-float` accepts) and makes int8 flatbuffers with any of them
  kept in float (`denylisted_nodes`, on the debugger's converter path; the model is its
  `get_nondebug_quantized_model()`).
* `inspect_model` runs the debugger's per-layer statistics (mean error, max |error|,
  MSE, scale, zero point, from its NumericVerify ops) plus direct comparisons of the float
  activations (per-channel range, outliers), the float-vs-int8 accuracy on a validation split
  drawn from the training data, a bar plot, and which layers are worth keeping in float.
* `selective_int8` / `auto_keep_float` are the int8 mode's `--keep-float` options.

`rmse_over_scale` is the root-mean-square error of a tensor in units of its own
quantization step. Rounding alone gives 1/√12 ≈ 0.29; more means error carried in from
earlier layers or clipped outliers.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeq_device import edgeq_runner as runner

from . import fsutil, tfenv
from .errors import ModelError, UsageError
from .quantmodes import Calibration

ROUNDING_RMSE = 1 / math.sqrt(12)
#: A layer whose error is this many steps or more is worth trying in float.
KEEP_FLOAT_RMSE = 0.5
#: max |x| at least this many times the 99.9th percentile of |x|: the range is set by outliers.
OUTLIER_RATIO = 3.0
#: the median channel's values (99.9th percentile of |x|) span fewer quantization steps than
#: this: the tensor's range is set by a few wide channels and the rest share few levels.
WIDE_RANGE_STEPS = 16.0
DEBUG_SAMPLES = 1000
INSPECT_SCHEMA = "edgeq.inspect/1"


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
    cls, _, _ = runner.find_interpreter()
    with tempfile.TemporaryDirectory(prefix="edgeq-inspect-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(blob)
        interp = runner.make_interpreter(cls, str(path))
        interp.allocate_tensors()
        return float(runner.evaluate_accuracy(interp, x, y)["top1"])


def _float_model(model: Any) -> bytes:
    from .convert import convert_model

    return convert_model(model, "float32")


def _plain_int8(model: Any, calibration: Calibration) -> bytes:
    from .convert import convert_model

    return convert_model(model, "int8", calibration)


# --------------------------------------------------------------------------- inspect


@dataclass
class LayerRow:
    name: str
    layers: list[str]
    op: str
    tensor: str
    node: str
    tensor_idx: int
    num_elements: int
    scale: float
    zero_point: int
    rmse_over_scale: float
    mean_error: float
    max_abs_error: float
    mean_squared_error: float
    error_stddev: float
    float_absmax: float
    float_p999: float
    channel_steps: float | None  # None for tensors without a channel axis (dense, flatten)
    outlier_ratio: float
    keep_float: bool = False
    flags: list[str] = field(default_factory=list)  # "error", "outliers", "wide range"
    reasons: list[str] = field(default_factory=list)  # each flag, said with its figures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(node: Node, r: dict[str, str]) -> LayerRow:
    f = {k: float(r[k]) for k in r if k not in ("op_name", "tensor_name")}
    scale = f["scale"]
    rmse = math.sqrt(f["mean_squared_error"])
    row = LayerRow(
        name=node.name,
        layers=list(node.layers),
        op=r["op_name"],
        tensor=r["tensor_name"],
        node=node.node,
        tensor_idx=int(f["tensor_idx"]),
        num_elements=int(f["num_elements"]),
        scale=scale,
        zero_point=int(f["zero_point"]),
        rmse_over_scale=rmse / scale if scale > 0 else math.nan,
        mean_error=f["mean_error"],
        max_abs_error=f["max_abs_error"],
        mean_squared_error=f["mean_squared_error"],
        error_stddev=f["stddev"],
        float_absmax=f["float_absmax"],
        float_p999=f["float_p999"],
        channel_steps=(
            f["float_channel_p999"] / scale
            if scale > 0 and math.isfinite(f["float_channel_p999"])
            else None
        ),
        outlier_ratio=f["float_absmax"] / f["float_p999"] if f["float_p999"] > 0 else math.inf,
    )
    _judge(row)
    return row


def _judge(row: LayerRow) -> None:
    """Worth keeping in float when its error is large, or its range is set by a few values
    or channels (the rest then share few of the 256 levels); the reasons say which."""
    if row.rmse_over_scale >= KEEP_FLOAT_RMSE:
        row.flags.append("error")
        row.reasons.append(
            f"error {row.rmse_over_scale:.2f} steps (rounding alone: {ROUNDING_RMSE:.2f})"
        )
    if row.outlier_ratio >= OUTLIER_RATIO:
        row.flags.append("outliers")
        row.reasons.append(f"outliers: max |x| is {row.outlier_ratio:.1f}× its 99.9th percentile")
    if row.channel_steps is not None and row.channel_steps < WIDE_RANGE_STEPS:
        row.flags.append("wide range")
        row.reasons.append(
            f"wide range: the median channel spans {row.channel_steps:.1f} of 256 steps"
        )
    row.keep_float = bool(row.reasons)


@dataclass
class InspectReport:
    model: str
    model_sha256: str
    dataset: str
    calibration: str
    validation: str
    samples: int
    float_accuracy: float
    int8_accuracy: float
    drop_pp: float
    argmax_agreement: float
    int8_bytes: int
    layers: list[LayerRow]
    plot: str | None = None
    thresholds: dict[str, float] = field(
        default_factory=lambda: {
            "keep_float_rmse_over_scale": KEEP_FLOAT_RMSE,
            "rounding_rmse_over_scale": ROUNDING_RMSE,
            "outlier_ratio": OUTLIER_RATIO,
            "wide_range_channel_steps": WIDE_RANGE_STEPS,
        }
    )

    @property
    def worst_first(self) -> list[LayerRow]:
        return sorted(self.layers, key=lambda r: -r.rmse_over_scale)

    @property
    def keep_float(self) -> list[str]:
        return [r.name for r in self.worst_first if r.keep_float]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = INSPECT_SCHEMA
        d["layers"] = [r.to_dict() for r in self.layers]
        d["keep_float"] = self.keep_float
        return d


def inspect_model(
    model_path: Path,
    dataset: str | None = None,
    data_path: Path | None = None,
    samples: int = DEBUG_SAMPLES,
    calibration_samples: int = 500,
    out_dir: Path | None = None,
    progress: Any = None,
) -> InspectReport:
    """Per-layer error of full-int8 vs float on `samples` validation images (training split,
    disjoint from the calibration images); writes `layer_error.png` and `inspect.json` in
    `out_dir` when given."""
    from . import convert
    from .train import load_model

    model_path = Path(model_path)
    model = load_model(model_path)
    out = fsutil.ensure_writable_dir(out_dir) if out_dir is not None else None
    dataset = dataset or convert._dataset_of(model_path)
    ds = convert.training_data(dataset, data_path, model)
    convert.check_fits(model, ds, model_path)
    calib = convert.calibration_set(ds, calibration_samples)
    val = convert.validation_set(ds, samples, calibration_samples)
    steps = 4

    def say(i: int, what: str) -> None:
        if progress:
            progress(i, steps, what)

    say(0, "calibrating")
    dbg = Debugger(model, calib)
    say(1, f"per-layer statistics on {len(val.y)} images")
    float_blob = _float_model(model)
    rows, model_stats = dbg.statistics(float_blob, val.images)
    by_tensor = {n.tensor: n for n in dbg.nodes}
    layers = [_row(by_tensor[r["tensor_name"]], r) for r in rows]
    say(2, "accuracy float vs int8")
    int8_blob = _plain_int8(model, calib)
    f_acc = accuracy(float_blob, val.x, val.y)
    q_acc = accuracy(int8_blob, val.x, val.y)
    report = InspectReport(
        model=str(model_path),
        model_sha256=fsutil.sha256_file(model_path),
        dataset=ds.name,
        calibration=calib.source,
        validation=val.source,
        samples=len(val.y),
        float_accuracy=f_acc,
        int8_accuracy=q_acc,
        drop_pp=(f_acc - q_acc) * 100,
        argmax_agreement=model_stats["argmax_agreement"],
        int8_bytes=len(int8_blob),
        layers=layers,
    )
    say(3, "writing")
    if out is not None:
        report.plot = plot_layers(report, out / "layer_error.png")
        fsutil.write_json(out / "inspect.json", report.to_dict())
    say(steps, "")
    return report


def plot_layers(report: InspectReport, path: Path) -> str:
    """Horizontal bars of rmse/scale per layer (graph order), keep-float candidates marked."""
    from .plotting import plt, save_figure

    rows = report.layers
    labels = [f"{r.name}  ({r.op.lower()})" for r in rows]
    values = [r.rmse_over_scale for r in rows]
    colors = ["#d62728" if r.keep_float else "#1f77b4" for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, values, color=colors)
    for yi, r in zip(y, rows, strict=True):
        tags = ", ".join(r.flags)
        ax.text(
            r.rmse_over_scale,
            yi,
            f" {r.rmse_over_scale:.2f}" + (f"  ({tags})" if tags else ""),
            va="center",
            fontsize=9,
            color="#d62728" if r.keep_float else "black",
        )
    ax.set_yticks(y, labels)
    for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
        if r.keep_float:
            tick.set_color("#d62728")
    ax.axvline(
        ROUNDING_RMSE, color="grey", ls=":", lw=1.2, label=f"rounding alone ({ROUNDING_RMSE:.2f})"
    )
    ax.axvline(
        KEEP_FLOAT_RMSE,
        color="#d62728",
        ls="--",
        lw=1.2,
        label=f"keep-float threshold ({KEEP_FLOAT_RMSE:g})",
    )
    if any(r.keep_float for r in rows):
        from matplotlib.patches import Patch

        ax.add_artist(
            ax.legend(
                handles=[
                    Patch(color="#d62728", label="worth keeping in float (see the table)"),
                    Patch(color="#1f77b4", label="int8 is fine"),
                ],
                loc="upper right",
                fontsize=8,
            )
        )
    ax.set_xlabel("RMSE of int8 vs float, in quantization steps (rmse / scale)")
    ax.set_ylabel("quantized tensors, input to output")
    ax.set_xlim(0, max([*values, KEEP_FLOAT_RMSE]) * 1.45)
    ax.set_title(
        f"{report.model}: per-layer int8 error\n"
        f"accuracy float {report.float_accuracy:.2%} → int8 {report.int8_accuracy:.2%} "
        f"({report.drop_pp:+.2f} pp) on {report.samples} validation images",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_keep_float(
    dbg: Debugger, validation: Any, max_drop_pp: float, progress: Any = None
) -> tuple[bytes, dict[str, Any]]:
    """Keep the worst layers (by the debugger's rmse/scale) in float, one at a time, until
    the drop vs float on `validation` (training-split images) is ≤ `max_drop_pp`."""
    if validation is None:
        raise UsageError("--keep-float-auto needs a validation split (training images)")
    if max_drop_pp < 0:
        raise UsageError(f"--max-drop-pp must be >= 0, got {max_drop_pp}")
    model, calibration = dbg.model, dbg.calibration
    float_blob = _float_model(model)
    rows, _ = dbg.statistics(float_blob, validation.images[:DEBUG_SAMPLES])
    error = {
        r["tensor_name"]: math.sqrt(float(r["mean_squared_error"])) / float(r["scale"])
        for r in rows
    }
    order = sorted(dbg.nodes, key=lambda n: -error.get(n.tensor, 0.0))
    f_acc = accuracy(float_blob, validation.x, validation.y)
    total = len(order) + 1

    def measure(keep: list[Node], added: Node | None, base: int | None) -> tuple[bytes, AutoStep]:
        blob = _plain_int8(model, calibration) if not keep else dbg.quantized(keep)
        acc = accuracy(blob, validation.x, validation.y)
        return blob, AutoStep(
            kept=[n.name for n in keep],
            added=added.name if added else None,
            bytes=len(blob),
            size_cost_bytes=len(blob) - (base if base is not None else len(blob)),
            validation_accuracy=acc,
            drop_pp=(f_acc - acc) * 100,
        )

    if progress:
        progress(0, total, "int8, nothing kept in float")
    blob, step = measure([], None, None)
    base = step.bytes
    steps = [step]
    keep: list[Node] = []
    for node in order:
        if steps[-1].drop_pp <= max_drop_pp:
            break
        keep.append(node)
        if progress:
            progress(len(keep), total, f"keeping {node.name} in float")
        blob, step = measure(keep, node, base)
        steps.append(step)
    if progress:
        progress(total, total, "")
    reached = steps[-1].drop_pp <= max_drop_pp
    return blob, {
        "keep_float": [_node_doc(n) for n in keep],
        "keep_float_auto": {
            "max_drop_pp": max_drop_pp,
            "reached": reached,
            "validation": validation.source,
            "float_validation_accuracy": f_acc,
            "order": [n.name for n in order],
            "steps": [s.to_dict() for s in steps],
        },
    }
