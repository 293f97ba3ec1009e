"""The lab's native-only phone (no Python at all, a toolbox PATH) carrying the REAL
aarch64 `benchmark_model` (static LiteRT build, run under qemu-user: the emulated phone's
commands run on this host). Its health check goes through the benchmark_model runner,
the lab benchmarks it with the default p90 budget (judged at the tool's p95, not judged
as emulated) and the accuracy of the same artifact comes from the host.
"""

from __future__ import annotations

import os
import shutil

import pytest

from edgeq.fsutil import sha256_file
from edgeq.lab import load_inventory, run_lab
from tests.emulators.adb_device import DeviceSpec
from tests.lab.conftest import write_inventory
from tests.support.benchmark_model import QEMU_ENV, binary

from .conftest import adb_target, adb_values
from .test_native_only_phone import TOOLS


@pytest.fixture()
def bare_arm_phone(phones):
    """An arm64-v8a phone whose shell PATH is /system/bin only — no python there."""
    emu = phones(devices=[DeviceSpec(env={"PATH": "/system/bin", **QEMU_ENV})])
    system_bin = emu.device().root / "system/bin"
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"this host lacks {tool}"
        os.symlink(found, system_bin / tool)
    return emu


def test_the_real_binary_runs_on_the_bare_phone(bare_arm_phone):
    aarch64 = binary("aarch64")
    with adb_target(bare_arm_phone) as t:
        remote = t.ensure_file(aarch64, "-benchmark_model")
        t.run(["chmod", "755", remote])
        res = t.run([remote], check=False)
        probe = t.run("command -v python3 python; echo PATH=$PATH", check=False)
    assert res.exit_code != 0 and "Please specify the name of your TF Lite input file" in (
        res.stdout + res.stderr
    )
    assert "python" not in probe.stdout.replace("PATH=/system/bin", "")


def test_lab_benchmarks_the_native_only_phone_with_the_real_tool(
    bare_arm_phone, artifacts, lab_sections, tmp_path
):
    folder, _ = artifacts
    aarch64 = binary("aarch64")
    lab_sections["lab"]["models"] = [str(folder / "model_int8.tflite")]
    lab_sections["run"] = {**lab_sections["run"], "runs": 5, "warmup_runs": 1}
    phone = adb_values(bare_arm_phone, benchmark_binary=str(aarch64))
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, {"phone": phone}))
    run = run_lab(inv)
    (dev,) = run.devices
    assert dev.status == "pass", dev.reason
    assert {c["name"]: c["status"] for c in dev.health["checks"]}["benchmark_model"] == "ok"
    (rec,) = run.results
    assert rec.status == "pass", rec.reason
    doc = rec.result["run"]
    assert doc["runner"]["name"] == "benchmark_model"
    assert doc["runner"]["binary_sha256"] == sha256_file(aarch64)
    inv_ms = doc["latency_ms"]["invoke"]
    assert inv_ms["count"] >= 5 and inv_ms["p5"] <= inv_ms["p50"] <= inv_ms["p95"]
    assert doc["accuracy_source"] == "host" and 0.3 <= doc["accuracy"]["top1"] <= 1
    assert "no usable python on the device" in doc["accuracy"]["note"]
    lat = next(c for c in rec.result["verdict"]["checks"] if c["metric"] == "latency_p90")
    assert lat["judged_at"] == "p95" and lat["passed"] is None  # emulated: shown, not judged
