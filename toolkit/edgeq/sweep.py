"""`edgeq sweep`: which model, and which quantization, to ship for this device.

A grid declared in edgeq.toml's `[sweep]` table — model families × widths × conversion
modes × interpreter threads — is trained (cached by the recipe's content hash), converted
and deployed to one target through the same runner and budget as `edgeq deploy`. Every
result goes into the lab history as a run with `kind = "sweep"`, so a sweep can be queried,
reported (its Pareto plot) and regression-checked like a nightly run.

    [sweep]
    families = ["book", "bngap"]   # edgeq.models
    widths   = [0.5, 1.0]
    modes    = ["int8", "float16"] # edgeq.quantmodes
    threads  = [1, 2]
    epochs   = 3
    limit    = 0                   # a training subset of N images (0 = all)
    seed     = 0

Everything else of a candidate's recipe comes from `[model]`. The sweep writes, in its
output folder: `sweep.json` (candidates, best, pareto — written after every candidate, so a
re-run skips what is done), `sweep.md` and `pareto.png` (size vs accuracy and latency vs
accuracy, the fronts highlighted, the budget's limits drawn).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import deploy as deploy_mod
from . import fsutil, models, quantmodes
from . import prepare as prepare_mod
from .budget import Budget
from .errors import EXIT_FAILED, EXIT_OK, ConfigError, EdgeqError, UsageError
from .fields import Field, TargetConfig, validate_section
from .lab import regress
from .lab.history import History, provenance, utc_now
from .lab.records import ResultRecord, describe, new_run_id, with_deploy
from .lab.report import document, plots
from .lab.report import pareto_front as front
from .lab.scheduler import judge_and_record
from .progress import Progress, say
from .settings import RunSettings
from .targets import make_target

SCHEMA = "edgeq.sweep/1"
OBJECTIVES = ("size", "latency", "accuracy")

SWEEP_FIELDS: dict[str, Field] = {
    "families": Field((list,), ["book"], "model families to try (edgeq.models)"),
    "widths": Field((list,), [1.0], "width multipliers to try"),
    "modes": Field((list,), ["int8"], "conversion modes to try (edgeq.quantmodes)"),
    "threads": Field((list,), [1], "interpreter thread counts to try"),
    "epochs": Field((int,), 3, "training epochs per candidate", minimum=1),
    "limit": Field((int,), 0, "train on a subset of N images (0 = the whole split)", minimum=0),
    "seed": Field((int,), 0, "training seed", minimum=0),
    "db": Field((str,), "lab-data/history.sqlite", "the lab history the results go into"),
}


@dataclass(frozen=True)
class Candidate:
    family: str
    width: float
    mode: str
    threads: int

    @property
    def key(self) -> str:
        return f"{self.family}-w{self.width:g}-{self.mode}-t{self.threads}"

    @property
    def label(self) -> str:
        return f"{self.family} w{self.width:g} {self.mode} t{self.threads}"


@dataclass(frozen=True)
class Grid:
    candidates: tuple[Candidate, ...]
    epochs: int
    limit: int | None
    seed: int
    db: str

    def recipe(self, c: Candidate, model_cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            **model_cfg,
            "family": c.family,
            "width": c.width,
            "mode": c.mode,
            "epochs": self.epochs,
            "seed": self.seed,
            "limit": self.limit,
        }


def parse_grid(raw: dict[str, Any], where: str) -> Grid:
    """The `[sweep]` table → the grid; one line naming the key for every bad value."""
    t = validate_section(where, raw, SWEEP_FIELDS)
    for key in ("families", "widths", "modes", "threads"):
        if not t[key]:
            raise ConfigError(f"{where}: key {key!r} is empty, so the grid has no candidate")
    for fam in t["families"]:
        if fam not in models.FAMILIES:
            raise ConfigError(
                f"{where}: key 'families': unknown family {fam!r}; choose from "
                f"{', '.join(models.FAMILIES)}"
            )
    for mode in t["modes"]:
        if mode not in quantmodes.MODES:
            raise ConfigError(
                f"{where}: key 'modes': unknown mode {mode!r}; choose from "
                f"{', '.join(quantmodes.MODES)}"
            )
    for w in t["widths"]:
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ConfigError(f"{where}: key 'widths': {w!r} is not a number")
        for fam in t["families"]:
            try:
                models.family(fam).check_width(float(w))
            except UsageError as exc:
                raise ConfigError(f"{where}: key 'widths': {exc.message}") from None
    for n in t["threads"]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}: key 'threads': {n!r} is not a whole number >= 1")
    cands = tuple(
        Candidate(fam, float(w), mode, int(n))
        for fam in t["families"]
        for w in t["widths"]
        for mode in t["modes"]
        for n in t["threads"]
    )
    return Grid(cands, t["epochs"], t["limit"] or None, t["seed"], t["db"])


# --------------------------------------------------------------------------- results


@dataclass
class Outcome:
    """One candidate's measurement (or why there is none)."""

    key: str
    label: str
    recipe: dict[str, Any]
    status: str  # pass | fail | suspect | error
    artifact: str = ""
    sha256: str = ""
    bytes: int | None = None
    accuracy: float | None = None
    latency_ms: float | None = None
    latency_metric: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    result_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c.get("passed") is False]


