"""`edgeq eval` on models nobody here wrote: one row per artifact, errors in their row,
`--json` always one object, exit code 0 (all evaluated) or 2 (some row has an error)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeq import agreement, devapi, evaldata


@pytest.fixture()
def folder(tmp_path, foreign):
    """Every foreign model in one folder (uint8_gray with its float32 sibling and manifest),
    plus a file that is not a model."""
    d = tmp_path / "models"
    d.mkdir()
    for name in ("float_rgb", "two_inputs", "dynamic_batch", "regression", "mixed_dtypes"):
        shutil.copy(foreign[name].path, d)
    gray = foreign["uint8_gray"].path.parent
    for f in ("model_int8.tflite", "model_float32.tflite", "manifest.json"):
        shutil.copy(gray / f, d)
    (d / "broken.tflite").write_bytes(b"\x00" * 64)
    return d


def _json(res) -> dict:
    return json.loads(res.stdout)  # exactly one object, nothing else on stdout


def test_folder_of_foreign_models_one_bad_file(cli, folder):
    res = cli("eval", folder, "--runs", "5", "--json")
    doc = _json(res)
    assert res.exit_code == 2 and doc["exit_code"] == 2 and doc["ok"] is False
    rows = {r["artifact"].rsplit("/", 1)[-1]: r for r in doc["artifacts"]}
    assert len(rows) == 8 and doc["errors"] == 1
    assert rows["broken.tflite"]["error"]["type"] == "ModelError"
    assert "not a TFLite model" in rows["broken.tflite"]["error"]["message"]
    assert "not a TFLite model" in res.stderr
    for name, r in rows.items():
        if name == "broken.tflite":
            continue
        assert r["error"] is None and r["latency_p50_ms"] > 0, name
        assert r["top1"] is None and r["inputs"] and r["outputs"]
    assert len(rows["mixed_dtypes.tflite"]["inputs"]) == 7
    assert rows["regression.tflite"]["accuracy_note"].startswith("not applicable")
    assert rows["float_rgb.tflite"]["accuracy_note"].startswith("not measured")
    ag = rows["model_int8.tflite"]["agreement"]
    assert ag["reference"]["kind"] == "float32 sibling" and ag["samples"] == 32
    assert ag["outputs"][0]["top1_agreement"] > 0.8 and ag["score"] > 0.8
    assert rows["float_rgb.tflite"]["agreement"] is None  # nothing to compare with on a host


def test_folder_without_the_bad_file_exits_0_and_prints_a_table(cli, folder):
    (folder / "broken.tflite").unlink()
    res = cli("eval", folder, "--runs", "5")
    assert res.exit_code == 0, res.stderr
    assert "no evaluation data" in res.stdout
    # the signature's name with the tensor's beside it, as in bench and deploy
    named = "regression.tflite (input x (serving_default_x:0) float32 [-1, 10]): accuracy not"
    assert named in res.stdout
    assert "model_int8.tflite: output" in res.stdout and "top-1 agreement" in res.stdout


def test_own_npz_gives_accuracy_equal_to_host_accuracy(cli, foreign):
    m = foreign["float_rgb"]
    res = cli("eval", m.path, "--data", m.npz, "--runs", "5", "--json")
    assert res.exit_code == 0, res.stderr
    [row] = _json(res)["artifacts"]
    host = agreement.host_accuracy(m.path, m.npz)
    assert row["samples"] == 48 and row["correct"] == host["correct"] and row["top1"] > 0.9
    assert row["agreement"] is None and row["data"] == str(m.npz)


def test_image_folder_data(cli, foreign):
    m = foreign["float_rgb"]
    res = cli("eval", m.path, "--data", m.image_dir, "--runs", "5", "--json")
    assert res.exit_code == 0, res.stderr
    [row] = _json(res)["artifacts"]
    # uint8 pixels without preprocess keys get the book's x/127.5 - 1: this model was
    # trained on x/255, so the figure is what that rule gives, compared by hand here
    io = devapi.model_io(m.path)
    staged = evaldata.stage(evaldata.load(m.image_dir, io))
    assert (
        row["samples"] == 30
        and row["correct"] == agreement.host_accuracy(m.path, staged)["correct"]
    )


def test_data_that_does_not_fit_is_an_error_row(cli, foreign):
    res = cli(
        "eval",
        foreign["float_rgb"].path,
        foreign["uint8_gray"].path,
        "--data",
        foreign["uint8_gray"].npz,
        "--runs",
        "5",
        "--json",
    )
    doc = _json(res)
    assert res.exit_code == 2
    bad, good = doc["artifacts"][0], doc["artifacts"][-1]
    assert good["top1"] is not None and good["error"] is None
    msg = bad["error"]["message"]
    assert bad["error"]["type"] == "DataError" and bad["error"]["exit_code"] == 2
    assert "[48, 48, 1]" in msg and "[-1, 64, 64, 3]" in msg and "--no-data" in msg


def test_dynamic_dimension_needs_input_shape(cli, foreign):
    m = foreign["dynamic_seq"].path
    res = cli("eval", m, "--runs", "5", "--json")
    assert res.exit_code == 2
    assert "--input-shape seq=1,D1,8" in _json(res)["artifacts"][0]["error"]["message"]
    res = cli("eval", m, "--runs", "5", "--input-shape", "seq=1,6,8", "--json")
    assert res.exit_code == 0, res.stderr
    assert _json(res)["artifacts"][0]["latency_runs"] >= 5


def test_missing_path_is_a_row_and_others_still_run(cli, foreign, tmp_path):
    res = cli("eval", tmp_path / "nope.tflite", foreign["regression"].path, "--runs", "5", "--json")
    doc = _json(res)
    assert res.exit_code == 2 and doc["errors"] == 1
    assert "artifact not found" in doc["artifacts"][0]["error"]["message"]
    assert doc["artifacts"][1]["latency_p50_ms"] > 0


def test_explicit_agreement_says_when_there_is_no_reference(cli, foreign):
    res = cli("eval", foreign["two_inputs"].path, "--agreement", "4", "--runs", "5", "--json")
    assert res.exit_code == 0
    ag = _json(res)["artifacts"][0]["agreement"]
    assert ag["reference"] is None and "no float32 sibling" in ag["note"]


def test_bad_input_shape_syntax_is_one_json_error(cli, foreign):
    res = cli("eval", foreign["two_inputs"].path, "--input-shape", "a=x", "--json")
    assert res.exit_code == 2 and _json(res)["error"]["type"] == "UsageError"


def test_data_sets_the_dynamic_dimension_it_fills(cli, foreign, tmp_path):
    f = tmp_path / "seq.npz"
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (6, 5, 8)).astype(np.float32)
    np.savez(f, x=x, y=rng.randint(0, 4, 6))
    res = cli("eval", foreign["dynamic_seq"].path, "--data", f, "--runs", "5", "--json")
    assert res.exit_code == 0, res.stderr
    [row] = _json(res)["artifacts"]
    assert row["samples"] == 6 and row["top1"] is not None and row["latency_runs"] >= 5
    assert row["batch_size"] == 1  # its batch dimension is fixed: one sample per call
