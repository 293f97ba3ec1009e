"""A budget percentile the runner does not report: judged at the nearest higher one it
reports (said in the check), or refused before anything is pushed."""

from __future__ import annotations

import pytest

from edgeq.budget import Budget, check_judgeable, judge, substitute
from edgeq.errors import UsageError
from edgeq.runners import RUNNERS

NATIVE = RUNNERS["benchmark_model"].latency_reports["invoke"]


@pytest.mark.parametrize(
    ("wanted", "reported", "at"),
    [
        ("p90", NATIVE, "p95"),
        ("p95", NATIVE, "p95"),
        ("p99", NATIVE, "max"),
        ("p50", NATIVE, "p50"),
        ("mean", ("min", "max"), "max"),  # the mean can exceed any percentile, not the max
        ("mean", ("p95", "p99"), None),
        ("p90", ("min", "p50"), None),
        ("p99", (), None),
    ],
)
def test_substitute_is_the_nearest_higher_reported_figure(wanted, reported, at):
    assert substitute(wanted, reported) == at


def _run(**stats):
    return {
        "model": {"bytes": 1024},
        "runner": {"name": "benchmark_model"},
        "environment": {"machine": "x86_64"},
        "latency_ms": {"invoke": {"count": 100, **stats}},
    }


def test_judged_at_p95_with_the_p95_figure_and_said_so():
    run = _run(min=0.1, p5=0.11, p50=0.12, p95=0.8, max=3.0, mean=0.2)
    check = next(c for c in judge(Budget(), run).checks if c.metric == "latency_p90")
    assert (check.measured, check.judged_at, check.passed) == (0.8, "p95", True)
    assert check.source == "benchmark_model at p95"
    assert check.to_dict()["judged_at"] == "p95"
    tight = judge(Budget(max_latency_ms=0.5), run).checks
    assert next(c for c in tight if c.metric == "latency_p90").passed is False


def test_a_reported_percentile_is_judged_as_itself():
    run = _run(p50=0.12, p90=0.3, p95=0.8)
    check = next(c for c in judge(Budget(), run).checks if c.metric == "latency_p90")
    assert (check.measured, check.judged_at, check.source) == (0.3, "p90", "benchmark_model")
    assert "judged at" not in check.note


def test_repetitions_judge_the_interval_of_the_substitute():
    run = _run(p50=0.12, p95=0.8)
    run["repeat"] = {"n": 3, "p95": {"median": 0.7, "ci_low": 0.6, "ci_high": 0.9}}
    check = next(c for c in judge(Budget(), run).checks if c.metric == "latency_p90")
    assert (check.measured, check.judged_at) == (0.9, "p95")
    assert "95 % interval over 3 repetitions" in check.note


def test_no_conservative_substitute_is_refused_as_a_usage_error():
    native = RUNNERS["benchmark_model"].latency_reports
    check_judgeable(Budget(latency_percentile="p99"), "benchmark_model", native["invoke"], "t")
    with pytest.raises(UsageError) as err:
        check_judgeable(
            Budget(latency_kind="end_to_end"), "benchmark_model", native["end_to_end"], "phone"
        )
    assert err.value.exit_code == 2
    assert "phone: the benchmark_model runner cannot report p90 of the end_to_end" in str(err.value)


def test_bench_runner_names():
    from edgeq.sidebyside import parse_runners

    assert parse_runners("both") == ("python", "benchmark_model")
    assert parse_runners("benchmark_model, python") == ("benchmark_model", "python")
    assert parse_runners("python") == ("python",)
    for bad in ("python,python", "auto", "python,benchmark_model,python", "", "benchmodel"):
        with pytest.raises(UsageError):
            parse_runners(bad)
