"""`edgeq train`, `edgeq convert` (alias `quantize`) and `edgeq eval`: the host pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .. import convert as convert_mod
from .. import data as data_mod
from .. import devapi, quantmodes, textsafe
from .. import evaluate as evaluate_mod
from .. import models as models_mod
from .. import train as train_mod
from ..errors import UsageError
from .common import ConfigOpt, JsonOpt, NoWaitOpt, emit_json, err, out, use_json
from .options import quant_mode_options
from .progress import progress_printer, steps_bar, steps_bars, training_bar

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="A dataset .npz (Keras layout) or a folder holding <dataset>.npz. "
        "Default: $EDGEQ_DATA_DIR, then the Keras download.",
    ),
]
CalibrationDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="What calibration draws from: a dataset .npz (Keras layout; its training "
        "split) or a folder holding <dataset>.npz, or your own samples as an .npz with x, y "
        "and optional preprocess_scale/preprocess_offset. Default: $EDGEQ_DATA_DIR, then "
        "the Keras download.",
    ),
]
DatasetOpt = Annotated[
    str, typer.Option("--dataset", help=f"One of: {', '.join(data_mod.DATASETS)}.")
]


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("convert")(convert)
    app.command("quantize", help="Alias of `convert`.")(convert)
    app.command("eval")(evaluate)


def train(
    dataset: DatasetOpt = "mnist",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 15,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed (weights, shuffling, augmentation).")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/train"),
    data: DataOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="Use a deterministic subset of N images per split.")
    ] = None,
    family: Annotated[
        str,
        typer.Option(
            help="Model family: "
            + "; ".join(f"{n} = {models_mod.family(n).doc}" for n in models_mod.FAMILIES)
            + "."
        ),
    ] = models_mod.DEFAULT_FAMILY,
    width: Annotated[float, typer.Option(help="Filter width multiplier (1 = the book's).")] = 1.0,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[
        str, typer.Option(help="constant (the book's) or cosine decay to zero.")
    ] = "constant",
    augment: Annotated[
        bool, typer.Option(help="Random shifts and small rotations while training.")
    ] = False,
    dropout: Annotated[
        float | None,
        typer.Option(help="Dropout before the classifier (default: the family's, book 0.5)."),
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            help="TF op determinism: the same seed gives the same weights on this machine "
            "(--no-deterministic is a little faster)."
        ),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Train a model family (default the book's MNIST CNN); write model.keras, history.json,
    metrics.json, accuracy.png."""
    use_json(json_out)
    recipe = train_mod.Recipe(
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        width=width,
        learning_rate=lr,
        lr_schedule=lr_schedule,
        augment=augment,
        dropout=dropout,
        limit=limit,
        family=family,
    ).validate()
    with training_bar() as bar:
        res = train_mod.train(recipe, out_dir, data, progress=bar, deterministic=deterministic)
    m = res.metrics
    if json_out:
        emit_json({**m, "out_dir": str(res.out_dir), "model": str(res.model_path)})
        return
    out.print(
        f"trained {m['family']} ({m['params']:,} parameters) on {m['train_samples']:,} "
        f"{m['dataset']} images in {m['train_seconds']:.1f} s: test accuracy "
        f"{m['test_accuracy']:.2%}"
    )
    bn = m.get("batchnorm_reestimated")
    if bn:
        before = bn.get("test_accuracy_before")
        was = f" (test accuracy with the moving averages: {before:.2%})" if before else ""
        out.print(escape(f"note: {bn['why']}{was}"))
    out.print(
        escape(f"wrote {res.model_path}, history.json, metrics.json, accuracy.png in {res.out_dir}")
    )


