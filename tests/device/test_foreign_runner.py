"""The device runner on models nobody here wrote, on the host's stack and on the "Pi's"
(tflite-runtime 2.14 + numpy 1.x): every input fed, every tensor listed, outputs saved
for agreement and equal to what the host computes from the same seeded inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeq import agreement, devapi, evaldata, paths
from edgeq_device import edgeq_runner as runner
from tests.support.device_venv import ensure_venv, find_python

RUNNER = str(paths.runner_path())
QUICK = ["--runs", "3", "--min-s", "0", "--warmup-runs", "1", "--warmup-min-s", "0"]
MODELS = ("float_rgb", "uint8_gray", "two_inputs", "dynamic_batch", "dynamic_seq")
MODELS += ("regression", "mixed_dtypes")
EXTRA = {"dynamic_seq": ["--input-shape", "seq=1,5,8"]}


@pytest.fixture(scope="module", params=["host", "pi", "py38"])
def python(request):
    """The runner's python: this host's (ai-edge-litert, numpy 2), the Pi venv's
    (tflite-runtime 2.14, numpy 1.x) or an old Pi's (Python 3.8, numpy 1.24)."""
    if request.param == "host":
        return sys.executable
    if request.param == "pi":
        return request.getfixturevalue("pi_python")
    py38 = find_python("3.8")
    if not py38:
        pytest.skip("no python3.8 here (pyenv install 3.8, or apt) to run this check")
    return str(ensure_venv(("tflite-runtime==2.14.0", "numpy<1.25"), "py38-venv", python=py38))


