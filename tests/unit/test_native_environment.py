"""The benchmark_model runner's view of a device: CPU model and emulation from the same
/proc/cpuinfo rules as the Python runner."""

from __future__ import annotations

from edgeq.runners.benchmark_model import CPUINFO_KEYS, cpu_model, detect_emulation


def _facts(**cpuinfo: str) -> dict[str, str]:
    return {f"cpuinfo_{CPUINFO_KEYS.index(k.replace('_', ' '))}": v for k, v in cpuinfo.items()}


def test_cpu_model_prefers_model_name_like_the_python_runner():
    facts = _facts(model_name="ARMv7 Processor rev 4 (v7l)", Hardware="BCM2835")
    assert cpu_model(facts) == "ARMv7 Processor rev 4 (v7l)"
    assert cpu_model(_facts(Hardware="BCM2835")) == "BCM2835"
    assert cpu_model({"soc": "SM8550"}) == "SM8550"  # a phone without those lines
    assert cpu_model({}) is None


def test_qemu_user_mode_is_emulation():
    assert detect_emulation({"machine": "aarch64", "cpuinfo_qemu": "1"}) == (
        True,
        "/proc/cpuinfo names QEMU",
    )
    flag, why = detect_emulation({"machine": "aarch64", "cpuinfo_x86": "2"})
    assert flag and "x86 CPU" in why
    assert detect_emulation({"machine": "aarch64", "cpuinfo_qemu": "0", "cpuinfo_x86": "0"}) == (
        False,
        None,
    )
    assert detect_emulation({"machine": "x86_64", "cpuinfo_x86": "2"}) == (False, None)
