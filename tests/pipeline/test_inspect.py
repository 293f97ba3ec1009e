"""`edgeq inspect` and selective quantization (`--keep-float`, `--keep-float-auto`), against
TF's own QuantizationDebugger and the TFLite interpreter's view of the written model."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgeq import convert, data, inspect, tfenv, train
from tests.support.config import write_config

SCALE = 1000.0


def _ops(path: Path) -> list[dict]:
    """Each op of a .tflite: name and the dtypes of its inputs and outputs (interpreter's view)."""
    tf = tfenv.tf()
    it = tf.lite.Interpreter(model_path=str(path))
    out = []
    for op in it._get_ops_details():
        dtype = lambda i: np.dtype(it._get_tensor_details(i, 0)["dtype"]).name  # noqa: E731
        out.append(
            {
                "op": op["op_name"],
                "inputs": [dtype(i) for i in op["inputs"] if i >= 0],
                "outputs": [dtype(i) for i in op["outputs"]],
            }
        )
    return out


@pytest.fixture(scope="module")
def outlier_model(trained, tmp_path_factory) -> Path:
    """The trained CNN with its most active conv1 channel scaled ×SCALE and conv2
    compensating: the float function is the same (ReLU and max-pool commute with a positive
    scale), but that one channel now sets conv1's int8 range and every other channel falls
    into a step or two — the per-tensor range problem int8 suffers from."""
    model = train.load_model(trained.model_path)
    bn1 = model.get_layer("bn1")
    gamma, beta, mean, var = (w.numpy() for w in bn1.weights)
    c = int(np.argmax(beta))
    gamma[c] *= SCALE
    beta[c] *= SCALE
    bn1.set_weights([gamma, beta, mean, var])
    conv2 = model.get_layer("conv2")
    kernel, bias = (w.numpy() for w in conv2.weights)
    kernel[:, :, c, :] /= SCALE
    conv2.set_weights([kernel, bias])
    out = tmp_path_factory.mktemp("outlier") / "model.keras"
    model.save(out)
    return out


def _debugger_statistics(model_path: Path, data_dir: Path, samples: int) -> dict[str, dict]:
    """TF's QuantizationDebugger run directly (its own CSV), on the images inspect uses."""
    import csv

    tf = tfenv.tf()
    ds = data.load("mnist", data_dir / "mnist.npz")
    calib = convert.calibration_set(ds, 500)
    images = convert.validation_set(ds, samples, 500).images
    conv = tf.lite.TFLiteConverter.from_keras_model(train.load_model(model_path))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calib.representative_dataset()

    def feed():
        for i in range(len(images)):
            yield [images[i : i + 1]]

    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=conv,
        debug_dataset=feed,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True),
    )
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    return {r["tensor_name"]: r for r in csv.DictReader(io.StringIO(buf.getvalue()))}


