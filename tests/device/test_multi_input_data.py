"""A two-input model (an image uint8 [1, 16, 16, 3] and a vector float32 [1, 4], two
outputs), built and converted with TensorFlow in the test, fed from a dict-style .npz (one
array per input name) through eval, bench, deploy (a real SSH "Pi" on tflite-runtime 2.14 /
numpy < 2) and the lab; a data/model mismatch is exit 2 before any push, naming the input
and both shapes; a two-input classifier's labels give accuracy on the device and the host."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.support.config import GENEROUS, write_config
from tests.support.realworld_models import MULTI, SAMPLES, build, build_pair

FAST = ("--runs", "5", "--min-s", "0", "--warmup-runs", "1")
BUDGET = {"max_model_kb": 200, "max_latency_ms": 500}


@pytest.fixture(scope="module")
def multi():
    return build()[MULTI]


def _json(res):
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout)


def _hand_outputs(model, data: dict[str, np.ndarray], n: int) -> list[np.ndarray]:
    """Each input fed its own rows (sample k = row k % N), by hand with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    outs: list[list[np.ndarray]] = [[] for _ in it.get_output_details()]
    for k in range(n):
        for d in it.get_input_details():
            key = d["name"].removeprefix("serving_default_").removesuffix(":0")
            it.set_tensor(d["index"], data[key][k % len(data[key])][None])
        it.invoke()
        for j, d in enumerate(it.get_output_details()):
            outs[j].append(it.get_tensor(d["index"]).copy())
    return [np.stack(o) for o in outs]


def _assert_fed_from_data(run: dict) -> None:
    fed = {i["key"]: i for i in run["benchmark_inputs"]}
    assert set(fed) == {"image", "vector"}
    assert all(i["source"] == "data" for i in fed.values())
    assert fed["image"]["dtype"] == "uint8" and fed["vector"]["dtype"] == "float32"
    section = run["agreement"]
    assert section["source"] == "data" and section["samples"] >= SAMPLES
    assert [f["key"] for f in section["data_inputs"]] == [i["key"] for i in run["benchmark_inputs"]]
    report = section["report"]
    assert report["source"] == "data"
    assert len(report["outputs"]) == 2 == len(run["model"]["outputs"])
    for o in report["outputs"]:  # the device's outputs vs the host's on the same samples
        assert o["informative"] and o["cosine"] > 0.9999, o


def test_bench_feeds_every_input_from_the_data(cli, multi):
    model, npz = multi
    res = cli("bench", model, "--data", npz, *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    _assert_fed_from_data(run)
    assert run["accuracy"] is None and run["accuracy_note"].startswith("not applicable")
    res = cli("bench", model, "--data", npz, *FAST)  # the text says what was compared on
    assert res.exit_code == 0 and "(32 samples of the data)" in res.stdout, res.stdout


def test_deploy_over_ssh_to_the_pi_runtime(cli, multi, pi_config, tmp_path):
    model, npz = multi
    res = cli("deploy", "--target", "pi", "--config", pi_config, "--model", model,
              "--data", npz, *FAST, "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = _json(res)
    assert doc["run"]["environment"]["runtime"] == "tflite-runtime"
    assert doc["artifact"]["data"] == str(npz)
    _assert_fed_from_data(doc["run"])


def test_the_lab_feeds_every_input_from_the_data(multi, tmp_path, lab_sections):
    from edgeq.lab import load_inventory, run_lab
    from tests.support.lab import write_inventory

    model, npz = multi
    lab_sections["lab"]["models"] = [str(model)]
    lab_sections["lab"]["data"] = str(npz)
    lab_sections["budget"] = BUDGET
    inv = load_inventory(
        write_inventory(tmp_path / "lab.toml", lab_sections, {"host": {"transport": "local"}})
    )
    (rec,) = run_lab(inv).results
    assert rec.status == "pass", rec.reason
    _assert_fed_from_data(rec.result["run"])


def test_eval_compares_outputs_on_the_data_samples_not_random_inputs(cli):
    f16, f32, npz = build_pair()
    res = cli("eval", f16, "--data", npz, "--agreement", "16", "--json")
    assert res.exit_code == 0, res.stderr
    row = next(r for r in _json(res)["artifacts"] if r["artifact"] == str(f16))
    ag = row["agreement"]
    assert ag["source"] == "data" and ag["samples"] == 16
    data = dict(np.load(npz))
    got, ref = _hand_outputs(f16, data, 16), _hand_outputs(f32, data, 16)
    by_name = {o["name"]: o for o in ag["outputs"]}
    from edgeq.devapi import model_io

    names = [t.name for t in model_io(f16).outputs]
    for k, name in enumerate(names):
        diff = float(np.max(np.abs(got[k].astype(np.float64) - ref[k])))
        assert by_name[name]["max_abs_diff"] == pytest.approx(diff, rel=1e-6, abs=1e-9)
        assert diff > 0  # float16 weights: the outputs really differ a little
    # without --data the same command compares on seeded random inputs, and says so
    res = cli("eval", f16, "--agreement", "16", "--json")
    row = next(r for r in _json(res)["artifacts"] if r["artifact"] == str(f16))
    assert row["agreement"]["source"] == "random"
    res = cli("eval", f16, "--data", npz, "--agreement", "16")
    assert "on 16 samples of the data" in res.stdout


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"image": "image"}, ["vector", "[1, 4]", "no array"]),
        ({"image": "image", "vector": np.zeros((SAMPLES, 5), np.float32)},
         ["vector", "[5]", "[N, 4]"]),
        ({"image": np.zeros((SAMPLES, 16, 16, 3), np.float32), "vector": "vector"},
         ["image", "float32 [N, 16, 16, 3]", "uint8 [1, 16, 16, 3]"]),
        ({"image": "image", "vector": "vector", "audio": "vector"}, ["'audio'", "no input"]),
    ],
    ids=["missing-input", "wrong-shape", "wrong-dtype", "unknown-key"],
)  # fmt: skip
def test_a_mismatch_is_exit_2_before_any_push_naming_input_and_shapes(
    cli, multi, pi_config, pi_workdir, tmp_path, arrays, words
):
    model, npz = multi
    own = dict(np.load(npz))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{k: own[v] if isinstance(v, str) else v for k, v in arrays.items()})
    res = cli("deploy", "--target", "pi", "--config", pi_config, "--model", model,
              "--data", bad, *FAST, "--results", tmp_path / "r")  # fmt: skip
    assert res.exit_code == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    for w in words:
        assert w in line, line
    assert not any(pi_workdir.rglob("*.tflite")), "nothing may be pushed"


