"""The `arm` tier: deploy to an emulated Raspberry Pi (aarch64 under QEMU) over SSH.

Cost: building the arm64 root takes about 5 minutes once (cached in /var/cache/edgeq);
the tests themselves about a minute. Run with `make test-arm` (CI does).
"""

from __future__ import annotations

import json

import pytest

from edgeq import evaluate
from edgeq.budget import EMULATED_NOTE
from tests.support import pi_emu
from tests.support.config import write_config

pytestmark = pytest.mark.arm

FEW = ["--runs", "5", "--min-s", "0", "--warmup-runs", "1"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    why = pi_emu.available()
    if why:
        pytest.skip(why)
    e = pi_emu.start(tmp_path_factory.mktemp("pi-emu"))
    yield e
    e.stop()


@pytest.fixture()
def emu_config(tmp_path, emu):
    return write_config(
        tmp_path / "edgeq.toml",
        {"pi-emu": emu.target_values()},
        {"max_model_kb": 50, "max_latency_ms": 1.0, "min_accuracy": 0.3, "max_accuracy_drop_pp": 5},
    )


def test_doctor_shows_aarch64_and_emulation(cli, emu_config):
    res = cli("doctor", "--target", "pi-emu", "--config", emu_config, "--json")
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["environment"]["machine"] == "aarch64"
    assert doc["environment"]["emulated"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["emulated"]["status"] == "warn"
    assert "aarch64" in checks["architecture"]["detail"]
    assert checks["interpreter"]["status"] == "ok"


@pytest.mark.parametrize("mode", ["int8", "float32"])
def test_deploy_to_the_emulated_pi(deploy_cli, emu_config, artifacts, data_dir, mode):
    out, _ = artifacts
    model = out / f"model_{mode}.tflite"
    res = deploy_cli("pi-emu", emu_config, model, *FEW, "--json", fast=False)
    doc = json.loads(res.stdout)
    run = doc["run"]
    assert run["environment"]["machine"] == "aarch64"
    assert run["environment"]["emulated"] is True
    checks = {c["metric"]: c for c in doc["verdict"]["checks"]}
    lat = checks["latency_p90"]
    assert lat["passed"] is None and lat["note"] == EMULATED_NOTE
    assert checks["accuracy"]["passed"] is True
    # size judged normally: int8 passes 50 KB, float32 does not (so the exit code says fail)
    assert checks["model_size"]["passed"] is (mode == "int8")
    assert res.exit_code == (0 if mode == "int8" else 1), res.stderr
    host = evaluate.evaluate([model], data_path=data_dir, latency_runs=5).rows[0]
    device = run["accuracy"]
    assert device["samples"] == host.samples
    assert abs(device["top1"] - host.top1) * 100 <= 0.1 + 1e-9, (device, host.top1)


def test_human_verdict_mentions_emulation(deploy_cli, emu_config, artifacts):
    out, _ = artifacts
    res = deploy_cli("pi-emu", emu_config, out / "model_int8.tflite", "--limit", "200", *FEW,
                     fast=False)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "emulated" in res.stdout and EMULATED_NOTE in res.stdout