def test_inspect_json_matches_the_debuggers_statistics(cli, trained, data_dir, tmp_path):
    res = cli(
        "inspect", trained.model_path, "--data", data_dir, "--samples", "200",
        "--out", tmp_path, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert doc["schema"] == "edgeq.inspect/1" and doc["samples"] == 200
    assert "train split" in doc["validation"] and "not used for calibration" in doc["validation"]

    ref = _debugger_statistics(trained.model_path, data_dir, 200)
    assert [r["tensor"] for r in doc["layers"]] == list(ref)  # every quantized tensor, in order
    for row in doc["layers"]:
        r = ref[row["tensor"]]
        assert row["op"] == r["op_name"] and row["tensor_idx"] == int(r["tensor_idx"])
        assert row["scale"] == pytest.approx(float(r["scale"]), rel=1e-6)
        assert row["zero_point"] == int(r["zero_point"])
        for key in ("mean_error", "max_abs_error", "mean_squared_error"):
            assert row[key] == pytest.approx(float(r[key]), rel=1e-4, abs=1e-12), key
        assert row["rmse_over_scale"] == pytest.approx(
            math.sqrt(float(r["mean_squared_error"])) / float(r["scale"]), rel=1e-4
        )
    names = {r["name"] for r in doc["layers"]}
    assert {"conv1", "conv2", "logits"} <= names  # Keras layer names, not only TF's

    # model level: accuracies on the validation split, and consistent with the debugger's
    # own float-vs-int8 agreement (accuracies cannot differ by more than the disagreement)
    assert doc["drop_pp"] == pytest.approx((doc["float_accuracy"] - doc["int8_accuracy"]) * 100)
    assert abs(doc["float_accuracy"] - doc["int8_accuracy"]) <= 1 - doc["argmax_agreement"] + 1e-9
    png = tmp_path / "layer_error.png"
    assert doc["plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "inspect.json").read_text())["layers"] == doc["layers"]


def test_inspect_flags_the_wide_range_layer(cli, outlier_model, data_dir, tmp_path):
    res = cli("inspect", outlier_model, "--data", data_dir, "--samples", "200", "--out", tmp_path)
    assert res.exit_code == 0, res.stderr
    rep = json.loads((tmp_path / "inspect.json").read_text())
    rows = {r["name"]: r for r in rep["layers"]}
    # conv1's values now share few of the 256 levels: said so, with the reason
    assert any(x.startswith("wide range") for x in rows["conv1"]["reasons"])
    assert rows["conv1"]["channel_steps"] < inspect.WIDE_RANGE_STEPS
    # ... and the error shows downstream, in conv2, which is flagged for float
    assert rows["conv2"]["rmse_over_scale"] >= inspect.KEEP_FLOAT_RMSE
    assert rows["conv2"]["keep_float"] and "conv2" in rep["keep_float"]
    assert "keep in float" in res.stdout and "--keep-float conv2" in res.stdout
    # the table is sorted by error
    order = [line.split()[1] for line in res.stdout.splitlines() if line.strip()[:2] == "1 "]
    assert order == ["conv2"]


def test_keep_float_leaves_the_named_ops_in_float(cli, trained, data_dir, tmp_path):
    res = cli(
        "convert", trained.model_path, "--mode", "int8", "--keep-float", "conv2,logits",
        "--calibration-samples", "100", "--data", data_dir, "--out", tmp_path, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    entry = json.loads(res.stdout)["artifacts"][0]
    assert [k["name"] for k in entry["keep_float"]] == ["conv2", "logits"]
    ops = _ops(tmp_path / "model_int8.tflite")
    convs = [o for o in ops if o["op"] == "CONV_2D"]
    fcs = [o for o in ops if o["op"] == "FULLY_CONNECTED"]
    assert convs[0]["inputs"] == ["int8", "int8", "int32"]  # conv1 stays int8
    assert set(convs[1]["inputs"]) == {"float32"} and convs[1]["outputs"] == ["float32"]
    assert set(fcs[0]["inputs"]) == {"float32"}
    assert "DEQUANTIZE" in [o["op"] for o in ops] and "QUANTIZE" in [o["op"] for o in ops]
    # the model's interface is still int8 in, int8 out
    assert entry["input"]["dtype"] == entry["output"]["dtype"] == "int8"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifacts"][0]["keep_float"] == entry["keep_float"]

    plain = convert.convert(
        trained.model_path, ["int8"], tmp_path / "plain", 100, data_path=data_dir
    )
    assert plain["artifacts"][0]["keep_float"] == []
    ops = _ops(tmp_path / "plain" / "model_int8.tflite")
    assert len(ops) >= 5  # the book CNN: convolutions, pooling, dense layers
    assert all(set(o["inputs"]) <= {"int8", "int32"} for o in ops)


def test_keep_float_unknown_node_exits_2_with_the_valid_names(cli, trained, data_dir, tmp_path):
    out = tmp_path / "o"
    res = cli(
        "convert", trained.model_path, "--mode", "int8", "--keep-float", "conv1,nope",
        "--calibration-samples", "50", "--data", data_dir, "--out", out,
    )  # fmt: skip
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "unknown node 'nope' for --keep-float" in line
    for name in ("conv1", "pool1", "conv2", "pool2", "flatten", "logits"):
        assert name in line
    assert not (out / "model_int8.tflite").exists()


def test_keep_float_is_an_option_of_int8(cli, trained, data_dir, tmp_path):
    res = cli(
        "convert", trained.model_path, "--mode", "float32", "--keep-float", "conv1",
        "--out", tmp_path,
    )  # fmt: skip
    assert res.exit_code == 2 and "--keep-float applies to mode int8" in res.stderr
    res = cli(
        "convert", trained.model_path, "--mode", "int8", "--keep-float", "conv1",
        "--keep-float-auto", "--out", tmp_path, "--data", data_dir,
    )  # fmt: skip
    assert res.exit_code == 2 and "not both" in res.stderr
    res = cli(
        "convert", trained.model_path, "--mode", "int8", "--keep-float-auto",
        "--max-drop-pp", "-1", "--out", tmp_path, "--data", data_dir,
    )  # fmt: skip
    assert res.exit_code == 2 and "--max-drop-pp must be >= 0" in res.stderr


def test_keep_float_auto_stops_once_the_drop_fits(cli, outlier_model, data_dir, tmp_path):
    limit = 5.0  # pp: full int8 of the outlier model loses far more, all-float nothing
    res = cli(
        "convert", outlier_model, "--mode", "int8", "--keep-float-auto", "--max-drop-pp",
        str(limit), "--validation-samples", "500", "--data", data_dir, "--out", tmp_path,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "keep-float search" in res.stdout and "size cost KB" in res.stdout
    entry = json.loads((tmp_path / "manifest.json").read_text())["artifacts"][0]
    auto = entry["keep_float_auto"]
    steps = auto["steps"]
    assert steps[0]["kept"] == [] and steps[0]["drop_pp"] > 2 * limit  # full int8 is bad
    assert len(steps) >= 2
    assert all(s["drop_pp"] > limit for s in steps[:-1])  # went on while over the limit
    assert auto["reached"] and steps[-1]["drop_pp"] <= limit  # and stopped once within
    # each step keeps one more layer, in the debugger's order of error
    assert [s["added"] for s in steps[1:]] == auto["order"][: len(steps) - 1]
    assert [k["name"] for k in entry["keep_float"]] == steps[-1]["kept"]
    assert steps[-1]["size_cost_bytes"] == steps[-1]["bytes"] - steps[0]["bytes"]
    assert steps[-1]["bytes"] == (tmp_path / "model_int8.tflite").stat().st_size
    # measured on training images, never the test split; and the model written is that one
    assert "train split" in auto["validation"]
    val = convert.validation_set(data.load("mnist", data_dir / "mnist.npz"), 500, 500)
    blob = (tmp_path / "model_int8.tflite").read_bytes()
    assert inspect.accuracy(blob, val.x, val.y) == pytest.approx(steps[-1]["validation_accuracy"])


def test_validation_split_never_overlaps_calibration(data_dir):
    ds = data.load("mnist", data_dir / "mnist.npz")
    calib = convert.calibration_set(ds, 500)
    val = convert.validation_set(ds, 3000, 500)
    cal_rows = {r.tobytes() for r in calib.images.reshape(len(calib.images), -1)}
    val_rows = {r.tobytes() for r in val.images.reshape(len(val.images), -1)}
    train_rows = {r.tobytes() for r in data.preprocess(ds.x_train).reshape(len(ds.x_train), -1)}
    test_rows = {r.tobytes() for r in data.preprocess(ds.x_test).reshape(len(ds.x_test), -1)}
    assert val_rows <= train_rows and not (val_rows & cal_rows)
    assert not (val_rows & (test_rows - train_rows))


def test_a_model_that_does_not_take_the_datasets_images_is_exit_2(cli, data_dir, tmp_path):
    """A foreign Keras model (RGB 32x32): int8 calibration and inspect need MNIST-shaped
    input, so both stop on the host with both shapes, before any conversion."""
    keras = tfenv.keras()
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3, name="c"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    path = tmp_path / "rgb.keras"
    model.save(path)
    for args in (
        ("convert", path, "--mode", "int8", "--out", tmp_path / "out"),
        ("inspect", path, "--samples", "50"),
    ):
        res = cli(*args, "--data", data_dir)
        assert res.exit_code == 2, res.stderr
        line = res.stderr.strip().splitlines()[-1]
        assert "takes input [32, 32, 3] but mnist images are [28, 28, 1]" in line
        assert "--mode float32" in line
    assert not list((tmp_path / "out").glob("*.tflite"))
    res = cli("convert", path, "--mode", "float32", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.stderr  # no calibration: any input shape converts


def test_your_own_samples_calibrate_a_foreign_model(cli, tmp_path):
    """A Keras model edgeq did not train (RGB 16x16, 3 classes) with the user's own .npz:
    uint8 samples and preprocess_scale 1/255, so the model sees [0, 1]. inspect and int8
    conversion draw calibration and validation from that file, and the int8 input's scale
    shows which preprocessing calibration used ([0, 1]: 1/255; the book's [-1, 1]: 2/255)."""
    keras = tfenv.keras()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 16, 16, 3)).astype(np.uint8)
    x[:, 0, 0, :] = [0, 255, 0]  # every sample spans the full range in some channel
    y = np.argmax(x.reshape(400, -1, 3).mean(1), 1)
    own = tmp_path / "own.npz"
    np.savez(own, x=x, y=y, preprocess_scale=np.float32(1 / 255), preprocess_offset=0.0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, name="logits"),
        ]
    )
    path = tmp_path / "foreign.keras"
    model.save(path)

    res = cli("inspect", path, "--data", own, "--samples", "100", "--calibration-samples",
              "100", "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dataset"] == "own.npz" and doc["calibration"].startswith("own.npz, 100 images")
    assert doc["samples"] == 100 and {r["name"] for r in doc["layers"]} >= {"c1", "logits"}

    out = tmp_path / "models"
    res = cli("convert", path, "--mode", "int8", "--data", own, "--calibration-samples", "100",
              "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    (entry,) = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert entry["calibration"]["source"].startswith("own.npz")
    assert entry["dataset"] is None  # not MNIST: deploy must be given the data again
    assert entry["input"]["scale"] == pytest.approx(1 / 255, rel=0.02)


def _latency_search(cli, model, data_dir, tmp_path, limit: str, *extra: str):
    """`convert --keep-float-auto --max-latency-ms LIMIT --target local`: each step's model
    measured by the real Python runner on the local target (budget percentile p50)."""
    cfg = write_config(tmp_path / "edgeq.toml", {}, {"latency_percentile": "p50"})
    return cli(
        "convert", model, "--mode", "int8", "--keep-float-auto", "--max-latency-ms", limit,
        "--target", "local", "--config", cfg, "--validation-samples", "500",
        "--calibration-samples", "200", "--data", data_dir, "--out", tmp_path / "m", *extra,
    )  # fmt: skip


def test_keep_float_auto_measures_each_step_on_the_device(cli, outlier_model, data_dir, tmp_path):
    res = _latency_search(cli, outlier_model, data_dir, tmp_path, "1000", "--max-drop-pp", "5")
    assert res.exit_code == 0, res.stderr
    assert "device ms" in res.stdout and "accepted" in res.stdout
    entry = json.loads((tmp_path / "m" / "manifest.json").read_text())["artifacts"][0]
    auto = entry["keep_float_auto"]
    steps = auto["steps"]
    assert auto["max_latency_ms"] == 1000 and auto["within_latency"] and auto["reached"]
    assert auto["device"]["target"] == "local" and auto["device"]["runner"] == "python"
    assert auto["device"]["metric"].startswith("p50 invoke")  # the budget's percentile
    assert len(steps) >= 2  # full int8 of the outlier model is far over 5 pp
    for s in steps:  # every step's model was measured, and fit the generous limit
        assert s["accepted"] and 0 < s["latency_ms"] < 1000 and "<= 1000 ms" in s["why"]
    assert [s["added"] for s in steps[1:]] == auto["order"][: len(steps) - 1]
    assert auto["final_step"] == len(steps) - 1
    assert [k["name"] for k in entry["keep_float"]] == steps[-1]["kept"]
    assert steps[-1]["bytes"] == (tmp_path / "m" / "model_int8.tflite").stat().st_size


def test_keep_float_auto_never_exceeds_the_latency_limit(cli, outlier_model, data_dir, tmp_path):
    """A limit no model can meet: full int8 is measured, found over it, and nothing is
    kept in float (said, and the written model is full int8 with no float op)."""
    res = _latency_search(cli, outlier_model, data_dir, tmp_path, "0.0001", "--max-drop-pp", "5")
    assert res.exit_code == 0, res.stderr
    entry = json.loads((tmp_path / "m" / "manifest.json").read_text())["artifacts"][0]
    auto = entry["keep_float_auto"]
    assert entry["keep_float"] == [] and auto["within_latency"] is False
    assert not auto["reached"]  # the drop does not fit either: stated, not hidden
    [step] = auto["steps"]
    assert step["kept"] == [] and not step["accepted"] and step["latency_ms"] > 0.0001
    assert "rejected" in res.stdout and "no layer kept in float" in res.stdout
    ops = _ops(tmp_path / "m" / "model_int8.tflite")
    assert "DEQUANTIZE" not in [o["op"] for o in ops]
    assert all(set(o["inputs"]) <= {"int8", "int32"} for o in ops)


def test_max_latency_ms_needs_keep_float_auto_and_a_target(cli, trained, data_dir, tmp_path):
    out = tmp_path / "o"
    base = ("convert", trained.model_path, "--mode", "int8", "--data", data_dir, "--out", out)
    for extra, says in (
        (("--keep-float-auto", "--max-latency-ms", "5"), "--max-latency-ms needs --target"),
        (("--max-latency-ms", "5", "--target", "local"), "add --keep-float-auto"),
        (("--keep-float-auto", "--target", "local"), "--target on convert is the device"),
        (
            ("--keep-float-auto", "--max-latency-ms", "0", "--target", "local"),
            "--max-latency-ms must be > 0",
        ),
    ):
        res = cli(*base, *extra)
        assert res.exit_code == 2, (extra, res.stdout)
        assert len(res.stderr.strip().splitlines()) == 1 and says in res.stderr, res.stderr
    assert not (out / "model_int8.tflite").exists()
