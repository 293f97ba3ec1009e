"""`edgeq deploy`, `edgeq bench`, `edgeq targets`, `edgeq doctor`: the device side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .. import config as config_mod
from .. import deploy as deploy_mod
from .. import doctor as doctor_mod
from .. import prepare as prepare_mod
from .. import profile as profile_mod
from .. import sidebyside
from ..budget import Budget
from ..data import DATASETS
from ..devapi import display_name
from ..errors import EXIT_FAILED
from ..results import DeployResult
from ..settings import RunSettings
from ..targets import make_target
from .common import (
    BudgetOpt,
    ConfigOpt,
    JsonOpt,
    NoWaitOpt,
    TargetOpt,
    emit_json,
    err,
    out,
    use_json,
)
from .options import run_settings_options
from .profile import print_profile
from .progress import progress_printer, training_bar

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help=f"{' or '.join(DATASETS)} (default: the artifact's, from its "
        "manifest, else [model] dataset).",
    ),
]
KeepOpt = Annotated[
    bool, typer.Option("--keep", help="Keep the per-run folder on the device (for debugging).")
]
NoDataOpt = Annotated[
    bool,
    typer.Option(
        "--no-data",
        help="No accuracy run: size, latency and output agreement are judged, accuracy shows "
        "as not measured.",
    ),
]
MeasureDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Evaluation data: your .npz (x, y), an image folder CLASS_NAME/*.png|jpg, or a "
        "Keras-layout dataset .npz / folder holding <dataset>.npz. Default: [data] path of "
        "the config, else the dataset from $EDGEQ_DATA_DIR or the Keras download.",
    ),
]
InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="NAME=d0,d1,... the shape to run input NAME at (sets dynamic dimensions); repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("bench")(bench)
    app.command("targets")(targets)
    app.command("doctor")(doctor)


def _progress(json_out: bool):
    return progress_printer()


#: The options every measuring command takes (deploy, bench), defined once.
MEASURING: dict = {
    "target": (TargetOpt, "local"),
    "dataset": (DatasetOpt, None),
    "data": (MeasureDataOpt, None),
    "no_data": (NoDataOpt, False),
    "input_shape": (InputShapeOpt, None),
    "config": (ConfigOpt, None),
    "keep": (KeepOpt, False),
    "no_wait": (NoWaitOpt, False),
}


def _locked(tcfg, no_wait: bool, say):
    """The device's lock (shared with the lab), taken with a waiting message on stderr."""
    lock = deploy_mod.device_lock(tcfg, wait=not no_wait)
    return lock.acquire(
        lambda msg: say(
            f"{tcfg.name} is in use by {msg.removeprefix('waiting for ')}; waiting for it "
            f"(Ctrl-C to stop, --no-wait to fail at once)"
        )
    )


@run_settings_options(shared=MEASURING)
def deploy(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A .tflite artifact. Default: train + convert per [model]."),
    ] = None,
    budget: BudgetOpt = None,
    results_dir: Annotated[
        Path, typer.Option("--results", help="Folder for the saved result JSON.")
    ] = Path("results"),
    json_out: JsonOpt = False,
    *,
    opts,
    settings: RunSettings,
) -> None:
    """Take a model to a verdict on a device: push, run, pull, judge against the budget."""
    _measure_command(opts, settings, json_out, model, results_dir, budget_path=budget, judge=True)


@run_settings_options(shared=MEASURING)
def bench(
    model: Annotated[Path, typer.Argument(help="The .tflite artifact to measure.")],
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner",
            help="Measure with this runner instead of the target's; `both` or "
            "python,benchmark_model: each in turn, in alternating order, --repeat rounds "
            f"(default {sidebyside.DEFAULT_ROUNDS}), one table with their ratio and a test.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    *,
    opts,
    settings: RunSettings,
) -> None:
    """Measure a model on a device (latency, accuracy, memory) without judging it."""
    _measure_command(
        opts, settings, json_out, model, None, budget_path=None, judge=False, runner=runner
    )


