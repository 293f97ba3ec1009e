"""The two halves of a deploy and the host's step after measuring: what `prepare` puts in
the request (and what it takes from the lab instead of planning again), what the measuring
loop hands on for the host to judge, and what the host fills in."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeq import config, hostjudge, prepare
from edgeq.budget import Budget
from edgeq.measure import combine
from edgeq.runners import Job, Measurement
from edgeq.settings import RunSettings


def _fail(*a, **kw):
    raise AssertionError("planned again although the lab staged the data")


def test_prepare_takes_the_staged_plan_and_reference(foreign, monkeypatch):
    m = foreign["uint8_gray"]
    monkeypatch.setattr(prepare, "plan_data", _fail)
    monkeypatch.setattr(prepare, "host_reference", _fail)
    staged = prepare.Staged(
        prepare.DataPlan(m.npz, None, str(m.npz), None), prepare.HostReference(0.75, "ref.tflite")
    )
    local = config.local_target()
    req = prepare.prepare(local, m.path, budget=Budget(), results_dir=None, staged=staged)
    assert req.plan is staged.plan and req.eval_npz == m.npz
    assert req.reference == prepare.HostReference(0.75, "ref.tflite")
    assert req.agreement == 0  # data given: accuracy, not agreement, by default
    assert req.runner.name == "python" and req.target is local
    assert req.artifact == Path(m.path) and len(req.sha256) == 64
    # without a budget no reference is used, as when the deploy plans itself
    bench = prepare.prepare(local, m.path, results_dir=None, staged=staged)
    assert bench.reference == prepare.HostReference()


def test_prepare_plans_when_nothing_was_staged(foreign):
    m = foreign["regression"]
    req = prepare.prepare(config.local_target(), m.path, results_dir=None, with_data=False)
    assert req.plan == prepare.DataPlan(None, "not measured: --no-data")
    assert req.agreement > 0  # no data: output agreement instead
    assert req.reference == prepare.HostReference()


def _m(run, **kw):
    return Measurement(run={"latency_ms": {"invoke": {"p50": 1.0}}, **run}, **kw)


def test_combine_hands_on_what_the_first_run_left_for_the_host():
    first = _m({}, outputs=Path("/tmp/x/agreement.npz"), host_accuracy="no python")
    later = _m({})
    got = combine({1: [first, later]}, RunSettings(repeat=2), [], None)
    assert got.outputs == Path("/tmp/x/agreement.npz") and got.host_accuracy == "no python"
    got = combine({1: [_m({})]}, RunSettings(), [], None)
    assert got.outputs is None and got.outputs_error is None and got.host_accuracy is None


def test_accuracy_on_host_fills_in_what_the_device_could_not(foreign):
    m = foreign["uint8_gray"]
    got = _m({"accuracy": None, "accuracy_source": None}, host_accuracy="use_python_runner = false")
    hostjudge.after_measuring(got, Job(Path(m.path), Path(m.npz), RunSettings()))
    acc = got.run["accuracy"]
    assert got.run["accuracy_source"] == "host" and acc["source"] == "host"
    assert acc["note"].endswith("— use_python_runner = false") and acc["samples"] > 0
    untouched = _m({"accuracy": None})
    hostjudge.after_measuring(untouched, Job(Path(m.path), Path(m.npz), RunSettings()))
    assert untouched.run["accuracy"] is None


def test_agreement_outputs_that_could_not_be_pulled_are_reported(foreign):
    m = foreign["float_rgb"]
    said = []
    job = Job(Path(m.path), None, RunSettings(), agreement=8)
    got = _m({"agreement": {"samples": 8}}, outputs_error="no such file on the device")
    hostjudge.judge_agreement(got, job, said.append)
    assert got.run["agreement"] == {
        "samples": 8,
        "report": None,
        "error": "no such file on the device",
    }
    assert said == ["comparing 8 outputs with the host reference"]
    # a runner that returns no outputs (no agreement section): nothing said, nothing added
    native = _m({})
    hostjudge.judge_agreement(native, job, said.append)
    assert "agreement" not in native.run and len(said) == 1


@pytest.mark.parametrize("section", [None, {"samples": 0, "error": "runner said no"}])
def test_agreement_without_samples_is_left_as_the_device_said(foreign, section):
    m = foreign["float_rgb"]
    got = _m({"agreement": section})
    hostjudge.judge_agreement(got, Job(Path(m.path), None, RunSettings(), agreement=8))
    assert got.run["agreement"] == section
