"""The benchmark_model driver's pieces that need no device: the command line it builds,
where the binary comes from, refusing a binary the phone cannot run, emulator detection."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgeq import config
from edgeq.errors import UsageError
from edgeq.runners.benchmark_model import (
    BINARY_ENV,
    BenchmarkModelRunner,
    argv,
    check_binary,
    delegates_requested,
    detect_emulation,
    elf_info,
    resolve_binary,
)
from edgeq.settings import RunSettings
from tests.support.android import STANDIN, adb_values

pytestmark = pytest.mark.unit  # the fast tier: `make test-unit`


def _cfg(**over):
    return config.validate_target("android", adb_values(None, **over), "test")


def test_argv_carries_every_option_in_the_tools_spelling():
    settings = RunSettings(
        threads=4,
        runs=50,
        min_s=2.0,
        warmup_runs=3,
        warmup_min_s=0.25,
        max_s=30,
        use_xnnpack=False,
        use_gpu=True,
        use_nnapi=True,
        op_profiling=True,
        taskset="f0",
    )
    opts = BenchmarkModelRunner(_cfg(taskset="0f"), settings).effective()
    got = argv(opts, "/d/bm", "/d/m 1.tflite")
    assert got[:4] == [
        "taskset",
        "f0",  # the command line wins over the target's taskset
        "/d/bm",
        "--graph=/d/m 1.tflite",
    ]
    assert sorted(got[4:]) == sorted(
        [
            "--num_threads=4",
            "--warmup_runs=3",
            "--warmup_min_secs=0.25",
            "--num_runs=50",
            "--min_secs=2",
            "--max_secs=30",
            "--use_xnnpack=false",
            "--use_gpu=true",
            "--use_nnapi=true",
            "--enable_op_profiling=true",
        ]
    )
    assert delegates_requested(opts) == ["GPU", "NNAPI"]


def test_defaults_leave_the_tools_own_choices():
    opts = BenchmarkModelRunner(_cfg(), RunSettings()).effective()
    got = argv(opts, "bm", "m")
    assert got[0] == "bm" and not any(a.startswith(("--use_", "--enable_")) for a in got)
    assert BenchmarkModelRunner(_cfg(taskset="f0"), RunSettings()).effective().taskset == "f0"


@pytest.mark.parametrize("mask", ["zz", "f0; reboot", "0"])
def test_bad_taskset_mask_is_a_usage_error(mask):
    with pytest.raises(UsageError, match="taskset mask"):
        RunSettings(taskset=mask).validate()


def test_binary_precedence_flag_then_env_then_config(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for f in (a, b, c):
        f.write_text("#!/bin/sh\n")
    cfg = _cfg(benchmark_binary=str(c))
    monkeypatch.delenv(BINARY_ENV, raising=False)
    assert resolve_binary(RunSettings(), _cfg()) is None  # nothing given: the Python runner path
    assert resolve_binary(RunSettings(), cfg) == c
    monkeypatch.setenv(BINARY_ENV, str(b))
    assert resolve_binary(RunSettings(), cfg) == b
    assert resolve_binary(RunSettings(benchmark_binary=str(a)), cfg) == a
    with pytest.raises(UsageError, match=r"not found: .*nope \(from --benchmark-binary\)"):
        resolve_binary(RunSettings(benchmark_binary=str(tmp_path / "nope")), cfg)


def _elf(machine: int, interp: bytes | None, is64: bool = True) -> bytes:
    """A minimal little-endian ELF header (+ one PT_INTERP program header)."""
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + b"\0" * 9
    if is64:
        ph = struct.pack("<IIQQQQQQ", 3, 4, 120, 0, 0, len(interp or b""), 0, 1)
        head = ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    else:
        ph = struct.pack("<IIIIIIII", 3, 84, 0, 0, len(interp or b""), 0, 4, 1)
        head = ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    ph = ph if interp else b"\0" * len(ph)
    return head + ph + (interp or b"")


ANDROID_ARM64 = {
    "os": "Android 14 (API 34)",
    "cpu_abi": "arm64-v8a",
    "cpu_abilist": ["arm64-v8a", "armeabi-v7a"],
}


def test_elf_checks(tmp_path):
    android64 = tmp_path / "android_aarch64_benchmark_model"
    android64.write_bytes(_elf(183, b"/system/bin/linker64\0"))
    assert elf_info(android64) == {"machine": "aarch64", "interpreter": "/system/bin/linker64"}
    check_binary(android64, ANDROID_ARM64, "android")

    arm32 = tmp_path / "android_arm_benchmark_model"
    arm32.write_bytes(_elf(40, b"/system/bin/linker\0", is64=False))
    check_binary(arm32, ANDROID_ARM64, "android")  # a 64-bit phone also runs armeabi-v7a
    with pytest.raises(UsageError, match="is built for arm but android runs x86_64"):
        check_binary(arm32, {"os": "Android 14", "cpu_abilist": ["x86_64"]}, "android")

    with pytest.raises(UsageError, match="android_arm_benchmark_model"):
        check_binary(
            android64, {"os": "Android 7", "cpu_abilist": ["armeabi-v7a", "armeabi"]}, "android"
        )

    linux = tmp_path / "linux_aarch64_benchmark_model"
    linux.write_bytes(_elf(183, b"/lib/ld-linux-aarch64.so.1\0"))
    with pytest.raises(UsageError, match="not an Android build .*ld-linux-aarch64"):
        check_binary(linux, ANDROID_ARM64, "android")

    with pytest.raises(UsageError, match="is an Android build .* use a Linux build"):
        check_binary(android64, {"os": "Debian GNU/Linux 12", "machine": "aarch64"}, "pi")
    check_binary(linux, {"os": "Debian GNU/Linux 12", "machine": "aarch64"}, "pi")

    assert elf_info(STANDIN) is None  # a script: nothing to check
    check_binary(Path(STANDIN), ANDROID_ARM64, "android")


def test_emulation_evidence():
    assert detect_emulation({"machine": "aarch64", "abi": "arm64-v8a"}) == (False, None)
    flag, why = detect_emulation({"machine": "x86_64", "abi": "arm64-v8a"})
    assert flag and "binary translation" in why
    assert detect_emulation({"machine": "x86_64", "abi": "x86_64", "qemu": "1"})[0]
    assert detect_emulation({"machine": "aarch64", "hardware": "ranchu"})[0]
    assert detect_emulation({"machine": "x86_64", "abi": "arm64-v8a", "emulated_env": "0"}) == (
        False,
        "EDGEQ_EMULATED=0",
    )


def test_the_shell_samples_around_the_tool_are_split_from_its_log():
    from edgeq.runners.benchmark_model import split_sampled

    n = "a1b2c3"
    out = "\n".join([
        f"@edgeq-cpu-{n} before", "cpu0 100 0 50 1000 0 0 0 3 0 0", "cpu1 10 0 5 1000 0 0 0 0 0 0",
        "uptime 500.00", "loadavg 1.5",
        "INFO: count=100 first=10 curr=9 min=8 max=12 avg=9.5 std=1",
        "@edgeq-cpu-000000 after",  # a line the tool printed: another nonce, not a marker
        f"@edgeq-cpu-{n} after", "cpu0 250 0 100 1100 0 0 0 5 0 0", "cpu1 60 0 5 1100 0 0 0 0 0 0",
        "uptime 502.00", "loadavg 2.0", "hz 100",
        f"@edgeq-cpu-{n} times", "0m0.01s 0m0.00s", "1m0.50s 0m0.40s",
    ])  # fmt: skip
    tool, con = split_sampled(out, n)
    assert tool.splitlines() == [
        "INFO: count=100 first=10 curr=9 min=8 max=12 avg=9.5 std=1",
        "@edgeq-cpu-000000 after",
    ]
    # the children (the tool) used 1m0.50s user + 0.40s system: more than the busy ticks
    assert con["wall_s"] == 2.0 and con["cores_available"] == 2
    assert con["self_cores"] == round(60.9 / 2.0, 3)
    assert con["others_cores"] == 0.0 and con["steal_cores"] == 0.01
    assert con["load1_before"] == 1.5 and con["load1_after"] == 2.0 and con["window"] == "run"


def test_no_samples_leave_the_log_untouched_and_no_contention_block():
    from edgeq.runners.benchmark_model import split_sampled

    out = "INFO: count=5 first=1 curr=1 min=1 max=1 avg=1 std=0\n"
    assert split_sampled(out, "x") == (out, None)
    cut = "@edgeq-cpu-x before\ncpu0 1 0 1 1 0 0 0 0\nuptime 1\nINFO: killed"  # no 'after'
    assert split_sampled(cut, "x") == (cut, None)
