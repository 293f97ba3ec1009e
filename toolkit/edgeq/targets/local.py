"""The `local` target: this machine, a chosen python, no hardware. The embedded default."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import CommandTimeout, ConnectError
from . import register
from ._process import kill_group
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
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["sh", "-c", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise CommandTimeout(
                f"local: command did not finish within {timeout:g} s and was stopped; "
                f"raise the timeout (--timeout) or lower --runs/--min-s"
            ) from None
        except BaseException:
            kill_group(proc)
            raise
        return CommandResult(
            command,
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.perf_counter() - t0,
        )

    def _put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def _get(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except FileNotFoundError:
            from ..errors import CommandError

            raise CommandError(f"local: no such file {remote}") from None
