"""`edgeq demo`: the chapter's quantization exercises."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import demos
from .common import JsonOpt, emit_json, out, use_json

app = typer.Typer(
    rich_markup_mode=None,
    help="The chapter's quantization exercises (FC layer, rover image).",
    no_args_is_help=True,
)


@app.command("layer")
def layer(json_out: JsonOpt = False) -> None:
    """Quantize a random fully-connected layer's weights to 8 bits; show the error it causes."""
    use_json(json_out)
    res = demos.layer_exercise()
    if json_out:
        emit_json(res.to_dict())
        return
    import numpy as np

    out.print("[bold]Fully-connected layer, 8-bit weights[/] (np.random.seed(10007))")
    out.print("quantized weights:")
    out.print(escape(str(np.array(res.weights_quantized))))
    out.print(f"weights RMSE: {res.weights_rmse!r}")
    out.print(f"output RMSE:  {res.output_rmse!r}")
    out.print(
        f"weights size: {res.bytes_float32} B float32 -> {res.bytes_quantized} B 8-bit "
        f"({res.bytes_float32 / res.bytes_quantized:.0f}x smaller)"
    )


def _parse_bits(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    bits: list[int] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if "-" in part:
                lo, _, hi = part.partition("-")
                bits.extend(range(int(lo), int(hi) + 1))
            elif part:
                bits.append(int(part))
    return bits


@app.command("rover")
def rover(
    image: Annotated[
        Path | None,
        typer.Option(
            help="Image to transmit (default: the bundled Mars rover photo).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    bits: Annotated[
        list[str] | None,
        typer.Option("--bits", help="Bits per value: 5, 1-8 or 2,4,8 (repeatable; default 1-8)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for rover_grid.png and rover_sizes.png.")
    ] = Path("out/rover"),
    json_out: JsonOpt = False,
) -> None:
    """Send the rover image at b bits per value: packed bytes, saving, RMSE, PSNR, plots."""
    use_json(json_out)
    try:
        bit_list = _parse_bits(bits)
    except ValueError:
        raise typer.BadParameter(
            f"expected numbers like 5, 1-8 or 2,4,8; got {bits}", param_hint="--bits"
        ) from None
    res = demos.rover_exercise(image, bit_list, out_dir)
    if json_out:
        emit_json([r.to_dict() for r in res.rows])
        return
    h, w, c = res.shape
    table = Table(title=f"Rover image {w}x{h}x{c}, quantized over [0, 255]")
    for col in ("bits", "bytes", "saving vs 8-bit", "RMSE", "PSNR (dB)"):
        table.add_column(col, justify="right")
    for r in res.rows:
        psnr = "inf" if math.isinf(r.psnr_db) else f"{r.psnr_db:.2f}"
        table.add_row(str(r.bits), f"{r.bytes:,}", f"{r.saving:.1%}", f"{r.rmse:.3f}", psnr)
    out.print(table)
    out.print(escape(f"wrote {res.grid_png} and {res.sizes_png}"))
