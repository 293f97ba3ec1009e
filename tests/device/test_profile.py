"""`edgeq profile`: the per-operator profile from the REAL benchmark_model, on this host and
through a real sshd; mapped to the Keras layers of an edgeq model, to tensor names of a
model edgeq did not make; a usage error (exit 2) for a target without the binary."""

from __future__ import annotations

import json

import pytest

from tests.support.benchmark_model import binary as real_binary
from tests.support.config import write_config

LIGHT = ("--runs", "20", "--min-s", "0", "--warmup-runs", "2", "--warmup-min-s", "0")


@pytest.fixture()
def binary():
    return real_binary("x86_64")  # fails (never skips) without the real build


def _profile(cli, model, target, cfg, out):
    res = cli("profile", model, "--target", target, "--config", cfg, "--out", out, *LIGHT)
    assert res.exit_code == 0, res.output
    return res, json.loads((out / "profile.json").read_text())


def test_book_cnn_over_ssh_maps_nodes_to_keras_layers(
    cli, artifacts, binary, pi_server, pi_workdir, tmp_path
):
    folder, _ = artifacts
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {
            "pi": pi_server.target_values(
                workdir=str(pi_workdir), runner="python", benchmark_binary=str(binary)
            )
        },
    )  # a python-runner target: the binary goes alongside for the profile
    res, doc = _profile(cli, folder / "model_int8.tflite", "pi", cfg, tmp_path / "p")
    rows = doc["rows"]
    assert doc["layer_source"].startswith("Keras layer names")
    ms = [r["avg_ms"] for r in rows]
    assert ms == sorted(ms, reverse=True) and all(m >= 0 for m in ms)
    assert abs(rows[-1]["cum_percent"] - 100) < 0.5
    by_label = {r["label"]: r for r in rows}
    assert by_label["conv2"]["type"] == "CONV_2D" and by_label["conv1"]["type"] == "CONV_2D"
    assert by_label["logits"]["type"] == "FULLY_CONNECTED"
    assert {"bn2", "relu2"} <= set(by_label["conv2"]["layers"])  # fused into the conv
    assert by_label["conv2"]["avg_ms"] > by_label["logits"]["avg_ms"]
    assert "conv2" in res.stdout and (tmp_path / "p" / "profile.png").stat().st_size > 5000


def test_foreign_model_gets_tensor_names_and_xnnpack_says_delegated(cli, foreign, binary, tmp_path):
    xnn = real_binary("x86_64-xnnpack")
    targets = {
        "plain": {
            "transport": "local",
            "runner": "benchmark_model",
            "benchmark_binary": str(binary),
        },
        "xnn": {"transport": "local", "runner": "benchmark_model", "benchmark_binary": str(xnn)},
    }
    cfg = write_config(tmp_path / "edgeq.toml", targets)
    model = foreign["float_rgb"].path
    _, doc = _profile(cli, model, "plain", cfg, tmp_path / "plain")
    assert doc["layer_source"] == "tensor names" and not doc["delegated"]
    conv = next(r for r in doc["rows"] if r["type"] == "CONV_2D")
    assert "conv2d" in conv["label"] and conv["layers"] == []
    if xnn.is_file():
        res, doc = _profile(cli, model, "xnn", cfg, tmp_path / "xnn")
        assert doc["delegated"] and any(r["delegated"] for r in doc["rows"])
        assert "delegated" in res.stdout


def test_no_binary_is_a_usage_error_before_anything_is_sent(cli, foreign, tmp_path):
    wd = tmp_path / "wd"
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"py": {"transport": "local", "runner": "python", "workdir": str(wd)}},
    )
    res = cli("profile", foreign["float_rgb"].path, "--target", "py", "--config", cfg)
    assert res.exit_code == 2
    assert "needs TFLite's native benchmark_model" in res.stderr
    assert "no op profiler" in res.stderr and not wd.exists()


def test_bench_op_profiling_on_a_python_runner_target(
    cli, artifacts, binary, pi_server, pi_python, pi_workdir, tmp_path, data_dir
):
    folder, _ = artifacts
    data = ("--data", data_dir, "--limit", "200")
    values = pi_server.target_values(python=pi_python, workdir=str(pi_workdir), runner="python")
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"pi": {**values, "benchmark_binary": str(binary)}, "pi-nobin": values},
    )
    model = folder / "model_int8.tflite"
    res = cli(
        "bench", model, "--target", "pi-nobin", "--config", cfg, "--op-profiling", *data, *LIGHT
    )
    assert res.exit_code == 2 and "no op profiler" in res.stderr
    assert not list(pi_workdir.rglob("*.tflite")), "nothing is sent before the usage error"
    res = cli(
        "bench", model, "--target", "pi", "--config", cfg, "--op-profiling", "--json", *data, *LIGHT
    )
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["run"]
    assert run["runner"]["name"] == "edgeq_runner" and run["accuracy"] is not None
    prof = run["op_profile"]
    assert prof["source"].startswith("benchmark_model alongside") and prof["run_order"]


def test_op_profile_is_an_alias_of_op_profiling(cli, foreign, binary, tmp_path):
    """The issue's spelling, `--op-profile`, on bench and deploy (help shows both)."""
    target = {"transport": "local", "runner": "benchmark_model", "benchmark_binary": str(binary)}
    cfg = write_config(tmp_path / "edgeq.toml", {"native": target})
    model = foreign["float_rgb"].path
    common = ("--target", "native", "--config", cfg, "--no-data", "--json", *LIGHT)
    for flag, profiled in (("--op-profile", True), ("--op-profiling", True), (None, False)):
        res = cli("bench", model, *common, *([flag] if flag else []))
        assert res.exit_code == 0, res.output
        prof = json.loads(res.stdout)["run"].get("op_profile")
        assert bool(prof and prof["run_order"]) is profiled, flag
    for command in ("bench", "deploy"):
        text = " ".join(cli(command, "--help", env={"COLUMNS": "200"}).stdout.split())
        assert "--op-profiling, --op-profile" in text, command