def _run(python: str, *args) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [python, RUNNER, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _host_details(model: Path, shapes: list[list[int]] | None = None):
    interp = devapi.open_model(model)
    if shapes:
        devapi.apply_shapes(interp, shapes, model)
    else:
        interp.allocate_tensors()
    return interp.get_input_details(), interp.get_output_details()


@pytest.mark.parametrize("name", MODELS)
def test_every_tensor_listed_and_outputs_match_the_host(python, foreign, name, tmp_path):
    model = foreign[name].path
    outputs = tmp_path / "outputs.npz"
    args = [*QUICK, *EXTRA.get(name, []), "--agreement", 6, "--agreement-seed", 11]
    rc, doc, err = _run(python, model, *args, "--outputs-out", outputs)
    assert rc == 0, err
    shapes = [t["shape"] for t in doc["model"]["inputs"]]
    ins, outs = _host_details(model, shapes)
    for listed, details in ((doc["model"]["inputs"], ins), (doc["model"]["outputs"], outs)):
        assert len(listed) == len(details)
        for t, d in zip(listed, details, strict=True):
            assert t["name"] == d["name"] and t["shape"] == d["shape"].tolist()
            assert t["shape_signature"] == d["shape_signature"].tolist()
            assert t["dtype"] == np.dtype(d["dtype"]).name
            assert (t["scale"], t["zero_point"]) == pytest.approx(d["quantization"])
    fed = doc["benchmark_inputs"]
    assert [f["name"] for f in fed] == [d["name"] for d in ins]
    assert all(f["source"] == "random" for f in fed)
    assert doc["accuracy"] is None and doc["accuracy_note"].startswith("not measured")

    ag = doc["agreement"]
    assert (
        ag["samples"] == 6
        and ag["seed"] == 11
        and ag["inputs"] == [runner.input_spec(d) for d in ins]
    )
    report = agreement.agreement(model, doc, outputs, agreement.Reference(model, "same model"))
    for o, info in zip(report.outputs, doc["model"]["outputs"], strict=True):
        quantum = info["scale"] or 0.0
        assert o.max_abs_diff <= max(1e-5 * max(1.0, o.reference_abs_max), quantum + 1e-9), o
        assert o.cosine > 0.99999
    if report.classifier:
        assert report.outputs[0].top1_agreement == 1.0


@pytest.mark.parametrize("name", ["two_inputs", "mixed_dtypes"])
def test_every_input_is_fed(pi_python, foreign, name, tmp_path):
    """The device's outputs equal the host's from ALL the seeded inputs, and leaving any one
    input out (zeros) would have changed them: so every input was fed."""
    model = foreign[name].path
    outputs = tmp_path / "o.npz"
    rc, doc, err = _run(pi_python, model, *QUICK, "--agreement", 4, "--outputs-out", outputs)
    assert rc == 0, err
    ag = doc["agreement"]
    device = np.load(outputs)["output_0"]
    interp = devapi.open_model(model)
    interp.allocate_tensors()
    samples = list(devapi.random_inputs(ag["inputs"], 4, ag["seed"]))
    full = devapi.run_samples(interp, samples)[0]
    np.testing.assert_allclose(device, full, rtol=1e-5, atol=1e-5)
    assert len(samples[0]) == len(doc["model"]["inputs"]) >= 2
    for k in range(len(samples[0])):
        missing = [[np.zeros_like(a) if j == k else a for j, a in enumerate(s)] for s in samples]
        without = devapi.run_samples(interp, missing)[0]
        assert not np.allclose(without, device), f"output does not depend on input {k}"


def test_mixed_dtypes_are_drawn_in_their_ranges(foreign):
    interp = devapi.open_model(foreign["mixed_dtypes"].path)
    interp.allocate_tensors()
    specs = [runner.input_spec(d) for d in interp.get_input_details()]
    arrays = next(runner.random_inputs([dict(s, shape=[4000]) for s in specs], 1, 0))
    by = {s["name"]: (s, a) for s, a in zip(specs, arrays, strict=True)}
    for name, dtype in (("f32", "float32"), ("f16", "float16"), ("i8", "int8"), ("u8", "uint8")):
        assert by[name][1].dtype == np.dtype(dtype)
    assert by["f32"][1].min() >= -1 and by["f32"][1].max() < 1
    assert by["i8"][1].min() == -128 and by["i8"][1].max() == 127  # every int8 value
    assert by["u8"][1].min() == 0 and by["u8"][1].max() == 255
    for name in ("i16", "i32"):
        assert set(np.unique(by[name][1])) == set(range(10))  # small ids/counts 0..9
    assert by["flag"][1].dtype == np.bool_ and 0.4 < by["flag"][1].mean() < 0.6


def test_quantized_input_range_uses_scale_and_zero_point(foreign):
    interp = devapi.open_model(foreign["uint8_gray"].path)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    scale, zp = d["quantization"]
    spec = runner.input_spec(d)
    assert (spec["low"], spec["high"]) == (0, 255)
    assert spec["real_low"] == pytest.approx((0 - zp) * scale)
    assert spec["real_high"] == pytest.approx((255 - zp) * scale)
    narrow = runner.input_spec(d, value_range=(0.25, 0.5))
    assert narrow["low"] == int(np.ceil(0.25 / scale + zp))
    assert narrow["high"] == int(np.floor(0.5 / scale + zp))
    assert (narrow["high"] - zp) * scale <= 0.5 and (narrow["low"] - zp) * scale >= 0.25


def test_random_inputs_prefix_does_not_depend_on_n():
    spec = {"name": "x", "shape": [2, 3], "dtype": "float32", "distribution": "uniform"}
    spec.update(low=-1.0, high=1.0)
    a = list(runner.random_inputs([spec], 3, seed=5))
    b = list(runner.random_inputs([spec], 5, seed=5))
    for s, t in zip(a, b[:3], strict=True):
        assert np.array_equal(s[0], t[0])
    assert not np.array_equal(b[0][0], next(runner.random_inputs([spec], 1, seed=6))[0])


def test_dynamic_dimension_left_unset_is_a_bad_input(python, foreign):
    rc, doc, _ = _run(python, foreign["dynamic_seq"].path, *QUICK)
    msg = doc["error"]["message"]
    assert rc == 2 and doc["error"]["type"] == "BadInput"
    assert "seq" in msg and "[1, -1, 8]" in msg and "--input-shape seq=1,D1,8" in msg


def test_input_shape_resizes_dynamic_batch(python, foreign, tmp_path):
    out = tmp_path / "o.npz"
    rc, doc, err = _run(
        python,
        foreign["dynamic_batch"].path,
        *QUICK,
        "--input-shape",
        "features=4,20",
        "--agreement",
        2,
        "--outputs-out",
        out,
    )
    assert rc == 0, err
    assert doc["model"]["inputs"][0]["shape"] == [4, 20]
    assert doc["model"]["inputs"][0]["shape_signature"] == [-1, 20]
    assert doc["model"]["outputs"][0]["shape"] == [4, 6]
    assert doc["settings"]["input_shapes"] == {"features": [4, 20]}
    assert np.load(out)["output_0"].shape == (2, 4, 6)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--input-shape", "nope=1,20"], "no input of that name; its inputs are"),
        (["--input-shape", "features=1,x"], "expected NAME=d0,d1,..."),
        (["--input-shape", "features=1,20,3"], "3 dimensions given"),
        (["--agreement", "3"], "--agreement needs --outputs-out"),
        (["--input-range", "features=1,0"], "LOW < HIGH"),
    ],
)
def test_bad_input_options(foreign, args, needle):
    rc, doc, _ = _run(sys.executable, foreign["dynamic_batch"].path, *QUICK, *args)
    assert rc == 2 and needle in doc["error"]["message"], doc["error"]


