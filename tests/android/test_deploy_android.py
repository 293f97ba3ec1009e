"""`edgeq deploy --target android` (what `make bench-android` runs) end to end: the real adb
client drives the emulated phone, which carries the REAL aarch64 benchmark_model (static
LiteRT build, run under qemu-user: the emulated phone's commands run on this host; see
tests/support/benchmark_model.py). Accuracy from the device's python or from the host, and
the result says which."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from edgeq import evaluate
from edgeq.results import DeployResult
from tests.support.android import PHONE_BUDGET, adb_values, device_path
from tests.support.benchmark_model import QEMU_ENV, binary
from tests.support.config import write_config

FAST = ["--runs", "20", "--min-s", "0.05", "--warmup-runs", "2"]
BASE = "/data/local/tmp/edgeq"


@pytest.fixture()
def android(phones, deploy_cli, tmp_path):
    """Start a phone, write edgeq.toml for it, and deploy through the CLI."""

    class Android:
        emu = None
        config = None

        def setup(self, budget=None, emu=None, **target):
            self.emu = emu or phones()
            target = {
                "benchmark_binary": str(binary("aarch64")),
                "use_python_runner": False,
                **target,
                "env": {**QEMU_ENV, **target.get("env", {})},  # the phone's CPU for qemu
            }
            values = adb_values(self.emu, **target)
            self.config = write_config(tmp_path / "edgeq.toml", {"android": values}, budget)
            return self

        def deploy(self, model, *extra):
            return deploy_cli("android", self.config, model, *FAST, *extra, fast=False)

        def base_entries(self, base=BASE):
            return sorted(p.name for p in device_path(self.emu, base).iterdir())

    return Android()


def _host_top1(model, data_dir) -> float:
    return evaluate.evaluate([model], data_path=data_dir, latency_runs=2).rows[0].top1


@pytest.mark.parametrize("shell_v2", [True, False], ids=["shell_v2", "legacy"])
def test_generous_budget_passes_and_result_is_valid(
    android, phones, artifacts, data_dir, tmp_path, shell_v2
):
    out, _ = artifacts
    model = out / "model_int8.tflite"
    android.setup(PHONE_BUDGET, emu=phones(shell_v2=shell_v2))
    res = android.deploy(model, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["verdict"]["status"] == "pass"
    run = doc["run"]
    assert run["runner"]["name"] == "benchmark_model"
    assert run["runner"]["argv"][1].startswith(f"--graph={BASE}/edgeq-cache/")
    inv = run["latency_ms"]["invoke"]
    assert inv["count"] >= 20 and inv["min"] <= inv["mean"] <= inv["max"]
    assert inv["p5"] <= inv["p50"] <= inv["p95"]  # as the tool printed them
    assert not {"p90", "p99"} & set(inv)  # the tool prints neither: none invented
    assert set(run["phases_ms"]) == {"init", "first_inference", "warmup", "steady_state"}
    assert run["benchmark_model"]["params"]["Min num runs"] == "20"
    assert run["memory"]["footprint_mb"]["overall"] >= 0
    env = run["environment"]
    assert env["os"] == "Android 13 (API 33)" and env["cpu_abi"] == "arm64-v8a"
    assert env["emulated"] is True and "binary translation" in env["emulation_evidence"]
    acc = run["accuracy"]
    assert run["accuracy_source"] == acc["source"] == "host"
    assert acc["samples"] == 1000 and acc["top1"] == _host_top1(model, data_dir)
    assert acc["model_sha256"] == run["model"]["sha256"] == doc["artifact"]["sha256"]
    sources = {c["metric"]: c["source"] for c in doc["verdict"]["checks"]}
    assert sources["latency_mean"] == "benchmark_model" and sources["accuracy"] == "host"
    sent = {f["file"]: f["sent"] for f in doc["transfer"]["files"]}
    assert sent == {
        "benchmark_model": binary("aarch64").stat().st_size,
        "model_int8.tflite": model.stat().st_size,
    }
    saved = list((tmp_path / "results").glob("*_android.json"))
    assert len(saved) == 1
    again = DeployResult.from_json(saved[0].read_text())  # validates the schema
    assert again.target["transport"] == "adb" and again.run["runner"]["name"] == "benchmark_model"
    assert android.base_entries() == ["edgeq-cache"]  # the per-run folder was removed


def test_accuracy_measured_by_the_device_python(android, artifacts, data_dir):
    out, _ = artifacts
    model = out / "model_int8.tflite"
    android.setup(PHONE_BUDGET, use_python_runner=True, python="python3")
    res = android.deploy(model, "--json")
    assert res.exit_code == 0, res.stderr
    run = json.loads(res.stdout)["run"]
    acc = run["accuracy"]
    assert run["accuracy_source"] == acc["source"] == "device"
    assert acc["runtime"].startswith("ai-edge-litert") and acc["python"]
    assert acc["samples"] == 1000 and acc["top1"] == _host_top1(model, data_dir)
    checks = {c["metric"]: c for c in json.loads(res.stdout)["verdict"]["checks"]}
    assert checks["accuracy"]["source"] == "device"
    assert android.base_entries() == ["edgeq-cache"]


def test_auto_falls_back_to_the_host_when_the_device_has_no_python(android, artifacts):
    out, _ = artifacts
    android.setup(PHONE_BUDGET, use_python_runner="auto", python="/system/bin/python3")
    res = android.deploy(out / "model_int8.tflite", "--json")
    assert res.exit_code == 0, res.stderr
    acc = json.loads(res.stdout)["run"]["accuracy"]
    assert acc["source"] == "host" and "no usable python on the device" in acc["note"]


def test_python_runner_required_but_missing_is_a_device_error(android, artifacts):
    out, _ = artifacts
    android.setup(PHONE_BUDGET, use_python_runner=True, python="/system/bin/python3")
    res = android.deploy(out / "model_int8.tflite")
    assert res.exit_code == 3
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("edgeq: error:")]
    assert len(errors) == 1 and "use_python_runner = true" in errors[0]
    assert android.base_entries() == ["edgeq-cache"]


def test_tight_budget_fails_with_exit_1(android, artifacts):
    out, _ = artifacts
    android.setup(
        {"max_model_kb": 10, "max_latency_ms": 0.0001, "latency_percentile": "mean"},
        env={"EDGEQ_EMULATED": "0"},  # judge latency although the phone is emulated
    )
    res = android.deploy(out / "model_int8.tflite", "--json")
    assert res.exit_code == 1
    checks = {c["metric"]: c for c in json.loads(res.stdout)["verdict"]["checks"]}
    assert checks["model_size"]["passed"] is False
    assert checks["latency_mean"]["passed"] is False and checks["latency_mean"]["measured"] > 0
    res = android.deploy(out / "model_int8.tflite")  # the human verdict
    assert res.exit_code == 1 and "verdict: FAIL" in res.stdout


def test_default_p90_budget_is_judged_at_the_tools_p95(android, artifacts):
    out, _ = artifacts
    android.setup({**PHONE_BUDGET, "latency_percentile": "p90"}, env={"EDGEQ_EMULATED": "0"})
    res = android.deploy(out / "model_int8.tflite", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    lat = {c["metric"]: c for c in doc["verdict"]["checks"]}["latency_p90"]
    assert lat["judged_at"] == "p95" and lat["passed"] is True
    assert lat["measured"] == doc["run"]["latency_ms"]["invoke"]["p95"]
    assert "does not report p90" in lat["note"]


def test_second_deploy_sends_zero_bytes(android, artifacts):
    out, _ = artifacts
    android.setup(PHONE_BUDGET)
    runs = [android.deploy(out / "model_int8.tflite", "--json") for _ in "12"]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["bytes_sent"] > first["artifact"]["bytes"]
    assert second["bytes_sent"] == 0 and all(f["sent"] == 0 for f in second["transfer"]["files"])


def test_bench_options_reach_the_tool(android, artifacts, cli, monkeypatch):
    out, _ = artifacts
    android.setup(benchmark_binary="")  # the binary comes from the environment instead
    monkeypatch.setenv("EDGEQ_BENCHMARK_MODEL", str(binary("aarch64")))
    res = cli(
        "bench",
        out / "model_int8.tflite",
        "--target",
        "android",
        "--config",
        android.config,
        "--no-data",
        *FAST,
        "--no-xnnpack",
        "--use-gpu",
        "--use-nnapi",
        "--op-profiling",
        "--taskset",
        "1",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    run = json.loads(res.stdout)["run"]
    bm = run["benchmark_model"]
    argv = run["runner"]["argv"]
    assert argv[:2] == ["taskset", "1"]
    for flag in ("--use_xnnpack=false", "--use_gpu=true", "--use_nnapi=true",
                 "--enable_op_profiling=true"):  # fmt: skip
        assert flag in argv
    assert bm["params"]["Enable op profiling"] == "1"
    # this build has no XNNPACK, GPU or NNAPI: the tool says so, edgeq applies nothing
    assert (
        "Unconsumed cmdline flags: --use_xnnpack=false --use_gpu=true --use_nnapi=true"
        in bm["warnings"]
    )
    assert run["environment"]["delegates_requested"] == ["GPU", "NNAPI"]
    assert run["environment"]["delegates_applied"] == [] and run["delegates"] == []
    assert run["environment"]["xnnpack"] is False
    types = {row["type"] for row in run["op_profile"]["by_node_type"]}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= types  # the tool's own op profile
    assert run["accuracy"] is None and run["accuracy_source"] is None


def test_hostile_workdir_and_model_names(android, phones, artifacts, tmp_path):
    out, _ = artifacts
    base = "/data/local/tmp/edge q'x\" $(touch pwned) `touch pwned2`; touch pwned3"
    model = tmp_path / "my model's $(touch pwned4) `x`.tflite"
    shutil.copy(out / "model_int8.tflite", model)
    android.setup(PHONE_BUDGET, emu=phones(shell_v2=False), workdir=base)
    res = android.deploy(model)
    assert res.exit_code == 0, res.stderr
    assert android.base_entries(base) == ["edgeq-cache"]
    assert not list(device_path(android.emu, "/").rglob("pwned*"))


def test_missing_binary_is_a_usage_error(android, artifacts, tmp_path):
    out, _ = artifacts
    android.setup(PHONE_BUDGET)
    res = android.deploy(
        out / "model_int8.tflite", "--benchmark-binary", tmp_path / "benchmark_model"
    )
    assert res.exit_code == 2
    assert "benchmark_model binary not found" in res.stderr and "android_aarch64" in res.stderr


def test_tool_failure_is_one_line_with_the_fix(android, artifacts):
    out, _ = artifacts
    android.setup(PHONE_BUDGET)
    res = android.deploy(out / "model_int8.tflite", "--taskset", "8" + "0" * 63)  # CPU 255
    assert res.exit_code == 3
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("edgeq: error:")]
    assert len(errors) == 1 and "benchmark_model failed" in errors[0]
    assert "the taskset mask" in errors[0]
    assert android.base_entries() == ["edgeq-cache"]


def test_make_bench_android(android, artifacts, data_dir, repo_root, tmp_path):
    """The Makefile target itself (setup taken as done: `-o .venv/.installed`)."""
    edgeq_bin = repo_root / ".venv" / "bin" / "edgeq"
    if shutil.which("make") is None or not edgeq_bin.exists():
        pytest.skip("needs make and the repo's .venv (make setup)")
    out, _ = artifacts
    android.setup(PHONE_BUDGET)
    args = (
        f"--config '{android.config}' --model '{out / 'model_int8.tflite'}' --data "
        f"'{data_dir}' --results '{tmp_path / 'make-results'}' " + " ".join(FAST)
    )
    proc = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(repo_root),
            "-o",
            ".venv/.installed",
            "bench-android",
            f"BENCH_ANDROID_ARGS={args}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout and "benchmark_model" in proc.stdout
    assert len(list((tmp_path / "make-results").glob("*_android.json"))) == 1


def test_phone_without_sha256sum_checks_the_size_and_says_so(android, artifacts, monkeypatch):
    """Android 7 and older toybox has no sha256sum: the cache cannot verify, so every file
    is sent again, the model is checked by size, and the result flags it."""
    from edgeq.targets.base import Target

    monkeypatch.setattr(Target, "remote_sha256", lambda self, remote: None)
    out, _ = artifacts
    android.setup(PHONE_BUDGET)
    runs = [android.deploy(out / "model_int8.tflite", "--json") for _ in "12"]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].stderr
    second = json.loads(runs[1].stdout)
    assert second["bytes_sent"] > second["artifact"]["bytes"]  # nothing could be trusted
    assert second["run"]["model"]["sha256_checked_on_device"] is False
    assert second["run"]["model"]["sha256"] == second["artifact"]["sha256"]
