"""`edgeq lab run` and `edgeq lab report`: the nightly hardware lab."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import config
from .. import status as st
from ..errors import UsageError
from ..lab import report as report_mod
from ..lab import scheduler
from ..lab.history import History
from ..lab.inventory import INVENTORY_NAME, load_inventory
from ..lab.records import Event, LabRun
from .common import JsonOpt, emit_json, err, out, use_json
from .pipeline import DataOpt
from .progress import plain, say_line

app = typer.Typer(
    rich_markup_mode=None,
    help="The hardware lab: run an inventory of devices in parallel, keep every result in "
    "a history, flag regressions, write reports.",
    no_args_is_help=True,
)

InventoryOpt = Annotated[
    str | None,
    typer.Option(
        "--inventory",
        "-i",
        help="The lab inventory: a lab.toml, or labgrid://HOST:PORT?TAG=VALUE (default: "
        "the inventory key of edgeq.toml's lab table, else ./lab.toml).",
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="The SQLite history (default: db in the inventory)."),
]


def status_style(status: str) -> str:
    """The rich style of a status (edgeq.status), white for a word it does not know."""
    try:
        return st.look(status).rich
    except ValueError:
        return "white"


class LiveProgress:
    """Per-device progress on stderr: a rich live display on a terminal, one line per
    event otherwise (cron mails, CI logs).

    rich redraws every row at each refresh (~0.4 ms a row here): at 256 devices and ten
    refreshes a second that was ~90 ms per redraw, most of a core — more than the lab's own
    work per device-run, and growing with the fleet. A lab with more devices than the
    terminal has rows therefore shows a summary line and the devices at work (as many as
    fit); queued and finished ones are counted, not drawn (their results come in the table
    at the end). It refreshes 4 times a second."""

    FINAL = ("done", "quarantined")

    def __init__(self, console: Any = None, live: bool | None = None) -> None:
        self.console = console or err
        self.live = (not plain()) if live is None else live
        self.tasks: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        #: device -> queued, active or final; how many are in each; final statuses that
        #: make the run fail (the compact display's summary, kept as events come)
        self.state: dict[str, str] = {}
        self.counts = {"queued": 0, "active": 0, "final": 0}
        self.failing: set[str] = set()
        self.shown: set[str] = set()
        #: devices at work not drawn (no row free), in the order they asked for one
        self.waiting: dict[str, None] = {}
        self.compact = False
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
            refresh_per_second=4,  # phases last seconds; each redraw costs ~0.5 ms a row
        )
        # the compact display's summary: first in the list, drawn only when compact
        self.summary = self.progress.add_task("lab", total=1, info="", visible=False)

    def rows(self) -> int:
        """Device rows the terminal has room for (a summary line and a margin apart)."""
        return max(5, self.console.size.height - 4)

    def __enter__(self) -> LiveProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def say(self, msg: str) -> None:
        say_line(msg)

    def __call__(self, ev: Event) -> None:
        with self.lock:
            if not self.live:
                self._plain(ev)
                return
            if ev.device not in self.tasks:
                self.totals[ev.device] = max(ev.total, 1)
                self.tasks[ev.device] = self.progress.add_task(
                    ev.device, total=self.totals[ev.device], info="queued"
                )
                if not self.compact and len(self.tasks) > self.rows():
                    self._go_compact()
            task = self.tasks[ev.device]
            message = escape(ev.message[:160])
            info = message
            if ev.status:
                style = status_style(ev.status)
                info = f"[{style}]{ev.status.upper()}[/] {message}".strip()
            elif ev.phase in ("waiting", "retry"):
                info = f"[yellow]{ev.phase}[/] {message}"
            kw: dict[str, Any] = {"info": info}
            if ev.total:
                kw["total"] = self.totals[ev.device] = ev.total
            if ev.phase == "running" and ev.total:
                kw["completed"] = ev.done
            if ev.phase in self.FINAL:
                kw["completed"] = self.totals[ev.device] or 1
            self._track(ev)
            if self.compact:
                kw["visible"] = self._show(ev.device)
            self.progress.update(task, **kw)
            if self.compact:
                self._update_summary()

    def _track(self, ev: Event) -> None:
        now = "queued" if ev.phase == "queued" else "final" if ev.phase in self.FINAL else "active"
        before = self.state.get(ev.device)
        if before:
            self.counts[before] -= 1
        self.counts[now] += 1
        self.state[ev.device] = now
        if now == "final" and ev.status and ev.status not in st.HARMLESS:
            self.failing.add(ev.device)
        else:
            self.failing.discard(ev.device)

    def _go_compact(self) -> None:
        """More devices than rows: a summary line, and only devices at work drawn."""
        self.compact = True
        self.progress.update(self.summary, visible=True)
        for task in self.tasks.values():
            self.progress.update(task, visible=False)
        self.shown.clear()
        self.waiting.clear()
        for device in self.tasks:
            if self.state.get(device) == "active":
                self.progress.update(self.tasks[device], visible=self._show(device))

    def _show(self, device: str) -> bool:
        """Whether `device` is drawn now (at work, and a row free); a row it frees goes to
        the device at work waiting longest for one."""
        if self.state.get(device) != "active":
            self.waiting.pop(device, None)
            if device in self.shown:
                self.shown.discard(device)
                while self.waiting and len(self.shown) < self.rows():
                    other = next(iter(self.waiting))
                    del self.waiting[other]
                    self.shown.add(other)
                    self.progress.update(self.tasks[other], visible=True)
            return False
        if device in self.shown or len(self.shown) < self.rows():
            self.shown.add(device)
            return True
        self.waiting[device] = None
        return False

    def _update_summary(self) -> None:
        counts = self.counts
        info = (
            f"{counts['active']} at work ({len(self.shown)} shown) · {counts['queued']} queued"
            + (f" · [red]{len(self.failing)} failing[/]" if self.failing else "")
        )
        self.progress.update(
            self.summary, total=len(self.tasks), completed=counts["final"], info=info
        )

    @staticmethod
    def _plain(ev: Event) -> None:
        """Off a terminal: one plain line per event worth a line, no markup codes."""
        if ev.status:
            line = f"{ev.device}: {ev.status.upper()} {ev.message}".rstrip()
        elif ev.phase in ("waiting", "retry"):
            line = f"{ev.device}: {ev.phase} {ev.message}".rstrip()
        elif ev.phase == "running" and ": " in ev.message and ev.done:
            line = f"{ev.device}: {ev.message}"
        else:
            return
        err.print(line, markup=False, highlight=False)


def default_inventory() -> str:
    """[lab] inventory of ./edgeq.toml if there is one, else ./lab.toml."""

    return str(config.load().lab["inventory"]) if config.find_config() else INVENTORY_NAME


@app.command("run")
def run(
    inventory: InventoryOpt = None,
    models: Annotated[
        list[Path] | None,
        typer.Option(
            "--models",
            "-m",
            help="Artifact(s) to run instead of the inventory's models (repeat, or commas).",
        ),
    ] = None,
    data: DataOpt = None,
    only: Annotated[
        str | None, typer.Option("--only", help="Only devices with this name, tag or feature.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option("--parallel", "-j", help="Devices at once (default: the inventory's)."),
    ] = None,
    db: DbOpt = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", help="A name for each --models artifact, in order (reports show it)."
        ),
    ] = None,
    include_quarantined: Annotated[
        bool,
        typer.Option(
            "--include-quarantined",
            help="Also try devices an earlier run marked unhealthy (labgrid edgeq-health=bad).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Health-check, quarantine, benchmark in parallel, record, flag regressions.

    Exit codes: 0 every selected device ran and every result passed;
    1 a device was quarantined or errored, or a result failed its budget or a regression;
    2 a bad inventory or bad arguments.
    """
    use_json(json_out)
    inv = load_inventory(inventory or default_inventory())
    if inv.backend is not None:
        inv.backend.include_quarantined = include_quarantined
    paths = [Path(p) for m in models or [] for p in str(m).split(",") if p] or None
    labels = [x for v in label or [] for x in v.split(",") if x] or None
    with LiveProgress() as live:
        result = scheduler.run_lab(
            inv,
            models=paths,
            data_path=data,
            only=only,
            parallel=parallel,
            db=db,
            on_event=live,
            say=live.say,
            command=" ".join(["edgeq", *sys.argv[1:]]),
            labels=labels,
        )
    if json_out:
        emit_json(result.to_dict())
    else:
        print_run(result)
    raise typer.Exit(result.exit_code)