def test_the_tensor_name_is_accepted_as_a_key(cli, multi, tmp_path):
    model, npz = multi
    own = dict(np.load(npz))
    named = tmp_path / "named.npz"
    np.savez(named, image=own["image"], **{"serving_default_vector:0": own["vector"]})
    res = cli("bench", model, "--data", named, *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    assert {i["key"] for i in run["benchmark_inputs"]} == {"image", "serving_default_vector:0"}
    assert run["agreement"]["report"]["outputs"][0]["cosine"] > 0.9999


def _two_input_classifier_data(tmp_path):
    """foreign two_inputs (a [1, 16], b [1, 8] -> 5 class scores) and an .npz a, b, y whose
    labels are its own predictions but for the first 10 of 40: 30 right by construction."""
    from ai_edge_litert.interpreter import Interpreter

    from tests.support.foreign_models import build_all

    m = build_all()["two_inputs"]
    rng = np.random.RandomState(7)
    a = rng.uniform(-1, 1, (40, 16)).astype(np.float32)
    b = rng.uniform(-1, 1, (40, 8)).astype(np.float32)
    it = Interpreter(model_path=str(m.path))
    it.allocate_tensors()
    names = {d["name"]: d["index"] for d in it.get_input_details()}
    preds = []
    for k in range(40):
        for name, idx in names.items():
            it.set_tensor(idx, (a if name.endswith("_a:0") else b)[k : k + 1])
        it.invoke()
        preds.append(int(it.get_tensor(it.get_output_details()[0]["index"]).argmax()))
    y = np.array(preds, np.int64)
    y[:10] = (y[:10] + 1) % 5
    npz = tmp_path / "ab.npz"
    np.savez(npz, a=a, b=b, y=y)
    return m.path, npz


@pytest.mark.parametrize("use_python_runner", ["auto", False])
def test_the_native_runner_judges_a_two_input_classifier_on_the_data(
    cli, tmp_path, use_python_runner
):
    from tests.support.benchmark_model import binary

    model, npz = _two_input_classifier_data(tmp_path)
    target = {"transport": "local", "runner": "benchmark_model", "python": sys.executable,
              "benchmark_binary": str(binary("x86_64")),
              "use_python_runner": use_python_runner}  # fmt: skip
    cfg = write_config(tmp_path / "edgeq.toml", {"native": target}, GENEROUS)
    res = cli("deploy", "--target", "native", "--config", cfg, "--model", model, "--data", npz,
              *FAST, "--results", tmp_path / "r", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = _json(res)["run"]
    acc = run["accuracy"]
    assert (acc["samples"], acc["correct"]) == (40, 30)
    assert acc["source"] == ("device" if use_python_runner == "auto" else "host")


def test_labels_give_a_two_input_classifier_accuracy_on_device_and_host(cli, tmp_path):
    from edgeq import agreement

    model, npz = _two_input_classifier_data(tmp_path)  # 30 of 40 right, by construction
    res = cli("bench", model, "--data", npz, *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    acc = _json(res)["run"]["accuracy"]
    assert (acc["samples"], acc["correct"]) == (40, 30)
    from edgeq import evaldata

    host = agreement.host_accuracy(model, evaldata.stage(evaldata.load(npz)))
    assert (host["samples"], host["correct"]) == (40, 30)
