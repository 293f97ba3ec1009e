"""`edgeq sweep`: a budget-driven search over model families × widths × modes × threads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import config as config_mod
from .. import sweep as sweep_mod
from ..budget import Budget
from ..settings import RunSettings
from .common import BudgetOpt, JsonOpt, emit_json, out, use_json
from .options import run_settings_options
from .pipeline import DataOpt
from .progress import progress_printer, steps_bars, training_bar


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


@run_settings_options
def sweep(
    target: Annotated[str, typer.Option("--target", "-t", help="Target name from edgeq.toml.")],
    budget: BudgetOpt = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for sweep.json, sweep.md and pareto.png.")
    ] = Path("out/sweep"),
    objective: Annotated[
        str,
        typer.Option(
            "--objective", help="What 'best' means among the passing: size, latency or accuracy."
        ),
    ] = "size",
    db: Annotated[
        Path | None,
        typer.Option("--db", help="The lab history (default: db of the [sweep] table)."),
    ] = None,
    data: DataOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="edgeq.toml to use (default: ./edgeq.toml if present)."),
    ] = None,
    json_out: JsonOpt = False,
    *,
    settings: RunSettings,
) -> None:
    """Train, convert and deploy every candidate of the [sweep] grid to one target, judge
    each against the budget, record them in the lab history, and name the best.

    Exit 0 when a candidate passes, 1 when none does (the nearest one and what blocked it
    are named), 2 for a bad [sweep] table. A re-run skips the candidates already done."""
    use_json(json_out)
    cfg = config_mod.load(config)
    tcfg = cfg.target(target)
    where = f"{cfg.path or 'built-in'} [sweep]"
    grid = sweep_mod.parse_grid(cfg.sweep, where)
    bud = Budget.load(budget, cfg.budget)
    if db is None:
        db = Path(grid.db)
        if cfg.path is not None and not db.is_absolute():
            db = cfg.path.parent / db
    say = progress_printer()
    with training_bar() as train_bar, steps_bars("candidates") as (cand_bar,):
        res = sweep_mod.run_sweep(
            tcfg,
            grid,
            cfg.model,
            bud,
            settings,
            out_dir,
            db,
            data_path=data,
            objective=objective,
            progress=say,
            on_candidate=cand_bar,
            train_progress=train_bar,
            command=" ".join(["edgeq", *sys.argv[1:]]),
        )
    if json_out:
        emit_json(res.to_dict())
    else:
        doc = res.to_dict()
        fronts = set(doc["pareto"]["size_vs_accuracy"]) | set(doc["pareto"]["latency_vs_accuracy"])
        t = Table(title=escape(f"sweep on {res.target} (run {res.run_id})"))
        for col in ("candidate", "status", "size KB", "accuracy", "latency ms", "Pareto"):
            t.add_column(col, justify="left" if col in ("candidate", "status") else "right")
        for o in sorted(res.outcomes, key=lambda o: o.bytes or 0):
            t.add_row(
                escape(o.label + (" *" if doc["best"] == o.key else "")),
                o.status,
                f"{o.bytes / 1024:.2f}" if o.bytes else "-",
                f"{o.accuracy:.2%}" if o.accuracy is not None else "-",
                f"{o.latency_ms:.3f}" if o.latency_ms is not None else "-",
                "yes" if o.key in fronts else "",
            )
        out.print(t)
        out.print(escape(res.conclusion()))
        out.print(escape(f"wrote {res.out_dir}/sweep.json, sweep.md, pareto.png; history {res.db}"))
    raise typer.Exit(res.exit_code)
