"""Train → convert (every mode) → evaluate, on a tiny subset with one epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq import convert, evaluate, fsutil, manifest, models, quant
from edgeq.errors import ModelError, UsageError
from edgeq_device import edgeq_runner as runner


def test_book_cnn_has_35210_parameters():
    assert models.build_cnn().count_params() == models.BOOK_CNN_PARAMS == 35_210
    assert models.build_cnn(width=0.5).count_params() < 35_210 / 2


def test_training_writes_its_outputs(trained):
    out = trained.out_dir
    for name in ("model.keras", "history.json", "metrics.json", "accuracy.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["params"] == 35_210 and m["train_samples"] == 4000
    assert m["model_sha256"] == fsutil.sha256_file(out / "model.keras")
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["accuracy"]) == len(hist["val_accuracy"]) == 1
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_every_mode_converts_and_manifest_is_right(artifacts, trained):
    out, manifest = artifacts
    modes = [a["mode"] for a in manifest["artifacts"]]
    assert modes == list(convert.MODES)
    model_sha = fsutil.sha256_file(trained.model_path)
    for a in manifest["artifacts"]:
        f = out / a["file"]
        assert f.stat().st_size == a["bytes"]
        assert fsutil.sha256_file(f) == a["sha256"]
        assert a["source_model_sha256"] == model_sha
        assert a["input"]["shape"] == [1, 28, 28, 1] and a["output"]["shape"] == [1, 10]
        assert a["versions"]["tensorflow"].startswith("2.")
    by_mode = {a["mode"]: a for a in manifest["artifacts"]}
    int8 = by_mode["int8"]
    assert int8["input"]["dtype"] == "int8" and int8["output"]["dtype"] == "int8"
    assert int8["input"]["scale"] > 0 and -128 <= int8["input"]["zero_point"] <= 127
    assert int8["calibration"]["samples"] == 200 and "train split" in int8["calibration"]["source"]
    assert by_mode["float32"]["calibration"] is None
    assert int8["bytes"] <= 50 * 1024
    assert by_mode["float32"]["bytes"] > 3 * int8["bytes"]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_eval_accuracy_and_int8_agreement(artifacts, data_dir):
    out, _ = artifacts
    rep = evaluate.evaluate(
        [out / "model_float32.tflite", out / "model_int8.tflite"],
        data_path=data_dir,
        latency_runs=20,
    )
    f32, i8 = rep.rows
    assert f32.samples == 1000 and f32.top1 > 0.5  # chance is 0.1
    assert i8.top1 > 0.5 and abs(i8.drop_pp) < 5
    assert f32.drop_pp == 0 and f32.latency_p90_ms >= f32.latency_p50_ms > 0
    assert f32.batch_size > 1  # the test set went through in batches

    ds = np.load(data_dir / "mnist.npz")
    x = runner.prepare_images(ds["x_test"])
    cls, _, _ = runner.find_interpreter()
    preds = []
    for name in ("model_float32.tflite", "model_int8.tflite"):
        it = runner.make_interpreter(cls, str(out / name))
        it.allocate_tensors()
        preds.append(runner.predict(it, x)[0])
    assert np.mean(preds[0] == preds[1]) >= 0.97


def test_int8_inputs_use_the_tensors_scale_and_zero_point(artifacts):
    _, manifest = artifacts
    entry = next(a for a in manifest["artifacts"] if a["mode"] == "int8")
    scale, zp = entry["input"]["scale"], entry["input"]["zero_point"]
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    q = runner.quantize_input(x, {"dtype": np.int8, "quantization": (scale, zp)})
    expected = quant.affine_quantize(x, quant.AffineParams(scale, zp, -128, 127))
    assert q.dtype == np.int8 and np.array_equal(q, expected)
    shortcut = evaluate.book_shortcut_input(x)
    assert not np.array_equal(q, shortcut)  # the book's (x*127).astype(int8) is not what we do


def test_eval_folder_cli_json(cli, artifacts, data_dir):
    out, _ = artifacts
    res = cli(
        "eval",
        out / "model_int8.tflite",
        "--data",
        data_dir,
        "--limit",
        "300",
        "--runs",
        "10",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    rows = {r["mode"]: r for r in doc["artifacts"]}
    # the float32 sibling is brought in as the reference for the drop
    assert rows["float32"]["reference"] is True and rows["int8"]["samples"] == 300
    assert rows["int8"]["drop_pp"] == pytest.approx(
        (rows["float32"]["top1"] - rows["int8"]["top1"]) * 100
    )


@pytest.mark.parametrize("bad", ["nonsense", "int4"])
def test_unknown_mode(bad):
    with pytest.raises(UsageError, match=f"unknown mode '{bad}'"):
        convert.parse_modes([bad])


def test_parse_modes_all_and_order():
    assert convert.parse_modes(["int8", "float32"]) == ["float32", "int8"]
    assert convert.parse_modes(["all"]) == list(convert.MODES)


def test_convert_bad_inputs_leave_nothing(cli, trained, tmp_path, data_dir):
    out = tmp_path / "o"
    cases = [
        (["convert", tmp_path / "missing.keras", "--out", out], "model not found"),
        (["convert", trained.model_path, "--mode", "int3", "--out", out], "unknown mode"),
        (
            [
                "convert",
                trained.model_path,
                "--mode",
                "int8",
                "--calibration-samples",
                "0",
                "--out",
                out,
                "--data",
                data_dir,
            ],
            "--calibration-samples must be >= 1",
        ),
        (
            [
                "convert",
                trained.model_path,
                "--mode",
                "int8",
                "--calibration-samples",
                "999999",
                "--out",
                out,
                "--data",
                data_dir,
            ],
            "larger than the training split",
        ),
    ]
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    cases.append((["convert", corrupt, "--out", out], "not a loadable Keras model"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases.append(
        (
            ["convert", trained.model_path, "--mode", "float32", "--out", blocker / "sub"],
            "cannot create output folder",
        )
    )
    for args, fragment in cases:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.stderr)
        assert fragment in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists() or not any(out.iterdir())


def test_eval_rejects_a_file_that_is_not_a_model(cli, tmp_path, data_dir):
    bad = tmp_path / "fake.tflite"
    bad.write_bytes(b"\x00" * 64)
    res = cli("eval", bad, "--data", data_dir)
    assert res.exit_code == 2 and "not a TFLite model" in res.stderr
    with pytest.raises(ModelError):
        manifest.describe_tflite(bad)


def test_manifest_tensors_match_tensorflows_own_interpreter(artifacts):
    """The manifest's tensor facts, checked against TensorFlow's interpreter (not against
    the edgeq helper that wrote them)."""
    import numpy as np
    import tensorflow as tf

    out, manifest = artifacts
    for a in manifest["artifacts"]:
        interp = tf.lite.Interpreter(model_path=str(out / a["file"]))
        for side, details in (
            ("input", interp.get_input_details()),
            ("output", interp.get_output_details()),
        ):
            (d,) = details
            want = a[side]
            assert want["shape"] == [int(v) for v in d["shape"]], (a["mode"], side)
            assert want["dtype"] == np.dtype(d["dtype"]).name, (a["mode"], side)
            scale, zero_point = d["quantization"]
            assert want["scale"] == pytest.approx(scale, rel=1e-7), (a["mode"], side)
            assert want["zero_point"] == zero_point, (a["mode"], side)
        if a["mode"] == "int8":
            assert a["input"]["dtype"] == a["output"]["dtype"] == "int8" and a["input"]["scale"]


def test_drop_is_measured_against_the_same_source_model(artifacts, trained, tmp_path, data_dir):
    """Two model folders evaluated together: each int8 is compared with its own float32."""
    from edgeq import train as train_mod

    other = train_mod.train(
        train_mod.Recipe(epochs=1, batch_size=64, seed=1, limit=1000),
        tmp_path / "other",
        data_dir / "mnist.npz",
    )
    convert.convert(
        other.model_path, ["float32", "int8"], tmp_path / "other", 100, data_path=data_dir
    )
    out, _ = artifacts
    rep = evaluate.evaluate(
        [out / "model_int8.tflite", tmp_path / "other" / "model_int8.tflite"],
        data_path=data_dir,
        latency_runs=5,
    )
    rows = {(r.artifact, r.mode): r for r in rep.rows}
    assert sum(r.reference for r in rep.rows) == 2
    for folder in (out, tmp_path / "other"):
        f32 = rows[(str(folder / "model_float32.tflite"), "float32")]
        i8 = rows[(str(folder / "model_int8.tflite"), "int8")]
        assert i8.drop_pp == pytest.approx((f32.top1 - i8.top1) * 100)
