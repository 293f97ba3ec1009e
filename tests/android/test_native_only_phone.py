"""A phone with TFLite's native `benchmark_model` and no Python at all: its health check
goes through the benchmark_model runner (not the Python runner's probe), so it passes, the
lab benchmarks it, and the accuracy of the same artifact comes from the host.

The device's shell PATH holds only /system/bin (a few toolbox-like commands, as on a
phone); `python3` is not on it. The benchmark binary is the REAL aarch64 `benchmark_model`
(a static LiteRT build, tests/support/benchmark_model.py), run under qemu-user: the
emulated phone's commands run on this host.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgeq.fsutil import sha256_file
from edgeq.lab import load_inventory, run_lab
from tests.support.adb_device import DeviceSpec
from tests.support.android import adb_target, adb_values
from tests.support.benchmark_model import QEMU_ENV, binary
from tests.support.config import write_config
from tests.support.lab import write_inventory

#: What a phone's /system/bin offers (its mksh `sh` and toybox applets), linked to this
#: host's tools.
TOOLS = [
    "cat", "chmod", "cut", "echo", "grep", "kill", "ls", "mkdir", "mktemp", "mv", "rm",
    "sed", "setsid", "sh", "sha256sum", "sleep", "tr", "true", "uname", "wc", "getconf",
]  # fmt: skip


@pytest.fixture(scope="module")
def native_binary() -> Path:
    """The real static aarch64 `benchmark_model` (no loader, so it runs on any Linux)."""
    return binary("aarch64")


@pytest.fixture()
def bare_phone(phones):
    """An arm64-v8a phone whose shell PATH is /system/bin only — and no python there."""
    emu = phones(devices=[DeviceSpec(env={"PATH": "/system/bin", **QEMU_ENV})])
    system_bin = emu.device().root / "system/bin"
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"this host lacks {tool}"
        os.symlink(found, system_bin / tool)
    return emu


def test_the_phone_really_has_no_python_but_runs_the_tool(bare_phone, native_binary):
    with adb_target(bare_phone) as t:
        res = t.run("command -v python3 python; echo PATH=$PATH", check=False)
        remote = t.ensure_file(native_binary, "-benchmark_model")
        t.run(["chmod", "755", remote])
        tool = t.run([remote], check=False)
    assert "PATH=/system/bin" in res.stdout
    assert "python" not in res.stdout.replace("PATH=/system/bin", "")
    assert "Please specify the name of your TF Lite input file" in tool.stdout + tool.stderr


def test_doctor_passes_through_the_native_runner(bare_phone, native_binary, cli, tmp_path):
    cfg = write_config(
        tmp_path / "edgeq.toml",
        {"phone": adb_values(bare_phone, benchmark_binary=str(native_binary))},
    )
    res = cli("doctor", "--target", "phone", "--config", cfg, "--json")
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["runner"] == "benchmark_model"
    checks = {c["name"]: c for c in doc["checks"]}
    assert "python" not in checks and "numpy" not in checks
    assert checks["benchmark_model"]["status"] == "ok"
    assert checks["accuracy"]["status"] == "ok"
    assert "measured on this host" in checks["accuracy"]["detail"]
    assert "not found" in checks["accuracy"]["detail"]  # why: no python on the device


def test_lab_benchmarks_it_with_accuracy_from_the_host(
    bare_phone, native_binary, artifacts, lab_sections, tmp_path
):
    folder, _ = artifacts
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    lab_sections["run"] = {**lab_sections["run"], "runs": 5, "warmup_runs": 1}
    phone = adb_values(bare_phone, benchmark_binary=str(native_binary))  # the p90 budget
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, {"phone": phone}))
    run = run_lab(inv)
    (dev,) = run.devices
    assert dev.status == "pass", dev.reason
    assert {c["name"]: c["status"] for c in dev.health["checks"]}["benchmark_model"] == "ok"
    (rec,) = run.results
    assert rec.status == "pass", rec.reason
    doc = rec.result["run"]
    assert doc["runner"]["name"] == "benchmark_model"
    assert doc["runner"]["binary_sha256"] == sha256_file(native_binary)
    assert doc["accuracy_source"] == "host" and doc["accuracy"]["source"] == "host"
    assert "no usable python on the device" in doc["accuracy"]["note"]
    shown = rec.to_dict()  # what `edgeq lab run --json` prints per result
    assert shown["runner"] == "benchmark_model" and shown["accuracy_source"] == "host"
    assert 0.3 <= doc["accuracy"]["top1"] <= 1
    inv_ms = doc["latency_ms"]["invoke"]
    assert inv_ms["count"] >= 5 and inv_ms["p5"] <= inv_ms["p50"] <= inv_ms["p95"]
    lat = next(c for c in rec.result["verdict"]["checks"] if c["metric"] == "latency_p90")
    assert lat["judged_at"] == "p95" and lat["passed"] is None  # emulated: shown, not judged
