"""Regression detection on a seeded history: a 20 % latency regression is flagged with the
right "failing since", stays flagged, and its recovery is reported; ± 3 % noise never is.
Accuracy and size are compared tightly. Seeded rows go through the same code the lab
uses to judge and record a measured result."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from edgeq.lab import regress, report
from edgeq.lab.history import History
from edgeq.lab.inventory import REGRESSION_FIELDS
from edgeq.lab.records import ResultRecord
from edgeq.lab.scheduler import judge_and_record

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`

BASE_MS = 2.0


def night(h, day, p90, *, device="pi4", model="model_int8.tflite", accuracy=0.95, size=42_000):
    """One nightly result (run `run-DD` at 02:00 on 2025-03-DD), judged and recorded."""
    run_id, started = f"run-{day:02d}", f"2025-03-{day:02d}T02:00:00Z"
    if h.run(run_id) is None:
        h.start_run(run_id, started)
    rec = ResultRecord(
        run_id=run_id,
        device=device,
        transport="ssh",
        address="pi@pi4.lan:22",
        identity="ssh://pi@pi4.lan:22",
        model=model,
        status="pass",
        started_utc=started,
        finished_utc=started,
        metrics={
            "latency_p50": p90 * 0.8,
            "latency_p90": p90,
            "peak_rss_kb": 30_000.0,
            "accuracy": accuracy,
            "model_bytes": float(size),
        },
        checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
    )
    return judge_and_record(h, rec, regress.Policy())


def noisy(rng, scale=1.0):
    return BASE_MS * scale * (1 + rng.uniform(-0.03, 0.03))


def regressions(rec):
    return [c for c in rec.checks if c["kind"] == "regression" and c["passed"] is False]


def test_defaults_match_the_inventory_table():
    table = {k: f.default for k, f in REGRESSION_FIELDS.items()}
    assert regress.Policy.from_dict(table) == regress.Policy()


def test_twenty_percent_regression_is_flagged_since_its_first_night(tmp_path):
    rng = random.Random(7)
    with History(tmp_path / "h.sqlite") as h:
        for day in range(1, 11):
            rec = night(h, day, noisy(rng))
            assert rec.status == "pass", rec.reason
        judged = [c for c in rec.checks if c["name"] == "regression:latency_p90"]
        assert judged[0]["passed"] is True  # judged, within the band

        first = night(h, 11, noisy(rng, 1.20))
        assert first.status == "fail"
        assert {c["name"] for c in regressions(first)} == {
            "regression:latency_p50",  # p50 moved with p90 (0.8 · p90 here)
            "regression:latency_p90",
        }
        (f,) = [x for x in first.findings if x.check == "regression:latency_p90"]
        assert f.kind == "regression"
        assert "failing since 2025-03-11 (last pass run-10)" in f.message
        assert "latency_p90 regressed" in f.message

        again = night(h, 12, noisy(rng, 1.20))
        (f,) = [x for x in again.findings if x.check == "regression:latency_p90"]
        assert "failing since 2025-03-11 (last pass run-10)" in f.message
        assert f.since_run_id == "run-11" and f.last_pass_run_id == "run-10"

        back = night(h, 13, noisy(rng))
        assert back.status == "pass"
        recovered = {x.check: x for x in back.findings if x.kind == "recovery"}
        assert "regression:latency_p90" in recovered and "result" in recovered
        assert recovered["regression:latency_p90"].since_utc.startswith("2025-03-11")
        assert "had been failing since 2025-03-11" in recovered["result"].message

        # The reports say the same, from the history alone.
        doc = report.build(h, "run-12")
        md = report.to_markdown(doc)
        assert "failing since 2025-03-11 (last pass run-10)" in md
        suites = ET.fromstring(report.to_junit(doc).encode())
        case = next(c for c in suites.iter("testcase") if c.get("name") == "regression:latency_p90")
        failure = case.find("failure")
        assert failure is not None and failure.get("type") == "regression"
        assert "failing since 2025-03-11 (last pass run-10)" in failure.text
        recovery_md = report.to_markdown(report.build(h, "run-13"))
        assert "### Recovered" in recovery_md


@pytest.mark.parametrize("seed", range(8))
def test_three_percent_noise_is_never_flagged(tmp_path, seed):
    rng = random.Random(seed)
    with History(tmp_path / "h.sqlite") as h:
        judged = 0
        for day in range(1, 29):
            rec = night(h, day, noisy(rng))
            assert rec.status == "pass", (day, rec.reason)
            judged += sum(c["passed"] is True for c in rec.checks if c["kind"] == "regression")
        assert judged > 25 * 3  # the metrics really were judged, night after night


def test_accuracy_and_size_are_compared_tightly(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        for day in range(1, 6):
            assert night(h, day, BASE_MS).status == "pass"
        small_drop = night(h, 6, BASE_MS, accuracy=0.95 - 0.0005)  # 0.05 pp: tolerated
        assert small_drop.status == "pass"
        drop = night(h, 7, BASE_MS, accuracy=0.95 - 0.002)  # 0.2 pp
        assert [c["name"] for c in regressions(drop)] == ["regression:accuracy"]
        grown = night(h, 8, BASE_MS, size=42_001)  # one byte
        assert [c["name"] for c in regressions(grown)] == ["regression:model_bytes"]
        # A tight metric is judged from the first passing run; a noisy one needs three.
        other = night(h, 9, BASE_MS, device="pi5", size=50_000)
        sizes = {c["name"]: c["passed"] for c in other.checks}
        assert sizes["regression:model_bytes"] is None  # no history at all yet
        other = night(h, 10, BASE_MS * 1.5, device="pi5", size=50_000)
        sizes = {c["name"]: c["passed"] for c in other.checks}
        assert sizes["regression:model_bytes"] is True and sizes["regression:latency_p90"] is None


def test_band_is_the_wider_of_mad_and_the_floor():
    policy = regress.Policy()
    quiet = [1.0] * 10  # MAD 0: the 7 % floor decides
    assert regress.judge_metric("latency_p90", 1.069, quiet, policy)["passed"] is True
    assert regress.judge_metric("latency_p90", 1.071, quiet, policy)["passed"] is False
    noisy_hist = [0.8, 0.9, 1.0, 1.1, 1.2, 0.85, 0.95, 1.05, 1.15, 1.0]  # MAD 0.1
    c = regress.judge_metric("latency_p90", 1.40, noisy_hist, policy)
    assert c["passed"] is True and c["limit"] == pytest.approx(1.0 + 3 * 1.4826 * 0.1)
    assert regress.judge_metric("latency_p90", 1.50, noisy_hist, policy)["passed"] is False
    few = regress.judge_metric("latency_p90", 9.0, [1.0, 1.0], policy)
    assert few["passed"] is None and "2 of 3" in few["message"]
