"""The `arm` tier with the native runner: the emulated Raspberry Pi (aarch64 under QEMU,
behind a chrooted sshd) carries the REAL aarch64 `benchmark_model` (static LiteRT build,
tests/support/benchmark_model.py) — a Pi over SSH runs the native tool as a phone does,
and `bench --runner both` puts it beside the Python runner on the same device.
"""

from __future__ import annotations

import json

import pytest

from edgeq.fsutil import sha256_file
from tests.support import pi_emu
from tests.support.benchmark_model import binary
from tests.support.config import write_config

pytestmark = pytest.mark.arm

FEW = ["--runs", "5", "--min-s", "0", "--warmup-runs", "1", "--warmup-min-s", "0"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    why = pi_emu.available()
    if why:
        pytest.skip(why)
    e = pi_emu.start(tmp_path_factory.mktemp("pi-emu-native"))
    yield e
    e.stop()


@pytest.fixture()
def native_config(tmp_path, emu):
    values = emu.target_values(runner="benchmark_model", benchmark_binary=str(binary("aarch64")))
    return write_config(tmp_path / "edgeq.toml", {"pi-emu": values}, {"min_accuracy": 0.3})


def test_the_pi_runs_the_aarch64_benchmark_model(deploy_cli, native_config, artifacts):
    out, _ = artifacts
    res = deploy_cli("pi-emu", native_config, out / "model_int8.tflite", *FEW, "--json",
                     fast=False)  # fmt: skip
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    run = doc["run"]
    assert run["runner"]["name"] == "benchmark_model"
    assert run["runner"]["binary_sha256"] == sha256_file(binary("aarch64"))
    env = run["environment"]
    assert env["machine"] == "aarch64" and env["emulated"] is True
    assert env["emulation_evidence"] == "/proc/cpuinfo names QEMU"  # the Python runner's rule
    assert env["xnnpack"] is False
    inv = run["latency_ms"]["invoke"]
    assert inv["count"] >= 5 and inv["p5"] <= inv["p50"] <= inv["p95"]
    assert run["accuracy_source"] == "device"  # the Pi's python (ai-edge-litert) measured it
    lat = {c["metric"]: c for c in doc["verdict"]["checks"]}["latency_p90"]
    assert lat["judged_at"] == "p95" and lat["passed"] is None  # emulated: not judged
    assert env["cpu_model"]  # from /proc/cpuinfo, as the Python runner reads it


def test_bench_both_on_the_pi(cli, native_config, artifacts):
    out, _ = artifacts
    model = out / "model_int8.tflite"
    res = cli("bench", model, "--target", "pi-emu", "--config", native_config, "--runner",
              "both", "--repeat", "2", "--no-data", *FEW, "--json")  # fmt: skip
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["runners"] == ["python", "benchmark_model"]
    machines = {
        n: {r["run"]["environment"]["machine"] for r in doc["results"][n]} for n in doc["runners"]
    }
    assert machines == {"python": {"aarch64"}, "benchmark_model": {"aarch64"}}
    cpus = {
        n: {r["run"]["environment"]["cpu_model"] for r in doc["results"][n]} for n in doc["runners"]
    }
    assert cpus["python"] == cpus["benchmark_model"] and None not in cpus["python"]
    assert doc["ratio_p50"]["median_of_rounds"] > 0