def _measure_command(
    opts,
    settings: RunSettings,
    json_out: bool,
    model: Path | None,
    results_dir: Path | None,
    budget_path: Path | None,
    judge: bool,
    runner: str | None = None,
) -> None:
    """The body of deploy (judge) and bench (measure only): config, target, the model
    (trained and converted per [model] when none is given), the measurement, the output."""
    use_json(json_out)
    names = sidebyside.parse_runners(runner) if runner else ()
    cfg = config_mod.load(opts.config)
    tcfg = cfg.target(opts.target)
    bud = Budget.load(budget_path, cfg.budget) if judge else None
    say = _progress(json_out)
    if len(names) == 2:  # bench --runner both: each runner in turn, one table
        with _locked(tcfg, opts.no_wait, say):
            both = sidebyside.side_by_side(
                tcfg, model, names, settings, say, **_deploy_kw(cfg, opts, model)
            )
        if json_out:
            emit_json({"ok": True, **both.to_dict()})
        else:
            print_side_by_side(both)
        return
    if model is None:
        model_cfg = {**cfg.model, "dataset": opts.dataset or cfg.model["dataset"]}
        with training_bar() as bar:
            model = prepare_mod.prepare_artifact(
                model_cfg, opts.data or _config_data(cfg), say, bar
            )
    res = _measured(
        cfg, tcfg, opts, model, bud, settings, results_dir, say, names[0] if names else None
    )
    passed = res.verdict.passed if judge else True
    if json_out:
        emit_json({"ok": passed, **res.to_dict()})
    else:
        print_result(res)
    if not passed:
        raise typer.Exit(EXIT_FAILED)


def _deploy_kw(cfg, opts, model) -> dict:
    """The deploy arguments the MEASURING options give (besides target, budget, settings)."""
    return {
        "dataset": opts.dataset or prepare_mod.dataset_of(model, cfg.model["dataset"]),
        "data_path": opts.data or _config_data(cfg),
        "keep": opts.keep,
        "with_data": not opts.no_data,
        "input_shapes": opts.input_shape,
        "data_options": cfg.data,
    }


def _measured(
    cfg, tcfg, opts, model, budget, settings, results_dir, say, runner=None
) -> DeployResult:
    """What deploy and bench share: the device's lock, then the deploy (budget None for
    bench). `opts`: the MEASURING options."""
    with _locked(tcfg, opts.no_wait, say):
        return deploy_mod.deploy(
            tcfg,
            model,
            budget=budget,
            settings=settings,
            results_dir=results_dir,
            progress=say,
            runner=runner,
            **_deploy_kw(cfg, opts, model),
        )


def _config_data(cfg) -> Path | None:
    """The [data] path of the config, if it names one."""
    return Path(cfg.data["path"]) if cfg.data.get("path") else None


def targets(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """List the configured targets."""
    use_json(json_out)
    cfg = config_mod.load(config)
    rows = []
    for name, t in sorted(cfg.targets.items()):
        rows.append(
            {
                "name": name,
                "transport": t.transport,
                "address": make_target(t).describe(),
                "runner": t.get("runner") or "auto",
                "python": t.get("python"),
                "workdir": t.get("workdir") or "(default)",
                "tags": t.get("tags") or [],
                "description": t.get("description") or "",
                "source": t.source,
            }
        )
    if json_out:
        emit_json({"config": str(cfg.path) if cfg.path else None, "targets": rows})
        return
    table = Table(title=escape(f"targets ({cfg.path or 'no edgeq.toml: built-in only'})"))
    for col in ("name", "transport", "address", "runner", "python", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(escape(str(r[c])) for c in ("name", "transport", "address", "runner",
                                                     "python", "description")))  # fmt: skip
    out.print(table)


def doctor(
    target: TargetOpt = "local", config: ConfigOpt = None, json_out: JsonOpt = False
) -> None:
    """Check a target: reachable, a workdir, and what its runner needs (python, numpy and an
    interpreter; or the benchmark_model binary) — each problem with its fix."""
    use_json(json_out)
    cfg = config_mod.load(config)
    rep = doctor_mod.diagnose(cfg.target(target))
    if json_out:
        emit_json(rep.to_dict())
    else:
        table = Table(
            title=escape(f"doctor: {rep.target} ({rep.address}), runner {rep.runner or '?'}"),
            show_header=True,
        )
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c in rep.checks:
            mark = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}[
                c.status
            ]
            detail = escape(c.detail) + (f"\n[dim]fix:[/] {escape(c.fix)}" if c.fix else "")
            table.add_row(escape(c.name), mark, detail)
        out.print(table)
    if not rep.ok:
        raise typer.Exit(rep.exit_code)


