"""Your own evaluation data: an .npz or an image folder, checked and staged for the runner.

Two formats:

    .npz           `x` [N, ...] (uint8 or float; or the input's own dtype), `y` [N] integer
                   labels (optional: a detector's or a segmenter's data has none; its
                   outputs are compared with the host's), optional `preprocess_scale` /
                   `preprocess_offset`; a multi-input model's .npz holds one array per
                   input instead of `x`, keyed by the input's name (`image`, `vector`;
                   the tensor's name is accepted too), each [N, ...]
    image folder   CLASS_NAME/*.png|jpg|jpeg; classes sorted by name are labels 0, 1, ...;
                   each image is converted to the input's channels (L, RGB or RGBA) and
                   resized to its height x width with Pillow (`resize`, default bilinear,
                   no crop: the aspect ratio is not kept), giving uint8 [N, H, W, C] (or
                   [N, C, H, W] for a channels-first input)

How samples become inputs is the device runner's rule (`preprocessing_rule`): with
preprocess keys, x * scale + offset (then quantized for an integer input); without them,
data of the input's own dtype is fed as is (uint8 images to a uint8 model), uint8 data gets
the book's x / 127.5 - 1, and float data is used as is. `[data]` keys in edgeq.toml
(DATA_FIELDS) override the file's own keys.

`stage_dataset()` does the same for a known dataset's test split (uint8 images + labels +
the book's preprocessing), so the same data always has the same sha256 and a second deploy
sends nothing.

`stage()` writes the data as the .npz the runner reads, with deterministic bytes (fixed
zip timestamps) under a content-hash name, so the same data is the same file and a device
that has it is not sent it again.
"""

from __future__ import annotations

import hashlib
import io as _io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, fsutil, paths
from . import data as datasets
from .devapi import (
    DEFAULT_INPUT_OFFSET,
    DEFAULT_INPUT_SCALE,
    NON_SAMPLE_KEYS,
    ModelIO,
    RunnerFailure,
    load_eval_data,
    resolve_shapes,
)
from .errors import DataError, UsageError
from .fields import Field

RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}

#: The `[data]` table of edgeq.toml (config.py validates it with these).
DATA_FIELDS: dict[str, Field] = {
    "path": Field(
        (str,),
        "",
        "your evaluation data: an .npz with x and y, or a folder CLASS_NAME/*.png|jpg",
    ),
    "preprocess_scale": Field(
        (int, float),
        None,
        "float input = x * preprocess_scale + preprocess_offset (overrides the .npz's keys)",
        minimum=0,
        exclusive=True,
    ),
    "preprocess_offset": Field(
        (int, float), None, "added after preprocess_scale (may be negative, e.g. -1)"
    ),
    "resize": Field(
        (str,),
        "bilinear",
        "how image-folder images are resized to the model's input (Pillow)",
        False,
        RESIZE_METHODS,
    ),
}


@dataclass(frozen=True)
class EvalData:
    """Evaluation samples (labelled, or `y` None) and the preprocessing the runner applies.

    `x` is one array, or {input name: array} for a multi-input model."""

    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray | None
    source: str
    kind: str  # "npz" or "images"
    preprocess_scale: float | None = None
    preprocess_offset: float | None = None
    class_names: tuple[str, ...] | None = None
    resize: str | None = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """{key: samples}: `x`, or one key per input."""
        return dict(self.x) if isinstance(self.x, dict) else {"x": self.x}

    @property
    def multi(self) -> bool:
        return isinstance(self.x, dict)

    @property
    def samples(self) -> int:
        return len(next(iter(self.arrays.values())))

    def describe(self) -> str:
        if isinstance(self.x, dict):
            each = ", ".join(f"{k} {list(a.shape[1:])} {a.dtype}" for k, a in self.x.items())
            what = f"{self.samples} samples of {each}"
        else:
            what = f"{self.samples} samples of {list(self.x.shape[1:])} {self.x.dtype}"
        if self.y is None:
            what += ", unlabelled"
        if self.class_names:
            what += f", {len(self.class_names)} classes, resized {self.resize}"
        return f"{self.source} ({what})"

    def to_dict(self) -> dict[str, Any]:
        """What the data is, without the arrays."""
        return {
            "source": self.source,
            "kind": self.kind,
            "samples": self.samples,
            "sample_shape": None if self.multi else list(self.arrays["x"].shape[1:]),
            "dtype": None if self.multi else str(self.arrays["x"].dtype),
            "inputs": {
                k: {"sample_shape": list(a.shape[1:]), "dtype": str(a.dtype)}
                for k, a in self.arrays.items()
            }
            if self.multi
            else None,
            "labelled": self.y is not None,
            "preprocess_scale": self.preprocess_scale,
            "preprocess_offset": self.preprocess_offset,
            "class_names": list(self.class_names) if self.class_names else None,
            "resize": self.resize,
        }


