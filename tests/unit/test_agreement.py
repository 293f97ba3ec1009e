"""edgeq.agreement: the pre-push data check, host accuracy, output agreement."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq import agreement, devapi, evaldata
from edgeq.errors import DataError, ModelError, UsageError


def _data(x, y, kind="npz", scale=None, offset=None):
    return evaldata.EvalData(np.asarray(x), np.asarray(y), "my.npz", kind, scale, offset)


def test_check_data_passes_and_says_how_data_is_fed(foreign):
    io = devapi.model_io(foreign["uint8_gray"].path)
    ok = agreement.check_data(io, _data(np.zeros((3, 48, 48), np.uint8), [0, 1, 3]))
    assert ok.applicable and ok.classes == 4 and ok.samples == 3
    assert ok.sample_shape == [48, 48, 1] and ok.preprocess["rule"] == "raw"
    f = agreement.check_data(io, _data(np.zeros((2, 48, 48, 1), np.float32), [0, 1]))
    assert f.preprocess["rule"] == "as is"  # float data is real values, quantized for uint8
    reg = devapi.model_io(foreign["regression"].path)
    r = agreement.check_data(reg, _data(np.zeros((2, 10), np.float32), [0, 7]))
    assert not r.applicable and r.note.startswith("not applicable: output shape [1, 1]")


def test_check_data_shape_mismatch_names_both_shapes_and_the_fix(foreign):
    io = devapi.model_io(foreign["float_rgb"].path)
    with pytest.raises(DataError) as e:
        agreement.check_data(io, _data(np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5, int)))
    msg = e.value.message
    assert "[32, 32, 3] (uint8, 5 samples)" in msg
    assert "image (serving_default_image:0) float32 [-1, 64, 64, 3]" in msg
    assert "give data of shape [N, 64, 64, 3]" in msg and "--no-data" in msg
    assert "an image folder" in msg
    assert e.value.exit_code == 2


def test_check_data_suggests_input_shape_for_dynamic_inputs(foreign):
    io = devapi.model_io(foreign["dynamic_seq"].path)
    with pytest.raises(DataError, match=r"--input-shape seq=1,5,4"):
        agreement.check_data(io, _data(np.zeros((2, 5, 4), np.float32), [0, 1]))
    # data shaped [N, 5, 8] sets the dynamic length itself
    ok = agreement.check_data(io, _data(np.zeros((2, 5, 8), np.float32), [0, 1]))
    assert ok.sample_shape == [5, 8]
    with pytest.raises(UsageError, match=r"dynamic dimensions \[1, -1, 8\].*--input-shape"):
        devapi.resolve_shapes(io)
    assert devapi.resolve_shapes(io, {"seq": [1, 7, 8]}) == [[1, 7, 8]]


def test_check_data_dtype_labels_and_inputs(foreign):
    io = devapi.model_io(foreign["uint8_gray"].path)
    with pytest.raises(DataError, match="preprocess_scale/preprocess_offset"):
        agreement.check_data(io, _data(np.zeros((2, 48, 48, 1), np.int16), [0, 1]))
    with pytest.raises(DataError, match=r"labels y range over 0\.\.4.*4 classes \(labels 0\.\.3\)"):
        agreement.check_data(io, _data(np.zeros((2, 48, 48, 1), np.uint8), [0, 4]))
    two = devapi.model_io(foreign["two_inputs"].path)
    with pytest.raises(DataError, match=r"feeds one input, and two_inputs.tflite has 2"):
        agreement.check_data(two, _data(np.zeros((2, 16), np.float32), [0, 1]))
    mixed = devapi.model_io(foreign["mixed_dtypes"].path)
    assert len(mixed.inputs) == 7


def test_host_accuracy_matches_a_hand_loop(foreign):
    m = foreign["uint8_gray"]
    acc = agreement.host_accuracy(m.path, m.npz)
    f = np.load(m.npz)
    interp = devapi.open_model(m.path)
    interp.allocate_tensors()
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    correct = 0
    for x, y in zip(f["x"], f["y"], strict=True):
        interp.set_tensor(d["index"], x[None])  # uint8 images to a uint8 input: as they are
        interp.invoke()
        correct += int(interp.get_tensor(o["index"]).argmax() == y)
    assert acc["correct"] == correct and acc["samples"] == len(f["y"])
    assert acc["source"] == "host" and acc["classes"] == 4 and acc["preprocess"]["rule"] == "raw"
    assert agreement.host_accuracy(m.path, m.npz, limit=10)["samples"] == 10


def test_host_accuracy_refuses_a_non_classifier(foreign):
    m = foreign["regression"]
    with pytest.raises(DataError, match="accuracy not applicable"):
        agreement.host_accuracy(m.path, m.npz)


# --------------------------------------------------------------------------- agreement


def _info(name, shape, dtype="float32", scale=0.0, zp=0):
    return devapi.TensorInfo(name, 0, tuple(shape), tuple(shape), dtype, scale, zp)


def test_compare_outputs_figures():
    rng = np.random.RandomState(0)
    ref = rng.normal(size=(20, 1, 5)).astype(np.float32)
    meas = ref + rng.normal(scale=0.01, size=ref.shape).astype(np.float32)
    meas[3, 0] = ref[3, 0][::-1]  # one sample with another argmax, most likely
    [o] = agreement.compare_outputs(
        [meas], [_info("o", [1, 5])], [ref], [_info("o", [1, 5])], classifier=True
    )
    d = meas.astype(np.float64) - ref.astype(np.float64)
    assert o.max_abs_diff == pytest.approx(np.abs(d).max())
    assert o.rmse == pytest.approx(np.sqrt((d**2).mean()))
    a, b = meas.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    assert o.cosine == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    same = (meas.reshape(20, 5).argmax(1) == ref.reshape(20, 5).argmax(1)).mean()
    assert o.top1_agreement == pytest.approx(same) and same < 1
    assert o.reference_abs_max == pytest.approx(np.abs(ref).max())


def test_compare_outputs_dequantizes_and_handles_zeros():
    ref = np.array([[[0.5, -0.25]], [[1.0, 0.0]]], np.float32)
    q = np.array([[[2, -1]], [[4, 0]]], np.int8)  # scale 0.25, zero point 0: equal
    [o] = agreement.compare_outputs(
        [q], [_info("o", [1, 2], "int8", 0.25, 0)], [ref], [_info("o", [1, 2])], False
    )
    assert o.max_abs_diff == 0 and o.rmse == 0 and o.cosine == pytest.approx(1.0)
    assert o.top1_agreement is None
    z = np.zeros((2, 1, 1), np.float32)
    [zz] = agreement.compare_outputs([z], [_info("z", [1, 1])], [z], [_info("z", [1, 1])], False)
    assert zz.cosine == 1.0
    [zo] = agreement.compare_outputs(
        [z], [_info("z", [1, 1])], [z + 1], [_info("z", [1, 1])], False
    )
    assert zo.cosine == 0.0 and zo.max_abs_diff == 1.0
    with pytest.raises(ModelError, match="cannot be compared"):
        agreement.compare_outputs([z], [_info("z", [1, 1])], [], [], False)


def test_reference_is_the_float32_sibling_from_the_manifest(foreign, tmp_path):
    m = foreign["uint8_gray"]
    ref = agreement.reference_for(m.path)
    assert ref.kind == "float32 sibling" and ref.path == m.float_sibling
    assert agreement.reference_for(m.float_sibling).kind == "same model"
    lone = tmp_path / "model_int8.tflite"
    lone.write_bytes(m.path.read_bytes())  # no manifest beside it
    assert agreement.reference_for(lone) == agreement.Reference(lone, "same model")


def test_int8_model_agrees_with_its_float32_sibling(foreign):
    m = foreign["uint8_gray"]
    rep = agreement.host_agreement(m.path, 40, seed=2)
    assert rep.reference.kind == "float32 sibling" and rep.classifier and rep.samples == 40
    [o] = rep.outputs
    assert o.cosine > 0.99 and o.top1_agreement >= 0.85 and rep.score == o.top1_agreement
    # the scale of the disagreement is about the output quantization step, not noise
    out_scale = devapi.model_io(m.path).outputs[0].scale
    assert 0 < o.rmse < 5 * out_scale


def test_reference_gets_the_same_real_inputs(foreign):
    """uint8 samples reach the float32 sibling as q * scale (their real values)."""
    m = foreign["uint8_gray"]
    interp = devapi.open_model(m.path)
    interp.allocate_tensors()
    spec = devapi.input_spec(interp.get_input_details()[0])
    outs, _ = agreement.reference_outputs(m.float_sibling, [spec], 3, 4)
    f32 = devapi.open_model(m.float_sibling)
    f32.allocate_tensors()
    by_hand = [
        [(s[0].astype(np.float32) - spec["zero_point"]) * np.float32(spec["scale"])]
        for s in devapi.random_inputs([spec], 3, 4)
    ]
    np.testing.assert_allclose(outs[0], devapi.run_samples(f32, by_hand)[0], rtol=1e-6)


def test_agreement_report_score_for_regression(foreign):
    rep = agreement.host_agreement(foreign["regression"].path, 8)
    assert not rep.classifier and rep.reference.kind == "same model"
    assert rep.score == rep.outputs[0].cosine == pytest.approx(1.0)
    d = rep.to_dict()
    assert d["score_kind"].startswith("cosine") and d["outputs"][0]["top1_agreement"] is None


def test_seeded_reference_outputs_are_computed_once_per_model(foreign, tmp_path):
    """A lab judges every device's run of one model against the same reference on the same
    seeded inputs: the reference runs once (until its file changes), and what is handed
    out cannot be changed by one caller for the others."""
    import os
    import shutil

    m = foreign["uint8_gray"]
    ref = tmp_path / "ref.tflite"
    shutil.copy(m.float_sibling, ref)
    interp = devapi.open_model(m.path)
    interp.allocate_tensors()
    spec = devapi.input_spec(interp.get_input_details()[0])
    first, io1 = agreement._seeded_reference_outputs(ref, [spec], 6, 3, None)
    again, io2 = agreement._seeded_reference_outputs(ref, [spec], 6, 3, None)
    assert again is first and io2 is io1  # remembered, not run again
    fresh, _ = agreement.reference_outputs(ref, [spec], 6, 3)
    np.testing.assert_array_equal(first[0], fresh[0])  # the same figures as a fresh run
    with pytest.raises(ValueError):
        first[0][0] = 0  # read-only: no device's comparison can alter another's
    other, _ = agreement._seeded_reference_outputs(ref, [spec], 6, 4, None)
    assert other is not first  # another seed is another key
    st = ref.stat()
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed
    assert agreement._seeded_reference_outputs(ref, [spec], 6, 3, None)[0] is not first
