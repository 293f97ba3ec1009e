"""The budget: the book's limits (model ≤ 50 KB, ≤ 1 ms at p90, an accuracy floor, a max
drop vs float32) checked against a run. Each check names its metric, the measured figure,
the limit and where the figure came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .fields import Field, percent, read_toml, validate_section
from .fields import f as _f
from .results import Check, Verdict

EMULATED_NOTE = "not representative on an emulated device"

#: The keys of `[budget]` (edgeq.toml, a budget file, lab.toml and its device overrides).
BUDGET_FIELDS: dict[str, Field] = {
    "max_model_kb": _f(
        (int, float), 50.0, "largest model file allowed, in KB (1024 bytes)", minimum=0
    ),
    "max_latency_ms": _f(
        (int, float), 1.0, "slowest steady-state latency allowed, in ms", minimum=0
    ),
    "latency_percentile": _f(
        str,
        "p90",
        "which latency figure is judged",
        False,
        ("min", "p50", "p90", "p95", "p99", "max", "mean"),
    ),
    "latency_kind": _f(
        str, "invoke", "invoke() alone, or the end_to_end call", False, ("invoke", "end_to_end")
    ),
    "min_accuracy": _f(
        (int, float),
        0.98,
        "accuracy floor on the evaluation data, a fraction: 0.98 = 98 %",
        minimum=0,
        maximum=1,
        parse=percent,
        hint='for a percent, write it as one: "98%"',
    ),
    "max_accuracy_drop_pp": _f(
        (int, float),
        0.5,
        "largest drop vs the float32 model on the host, in percentage points",
        minimum=0,
        maximum=100,
    ),
    "require_accuracy": _f(
        bool, False, "fail the verdict when accuracy could not be measured (e.g. --no-data)"
    ),
    "min_output_agreement": _f(
        (int, float),
        None,
        "lowest output agreement with the host reference: top-1 agreement for a classifier, "
        "else cosine similarity (0..1)",
        minimum=0,
        maximum=1,
    ),
}


def load_budget_file(path: Path) -> dict[str, Any]:
    """A budget TOML: either a [budget] table or the keys at top level."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"budget file not found: {p}")
    raw = read_toml(p)
    section = raw.get("budget", raw)
    return validate_section(f"{p} [budget]", section, BUDGET_FIELDS)


@dataclass(frozen=True)
class Budget:
    max_model_kb: float = 50.0
    max_latency_ms: float = 1.0
    latency_percentile: str = "p90"
    latency_kind: str = "invoke"
    min_accuracy: float = 0.98
    max_accuracy_drop_pp: float = 0.5
    require_accuracy: bool = False
    min_output_agreement: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Budget:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @classmethod
    def load(cls, path: Path | None, defaults: dict[str, Any] | None = None) -> Budget:
        """From a budget file, else the [budget] of edgeq.toml (`defaults`), else the book's."""
        if path is not None:
            return cls.from_dict(load_budget_file(path))
        return cls.from_dict(defaults or {})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def sweep_settings(sweep: dict[str, Any]) -> str:
    return ",".join(str(r["threads"]) for r in sweep.get("settings") or [])


#: The latency figures in increasing order: each bounds the ones before it from above.
ORDERED = ("min", "p5", "p50", "p90", "p95", "p99", "max")


def substitute(wanted: str, reported: Iterable[str]) -> str | None:
    """The figure to judge for `wanted` among those a runner `reported`: `wanted` itself,
    else the nearest higher percentile (a pass there is a pass at `wanted`), else for
    `mean` the max. None when no figure bounds `wanted` from above."""
    have = set(reported)
    if wanted in have:
        return wanted
    if wanted == "mean":
        return "max" if "max" in have else None
    if wanted not in ORDERED:
        return None
    return next((k for k in ORDERED[ORDERED.index(wanted) + 1 :] if k in have), None)


def check_judgeable(budget: Budget, runner: str, reported: Iterable[str], where: str) -> None:
    """UsageError (exit 2) when the runner reports no figure the budget's latency
    percentile can be judged at — before anything is pushed to the device."""
    reported = tuple(reported)
    if substitute(budget.latency_percentile, reported) is not None:
        return
    what = f"{budget.latency_percentile} of the {budget.latency_kind} latency"
    has = ", ".join(reported) or "no figure"
    raise UsageError(
        f"{where}: the {runner} runner cannot report {what}, nor a higher percentile to judge "
        f"it at ({budget.latency_kind}: {has}); set latency_percentile/latency_kind in the "
        f"budget to one it reports, or use another runner"
    )


def judged_latency(run: dict[str, Any], budget: Budget) -> tuple[float | None, str, str | None]:
    """The latency figure the budget judges, where it comes from and which statistic it is
    (`judged_at`: the budget's percentile, or the nearest higher one the runner reported).
    With 3 or more repetitions the upper end of the 95 % interval of that statistic (a
    pass must be a pass with confidence), else the single run's figure."""
    rep = run.get("repeat") or {}
    stats = (run.get("latency_ms") or {}).get(budget.latency_kind) or {}
    reported = [k for k in (*ORDERED, "mean") if stats.get(k) is not None]
    at = substitute(budget.latency_percentile, reported)
    if at is None:
        return None, "", None
    if budget.latency_kind == "invoke" and rep.get("n", 0) >= 3 and rep.get(at):
        block = rep[at]
        return (
            block["ci_high"],
            (
                f"upper end of the 95 % interval over {rep['n']} repetitions "
                f"(median {block['median']:.4g} ms)"
            ),
            at,
        )
    return stats.get(at), "", at


