"""Models nobody here wrote: small foreign .tflite files (and tiny datasets) built for tests.

edgeq must benchmark and evaluate any model, not only its own MNIST CNN. These are
built with Keras or a `tf.function` and converted with the TFLite converter, the way a
user's models are made elsewhere; weights are random or trained for a few seconds.

    float_rgb      float32 [1, 64, 64, 3] -> [1, 3] softmax (3 colour classes), with an
                   .npz of float images and an image folder (CLASS/*.png|jpg at 80x72)
    uint8_gray     full-int8, uint8 input [1, 48, 48, 1] -> int8 [1, 4] (4 stripe classes),
                   with an .npz of uint8 images; its float32 sibling shares a manifest
    two_inputs     inputs a float32 [1, 16] and b float32 [1, 8] -> [1, 5]; the output
                   depends on both
    dynamic_batch  float32 [-1, 20] (dynamic batch) -> [-1, 6]
    dynamic_seq    float32 [1, -1, 8] (dynamic sequence length) -> [1, 4]
    regression     float32 [1, 10] -> [1, 1] (not a classifier)
    mixed_dtypes   seven inputs: float32, float16, int8, uint8, int16, int32, bool -> [1, 4]

Built once per machine and cached under $EDGEQ_TEST_CACHE (keyed by this file and the
TensorFlow version), so a test session pays only for the first build.

`mobilenet_v2_035(out)` builds a random-weight MobileNetV2 α=0.35 float32 at 224×224
(keras.applications with weights=None: nothing is downloaded) for bench/harness.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.device_venv import cache_root

SEED = 0
#: class folder names of float_rgb's image folder, in label order (they sort that way)
COLOUR_CLASSES = ("0_red", "1_green", "2_blue")
#: The models every foreign-model deploy and lab test runs, and a budget they all pass.
REQUIRED = ("float_rgb", "uint8_gray", "two_inputs", "dynamic_batch", "regression")
BUDGET = {"max_model_kb": 200, "max_latency_ms": 200, "min_accuracy": 0.0,
          "max_accuracy_drop_pp": 100}  # fmt: skip


@dataclass(frozen=True)
class ForeignModel:
    """One built model: its file, and where its matching data lives (if any)."""

    name: str
    path: Path
    npz: Path | None = None
    image_dir: Path | None = None
    classes: int | None = None
    float_sibling: Path | None = None
    notes: dict = field(default_factory=dict)


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    return tf


def _convert_keras(model, representative=None, input_type=None, output_type=None) -> bytes:
    import contextlib
    import io

    tf = _quiet_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = input_type
        conv.inference_output_type = output_type
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel
        return conv.convert()


def _convert_function(fn, specs) -> bytes:
    tf = _quiet_tf()
    concrete = fn.get_concrete_function(*specs)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    return conv.convert()


# --------------------------------------------------------------------------- datasets


def colour_images(n: int, size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images [n, H, W, 3] whose class (0 red, 1 green, 2 blue) is the dominant
    channel, over noise: learnable in a few epochs by a tiny conv net."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, size=n).astype(np.int64)
    x = rng.randint(0, 90, size=(n, size[0], size[1], 3))
    for i, c in enumerate(y):
        x[i, :, :, c] += 120 + rng.randint(0, 40)
    return np.clip(x, 0, 255).astype(np.uint8), y


def stripe_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 grey images [n, size, size, 1]: 4 classes of stripes (horizontal, vertical,
    diagonal, blank) over noise."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 4, size=n).astype(np.int64)
    r, c = np.mgrid[0:size, 0:size]
    patterns = [(r // 4) % 2, (c // 4) % 2, ((r + c) // 4) % 2, np.zeros_like(r)]
    x = np.empty((n, size, size, 1), np.uint8)
    for i, k in enumerate(y):
        noise = rng.randint(0, 60, size=(size, size))
        x[i, :, :, 0] = np.clip(patterns[k] * 180 + noise, 0, 255)
    return x, y


def write_image_folder(root: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> Path:
    """CLASS_NAME/NNN.png|jpg (every third image a JPEG) from uint8 RGB images."""
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        d = root / names[int(label)]
        d.mkdir(parents=True, exist_ok=True)
        ext = "jpg" if i % 3 == 2 else "png"
        Image.fromarray(img).save(d / f"{i:03d}.{ext}", quality=95)
    return root


# --------------------------------------------------------------------------- builders


def _float_rgb(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    x, y = colour_images(240, (64, 64), SEED)
    xf = x.astype(np.float32) / 255.0
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3), name="image"),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(xf, y, epochs=8, batch_size=32, verbose=0)
    path = out / "float_rgb.tflite"
    path.write_bytes(_convert_keras(model))
    xt, yt = colour_images(48, (64, 64), SEED + 1)
    npz = out / "float_rgb_eval.npz"
    np.savez(npz, x=xt.astype(np.float32) / 255.0, y=yt)
    # the same kind of images at another size, as a folder (resized to 64x64 when staged);
    # folder names sort to the model's class ids
    xi, yi = colour_images(30, (72, 80), SEED + 2)
    folder = write_image_folder(out / "float_rgb_images", xi, yi, list(COLOUR_CLASSES))
    return ForeignModel(
        "float_rgb",
        path,
        npz=npz,
        image_dir=folder,
        classes=3,
        notes={"preprocess_scale": 1 / 255.0, "preprocess_offset": 0.0},
    )


def _uint8_gray(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    x, y = stripe_images(320, 48, SEED)
    xf = x.astype(np.float32) / 255.0
    model = keras.Sequential(
        [
            keras.Input((48, 48, 1), name="gray"),
            keras.layers.Conv2D(6, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(xf, y, epochs=10, batch_size=32, verbose=0)

    def representative():
        for i in range(100):
            yield [xf[i : i + 1]]

    path = out / "model_int8.tflite"
    path.write_bytes(_convert_keras(model, representative, tf.uint8, tf.int8))
    sibling = out / "model_float32.tflite"
    sibling.write_bytes(_convert_keras(model))
    # a manifest as `edgeq convert` writes one, so hosts find the float32 sibling
    src = hashlib.sha256(b"uint8_gray-keras-model").hexdigest()
    entries = []
    for mode, f in (("float32", sibling), ("int8", path)):
        entries.append(
            {
                "mode": mode,
                "file": f.name,
                "bytes": f.stat().st_size,
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "source_model_sha256": src,
                "dataset": None,
            }
        )
    (out / "manifest.json").write_text(
        json.dumps({"schema": "edgeq.manifest/1", "artifacts": entries}, indent=1)
    )
    xt, yt = stripe_images(64, 48, SEED + 1)
    npz = out / "uint8_gray_eval.npz"
    np.savez(npz, x=xt, y=yt)
    return ForeignModel("uint8_gray", path, npz=npz, classes=4, float_sibling=sibling)


def _two_inputs(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    a = keras.Input((16,), name="a")
    b = keras.Input((8,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.Dense(12, activation="tanh")(h)
    o = keras.layers.Dense(5)(h)
    model = keras.Model([a, b], o)
    path = out / "two_inputs.tflite"
    path.write_bytes(_convert_keras(model))
    return ForeignModel("two_inputs", path, classes=5)


def _dynamic_batch(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [keras.Input((20,), name="features"), keras.layers.Dense(6, activation="softmax")]
    )
    path = out / "dynamic_batch.tflite"
    path.write_bytes(_convert_keras(model))
    rng = np.random.RandomState(SEED)
    npz = out / "dynamic_batch_eval.npz"
    np.savez(npz, x=rng.uniform(-1, 1, (40, 20)).astype(np.float32), y=rng.randint(0, 6, 40))
    return ForeignModel("dynamic_batch", path, npz=npz, classes=6)


def _dynamic_seq(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    rng = np.random.RandomState(SEED)
    w = tf.constant(rng.normal(size=(8, 4)).astype(np.float32))

    @tf.function
    def fn(seq):
        return tf.matmul(tf.reduce_mean(seq, axis=1), w)

    path = out / "dynamic_seq.tflite"
    path.write_bytes(_convert_function(fn, [tf.TensorSpec([1, None, 8], tf.float32, "seq")]))
    return ForeignModel("dynamic_seq", path, classes=4)


def _regression(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((10,), name="x"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    path = out / "regression.tflite"
    path.write_bytes(_convert_keras(model))
    rng = np.random.RandomState(SEED)
    npz = out / "regression_eval.npz"
    np.savez(npz, x=rng.uniform(-1, 1, (16, 10)).astype(np.float32), y=rng.randint(0, 2, 16))
    return ForeignModel("regression", path, npz=npz)


MIXED_NAMES = ("f32", "f16", "i8", "u8", "i16", "i32", "flag")


def _mixed_dtypes(out: Path) -> ForeignModel:
    tf = _quiet_tf()
    dtypes = (tf.float32, tf.float16, tf.int8, tf.uint8, tf.int16, tf.int32, tf.bool)

    @tf.function
    def fn(f32, f16, i8, u8, i16, i32, flag):
        parts = [f32, tf.cast(f16, tf.float32)]
        parts += [tf.cast(t, tf.float32) for t in (i8, u8, i16, i32)]
        total = tf.add_n([p * float(k + 1) for k, p in enumerate(parts)])
        return tf.where(flag, total, -total)

    specs = [tf.TensorSpec([1, 4], d, n) for d, n in zip(dtypes, MIXED_NAMES, strict=True)]
    path = out / "mixed_dtypes.tflite"
    path.write_bytes(_convert_function(fn, specs))
    return ForeignModel("mixed_dtypes", path)


BUILDERS = {
    "float_rgb": _float_rgb,
    "uint8_gray": _uint8_gray,
    "two_inputs": _two_inputs,
    "dynamic_batch": _dynamic_batch,
    "dynamic_seq": _dynamic_seq,
    "regression": _regression,
    "mixed_dtypes": _mixed_dtypes,
}


def _key() -> str:
    tf = _quiet_tf()
    src = Path(__file__).read_bytes()
    return hashlib.sha256(src + tf.__version__.encode()).hexdigest()[:12]


def build_all(root: Path | None = None) -> dict[str, ForeignModel]:
    """Build (or reuse) every foreign model; each in its own folder under the cache."""
    root = root or cache_root() / f"foreign-models-{_key()}"
    root.parent.mkdir(parents=True, exist_ok=True)
    index = root / "index.json"
    with open(root.parent / ".foreign-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index.is_file():
            shutil.rmtree(root, ignore_errors=True)
            built = {}
            for name, build in BUILDERS.items():
                folder = root / name
                folder.mkdir(parents=True)
                built[name] = build(folder)
            index.write_text(json.dumps({n: _to_json(m) for n, m in built.items()}, indent=1))
    return {n: _from_json(d) for n, d in json.loads(index.read_text()).items()}


def _to_json(m: ForeignModel) -> dict:
    return {
        "name": m.name,
        "path": str(m.path),
        "npz": str(m.npz) if m.npz else None,
        "image_dir": str(m.image_dir) if m.image_dir else None,
        "classes": m.classes,
        "float_sibling": str(m.float_sibling) if m.float_sibling else None,
        "notes": m.notes,
    }


def _from_json(d: dict) -> ForeignModel:
    return ForeignModel(
        name=d["name"],
        path=Path(d["path"]),
        npz=Path(d["npz"]) if d["npz"] else None,
        image_dir=Path(d["image_dir"]) if d["image_dir"] else None,
        classes=d["classes"],
        float_sibling=Path(d["float_sibling"]) if d["float_sibling"] else None,
        notes=d["notes"],
    )


def mobilenet_v2_035(out: Path) -> Path:
    """A random-weight MobileNetV2 α=0.35 float32 at [1, 224, 224, 3] (no download)."""
    path = Path(out) / "mobilenet_v2_0.35_224_float32.tflite"
    if path.is_file():
        return path
    tf = _quiet_tf()
    tf.keras.utils.set_random_seed(SEED)
    model = tf.keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, weights=None, classes=1000
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(_convert_keras(model))
    os.replace(tmp, path)
    return path
