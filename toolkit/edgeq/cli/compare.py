"""`edgeq compare A B`: two results (files or lab run ids), their changes, and whether the
latency change is significant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import compare as compare_mod
from ..lab.inventory import load_inventory
from .common import JsonOpt, emit_json, out, use_json


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def _fmt(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric == "accuracy":
        return f"{v:.2%}"
    if metric == "size":
        return f"{v / 1024:.2f} KB"
    return f"{v:.4f} ms"


def compare(
    a: Annotated[str, typer.Argument(help="A result file (results/*.json) or a lab run id.")],
    b: Annotated[str, typer.Argument(help="The result (or run id) to compare with A.")],
    db: Annotated[
        Path | None,
        typer.Option("--db", help="The lab history that holds the run ids."),
    ] = None,
    inventory: Annotated[
        str | None,
        typer.Option("--inventory", "-i", help="Find the history through this inventory."),
    ] = None,
    metric: Annotated[
        str,
        typer.Option("--metric", help="The latency figure the conclusion is about: p50 or p90."),
    ] = "p50",
    max_slowdown: Annotated[
        float | None,
        typer.Option(
            "--max-slowdown",
            help="Exit 1 when B is slower than A by more than this many percent (and the "
            "change is significant, when it can be tested).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare two results: p50, p90, accuracy and size, with a significance test on the
    latency (the unit is the run: repeat both sides with --repeat 3 or more) and a one-line
    conclusion. Results of runner 1.5 or later also compare each run's steadiest stretch,
    and the conclusion goes by it: the whole run's figure moves with the host's speed."""
    use_json(json_out)
    if db is None and inventory is not None:
        db = load_inventory(inventory, discover=False).db_path
    res = compare_mod.compare(a, b, db, metric, max_slowdown)
    if json_out:
        emit_json(res.to_dict())
    else:
        for p in res.pairs:
            if p.different_models:
                out.print(escape(f"{p.b.device}: {p.conclusion()}"))
            t = Table(title=escape(f"{p.b.device} × {p.b.model}: A = {p.a.label}, B = {p.b.label}"))
            for col in ("", "A", "B", "change", "test"):
                t.add_column(col, justify="left" if col in ("", "test") else "right")
            for name, c in p.changes.items():
                rel = c.relative
                if name == "accuracy" and c.a is not None and c.b is not None:
                    change = f"{(c.b - c.a) * 100:+.2f} pp"
                else:
                    change = "-" if rel is None else f"{rel:+.1%}"
                test = ""
                if c.test is not None:
                    verdict = "significant" if c.test.significant else "not significant"
                    ci = f"{c.test.ci_low:+.4f}..{c.test.ci_high:+.4f} ms"
                    test = f"{verdict} (p = {c.test.p_value:.3f}; 95 % CI {ci})"
                elif name in ("p50", "p90", *compare_mod.STEADY.values()):
                    test = f"not tested: {c.note}"
                    if c.within_run is not None:
                        inside = "differ" if c.within_run.significant else "do not differ"
                        test += (
                            f"; the two processes' samples {inside} "
                            f"(p = {c.within_run.p_value:.3f}, within-run only)"
                        )
                label = (
                    name.replace("steady_", "") + " (steadiest stretch)"
                    if "steady" in name
                    else name
                )
                t.add_row(label, _fmt(c.a, name), _fmt(c.b, name), change, escape(test))
            out.print(t)
            out.print(escape(f"what changed (A → B): {p.what_changed()}"))
            for side, s in (("A", p.a), ("B", p.b)):
                if s.validity not in (None, "valid"):
                    out.print(escape(f"warning: {side}'s run is {s.validity}"))
        for side, names in (("A", res.only_a), ("B", res.only_b)):
            if names:
                out.print(escape(f"only in {side}: {', '.join(names)}"))
        out.print(escape(res.conclusion()))
    raise typer.Exit(res.exit_code)
