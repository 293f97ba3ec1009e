"""The `adb+ssh` target: an Android phone plugged into another machine, reached by running
that machine's `adb` client over SSH.

A phone needs a USB port on *some* host; in a lab that host is a labgrid exporter, and
labgrid (26.x) has no ADB driver. So edgeq logs into the exporter host (`host`, `port`,
`user`, `key_file`… exactly as an `ssh` target) and runs `adb -s SERIAL …` there. Everything
the `adb` target knows — device states, legacy exit codes, the client's error messages —
applies unchanged: this class is that target with the client process moved to the other
machine. Files travel in two hops: host → exporter (SFTP, into a private folder made with
`mktemp -d` there) → phone (`adb push`), and back the same way; the hop folder is removed
when the target closes. A timeout or Ctrl-C kills the remote `adb` client too.
"""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path, PurePosixPath
from typing import ClassVar

from ..errors import CommandTimeout, ConnectError
from ..fields import Field, TargetConfig, f
from . import _process, register
from .adb import DEFAULT_SERVER_PORT, AdbTarget
from .ssh import SshTarget

#: The SSH keys of the hop (the exporter host), as the `ssh` target declares them.
HOP_KEYS = tuple(k for k in SshTarget.fields if k != "password")


@register
class AdbSshTarget(AdbTarget):
    """An Android device on another host's USB, through that host's `adb` over SSH."""

    transport = "adb+ssh"
    fields: ClassVar[dict[str, Field]] = {
        **{k: SshTarget.fields[k] for k in HOP_KEYS},
        **AdbTarget.fields,
        "serial": f(str, "", "the phone's serial on the exporter host (`adb devices` there)", True),
        "adb_host": f(str, "", "adb server host as seen from the exporter host (default: its own)"),
        "adb_port": f(
            int, 0, "adb server port on the exporter host (default 5037)", minimum=0, maximum=65535
        ),
        "adb_path": f(str, "adb", "the adb client on the exporter host"),
    }
    path_fields = SshTarget.path_fields

    def __init__(self, config, keep: bool = False) -> None:
        super().__init__(config, keep)
        hop_values = {k: config.values[k] for k in HOP_KEYS if k in config.values}
        self.hop = SshTarget(
            TargetConfig(
                config.name,
                "ssh",
                {"transport": "ssh", "env": {}, **hop_values},
                config.source,
                config.section,
            )
        )

    # ------------------------------------------------------------------ description

    @property
    def server_port(self) -> int:
        """The configured port, else adb's default (this host's environment does not apply
        to the exporter host's server)."""
        return int(self.config.get("adb_port") or 0) or DEFAULT_SERVER_PORT

    def server_address(self) -> str:
        return f"{self.server_host or 'localhost'}:{self.server_port} on {self.hop.host}"

    def describe(self) -> str:
        return f"{self.config.get('serial')} via adb on {self.hop.describe()}"

    def identity(self) -> str:
        return f"adb+ssh://{self.hop.describe()}/{self.config.get('serial')}"

    def _where(self) -> str:
        return f"{self.serial} (via {self.hop.describe()})"

    # ------------------------------------------------------------------ the remote client

    def _executable(self) -> str:
        return self.adb_path  # resolved by the exporter host's shell (PATH there)

    def _run_client(self, argv: list[str], timeout: float | None, what: str) -> _process.Completed:
        """The exporter host's adb client, once; a timeout kills it there."""
        try:
            res = self.hop.run(argv, timeout=timeout, check=False, killable=True)
        except CommandTimeout:
            raise self._timed_out(what, timeout, " ".join(argv)) from None
        if res.exit_code == 127 and not res.stdout:  # the shell's (or setsid's) "not found"
            raise ConnectError(
                f"{self.name}: the adb client {self.adb_path!r} was not found on "
                f"{self.hop.host}; install it there (Debian/Ubuntu: sudo apt-get install adb) "
                f"or set adb_path in {self.config.where}"
            )
        return _process.Completed(res.exit_code, res.stdout, res.stderr, res.seconds)

    # ------------------------------------------------------------------ primitives

    def _connect(self) -> None:
        self.hop.open()
        super()._connect()

    def _disconnect(self) -> None:
        super()._disconnect()
        self.hop.close()

    def _hop_file(self, name: str) -> PurePosixPath:
        return PurePosixPath(self.hop.workdir) / f"xfer-{uuid.uuid4().hex[:12]}-{name}"

    def _drop(self, path: PurePosixPath) -> None:
        self.hop.run(f"rm -f {shlex.quote(str(path))}", timeout=30, check=False)

    def _put(self, local: Path, remote: str) -> None:
        staged = self._hop_file(local.name)
        self.hop.put(local, str(staged))
        try:
            super()._put(staged, remote)  # adb push on the exporter host
        finally:
            self._drop(staged)

    def _get(self, remote: str, local: Path) -> None:
        staged = self._hop_file(PurePosixPath(remote).name)
        try:
            super()._get(remote, staged)  # adb pull on the exporter host
            self.hop.get(str(staged), local)
        finally:
            self._drop(staged)
