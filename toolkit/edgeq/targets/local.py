"""The `local` target: this machine, a chosen python, no hardware. The embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import CommandTimeout, ConnectError
from . import _process, register
from .base import CommandResult, Target


@register
class LocalTarget(Target):
    """This machine, a chosen python (default: the one running edgeq)."""

    transport = "local"

    @property
    def default_workdir_base(self) -> str:  # type: ignore[override]
        return str(Path(tempfile.gettempdir()) / "edgeq-local")

    def describe(self) -> str:
        return str(self.config.get("python"))

    def identity(self) -> str:
        import socket

        return f"local://{socket.gethostname()}"

    def _connect(self) -> None:
        if not shutil.which("sh"):
            raise ConnectError("local: no POSIX shell `sh` on PATH")

    def _disconnect(self) -> None:
        pass

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        env = {**os.environ, **{k: str(v) for k, v in (self.config.get("env") or {}).items()}}
        try:
            done = _process.run(["sh", "-c", command], timeout, env)
        except _process.TimedOut:
            raise CommandTimeout(
                f"local: command did not finish within {timeout:g} s and was stopped; "
                f"raise the timeout (--timeout) or lower --runs/--min-s",
                command=command,
            ) from None
        return CommandResult(command, done.code, done.stdout, done.stderr, done.seconds)

    def _put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def _get(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except FileNotFoundError:
            from ..errors import CommandError

            raise CommandError(f"local: no such file {remote}") from None
