"""The emulated Raspberry Pi for tests: arm64 Debian root under QEMU, behind a chrooted sshd.

Wraps device_scripts/pi_emu/{build_root.sh,start_sshd.sh}. The root is built once and
cached under /var/cache/edgeq (about 5 minutes cold on 2 cores, 0.1 s afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "device_scripts" / "pi_emu"


def available() -> str | None:
    """None if the emulated Pi can be built and started here, else how to enable it."""
    if os.geteuid() != 0:
        return "the emulated Pi needs root (binfmt_misc, chroot, mounts); CI runs as root"
    missing = [
        p
        for p in ("debootstrap", "update-binfmts", "qemu-aarch64-static", "sshd")
        if not (shutil.which(p) or Path(f"/usr/sbin/{p}").exists())
    ]
    if missing:
        return (
            "missing "
            + ", ".join(missing)
            + ": apt-get install qemu-user-static binfmt-support debootstrap openssh-server"
            " (.ci/run does)"
        )
    return None


def build_root() -> Path:
    out = subprocess.run(
        [str(SCRIPTS / "build_root.sh"), "--print-path"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class PiEmu:
    state: Path
    port: int
    known_hosts: Path
    key: Path
    root: Path

    def target_values(self, **over) -> dict:
        values = {
            "transport": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "key_file": str(self.key),
            "known_hosts": str(self.known_hosts),
            "python": "python3",
            "workdir": "/tmp/edgeq",
            "connect_timeout": 20,
        }
        values.update(over)
        return values

    def stop(self) -> None:
        subprocess.run(
            [str(SCRIPTS / "start_sshd.sh"), "stop", "--state", str(self.state)],
            check=False,
            capture_output=True,
        )


def start(state: Path) -> PiEmu:
    from tests.support.sshd import keygen

    state.mkdir(parents=True, exist_ok=True)
    key = keygen(state / "client_key")
    root = build_root()
    out = subprocess.run(
        [
            str(SCRIPTS / "start_sshd.sh"),
            "start",
            "--port",
            "0",
            "--authorized-keys",
            f"{key}.pub",
            "--state",
            str(state),
            "--root",
            str(root),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return PiEmu(state, int(info["port"]), Path(info["known_hosts"]), key, Path(info["root"]))
