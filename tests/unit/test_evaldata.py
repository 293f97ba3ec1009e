"""edgeq.evaldata: your own .npz or image folder, checked and staged for the runner."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeq import config, devapi, evaldata
from edgeq.errors import ConfigError, DataError
from tests.support.foreign_models import COLOUR_CLASSES


def _io(shape, dtype="float32", classes=3):
    inp = devapi.TensorInfo(
        "serving_default_img:0", 0, tuple(max(v, 1) for v in shape), tuple(shape), dtype, 0.0, 0
    )
    out = devapi.TensorInfo("out", 9, (1, classes), (-1, classes), "float32", 0.0, 0)
    return devapi.ModelIO("m.tflite", (inp,), (out,))


def _folder(root, sizes=((30, 20), (40, 50)), classes=("cat", "dog")):
    rng = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            img = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
            Image.fromarray(img).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
        (root / c / "notes.txt").write_text("not an image")
    return root


def test_kind_of(tmp_path, data_dir):
    assert evaldata.kind_of(data_dir) == "keras"
    assert evaldata.kind_of(data_dir / "mnist.npz") == "keras"
    np.savez(tmp_path / "own.npz", x=np.zeros((2, 3)), y=np.zeros(2, int))
    assert evaldata.kind_of(tmp_path / "own.npz") == "npz"
    assert evaldata.kind_of(_folder(tmp_path / "imgs")) == "images"
    np.savez(tmp_path / "named.npz", image=np.zeros((2, 3)))  # one array per input name
    assert evaldata.kind_of(tmp_path / "named.npz") == "npz"
    np.savez(tmp_path / "bad.npz", y=np.zeros(2, int))  # labels without samples
    with pytest.raises(DataError, match="holds samples 'x' .* and labels 'y'"):
        evaldata.kind_of(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="not found"):
        evaldata.kind_of(tmp_path / "missing.npz")


def test_npz_keys_and_overrides(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4), preprocess_scale=0.5)
    d = evaldata.load(f)
    assert d.kind == "npz" and d.samples == 4 and d.preprocess_scale == 0.5
    assert d.preprocess_offset is None
    o = evaldata.load(f, preprocess_scale=2.0, preprocess_offset=-1.0)
    assert (o.preprocess_scale, o.preprocess_offset) == (2.0, -1.0)
    np.savez(f, x=np.zeros((4, 8), np.uint8), y=np.arange(3))
    with pytest.raises(DataError, match="labels must be integers"):
        evaldata.load(f)


def test_image_folder_sorted_classes_and_pillow_resize(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("zebra", "ant"))
    d = evaldata.load(root, _io([-1, 24, 32, 3]), resize="bilinear")
    assert d.x.shape == (4, 24, 32, 3) and d.x.dtype == np.uint8
    assert d.class_names == ("ant", "zebra") and d.y.tolist() == [0, 0, 1, 1]
    with Image.open(root / "ant" / "0.jpg") as im:
        want = np.asarray(im.convert("RGB").resize((32, 24), Image.Resampling.BILINEAR))
    assert np.array_equal(d.x[0], want)
    n = evaldata.load(root, _io([-1, 24, 32, 3]), resize="nearest")
    assert not np.array_equal(n.x, d.x)


def test_image_folder_channels_and_layout(tmp_path):
    root = _folder(tmp_path / "imgs")
    gray = evaldata.load(root, _io([-1, 16, 16, 1]))
    assert gray.x.shape == (4, 16, 16, 1)
    with Image.open(root / "cat" / "0.jpg") as im:
        want = np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(gray.x[0, :, :, 0], want)
    nchw = evaldata.load(root, _io([1, 3, 16, 16]))
    nhwc = evaldata.load(root, _io([1, 16, 16, 3]))
    assert nchw.x.shape == (4, 3, 16, 16)
    assert np.array_equal(nchw.x, nhwc.x.transpose(0, 3, 1, 2))


def test_image_folder_needs_a_fixed_image_size(tmp_path):
    root = _folder(tmp_path / "imgs")
    with pytest.raises(DataError, match=r"dynamic image size.*--input-shape img=1,H,W,C"):
        evaldata.load(root, _io([-1, -1, -1, 3]))
    d = evaldata.load(root, _io([-1, -1, -1, 3]), input_shapes={"img": [1, 10, 12, 3]})
    assert d.x.shape == (4, 10, 12, 3)
    with pytest.raises(DataError, match="not an image of 1, 3 or 4 channels"):
        evaldata.load(root, _io([-1, 20]))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        evaldata.load(tmp_path / "empty", _io([-1, 8, 8, 3]))


def test_broken_image_is_named(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "cat" / "9.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"9.png: not a readable image"):
        evaldata.load(root, _io([-1, 8, 8, 3]))


def test_stage_is_deterministic_and_content_addressed(tmp_path, monkeypatch):
    x = np.random.RandomState(0).randint(0, 255, (50, 6, 6, 3)).astype(np.uint8)
    d = evaldata.EvalData(x, np.arange(50) % 3, "src", "images", 1 / 255, 0.0, ("a", "b", "c"))
    monkeypatch.setenv("EDGEQ_CACHE_DIR", str(tmp_path / "c1"))
    a = evaldata.stage(d)
    monkeypatch.setenv("EDGEQ_CACHE_DIR", str(tmp_path / "c2"))
    b = evaldata.stage(d)
    assert a != b and a.name == b.name and a.read_bytes() == b.read_bytes()
    mtime = b.stat().st_mtime_ns
    assert evaldata.stage(d) == b and b.stat().st_mtime_ns == mtime  # reused, not rewritten
    with np.load(a) as f:
        assert np.array_equal(f["x"], x) and f["y"].tolist() == (np.arange(50) % 3).tolist()
        assert float(f["preprocess_scale"]) == 1 / 255 and f["preprocess_scale"].ndim == 0
        assert float(f["preprocess_offset"]) == 0.0
    small = evaldata.stage(d, limit=10)
    with np.load(small) as f:
        assert len(f["y"]) == 10
    assert evaldata.stage(d, limit=10) == small
    plain = evaldata.stage(evaldata.EvalData(x, np.arange(50) % 3, "src", "npz"))
    with np.load(plain) as f:
        assert sorted(f.files) == ["x", "y"]  # no keys: the runner's rule applies


def test_staged_folder_is_read_by_the_runner(foreign):
    m = foreign["float_rgb"]
    io = devapi.model_io(m.path)
    d = evaldata.load(m.image_dir, io)
    assert d.class_names == COLOUR_CLASSES and d.x.shape == (30, 64, 64, 3)
    x, y, scale, offset = devapi.load_eval_data(str(evaldata.stage(d)))
    assert np.array_equal(x, d.x) and np.array_equal(y, d.y) and scale is offset is None


def test_data_fields_validate_as_a_config_section():
    ok = config.validate_section("edgeq.toml [data]", {"resize": "nearest"}, evaldata.DATA_FIELDS)
    assert ok == {
        "path": "",
        "preprocess_scale": None,
        "preprocess_offset": None,
        "resize": "nearest",
    }
    got = config.validate_section(
        "t", {"preprocess_scale": 0.5, "path": "d.npz"}, evaldata.DATA_FIELDS
    )
    assert got["preprocess_scale"] == 0.5 and got["path"] == "d.npz"
    with pytest.raises(ConfigError, match="'resize' must be one of nearest, bilinear"):
        config.validate_section("t", {"resize": "cubic"}, evaldata.DATA_FIELDS)