# --------------------------------------------------------------------------- data


def _device_vs_host(python, model, npz, limit=None):
    extra = ["--limit", limit] if limit else []
    rc, doc, err = _run(python, model, *QUICK, "--data", npz, *extra)
    assert rc == 0, err
    host = agreement.host_accuracy(model, npz, limit)
    return doc, host


@pytest.mark.parametrize("name", ["float_rgb", "uint8_gray", "dynamic_batch"])
def test_accuracy_on_own_npz_equals_the_host(python, foreign, name):
    m = foreign[name]
    doc, host = _device_vs_host(python, m.path, m.npz)
    acc = doc["accuracy"]
    assert acc["samples"] == host["samples"] == len(np.load(m.npz)["y"])
    assert abs(acc["correct"] - host["correct"]) <= 1, (acc, host)
    assert acc["classes"] == m.classes and doc["accuracy_note"] is None
    assert doc["benchmark_inputs"][0]["source"] == "data"
    rule = acc["preprocess"]["rule"]
    assert rule == "raw"  # float data for a float model, uint8 data for a uint8 model
    if name != "dynamic_batch":  # random labels there
        assert acc["top1"] > 0.9, acc


def test_npz_preprocess_keys_are_applied(foreign, tmp_path):
    """uint8 images with preprocess keys: x * scale + offset, the same as float data."""
    m = foreign["float_rgb"]
    src = np.load(m.npz)
    f = tmp_path / "u8.npz"
    u8 = np.round(src["x"] * 255).astype(np.uint8)
    np.savez(f, x=u8, y=src["y"], preprocess_scale=1 / 255, preprocess_offset=0.0)
    rc, doc, err = _run(sys.executable, m.path, *QUICK, "--data", f)
    assert rc == 0, err
    assert doc["accuracy"]["preprocess"] == {"rule": "given", "scale": 1 / 255, "offset": 0.0}
    ref = agreement.host_accuracy(m.path, m.npz)
    assert abs(doc["accuracy"]["correct"] - ref["correct"]) <= 1


def test_image_folder_staged_and_measured(python, foreign):
    m = foreign["float_rgb"]
    io = devapi.model_io(m.path)
    data = evaldata.load(m.image_dir, io, preprocess_scale=1 / 255, preprocess_offset=0.0)
    npz = evaldata.stage(data)
    doc, host = _device_vs_host(python, m.path, npz)
    assert (
        doc["accuracy"]["samples"] == 30 and abs(doc["accuracy"]["correct"] - host["correct"]) <= 1
    )
    assert doc["accuracy"]["top1"] > 0.9


def test_regression_with_data_is_not_applicable(python, foreign):
    m = foreign["regression"]
    rc, doc, err = _run(python, m.path, *QUICK, "--data", m.npz)
    assert rc == 0, err
    assert doc["accuracy"] is None
    assert doc["accuracy_note"] == (
        "not applicable: output shape [1, 1] is not [1, N] class scores (N > 1)"
    )


def test_data_that_does_not_fit_is_bad_data(foreign):
    rc, doc, _ = _run(
        sys.executable, foreign["float_rgb"].path, *QUICK, "--data", foreign["uint8_gray"].npz
    )
    msg = doc["error"]["message"]
    assert rc == 4 and "[48, 48, 1]" in msg and "[N, 64, 64, 3]" in msg
    rc, doc, _ = _run(
        sys.executable, foreign["two_inputs"].path, *QUICK, "--data", foreign["regression"].npz
    )
    assert rc == 4 and "this model has 2 inputs" in doc["error"]["message"]
