"""The `local` target: this machine, a chosen python, no hardware. The embedded default."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from ..errors import CommandError, CommandTimeout, ConnectError
from ..fields import Field, f
from . import _process, cache, register
from .base import CommandResult, Target


@register
class LocalTarget(Target):
    """This machine, a chosen python (default: the one running edgeq).

    Its cache (`$TMPDIR/edgeq-local-<uid>/edgeq-cache` unless `workdir` says otherwise) is
    shared by every checkout of this user (private to the user: see `edgeq.privdir`); after
    each run it is pruned to `cache_max_mb`, least recently used files first (`edgeq cache
    prune` does it on demand)."""

    transport = "local"
    transfer_method = "copy"
    fields: ClassVar[dict[str, Field]] = {
        "cache_max_mb": f(
            (int, float),
            1024,
            "size cap of the cache in MB, pruned after each run (0 = no cap)",
            minimum=0,
        ),
    }

    @staticmethod
    def this_interpreter(values: dict[str, Any]) -> dict[str, Any]:
        """`python = "python3"` (the default) on this machine means the interpreter running
        edgeq: `values` with it filled in (edgeq.toml's `local` target, a lab's local devices)."""
        if values.get("python") == "python3":
            values["python"] = sys.executable
        return values

    @property
    def default_workdir_base(self) -> str:  # type: ignore[override]
        return str(Path(tempfile.gettempdir()) / f"edgeq-local-{os.geteuid()}")

    def describe(self) -> str:
        return str(self.config.get("python"))

    def identity(self) -> str:
        import socket

        return f"local://{socket.gethostname()}"

    def _connect(self) -> None:
        if not shutil.which("sh"):
            raise ConnectError("local: no POSIX shell `sh` on PATH")

    def _disconnect(self) -> None:
        cap = self.config.get("cache_max_mb")
        if cap:
            try:
                cache.prune(Path(self.workdir_base), max_mb=cap, keep=self.files_used)
            except OSError:
                pass  # a cap that cannot be kept must not fail the run

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        env = {**os.environ, **{k: str(v) for k, v in (self.config.get("env") or {}).items()}}
        try:
            done = _process.run(["sh", "-c", command], timeout, env)
        except _process.TimedOut as exc:
            raise CommandTimeout(
                f"local: command did not finish within {timeout:g} s and was stopped; "
                f"raise the timeout (--timeout) or lower --runs/--min-s",
                command=command,
                stdout=exc.stdout,
                stderr=exc.stderr,
            ) from None
        return CommandResult(
            command, done.code, done.stdout, done.stderr, done.seconds, done.dropped
        )

    def _put(self, local: Path, remote: str) -> None:
        try:
            shutil.copyfile(local, remote)
        except OSError as exc:
            raise CommandError(
                f"local: cannot copy {local.name} to {remote}: {exc.strerror or exc}"
            ) from None

    def _get(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except FileNotFoundError:
            raise CommandError(f"local: no such file {remote}") from None
        except OSError as exc:
            raise CommandError(f"local: cannot copy {remote}: {exc.strerror or exc}") from None
