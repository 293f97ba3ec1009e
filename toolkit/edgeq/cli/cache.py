"""`edgeq cache prune`: keep the local target's cache in bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import config as config_mod
from ..errors import UsageError
from ..targets import cache as cache_mod
from ..targets import make_target
from .common import JsonOpt, emit_json, out, use_json

app = typer.Typer(
    rich_markup_mode=None,
    help="The local target's cache ($TMPDIR/edgeq-local-<uid>, shared by your checkouts).",
    no_args_is_help=True,
)

DEFAULT_DAYS = 30.0


@app.command("prune")
def prune(
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            help=f"Remove cache files unused for this many days (default {DEFAULT_DAYS:g} "
            "when neither option is given).",
        ),
    ] = None,
    max_mb: Annotated[
        float | None,
        typer.Option(
            "--max-mb",
            help="Then remove the least recently used until the cache holds at most this "
            "many MB (default: the target's cache_max_mb when neither option is given).",
        ),
    ] = None,
    kept: Annotated[
        bool,
        typer.Option(
            "--kept",
            help="Also remove the run folders kept with `--keep` (no other run removes them).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be removed.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="edgeq.toml whose local targets to prune as well."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Prune this device's cache instead (SSH, adb): files unused for "
            "--older-than days, and unfinished uploads.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove cache files by age and total size, unfinished uploads, and the run folders
    of edgeq processes that are gone — for every local target (the built-in one and those
    of edgeq.toml). Files in use by a running deploy are recent, so they stay. Folders kept
    with `--keep` stay unless --kept."""
    use_json(json_out)
    for name, value in (("--older-than", older_than), ("--max-mb", max_mb)):
        if value is not None and not value >= 0:
            raise UsageError(f"{name} must be a number >= 0, got {value}")
    cfg = config_mod.load(config)
    if target is not None and cfg.target(target).transport != "local":
        _prune_device(cfg.target(target), older_than, max_mb, dry_run, json_out)
        return
    defaults = older_than is None and max_mb is None
    reports = []
    seen: set[str] = set()
    for tcfg in cfg.targets.values():
        if tcfg.transport != "local":
            continue
        base = make_target(tcfg).workdir_base
        if base in seen:
            continue
        seen.add(base)
        reports.append(
            cache_mod.prune(
                Path(base),
                older_than_days=DEFAULT_DAYS if defaults else older_than,
                max_mb=(tcfg.get("cache_max_mb") or None) if defaults else max_mb,
                dry_run=dry_run,
                kept=kept,
            )
        )
    if json_out:
        emit_json({"ok": True, "dry_run": dry_run, "folders": [r.to_dict() for r in reports]})
        return
    verb = "would remove" if dry_run else "removed"
    for r in reports:
        out.print(
            escape(
                f"{r.base}: {verb} {len(r.removed)} item(s), {r.freed_bytes / 1e6:.1f} MB; "
                f"kept {r.kept_files} file(s), {r.kept_bytes / 1e6:.1f} MB"
            )
        )
        if r.removed:
            t = Table(show_header=True)
            for col in ("path", "MB", "days unused", "why"):
                t.add_column(col)
            for x in r.removed:
                t.add_row(escape(x.path), f"{x.bytes / 1e6:.2f}", f"{x.age_days:.1f}", x.why)
            out.print(t)


def _prune_device(tcfg, older_than, max_mb, dry_run: bool, json_out: bool) -> None:
    """`cache prune --target T` for a device reached over a transport."""
    if max_mb is not None:
        raise UsageError("--max-mb applies to local targets; use --older-than for a device")
    days = DEFAULT_DAYS if older_than is None else older_than
    with make_target(tcfg) as t:
        removed = t.prune_cache(days, dry_run)
        where = t.cache_dir
    if json_out:
        emit_json(
            {"ok": True, "dry_run": dry_run, "target": tcfg.name, "cache": where,
             "removed": removed}
        )  # fmt: skip
        return
    verb = "would remove" if dry_run else "removed"
    out.print(escape(f"{tcfg.name}:{where}: {verb} {len(removed)} file(s)"))
    for path in removed:
        out.print(escape(f"  {path}"))