def print_result(res: DeployResult) -> None:
    run = res.run
    env = run.get("environment", {})
    if run.get("dropped_keys"):
        err.print(
            "warning: the device's result held keys the schema does not know; dropped: "
            + escape(", ".join(run["dropped_keys"])),
            markup=True,
        )
    where = (
        f" ({res.target['address']}): {env.get('machine')} {env.get('cpu_model') or ''} · "
        f"{env.get('os')} · "
        + (f"python {env.get('python')} · " if env.get("python") else "")
        + f"{env.get('runtime')} {env.get('runtime_version') or ''}".rstrip()
        + (
            f" · XNNPACK {'on' if env['xnnpack'] else 'off'}"
            if env.get("xnnpack") is not None
            else ""
        )
    )
    out.print(
        f"[bold]{escape(res.target['name'])}[/]{escape(where)}"
        + (" · [yellow]emulated[/]" if env.get("emulated") else "")
    )
    out.print(
        escape(
            f"model {Path(res.artifact['path']).name} ({res.artifact['bytes']:,} B, "
            f"sha256 {res.artifact['sha256'][:12]}) · sent {res.bytes_sent:,} bytes"
            + (f" ({res.transfer['method']})" if res.transfer.get("method") else "")
        )
    )
    tensors = run.get("model") or {}
    if tensors.get("inputs"):

        def tensor_list(key: str) -> str:
            return ", ".join(
                f"{display_name(d['name'])} {d['dtype']} {d['shape']}" for d in tensors.get(key, [])
            )

        out.print(escape(f"inputs: {tensor_list('inputs')} → outputs: {tensor_list('outputs')}"))
    t = Table(title="latency (ms), steady state")
    shown = ["min", "p50", "p90", "p95", "p99", "max", "mean", "std"]
    if any((stats or {}).get("p5") is not None for stats in run["latency_ms"].values()):
        shown.insert(1, "p5")
    for col in ("", "count", *shown):
        t.add_column(col, justify="right")
    for kind, stats in run["latency_ms"].items():
        if not stats:
            continue
        t.add_row(kind, str(stats["count"]), *(_fmt(stats.get(k)) for k in shown))
    out.print(t)
    ph = run.get("phases_ms", {})
    out.print("phases (ms): " + ", ".join(f"{k} {_fmt(v)}" for k, v in ph.items()))
    if run.get("accuracy"):
        a = run["accuracy"]
        out.print(
            f"accuracy: {a['top1']:.2%} on {a['samples']:,} samples "
            f"(measured on the {a.get('source', 'device')})"
        )
    elif run.get("accuracy_note"):
        out.print(escape(f"accuracy: {run['accuracy_note']}"))
    agreement = (run.get("agreement") or {}).get("report")
    if agreement:
        o = agreement["outputs"][0]
        top1 = (
            f", top-1 agreement {o['top1_agreement']:.1%}"
            if o["top1_agreement"] is not None
            else ""
        )
        out.print(
            escape(
                f"output agreement vs the {agreement['reference']['kind']} on the host "
                f"({agreement['samples']} {_fed(agreement)}): max |diff| "
                f"{o['max_abs_diff']:.4g}, "
                f"RMSE {o['rmse']:.4g}, cosine {o['cosine']:.5f}{top1}"
                + (f" — {agreement['not_informative']}" if agreement.get("not_informative") else "")
                + (
                    f" (+{len(agreement['outputs']) - 1} more outputs)"
                    if len(agreement["outputs"]) > 1
                    else ""
                )
            )
        )
    if agreement and agreement.get("state"):
        out.print(escape(f"state: {agreement['state']}"))
    validity = run.get("validity")
    if validity:
        style = {"valid": "green", "suspect": "yellow", "invalid": "red"}[validity["verdict"]]
        why = "; ".join(validity["reasons"])
        out.print(
            f"validity: [{style}]{validity['verdict']}[/]" + (f" ({escape(why)})" if why else "")
        )
    rep = run.get("repeat")
    if rep:
        p = rep.get("p90") or rep.get("p50") or {}
        key = "p90" if rep.get("p90") else "p50"
        out.print(
            f"{rep['n']} repetitions: {key} median {_fmt(p.get('median'))} ms, 95 % interval "
            f"{_fmt(p.get('ci_low'))}..{_fmt(p.get('ci_high'))} ms"
        )
    sweep = run.get("threads_sweep")
    if sweep:
        rows = ", ".join(
            f"{r['threads']}: {_fmt((r['repeat'].get('p50') or {}).get('median'))}"
            + (" (no effect)" if r["no_effect"] else "")
            for r in sweep["settings"]
        )
        out.print(f"threads (p50 ms): {rows} · best {sweep['best']}")
    mem = (run.get("memory") or {}).get("peak_rss_kb")
    if mem:
        out.print(f"peak RSS: {mem / 1024:.1f} MiB")
    footprint = (run.get("memory") or {}).get("footprint_mb") or {}
    if footprint:
        out.print(
            "memory footprint delta from the tool's start (MB, benchmark_model's own): "
            + ", ".join(f"{k} {v:.2f}" for k, v in footprint.items())
        )
    by_type = (run.get("op_profile") or {}).get("by_node_type") or []
    if by_type:
        out.print(
            "op profile (avg ms by node type): "
            + ", ".join(f"{r.get('type')} {_fmt(r.get('avg_ms'))}" for r in by_type[:5])
        )
    _print_op_profile(res)
    if res.verdict is not None:
        v = Table(title=f"verdict: {'PASS' if res.verdict.passed else 'FAIL'}")
        for col in ("check", "measured", "limit", "result", "source"):
            v.add_column(col)
        for c in res.verdict.checks:
            result = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[
                c.passed
            ]
            pct = c.metric == "accuracy" or (c.metric == "output_agreement" and not c.unit)
            fmt = ".5f" if c.unit == "cosine" else ".3f"
            measured = (
                "-"
                if c.measured is None
                else (f"{c.measured:.2%}" if pct else f"{c.measured:{fmt}} {c.unit}")
            )
            if c.limit is None:
                limit = "-"
            else:
                limit = f"{c.op} " + (f"{c.limit:.2%}" if pct else f"{c.limit:g} {c.unit}")
            v.add_row(c.metric, measured, limit, result, c.source)
        out.print(v)
        for c in res.verdict.checks:
            if c.note:
                out.print(f"note: {c.metric}: {escape(c.note)}")
    if res.host.get("saved_to"):
        out.print(f"saved {escape(res.host['saved_to'])}")
    kept = res.host.get("kept")
    if kept:
        out.print(
            escape(
                f"kept the run folder {kept['workdir']} on {kept['target']} (later runs leave "
                f"it); remove it with: {kept['remove']}"
            )
        )


