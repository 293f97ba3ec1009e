"""edgeq.data: source precedence, validation, preprocessing, subsets."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq import data
from edgeq.errors import DataError

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`


def test_data_path_as_file_and_folder(data_dir):
    by_file = data.load("mnist", data_dir / "mnist.npz")
    by_dir = data.load("mnist", data_dir)
    assert by_file.source == by_dir.source == str(data_dir / "mnist.npz")
    assert by_file.x_train.shape == (4000, 28, 28) and by_file.x_train.dtype == np.uint8


def test_env_dir_is_used_when_no_path(monkeypatch, data_dir):
    monkeypatch.setenv("EDGEQ_DATA_DIR", str(data_dir))
    assert data.load("fashion_mnist").source == str(data_dir / "fashion_mnist.npz")


def test_explicit_path_beats_env(monkeypatch, data_dir, tmp_path):
    monkeypatch.setenv("EDGEQ_DATA_DIR", str(tmp_path))  # holds nothing
    assert data.load("mnist", data_dir).source.endswith("mnist.npz")


def test_env_dir_without_file_falls_through_to_download(monkeypatch, tmp_path):
    import keras

    calls = []

    def offline():
        calls.append(1)
        raise Exception("URL fetch failure on https://x/mnist.npz: [Errno -2] Name not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    monkeypatch.setenv("EDGEQ_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as exc:
        data.load("mnist")
    assert calls == [1]
    msg = str(exc.value)
    assert "--data PATH" in msg and "EDGEQ_DATA_DIR" in msg and "\n" not in msg


def test_offline_cli_error_is_one_line_exit_2(cli, monkeypatch, tmp_path):
    import keras

    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: (_ for _ in ()).throw(OSError("offline"))
    )
    res = cli("train", "--epochs", "1", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "--data PATH" in res.stderr
    assert not (tmp_path / "o" / "model.keras").exists()


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.pop("y_test"), "missing key 'y_test'"),
        (
            lambda d: d.update(x_train=d["x_train"].astype(np.float32)),
            "key 'x_train' must be uint8",
        ),
        (lambda d: d.update(x_test=d["x_test"][:, :, :, None]), "key 'x_test' must be uint8"),
        (lambda d: d.update(y_train=d["y_train"][:10]), "key 'y_train' must have shape [20]"),
    ],
)
def test_bad_files_name_the_key(tmp_path, mutate, fragment):
    arrays = {
        "x_train": np.zeros((20, 28, 28), np.uint8),
        "y_train": np.zeros(20, np.uint8),
        "x_test": np.zeros((5, 28, 28), np.uint8),
        "y_test": np.zeros(5, np.uint8),
    }
    mutate(arrays)
    f = tmp_path / "mnist.npz"
    np.savez(f, **arrays)
    with pytest.raises(DataError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        data.load("mnist", f)


def test_not_an_npz(tmp_path):
    f = tmp_path / "mnist.npz"
    f.write_text("hello")
    with pytest.raises(DataError, match="not a .npz archive"):
        data.load("mnist", f)


def test_unknown_dataset_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        data.load("cifar")
    with pytest.raises(DataError, match="no such file or folder"):
        data.load("mnist", tmp_path / "nope.npz")
    with pytest.raises(DataError, match="no mnist.npz in that folder"):
        data.load("mnist", tmp_path)


def test_preprocessing_is_the_books():
    x = np.array([[[0, 255], [127, 128]]], dtype=np.uint8)
    p = data.preprocess(x)
    assert p.shape == (1, 2, 2, 1) and p.dtype == np.float32
    np.testing.assert_allclose(p[..., 0], x / 127.5 - 1, atol=1e-6)
    assert p.min() == -1.0 and p.max() == 1.0


def test_limit_is_deterministic_and_balanced_enough(data_dir):
    a = data.load("mnist", data_dir, limit=500)
    b = data.load("mnist", data_dir, limit=500)
    assert np.array_equal(a.x_train, b.x_train) and len(a.x_train) == 500
    assert len(np.unique(a.y_train)) == 10
    with pytest.raises(DataError, match="--limit must be a positive"):
        data.load("mnist", data_dir, limit=0)
