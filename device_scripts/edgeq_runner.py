#!/usr/bin/env python3
"""edgeq device runner: benchmark a .tflite model ON the device and answer with one JSON document.

Self-contained on purpose: it needs only the Python standard library (3.8+), numpy (1.x or
2.x) and one TFLite interpreter package, tried in this order: ai_edge_litert, tflite_runtime,
tensorflow.lite. The host pushes this single file next to the model and runs it; the host
imports the very same functions (through `edgeq.devapi`: input preparation, quantization,
random inputs, accuracy) so host and device compute them with one implementation.

Any model: every input is fed (float32/16, int8, uint8, int16, int32, int64, bool), with
seeded random data in its valid range unless evaluation data feeds it; dynamic dimensions
are set with `--input-shape NAME=d0,d1,...`.

Usage:
    python3 edgeq_runner.py MODEL.tflite [--data EVAL.npz] [--threads N] [--runs N] [--min-s S]
                            [--warmup-runs N] [--warmup-min-s S] [--max-s S] [--out FILE]
                            [--input-shape NAME=1,224,224,3] [--input-range NAME=LOW,HIGH]
                            [--agreement N --agreement-seed S --outputs-out OUTPUTS.npz]
    python3 edgeq_runner.py --probe          # environment only (no numpy or interpreter needed)

The output schema is documented in device_scripts/README.md. Exit codes: 0 ok, 2 bad
arguments or an input left unset, 3 model cannot be loaded or fed, 4 evaluation data
unusable, 5 numpy or interpreter missing, 1 anything else. Every failure still prints a JSON
document with "ok": false.
"""

from __future__ import annotations

import argparse
import array
import functools
import glob
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import traceback

SCHEMA = "edgeq.run/1"
#: 1.3: "contention" (CPU time of other processes, load, steal); 1.4: data for every input
#: of a multi-input model (benchmark_inputs[].key, agreement.data_inputs), agreement on the
#: data's samples, agreement.state_reset / state_ops
RUNNER_VERSION = "1.5"
#: Timed runs kept per loop (invoke, end to end): the latency samples live in preallocated
#: arrays of this many 8-byte entries, so memory does not grow with --min-s; a steady state
#: that reaches it stops there (the document says so).
MAX_SAMPLES = 100_000
#: Latency samples kept in the result document (every k-th), for `edgeq compare`.
DOC_SAMPLES = 2000

#: The book's preprocessing: float32 in [-1, 1] = uint8 * (1/127.5) - 1.
DEFAULT_INPUT_SCALE = 1.0 / 127.5
DEFAULT_INPUT_OFFSET = -1.0

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_MODEL, EXIT_DATA, EXIT_MISSING = 0, 1, 2, 3, 4, 5

INTERPRETER_HINT = (
    "install an interpreter for this device's python: `python3 -m pip install ai-edge-litert` "
    "(or tflite-runtime, which needs numpy<2), then `edgeq doctor --target NAME`"
)