def judge(
    budget: Budget,
    run: dict[str, Any],
    reference_top1: float | None = None,
    reference_source: str = "host",
    accept_invalid: bool = False,
) -> Verdict:
    """Check a validated run document against the budget. Latency from a run whose
    validity is `invalid` is not judged (unless `accept_invalid`)."""
    checks: list[Check] = []
    size_kb = run["model"]["bytes"] / 1024
    checks.append(
        Check(
            "model_size",
            size_kb,
            budget.max_model_kb,
            "<=",
            size_kb <= budget.max_model_kb,
            "KB",
            "artifact",
        )
    )

    value, how, at = judged_latency(run, budget)
    emulated = bool(run.get("environment", {}).get("emulated"))
    metric = f"latency_{budget.latency_percentile}"
    runner = run.get("runner", {}).get("name", "device")
    sweep = run.get("threads_sweep")
    if sweep:
        how = "; ".join(
            x for x in (how, f"best of threads {sweep_settings(sweep)}: {sweep['best']}") if x
        )
    validity = run.get("validity") or {}
    if at is not None and at != budget.latency_percentile:
        runner = f"{runner} at {at}"
        how = "; ".join(
            x
            for x in (
                f"judged at {at}: {run.get('runner', {}).get('name', 'the runner')} does not "
                f"report {budget.latency_percentile}, and {at} bounds it from above",
                how,
            )
            if x
        )
    if value is None:
        checks.append(
            Check(
                metric,
                None,
                budget.max_latency_ms,
                "<=",
                False,
                "ms",
                runner,
                f"{runner} does not report {budget.latency_percentile} "
                f"({budget.latency_kind}), nor a higher figure to judge it at; choose "
                f"another latency_percentile",
            )
        )
    elif emulated:
        checks.append(
            Check(
                metric,
                value,
                budget.max_latency_ms,
                "<=",
                None,
                "ms",
                runner,
                "; ".join(x for x in (EMULATED_NOTE, how) if x),
                at,
            )
        )
    elif validity.get("verdict") == "invalid" and not accept_invalid:
        why = "; ".join(validity.get("reasons") or ["the run is invalid"])
        note = f"not judged: {why} (--accept-invalid judges it anyway)"
        checks.append(
            Check(metric, value, budget.max_latency_ms, "<=", None, "ms", runner, note, at)
        )
    else:
        note = how
        if validity.get("verdict") == "invalid":
            note = "; ".join(x for x in (how, "judged although invalid (--accept-invalid)") if x)
        ok = value <= budget.max_latency_ms
        checks.append(Check(metric, value, budget.max_latency_ms, "<=", ok, "ms", runner, note, at))

    acc = run.get("accuracy")
    if acc is None:
        note = run.get("accuracy_note") or "not measured: no evaluation data was run"
        required = budget.require_accuracy
        checks.append(
            Check(
                "accuracy",
                None,
                budget.min_accuracy,
                ">=",
                False if required else None,
                "",
                "",
                f"{note}; the budget requires accuracy (require_accuracy = true)"
                if required
                else note,
            )
        )
    else:
        src = acc.get("source", "device")
        checks.append(
            Check(
                "accuracy",
                acc["top1"],
                budget.min_accuracy,
                ">=",
                acc["top1"] >= budget.min_accuracy,
                "",
                src,
            )
        )
        if reference_top1 is None:
            checks.append(
                Check(
                    "accuracy_drop",
                    None,
                    budget.max_accuracy_drop_pp,
                    "<=",
                    None,
                    "pp",
                    "",
                    "no float32 reference artifact to compare with",
                )
            )
        else:
            drop = (reference_top1 - acc["top1"]) * 100
            checks.append(
                Check(
                    "accuracy_drop",
                    drop,
                    budget.max_accuracy_drop_pp,
                    "<=",
                    drop <= budget.max_accuracy_drop_pp,
                    "pp",
                    f"{src} vs float32 on {reference_source}",
                )
            )
    checks += _agreement_checks(budget, run)
    return Verdict(tuple(checks))


def _agreement_checks(budget: Budget, run: dict[str, Any]) -> list[Check]:
    """Output agreement with the host reference: judged by `min_output_agreement` (top-1
    agreement for a classifier, else the lowest cosine similarity)."""
    section = run.get("agreement") or {}
    report = section.get("report") if isinstance(section, dict) else None
    limit = budget.min_output_agreement
    if report is None:
        if limit is None or not section:
            return []
        why = section.get("note") or section.get("error") or "not measured"
        return [Check("output_agreement", None, limit, ">=", None, "", "", why)]
    ref = report["reference"]
    source = f"device vs {ref['kind']} on the host ({report['samples']} inputs)"
    note = report["score_kind"]
    # cosine is a similarity (a number), top-1 agreement a share (shown as a percentage)
    unit = "" if note.startswith("top-1") else "cosine"
    if report.get("informative") is False:
        why = report.get("not_informative") or "not informative"
        return [Check("output_agreement", None, limit, ">=", None, unit, source,
                      f"{why}; never a pass")]  # fmt: skip
    if limit is None:
        return [Check("output_agreement", report["score"], None, ">=", None, unit, source,
                      f"{note}; not judged: no min_output_agreement in the budget")]  # fmt: skip
    ok = report["score"] >= limit
    return [Check("output_agreement", report["score"], limit, ">=", ok, unit, source, note)]
