"""`edgeq inspect`: per-layer quantization error of full-int8 vs float (TF's debugger)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .. import inspect as inspect_mod
from .common import JsonOpt, emit_json, out, use_json
from .pipeline import CalibrationDataOpt
from .progress import steps_bar

TABLE_WIDTH = 112  # wider than a pipe's default 80 columns: the table never truncates


def _print_wide(renderable) -> None:
    """Print at least TABLE_WIDTH columns wide (a pipe's console is 80 columns)."""
    saved = out._width  # None = follow the terminal
    out.width = max(out.width, TABLE_WIDTH)
    try:
        out.print(renderable)
    finally:
        out._width = saved


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    model: Annotated[Path, typer.Argument(help="The trained .keras model.")],
    data: CalibrationDataOpt = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset (default: from metrics.json beside MODEL).")
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            help="Validation images from the TRAINING split (not the calibration images) "
            "that the debugger runs."
        ),
    ] = inspect_mod.DEBUG_SAMPLES,
    calibration_samples: Annotated[
        int, typer.Option(help="Representative images from the training split.")
    ] = 500,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for layer_error.png and inspect.json.")
    ] = Path("out/inspect"),
    json_out: JsonOpt = False,
) -> None:
    """Per-layer error of full-int8 against float (TF's QuantizationDebugger), the accuracy
    drop, a bar plot, and which layers are worth keeping in float (and why)."""
    use_json(json_out)
    with steps_bar("inspecting") as bar:
        rep = inspect_mod.inspect_model(
            model, dataset, data, samples, calibration_samples, out_dir, progress=bar
        )
    if json_out:
        emit_json(rep.to_dict())
        return
    out.print(
        escape(
            f"{rep.model}: float {rep.float_accuracy:.2%}, int8 {rep.int8_accuracy:.2%} "
            f"(drop {rep.drop_pp:+.2f} pp; same class {rep.argmax_agreement:.2%}) on "
            f"{rep.validation}; int8 {rep.int8_bytes / 1024:.2f} KB"
        )
    )
    table = Table(
        title="per-layer error of int8 vs float, worst first",
        caption=f"err = RMSE in quantization steps (rmse/scale; rounding alone "
        f"{inspect_mod.ROUNDING_RMSE:.2f}); ch steps = steps the median channel's values span "
        "(99.9th percentile of |x| / scale); max/p99.9 = max |x| over its 99.9th percentile",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 0, 0, 2),
    )
    cols = (
        "#",
        "layer",
        "op",
        "scale",
        "zp",
        "err",
        "mean err",
        "max|err|",
        "ch steps",
        "max/p99.9",
    )
    for col in (*cols, "float?"):
        table.add_column(col, justify="left" if col in ("layer", "op", "float?") else "right")
    for i, r in enumerate(rep.worst_first, 1):
        table.add_row(
            str(i),
            escape(r.name),
            r.op.lower(),
            f"{r.scale:.3g}",
            str(r.zero_point),
            f"{r.rmse_over_scale:.3f}",
            f"{r.mean_error:+.1e}",
            f"{r.max_abs_error:.2g}",
            "-" if r.channel_steps is None else f"{r.channel_steps:.1f}",
            f"{r.outlier_ratio:.2f}",
            "keep" if r.keep_float else "-",
        )
    _print_wide(table)
    for r in rep.worst_first:
        if r.keep_float:
            verdict = "keep in float"
            fused = f" ({'+'.join(r.layers)})" if len(r.layers) > 1 else ""
            out.print(escape(f"  {r.name}{fused}: {verdict}: {'; '.join(r.reasons)}"))
    if rep.keep_float:
        out.print(
            escape(
                f"worth trying in float: edgeq convert {rep.model} --mode int8 --keep-float "
                f"{','.join(rep.keep_float)}   (or --keep-float-auto --max-drop-pp X)"
            )
        )
    else:
        out.print(
            f"no layer has more than {inspect_mod.KEEP_FLOAT_RMSE:g} steps of error, outliers "
            "or a range set by a few channels: full int8 is fine"
        )
    out.print(escape(f"wrote {rep.plot} and {Path(out_dir) / 'inspect.json'}"))