class RunnerFailure(Exception):
    """A known failure: becomes the JSON error document and the exit code."""

    def __init__(self, kind: str, message: str, exit_code: int, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


# --------------------------------------------------------------------------- interpreter


def find_interpreter():
    """Return (Interpreter class, package name, version), trying the packages in order."""
    errors = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", _dist_version("ai-edge-litert")
    except Exception as exc:  # ImportError, or a broken native library
        errors.append(f"ai_edge_litert: {exc}")
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime", _dist_version("tflite-runtime")
    except Exception as exc:
        errors.append(f"tflite_runtime: {exc}")
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow", tf.__version__
    except Exception as exc:
        errors.append(f"tensorflow: {exc}")
    raise RunnerFailure(
        "NoInterpreter",
        "no TFLite interpreter importable ({})".format("; ".join(errors)),
        EXIT_MISSING,
        INTERPRETER_HINT,
    )


@functools.lru_cache(maxsize=None)
def _dist_version(name: str) -> str | None:
    """The installed distribution's version (None: unknown). Cached: the host imports this
    module and asks on every model it opens (the lab: several per device), and each answer
    is a scan of sys.path (~1.5 ms of CPU here, in system calls)."""
    try:
        from importlib import metadata  # Python 3.8+
    except ImportError:  # pragma: no cover
        return None
    try:
        return metadata.version(name)
    except Exception:
        return None


def make_interpreter(interpreter_cls, model_path: str, threads: int | None = None):
    """Create an interpreter; a file that is not a model raises RunnerFailure(BadModel)."""
    try:
        if threads:
            return interpreter_cls(model_path=model_path, num_threads=int(threads))
        return interpreter_cls(model_path=model_path)
    except (ValueError, RuntimeError) as exc:
        text = _one_line(exc)
        if "Didn't find op" in text or "Registration failed" in text:
            raise RunnerFailure(
                "UnsupportedOp",
                f"this runtime cannot run {model_path}: {text}",
                EXIT_MODEL,
                "the model uses an operator version newer than the device's interpreter: "
                "upgrade it there (`python3 -m pip install -U ai-edge-litert`) or deploy a "
                "mode it supports",
            ) from None
        raise RunnerFailure(
            "BadModel",
            f"cannot load {model_path} as a TFLite model: {text}",
            EXIT_MODEL,
            "check the file is a .tflite flatbuffer (re-run `edgeq convert`)",
        ) from None


def tensor_info(detail: dict) -> dict:
    """One tensor as the run document lists it (name, shapes, dtype, quantization)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    signature = detail.get("shape_signature")
    if signature is None or len(signature) != len(detail["shape"]):
        signature = detail["shape"]
    return {
        "name": detail.get("name"),
        "index": int(detail["index"]) if "index" in detail else None,
        "shape": [int(v) for v in detail["shape"]],
        "shape_signature": [int(v) for v in signature],
        "dtype": _dtype_name(detail["dtype"]),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def _dtype_name(dtype) -> str:
    import numpy as np

    return np.dtype(dtype).name


def _info(detail) -> dict:
    """A tensor_info dict, from either an interpreter detail or a tensor_info already."""
    if isinstance(detail.get("shape"), list) and "shape_signature" in detail:
        return detail
    return tensor_info(detail)


# --------------------------------------------------------------------------- input shapes


def parse_input_shapes(items) -> dict:
    """`NAME=d0,d1,...` (repeatable) -> {NAME: [d0, d1, ...]}; RunnerFailure(BadInput) if not."""
    shapes = {}
    for item in items or ():
        name, sep, dims = str(item).rpartition("=")
        try:
            shape = [int(v) for v in dims.split(",")] if sep and name else None
        except ValueError:
            shape = None
        if not shape or any(v < 1 for v in shape):
            raise RunnerFailure(
                "BadInput",
                f"--input-shape {item!r}: expected NAME=d0,d1,... with positive sizes, "
                "e.g. --input-shape input=1,224,224,3",
                EXIT_USAGE,
            )
        shapes[name] = shape
    return shapes


def parse_input_ranges(items) -> dict:
    """`NAME=LOW,HIGH` (repeatable) -> {NAME: (low, high)} in the input's real values."""
    ranges = {}
    for item in items or ():
        name, sep, pair = str(item).rpartition("=")
        try:
            low, high = (float(v) for v in pair.split(","))
            ok = bool(sep and name) and math.isfinite(low) and math.isfinite(high) and low < high
        except ValueError:
            ok = False
        if not ok:
            raise RunnerFailure(
                "BadInput",
                f"--input-range {item!r}: expected NAME=LOW,HIGH with LOW < HIGH, "
                "e.g. --input-range token_ids=0,1000",
                EXIT_USAGE,
            )
        ranges[name] = (low, high)
    return ranges


def _short_name(name: str) -> str:
    """`serving_default_image:0` -> `image` (how converters decorate Keras input names)."""
    name = re.sub(r":\d+$", "", name or "")
    return name[len("serving_default_") :] if name.startswith("serving_default_") else name


def display_name(name: str) -> str:
    """How every command and report names a tensor: the signature's name, with the tensor
    name beside it when the converter decorated it (`image (serving_default_image:0)`)."""
    name = name or ""
    if not name.startswith("serving_default_"):
        return name  # e.g. outputs `StatefulPartitionedCall:1`: the tensor name is all there is
    return f"{_short_name(name)} ({name})"


def match_inputs(details, by_name: dict, option: str = "--input-shape") -> dict:
    """Map each key of `by_name` to an input position: the tensor's exact name, its short
    name (without `serving_default_` / `:0`) or its position number."""
    found = {}
    names = [d.get("name") or "" for d in details]
    for key in by_name:
        pos = None
        if key in names:
            pos = names.index(key)
        elif key.isdigit() and int(key) < len(details):
            pos = int(key)
        else:
            short = [i for i, n in enumerate(names) if _short_name(n) == key]
            pos = short[0] if len(short) == 1 else None
        if pos is None:
            raise RunnerFailure(
                "BadInput",
                f"{option} {key}: the model has no input of that name; its inputs are "
                + ", ".join(f"{n} {_sig(d)}" for n, d in zip(names, details)),
                EXIT_USAGE,
            )
        found[pos] = by_name[key]
    return found


def _sig(detail) -> str:
    return "[" + ", ".join(str(v) for v in _info(detail)["shape_signature"]) + "]"


def resolve_input_shapes(details, given: dict | None = None, data_shape=None) -> list:
    """The shape each input runs at.

    `given` ({position: shape}, from --input-shape) wins; else the evaluation data's sample
    shape fills the dynamic dimensions of input 0 (`data_shape` a list), or of each input
    it has a shape for (`data_shape` a dict {position: sample shape}); else a dynamic batch
    dimension (the first) becomes 1. Any other dimension left dynamic is an error naming the
    input, its shape signature and the option to set it.
    """
    given = given or {}
    if data_shape is not None and not isinstance(data_shape, dict):
        data_shape = {0: data_shape}
    data_shape = data_shape or {}
    shapes = []
    for pos, detail in enumerate(details):
        info = _info(detail)
        sig = info["shape_signature"]
        if pos in given:
            shape = list(given[pos])
            if len(shape) != len(sig):
                raise RunnerFailure(
                    "BadInput",
                    f"--input-shape for input {info['name']}: {len(shape)} dimensions given, "
                    f"its shape signature {_sig(info)} has {len(sig)}",
                    EXIT_USAGE,
                )
        else:
            shape = list(sig)
            fill = data_shape.get(pos)
            if fill is not None and len(fill) == len(sig) - 1:
                shape = [shape[0]] + [d if s == -1 else s for s, d in zip(sig[1:], fill)]
            if shape and shape[0] == -1:
                shape[0] = 1
            if any(v < 0 for v in shape):
                example = ",".join(str(v) if v > 0 else f"D{k}" for k, v in enumerate(shape))
                raise RunnerFailure(
                    "BadInput",
                    f"input {info['name']} has dynamic dimensions {_sig(info)} beyond the batch; "
                    f"set them with --input-shape {_short_name(info['name'])}={example}",
                    EXIT_USAGE,
                )
        shapes.append(shape)
    return shapes


def apply_input_shapes(interpreter, shapes) -> None:
    """Resize the inputs that differ from `shapes`, then allocate."""
    changed = False
    for detail, shape in zip(interpreter.get_input_details(), shapes):
        if [int(v) for v in detail["shape"]] != list(shape):
            interpreter.resize_tensor_input(detail["index"], list(shape))
            changed = True
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        if not changed:
            raise RunnerFailure(
                "BadModel", f"cannot allocate tensors: {_one_line(exc)}", EXIT_MODEL
            ) from None
        raise RunnerFailure(
            "BadInput",
            "the model cannot run at input shape(s) {}: {}".format(
                ", ".join(str(list(s)) for s in shapes), _one_line(exc)
            ),
            EXIT_USAGE,
            "choose shapes the model accepts (its dynamic dimensions are the -1s of its "
            "shape signature)",
        ) from None


# --------------------------------------------------------------------------- random inputs

#: Unquantized float inputs: uniform in [-1, 1) (the usual normalized range).
FLOAT_RANGE = (-1.0, 1.0)
#: Unquantized int16/int32/int64 inputs: integers in [0, 9] (valid as small ids, counts,
#: masks or indices); set another range with --input-range NAME=LOW,HIGH.
INT_RANGE = (0, 9)
GENERATOR = (
    "numpy.random.RandomState(seed); for each sample, for each input in order: "
    "uniform(low, high, shape).astype(dtype) for floats, randint(low, high + 1, shape, "
    "dtype=int64).astype(dtype) for integers and bool"
)


def input_spec(detail, shape=None, value_range=None) -> dict:
    """How random data for one input is drawn; the dict alone reproduces it (host side too).

    Floats: uniform in [-1, 1). Quantized integers (a scale is set) and unquantized
    int8/uint8: every value of the dtype, i.e. uniform over the real interval the converter
    calibrated ((qmin - zero_point) * scale .. (qmax - zero_point) * scale). Other integers:
    0..9. bool: True/False. `value_range` (real values, LOW < HIGH) overrides the range.
    """
    import numpy as np

    info = _info(detail)
    dtype = np.dtype(info["dtype"])
    shape = list(info["shape"] if shape is None else shape)
    scale, zp = info.get("scale") or 0.0, int(info.get("zero_point") or 0)
    spec = {"name": info["name"], "shape": shape, "dtype": dtype.name}
    spec.update(scale=float(scale), zero_point=zp)
    if dtype == np.bool_:
        spec.update(distribution="integers", low=0, high=1)
    elif dtype.kind == "f":
        low, high = value_range or FLOAT_RANGE
        spec.update(distribution="uniform", low=float(low), high=float(high))
    elif dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if value_range is not None:
            low, high = value_range
            if scale:
                low, high = math.ceil(low / scale + zp), math.floor(high / scale + zp)
            else:
                low, high = math.ceil(low), math.floor(high)
            low, high = max(int(low), int(limits.min)), min(int(high), int(limits.max))
            if low > high:
                raise RunnerFailure(
                    "BadInput",
                    f"--input-range for {info['name']} holds no {dtype.name} value",
                    EXIT_USAGE,
                )
        elif scale or dtype.itemsize == 1:
            low, high = int(limits.min), int(limits.max)
        else:
            low, high = INT_RANGE
        spec.update(distribution="integers", low=int(low), high=int(high))
        if scale:
            spec["real_low"] = (low - zp) * scale
            spec["real_high"] = (high - zp) * scale
    else:
        raise RunnerFailure(
            "UnsupportedInput",
            f"input {info['name']} is {dtype.name}: edgeq feeds numeric and bool inputs only",
            EXIT_MODEL,
        )
    return spec


def random_input(spec: dict, rng):
    """One input's array drawn from `rng` (numpy RandomState) as `spec` says."""
    import numpy as np

    dtype = np.dtype(spec["dtype"])
    shape = tuple(spec["shape"])
    if spec["distribution"] == "uniform":
        return rng.uniform(spec["low"], spec["high"], size=shape).astype(dtype)
    values = rng.randint(int(spec["low"]), int(spec["high"]) + 1, size=shape, dtype=np.int64)
    return values.astype(dtype)


def random_inputs(specs, n: int, seed: int = 0):
    """`n` samples (each a list with one array per input, in order) from RandomState(seed).

    The first k samples do not depend on n, and numpy's legacy RandomState stream is the
    same on every numpy version, so the host reproduces what the device fed.
    """
    import numpy as np

    rng = np.random.RandomState(int(seed))
    for _ in range(int(n)):
        yield [random_input(spec, rng) for spec in specs]


# --------------------------------------------------------------------------- preprocessing


def prepare_images(
    images, scale: float = DEFAULT_INPUT_SCALE, offset: float = DEFAULT_INPUT_OFFSET
):
    """uint8 images [N, H, W] or [N, H, W, C] -> float32 [N, H, W, C] = images * scale + offset."""
    import numpy as np

    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    return (x.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def quantize_input(x_float, detail: dict):
    """Bring float inputs to the input tensor's dtype using ITS scale and zero point.

    q = clamp(round_half_away(x / scale) + zero_point). Computed in float64 so values that sit
    on a rounding boundary round the same on every device. Float inputs pass through.
    """
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.asarray(x_float, dtype=dtype)
    scale, zero_point = _quantization(detail)
    if not scale:
        raise RunnerFailure(
            "BadModel",
            f"input tensor is {dtype.name} but has no quantization scale",
            EXIT_MODEL,
        )
    v = np.asarray(x_float, dtype=np.float64) / float(scale)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + int(zero_point)
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _quantization(detail):
    if "quantization" in detail:
        scale, zero_point = detail["quantization"]
        return scale, zero_point
    return detail.get("scale") or 0.0, detail.get("zero_point") or 0


def dequantize_output(y, detail: dict):
    """Tensor values as float32 real values (quantized tensors through their scale and zero
    point; other integers and bool as they are)."""
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    scale, zero_point = _quantization(detail)
    if dtype.kind == "f" or not scale:
        return np.asarray(y).astype(np.float32)
    return (np.asarray(y, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)


def preprocessing_rule(data_dtype, detail, scale=None, offset=None) -> dict:
    """Which preprocessing evaluation data gets before it is fed (see README):

    1. preprocess_scale / preprocess_offset given: x * scale + offset (missing ones: 1 and 0),
       then quantized with the input's scale and zero point if the input is an integer;
    2. else data of the input's own dtype (e.g. uint8 images for a uint8 input): fed as is;
    3. else uint8 data: the book's x / 127.5 - 1, then quantized as in 1;
    4. else float data: as is (it is taken as real values), quantized as in 1.
    """
    import numpy as np

    data_dtype = np.dtype(data_dtype)
    want = np.dtype(detail["dtype"])
    if scale is not None or offset is not None:
        s = 1.0 if scale is None else float(scale)
        o = 0.0 if offset is None else float(offset)
        return {"rule": "given", "scale": s, "offset": o}
    if data_dtype == want:
        return {"rule": "raw", "scale": None, "offset": None}
    if data_dtype == np.uint8:
        return {"rule": "default", "scale": DEFAULT_INPUT_SCALE, "offset": DEFAULT_INPUT_OFFSET}
    if data_dtype.kind == "f":
        return {"rule": "as is", "scale": None, "offset": None}
    raise RunnerFailure(
        "BadData",
        "evaluation data {} is {}; for the model's {} input {} it must be uint8, float or "
        "{}".format(
            data_label(detail),
            data_dtype.name,
            want.name,
            display_name(detail.get("name")),
            want.name,
        ),
        EXIT_DATA,
    )


def to_input(x, detail, rule: dict):
    """Evaluation samples -> the input tensor's dtype, as `rule` (preprocessing_rule) says."""
    import numpy as np

    x = np.asarray(x)
    if rule["rule"] == "raw":
        return x
    if rule["scale"] is not None:
        x = x.astype(np.float32) * np.float32(rule["scale"]) + np.float32(rule["offset"])
    want = np.dtype(detail["dtype"])
    if want.kind != "f" and not _quantization(detail)[0]:
        raise RunnerFailure(
            "BadData",
            f"input {detail.get('name')} is an unquantized {want.name}: evaluation data for it "
            f"must be {want.name} itself",
            EXIT_DATA,
        )
    return quantize_input(x, detail)


def data_label(detail) -> str:
    """How an error names the data array for an input: `x`, or 'key' of a multi-input .npz."""
    key = detail.get("data_key") if isinstance(detail, dict) else None
    return f"'{key}'" if key else "x"


def fit_data(x_shape, detail, shape=None, label: str = "x"):
    """The evaluation data's per-sample shape checked against the input.

    Returns (per-sample shape to feed, whether a channel axis of 1 is added). The data holds
    [N, *sample]; `sample` must equal the input's shape without its batch dimension (dynamic
    dimensions match anything), or miss only a trailing channel of size 1.
    """
    info = _info(detail)
    want = list(shape[1:]) if shape is not None else list(info["shape_signature"][1:])
    sample = [int(v) for v in x_shape[1:]]
    add_channel = len(sample) == len(want) - 1 and want and want[-1] == 1
    got = [*sample, 1] if add_channel else sample
    ok = len(got) == len(want) and all(w in (-1, g) for w, g in zip(want, got))
    if not ok:
        raise RunnerFailure(
            "BadData",
            "evaluation data {} has samples of shape {} ({} samples); the model's input {} "
            "expects [N, {}] (its shape {})".format(
                label,
                sample,
                int(x_shape[0]) if len(x_shape) else 0,
                display_name(info["name"]),
                ", ".join(str(v) for v in want),
                _sig(info),
            ),
            EXIT_DATA,
        )
    return got, bool(add_channel)


def classifier_classes(outputs):
    """(number of classes, None) if the model is a classifier — exactly one output of shape
    [1, N] (batch dimension dynamic or 1) with N > 1 — else (None, why accuracy does not
    apply)."""
    infos = [_info(d) for d in outputs]
    if len(infos) != 1:
        return None, (
            f"not applicable: the model has {len(infos)} outputs; accuracy needs one output "
            "of [1, N] class scores"
        )
    sig = infos[0]["shape_signature"]
    if len(sig) == 2 and sig[0] in (-1, 1) and sig[1] > 1:
        return int(sig[1]), None
    return None, (
        "not applicable: output shape {} is not [1, N] class scores (N > 1)".format(
            infos[0]["shape"]
        )
    )


def check_labels(y, classes: int) -> None:
    """Labels must be integers in [0, classes)."""
    import numpy as np

    y = np.asarray(y)
    if y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise RunnerFailure(
            "BadData",
            f"labels y range over {int(y.min())}..{int(y.max())}; the model has {classes} "
            f"classes (0..{classes - 1})",
            EXIT_DATA,
        )


def feed_plan(x, details, given=None, scale=None, offset=None) -> list:
    """How evaluation data feeds the model: one entry per input, in order, with `key` (the
    .npz key, `x` for one-input data), `x` (its samples, a channel of 1 added when the input
    wants it), `sample_shape` and `rule` (preprocessing_rule). `x` is an array (a one-input
    model) or a dict {input name: array} (load_eval_data); every input needs its array,
    keyed by the signature's input name or the tensor's. BadData (exit 2) names the input
    and both shapes when the data does not fit."""
    given = given or {}
    described = ", ".join(f"{display_name(d.get('name'))} {_sig(d)}" for d in details)
    if not isinstance(x, dict):
        if len(details) != 1:
            raise RunnerFailure(
                "BadData",
                "evaluation data x feeds one input; this model has {} inputs ({}): store one "
                "array per input in the .npz, keyed by its name ({}), or run it without "
                "--data".format(
                    len(details),
                    described,
                    ", ".join(_short_name(d.get("name")) for d in details),
                ),
                EXIT_DATA,
            )
        pairs = [("x", x)]
    else:
        names = [d.get("name") or "" for d in details]
        pos_of = {}
        for key in x:
            hits = [i for i, n in enumerate(names) if key in (n, _short_name(n))]
            if len(hits) != 1:
                raise RunnerFailure(
                    "BadData",
                    f"evaluation data '{key}' {list(x[key].shape[1:])} is no input of the "
                    f"model; its inputs are {described}",
                    EXIT_DATA,
                )
            if hits[0] in pos_of.values():
                raise RunnerFailure(
                    "BadData",
                    f"evaluation data holds two arrays for input {names[hits[0]]}",
                    EXIT_DATA,
                )
            pos_of[key] = hits[0]
        by_pos = {v: k for k, v in pos_of.items()}
        pairs = []
        for i, d in enumerate(details):
            if i not in by_pos:
                raise RunnerFailure(
                    "BadData",
                    "evaluation data has no array for input {} {} (its keys: {}): store "
                    "one array per input, [N, {}], keyed '{}'".format(
                        display_name(d.get("name")),
                        _sig(d),
                        ", ".join(sorted(x)),
                        ", ".join(str(v) for v in _info(d)["shape_signature"][1:]),
                        _short_name(d.get("name")),
                    ),
                    EXIT_DATA,
                )
            pairs.append((by_pos[i], x[by_pos[i]]))
    plan = []
    for pos, (detail, (key, arr)) in enumerate(zip(details, pairs)):
        label = "x" if key == "x" and not isinstance(x, dict) else f"'{key}'"
        sample, add_channel = fit_data(arr.shape, detail, given.get(pos), label)
        if add_channel:
            arr = arr[..., None]
        named = dict(_info(detail), quantization=_quantization(detail))
        if isinstance(x, dict):
            named["data_key"] = key
        try:
            rule = preprocessing_rule(arr.dtype, named, scale, offset)
            to_input(arr[:1], named, rule)  # a dtype the input cannot take fails here
        except RunnerFailure as exc:
            if not isinstance(x, dict):
                raise
            raise RunnerFailure(
                "BadData",
                "evaluation data {} is {} {}; the model's input {} is {} {}: {}".format(
                    label,
                    arr.dtype.name,
                    "[N, {}]".format(", ".join(str(v) for v in sample)),
                    display_name(detail.get("name")),
                    named["dtype"],
                    _sig(detail),
                    exc.message,
                ),
                EXIT_DATA,
            ) from None
        plan.append({"key": key, "x": arr, "sample_shape": sample, "rule": rule})
    return plan


# --------------------------------------------------------------------------- evaluation


def predict(interpreter, x_float, batch_size: int = 64, transform=None):
    """Class predictions for samples [N, ...] (one-input models), batched.

    `transform(chunk, input_detail)` turns samples into the input's dtype (default:
    quantize_input, for float samples). The input is resized to `batch_size` samples (the
    last batch to what is left) when its batch dimension is dynamic; a model whose batch is
    fixed, or that refuses resizing, goes one sample per call. Returns (predictions int64
    [N], batch size actually used).
    """
    import numpy as np

    transform = transform or quantize_input
    n = int(x_float.shape[0])
    inp = interpreter.get_input_details()[0]
    per_image_shape = [int(v) for v in x_float.shape[1:]]
    signature = tensor_info(inp)["shape_signature"]
    preds = np.empty(n, dtype=np.int64)
    used = batch_size if signature[0] == -1 else 1
    current = int(inp["shape"][0]) if list(inp["shape"][1:]) == per_image_shape else None
    try:
        for start in range(0, n, used):
            chunk = x_float[start : start + used]
            if current != len(chunk):
                interpreter.resize_tensor_input(inp["index"], [len(chunk), *per_image_shape])
                interpreter.allocate_tensors()
                current = len(chunk)
                inp = interpreter.get_input_details()[0]
            preds[start : start + len(chunk)] = _run_batch(interpreter, inp, chunk, transform)
    except (ValueError, RuntimeError):
        if used == 1:
            raise
        used = 1
        interpreter.resize_tensor_input(inp["index"], [1, *per_image_shape])
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        for i in range(n):
            preds[i] = _run_batch(interpreter, inp, x_float[i : i + 1], transform)[0]
    return preds, used


def _run_batch(interpreter, inp, chunk, transform):
    import numpy as np

    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], transform(chunk, inp))
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    return np.argmax(y.reshape(len(chunk), -1), axis=1)


def evaluate_accuracy(
    interpreter,
    images,
    labels,
    scale: float | None = None,
    offset: float | None = None,
    batch_size: int = 64,
) -> dict:
    """Top-1 accuracy of a one-input classifier on evaluation samples + integer labels.

    Samples are prepared per `preprocessing_rule` (scale/offset None: the rule decides;
    the book's MNIST data passes its x / 127.5 - 1 explicitly) one batch at a time.
    """
    import numpy as np

    t0 = time.perf_counter_ns()
    inp = interpreter.get_input_details()[0]
    x = np.asarray(images)
    _sample, add_channel = fit_data(x.shape, inp)
    if add_channel:
        x = x[..., None]
    rule = preprocessing_rule(x.dtype, inp, scale, offset)
    preds, used = predict(interpreter, x, batch_size, lambda c, d: to_input(c, d, rule))
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    correct = int(np.sum(preds == labels))
    return {
        "samples": int(labels.size),
        "correct": correct,
        "top1": correct / labels.size if labels.size else None,
        "batch_size": used,
        "seconds": (time.perf_counter_ns() - t0) / 1e9,
        "predictions_sha256": hashlib.sha256(preds.astype("<i8").tobytes()).hexdigest(),
        "preprocess": rule,
    }


#: Keys of an evaluation .npz that are not samples.
NON_SAMPLE_KEYS = ("y", "y_test", "preprocess_scale", "preprocess_offset")


def load_eval_data(path: str):
    """Samples, labels and preprocessing from an .npz: keys x/y (or x_test/y_test), and
    optionally preprocess_scale / preprocess_offset. Returns (x, y, scale, offset); scale
    and offset are None when the file does not set them, y is None for unlabelled data
    (x only: a detector's or a segmenter's samples, judged by output agreement).

    A multi-input model's data holds one array per input instead of x, keyed by the input's
    name (the signature's, e.g. `image`, or the tensor's): then x is a dict {key: array},
    every array with the same number of samples N."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            xk = "x" if "x" in keys else "x_test" if "x_test" in keys else None
            yk = "y" if "y" in keys else "y_test" if "y_test" in keys else None
            named = sorted(k for k in keys if k not in NON_SAMPLE_KEYS)
            if xk is None and not named:
                raise RunnerFailure(
                    "BadData",
                    f"{path} must hold samples under 'x' (or 'x_test'; a multi-input model: "
                    f"one array per input name), and labels, when there are any, under 'y' "
                    f"(or 'y_test'); found keys {sorted(keys)}",
                    EXIT_DATA,
                )
            x = f[xk] if xk is not None else {k: f[k] for k in named}
            y = f[yk] if yk is not None else None
            scale = float(f["preprocess_scale"]) if "preprocess_scale" in keys else None
            offset = float(f["preprocess_offset"]) if "preprocess_offset" in keys else None
    except RunnerFailure:
        raise
    except FileNotFoundError:
        raise RunnerFailure("BadData", f"evaluation data not found: {path}", EXIT_DATA) from None
    except Exception as exc:
        raise RunnerFailure(
            "BadData", f"cannot read evaluation data {path}: {_one_line(exc)}", EXIT_DATA
        ) from None
    arrays = x if isinstance(x, dict) else {"x": x}
    n = None
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf" or a.ndim < (1 if isinstance(x, dict) else 2):
            raise RunnerFailure(
                "BadData",
                f"{path}: {key} must be numbers [N, ...] (uint8 or float images, features...), "
                f"got {a.dtype} {list(a.shape)}",
                EXIT_DATA,
            )
        if n is not None and a.shape[0] != n:
            raise RunnerFailure(
                "BadData",
                f"{path}: every input's array holds the same number of samples; "
                + ", ".join(f"{k} has {v.shape[0]}" for k, v in arrays.items()),
                EXIT_DATA,
            )
        n = int(a.shape[0])
    if y is not None and (y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iu"):
        raise RunnerFailure(
            "BadData",
            f"{path}: labels must be integers [N] with N = {n}, got {y.dtype} {list(y.shape)}",
            EXIT_DATA,
        )
    if n == 0:
        raise RunnerFailure("BadData", f"{path}: x holds no samples", EXIT_DATA)
    for name, v in (("preprocess_scale", scale), ("preprocess_offset", offset)):
        if v is not None and not math.isfinite(v):
            raise RunnerFailure("BadData", f"{path}: {name} must be a finite number", EXIT_DATA)
    return x, y, scale, offset


# --------------------------------------------------------------------------- agreement


#: Operators that keep state between invocations (resource variables).
STATE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


def stateful_ops(interpreter) -> list:
    """The operators of a model that keep state between calls (sorted names; empty for a
    stateless model or a runtime that does not list its operators)."""
    try:
        ops = interpreter._get_ops_details()
    except Exception:
        return []
    return sorted({o.get("op_name") for o in ops if o.get("op_name") in STATE_OPS})


#: How the state of a model that keeps it is reset between agreement samples.
RESET_VARIABLES = "reset_all_variables"
FRESH_INTERPRETER = "fresh interpreter"
#: No reset restores the first output: outputs depend on history, and host and device
#: compare the sequence of outputs over the same ordered samples.
HISTORY = "history"


def _outputs_of(interpreter, sample) -> list:
    import numpy as np

    for d, arr in zip(interpreter.get_input_details(), sample):
        interpreter.set_tensor(d["index"], arr)
    interpreter.invoke()
    return [np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]


def _same(a, b) -> bool:
    """The same outputs (floats within rounding noise: multi-threaded kernels may sum in
    another order)."""
    import numpy as np

    def same(x, y):
        if x.shape != y.shape:
            return False
        if x.dtype.kind == "f":
            return bool(np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True))
        return bool(np.array_equal(x, y))

    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))


def state_reset(interpreter, sample, fresh):
    """Whether the model's outputs depend on earlier calls, and how this runtime resets it.

    Feeds `sample` twice: a model that lists state operators (STATE_OPS) or answers the
    same input differently keeps state. Then, in this order, the first reset that gives the
    first answer back again: the interpreter's reset_all_variables() (it resets variable
    tensors, e.g. an LSTM's; LiteRT and tflite-runtime 2.14 leave resource variables
    (VAR_HANDLE) as they are), a fresh interpreter from `fresh()`, else HISTORY. Returns
    (method or None for a stateless model, the operators, a one-line note). `interpreter`
    has been invoked: start the measured samples on a fresh one."""
    ops = stateful_ops(interpreter)
    first = _outputs_of(interpreter, sample)
    if _same(first, _outputs_of(interpreter, sample)) and not ops:
        return None, ops, None
    method = HISTORY
    reset = getattr(interpreter, "reset_all_variables", None)
    if reset is not None:
        try:
            reset()
            if _same(first, _outputs_of(interpreter, sample)):
                method = RESET_VARIABLES
        except Exception:  # a runtime that cannot: try the next way
            pass
    if method == HISTORY:
        other = fresh()
        if other is not interpreter and _same(first, _outputs_of(other, sample)):
            method = FRESH_INTERPRETER
    return method, ops, state_note(ops, method)


def resetter(interpreter, method, fresh):
    """run_samples' `fresh` for a reset `method` (None: nothing to reset, or HISTORY)."""
    if method == RESET_VARIABLES:

        def reset_in_place():
            interpreter.reset_all_variables()
            return interpreter

        return reset_in_place
    if method == FRESH_INTERPRETER:
        return fresh
    return None