def pareto_front(points: list[Outcome], x: str, y: str = "accuracy") -> list[str]:
    """Keys of the outcomes no other beats (lower `x`, higher `y`)."""

    have = [p for p in points if getattr(p, x) is not None and getattr(p, y) is not None]
    rows = [{x: getattr(p, x), y: getattr(p, y)} for p in have]
    return [have[i].key for i in front(rows, x, y)]


def best(outcomes: list[Outcome], objective: str) -> Outcome | None:
    # a suspect candidate met its budget; only its latency's trust is in doubt (it says so)
    passing = [o for o in outcomes if o.status in ("pass", "suspect")]
    if not passing:
        return None
    if objective == "size":
        return min(passing, key=lambda o: (o.bytes or float("inf"), -(o.accuracy or 0)))
    if objective == "latency":
        return min(passing, key=lambda o: (o.latency_ms or float("inf"), o.bytes or 0))
    return max(passing, key=lambda o: (o.accuracy or 0, -(o.bytes or 0)))


def nearest_miss(outcomes: list[Outcome]) -> tuple[Outcome, str] | None:
    """The failing candidate closest to the budget and the limit that blocked it."""
    measured = [o for o in outcomes if o.status == "fail" and o.failed_checks()]
    if not measured:
        return None

    def shortfall(c: dict[str, Any]) -> float:
        m, lim = c.get("measured"), c.get("limit")
        if m is None or not lim:
            return 1.0
        return abs(m - lim) / abs(lim)

    def badness(o: Outcome) -> tuple[int, float]:
        fails = o.failed_checks()
        return len(fails), sum(shortfall(c) for c in fails)

    o = min(measured, key=badness)
    return o, "; ".join(c.get("message", c["name"]) for c in o.failed_checks())