def _print_op_profile(res: DeployResult) -> None:
    """The per-operator table (as `edgeq profile` prints it) when the run has one."""

    model = (res.artifact or {}).get("path")
    prof = profile_mod.from_run(res.run, Path(model) if model else None)
    if prof is not None:
        print_profile(prof, 10, title="where the time goes (top 10 operators)")


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_side_by_side(both: sidebyside.SideBySide) -> None:
    """One table: each runner's figures (medians over the rounds), their ratio and the
    test; memory figures each under its own definition."""
    doc = both.to_dict()
    a, b = both.runners
    first = both.results(a)[0]
    out.print(
        escape(
            f"{both.target} ({first.target['address']}): "
            f"{Path(first.artifact['path']).name} ({first.artifact['bytes']:,} B, sha256 "
            f"{first.artifact['sha256'][:12]}) · {doc['rounds']} rounds, alternating order "
            f"({a} first in rounds 1, 3, …)"
        )
    )
    t = Table(title="side by side: latency (ms), median over the rounds")
    for col in ("", a, b, f"{a} / {b}"):
        t.add_column(escape(col), justify="right")
    t.add_row("runtime", escape(doc["runtime"][a]), escape(doc["runtime"][b]), "")
    t.add_row("threads", str(doc["threads"][a]), str(doc["threads"][b]), "")
    lat = doc["latency_ms"]
    for key in sidebyside.FIGURES:
        va, vb = lat[a][key], lat[b][key]
        if va is None and vb is None:
            continue
        ratio = f"{va / vb:.3f}" if va is not None and vb else "-"
        if key == "p50" and doc["ratio_p50"]["median_of_rounds"] is not None:
            ratio = f"{doc['ratio_p50']['median_of_rounds']:.3f} (median of rounds)"
        t.add_row(key, _fmt(va), _fmt(vb), ratio)
    for name in (a, b):
        acc = doc["accuracy"][name]
        if acc:
            t.add_row(
                f"accuracy ({name})",
                f"{acc['top1']:.2%}" if name == a else "",
                f"{acc['top1']:.2%}" if name == b else "",
                escape(f"measured on the {acc.get('source', 'device')}"),
            )
    out.print(t)
    out.print(escape(f"p50 per round: {a} {_list(lat[a]['p50_per_round'])}; "
                     f"{b} {_list(lat[b]['p50_per_round'])}"))  # fmt: skip
    out.print(escape(f"test: {doc['test']['conclusion']} ({doc['test']['note']})"))
    m = Table(title="memory: different quantities, each as its runner defines it")
    for col in ("runner", "figure", "value", "definition"):
        m.add_column(col)
    for name in (a, b):
        mem = doc["memory"][name]
        for key, value in mem["figures"].items():
            m.add_row(
                escape(name), escape(key), f"{value:g}", escape(mem["definitions"].get(key) or "")
            )
    out.print(m)


def _list(values) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def _fed(agreement: dict) -> str:
    """What the compared outputs were computed on, in words."""
    what = "samples of the data" if agreement.get("source") == "data" else "seeded inputs"
    if agreement.get("state_reset") == "history":
        what += ", in order: the sequences compared"
    return what
