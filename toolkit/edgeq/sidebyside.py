"""`edgeq bench --runner python,benchmark_model`: one model on one device, measured by two
runners one after the other.

Each round measures the model once with each runner (a fresh process each time), the
order alternating from round to round so that a drift of the machine's load falls on both
alike. The per-round p50s of the two runners are then compared as `edgeq compare` compares
repetitions (a bootstrap of the difference of their medians), and their ratio is the
median of the per-round ratios. Accuracy is measured in the first round only.

Memory is shown side by side but never as one figure: the Python runner reports resident
sets of its own process (`peak_rss_kb`, `model_footprint_kb`), benchmark_model the growth
of its process's footprint from the tool's start; each keeps its own definition.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import deploy as deploy_mod
from .compare import Side, compare_sides
from .errors import UsageError
from .fields import TargetConfig
from .results import DeployResult
from .runners import RUNNERS, runner_class
from .settings import RunSettings

Progress = Callable[[str], None]

#: Rounds when the settings ask for a single repetition: a test needs several per side.
DEFAULT_ROUNDS = 5
#: The latency figures shown for each runner (when it reports them).
FIGURES = ("min", "p5", "p50", "p90", "p95", "p99", "max", "mean")


def parse_runners(text: str) -> tuple[str, ...]:
    """`--runner`: one runner name, `both` (python and benchmark_model) or two names
    separated by a comma; UsageError (exit 2) for anything else."""
    names = ("python", "benchmark_model") if text.strip() == "both" else tuple(
        n.strip() for n in text.split(",") if n.strip()
    )  # fmt: skip
    if not names or len(names) > 2 or len(set(names)) != len(names):
        raise UsageError(
            f"--runner must be a runner, `both`, or two different runners separated by a "
            f"comma (of {', '.join(RUNNERS)}), got {text!r}"
        )
    for n in names:
        if n == "auto" or runner_class(n, "--runner") is None:
            raise UsageError(f"--runner: name the runner ({', '.join(RUNNERS)}), not {n!r}")
    return names


@dataclass
class SideBySide:
    """The rounds of a side-by-side measurement and their comparison."""

    target: str
    runners: tuple[str, str]
    rounds: list[dict[str, DeployResult]] = field(default_factory=list)
    orders: list[tuple[str, ...]] = field(default_factory=list)

    def results(self, runner: str) -> list[DeployResult]:
        return [r[runner] for r in self.rounds]

    def p50s(self, runner: str) -> list[float]:
        out = []
        for res in self.results(runner):
            p50 = res.run["latency_ms"]["invoke"].get("p50")
            if p50 is not None:
                out.append(float(p50))
        return out

    def figure(self, runner: str, key: str) -> float | None:
        """The median over the rounds of one latency statistic (None: not reported)."""
        values = [res.run["latency_ms"]["invoke"].get(key) for res in self.results(runner)]
        values = [float(v) for v in values if v is not None]
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        """Median over the rounds of first runner's p50 / second runner's p50."""
        a, b = self.runners
        pairs = [
            (ra.run["latency_ms"]["invoke"].get("p50"), rb.run["latency_ms"]["invoke"].get("p50"))
            for ra, rb in zip(self.results(a), self.results(b), strict=True)
        ]
        ratios = [x / y for x, y in pairs if x is not None and y]
        return statistics.median(ratios) if ratios else None

    def comparison(self) -> dict[str, Any]:
        """compare's test of the p50s: A = the second runner, B = the first."""
        a, b = self.runners

        def side(name: str) -> Side:
            first = self.results(name)[0]
            return Side(
                label=name,
                device=self.target,
                model=Path(first.artifact["path"]).name,
                key=first.artifact["sha256"],
                runner=name,
                p50=self.figure(name, "p50"),
                p90=self.figure(name, "p90"),
                accuracy=(first.run.get("accuracy") or {}).get("top1"),
                bytes=first.artifact["bytes"],
                reps={"p50": self.p50s(name), "p90": []},
            )

        pair = compare_sides(side(b), side(a))
        change = pair.changes["p50"]
        out = change.to_dict()
        if change.relative is None:
            out["conclusion"] = "p50 not comparable (missing for one runner)"
        elif change.test is None:
            out["conclusion"] = f"not tested: {change.note}"
        else:
            pct = abs(change.relative) * 100
            way = "slower" if change.relative > 0 else "faster"
            sig = change.test.significant
            out["conclusion"] = f"{a} is {pct:.1f} % {way} than {b} at p50 " + (
                f"(significant at {change.test.level:.0%})"
                if sig
                else f"(not significant, p = {change.test.p_value:.2f})"
            )
        return out

    def memory(self, runner: str) -> dict[str, Any]:
        """The runner's own memory figures from the first round, with their definitions."""
        mem = self.results(runner)[0].run.get("memory") or {}
        defs = mem.get("definitions") or {}
        figures: dict[str, Any] = {}
        if isinstance(mem.get("footprint_mb"), dict):
            figures.update({f"footprint_{k}_mb": v for k, v in mem["footprint_mb"].items()})
            defs = {f"footprint_{k}_mb": v for k, v in defs.items()}
        else:
            figures.update({k: v for k, v in mem.items() if k.endswith("_kb") and v is not None})
        return {"figures": figures, "definitions": {k: defs.get(k) for k in figures}}

    def describe(self, runner: str) -> str:
        """The runtime as its run states it (with XNNPACK when the run says)."""
        run = self.results(runner)[0].run
        env = run.get("environment") or {}
        text = f"{env.get('runtime')} {env.get('runtime_version') or ''}".strip()
        if env.get("xnnpack") is not None:
            text += f", XNNPACK {'on' if env['xnnpack'] else 'off'}"
        return text

    def to_dict(self) -> dict[str, Any]:
        a, b = self.runners
        return {
            "schema": "edgeq.sidebyside/1",
            "target": self.target,
            "runners": list(self.runners),
            "rounds": len(self.rounds),
            "orders": [list(o) for o in self.orders],
            "latency_ms": {
                name: {
                    "p50_per_round": self.p50s(name),
                    **{k: self.figure(name, k) for k in FIGURES},
                }
                for name in self.runners
            },
            "ratio_p50": {"of": f"{a} / {b}", "median_of_rounds": self.ratio()},
            "test": self.comparison(),
            "runtime": {name: self.describe(name) for name in self.runners},
            "threads": {
                name: (self.results(name)[0].run.get("environment") or {}).get("threads")
                for name in self.runners
            },
            "accuracy": {name: self.results(name)[0].run.get("accuracy") for name in self.runners},
            "memory": {name: self.memory(name) for name in self.runners},
            "results": {name: [r.to_dict() for r in self.results(name)] for name in self.runners},
        }


