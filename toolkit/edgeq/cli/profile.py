"""`edgeq profile`: where the time goes on the device, per operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from .. import config as config_mod
from .. import profile as profile_mod
from ..settings import RunSettings
from .common import ConfigOpt, JsonOpt, NoWaitOpt, TargetOpt, emit_json, out, use_json
from .options import run_settings_options
from .progress import progress_printer

TABLE_WIDTH = 120


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def print_profile(p: profile_mod.Profile, top: int | None = None, title: str = "") -> None:
    """The table sorted by time, then what it was measured on and the notes."""
    t = Table(title=title or f"per-operator profile: {p.model.get('file')}", box=box.SIMPLE)
    for i, col in enumerate(profile_mod.TABLE_HEADER):
        t.add_column(col, justify="right" if i >= 3 or i == 0 else "left")
    for row in profile_mod.table_rows(p, top):
        t.add_row(*(escape(c) for c in row))
    saved = out._width
    out.width = max(out.width, TABLE_WIDTH)
    try:
        out.print(t)
    finally:
        out._width = saved
    dev = p.device
    lat = p.latency_ms
    mean = lat.get("mean")
    out.print(
        f"sum of nodes {p.total_ms:.3f} ms; invoke mean "
        f"{'-' if mean is None else format(mean, '.3f')} ms on "
        f"{escape(str(dev.get('device_model') or dev.get('os') or '?'))} "
        f"({dev.get('machine')}{', emulated' if dev.get('emulated') else ''}), "
        f"{dev.get('threads')} thread(s); layers: {p.layer_source}"
    )
    for note in p.notes:
        out.print(f"note: {escape(note)}")


@run_settings_options
def profile(
    model: Annotated[Path, typer.Argument(help="The .tflite model to profile.")],
    target: TargetOpt = "local",
    config: ConfigOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for profile.json and profile.png.")
    ] = Path("out/profile"),
    top: Annotated[int, typer.Option("--top", help="Rows of the table and bars (0: all).")] = 0,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    *,
    settings: RunSettings,
) -> None:
    """Per-operator device time (benchmark_model --enable_op_profiling): each node's op,
    the layer it came from, avg ms, % and cumulative %, as a table, JSON and a bar chart."""
    use_json(json_out)
    cfg = config_mod.load(config)
    tcfg = cfg.target(target)
    say = progress_printer()
    prof, _run = profile_mod.measure(tcfg, model, settings, say, wait=not no_wait)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = prof.to_dict()
    (out_dir / "profile.json").write_text(json.dumps(doc, indent=1))
    png = profile_mod.plot(
        prof,
        out_dir / "profile.png",
        title=f"{model.name} on {tcfg.name}: where the time goes",
        top=top or 15,
    )
    if json_out:
        emit_json({"ok": True, "target": tcfg.name, "png": str(png), **doc})
        return
    print_profile(prof, top or None, title=f"{model.name} on {tcfg.name}")
    out.print(f"saved {escape(str(out_dir / 'profile.json'))} and {escape(str(png))}")
