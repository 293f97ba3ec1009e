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
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="Also profile the float32 and int8 models on this target (benchmark_model "
            "--enable_op_profiling) and show each layer's device time beside its error.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="edgeq.toml to use (default: ./edgeq.toml if present)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Per-layer error of full-int8 against float (TF's QuantizationDebugger), the accuracy
    drop, a bar plot, and which layers are worth keeping in float (and why); with
    --target, each layer's device time in float32 and int8 beside it."""
    use_json(json_out)
    tcfg = None
    if target is not None:  # a bad target or a missing binary fails before the work
        from .. import config as config_mod
        from .. import profile as profile_mod
        from ..settings import RunSettings

        tcfg = config_mod.load(config).target(target)
        profile_mod.profiling_runner(tcfg, RunSettings())
    with steps_bar("inspecting") as bar:
        rep = inspect_mod.inspect_model(
            model, dataset, data, samples, calibration_samples, out_dir, progress=bar
        )
    joined = _on_device(rep, model, out_dir, tcfg) if tcfg is not None else None
    if json_out:
        emit_json({**rep.to_dict(), **({"device": joined} if joined else {})})
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
    if joined:
        _print_joined(joined)
    out.print(escape(f"wrote {rep.plot} and {Path(out_dir) / 'inspect.json'}"))


def _on_device(rep, model: Path, out_dir: Path, tcfg) -> dict:
    """Profile the float32 and int8 models inspect compared on the target; the join."""
    from .. import fsutil
    from .. import profile as profile_mod
    from ..settings import RunSettings
    from .progress import progress_printer

    say = progress_printer()
    names = profile_mod.keras_file_layer_names(model)
    profiles = {}
    for mode in ("float32", "int8"):
        path = Path(out_dir) / f"model_{mode}.tflite"
        say(f"profiling the {mode} model on {tcfg.name}")
        profiles[mode], _ = profile_mod.measure(tcfg, path, RunSettings(), say, layer_names=names)
    rows = profile_mod.join_layers(rep.worst_first, profiles["float32"], profiles["int8"])
    doc = {
        "target": tcfg.name,
        "layers": rows,
        "profiles": {m: p.to_dict() for m, p in profiles.items()},
        "costly_percent": profile_mod.COSTLY_PERCENT,
    }
    fsutil.write_json(Path(out_dir) / "inspect_device.json", doc)
    return doc


def _print_joined(doc: dict) -> None:
    def ms(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    prof = doc["profiles"]["int8"]
    dev = prof["device"]
    table = Table(
        title=f"per layer: int8 error and device time on {doc['target']} "
        f"({dev.get('device_model') or dev.get('os')}, {dev.get('machine')})",
        caption=f"costly = at least {doc['costly_percent']:g} % of the int8 model's time; "
        "lossy = inspect suggests keeping it in float; float costs = float32 ms - int8 ms",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 0, 0, 2),
    )
    for col in ("layer", "op", "err", "f32 ms", "int8 ms", "int8 %", "float costs", "verdict"):
        table.add_column(col, justify="left" if col in ("layer", "op", "verdict") else "right")
    for r in doc["layers"]:
        verdict = " & ".join(w for w, on in (("costly", r["costly"]), ("lossy", r["lossy"])) if on)
        table.add_row(
            escape(r["name"]),
            r["op"].lower(),
            f"{r['rmse_over_scale']:.3f}",
            ms(r["float32_ms"]),
            ms(r["int8_ms"]),
            "-" if r["int8_percent"] is None else f"{r['int8_percent']:.1f}",
            "-" if r["float_costs_ms"] is None else f"{r['float_costs_ms']:+.3f}",
            verdict or "-",
        )
    _print_wide(table)
    both = [r["name"] for r in doc["layers"] if r["costly"] and r["lossy"]]
    if both:
        out.print(
            escape(
                f"costly and lossy: {', '.join(both)} (weigh the accuracy gained "
                "against the float costs column)"
            )
        )