@dataclass
class SweepResult:
    target: str
    run_id: str
    objective: str
    outcomes: list[Outcome]
    out_dir: Path
    db: str
    budget: dict[str, Any]

    @property
    def best(self) -> Outcome | None:
        return best(self.outcomes, self.objective)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.best is not None else EXIT_FAILED

    def conclusion(self) -> str:
        b = self.best
        if b is not None:
            return (
                f"best under the budget ({self.objective}): {b.label} — "
                f"{(b.bytes or 0) / 1024:.2f} KB, accuracy "
                + (f"{b.accuracy:.2%}" if b.accuracy is not None else "n/a")
                + (f", {b.latency_metric} {b.latency_ms:.3f} ms" if b.latency_ms else "")
            )
        miss = nearest_miss(self.outcomes)
        if miss is None:
            return "no candidate passes the budget (none could be measured)"
        o, why = miss
        return f"no candidate passes the budget; the nearest, {o.label}, is blocked by: {why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "target": self.target,
            "run_id": self.run_id,
            "db": self.db,
            "objective": self.objective,
            "budget": self.budget,
            "candidates": [o.to_dict() for o in self.outcomes],
            "best": self.best.key if self.best else None,
            "pareto": {
                "size_vs_accuracy": pareto_front(self.outcomes, "bytes"),
                "latency_vs_accuracy": pareto_front(self.outcomes, "latency_ms"),
            },
            "conclusion": self.conclusion(),
        }


