"""Models nobody here wrote, through `bench`, `deploy` (local and over the test sshd "Pi")
and `lab run`, with and without their own data: every input fed, accuracy when data fits,
output agreement with a host reference when there is none, and every input problem found
on the host (exit 2) before anything is pushed."""

from __future__ import annotations

import json

import pytest

from tests.support.config import write_config
from tests.support.foreign_models import BUDGET, REQUIRED

FAST = ("--runs", "10", "--min-s", "0", "--warmup-runs", "1")


#: judges size and latency loosely; accuracy of these tiny models is not the point
@pytest.fixture()
def pi_cfg(tmp_path, pi_server, pi_python, pi_workdir):
    values = pi_server.target_values(python=pi_python, workdir=str(pi_workdir))
    return write_config(tmp_path / "edgeq.toml", {"pi": values}, BUDGET)


def _json(res):
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("name", REQUIRED)
def test_bench_without_data_feeds_every_input_and_checks_agreement(cli, foreign, name):
    m = foreign[name]
    res = cli("bench", m.path, "--no-data", *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert len(run["model"]["inputs"]) == len(run["benchmark_inputs"]) >= 1
    assert {i["source"] for i in run["benchmark_inputs"]} == {"random"}
    assert run["accuracy"] is None and run["accuracy_note"] == "not measured: --no-data"
    report = run["agreement"]["report"]
    assert report["samples"] == 32  # the default when there is no labelled data
    for o in report["outputs"]:
        assert o["cosine"] > 0.999 and o["max_abs_diff"] <= 0.02 * max(1, o["reference_abs_max"])


@pytest.mark.parametrize("name", ["float_rgb", "uint8_gray", "dynamic_batch", "regression"])
def test_deploy_locally_with_its_own_data(cli, foreign, tmp_path, name):
    m = foreign[name]
    cfg = write_config(tmp_path / "edgeq.toml", {}, BUDGET)
    data = m.image_dir if name == "float_rgb" else m.npz
    res = cli("deploy", "--config", cfg, "--model", m.path, "--data", data, *FAST,
              "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = _json(res)
    checks = {c["metric"]: c for c in doc["verdict"]["checks"]}
    if name == "regression":  # not a classifier: accuracy does not apply, agreement does
        assert doc["run"]["accuracy"] is None
        assert doc["run"]["accuracy_note"].startswith("not applicable: output shape [1, 1]")
        assert checks["accuracy"]["passed"] is None
        assert doc["run"]["agreement"]["report"]["classifier"] is False
    else:
        acc = doc["run"]["accuracy"]
        assert acc["samples"] > 0 and acc["classes"] == m.classes
        assert checks["accuracy"]["passed"] is True
        assert doc["run"]["agreement"] is None  # labelled data: no agreement unless asked


def test_over_ssh_with_data_and_without(cli, foreign, pi_cfg, tmp_path):
    uint8 = foreign["uint8_gray"]
    res = cli("deploy", "--target", "pi", "--config", pi_cfg, "--model", uint8.path,
              "--data", uint8.npz, *FAST, "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert run["environment"]["runtime"] == "tflite-runtime"  # the Pi's own interpreter
    assert run["model"]["inputs"][0]["dtype"] == "uint8" and run["accuracy"]["samples"] > 0

    two = foreign["two_inputs"]
    res = cli("deploy", "--target", "pi", "--config", pi_cfg, "--model", two.path,
              "--no-data", *FAST, "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert [i["name"] for i in run["benchmark_inputs"]] and len(run["model"]["inputs"]) == 2
    checks = {c["metric"]: c for c in _json(res)["verdict"]["checks"]}
    assert checks["accuracy"]["passed"] is None and "not measured" in checks["accuracy"]["note"]
    assert checks["output_agreement"]["passed"] is None  # measured, no limit in the budget
    # device (tflite-runtime 2.14) vs host (ai-edge-litert) on the same seeded inputs
    assert run["agreement"]["report"]["outputs"][0]["top1_agreement"] >= 0.9


def test_a_shape_mismatch_is_exit_2_before_anything_is_pushed(cli, foreign, pi_cfg, pi_workdir):
    res = cli("deploy", "--target", "pi", "--config", pi_cfg, "--model",
              foreign["uint8_gray"].path, "--data", foreign["float_rgb"].npz, *FAST)  # fmt: skip
    assert res.exit_code == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("edgeq: error:")
    assert "[64, 64, 3]" in line and "gray (serving_default_gray:0) uint8 [-1, 48, 48, 1]" in line
    assert "--no-data" in line and "image folder" in line
    assert not (pi_workdir / "edgeq-cache").exists()  # nothing reached the device


def test_dynamic_dimensions_need_an_input_shape(cli, foreign, pi_cfg, pi_workdir, tmp_path):
    m = foreign["dynamic_seq"]
    res = cli("bench", m.path, "--target", "pi", "--config", pi_cfg, "--no-data", *FAST)
    assert res.exit_code == 2 and "--input-shape seq=1," in res.stderr
    assert not (pi_workdir / "edgeq-cache").exists()
    res = cli("bench", m.path, "--target", "pi", "--config", pi_cfg, "--no-data",
              "--input-shape", "seq=1,12,8", *FAST, "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert _json(res)["run"]["model"]["inputs"][0]["shape"] == [1, 12, 8]


def test_require_accuracy_and_min_output_agreement(cli, foreign, tmp_path):
    m = foreign["uint8_gray"]  # an int8 model with a float32 sibling in its manifest
    strict = {**BUDGET, "require_accuracy": True, "min_output_agreement": 0.5}
    cfg = write_config(tmp_path / "edgeq.toml", {}, strict)
    res = cli("deploy", "--config", cfg, "--model", m.path, "--no-data", *FAST,
              "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 1
    checks = {c["metric"]: c for c in _json(res)["verdict"]["checks"]}
    assert checks["accuracy"]["passed"] is False
    assert "require_accuracy = true" in checks["accuracy"]["note"]
    agree = checks["output_agreement"]
    assert agree["passed"] is True and agree["measured"] >= 0.5
    assert "float32 sibling" in agree["source"]


def test_the_table_output_names_every_input_and_output(cli, foreign):
    m = foreign["two_inputs"]
    res = cli("bench", m.path, "--no-data", *FAST)
    assert res.exit_code == 0, res.stderr
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("inputs: ")]
    ins, outs = line.removeprefix("inputs: ").split(" → outputs: ")
    assert ins.count("float32 [1, ") == 2 and "_a" in ins and "_b" in ins
    assert outs.count("float32 [1, ") == 1
