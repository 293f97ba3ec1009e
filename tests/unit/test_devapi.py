"""edgeq.devapi: tensor details of a model and the input-shape syntax."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq import devapi
from edgeq.errors import ModelError, UsageError


@pytest.mark.parametrize(
    "name",
    ["float_rgb", "uint8_gray", "two_inputs", "dynamic_batch", "dynamic_seq", "mixed_dtypes"],
)
def test_model_io_matches_the_interpreters_own_details(foreign, name):
    path = foreign[name].path
    io = devapi.model_io(path)
    interp = devapi.open_model(path)
    pairs = [(io.inputs, interp.get_input_details()), (io.outputs, interp.get_output_details())]
    for infos, details in pairs:
        assert len(infos) == len(details)
        for t, d in zip(infos, details, strict=True):
            assert t.name == d["name"] and t.index == d["index"]
            assert list(t.shape) == d["shape"].tolist()
            assert list(t.shape_signature) == d["shape_signature"].tolist()
            assert t.dtype == np.dtype(d["dtype"]).name
            assert (t.scale, t.zero_point) == pytest.approx(d["quantization"])


def test_model_io_facts(foreign):
    io = devapi.model_io(foreign["uint8_gray"].path)
    t = io.inputs[0]
    assert t.quantized and t.dynamic and t.short_name == "gray" and t.dtype == "uint8"
    assert t.describe().startswith("gray (serving_default_gray:0) uint8 [-1, 48, 48, 1] (s=")
    assert io.classes == 4 and io.accuracy_note is None
    reg = devapi.model_io(foreign["regression"].path)
    assert reg.classes is None and "output shape [1, 1]" in reg.accuracy_note
    two = devapi.model_io(foreign["two_inputs"].path)
    assert [i.short_name for i in two.inputs] == ["b", "a"] and two.classes == 5


def test_model_io_of_a_non_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"nope" * 20)
    with pytest.raises(ModelError, match="not a TFLite model"):
        devapi.model_io(bad)


def test_input_shape_syntax_and_names(foreign):
    assert devapi.parse_input_shapes(["x=1,2", "serving_default_y:0=3,4"]) == {
        "x": [1, 2],
        "serving_default_y:0": [3, 4],
    }
    for bad in ("x", "x=", "x=1,a", "x=0,3", "=1,2"):
        with pytest.raises(UsageError, match="expected NAME=d0,d1"):
            devapi.parse_input_shapes([bad])
    io = devapi.model_io(foreign["two_inputs"].path)
    full = {"serving_default_a:0": [2, 16]}
    assert devapi.resolve_shapes(io, full) == devapi.resolve_shapes(io, {"a": [2, 16]})
    assert devapi.resolve_shapes(io, {"1": [2, 16]}) == [[1, 8], [2, 16]]
    with pytest.raises(UsageError, match="no input of that name"):
        devapi.resolve_shapes(io, {"c": [1, 3]})
