"""A detector (two outputs), a segmenter (transposed convolution) and a stateful model
(resource variables), with unlabelled data (`x` only), through eval, bench, deploy and the
lab: the data feeds the model, and the outputs on it are compared with the host's."""

from __future__ import annotations

import json

import pytest

from tests.support.config import write_config
from tests.support.realworld_models import NAMES, SAMPLES, build

FAST = ("--runs", "5", "--min-s", "0", "--warmup-runs", "1")
BUDGET = {"max_model_kb": 200, "max_latency_ms": 500}


@pytest.fixture(scope="module")
def models():
    return build()


def _json(res):
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("name", NAMES)
def test_bench_feeds_unlabelled_data_and_compares_outputs_on_it(cli, models, name):
    model, npz = models[name]
    res = cli("bench", model, "--data", npz, *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert [i["source"] for i in run["benchmark_inputs"]] == ["data"]
    assert run["accuracy"] is None and run["accuracy_note"].startswith("not ")
    section = run["agreement"]
    assert section["source"] == "data" and section["samples"] >= SAMPLES
    report = section["report"]
    assert report["source"] == "data"
    assert len(report["outputs"]) == len(run["model"]["outputs"])
    for o in report["outputs"]:
        assert o["cosine"] > 0.999, o
    if name == "stateful":  # each sample on a fresh interpreter: state does not leak
        assert "keeps state between calls" in section["state"]
    else:
        assert section["state"] is None


def test_deploy_and_lab_with_unlabelled_data(cli, models, tmp_path, lab_sections):
    from edgeq.lab import load_inventory, run_lab
    from tests.support.lab import write_inventory

    cfg = write_config(tmp_path / "edgeq.toml", {}, BUDGET)
    model, npz = models["detector"]
    res = cli("deploy", "--config", cfg, "--model", model, "--data", npz, *FAST,
              "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = _json(res)
    assert doc["artifact"]["data"] == str(npz)
    assert doc["run"]["benchmark_inputs"][0]["source"] == "data"
    assert doc["run"]["agreement"]["report"]["source"] == "data"

    lab_sections["lab"]["models"] = [str(models[n][0]) for n in ("segmenter", "stateful")]
    lab_sections["lab"]["data"] = str(models["segmenter"][1])
    lab_sections["budget"] = BUDGET
    inv = load_inventory(
        write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})
    )
    with pytest.raises(Exception) as exc:  # the stateful model's input is [1, 8]: refused
        run_lab(inv)
    assert "[32, 32, 3]" in str(exc.value) and "[1, 8]" in str(exc.value)
    lab_sections["lab"]["models"] = [str(models["segmenter"][0])]
    inv = load_inventory(
        write_inventory(tmp_path / "lab2.toml", lab_sections, {"host": {"transport": "local"}})
    )
    (rec,) = run_lab(inv).results
    assert rec.status == "pass", rec.reason
    assert rec.result["run"]["agreement"]["report"]["source"] == "data"


def test_a_data_model_mismatch_is_exit_2_before_any_push_naming_both(cli, models, tmp_path):
    res = cli("bench", models["detector"][0], "--data", models["stateful"][1], *FAST)
    assert res.exit_code == 2
    line = res.stderr.strip().splitlines()[-1]
    assert "[8]" in line and "[1, 32, 32, 3]" in line


def test_eval_accepts_unlabelled_data(cli, models):
    res = cli("eval", models["segmenter"][0], "--data", models["segmenter"][1], "--json")
    assert res.exit_code == 0, res.stderr
    (row,) = _json(res)["artifacts"]
    assert row["accuracy_note"].startswith("not applicable")


def _opener(model):
    """A function that opens `model` in a fresh, allocated interpreter."""
    from edgeq.devapi import open_model

    def fresh():
        it = open_model(model)
        it.allocate_tensors()
        return it

    return fresh