def kind_of(path: Path) -> str:
    """`keras` (a Keras-layout dataset: x_test…, or a folder holding <dataset>.npz),
    `npz` (x, and y when labelled), `images` (CLASS_NAME/ folders of images); DataError
    otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        if any((p / f"{name}.npz").is_file() for name in datasets.DATASETS):
            return "keras"
        if any(c.is_dir() for c in p.iterdir()):
            return "images"
        raise DataError(
            f"{p}: neither an image folder (CLASS_NAME/*.png|jpg) nor a folder of datasets"
        )
    if not p.is_file():
        raise DataError(f"evaluation data not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
    except Exception as exc:
        raise DataError(f"{p}: not a readable .npz file ({exc})") from None
    if "x_test" in keys and "y_test" in keys and "x" not in keys:
        return "keras"
    if "x" in keys or keys - set(NON_SAMPLE_KEYS) - {"x_train", "y_train"}:
        return "npz"  # x, or one array per input of a multi-input model
    raise DataError(
        f"{p}: an evaluation .npz holds samples 'x' (a multi-input model: one array per "
        f"input name) and labels 'y' (the labels only for a classifier's accuracy; found "
        f"keys {sorted(keys)})"
    )


def load(
    path: Path,
    io: ModelIO | None = None,
    *,
    preprocess_scale: float | None = None,
    preprocess_offset: float | None = None,
    resize: str = "bilinear",
    input_shapes: dict[str, list[int]] | None = None,
) -> EvalData:
    """Load an .npz or an image folder (which needs the model `io` for its size and
    channels). Explicit preprocess values override the .npz's own keys."""
    kind = kind_of(path)
    if kind == "images":
        if io is None:
            raise DataError(f"{path}: an image folder needs the model to size its images")
        data = load_images(Path(path), io, resize, input_shapes)
    elif kind == "npz":
        data = load_npz(Path(path))
    else:
        raise DataError(
            f"{path}: a Keras-layout dataset (x_train/x_test); use it with --dataset, or "
            "give an .npz with x and y"
        )
    if preprocess_scale is not None or preprocess_offset is not None:
        data = EvalData(
            data.x,
            data.y,
            data.source,
            data.kind,
            preprocess_scale if preprocess_scale is not None else data.preprocess_scale,
            preprocess_offset if preprocess_offset is not None else data.preprocess_offset,
            data.class_names,
            data.resize,
        )
    return data


def load_npz(path: Path) -> EvalData:
    """`x`, `y` and optional preprocess keys, checked as the runner checks them."""
    try:
        x, y, scale, offset = load_eval_data(str(path))
    except RunnerFailure as exc:
        raise DataError(exc.message) from None
    return EvalData(x, y, str(path), "npz", scale, offset)


def image_geometry(
    io: ModelIO, input_shapes: dict[str, list[int]] | None = None
) -> tuple[int, int, int, bool]:
    """(height, width, channels, channels_first) of the model's one image input."""
    if len(io.inputs) != 1:
        raise DataError(
            f"an image folder feeds one input, and {Path(io.path).name} has "
            f"{len(io.inputs)} ({io.describe_inputs()})"
        )
    inp = io.inputs[0]
    try:
        shape = resolve_shapes(io, input_shapes)[0]
    except UsageError:
        shape = list(inp.shape_signature)
    if any(v < 1 for v in shape[1:]):
        raise DataError(
            f"{Path(io.path).name}: input {inp.describe()} has a dynamic image size; set it "
            f"with --input-shape {inp.short_name}=1,H,W,C to resize the images to"
        )
    if len(shape) == 3:
        return shape[1], shape[2], 1, False
    if len(shape) == 4 and shape[3] in _MODES:
        return shape[1], shape[2], shape[3], False
    if len(shape) == 4 and shape[1] in _MODES:
        return shape[2], shape[3], shape[1], True
    raise DataError(
        f"{Path(io.path).name}: input {inp.describe()} is not an image of 1, 3 or 4 channels; "
        "give an .npz with x shaped like the input instead of an image folder"
    )


