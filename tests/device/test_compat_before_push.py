"""Compatibility before the push: a model that needs an operator the device's runtime lacks
is exit 2, with one line naming the op, its version, the runtime and the fix, in `eval`,
`bench`, `deploy` and the lab — and the model is never sent.

Two models, made here: one with a custom op (`Landmarks2TransformMatrix`, as MediaPipe's
face-landmark model has), written with LiteRT's flatbuffer schema; and a dense net converted
by TF 2.21 in dynamic-range mode, which emits FULLY_CONNECTED v12 — more than the "Pi"'s
tflite-runtime 2.14 has. The "Pi" is a real sshd running that runtime in its own venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.benchmark_model import binary as real_binary
from tests.support.config import FAST_FLAGS, write_config

CUSTOM = "Landmarks2TransformMatrix"


def custom_op_model(path: Path) -> Path:
    """float32 [1, 4] -> custom op -> [1, 4]: a valid .tflite no stock runtime can run."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    oc.customCode = CUSTOM
    oc.version = 1
    tensors = []
    for name in ("input", "landmarks"):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], s.TensorType.FLOAT32, 0, name
        tensors.append(t)
    node = s.OperatorT()
    node.opcodeIndex, node.inputs, node.outputs = 0, [0], [1]
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [1], [node]
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [oc], [sg], [s.BufferT()]
    b = flatbuffers.Builder(256)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import tensorflow as tf

    out = tmp_path_factory.mktemp("compat-models")
    layers = tf.keras.layers
    keras = tf.keras.Sequential(
        [tf.keras.Input((64,)), layers.Dense(32, activation="relu"), layers.Dense(4)]
    )
    conv = tf.lite.TFLiteConverter.from_keras_model(keras)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range
    dyn = out / "dense_dynamic.tflite"
    dyn.write_bytes(conv.convert())
    return {"custom": custom_op_model(out / "face_custom.tflite"), "fc12": dyn}


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sent(workdir: Path, model: Path) -> list[Path]:
    return [p for p in workdir.rglob("*") if _sha(model) in p.name]


def test_the_flatbuffer_says_what_the_model_needs(models):
    from edgeq import compat

    (custom,) = compat.model_ops(models["custom"])
    assert custom.custom and custom.name == CUSTOM
    fc = [op for op in compat.model_ops(models["fc12"]) if op.name == "FULLY_CONNECTED"]
    assert [op.version for op in fc] == [12]


def test_pi_bench_and_deploy_exit_2_before_the_push(
    models, cli, pi_config, pi_workdir, tmp_path, cache_dir
):
    for key, needle in (("custom", f"custom op {CUSTOM}"), ("fc12", "FULLY_CONNECTED v12")):
        model = models[key]
        for cmd in (
            ("bench", model, "--no-data"),
            ("deploy", "--model", model, "--no-data", "--results", tmp_path / "r"),
        ):
            res = cli(*cmd, "--target", "pi", "--config", pi_config, *FAST_FLAGS)
            assert res.exit_code == 2, (cmd, res.output)
            line = res.stderr.strip().splitlines()[-1]
            assert needle in line and "tflite-runtime 2.14.0" in line, line
            assert "checked before sending the model" in line and "; " in line
            assert _sent(pi_workdir, model) == [], "the model was sent"
    # the runtime was asked once per (op, version), then remembered
    (cached,) = (cache_dir / "compat").glob("py-tflite-runtime-2.14.0-*.json")
    answers = json.loads(cached.read_text())["answers"]
    assert set(answers) == {f"custom:{CUSTOM}", "FULLY_CONNECTED:v12"}


def test_eval_and_native_runner_say_the_same(models, cli, tmp_path, cache_dir):
    res = cli("eval", models["custom"], "--json")
    assert res.exit_code == 2, res.output
    assert f"custom op {CUSTOM}" in res.output and "ai-edge-litert" in res.output
    binary = real_binary("x86_64")  # fails (never skips) without the real build
    workdir = tmp_path / "native-wd"
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {
            "native": {
                "transport": "local",
                "runner": "benchmark_model",
                "benchmark_binary": str(binary),
                "use_python_runner": False,
                "workdir": str(workdir),
            }
        },
    )
    res = cli("bench", models["custom"], "--no-data", "--target", "native", "--config", cfg)
    assert res.exit_code == 2, res.output
    assert f"custom op {CUSTOM}" in res.stderr and "benchmark_model (sha256" in res.stderr
    assert _sent(workdir, models["custom"]) == []


def test_lab_records_a_model_error_and_keeps_the_device(
    models, tmp_path, pi_server, pi_python, lab_sections
):
    from edgeq.lab import load_inventory, run_lab
    from tests.support.lab import write_inventory

    lab_sections["lab"]["models"] = [str(models["fc12"])]
    lab_sections["lab"]["accuracy"] = False
    pi = pi_server.target_values(python=pi_python, workdir=str(tmp_path / "pi-wd"))
    (tmp_path / "pi-wd").mkdir()
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, {"pi": pi}))
    run = run_lab(inv)
    (rec,) = run.results
    assert run.exit_code == 2
    assert rec.status == "error" and rec.reason.startswith("model error: ")
    assert "FULLY_CONNECTED v12" in rec.reason and rec.checks[0]["kind"] == "model"
    assert rec.attempts in (0, 1), "a model error is not retried"
    (dev,) = run.devices
    assert dev.status != "quarantined"
    assert _sent(Path(pi["workdir"]), models["fc12"]) == []


def test_native_runner_checks_the_python_that_measures_accuracy(
    models, cli, pi_python, tmp_path, cache_dir
):
    """A native-runner device whose binary runs FULLY_CONNECTED v12 but whose python (the
    "Pi"'s tflite-runtime 2.14) measures accuracy: exit 2 naming that runtime before the
    model is sent; with use_python_runner = false the host measures accuracy instead."""
    import numpy as np

    binary = real_binary("x86_64")  # fails (never skips) without the real build
    rng = np.random.RandomState(0)
    data = tmp_path / "dense.npz"
    np.savez(data, x=rng.rand(64, 64).astype(np.float32), y=rng.randint(0, 4, 64))
    native = {"transport": "local", "runner": "benchmark_model", "benchmark_binary": str(binary)}
    targets = {
        name: {**native, "python": pi_python, "use_python_runner": use, "workdir": str(wd)}
        for name, use, wd in (
            ("auto", "auto", tmp_path / "wd-auto"),
            ("yes", True, tmp_path / "wd-yes"),
            ("host", False, tmp_path / "wd-host"),
        )
    }
    cfg = write_config(tmp_path / "edgeq.toml", targets)
    model = models["fc12"]
    for name in ("auto", "yes"):
        res = cli("bench", model, "--data", data, "--target", name, "--config", cfg, *FAST_FLAGS)
        assert res.exit_code == 2, (name, res.output)
        line = res.stderr.strip().splitlines()[-1]
        assert "FULLY_CONNECTED v12" in line and "tflite-runtime 2.14.0" in line, line
        assert "the python that measures accuracy" in line and "use_python_runner" in line
        assert "checked before sending the model" in line
        assert _sent(Path(targets[name]["workdir"]), model) == [], "the model was sent"
    res = cli(
        "bench", model, "--data", data, "--target", "host", "--config", cfg, "--json", *FAST_FLAGS
    )
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["run"]
    assert run["accuracy"]["source"] != "device" and run["accuracy"]["samples"] == 64
    assert run["latency_ms"]["invoke"]["p50"] > 0
