#!/usr/bin/env python3
"""edgeq device runner: benchmark a .tflite model ON the device and answer with one JSON document.

Self-contained on purpose: it needs only the Python standard library (3.8+), numpy (1.x or
2.x) and one TFLite interpreter package, tried in this order: ai_edge_litert, tflite_runtime,
tensorflow.lite. The host pushes this single file next to the model and runs it; the host's
`edgeq eval` imports the very same functions (`prepare_images`, `quantize_input`,
`evaluate_accuracy`) so host and device accuracy are computed by one implementation.

Usage:
    python3 edgeq_runner.py MODEL.tflite [--data EVAL.npz] [--threads N] [--runs N] [--min-s S]
                            [--warmup-runs N] [--warmup-min-s S] [--max-s S] [--out FILE]
    python3 edgeq_runner.py --probe          # environment only (no numpy or interpreter needed)

The output schema is documented in device_scripts/README.md. Exit codes: 0 ok, 2 bad
arguments, 3 model cannot be loaded, 4 evaluation data unusable, 5 numpy or interpreter
missing, 1 anything else. Every failure still prints a JSON document with "ok": false.
"""

from __future__ import annotations

import argparse
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
RUNNER_VERSION = "1.0"

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


def _dist_version(name: str) -> str | None:
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
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail.get("name"),
        "shape": [int(v) for v in detail["shape"]],
        "dtype": _dtype_name(detail["dtype"]),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def _dtype_name(dtype) -> str:
    import numpy as np

    return np.dtype(dtype).name


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
    scale, zero_point = detail.get("quantization", (0.0, 0))
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


def dequantize_output(y, detail: dict):
    """Output tensor values as float (the argmax is unchanged, but logits are comparable)."""
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.asarray(y, dtype=np.float32)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return (np.asarray(y, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale or 1.0)


# --------------------------------------------------------------------------- evaluation


def predict(interpreter, x_float, batch_size: int = 64):
    """Class predictions for float inputs [N, ...], batched through the interpreter.

    The input tensor is resized to `batch_size` (the last batch to what is left) so the test
    set goes through in N/batch_size calls; a model that refuses resizing falls back to one
    image per call. Returns (predictions int64 [N], batch size actually used).
    """
    import numpy as np

    n = int(x_float.shape[0])
    inp = interpreter.get_input_details()[0]
    per_image_shape = list(inp["shape"][1:])
    preds = np.empty(n, dtype=np.int64)
    used = batch_size
    current = None
    try:
        for start in range(0, n, batch_size):
            chunk = x_float[start : start + batch_size]
            if current != len(chunk):
                interpreter.resize_tensor_input(inp["index"], [len(chunk), *per_image_shape])
                interpreter.allocate_tensors()
                current = len(chunk)
                inp = interpreter.get_input_details()[0]
            preds[start : start + len(chunk)] = _run_batch(interpreter, inp, chunk)
    except (ValueError, RuntimeError):
        used = 1
        interpreter.resize_tensor_input(inp["index"], [1, *per_image_shape])
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        for i in range(n):
            preds[i] = _run_batch(interpreter, inp, x_float[i : i + 1])[0]
    return preds, used


def _run_batch(interpreter, inp, chunk):
    import numpy as np

    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], quantize_input(chunk, inp))
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    return np.argmax(y.reshape(len(chunk), -1), axis=1)


def evaluate_accuracy(
    interpreter,
    images,
    labels,
    scale: float = DEFAULT_INPUT_SCALE,
    offset: float = DEFAULT_INPUT_OFFSET,
    batch_size: int = 64,
) -> dict:
    """Top-1 accuracy of the model on uint8 images + integer labels."""
    import numpy as np

    t0 = time.perf_counter_ns()
    x = prepare_images(images, scale, offset)
    preds, used = predict(interpreter, x, batch_size)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    correct = int(np.sum(preds == labels))
    return {
        "samples": int(labels.size),
        "correct": correct,
        "top1": correct / labels.size if labels.size else None,
        "batch_size": used,
        "seconds": (time.perf_counter_ns() - t0) / 1e9,
        "predictions_sha256": hashlib.sha256(preds.astype("<i8").tobytes()).hexdigest(),
    }