def state_note(ops, method=FRESH_INTERPRETER) -> str | None:
    if method is None:
        return None
    what = "the model keeps state between calls ({})".format(
        ", ".join(ops) or "its outputs depend on earlier calls"
    )
    if method == RESET_VARIABLES:
        return what + (
            ": the state was reset between samples (reset_all_variables), so each output "
            "depends on its own input only"
        )
    if method == FRESH_INTERPRETER:
        return what + (
            ": every sample ran on a fresh interpreter (reset_all_variables does not reset "
            "it), so each output depends on its own input only"
        )
    return what + (
        " and this runtime cannot reset it: outputs depend on history, so the sequence of "
        "outputs over the same ordered samples is compared"
    )


def data_samples(x, shape, detail, rule, n: int):
    """`n` samples for a one-input model from evaluation data `x` (shaped as the input,
    channel added): sample k holds data rows k*b .. k*b+b-1 (b = the input's batch size),
    cycling over the data, converted to the input's dtype by `rule`. Host and device feed
    the same arrays."""
    import numpy as np

    b = max(1, int(shape[0]))
    for k in range(int(n)):
        rows = (np.arange(b) + k * b) % len(x)
        yield [to_input(x[rows], detail, rule)]


def data_samples_fed(plan, shapes, details, n: int):
    """`n` samples for any model from its feed_plan: sample k feeds each input the rows
    k*b .. k*b+b-1 of its array (b = that input's batch size), cycling over the data,
    converted to the input's dtype by its rule. Host and device feed the same arrays."""
    import numpy as np

    for k in range(int(n)):
        sample = []
        for p, shape, detail in zip(plan, shapes, details):
            b = max(1, int(shape[0]))
            rows = (np.arange(b) + k * b) % len(p["x"])
            sample.append(to_input(p["x"][rows], detail, p["rule"]))
        yield sample