def to_markdown(res: SweepResult) -> str:
    d = res.to_dict()
    fronts = set(d["pareto"]["size_vs_accuracy"]) | set(d["pareto"]["latency_vs_accuracy"])
    lines = [
        f"## edgeq sweep on {res.target} — run `{res.run_id}`",
        "",
        res.conclusion(),
        "",
        "| candidate | status | size KB | accuracy | latency ms | Pareto | blocked by |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for o in sorted(res.outcomes, key=lambda o: o.bytes or 0):
        acc = f"{o.accuracy:.2%}" if o.accuracy is not None else "–"
        lat = f"{o.latency_ms:.3f}" if o.latency_ms is not None else "–"
        size = f"{o.bytes / 1024:.2f}" if o.bytes else "–"
        why = o.error or "; ".join(c.get("message", c["name"]) for c in o.failed_checks())
        mark = "yes" if o.key in fronts else ""
        star = " **best**" if d["best"] == o.key else ""
        lines.append(
            f"| {o.label}{star} | {o.status} | {size} | {acc} | {lat} | {mark} | "
            f"{why.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running


def _record(history, run_id: str, tcfg: TargetConfig, art, res, c: Candidate, started: str):
    """One candidate as a lab result (budget and regression checks), in one transaction."""

    target = make_target(tcfg)
    base = ResultRecord(
        run_id=run_id,
        device=tcfg.name,
        transport=tcfg.transport,
        address=target.describe(),
        identity=target.identity(),
        model=c.label,
        status="",
        artifact_path=str(art),
        artifact_sha256=res.artifact["sha256"],
        mode=c.mode,
        started_utc=started,
    )
    return judge_and_record(history, with_deploy(base, res), regress.Policy())


def _record_error(history, run_id: str, tcfg: TargetConfig, c: Candidate, exc, started: str):

    rec = ResultRecord(
        run_id=run_id,
        device=tcfg.name,
        transport=tcfg.transport,
        address="",
        identity="",
        model=c.label,
        status="error",
        reason=describe(exc),
        mode=c.mode,
        started_utc=started,
        error=exc,
        checks=[{"name": "run", "kind": "run", "passed": False, "message": describe(exc)}],
    )
    return judge_and_record(history, rec, regress.Policy())


def run_sweep(
    tcfg: TargetConfig,
    grid: Grid,
    model_cfg: dict[str, Any],
    budget: Budget,
    settings: RunSettings,
    out_dir: Path,
    db: Path,
    data_path: Path | None = None,
    objective: str = "size",
    progress: Progress | None = None,
    on_candidate: Callable[[int, int, str], None] | None = None,
    train_progress: Any = None,
    command: str = "",
) -> SweepResult:
    """Train, convert, deploy and judge every candidate; resumable from `out_dir`."""

    if objective not in OBJECTIVES:
        raise UsageError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    out_dir = fsutil.ensure_writable_dir(out_dir)
    state_path = out_dir / "sweep.json"
    done: dict[str, Outcome] = {}
    run_id = None
    if state_path.is_file():
        try:
            old = json.loads(state_path.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("schema") == SCHEMA and old.get("target") == tcfg.name:
            run_id = old.get("run_id")
            for d in old.get("candidates") or []:
                o = Outcome.from_dict(d)
                want = grid.recipe(_cand(o.key, grid), model_cfg) if _cand(o.key, grid) else None
                if want == o.recipe and o.status != "error":
                    done[o.key] = o
    history = History(db)
    try:
        resumed = run_id is not None and history.run(run_id) is not None
        if not resumed:
            run_id = new_run_id()
            history.start_run(
                run_id,
                utc_now(),
                "sweep",
                "",
                command,
                {
                    "kind": "sweep",
                    "target": tcfg.name,
                    "grid": [c.key for c in grid.candidates],
                    "objective": objective,
                    "budget": budget.to_dict(),
                },
                provenance(),
            )
        elif done:
            say(progress, f"resuming sweep {run_id}: {len(done)} candidate(s) already measured")
        outcomes: list[Outcome] = []
        total = len(grid.candidates)
        for i, c in enumerate(grid.candidates):
            if on_candidate:
                on_candidate(i, total, c.label)
            if c.key in done:
                outcomes.append(done[c.key])
                continue
            recipe = grid.recipe(c, model_cfg)
            started = utc_now()
            try:
                art = prepare_mod.prepare_artifact(recipe, data_path, progress, train_progress)
                res = deploy_mod.deploy(
                    tcfg,
                    art,
                    recipe["dataset"],
                    data_path,
                    budget,
                    settings.with_(threads=c.threads),
                    results_dir=None,
                    progress=progress,
                )
                rec = _record(history, run_id, tcfg, art, res, c, started)
                lat_key = f"latency_{budget.latency_percentile}"
                outcomes.append(
                    Outcome(
                        key=c.key,
                        label=c.label,
                        recipe=recipe,
                        status=rec.status,
                        artifact=str(art),
                        sha256=res.artifact["sha256"],
                        bytes=res.artifact["bytes"],
                        accuracy=(res.run.get("accuracy") or {}).get("top1"),
                        latency_ms=rec.metrics.get(lat_key, rec.metrics.get("latency_mean")),
                        latency_metric=lat_key,
                        checks=rec.checks,
                        result_id=rec.result_id,
                    )
                )
            except EdgeqError as exc:
                if isinstance(exc, UsageError) and not isinstance(exc, ConfigError):
                    raise  # bad input is the same for every candidate: stop at once
                _record_error(history, run_id, tcfg, c, exc, started)
                outcomes.append(Outcome(c.key, c.label, recipe, "error", error=exc.message))
            result = SweepResult(
                tcfg.name, run_id, objective, outcomes, out_dir, str(db), budget.to_dict()
            )
            fsutil.write_json(state_path, result.to_dict())  # resumable after every candidate
        if on_candidate:
            on_candidate(total, total, "")
        result = SweepResult(
            tcfg.name, run_id, objective, outcomes, out_dir, str(db), budget.to_dict()
        )
        history.finish_run(
            run_id, "pass" if result.exit_code == EXIT_OK else "fail", result.exit_code
        )
        _write_outputs(result, history, budget)
        return result
    finally:
        history.close()


def _cand(key: str, grid: Grid) -> Candidate | None:
    return next((c for c in grid.candidates if c.key == key), None)


def _write_outputs(result: SweepResult, history, budget: Budget) -> None:

    fsutil.write_json(result.out_dir / "sweep.json", result.to_dict())
    fsutil.write_text(result.out_dir / "sweep.md", to_markdown(result))
    sweep = document.sweep_of(history, result.run_id)
    if sweep is None:
        return
    limits = {
        "model_bytes": budget.max_model_kb * 1024,
        "latency": budget.max_latency_ms,
        "accuracy": budget.min_accuracy,
    }
    png = plots.pareto_png(sweep, limits)
    if png:
        fsutil.write_bytes(result.out_dir / "pareto.png", png)
