"""Real-world-shaped models built in the tests (no model hub): what a detector, a segmenter
and a stateful model look like to edgeq, tiny, with unlabelled data (`x` only).

    detector     float32 [1, 32, 32, 3] -> boxes [1, 16, 4] and scores [1, 16, 1] (two
                 outputs, a detection head)
    segmenter    float32 [1, 32, 32, 3] -> mask [1, 32, 32, 1] (conv down, transposed
                 convolution up, sigmoid)
    stateful     float32 [1, 8] -> [1, 8]: keeps a tf.Variable between calls (VAR_HANDLE,
                 READ_VARIABLE, ASSIGN_VARIABLE), like a streaming wake-word model
    two_inputs   image uint8 [1, 16, 16, 3] and vector float32 [1, 4] -> boxes [1, 4] and
                 score [1, 1] (two inputs of different dtypes and shapes, two outputs)

Each comes with `<name>.npz` holding `x` only (8 samples); two_inputs' holds one array per
input instead, keyed by the input's name (`image`, `vector`). Built once per machine under
$EDGEQ_TEST_CACHE, keyed by this file and the TensorFlow version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from tests.support.device_venv import cache_root
from tests.support.foreign_models import _convert_keras, _quiet_tf

SAMPLES = 8
NAMES = ("detector", "segmenter", "stateful")
MULTI = "two_inputs"


def _detector(tf):
    k = tf.keras
    inp = k.Input((32, 32, 3), batch_size=1, name="image")
    h = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    h = k.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(h)  # 4x4 cells
    boxes = k.layers.Reshape((16, 4), name="boxes")(k.layers.Conv2D(4, 1)(h))
    scores = k.layers.Reshape((16, 1), name="scores")(
        k.layers.Conv2D(1, 1, activation="sigmoid")(h)
    )
    return _convert_keras(k.Model(inp, [boxes, scores]))


def _segmenter(tf):
    k = tf.keras
    inp = k.Input((32, 32, 3), batch_size=1, name="image")
    h = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    h = k.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
    mask = k.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(h)
    return _convert_keras(k.Model(inp, mask))


def _stateful(tf):
    class Streaming(tf.Module):
        def __init__(self):
            super().__init__()
            self.state = tf.Variable(tf.zeros([1, 8]), trainable=False)
            self.w = tf.constant(np.random.RandomState(0).randn(8, 8).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="audio")])
        def __call__(self, x):
            new = 0.5 * self.state + tf.matmul(x, self.w)
            self.state.assign(new)
            return {"out": tf.tanh(new)}

    m = Streaming()
    concrete = m.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], m)
    conv.experimental_enable_resource_variables = True
    return conv.convert()


def _two_inputs(tf):
    return _convert_keras(_two_inputs_model(tf))


def _two_inputs_model(tf):
    k = tf.keras
    image = k.Input((16, 16, 3), batch_size=1, dtype="uint8", name="image")
    vector = k.Input((4,), batch_size=1, name="vector")
    h = k.layers.Rescaling(1 / 255.0)(k.ops.cast(image, "float32"))
    h = k.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(h)
    h = k.layers.Concatenate()([k.layers.GlobalAveragePooling2D()(h), vector])
    h = k.layers.Dense(8, activation="tanh")(h)
    boxes = k.layers.Dense(4, name="boxes")(h)
    score = k.layers.Dense(1, activation="sigmoid", name="score")(h)
    return k.Model([image, vector], [boxes, score])


def multi_data(seed: int = 4) -> dict[str, np.ndarray]:
    """two_inputs' samples: {input name: [SAMPLES, ...]} in each input's own dtype."""
    rng = np.random.RandomState(seed)
    return {
        "image": rng.randint(0, 256, (SAMPLES, 16, 16, 3)).astype(np.uint8),
        "vector": rng.uniform(-1, 1, (SAMPLES, 4)).astype(np.float32),
    }


def _data(name: str) -> np.ndarray:
    rng = np.random.RandomState({"detector": 1, "segmenter": 2, "stateful": 3}[name])
    if name == "stateful":
        return rng.uniform(-1, 1, (SAMPLES, 8)).astype(np.float32)
    return rng.uniform(-1, 1, (SAMPLES, 32, 32, 3)).astype(np.float32)


def build(root: Path | None = None) -> dict[str, tuple[Path, Path]]:
    """{name: (model.tflite, unlabelled data.npz)}, built once and cached."""
    tf = _quiet_tf()
    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()
    root = root or cache_root() / f"realworld-models-{key[:12]}"
    root.mkdir(parents=True, exist_ok=True)
    built = {n: (root / f"{n}.tflite", root / f"{n}.npz") for n in (*NAMES, MULTI)}
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, (model, data) in built.items():
            if not model.is_file():
                tf.keras.utils.set_random_seed(0)
                blob = {
                    "detector": _detector,
                    "segmenter": _segmenter,
                    "stateful": _stateful,
                    MULTI: _two_inputs,
                }[name](tf)
                tmp = model.with_suffix(".tmp")
                tmp.write_bytes(blob)
                os.replace(tmp, model)
            if not data.is_file():
                with open(data, "wb") as fh:
                    np.savez(fh, **(multi_data() if name == MULTI else {"x": _data(name)}))
    return built


def build_pair(root: Path | None = None) -> tuple[Path, Path, Path]:
    """two_inputs as `edgeq convert` leaves a model: model_float32.tflite and
    model_float16.tflite (float16 weights: outputs close to, not equal to, float32's) with a
    manifest naming one source model, and its data .npz. Returns (float16, float32, npz)."""
    tf = _quiet_tf()
    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()
    root = root or cache_root() / f"realworld-pair-{key[:12]}"
    root.mkdir(parents=True, exist_ok=True)
    f32, f16, npz = root / "model_float32.tflite", root / "model_float16.tflite", root / "data.npz"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "manifest.json").is_file():
            tf.keras.utils.set_random_seed(0)
            model = _two_inputs_model(tf)
            f32.write_bytes(_convert_keras(model))
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
            with contextlib.redirect_stdout(io.StringIO()):  # its SavedModel listing
                f16.write_bytes(conv.convert())
            with open(npz, "wb") as fh:
                np.savez(fh, **multi_data(seed=5))
            src = hashlib.sha256(b"two_inputs-keras-model").hexdigest()
            entries = [
                {
                    "mode": mode,
                    "file": f.name,
                    "bytes": f.stat().st_size,
                    "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                    "source_model_sha256": src,
                    "dataset": None,
                }
                for mode, f in (("float32", f32), ("float16", f16))
            ]
            tmp = root / "manifest.tmp"
            tmp.write_text(json.dumps({"schema": "edgeq.manifest/1", "artifacts": entries}))
            os.replace(tmp, root / "manifest.json")
    return f16, f32, npz
