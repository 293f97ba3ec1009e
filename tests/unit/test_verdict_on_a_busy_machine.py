"""A verdict that holds on a busy machine (issue 24), the parts that need no process: the
validity's dispersion and capped-loop reasons, the run-level test `compare` and the lab use,
"what changed" in `compare` and in a lab regression, and agreement on outputs that cannot
tell anything."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from edgeq import changes, measure, stats
from edgeq.agreement import AgreementReport, Reference, compare_outputs
from edgeq.budget import Budget, judge
from edgeq.compare import compare
from edgeq.devapi import TensorInfo
from edgeq.lab import regress
from edgeq.lab.history import History
from edgeq.lab.records import ResultRecord
from edgeq.lab.scheduler import judge_and_record


def _run(samples, runtime_version="2.3.0", threads=4, sha="ab" * 32, **settings):
    a = np.asarray(samples, dtype=float)
    p = np.percentile(a, [50, 90, 99])
    return {
        "runner": {"name": "edgeq_runner", "version": "1.3"},
        "model": {"bytes": 40_000, "sha256": sha},
        "environment": {"runtime": "ai-edge-litert", "runtime_version": runtime_version,
                        "os": "Debian 12", "kernel": "6.1", "threads": threads},
        "settings": {"threads": threads, "runs": 50, "min_s": 1.0, **settings},
        "phases_ms": {"steady_state": 1000.0},
        "latency_ms": {"invoke": {"count": int(a.size), "p50": float(p[0]), "p90": float(p[1]),
                                  "p99": float(p[2]), "mean": float(a.mean()),
                                  "std": float(a.std(ddof=1))}},
        "latency_samples_ms": {"invoke": [float(v) for v in a]},
    }  # fmt: skip


# --------------------------------------------------------------------------- validity


def test_a_dispersed_run_is_suspect_with_its_figures():
    rng = np.random.default_rng(0)
    calm = rng.normal(1.46, 0.02, 2000)
    disturbed = calm.copy()
    disturbed[::40] = 28.0  # 2.5 % of the samples preempted
    quiet = measure.validity([], _run(calm), 1)
    assert quiet["verdict"] == "valid" and not quiet["dispersion"]["dispersed"]
    v = measure.validity([], _run(disturbed), 1)
    assert v["verdict"] == "suspect"
    (why,) = [r for r in v["reasons"] if r.startswith("dispersed")]
    assert "p99/p50" in why and v["dispersion"]["p99_over_p50"] > measure.DISPERSED_P99_P50


def test_too_few_samples_are_not_judged_for_dispersion():
    few = _run([1.0] * 19 + [30.0])
    v = measure.validity([], few, 1)
    assert v["verdict"] == "valid" and v["dispersion"]["judged"] is False


def test_a_capped_timing_loop_says_so_and_suggests_max_samples():
    run = _run(np.linspace(1, 1.1, 500), steady_state_capped=True, max_samples=500)
    run["phases_ms"]["steady_state"] = 620.0
    v = measure.validity([], run, 1)
    assert v["verdict"] == "suspect" and v["capped"] is True
    (why,) = [r for r in v["reasons"] if "capped" in r]
    assert "500 samples after 0.62 s, below --min-s 1" in why and "--max-samples" in why


def test_contention_from_the_runners_own_reading():
    run = _run(np.linspace(1, 1.1, 500))
    run["contention"] = {"wall_s": 1.0, "cores_available": 2, "self_cores": 0.3,
                         "others_cores": 1.7, "load1_after": 9.0, "method": "/proc"}  # fmt: skip
    v = measure.validity([], run, 1)
    assert v["verdict"] == "suspect" and v["contention"]["contended"] is True
    assert any(r.startswith("contended: other processes kept 1.70 of 2") for r in v["reasons"])
    run["contention"].update(self_cores=0.99, others_cores=0.4)  # the other core, not ours
    assert measure.validity([], run, 1)["verdict"] == "valid"


# --------------------------------------------------------------------------- the test


def test_the_run_level_test_keeps_identical_bimodal_setups_apart_from_a_real_slowdown():
    """Processes land in one of two modes (0.024 / 0.029 ms): identical setups of 3 runs
    each must rarely differ at 95 %, a 20 % slowdown of every run must."""
    rng = np.random.default_rng(3)

    def runs(n, scale=1.0):
        modes = rng.choice([0.024, 0.029], size=n)
        return list(scale * modes * np.exp(rng.normal(0, 0.01, n)))

    false = sum(stats.runs_difference(runs(3), runs(3)).significant for _ in range(200))
    assert false <= 200 * 0.06, false
    caught = sum(stats.runs_difference(runs(5), runs(5, 1.2)).significant for _ in range(50))
    assert caught >= 25, caught


def test_student_t_matches_its_tables():
    assert stats.t_quantile(0.975, 10) == pytest.approx(2.228, abs=1e-3)
    assert stats.t_quantile(0.975, 2) == pytest.approx(4.303, abs=1e-3)
    assert stats.t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)


# --------------------------------------------------------------------------- what changed


def _result(tmp_path, name, run, device="pi"):
    doc = {"schema": "edgeq.deploy/1", "target": {"name": device}, "edgeq_version": "0.9",
           "artifact": {"path": f"/m/{name}.tflite", "sha256": run["model"]["sha256"]},
           "run": run}  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_what_changed_names_a_runtime_upgrade_and_a_thread_count():
    a = _run([1.0, 1.1], runtime_version="2.3.0", threads=4)
    b = _run([2.0, 2.1], runtime_version="2.4.0", threads=1)
    found = {c["field"]: (c["a"], c["b"]) for c in changes.what_changed(a, b)}
    assert found["runtime_version"] == ("2.3.0", "2.4.0")
    assert found["settings.threads"] == (4, 1)
    assert "model_sha256" not in found and "kernel" not in found
    assert changes.describe(changes.what_changed(a, a)) == "nothing recorded changed"


def test_compare_lists_what_changed_and_says_first_when_the_models_differ(tmp_path, cli):
    rng = np.random.default_rng(1)
    a = _result(tmp_path, "a", _run(rng.normal(1, 0.01, 60), "2.3.0", 4))
    b = _result(tmp_path, "b", _run(rng.normal(2, 0.01, 60), "2.4.0", 1))
    (pair,) = compare(str(a), str(b)).pairs
    text = pair.what_changed()
    assert "runtime version 2.3.0 → 2.4.0" in text and "threads 4 → 1" in text
    out = cli("compare", a, b, "--json")
    assert json.loads(out.stdout)["pairs"][0]["what_changed_text"] == text
    human = cli("compare", a, b)
    assert "what changed (A → B): runtime version 2.3.0 → 2.4.0" in human.stdout

    other = _result(tmp_path, "c", _run(rng.normal(6.5, 0.01, 60), sha="cd" * 32))
    res = compare(str(a), str(other), max_slowdown_pct=5)
    (pair,) = res.pairs
    assert pair.conclusion().startswith("A and B are different models (abababababab vs cdcd")
    assert pair.changes["p50"].test is None and pair.changes["p50"].within_run is None
    assert res.exit_code == 0  # two models are not a slowdown of one


def test_a_lab_regression_says_what_changed_since_the_last_pass(tmp_path):
    rng = np.random.default_rng(2)
    with History(tmp_path / "h.sqlite") as h:
        for day in range(1, 8):
            run = _run(rng.normal(1.0, 0.01, 300) * (1 + rng.uniform(-0.03, 0.03)))
            rec = _night(h, day, run)
            assert rec.status == "pass", rec.reason
        slow = _night(h, 8, _run(rng.normal(2.0, 0.01, 300), runtime_version="2.4.0", threads=1))
    assert slow.status == "fail"
    (finding,) = [f for f in slow.findings if f.check == "regression:latency_p50"]
    assert "changed since run-07: runtime version 2.3.0 → 2.4.0" in finding.message
    assert "threads 4 → 1" in finding.message
    assert {c["field"] for c in finding.changed} >= {"runtime_version", "settings.threads"}


def _night(h, day, run):
    run_id, started = f"run-{day:02d}", f"2026-03-{day:02d}T02:00:00Z"
    h.start_run(run_id, started)
    lat = run["latency_ms"]["invoke"]
    rec = ResultRecord(
        run_id=run_id, device="pi", transport="ssh", address="", identity="pi",
        model="m.tflite", status="pass", started_utc=started, finished_utc=started,
        metrics={"latency_p50": lat["p50"], "latency_p90": lat["p90"]},
        checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
        result={"run": run, "edgeq_version": "0.9"},
    )  # fmt: skip
    return judge_and_record(h, rec, regress.Policy(metrics=("latency_p50", "latency_p90")))


def test_a_suspect_run_is_recorded_as_suspect_never_a_regression_nor_a_baseline(tmp_path):
    rng = np.random.default_rng(4)
    with History(tmp_path / "h.sqlite") as h:
        for day in range(1, 6):
            _night(h, day, _run(rng.normal(1.0, 0.01, 300)))
        before = h.passing_values("pi", "m.tflite", "latency_p50", 10)
        run = _run(rng.normal(3.0, 0.01, 300))  # 3× slower, but contended
        run["validity"] = {"verdict": "suspect", "reasons": ["contended: other processes …"]}
        rec = _night(h, 6, run)
        assert rec.status == "suspect" and rec.reason.startswith("suspect: contended")
        judged = [c for c in rec.checks if c["kind"] == "regression"]
        assert judged and all(c["passed"] is None for c in judged)
        assert not [f for f in rec.findings if f.kind == "regression"]
        assert h.passing_values("pi", "m.tflite", "latency_p50", 10) == before
        (row,) = [r for r in h.results(run_id="run-06")]
        assert row["status"] == "suspect"


def test_beyond_the_band_but_within_the_run_to_run_noise_is_no_regression():
    policy = regress.Policy()
    # processes land in two modes: the MAD band (robust) sees only the main one
    bimodal = [1.0, 1.01, 0.99, 1.5, 1.0, 1.02, 1.49, 0.98, 1.0, 1.51]
    c = regress.judge_metric("latency_p50", 1.5, bimodal, policy)
    assert c["passed"] is True and "within the noise" in c["message"]
    calm = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0]
    c = regress.judge_metric("latency_p50", 1.2, calm, policy)
    assert c["passed"] is False and "significant at 95%" in c["message"]


# --------------------------------------------------------------------------- agreement


def _info(name, n):
    return TensorInfo(name=name, index=0, shape=(1, n), shape_signature=(1, n),
                      dtype="float32", scale=0.0, zero_point=0)  # fmt: skip


def test_all_zero_outputs_are_not_informative_and_never_pass():
    zeros = [np.zeros((20, 32), np.float32)]
    outs = compare_outputs(zeros, [_info("wake", 32)], zeros, [_info("wake", 32)], True)
    report = AgreementReport(Reference("/m.tflite", "same model"), 20, 0, tuple(outs), True)
    assert report.score is None and not report.informative
    assert report.not_informative == "not informative: the reference's outputs are all zero"
    run = {**_run([1.0, 1.1]), "agreement": {"report": report.to_dict()}}
    (check,) = [c for c in judge(Budget(min_output_agreement=0.99), run).checks
                if c.metric == "output_agreement"]  # fmt: skip
    assert check.passed is None and "never a pass" in check.note


def test_an_informative_output_is_judged_cosine_as_a_number():
    rng = np.random.default_rng(5)
    ref = [rng.normal(0, 1, (20, 8)).astype(np.float32)]
    got = [ref[0] + rng.normal(0, 0.01, (20, 8)).astype(np.float32)]
    outs = compare_outputs(got, [_info("y", 8)], ref, [_info("y", 8)], False)
    report = AgreementReport(Reference("/m.tflite", "same model"), 20, 0, tuple(outs), False)
    assert report.informative and report.score == pytest.approx(outs[0].cosine)
    run = {**_run([1.0, 1.1]), "agreement": {"report": report.to_dict()}}
    (check,) = [c for c in judge(Budget(min_output_agreement=0.99), run).checks
                if c.metric == "output_agreement"]  # fmt: skip
    assert check.passed is True and check.unit == "cosine"


def _series_statuses(h, values, start_day=1):
    out = []
    for i, v in enumerate(values):
        day = start_day + i
        run_id, started = f"run-{day:03d}", f"2026-04-01T{day // 60:02d}:{day % 60:02d}:00Z"
        h.start_run(run_id, started)
        rec = ResultRecord(
            run_id=run_id, device="pi", transport="ssh", address="", identity="pi",
            model="m.tflite", status="pass", started_utc=started, finished_utc=started,
            metrics={"latency_p50": float(v)},
            checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
        )  # fmt: skip
        policy = regress.Policy(metrics=("latency_p50",))
        out.append(judge_and_record(h, rec, policy).status)
    return out


def test_a_bimodal_series_of_identical_runs_is_not_ratcheted_into_failing(tmp_path):
    """Processes land in a tight low mode or a spread high one (as on a shared host): the
    run-to-run spread comes from every valid run but the current streak, so the high mode
    is not flagged night after night once the baseline holds the low one."""
    rng = np.random.default_rng(6)
    modes = rng.random(80) < 0.6
    values = np.where(modes, 0.270 + rng.normal(0, 0.001, 80), rng.uniform(0.29, 0.33, 80))
    with History(tmp_path / "h.sqlite") as h:
        statuses = _series_statuses(h, values)
    assert statuses.count("fail") <= 80 * 0.1, statuses.count("fail")


def test_a_real_regression_stays_flagged_night_after_night(tmp_path):
    rng = np.random.default_rng(7)
    calm = 1.0 + rng.uniform(-0.03, 0.03, 12)
    slow = 1.2 * (1.0 + rng.uniform(-0.03, 0.03, 6))
    with History(tmp_path / "h.sqlite") as h:
        statuses = _series_statuses(h, np.concatenate([calm, slow]))
    assert statuses[:12] == ["pass"] * 12 and statuses[12:] == ["fail"] * 6


def test_repetitions_say_each_kind_of_reason_once_with_how_often():
    merged = measure._merged_reasons(
        [["contended: others 1.9 cores", "governor is ondemand, not performance"],
         ["contended: others 1.7 cores", "governor is ondemand, not performance"],
         []]
    )  # fmt: skip
    assert merged == [
        "contended: others 1.9 cores (in 2 of the 3 runs)",
        "governor is ondemand, not performance",
    ]


def test_reports_show_a_suspect_result_with_its_own_symbol(tmp_path):
    import xml.etree.ElementTree as ET

    from edgeq.lab import report

    rng = np.random.default_rng(8)
    with History(tmp_path / "h.sqlite") as h:
        for day in range(1, 4):
            _night(h, day, _run(rng.normal(1.0, 0.01, 300)))
        run = _run(rng.normal(1.0, 0.01, 300))
        run["validity"] = {"verdict": "suspect", "reasons": ["contended: other processes …"]}
        _night(h, 4, run)
        doc = report.build(h, "run-04")
    assert doc["counts"]["suspect"] == 1 and doc["run"]["status"] != "fail"
    md = report.to_markdown(doc)
    assert "? SUSPECT" in md
    suites = ET.fromstring(report.to_junit(doc).encode())
    skipped = [c.find("skipped") for c in suites.iter("testcase") if c.find("skipped") is not None]
    assert any("the run is suspect (contended" in s.get("message") for s in skipped)


def test_the_shell_sample_reads_cpu_times_for_a_native_runner():
    """What a native runner (no CPU figures of its own) is judged by: the device shell's
    /proc/stat readings before and after, here of this machine through the local target."""
    from edgeq import config
    from edgeq.targets import make_target

    with make_target(config.local_target()) as target:
        before = measure.sample(target, "before")
        busy = 0.0
        t_end = time.monotonic() + 0.4
        while time.monotonic() < t_end:
            busy += 1.0  # keep one core busy, as benchmark_model would
        after = measure.sample(target, "after")
    cores = len(os.sched_getaffinity(0))
    assert len(before["cpu"]["cores"]) >= cores and after["cpu"]["mono_s"] > before["cpu"]["mono_s"]
    steady = {"phases_ms": {"steady_state": 400.0}}
    block = measure.contention_block(steady, 1, [before, after])
    assert "estimated" in block["method"] and block["self_cores"] == 1.0
    assert block["others_cores"] is not None and block["contended"] in (True, False)
    short = measure.contention_block({"phases_ms": {"steady_state": 50.0}}, 1, [before, after])
    assert short["contended"] is None and short["note"].startswith("not judged: steady state")


# --------------------------------------------------------------------------- confirmation


def _confirm_night(h, day, first_p50, rerun_p50s, suspect_rerun=False):
    from edgeq.lab.scheduler import to_confirm, with_confirmation

    policy = regress.Policy(metrics=("latency_p50",), confirm=len(rerun_p50s))

    def rec_of(p50, suspect=False):
        run_id, started = f"run-{day:02d}", f"2026-04-{day:02d}T02:00:00Z"
        run = {
            "validity": {
                "verdict": "suspect" if suspect else "valid",
                "reasons": ["contended: others took 1.9 cores"] if suspect else [],
            }
        }
        return ResultRecord(
            run_id=run_id, device="pi", transport="ssh", address="", identity="pi",
            model="m.tflite", status="pass", started_utc=started, finished_utc=started,
            metrics={"latency_p50": p50},
            checks=[{"name": "run", "kind": "run", "passed": True, "message": "ran"}],
            result={"run": run, "edgeq_version": "0.9"},
        )  # fmt: skip

    rec = rec_of(first_p50)
    h.start_run(rec.run_id, rec.started_utc)
    names = to_confirm(h, rec, policy)
    if names:
        reruns = [rec_of(v, suspect_rerun and i == 0) for i, v in enumerate(rerun_p50s)]
        with_confirmation(rec, reruns, names)
    return names, judge_and_record(h, rec, policy)


def test_a_regression_is_confirmed_only_when_every_fresh_rerun_is_beyond_the_band(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        for day, v in enumerate([1.00, 1.02, 0.99, 1.01, 0.98, 1.00], start=1):
            names, rec = _confirm_night(h, day, v, [5.0, 5.0])
            assert names == [] and rec.status == "pass"  # nothing to confirm: no re-run
        # one slow process, the two re-runs back in the band: no regression, the best is kept
        names, rec = _confirm_night(h, 7, 1.60, [1.01, 1.55])
        assert names == ["latency_p50"] and rec.status == "pass", rec.reason
        assert rec.metrics["latency_p50"] == 1.01
        block = rec.result["confirmation"]
        assert block["reruns"] == 2 and block["metrics"]["latency_p50"]["values"] == [
            1.6,
            1.01,
            1.55,
        ]
        assert "not borne out" not in rec.reason  # a pass has no reason line
        (conf,) = [c for c in rec.checks if c["kind"] == "confirmation"]
        assert (
            "re-measured 2 more times (1.01 ms, 1.55 ms): judged on the best, 1.01 ms"
            in (conf["message"])
        )
        # every run slow: a regression, and it says the re-runs bore it out
        names, rec = _confirm_night(h, 8, 1.60, [1.52, 1.58])
        assert rec.status == "fail"
        (check,) = [c for c in rec.checks if c["name"] == "regression:latency_p50"]
        assert (
            check["measured"] == 1.52
            and "the best of 3 runs: confirmed by re-runs" in (check["message"])
        )


def test_a_suspect_rerun_makes_the_result_suspect_never_a_regression(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        for day, v in enumerate([1.00, 1.02, 0.99, 1.01, 0.98, 1.00], start=1):
            _confirm_night(h, day, v, [])
        names, rec = _confirm_night(h, 7, 1.60, [1.70, 1.65], suspect_rerun=True)
    assert names == ["latency_p50"] and rec.status == "suspect"
    assert "a re-run: contended" in rec.reason


def test_confirm_is_a_regression_key_of_lab_toml(tmp_path):
    from edgeq.errors import ConfigError
    from edgeq.lab import load_inventory
    from tests.support.lab import write_inventory

    devices = {"d": {"transport": "local"}}
    ok = write_inventory(tmp_path / "ok.toml", {"regression": {"confirm": 0}}, devices)
    assert regress.Policy.from_dict(load_inventory(ok).regression).confirm == 0
    bad = write_inventory(tmp_path / "bad.toml", {"regression": {"confirm": -1}}, devices)
    with pytest.raises(ConfigError, match="'confirm' must be in"):
        load_inventory(bad)
