"""A realistic sysfs for a test "Pi" (thermal zones, cpufreq, the Pi firmware's throttle flags),
read by edgeq through EDGEQ_SYSFS_ROOT."""

from __future__ import annotations

from pathlib import Path


def make_sysfs(root: Path, temps=(45.0, 41.0), freq_mhz=1500, governor="ondemand") -> Path:
    for i, t in enumerate(temps):
        z = root / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "temp").write_text(f"{int(t * 1000)}\n")
    for cpu in range(2):
        d = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{freq_mhz * 1000}\n")
        (d / "scaling_governor").write_text(f"{governor}\n")
    fw = root / "sys/devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True)
    (fw / "get_throttled").write_text("throttled=0x0\n")
    return root