def accuracy_fed(interpreter, plan, labels, shapes) -> dict:
    """Top-1 of a classifier whose inputs are fed by `plan` (a multi-input model: one
    sample of each input's batch size per call; predict() batches one-input models)."""
    import numpy as np

    t0 = time.perf_counter_ns()
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(labels)
    b = max(1, int(shapes[0][0]))
    details = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    preds = np.empty(n, dtype=np.int64)
    samples = data_samples_fed(plan, shapes, details, -(-n // b))
    for k, sample in enumerate(samples):
        for d, arr in zip(details, sample):
            interpreter.set_tensor(d["index"], arr)
        interpreter.invoke()
        got = np.argmax(interpreter.get_tensor(out["index"]).reshape(b, -1), axis=1)
        take = min(b, n - k * b)
        preds[k * b : k * b + take] = got[:take]
    correct = int(np.sum(preds == labels))
    return {
        "samples": int(n),
        "correct": correct,
        "top1": correct / n if n else None,
        "batch_size": b,
        "seconds": (time.perf_counter_ns() - t0) / 1e9,
        "predictions_sha256": hashlib.sha256(preds.astype("<i8").tobytes()).hexdigest(),
        "preprocess": [p["rule"] for p in plan],
    }


def run_samples(interpreter, samples, fresh=None) -> list:
    """Feed each sample (one array per input, in order), invoke, and collect every output:
    returns one array per output, stacked over the samples ([n, *output shape]). `fresh()`:
    a new interpreter for every sample after the first (a stateful model's state reset)."""
    import numpy as np

    in_idx = [d["index"] for d in interpreter.get_input_details()]
    outs = interpreter.get_output_details()
    collected = [[] for _ in outs]
    for k, sample in enumerate(samples):
        if fresh is not None and k:
            interpreter = fresh()
        for idx, arr in zip(in_idx, sample):
            interpreter.set_tensor(idx, arr)
        interpreter.invoke()
        for k, d in enumerate(outs):
            collected[k].append(np.array(interpreter.get_tensor(d["index"])))
    stacked = []
    for k, arrays in enumerate(collected):
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise RunnerFailure(
                "UnsupportedOutput",
                f"output {outs[k].get('name')} changes shape between samples "
                f"({sorted(shapes)}): agreement needs fixed output shapes",
                EXIT_MODEL,
            )
        stacked.append(np.stack(arrays) if arrays else np.zeros((0,), np.float32))
    return stacked


def save_outputs(path: str, arrays) -> str:
    """Write outputs as output_0, output_1, ... into an .npz (atomically); returns sha256."""
    import numpy as np

    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **{f"output_{k}": a for k, a in enumerate(arrays)})
    os.replace(tmp, path)
    return sha256_file(path)


# --------------------------------------------------------------------------- timing


def latency_stats(samples_ns) -> dict:
    """min/p50/p90/p95/p99/max/mean/std in milliseconds, plus the sample count."""
    import numpy as np

    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if a.size == 0:
        return {"count": 0}
    p = np.percentile(a, [50, 90, 95, 99])
    return {
        "count": int(a.size),
        "min": float(a.min()),
        "p50": float(p[0]),
        "p90": float(p[1]),
        "p95": float(p[2]),
        "p99": float(p[3]),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
    }


#: The steadiest stretch: the samples in time order are cut into at most this many windows
#: of at least STEADY_MIN consecutive invokes each.
STEADY_WINDOWS, STEADY_MIN = 20, 50


def steady_stats(samples_ns) -> dict:
    """p50/p90 of the run's steadiest stretch: the samples, in the order they were taken, are
    cut into windows of at least STEADY_MIN consecutive invokes, and the window with the
    lowest p50 is kept. On a shared host the machine's own speed changes for tenths of a
    second to seconds at a time (a neighbour, the hypervisor) and that moves a whole run's
    p50 between modes; the steadiest stretch is what the setup costs when nothing else takes
    the core, which is what a regression test compares. {} with fewer than 2 windows."""
    import numpy as np

    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    windows = min(STEADY_WINDOWS, a.size // STEADY_MIN)
    if windows < 2:
        return {}
    best = None
    for w in np.array_split(a, windows):
        p50, p90 = np.percentile(w, [50, 90])
        if best is None or p50 < best[0]:
            best = (float(p50), float(p90))
    return {"steady_p50": best[0], "steady_p90": best[1], "steady_window": int(a.size // windows)}


def _loop(step, runs: int, min_s: float, max_s: float):
    """Call step() until it ran `runs` times AND `min_s` seconds passed (stop at `max_s`)."""
    clock = time.perf_counter_ns
    start = clock()
    min_ns, max_ns = int(min_s * 1e9), int(max_s * 1e9)
    count = 0
    while True:
        step()
        count += 1
        elapsed = clock() - start
        if count >= runs and elapsed >= min_ns:
            break
        if max_ns and elapsed >= max_ns:
            break
    return count, clock() - start


def _timed_loop(step, buf, runs: int, min_s: float, max_s: float):
    """Like `_loop`, timing each call into the preallocated `buf` (it also stops when
    `buf` is full). Returns (calls, total ns)."""
    clock = time.perf_counter_ns
    start = clock()
    min_ns, max_ns = int(min_s * 1e9), int(max_s * 1e9)
    cap = len(buf)
    i = 0
    while i < cap:
        t = clock()
        step()
        done = clock()
        buf[i] = done - t
        i += 1
        elapsed = done - start
        if i >= runs and elapsed >= min_ns:
            break
        if max_ns and elapsed >= max_ns:
            break
    return i, clock() - start


def sample_buffers(cap: int = MAX_SAMPLES):
    """Two zeroed arrays of `cap` nanosecond timings (invoke, end to end), touched now so
    they count in the memory baseline, not in the model's footprint."""
    return array.array("q", bytes(8 * cap)), array.array("q", bytes(8 * cap))


def benchmark(interpreter, sample, args, buffers=None, on_phase=None) -> dict:
    """Warm up, then time invoke() alone and the end-to-end call (set every input, invoke,
    read every output). `sample`: one array per input, in order (one-input models may pass
    the array itself). `buffers`: preallocated timing arrays (`sample_buffers`);
    `on_phase(name)` is called before the warm-up, after it and after the steady state."""
    import numpy as np

    clock = time.perf_counter_ns
    inputs = interpreter.get_input_details()
    arrays = list(sample) if isinstance(sample, (list, tuple)) else [sample]
    if len(arrays) != len(inputs):
        raise ValueError(f"benchmark(): {len(arrays)} arrays for {len(inputs)} inputs")
    feeds = [(d["index"], a) for d, a in zip(inputs, arrays)]
    o_idx = [d["index"] for d in interpreter.get_output_details()]
    set_tensor, invoke, get_tensor = (
        interpreter.set_tensor,
        interpreter.invoke,
        interpreter.get_tensor,
    )
    for idx, a in feeds:
        set_tensor(idx, a)
    invoke_buf, e2e_buf = buffers or sample_buffers(getattr(args, "max_samples", MAX_SAMPLES))
    phase = on_phase or (lambda name: None)

    t0 = clock()
    invoke()
    first_ns = clock() - t0

    phase("before_warmup")
    warm_count, warm_ns = (0, 0)
    if args.warmup_runs > 0 or args.warmup_min_s > 0:
        warm_count, warm_ns = _loop(invoke, args.warmup_runs, args.warmup_min_s, args.max_s)
    phase("after_warmup")

    def e2e():
        for idx, a in feeds:
            set_tensor(idx, a)
        invoke()
        for o in o_idx:
            get_tensor(o)

    n, steady_ns = _timed_loop(invoke, invoke_buf, args.runs, args.min_s, args.max_s)
    phase("after_steady_state")
    m, e2e_total_ns = _timed_loop(e2e, e2e_buf, n, 0.0, args.max_s)
    peak = peak_rss_kb()  # before any statistics allocate: the inference's own peak
    invoke_ns = np.frombuffer(invoke_buf, dtype=np.int64, count=n)
    e2e_ns = np.frombuffer(e2e_buf, dtype=np.int64, count=m)
    step = max(1, -(-n // DOC_SAMPLES))
    return {
        "first_inference_ns": first_ns,
        "warmup": {"count": warm_count, "ms": warm_ns / 1e6},
        "steady_ns": steady_ns,
        "e2e_total_ns": e2e_total_ns,
        "capped": n >= len(invoke_buf),
        "peak_rss_kb": peak,
        "latency_ms": {
            "invoke": {**latency_stats(invoke_ns), **steady_stats(invoke_ns)},
            "end_to_end": latency_stats(e2e_ns),
        },
        "samples_ms": [float(v) / 1e6 for v in invoke_ns[::step]],
        "samples_every": step,
    }


# --------------------------------------------------------------------------- sampling


def _sys(path: str) -> str:
    """A /sys path under $EDGEQ_SYSFS_ROOT (set only by tests)."""
    return os.environ.get("EDGEQ_SYSFS_ROOT", "") + path


def _cores_in_use() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def sample_device(phase: str) -> dict:
    """Every thermal zone (°C), the frequency of the cores this process may run on (MHz),
    the governor and the Pi firmware's throttle flags: what makes a run valid or not."""
    out = {"phase": phase, "time": time.time(), "temps_c": {}, "freqs_mhz": {}}
    for zone in sorted(glob.glob(_sys("/sys/class/thermal/thermal_zone*"))):
        raw = _read(zone + "/temp")
        if raw and raw.lstrip("-").isdigit():
            out["temps_c"][os.path.basename(zone)] = int(raw) / 1000
    governors = set()
    for cpu in _cores_in_use():
        base = _sys(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq")
        freq = _read(base + "/scaling_cur_freq")
        if freq and freq.isdigit():
            out["freqs_mhz"][f"cpu{cpu}"] = int(freq) / 1000
        gov = _read(base + "/scaling_governor")
        if gov:
            governors.add(gov)
    out["governor"] = ",".join(sorted(governors)) or None
    raw = _read(_sys("/sys/devices/platform/soc/soc:firmware/get_throttled"))
    m = re.search(r"0x[0-9a-fA-F]+", raw or "") or re.fullmatch(r"[0-9a-fA-F]+", raw or "")
    if m:
        out["throttled"] = int(m.group(0), 16)
    out["cpu"] = cpu_times()
    return out


def cpu_times() -> dict:
    """What competes for the CPU, read from /proc: per core this process may run on its busy
    and steal clock ticks (/proc/stat), this process's own CPU ticks, all threads
    (/proc/self/stat utime + stime), the 1-minute load average and a monotonic time."""
    out = {"mono_s": time.monotonic(), "cores": {}}
    try:
        out["hz"] = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        out["hz"] = 100
    allowed = {f"cpu{c}" for c in _cores_in_use()}
    for line in (_read("/proc/stat") or "").splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] not in allowed or not parts[1].isdigit():
            continue
        v = [int(x) for x in parts[1:11] if x.isdigit()] + [0] * 10
        # user nice system idle iowait irq softirq steal (guest is inside user)
        out["cores"][parts[0]] = {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "steal": v[7]}
    stat = _read("/proc/self/stat") or ""
    fields = stat[stat.rfind(")") + 2 :].split() if ")" in stat else []
    if len(fields) > 12 and fields[11].isdigit() and fields[12].isdigit():
        out["self"] = int(fields[11]) + int(fields[12])
    load = (_read("/proc/loadavg") or "").split()
    if load:
        try:
            out["load1"] = float(load[0])
        except ValueError:
            pass
    return out


def contention(before: dict, after: dict) -> dict:
    """Between two `cpu_times` readings: how many cores this process kept busy, how many the
    other processes did (on the cores this process may use), steal, and the load average.
    None figures where /proc does not tell (not Linux, or too short to count ticks)."""
    wall = after.get("mono_s", 0.0) - before.get("mono_s", 0.0)
    hz = before.get("hz") or 100
    cores = sorted(set(before.get("cores", {})) & set(after.get("cores", {})))
    doc = {
        "wall_s": round(wall, 4),
        "cores_available": len(cores) or None,
        "self_cores": None,
        "others_cores": None,
        "steal_cores": None,
        "load1_before": before.get("load1"),
        "load1_after": after.get("load1"),
        "ticks_per_s": hz,
        "method": "/proc/stat busy ticks of the allowed cores minus /proc/self/stat utime+stime",
    }
    if wall <= 0 or not cores:
        return doc
    busy = sum(after["cores"][c]["busy"] - before["cores"][c]["busy"] for c in cores)
    steal = sum(after["cores"][c]["steal"] - before["cores"][c]["steal"] for c in cores)
    doc["steal_cores"] = round(steal / hz / wall, 3)
    if "self" in before and "self" in after:
        own = (after["self"] - before["self"]) / hz / wall
        doc["self_cores"] = round(own, 3)
        doc["others_cores"] = round(max(0.0, busy / hz / wall - own), 3)
    return doc


# --------------------------------------------------------------------------- environment


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_model(cpuinfo: str) -> str | None:
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        m = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", cpuinfo, re.M)
        if m:
            return m.group(1).strip()
    dt = _read("/proc/device-tree/model")
    return dt.rstrip("\x00") if dt else None


def detect_emulation(machine: str, cpuinfo: str) -> tuple[bool, str]:
    """Is this an emulated CPU (QEMU user mode)? Returns (flag, evidence)."""
    forced = os.environ.get("EDGEQ_EMULATED")
    if forced is not None:
        return forced.lower() in ("1", "true", "yes"), f"EDGEQ_EMULATED={forced}"
    arm = machine.lower().startswith(("aarch64", "arm"))
    x86_cpuinfo = bool(re.search(r"^(vendor_id|flags)\s*:.*", cpuinfo, re.M)) and bool(
        re.search(r"GenuineIntel|AuthenticAMD|\bsse2\b", cpuinfo)
    )
    if arm and x86_cpuinfo:
        return True, f"machine is {machine} but /proc/cpuinfo describes an x86 CPU"
    if arm and re.search(r"QEMU", cpuinfo or ""):
        return True, "/proc/cpuinfo names QEMU"
    return False, ""


def _throttling() -> dict | None:
    raw = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if raw is None:
        try:
            proc = subprocess.run(
                ["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5
            )
            m = re.search(r"0x[0-9a-fA-F]+", proc.stdout)
            raw = m.group(0) if m else None
        except (OSError, subprocess.SubprocessError):
            raw = None
    if raw is None:
        return None
    try:
        value = int(raw, 16)
    except ValueError:
        return None
    names = {
        0: "under_voltage",
        1: "freq_capped",
        2: "throttled",
        3: "soft_temp_limit",
        16: "under_voltage_occurred",
        17: "freq_capped_occurred",
        18: "throttled_occurred",
        19: "soft_temp_limit_occurred",
    }
    return {"raw": hex(value), **{n: bool(value >> b & 1) for b, n in names.items()}}


def environment(threads: int | None = None, runtime=None) -> dict:
    """What the device is: hardware, OS, python stack. Stdlib only (works without numpy)."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    machine = platform.machine()
    emulated, evidence = detect_emulation(machine, cpuinfo)
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        import numpy

        numpy_version = numpy.__version__
    except Exception:
        numpy_version = None
    os_release = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', os_release, re.M)
    android = _read("/system/build.prop")
    env = {
        "machine": machine,
        "cpu_model": _cpu_model(cpuinfo),
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "kernel": platform.release(),
        "os": m.group(1) if m else ("Android" if android else platform.system()),
        "hostname": platform.node(),
        "cpu_governor": governor,
        "cpu_freq_mhz": int(freq) / 1000 if freq and freq.isdigit() else None,
        "temperature_c": int(temp) / 1000 if temp and temp.lstrip("-").isdigit() else None,
        "throttling": _throttling(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": numpy_version,
        "runtime": None,
        "runtime_version": None,
        "threads": threads,
        "emulated": emulated,
        "emulation_evidence": evidence or None,
    }
    if runtime is not None:
        env["runtime"], env["runtime_version"] = runtime
    return env


def probe() -> dict:
    """Environment plus which interpreter imports (for `edgeq doctor`); never raises."""
    env = environment()
    try:
        _cls, name, version = find_interpreter()
        env["runtime"], env["runtime_version"] = name, version
        env["runtime_error"] = None
    except RunnerFailure as exc:
        env["runtime_error"] = exc.message
    return env


def memory_doc(imports, allocated, inference_peak, process_peak) -> dict:
    """RSS after the imports (and the timing arrays), after allocate_tensors and at its
    peak during inference, all in KiB; the model's footprint is the difference, which does
    not depend on how long the steady state ran."""

    def diff(a, b):
        return a - b if a is not None and b is not None else None

    return {
        "rss_after_imports_kb": imports,
        "rss_after_allocate_kb": allocated,
        "peak_rss_kb": inference_peak,
        "peak_process_rss_kb": process_peak,
        "model_footprint_kb": diff(inference_peak, imports),
        "allocate_kb": diff(allocated, imports),
        "note": "peak_rss_kb is the peak up to the end of the steady state; "
        "peak_process_rss_kb includes the accuracy and agreement runs",
        "definitions": MEMORY_DEFINITIONS,
    }


#: What each memory figure is: resident sets of the runner's own Python process, not
#: benchmark_model's "footprint delta from the start of the tool".
MEMORY_DEFINITIONS = {
    "rss_after_imports_kb": "KiB: VmRSS of the runner process after importing numpy and "
    "the interpreter (and allocating its timing arrays)",
    "rss_after_allocate_kb": "KiB: VmRSS after the interpreter's allocate_tensors()",
    "peak_rss_kb": "KiB: VmHWM (peak resident set) of the runner process up to the end of "
    "the steady state, Python and its imports included",
    "peak_process_rss_kb": "KiB: VmHWM at the end of the run, accuracy and agreement runs included",
    "model_footprint_kb": "KiB: peak_rss_kb - rss_after_imports_kb, the model's own growth "
    "of the resident set",
    "allocate_kb": "KiB: rss_after_allocate_kb - rss_after_imports_kb",
}


def rss_kb() -> int | None:
    """This process's resident set now (VmRSS), in KiB."""
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", _read("/proc/self/status") or "", re.M)
    return int(m.group(1)) if m else None


def peak_rss_kb() -> int | None:
    """The process's peak resident set so far (VmHWM), in KiB."""
    status = _read("/proc/self/status") or ""
    m = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.M)
    if m:
        return int(m.group(1))
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss // 1024) if sys.platform == "darwin" else int(rss)
    except Exception:
        return None


# --------------------------------------------------------------------------- main


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a RunnerFailure (so they become JSON too)."""

    def error(self, message):
        raise RunnerFailure("Usage", message, EXIT_USAGE, "see `edgeq_runner.py --help`")


def parse_args(argv):
    p = _Parser(prog="edgeq_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="the .tflite model")
    p.add_argument("--probe", action="store_true", help="print the environment and exit")
    p.add_argument(
        "--data",
        help=".npz with samples x, or one array per input name for a multi-input model "
        "(and integer labels y, for accuracy)",
    )
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N samples")
    p.add_argument("--batch-size", type=int, default=64, help="accuracy batch size")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--warmup-runs", type=int, default=10)
    p.add_argument("--warmup-min-s", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=60.0, help="stop timing a phase after this")
    p.add_argument(
        "--max-samples",
        type=int,
        default=MAX_SAMPLES,
        help="timed runs kept in memory per loop (the steady state stops there)",
    )
    p.add_argument("--out", help="write the JSON here instead of stdout")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="run input NAME at this shape (sets its dynamic dimensions); repeatable",
    )
    p.add_argument(
        "--input-range",
        action="append",
        default=[],
        metavar="NAME=LOW,HIGH",
        help="draw input NAME's random data from LOW..HIGH (real values); repeatable",
    )
    p.add_argument(
        "--agreement",
        type=int,
        default=0,
        metavar="N",
        help="also run N seeded random inputs and save every output to --outputs-out",
    )
    p.add_argument("--agreement-seed", type=int, default=0, help="seed of those inputs")
    p.add_argument("--outputs-out", help=".npz for the agreement outputs")
    args = p.parse_args(argv)
    if not args.probe and not args.model:
        p.error("a model path is required (or --probe)")
    for name in ("threads", "runs", "batch_size", "max_samples"):
        if getattr(args, name) < 1:
            p.error("--{} must be >= 1".format(name.replace("_", "-")))
    if args.runs > args.max_samples:
        p.error(f"--runs must be <= --max-samples ({args.max_samples})")
    for name in ("warmup_runs", "limit", "agreement", "agreement_seed"):
        if getattr(args, name) < 0:
            p.error("--{} must be >= 0".format(name.replace("_", "-")))
    for name in ("warmup_min_s", "min_s", "max_s"):
        v = getattr(args, name)
        if not (v >= 0 and math.isfinite(v)):
            p.error("--{} must be a number >= 0".format(name.replace("_", "-")))
    if args.agreement and not args.outputs_out:
        p.error("--agreement needs --outputs-out FILE.npz (where the outputs are saved)")
    return args


def run(args) -> dict:
    clock = time.perf_counter_ns
    doc = {
        "schema": SCHEMA,
        "ok": False,
        "runner": {"name": "edgeq_runner", "version": RUNNER_VERSION},
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    doc["environment"] = environment(args.threads)
    try:
        import numpy  # noqa: F401  (missing numpy: say so before anything else)
    except Exception as exc:
        raise RunnerFailure(
            "NoNumpy",
            f"numpy is not importable: {_one_line(exc)}",
            EXIT_MISSING,
            "install numpy for this python: `python3 -m pip install numpy`",
        ) from None
    interpreter_cls, rt_name, rt_version = find_interpreter()
    doc["environment"]["runtime"] = rt_name
    doc["environment"]["runtime_version"] = rt_version
    buffers = sample_buffers(args.max_samples)
    rss_imports = rss_kb()

    if not os.path.isfile(args.model):
        raise RunnerFailure("BadModel", f"model not found: {args.model}", EXIT_MODEL)
    doc["model"] = {
        "path": args.model,
        "bytes": os.path.getsize(args.model),
        "sha256": sha256_file(args.model),
    }
    given_shapes = parse_input_shapes(args.input_shape)
    given_ranges = parse_input_ranges(args.input_range)
    data = load_eval_data(args.data) if args.data else None

    t0 = clock()
    interp = make_interpreter(interpreter_cls, args.model, args.threads)
    load_ns = clock() - t0
    details = interp.get_input_details()
    shapes_by_pos = match_inputs(details, given_shapes)
    ranges_by_pos = match_inputs(details, given_ranges, "--input-range")
    classes, not_classifier = classifier_classes(interp.get_output_details())

    plan = None
    if data is not None:
        x, y, scale, offset = data
        plan = feed_plan(x, details, shapes_by_pos, scale, offset)
        if classes and y is not None:
            check_labels(y, classes)
    data_shape = {i: p["sample_shape"] for i, p in enumerate(plan)} if plan else None
    shapes = resolve_input_shapes(details, shapes_by_pos, data_shape)

    t0 = clock()
    apply_input_shapes(interp, shapes)
    alloc_ns = clock() - t0
    rss_allocated = rss_kb()
    in_details = interp.get_input_details()
    doc["model"]["inputs"] = [tensor_info(d) for d in in_details]
    doc["model"]["outputs"] = [tensor_info(d) for d in interp.get_output_details()]

    specs = [input_spec(d, None, ranges_by_pos.get(i)) for i, d in enumerate(in_details)]
    sample = next(random_inputs(specs, 1, seed=0))
    fed = [dict(spec, source="random", seed=0) for spec in specs]
    if plan is not None:
        sample = next(data_samples_fed(plan, shapes, in_details, 1))
        fed = [
            {
                "name": spec["name"],
                "shape": spec["shape"],
                "dtype": spec["dtype"],
                "source": "data",
                "key": p["key"],
                "preprocess": p["rule"],
            }
            for spec, p in zip(specs, plan)
        ]
    samples = []
    bench = benchmark(
        interp, sample, args, buffers, lambda phase: samples.append(sample_device(phase))
    )
    peak_inference = bench["peak_rss_kb"]
    doc["sampling"] = samples
    steady = {x["phase"]: x.get("cpu") for x in samples}
    if steady.get("after_warmup") and steady.get("after_steady_state"):
        doc["contention"] = contention(steady["after_warmup"], steady["after_steady_state"])
    doc["latency_samples_ms"] = {
        "invoke": bench["samples_ms"],
        "every": bench["samples_every"],
        "of": bench["latency_ms"]["invoke"]["count"],
    }
    doc["benchmark_inputs"] = fed
    doc["phases_ms"] = {
        "load": load_ns / 1e6,
        "allocate": alloc_ns / 1e6,
        "first_inference": bench["first_inference_ns"] / 1e6,
        "warmup": bench["warmup"]["ms"],
        "steady_state": bench["steady_ns"] / 1e6,
    }
    doc["warmup"] = bench["warmup"]
    doc["latency_ms"] = bench["latency_ms"]
    doc["settings"] = {
        "threads": args.threads,
        "warmup_runs": args.warmup_runs,
        "warmup_min_s": args.warmup_min_s,
        "runs": args.runs,
        "min_s": args.min_s,
        "max_s": args.max_s,
        "max_samples": args.max_samples,
        "steady_state_capped": bench["capped"],
        "input_shapes": given_shapes,
        "input_ranges": {k: list(v) for k, v in given_ranges.items()},
        "agreement": args.agreement,
        "agreement_seed": args.agreement_seed,
    }

    doc["accuracy"] = None
    if data is None:
        doc["accuracy_note"] = "not measured: no evaluation data (--data)"
    elif classes is None:
        doc["accuracy_note"] = not_classifier
    elif y is None:
        doc["accuracy_note"] = "not measured: the data has no labels y (outputs are compared)"
    else:
        doc["accuracy_note"] = None
        ya = y[: args.limit] if args.limit else y
        acc_interp = make_interpreter(interpreter_cls, args.model, args.threads)
        apply_input_shapes(acc_interp, shapes)
        if len(plan) == 1:
            xa = plan[0]["x"][: args.limit] if args.limit else plan[0]["x"]
            doc["accuracy"] = evaluate_accuracy(acc_interp, xa, ya, scale, offset, args.batch_size)
        else:
            doc["accuracy"] = accuracy_fed(acc_interp, plan, ya, shapes)
        doc["accuracy"]["source"] = "device"
        doc["accuracy"]["classes"] = classes
        doc["accuracy"]["data_sha256"] = sha256_file(args.data)

    doc["agreement"] = None
    if args.agreement:

        def fresh():
            it = make_interpreter(interpreter_cls, args.model, args.threads)
            apply_input_shapes(it, shapes)
            return it

        t0 = clock()
        if plan is not None:
            fed_samples = list(data_samples_fed(plan, shapes, in_details, args.agreement))
        else:
            fed_samples = list(random_inputs(specs, args.agreement, args.agreement_seed))
        method, state_ops, note = state_reset(fresh(), fed_samples[0], fresh)
        ag_interp = fresh()
        arrays = run_samples(ag_interp, fed_samples, resetter(ag_interp, method, fresh))
        seconds = (clock() - t0) / 1e9
        out_details = ag_interp.get_output_details()
        doc["agreement"] = {
            "samples": args.agreement,
            "seed": args.agreement_seed,
            "generator": GENERATOR,
            "source": "data" if data is not None else "random",
            "data_sha256": sha256_file(args.data) if data is not None else None,
            "preprocess": plan[0]["rule"] if plan else None,
            "data_inputs": [{"key": p["key"], "preprocess": p["rule"]} for p in plan]
            if plan
            else None,
            "state": note,
            "state_reset": method,
            "state_ops": state_ops,
            "inputs": specs,
            "outputs": [
                dict(tensor_info(d), key=f"output_{k}", saved_shape=list(a.shape))
                for k, (d, a) in enumerate(zip(out_details, arrays))
            ],
            "outputs_file": args.outputs_out,
            "outputs_sha256": save_outputs(args.outputs_out, arrays),
            "seconds": seconds,
        }
    doc["memory"] = memory_doc(rss_imports, rss_allocated, peak_inference, peak_rss_kb())
    doc["ok"] = True
    doc["error"] = None
    return doc


def _emit(doc: dict, out: str | None) -> None:
    text = json.dumps(doc, indent=1, allow_nan=False, default=str)
    if out:
        tmp = out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, out)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except RunnerFailure as exc:
        _emit(_error_doc(exc.kind, exc.message, exc.hint, None), None)
        sys.stderr.write(f"edgeq_runner: {exc.message}\n")
        return exc.exit_code
    if args.probe:
        _emit({"schema": SCHEMA, "ok": True, "probe": True, "environment": probe()}, args.out)
        return EXIT_OK
    try:
        doc = run(args)
        code = EXIT_OK
    except RunnerFailure as exc:
        doc, code = _error_doc(exc.kind, exc.message, exc.hint, args), exc.exit_code
    except MemoryError:
        doc, code = _error_doc("MemoryError", "out of memory", "", args), EXIT_CRASH
    except Exception as exc:
        doc = _error_doc(type(exc).__name__, _one_line(exc), "", args)
        doc["error"]["traceback"] = traceback.format_exc()[-4000:]
        code = EXIT_CRASH
    _emit(doc, args.out)
    if code:
        sys.stderr.write("edgeq_runner: {}\n".format(doc["error"]["message"]))
    return code


def _error_doc(kind: str, message: str, hint: str, args) -> dict:
    try:
        env = environment(getattr(args, "threads", None))
    except Exception:
        env = None
    return {
        "schema": SCHEMA,
        "ok": False,
        "runner": {"name": "edgeq_runner", "version": RUNNER_VERSION},
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": env,
        "error": {"type": kind, "message": message, "hint": hint or None},
    }


if __name__ == "__main__":
    sys.exit(main())
