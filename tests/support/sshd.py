"""A real OpenSSH server for the tests: the "Raspberry Pi" on 127.0.0.1.

Each server has its own host key, an authorized key made for the test, and a private
config; it runs `/usr/sbin/sshd -D` in the foreground and is stopped at teardown.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "edgeq-test", "-f", str(path)],
            check=True,
        )
    return path


def available() -> str | None:
    """None if a test sshd can run here, else why not (and how to fix it)."""
    if not Path(SSHD).exists():
        return "OpenSSH server not installed: apt-get install openssh-server (.ci/run does)"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen missing: apt-get install openssh-client"
    if os.geteuid() != 0:
        return "the test sshd needs root (privilege separation); run the tests as root, as CI"
    return None


@dataclass
class SshServer:
    root: Path
    port: int = 0
    extra_config: str = ""
    #: False: no SFTP subsystem (like dropbear or a minimal image)
    sftp: bool = True
    #: True: password logins allowed (root's too), for the password_env tests
    password_auth: bool = False
    #: sshd's MaxStartups (OpenSSH's default is 10:30:100; the tests' servers take more)
    max_startups: str = "64:30:128"
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.host_key = keygen(self.root / "ssh_host_ed25519_key")
        self.client_key = keygen(self.root / "client_key")
        self.authorized_keys = self.root / "authorized_keys"
        self.authorized_keys.write_text((self.root / "client_key.pub").read_text())
        self.known_hosts = self.root / "known_hosts"
        pub = (self.root / "ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        self.config = self.root / "sshd_config"

    def write_config(self) -> None:
        self.config.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.root}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication {"yes" if self.password_auth else "no"}
KbdInteractiveAuthentication no
PermitRootLogin {"yes" if self.password_auth else "prohibit-password"}
UsePAM no
StrictModes no
{"Subsystem sftp internal-sftp" if self.sftp else "# no SFTP subsystem"}
MaxStartups {self.max_startups}
MaxSessions 64
LogLevel ERROR
# bash skips ~/.bashrc for this sshd's commands (as on a Pi, where it does nothing slow)
SetEnv SHLVL=1
{self.extra_config}
"""
        )

    def start(self) -> SshServer:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir
        self.write_config()
        with open(self.root / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not come up on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def target_values(self, **over) -> dict:
        """The [targets.NAME] keys that reach this server."""
        import getpass

        values = {
            "transport": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": getpass.getuser(),
            "key_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 5,
        }
        values.update(over)
        return values