def load_images(
    folder: Path,
    io: ModelIO,
    resize: str = "bilinear",
    input_shapes: dict[str, list[int]] | None = None,
) -> EvalData:
    """CLASS_NAME/*.png|jpg -> uint8 images at the input's size, labels = sorted class index."""
    from PIL import Image, UnidentifiedImageError  # deferred: only image folders need Pillow

    if resize not in RESIZE_METHODS:
        raise DataError(f"resize {resize!r}: choose one of {', '.join(RESIZE_METHODS)}")
    height, width, channels, channels_first = image_geometry(io, input_shapes)
    classes = sorted(c.name for c in Path(folder).iterdir() if c.is_dir())
    method = getattr(Image.Resampling, resize.upper())
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            f for f in (Path(folder) / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
        )
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert(_MODES[channels])
                    if im.size != (width, height):
                        im = im.resize((width, height), method)
                    a = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from None
            images.append(a.reshape(height, width, channels))
            labels.append(label)
    if not images:
        raise DataError(
            f"{folder}: no images; lay it out as CLASS_NAME/*.png|jpg (one folder per class)"
        )
    x = np.stack(images)
    if channels_first:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return EvalData(
        x,
        np.asarray(labels, dtype=np.int64),
        str(folder),
        "images",
        class_names=tuple(classes),
        resize=resize,
    )


def subset(data: EvalData, limit: int | None) -> EvalData:
    """A deterministic subset of `limit` samples (the same choice as the MNIST staging)."""
    if not limit or limit >= data.samples:
        return data
    idx = datasets.subset_indices(data.samples, limit)
    x = {k: a[idx] for k, a in data.x.items()} if isinstance(data.x, dict) else data.x[idx]
    return EvalData(
        x,
        None if data.y is None else data.y[idx],
        f"{data.source} (subset of {limit})",
        data.kind,
        data.preprocess_scale,
        data.preprocess_offset,
        data.class_names,
        data.resize,
    )


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (np.load reads it) whose bytes depend only on the arrays: keys in the given
    order, fixed timestamps, deflate."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                a = np.asarray(value)
                a = np.ascontiguousarray(a) if a.ndim else a  # keep scalars 0-d
                np.lib.format.write_array(fh, a, allow_pickle=False)
    return buf.getvalue()


def stage(data: EvalData, limit: int | None = None) -> Path:
    """The .npz the runner reads (x or one array per input, y when labelled, and the
    preprocess keys when set), named by its content hash under the edgeq cache; written
    once, reused afterwards."""
    data = subset(data, limit)
    arrays: dict[str, np.ndarray] = {k: np.asarray(a) for k, a in data.arrays.items()}
    if data.y is not None:
        arrays["y"] = np.asarray(data.y).astype(np.int64)
    if data.preprocess_scale is not None:
        arrays["preprocess_scale"] = np.float64(data.preprocess_scale)
    if data.preprocess_offset is not None:
        arrays["preprocess_offset"] = np.float64(data.preprocess_offset)
    blob = npz_bytes(arrays)
    digest = hashlib.sha256(blob).hexdigest()
    out = paths.cache_root() / "staging" / f"data-{digest[:24]}.npz"
    if not (out.is_file() and fsutil.sha256_file(out) == digest):
        fsutil.write_bytes(out, blob)
    return out


def stage_dataset(dataset: str, data_path: Path | None = None, limit: int | None = None) -> Path:
    """The staged evaluation file for the dataset's test split (cached by content)."""
    source = datasets.resolve(dataset, data_path)
    src_id = fsutil.sha256_file(source) if source else f"download:{dataset}"
    key = fsutil.sha256_bytes(f"{src_id}|{limit}|{__version__}".encode())[:20]
    out = paths.cache_root() / "staging" / f"{dataset}-test-{key}.npz"
    if out.is_file():
        return out
    ds = datasets.load(dataset, data_path)
    x, y = ds.x_test, ds.y_test
    if limit:
        idx = datasets.subset_indices(len(x), limit)
        x, y = x[idx], y[idx]
    with fsutil.atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            x=np.ascontiguousarray(x, dtype=np.uint8),
            y=np.ascontiguousarray(y).astype(np.uint8),
            preprocess_scale=np.float64(DEFAULT_INPUT_SCALE),
            preprocess_offset=np.float64(DEFAULT_INPUT_OFFSET),
        )
    return out


__all__ = [
    "DATA_FIELDS",
    "IMAGE_SUFFIXES",
    "RESIZE_METHODS",
    "EvalData",
    "image_geometry",
    "kind_of",
    "load",
    "load_images",
    "load_npz",
    "npz_bytes",
    "stage",
    "stage_dataset",
    "subset",
]