def print_run(run: LabRun) -> None:
    t = Table(title=f"lab run {run.run_id}: {'PASS' if run.ok else 'FAIL'}")
    for col in ("device", "model", "status", "p50 ms", "p90 ms", "mean ms", "accuracy", "size KB"):
        t.add_column(col, justify="left" if col in ("device", "model", "status") else "right")

    def ms(m: dict, key: str) -> str:
        return f"{m[key]:.3f}" if key in m else "-"

    for r in run.results:
        m = r.metrics
        t.add_row(
            escape(r.device),
            escape(r.model),
            f"[{status_style(r.status)}]{r.status}[/]",
            ms(m, "latency_p50"),
            ms(m, "latency_p90"),
            ms(m, "latency_mean"),
            f"{m['accuracy']:.2%}" if "accuracy" in m else "-",
            f"{m['model_bytes'] / 1024:.1f}" if "model_bytes" in m else "-",
        )
    out.print(t)
    for d in run.devices:
        if d.status == "skipped":
            out.print(f"[yellow]skipped[/] {escape(d.name)}: {escape(d.reason)}")
    for f in run.findings:
        style = "green" if f.kind == "recovery" else "red"
        out.print(f"[{style}]{f.kind}[/] {escape(f.message)}")
    for line in run.notices:
        out.print(f"[yellow]note[/] {escape(line)}")
    c = run.counts()
    out.print(
        f"{c['pass']} passed, {c['fail']} failed, {c.get('suspect', 0)} suspect, "
        f"{c['error']} errors, "
        f"{c['quarantined']} quarantined, {c['busy']} busy in {run.wall_s:.1f} s · "
        f"history {escape(run.db)}"
    )