def test_the_stateful_model_really_keeps_state_and_a_fresh_interpreter_resets_it(models):
    import numpy as np

    from edgeq.devapi import run_samples, runner

    fresh = _opener(models["stateful"][0])
    x = [np.ones((1, 8), np.float32)]
    it = fresh()
    assert runner.stateful_ops(it) == [
        "ASSIGN_VARIABLE",
        "CALL_ONCE",
        "READ_VARIABLE",
        "VAR_HANDLE",
    ]
    (kept,) = run_samples(it, [x, x])
    assert not np.allclose(kept[0], kept[1])  # the second call saw the first one's state
    (reset,) = run_samples(fresh(), [x, x], fresh)
    np.testing.assert_array_equal(reset[0], reset[1])


def test_how_a_state_is_reset_is_found_by_trying_each_way(models):
    import numpy as np

    from edgeq.devapi import open_model, run_samples, runner

    fresh = _opener(models["stateful"][0])
    x = [np.ones((1, 8), np.float32)]
    # LiteRT's reset_all_variables resets variable tensors, not resource variables (VAR_HANDLE)
    it = fresh()
    (first,) = run_samples(it, [x])
    it.reset_all_variables()
    (after_reset,) = run_samples(it, [x])
    assert not np.allclose(first, after_reset)
    method, ops, note = runner.state_reset(fresh(), x, fresh)
    assert method == runner.FRESH_INTERPRETER and "VAR_HANDLE" in ops
    assert "fresh interpreter" in note
    # a runtime that cannot give a new interpreter either: outputs depend on history
    same = fresh()
    method, _, note = runner.state_reset(same, x, lambda: same)
    assert method == runner.HISTORY and "outputs depend on history" in note
    # a stateless model: nothing to reset
    det = models["detector"][0]
    it = open_model(det)
    it.allocate_tensors()
    sample = [np.zeros((1, 32, 32, 3), np.float32)]
    assert runner.state_reset(it, sample, lambda: open_model(det))[0] is None


def test_outputs_that_depend_on_history_are_compared_as_the_same_ordered_sequence(models):
    import numpy as np

    from edgeq import agreement
    from edgeq.devapi import input_spec, open_model

    model, npz = models["stateful"]
    x = np.load(npz)["x"]
    samples = [[x[k : k + 1]] for k in range(len(x))]
    it = open_model(model)
    it.allocate_tensors()
    specs = [input_spec(d) for d in it.get_input_details()]
    hand = []
    for s in samples:  # one interpreter, in order: the state carries over
        it.set_tensor(it.get_input_details()[0]["index"], s[0])
        it.invoke()
        hand.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    (seq,), _ = agreement.reference_outputs(model, specs, len(x), 0, samples=samples, history=True)
    (reset,), _ = agreement.reference_outputs(model, specs, len(x), 0, samples=samples)
    np.testing.assert_array_equal(seq, np.stack(hand))
    np.testing.assert_array_equal(reset[0], seq[0])  # the first call sees no history
    assert not np.allclose(reset[1:], seq[1:])  # mixing the two would look like disagreement


def test_the_stateful_model_through_deploy_on_the_pi_and_the_lab(
    cli, models, pi_config, tmp_path, lab_sections
):
    from edgeq.lab import load_inventory, run_lab
    from tests.support.lab import write_inventory

    model, npz = models["stateful"]

    def meaningful(section):
        assert section["source"] == "data" and section["state_reset"] == "fresh interpreter"
        report = section["report"]
        assert report["state_reset"] == "fresh interpreter"
        assert report["compared"] == "each sample's outputs"
        (out,) = report["outputs"]
        assert out["informative"] and out["cosine"] > 0.9999 and out["max_abs_diff"] < 1e-4

    res = cli("deploy", "--target", "pi", "--config", pi_config, "--model", model,
              "--data", npz, *FAST, "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert run["environment"]["runtime"] == "tflite-runtime"  # reset the same way there
    meaningful(run["agreement"])

    lab_sections["lab"]["models"] = [str(model)]
    lab_sections["lab"]["data"] = str(npz)
    lab_sections["budget"] = {**BUDGET, "min_output_agreement": 0.999}
    inv = load_inventory(
        write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})
    )
    (rec,) = run_lab(inv).results
    assert rec.status == "pass", rec.reason
    meaningful(rec.result["run"]["agreement"])
    checks = {c["metric"]: c for c in rec.result["verdict"]["checks"]}
    assert checks["output_agreement"]["passed"] is True