def load_eval_data(path: str):
    """Images, labels and preprocessing from an .npz: keys x/y (or x_test/y_test)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            xk = "x" if "x" in keys else "x_test" if "x_test" in keys else None
            yk = "y" if "y" in keys else "y_test" if "y_test" in keys else None
            if xk is None or yk is None:
                raise RunnerFailure(
                    "BadData",
                    f"{path} must hold images under 'x' (or 'x_test') and labels under 'y' "
                    f"(or 'y_test'); found keys {sorted(keys)}",
                    EXIT_DATA,
                )
            x, y = f[xk], f[yk]
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
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise RunnerFailure(
            "BadData",
            f"{path}: images must be uint8 [N, H, W] or [N, H, W, C], "
            f"got {x.dtype} {list(x.shape)}",
            EXIT_DATA,
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
        raise RunnerFailure(
            "BadData",
            f"{path}: labels must be integers [N] with N = {x.shape[0]}, "
            f"got {y.dtype} {list(y.shape)}",
            EXIT_DATA,
        )
    return x, y, scale, offset


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


def benchmark(interpreter, sample, args) -> dict:
    """Warm up, then time invoke() alone and the end-to-end call (set, invoke, get)."""
    clock = time.perf_counter_ns
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    i_idx, o_idx = inp["index"], out["index"]
    set_tensor, invoke, get_tensor = (
        interpreter.set_tensor,
        interpreter.invoke,
        interpreter.get_tensor,
    )
    set_tensor(i_idx, sample)

    t0 = clock()
    invoke()
    first_ns = clock() - t0

    warm_count, warm_ns = (0, 0)
    if args.warmup_runs > 0 or args.warmup_min_s > 0:
        warm_count, warm_ns = _loop(invoke, args.warmup_runs, args.warmup_min_s, args.max_s)

    invoke_ns = []
    e2e_ns = []

    def timed_invoke():
        t = clock()
        invoke()
        invoke_ns.append(clock() - t)

    def timed_e2e():
        t = clock()
        set_tensor(i_idx, sample)
        invoke()
        get_tensor(o_idx)
        e2e_ns.append(clock() - t)

    n, steady_ns = _loop(timed_invoke, args.runs, args.min_s, args.max_s)
    _, e2e_total_ns = _loop(timed_e2e, n, 0.0, args.max_s)
    return {
        "first_inference_ns": first_ns,
        "warmup": {"count": warm_count, "ms": warm_ns / 1e6},
        "steady_ns": steady_ns,
        "e2e_total_ns": e2e_total_ns,
        "latency_ms": {"invoke": latency_stats(invoke_ns), "end_to_end": latency_stats(e2e_ns)},
    }


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


def peak_rss_kb() -> int | None:
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
    p.add_argument("--data", help=".npz with uint8 images x and labels y, for accuracy")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N samples")
    p.add_argument("--batch-size", type=int, default=64, help="accuracy batch size")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--warmup-runs", type=int, default=10)
    p.add_argument("--warmup-min-s", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=60.0, help="stop timing a phase after this")
    p.add_argument("--out", help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    if not args.probe and not args.model:
        p.error("a model path is required (or --probe)")
    for name in ("threads", "runs", "batch_size"):
        if getattr(args, name) < 1:
            p.error("--{} must be >= 1".format(name.replace("_", "-")))
    for name in ("warmup_runs", "limit"):
        if getattr(args, name) < 0:
            p.error("--{} must be >= 0".format(name.replace("_", "-")))
    for name in ("warmup_min_s", "min_s", "max_s"):
        v = getattr(args, name)
        if not (v >= 0 and math.isfinite(v)):
            p.error("--{} must be a number >= 0".format(name.replace("_", "-")))
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
        import numpy as np
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

    if not os.path.isfile(args.model):
        raise RunnerFailure("BadModel", f"model not found: {args.model}", EXIT_MODEL)
    doc["model"] = {
        "path": args.model,
        "bytes": os.path.getsize(args.model),
        "sha256": sha256_file(args.model),
    }
    data = load_eval_data(args.data) if args.data else None

    t0 = clock()
    interp = make_interpreter(interpreter_cls, args.model, args.threads)
    load_ns = clock() - t0
    t0 = clock()
    try:
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RunnerFailure(
            "BadModel", f"cannot allocate tensors: {_one_line(exc)}", EXIT_MODEL
        ) from None
    alloc_ns = clock() - t0
    inp = interp.get_input_details()[0]
    doc["model"]["inputs"] = [tensor_info(d) for d in interp.get_input_details()]
    doc["model"]["outputs"] = [tensor_info(d) for d in interp.get_output_details()]

    if data is not None:
        x, y, scale, offset = data
        scale = DEFAULT_INPUT_SCALE if scale is None else scale
        offset = DEFAULT_INPUT_OFFSET if offset is None else offset
        sample = quantize_input(prepare_images(x[:1], scale, offset), inp)
    else:
        rng = np.random.RandomState(0)
        sample = quantize_input(rng.uniform(-1, 1, size=inp["shape"]).astype(np.float32), inp)
    if list(sample.shape) != [int(v) for v in inp["shape"]]:
        raise RunnerFailure(
            "BadData",
            "evaluation images have shape {} per batch of 1, the model expects {}".format(
                list(sample.shape), [int(v) for v in inp["shape"]]
            ),
            EXIT_DATA,
        )
    bench = benchmark(interp, sample, args)
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
    }

    doc["accuracy"] = None
    if data is not None:
        x, y, _s, _o = data
        if args.limit:
            x, y = x[: args.limit], y[: args.limit]
        acc_interp = make_interpreter(interpreter_cls, args.model, args.threads)
        acc_interp.allocate_tensors()
        doc["accuracy"] = evaluate_accuracy(acc_interp, x, y, scale, offset, args.batch_size)
        doc["accuracy"]["source"] = "device"
        doc["accuracy"]["data_sha256"] = sha256_file(args.data)
    doc["memory"] = {"peak_rss_kb": peak_rss_kb()}
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