FORMAT_HELP = (
    "Report format(s), repeat or comma-separate (html,md); several write into the --out "
    f"folder. {report_mod.registry.help_text()}."
)


@app.command("report")
def report(
    out_path: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="File to write; a folder (an existing one, a path ending in /, or any path "
            "with several formats) gets lab-report.<ext> per format and is created.",
        ),
    ],
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help=FORMAT_HELP, metavar="FORMAT[,FORMAT…]"),
    ] = None,
    db: DbOpt = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", help="Find the history through this inventory."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Run id (default: the latest lab run).")
    ] = None,
    trend_runs: Annotated[
        int, typer.Option("--trend-runs", help="Runs per device × model in the trend plots.")
    ] = 30,
    matrix_runs: Annotated[
        int,
        typer.Option("--matrix-runs", help="Runs per device × model in the overview matrix."),
    ] = 10,
    json_out: JsonOpt = False,
) -> None:
    """Write reports of a lab run: overview matrix, what is failing since when, trends with
    regression bands, environments (HTML, Markdown, JUnit XML, JSON)."""
    use_json(json_out)

    fmts = report_mod.parse_formats(formats)
    if db is None:
        inv_path = inventory or default_inventory()
        if inventory is None and not Path(inv_path).is_file():
            raise UsageError(f"give --db PATH (or --inventory; no {inv_path} here)")
        db = load_inventory(inv_path, discover=False).db_path
    if not Path(db).is_file():
        raise UsageError(f"no lab history at {db}; run `edgeq lab run` first or fix --db")
    with History(db, readonly=True) as history:
        doc = report_mod.build(history, run_id, trend_runs, matrix_runs)
    paths = report_mod.write_all(doc, fmts, out_path)
    run = doc["run"]
    if json_out:
        emit_json(
            {
                "ok": True,
                "formats": fmts,
                "paths": [str(p) for p in paths],
                "format": fmts[0],
                "path": str(paths[0]),
                "run_id": run["run_id"],
                "run_status": run["status"],
                "counts": doc["counts"],
            }
        )
    else:
        for fmt, path in zip(fmts, paths, strict=True):
            out.print(f"wrote {escape(str(path))} ({fmt}, run {run['run_id']}: {run['status']})")
