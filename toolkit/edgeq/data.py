"""Datasets in the Keras `.npz` layout: where to find them, how to check and prepare them.

Sources, in order: `--data PATH` (a file, or a folder holding `<dataset>.npz`), the folder
in `EDGEQ_DATA_DIR`, then the Keras download (which needs a network).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .devapi import DEFAULT_INPUT_OFFSET, DEFAULT_INPUT_SCALE, prepare_images
from .errors import DataError

DATASETS = ("mnist", "fashion_mnist")
ENV_DIR = "EDGEQ_DATA_DIR"
SUBSET_SEED = 0

_EXPECTED = {
    "x_train": ("uint8", 3),
    "y_train": ("int", 1),
    "x_test": ("uint8", 3),
    "y_test": ("int", 1),
}


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    #: what calibration and validation draw from, for messages ("" for your own samples)
    split: str = "train split"

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def check_name(dataset: str) -> str:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return dataset


def resolve(dataset: str, data: Path | None = None) -> Path | None:
    """The local file to use for `dataset`, or None when only the download is left."""
    check_name(dataset)
    if data is not None:
        p = Path(data).expanduser()
        if p.is_dir():
            f = p / f"{dataset}.npz"
            if not f.is_file():
                raise DataError(f"--data {p}: no {dataset}.npz in that folder")
            return f
        if not p.is_file():
            raise DataError(f"--data {p}: no such file or folder")
        return p
    env = os.environ.get(ENV_DIR)
    if env:
        f = Path(env).expanduser() / f"{dataset}.npz"
        if f.is_file():
            return f
    return None


def load(dataset: str = "mnist", data: Path | None = None, limit: int | None = None) -> Dataset:
    """Load and validate a dataset; `limit` keeps a deterministic subset of each split."""
    path = resolve(dataset, data)
    if path is None:
        arrays, source = _download(dataset), f"keras download ({dataset})"
    else:
        arrays, source = _read_npz(path), str(path)
    _validate(arrays, source)
    ds = Dataset(name=dataset, source=source, **arrays)
    if limit is not None:
        ds = subset(ds, limit)
    return ds


#: What a dataset file is, for messages (never numpy's own advice: no pickles here).
LAYOUT = (
    "a dataset file is a .npz archive (as numpy.savez writes it) holding x_train and x_test "
    "(uint8 images [N, H, W]) and y_train and y_test (integer labels [N]), the layout of "
    "Keras' mnist.npz"
)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: a single .npy array, not a .npz archive; {LAYOUT}")
    if not magic.startswith(b"PK"):
        raise DataError(f"{path}: not a .npz archive; {LAYOUT}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _EXPECTED if k not in f.files]
            if missing:
                raise DataError(
                    f"{path}: missing key {missing[0]!r} (found {sorted(f.files)}); {LAYOUT}"
                )
            return {k: f[k] for k in _EXPECTED}
    except DataError:
        raise
    except Exception as exc:
        why = "an array holds Python objects" if "pickle" in str(exc) else type(exc).__name__
        raise DataError(
            f"{path}: not a readable .npz archive ({why}; truncated or damaged?); {LAYOUT}"
        ) from None


def _download(dataset: str) -> dict[str, np.ndarray]:
    import keras  # deferred: Keras loads TensorFlow, only needed for the download

    loader = getattr(keras.datasets, dataset)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress on stdout
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160]
        raise DataError(
            f"cannot get {dataset}: no local file and the Keras download failed ({reason}); "
            f"point at a local {dataset}.npz with --data PATH or set {ENV_DIR}=FOLDER"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _validate(arrays: dict[str, np.ndarray], source: str) -> None:
    for key, (kind, ndim) in _EXPECTED.items():
        a = arrays[key]
        ok_kind = a.dtype == np.uint8 if kind == "uint8" else a.dtype.kind in "iu"
        if not ok_kind or a.ndim != ndim:
            want = "uint8 [N, H, W]" if kind == "uint8" else "integer [N]"
            raise DataError(f"{source}: key {key!r} must be {want}, got {a.dtype} {list(a.shape)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{source}: key 'y_{split}' must have shape [{x.shape[0]}] to match "
                f"'x_{split}', got {list(y.shape)}"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{source}: key 'x_test' must have images of shape "
            f"{list(arrays['x_train'].shape[1:])} like 'x_train', "
            f"got {list(arrays['x_test'].shape[1:])}"
        )


def subset_indices(n: int, limit: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """A deterministic, shuffled choice of min(limit, n) indices, in ascending order."""
    if limit <= 0:
        raise DataError(f"--limit must be a positive number of samples, got {limit}")
    rng = np.random.RandomState(seed)
    return np.sort(rng.permutation(n)[: min(limit, n)])


def subset(ds: Dataset, limit: int) -> Dataset:
    tr = subset_indices(len(ds.x_train), limit)
    te = subset_indices(len(ds.x_test), limit)
    return Dataset(
        name=ds.name,
        x_train=ds.x_train[tr],
        y_train=ds.y_train[tr],
        x_test=ds.x_test[te],
        y_test=ds.y_test[te],
        source=f"{ds.source} (subset of {limit})",
    )


def preprocess(images: np.ndarray) -> np.ndarray:
    """The book's preprocessing: float32 in [-1, 1] (x / 127.5 - 1) with a channel axis.

    The same function the device runner applies, so host and device see identical inputs.
    """
    return prepare_images(images, DEFAULT_INPUT_SCALE, DEFAULT_INPUT_OFFSET)
