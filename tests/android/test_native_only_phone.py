"""A phone with TFLite's native `benchmark_model` and no Python at all: its health check
goes through the benchmark_model runner (not the Python runner's probe), so it passes, the
lab benchmarks it, and the accuracy of the same artifact comes from the host.

The device's shell PATH holds only /system/bin (a few toolbox-like commands, as on a
phone); `python3` is not on it. The benchmark binary is a static ELF executable, not a
script: a small C launcher (compiled here with gcc) that runs the stand-in benchmark with
an interpreter at an absolute path the device's PATH does not reach — the stand-in that
really runs the model and prints the real tool's log (see standin/benchmark_model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.lab import load_inventory, run_lab
from edgeq.runners.benchmark_model import elf_info
from tests.support.adb_device import DeviceSpec
from tests.support.android import STANDIN, adb_target, adb_values
from tests.support.config import write_config
from tests.support.lab import write_inventory

#: What a phone's /system/bin offers (toybox applets), linked to this host's tools.
TOOLS = [
    "cat", "chmod", "cut", "echo", "grep", "kill", "ls", "mkdir", "mktemp", "mv", "rm",
    "sed", "setsid", "sha256sum", "sleep", "tr", "true", "uname", "wc",
]  # fmt: skip

LAUNCHER_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char *args[argc + 2];
    args[0] = PYTHON;
    args[1] = SCRIPT;
    for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
    args[argc + 1] = 0;
    execv(PYTHON, args);
    perror("benchmark_model: execv");
    return 127;
}
"""


@pytest.fixture(scope="module")
def native_binary(tmp_path_factory) -> Path:
    """A static x86-64 ELF `benchmark_model` (no loader, so it runs on any Linux)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("needs a C compiler: apt-get install gcc (a new machine has it)")
    folder = tmp_path_factory.mktemp("native")
    src = folder / "launcher.c"
    src.write_text(LAUNCHER_C)
    out = folder / "benchmark_model"
    subprocess.run(
        [
            gcc,
            "-O2",
            "-static",
            f'-DPYTHON="{sys.executable}"',
            f'-DSCRIPT="{STANDIN}"',
            "-o",
            str(out),
            str(src),
        ],
        check=True,
    )
    info = elf_info(out)
    assert info == {"machine": "x86_64", "interpreter": None}, info  # an ELF, not a script
    return out


@pytest.fixture()
def bare_phone(phones):
    """An x86-64 phone whose shell PATH is /system/bin only — and no python there."""
    spec = DeviceSpec(
        props={"ro.product.cpu.abi": "x86_64", "ro.product.cpu.abilist": "x86_64"},
        env={"PATH": "/system/bin"},
    )
    emu = phones(devices=[spec])
    system_bin = emu.device().root / "system/bin"
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"this host lacks {tool}"
        os.symlink(found, system_bin / tool)
    return emu


def test_the_phone_really_has_no_python(bare_phone):
    with adb_target(bare_phone) as t:
        res = t.run("command -v python3 python; echo PATH=$PATH", check=False)
    assert "PATH=/system/bin" in res.stdout
    assert "python" not in res.stdout.replace("PATH=/system/bin", "")


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
    phone = adb_values(
        bare_phone,
        benchmark_binary=str(native_binary),
        budget={"latency_percentile": "mean"},
    )
    inv = load_inventory(write_inventory(tmp_path / "lab.toml", lab_sections, {"phone": phone}))
    run = run_lab(inv)
    (dev,) = run.devices
    assert dev.status == "pass", dev.reason
    assert {c["name"]: c["status"] for c in dev.health["checks"]}["benchmark_model"] == "ok"
    (rec,) = run.results
    assert rec.status == "pass", rec.reason
    doc = rec.result["run"]
    assert doc["runner"]["name"] == "benchmark_model"
    assert doc["runner"]["binary_sha256"]  # the ELF, pushed once into the device cache
    assert doc["accuracy_source"] == "host" and doc["accuracy"]["source"] == "host"
    assert "no usable python on the device" in doc["accuracy"]["note"]
    shown = rec.to_dict()  # what `edgeq lab run --json` prints per result
    assert shown["runner"] == "benchmark_model" and shown["accuracy_source"] == "host"
    assert 0.3 <= doc["accuracy"]["top1"] <= 1
    assert doc["latency_ms"]["invoke"]["count"] >= 1