def side_by_side(
    target_cfg: TargetConfig,
    artifact: Path,
    runners: tuple[str, str],
    settings: RunSettings,
    progress: Progress | None = None,
    **deploy_kw: Any,
) -> SideBySide:
    """Measure `artifact` on the target with both runners, `settings.repeat` rounds (at
    least 2; DEFAULT_ROUNDS when it is 1), alternating which runner goes first."""
    rounds = DEFAULT_ROUNDS if settings.repeat == 1 else settings.repeat
    if rounds < 2:
        raise UsageError("--repeat: a side-by-side needs at least 2 rounds")
    one = settings.with_(repeat=1).validate()
    with_data = deploy_kw.pop("with_data", True)
    out = SideBySide(target_cfg.name, runners)
    for i in range(rounds):
        order = runners if i % 2 == 0 else runners[::-1]
        out.orders.append(order)
        got: dict[str, DeployResult] = {}
        for name in order:
            if progress:
                progress(f"round {i + 1} of {rounds}: {name}")
            got[name] = deploy_mod.deploy(
                target_cfg,
                artifact,
                budget=None,
                settings=one,
                results_dir=None,
                progress=progress if i == 0 else None,
                with_data=with_data and i == 0,
                runner=name,
                **deploy_kw,
            )
        out.rounds.append(got)
    return out
