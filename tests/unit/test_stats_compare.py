"""The statistics behind trustworthy latency: bootstrap intervals that cover the truth about
as often as they claim, a difference test that finds a real 7 % slowdown and not noise, and
`edgeq compare` on result files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq import stats
from edgeq.compare import compare


def _latencies(rng, n, median=1.0, spread=0.05):
    """Skewed, positive latencies with the given median (lognormal)."""
    return median * np.exp(rng.normal(0.0, spread, size=n))


def test_interval_of_the_median_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 200
    for t in range(trials):
        ci = stats.ci_of_median(_latencies(rng, 41), resamples=2000, seed=t)
        hits += ci.ci_low <= 1.0 <= ci.ci_high
    assert 0.88 <= hits / trials <= 0.995, hits / trials


def test_interval_is_reproducible_and_reports_its_width():
    x = _latencies(np.random.default_rng(2), 5)
    a, b = stats.ci_of_median(x), stats.ci_of_median(x)
    assert a == b and a.ci_low <= a.estimate <= a.ci_high and a.n == 5
    assert a.width_rel == pytest.approx((a.ci_high - a.ci_low) / 2 / a.estimate)


def test_a_seven_percent_slowdown_is_significant_and_noise_is_not():
    rng = np.random.default_rng(3)
    base = _latencies(rng, 300)
    slower = _latencies(rng, 300, median=1.07)
    d = stats.median_difference(base, slower, resamples=3000)
    assert d.significant and 0.04 < d.relative < 0.10 and d.p_value < 0.05
    false_alarms = sum(
        stats.median_difference(
            _latencies(rng, 300), _latencies(rng, 300), resamples=1000, seed=i
        ).significant
        for i in range(40)
    )
    assert false_alarms <= 6  # ~5 % expected at the 95 % level


def _result(tmp_path, name, samples, accuracy=0.98, size=40_000):
    a = np.asarray(samples)
    doc = {
        "schema": "edgeq.deploy/1",
        "target": {"name": "pi"},
        "artifact": {"path": f"/m/{name}.tflite", "sha256": "ab" * 32},
        "run": {
            "runner": {"name": "edgeq_runner"},
            "model": {"bytes": size, "sha256": "ab" * 32},
            "latency_ms": {
                "invoke": {
                    "count": len(a),
                    "p50": float(np.median(a)),
                    "p90": float(np.quantile(a, 0.9)),
                }
            },
            "latency_samples_ms": {"invoke": [float(v) for v in a]},
            "accuracy": {"top1": accuracy},
        },
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_compare_two_result_files(tmp_path, cli):
    rng = np.random.default_rng(4)
    a = _result(tmp_path, "a", _latencies(rng, 400))
    b = _result(tmp_path, "b", _latencies(rng, 400, median=1.071), accuracy=0.975)
    res = compare(str(a), str(b), max_slowdown_pct=5)
    (pair,) = res.pairs
    # one run per side: the samples differ within those two processes, but that is no
    # significance claim about the setups (process-to-process variation is not covered)
    assert pair.changes["p50"].test is None and pair.changes["p50"].within_run.significant
    assert pair.conclusion().startswith("B is ") and "slower at p50 (not tested: one run" in (
        pair.conclusion()
    )
    assert "significant at" not in pair.conclusion()
    assert res.exit_code == 1  # above --max-slowdown 5 (untested changes are judged as such)
    assert compare(str(a), str(b), max_slowdown_pct=10).exit_code == 0

    out = cli("compare", a, b, "--max-slowdown", "5", "--json")
    assert out.exit_code == 1
    doc = json.loads(out.stdout)
    assert doc["pairs"][0]["changes"]["accuracy"]["a"] == 0.98
    assert doc["pairs"][0]["changes"]["p90"]["within_run"]["quantile"] == 0.9
    human = cli("compare", a, b)
    assert human.exit_code == 0 and "variation is not covered" in human.stdout


def test_the_same_samples_are_no_significant_change(tmp_path):
    x = _latencies(np.random.default_rng(5), 400)
    a = _result(tmp_path, "a", x)
    b = _result(tmp_path, "b", np.random.default_rng(6).permutation(x))
    (pair,) = compare(str(a), str(b)).pairs
    assert not pair.changes["p50"].within_run.significant
    assert "significant at" not in pair.conclusion()


def test_without_samples_the_change_is_reported_untested(tmp_path):
    a = _result(tmp_path, "a", [1.0, 1.1, 1.2])
    b = _result(tmp_path, "b", [1.2, 1.3, 1.4])
    text = compare(str(a), str(b)).conclusion()
    assert "slower at p50 (not tested:" in text


def test_bad_inputs_are_usage_errors(tmp_path):
    from edgeq.errors import UsageError

    with pytest.raises(UsageError, match="neither a result file"):
        compare("no-such-run", "other")
    junk = tmp_path / "x.json"
    junk.write_text("{}")
    with pytest.raises(UsageError, match="not an edgeq deploy result"):
        compare(str(junk), str(junk))