@quant_mode_options
def convert(
    model: Annotated[Path, typer.Argument(help="The trained .keras model.")],
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            help="; ".join(f"{m} = {quantmodes.get(m).doc}" for m in quantmodes.MODES)
            + "; or all (repeatable; default float32 + int8).",
        ),
    ] = None,
    calibration_samples: Annotated[
        int, typer.Option(help="Representative images from the TRAINING split (int8, int16x8).")
    ] = 500,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/models"),
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset for calibration (default: from metrics.json beside MODEL)."),
    ] = None,
    data: CalibrationDataOpt = None,
    mode_options: dict[str, Any] | None = None,  # the modes' own options (see the decorator)
    validation_samples: Annotated[
        int,
        typer.Option(help="With --keep-float-auto: training images held out for the drop."),
    ] = convert_mod.VALIDATION_SAMPLES,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="Target name from edgeq.toml: with --max-latency-ms, the device each "
            "keep-float step is measured on.",
        ),
    ] = None,
    config: ConfigOpt = None,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert a Keras model to TFLite in one or more modes and write manifest.json."""
    use_json(json_out)
    modes = convert_mod.parse_modes(mode or [])
    options = mode_options or {}
    device = _latency_meter(target, options.get("max_latency_ms"), config, no_wait)
    label = next(
        (o.progress for k, o in quantmodes.options().items() if o.progress and options.get(k)),
        None,
    )  # the step bar of the option whose work reports progress (the keep-float search)
    with steps_bars("converting", label or "") as (bar, search):
        manifest = convert_mod.convert(
            model,
            modes,
            out_dir,
            calibration_samples,
            dataset,
            data,
            progress=bar,
            options=options,
            validation_samples=validation_samples,
            step_progress=search if label else None,
            device=device,
        )
    done = [a for a in manifest["artifacts"] if a["mode"] in modes]
    if json_out:
        emit_json(
            {
                "out_dir": str(out_dir),
                "manifest": str(Path(out_dir) / "manifest.json"),
                "artifacts": done,
            }
        )
        return
    table = Table(title=f"TFLite artifacts in {out_dir}")
    for col in ("mode", "file", "KB", "input", "output", "calibration"):
        table.add_column(col, justify="right" if col == "KB" else "left")
    for a in done:
        qi = a["input"]
        q = (
            f"{qi['dtype']} (s={qi['scale']:.5g}, zp={qi['zero_point']})"
            if qi["scale"]
            else qi["dtype"]
        )
        cal = a["calibration"]["source"] if a["calibration"] else "-"
        table.add_row(
            a["mode"], a["file"], f"{a['bytes'] / 1024:.2f}", q, a["output"]["dtype"], cal
        )
    out.print(table)
    for a in done:
        if a.get("keep_float"):
            kept = ", ".join(f"{k['name']} ({k['op']})" for k in a["keep_float"])
            out.print(escape(f"{a['file']}: kept in float: {kept}"))
        if a.get("keep_float_auto"):
            _print_auto(a["keep_float_auto"])


def _latency_meter(target: str | None, limit: float | None, config, no_wait: bool):
    """The device meter of `--max-latency-ms` (checked before any work: the target, its
    runner, the budget's latency percentile), or None; each flag without the other is exit 2."""
    if target is None:
        if limit is not None:
            raise UsageError(
                "--max-latency-ms needs --target T: the device each step is measured on"
            )
        return None
    if limit is None:
        raise UsageError(
            "--target on convert is the device --max-latency-ms measures on; add "
            "--keep-float-auto --max-latency-ms X (or leave --target out)"
        )
    from .. import config as config_mod
    from .. import deploy as deploy_mod
    from ..budget import Budget

    cfg = config_mod.load(config)
    return deploy_mod.latency_meter(
        cfg.target(target), Budget.load(None, cfg.budget), progress_printer(), wait=not no_wait
    )


def _print_auto(auto: dict) -> None:
    limit = auto.get("max_latency_ms")
    device = auto.get("device") or {}
    title = (
        f"keep-float search: drop vs float on {auto['validation']} "
        f"(float {auto['float_validation_accuracy']:.2%}), target <= {auto['max_drop_pp']:g} pp"
    )
    if limit is not None:
        title += (
            f"; latency on {device.get('target', '?')} ({device.get('runner', '?')} runner, "
            f"{device.get('metric', '?')}) <= {limit:g} ms"
        )
    table = Table(title=escape(title))
    cols = ["step", "kept in float", "KB", "size cost KB", "val accuracy", "drop (pp)"]
    if limit is not None:
        cols += ["device ms", "verdict", "why"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("kept in float", "why") else "right")
    final = auto.get("final_step", len(auto["steps"]) - 1)
    for i, s in enumerate(auto["steps"]):
        row = [
            str(i) + (" *" if i == final and s.get("accepted", True) else ""),
            escape(", ".join(s["kept"]) or "(none: full int8)"),
            f"{s['bytes'] / 1024:.2f}",
            f"{s['size_cost_bytes'] / 1024:+.2f}",
            f"{s['validation_accuracy']:.2%}",
            f"{s['drop_pp']:+.2f}",
        ]
        if limit is not None:
            ms = s.get("latency_ms")
            row += [
                "-" if ms is None else f"{ms:.3f}",
                "accepted" if s.get("accepted", True) else "rejected",
                escape(s.get("why") or ""),
            ]
        table.add_row(*row)
    out.print(table)
    if limit is not None and not auto.get("within_latency", True):
        out.print(
            escape(
                f"over the latency limit: full int8 already measures "
                f"{auto['steps'][0]['latency_ms']:.3f} ms > {limit:g} ms on "
                f"{device.get('target', '?')}: no layer kept in float (the model written is "
                f"full int8)"
            )
        )
    elif not auto["reached"]:
        last = auto["steps"][final]
        why = (
            "with every layer the latency allows in float"
            if limit is not None and any(not s.get("accepted", True) for s in auto["steps"])
            else "even with every layer in float"
        )
        out.print(f"[bold yellow]not reached:[/] {why} the drop is {last['drop_pp']:+.2f} pp")


def evaluate(
    artifacts: Annotated[list[Path], typer.Argument(help=".tflite files or folders of them.")],
    dataset: Annotated[
        str | None, typer.Option(help="Dataset (default: from the artifacts' manifest).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Your evaluation data (an .npz with x and y, or an image folder "
            "CLASS_NAME/*.png|jpg), or a Keras-layout dataset .npz / a folder holding "
            "<dataset>.npz. Default: MNIST for 28x28 10-class models ($EDGEQ_DATA_DIR, then "
            "the Keras download); other models get no accuracy.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Evaluate on a deterministic subset of the test split.")
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed single-image inferences per artifact.")] = 200,
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="NAME=d0,d1,... : run input NAME at this shape (its dynamic dimensions); "
            "repeatable.",
        ),
    ] = None,
    agreement: Annotated[
        int | None,
        typer.Option(
            "--agreement",
            help="Seeded random samples whose outputs are compared with the float32 sibling "
            f"(default: {evaluate_mod.AUTO_AGREEMENT} for artifacts without accuracy, else 0).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Accuracy, drop vs float32, output agreement, size and 1-thread latency per artifact.

    Exit codes: 0 every artifact evaluated; 2 some row holds an error (the other rows are
    still evaluated and printed).
    """
    use_json(json_out)
    shapes = devapi.parse_input_shapes(input_shape or [])
    with steps_bar("evaluating") as bar:
        rep = evaluate_mod.evaluate(
            artifacts,
            dataset,
            data,
            limit,
            runs,
            progress=bar,
            input_shapes=shapes,
            agreement=agreement,
        )
    for r in rep.rows:
        if r.error:
            msg = escape(textsafe.one_line(r.error["message"]))
            err.print(f"[bold red]edgeq: error:[/] {msg}", markup=True)
    if json_out:
        emit_json(rep.to_dict())
    else:
        _print_eval(rep)
    if rep.exit_code:
        raise typer.Exit(rep.exit_code)


def _print_eval(rep: evaluate_mod.EvalReport) -> None:
    samples = next((r.samples for r in rep.rows if r.samples), None)
    if rep.dataset:
        what = f"{rep.dataset} test split ({samples or 0:,} images)"
    elif rep.data_source:
        what = rep.data_source + (f" ({samples:,} samples)" if samples else "")
    else:
        what = "no evaluation data"
    table = Table(title=f"{what}, {rep.runtime} {rep.runtime_version or ''}")
    cols = ("artifact", "mode", "KB", "accuracy", "drop (pp)", "agreement", "p50 ms", "p90 ms")
    for col in cols:
        table.add_column(
            col,
            justify="left" if col in ("artifact", "mode") else "right",
            overflow="fold",
        )
    for r in rep.rows:
        name = Path(r.artifact).name + (" (reference)" if r.reference else "")
        if r.error:
            kb = "-" if r.kb is None else f"{r.kb:.2f}"
            table.add_row(escape(name), "-", kb, "error", "-", "-", "-", "-")
            continue
        table.add_row(
            escape(name),
            r.mode or "-",
            f"{r.kb:.2f}",
            f"{r.top1:.2%}" if r.top1 is not None else "n/a",
            "-" if r.drop_pp is None else f"{r.drop_pp:+.2f}",
            _agreement_cell(r.agreement),
            f"{r.latency_p50_ms:.3f}",
            f"{r.latency_p90_ms:.3f}",
        )
    out.print(table)
    for r in rep.rows:
        name = escape(Path(r.artifact).name)
        if r.error:
            continue  # said on stderr
        if r.accuracy_note:
            inputs = "; ".join(devapi.TensorInfo(**t).describe() for t in r.inputs)
            out.print(f"{name} (input {escape(inputs)}): accuracy {escape(r.accuracy_note)}")
        if r.agreement and r.agreement.get("note"):
            out.print(f"{name}: agreement not measured: {escape(r.agreement['note'])}")
        if r.agreement and r.agreement.get("reference"):
            ref = Path(r.agreement["reference"]["path"]).name
            fed = "samples of the data" if r.agreement.get("source") == "data" else "random inputs"
            for o in r.agreement["outputs"]:
                top1 = (
                    f", top-1 agreement {o['top1_agreement']:.1%}"
                    if o["top1_agreement"] is not None
                    else ""
                )
                out.print(
                    f"{name}: output {escape(devapi.display_name(o['name']))} vs "
                    f"{escape(ref)} on {r.agreement['samples']} {fed}: max |diff| "
                    f"{o['max_abs_diff']:.4g} (outputs up to {o['reference_abs_max']:.4g}), "
                    f"RMSE {o['rmse']:.4g}, cosine {o['cosine']:.5f}{top1}"
                    + (
                        f" (not informative: the reference's output is {o['not_informative']})"
                        if o.get("not_informative")
                        else ""
                    )
                )
        if r.book_shortcut_top1 is not None:
            out.print(
                f"{name}: inputs quantized with the tensor's scale/zero "
                f"point ({r.top1:.2%}); the book's (x*127).astype(int8) shortcut would give "
                f"{r.book_shortcut_top1:.2%}"
            )


def _agreement_cell(agreement: dict | None) -> str:
    if not agreement or not agreement.get("reference"):
        return "-"
    if agreement.get("score") is None:
        return "not informative"
    if str(agreement.get("score_kind", "")).startswith("top-1"):
        return f"top-1 {agreement['score']:.1%}"
    return f"cos {agreement['score']:.4f}"
