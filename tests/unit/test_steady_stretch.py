"""The steadiest stretch of a run: what the lab's regression check and `compare` go by when
the host's own speed changes during runs (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.compare import compare_sides, side_from_run
from edgeq.lab import regress
from edgeq.lab.history import History
from edgeq.lab.records import ResultRecord
from edgeq.lab.scheduler import judge_and_record
from edgeq_device import edgeq_runner as runner

FAST, SLOW = 0.270, 0.315  # the two speeds of this project's host, ms (same model)


def _samples(rng, n, speeds_and_shares):
    """n invokes in time order: stretches of the host at each speed, jittered."""
    out = []
    for speed, share in speeds_and_shares:
        k = int(n * share)
        out.append(speed * (1 + np.abs(rng.normal(0, 0.004, k))))
    return np.concatenate(out)


def test_the_steadiest_stretch_is_the_window_with_the_lowest_p50():
    rng = np.random.default_rng(1)
    ms = _samples(rng, 1000, [(SLOW, 0.7), (FAST, 0.3)])  # the host was slow 70 % of the run
    whole = runner.latency_stats((ms * 1e6).astype(np.int64))
    st = runner.steady_stats((ms * 1e6).astype(np.int64))
    assert whole["p50"] > 0.31  # the whole run's p50 is the slow mode's
    assert st["steady_p50"] == pytest.approx(FAST, rel=0.01)
    assert st["steady_p90"] < SLOW and st["steady_window"] == 50
    fast_only = ms[ms < 0.29]
    assert st["steady_p90"] <= np.percentile(fast_only, 99)


def test_too_few_samples_for_two_windows_give_no_steady_figure():
    assert runner.steady_stats(np.full(99, 270_000, dtype=np.int64)) == {}
    assert set(runner.steady_stats(np.full(100, 270_000, dtype=np.int64))) == {
        "steady_p50",
        "steady_p90",
        "steady_window",
    }


def _night(h, day, p50, steady_p50, policy):
    run_id, started = f"run-{day:03d}", f"2026-05-01T{day // 60:02d}:{day % 60:02d}:00Z"
    h.start_run(run_id, started)
    rec = ResultRecord(
        run_id=run_id, device="pi", transport="ssh", address="", identity="pi",
        model="m.tflite", status="pass", started_utc=started, finished_utc=started,
        metrics={"latency_p50": p50, "latency_steady_p50": steady_p50},
        checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
    )  # fmt: skip
    return judge_and_record(h, rec, policy)


def _series(tmp_path, name, nights, steady=True):
    policy = regress.Policy(metrics=("latency_p50",), confirm=0, steady=steady)
    with History(tmp_path / f"{name}.sqlite") as h:
        return [_night(h, d, p50, s, policy) for d, (p50, s) in enumerate(nights, 1)]


def _identical_nights(rng, n):
    """Identical setups: the whole run lands in either mode; its steadiest stretch does not."""
    modes = rng.random(n) < 0.5
    p50 = np.where(modes, FAST, SLOW) * (1 + rng.normal(0, 0.003, n))
    steady = FAST * (1 + np.abs(rng.normal(0, 0.003, n)))
    return list(zip(p50.tolist(), steady.tolist(), strict=True))


def test_host_modes_are_no_regression_when_judged_on_the_steadiest_stretch(tmp_path):
    rng = np.random.default_rng(2)
    nights = _identical_nights(rng, 40)
    on = [r.status for r in _series(tmp_path, "on", nights)]
    assert on.count("fail") == 0


def test_a_real_slowdown_is_caught_on_the_steadiest_stretch_and_says_so(tmp_path):
    rng = np.random.default_rng(3)
    nights = _identical_nights(rng, 12)
    slow = [(p * 1.2, s * 1.2) for p, s in _identical_nights(rng, 4)]
    recs = _series(tmp_path, "slow", nights + slow)
    assert [r.status for r in recs[12:]] == ["fail"] * 4
    # judged on the whole run, the slow setup's fast mode hides in the host's two modes
    whole = _series(tmp_path, "whole", nights + slow, steady=False)
    assert [r.status for r in whole[12:]].count("fail") < 4
    (check,) = [c for c in recs[12].checks if c["name"] == "regression:latency_p50"]
    assert check["judged_on"] == "latency_steady_p50"
    assert "steadiest stretch; whole run" in check["message"]


def test_a_history_without_steady_figures_is_judged_on_the_whole_run(tmp_path):
    policy = regress.Policy(metrics=("latency_p50",), confirm=0)
    with History(tmp_path / "h.sqlite") as h:
        for d in range(1, 6):  # runner < 1.5: no steady figure in the history
            h.start_run(f"run-{d}", f"2026-05-0{d}T02:00:00Z")
            rec = ResultRecord(
                run_id=f"run-{d}", device="pi", transport="ssh", address="", identity="pi",
                model="m.tflite", status="pass", started_utc=f"2026-05-0{d}T02:00:00Z",
                finished_utc="", metrics={"latency_p50": 1.0 + d / 1000},
                checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
            )  # fmt: skip
            judge_and_record(h, rec, policy)
        rec = _night(h, 6, 1.5, 1.0, policy)
    (check,) = [c for c in rec.checks if c["name"] == "regression:latency_p50"]
    assert "judged_on" not in check and check["passed"] is False


def _side(label, p50s, steady_p50s):
    runs = [{"p50": p, "p90": p * 1.1, "steady_p50": s, "steady_p90": s * 1.05}
            for p, s in zip(p50s, steady_p50s, strict=True)]  # fmt: skip
    run = {
        "runner": {"name": "edgeq_runner", "version": "1.5"},
        "model": {"bytes": 1000, "sha256": "ab" * 32},
        "latency_ms": {"invoke": {"count": 500, "p50": p50s[0], "p90": p50s[0] * 1.1}},
        "repeat": {
            "n": len(runs),
            "runs": runs,
            **{k: {"median": float(np.median([r[k] for r in runs]))} for k in runs[0]},
        },
    }
    return side_from_run(label, "pi", "m", "k", run, {"run": run})


def test_compare_concludes_on_the_steadiest_stretch_when_both_sides_have_it():
    a = _side("a", [FAST, SLOW, FAST], [0.2700, 0.2702, 0.2699])
    same = _side("b", [SLOW, SLOW, FAST], [0.2701, 0.2700, 0.2703])
    res = compare_sides(a, same)
    assert res.judged == "steady_p50"
    assert res.conclusion().startswith("no significant change at p50 (each run's steadiest")
    slower = _side("b", [0.324, 0.378, 0.324], [0.3240, 0.3243, 0.3238])
    res = compare_sides(a, slower, max_slowdown_pct=10)
    assert res.conclusion().startswith("B is 20.0 % slower at p50 (each run's steadiest")
    assert res.slowdown_exceeded and res.to_dict()["judged_on"] == "steady_p50"
