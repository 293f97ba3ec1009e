"""Per-layer quantization error of full-int8 against float: the `edgeq inspect` report.

The figures come from TF's QuantizationDebugger (the engine is `edgeq.quantmodes.selective`,
shared with int8's `--keep-float` options): `inspect_model` runs the debugger's per-layer
statistics (mean error, max |error|, MSE, scale, zero point, from its NumericVerify ops)
plus direct comparisons of the float activations (per-channel range, outliers), the
float-vs-int8 accuracy on a validation split drawn from the training data, a bar plot, and
which layers are worth keeping in float.

`rmse_over_scale` is the root-mean-square error of a tensor in units of its own
quantization step. Rounding alone gives 1/√12 ≈ 0.29; more means error carried in from
earlier layers or clipped outliers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import convert, fsutil, manifest
from .quantmodes.selective import (
    DEBUG_SAMPLES,
    Debugger,
    Node,
    accuracy,
    float_model,
    plain_int8,
)
from .train import load_model

__all__ = [
    "DEBUG_SAMPLES",
    "INSPECT_SCHEMA",
    "KEEP_FLOAT_RMSE",
    "OUTLIER_RATIO",
    "ROUNDING_RMSE",
    "WIDE_RANGE_STEPS",
    "InspectReport",
    "LayerRow",
    "accuracy",
    "inspect_model",
    "plot_layers",
]

ROUNDING_RMSE = 1 / math.sqrt(12)
#: A layer whose error is this many steps or more is worth trying in float.
KEEP_FLOAT_RMSE = 0.5
#: max |x| at least this many times the 99.9th percentile of |x|: the range is set by outliers.
OUTLIER_RATIO = 3.0
#: the median channel's values (99.9th percentile of |x|) span fewer quantization steps than
#: this: the tensor's range is set by a few wide channels and the rest share few levels.
WIDE_RANGE_STEPS = 16.0
INSPECT_SCHEMA = "edgeq.inspect/1"

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
    model_path = Path(model_path)
    model = load_model(model_path)
    out = fsutil.ensure_writable_dir(out_dir) if out_dir is not None else None
    dataset = dataset or manifest.dataset_of(model_path)
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
    float_blob = float_model(model)
    rows, model_stats = dbg.statistics(float_blob, val.images)
    by_tensor = {n.tensor: n for n in dbg.nodes}
    layers = [_row(by_tensor[r["tensor_name"]], r) for r in rows]
    say(2, "accuracy float vs int8")
    int8_blob = plain_int8(model, calib)
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
        # the two models compared, as measured (`edgeq inspect --target` profiles them)
        fsutil.write_bytes(out / "model_float32.tflite", float_blob)
        fsutil.write_bytes(out / "model_int8.tflite", int8_blob)
        fsutil.write_json(out / "inspect.json", report.to_dict())
    say(steps, "")
    return report


def plot_layers(report: InspectReport, path: Path) -> str:
    """Horizontal bars of rmse/scale per layer (graph order), keep-float candidates marked."""
    from .plotting import plt, save_figure  # deferred: matplotlib is slow to import

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
        from matplotlib.patches import Patch  # deferred with matplotlib itself

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
