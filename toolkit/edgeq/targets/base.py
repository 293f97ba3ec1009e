"""The Target interface: one way to run commands and move files, three transports.

A transport implements five primitives (`_connect`, `_disconnect`, `_exec`, `_put`, `_get`).
Everything else is written once here, on top of them: lazy opening, the private per-run
workdir (created with `mktemp -d`, removed on close even after errors and Ctrl-C), the
content-addressed file cache that lets a second deploy send zero bytes, killing a command
that outlives its timeout, and `probe()`.

Commands are POSIX shell strings for the device's `sh`; build them from argv with
`quote_argv` (never by concatenating user input).
"""

from __future__ import annotations

import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import CommandError, CommandTimeout, DeviceError, tail
from ..fields import Field, TargetConfig, f
from ..fsutil import sha256_file

#: Keys every target has, whatever its transport (the transport's own come from its class,
#: the runner's from `edgeq.runners`).
COMMON_FIELDS: dict[str, Field] = {
    "transport": f(str, "local", "how to reach the device (a module of edgeq.targets)", True),
    "python": f(str, "python3", "the python that runs the device runner"),
    "workdir": f(str, "", "base folder on the device for edgeq's cache and per-run folders"),
    "description": f(str, "", "free text shown by `edgeq targets`"),
    "tags": f(list, [], "labels for lab selection (`--only TAG`)"),
    "env": f(dict, {}, "environment variables set for the runner on the device"),
}


@dataclass(frozen=True)
class CommandResult:
    """What a command did on the device."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def failed(self) -> bool:
        return not self.ok


def quote_argv(argv: Sequence[str | Path]) -> str:
    """One shell-safe string from an argv list (each argument single-quoted if needed)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


class Target(ABC):
    """A device edgeq can run the benchmark on. Creating one never touches the network."""

    #: The `transport = "..."` value that selects this class.
    transport: ClassVar[str] = ""
    #: The transport's own config keys (type, default, one-line doc, bounds).
    fields: ClassVar[dict[str, Field]] = {}
    #: Config keys holding host-side file paths (`~` expanded, relative to the config file).
    path_fields: ClassVar[tuple[str, ...]] = ()
    #: What the device runs: "posix" (Linux and friends) or "android".
    platform: ClassVar[str] = "posix"
    default_workdir_base: str = "/tmp"

    @classmethod
    def check_config(cls, values: dict[str, Any], where: str) -> None:
        """Checks across keys that a Field cannot express; raise ConfigError naming `where`."""
        return None

    def __init__(self, config: TargetConfig, keep: bool = False) -> None:
        self.config = config
        self.name = config.name
        self.keep = keep
        self._open = False
        self._depth = 0
        self._workdir: str | None = None
        self._cache_ready = False
        self.bytes_sent = 0
        self.files_sent: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def _connect(self) -> None:
        """Open the transport; raise ConnectError/AuthError with the fix in the message."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the transport (must not raise)."""

    @abstractmethod
    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        """Run a shell command; raise CommandTimeout when it runs past `timeout` seconds."""

    @abstractmethod
    def _put(self, local: Path, remote: str) -> None:
        """Copy a host file to the device."""

    @abstractmethod
    def _get(self, remote: str, local: Path) -> None:
        """Copy a device file to the host."""

    def describe(self) -> str:
        """Where the target is, for messages and `edgeq targets` (e.g. `pi@10.0.0.7:22`)."""
        return self.name

    def identity(self) -> str:
        """The physical device, whatever the entry is called: what device locks are keyed by
        (e.g. `ssh://pi@10.0.0.7:22`)."""
        return f"{self.transport}://{self.describe()}"

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Target:
        if not self._open:
            self._connect()
            self._open = True
        return self

    def close(self) -> None:
        """Remove the per-run workdir (unless keep) and disconnect. Safe to call twice."""
        if not self._open:
            return
        try:
            if self._workdir and not self.keep:
                self.remove_workdir()
        finally:
            self._disconnect()
            self._open = False

    def __enter__(self) -> Target:
        self.open()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        """Nested `with target:` blocks share one session: only the outermost closes."""
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            self.close()

    # ------------------------------------------------------------------ commands

    def run(
        self,
        argv: Sequence[str | Path] | str,
        timeout: float | None = None,
        check: bool = True,
        killable: bool = False,
    ) -> CommandResult:
        """Run a command (argv list, quoted for the device shell, or a ready shell string).

        With `check`, a non-zero exit raises CommandError carrying command, exit code and
        output. With `killable` (needs the workdir), the command records its pid so that a
        timeout or Ctrl-C can kill it on the device.
        """
        command = argv if isinstance(argv, str) else quote_argv(argv)
        self.open()
        pidfile = None
        if killable:
            pidfile = f"{self.workdir}/.pid"
            command = _killable(command, pidfile)
        try:
            res = self._exec(command, timeout)
        except CommandTimeout as exc:
            if pidfile:
                self._kill(pidfile)
            exc.command = exc.command or command  # the evidence: what ran, for how long
            exc.details.setdefault("command", command)
            exc.details.setdefault("timeout_s", timeout)
            raise
        except KeyboardInterrupt:
            if pidfile:
                self._kill(pidfile)
            raise
        if check and res.failed:
            raise CommandError(
                f"{self.name}: command failed with exit code {res.exit_code}: "
                f"{_short(command)}" + (f" — {tail(res.stderr)}" if res.stderr.strip() else ""),
                command=command,
                exit_code=res.exit_code,
                stdout=res.stdout,
                stderr=res.stderr,
            )
        return res

    def _kill(self, pidfile: str) -> None:
        """Terminate the process whose pid is in `pidfile` (then kill it if it lingers)."""
        q = shlex.quote(pidfile)
        script = (
            f'p=$(cat {q} 2>/dev/null) && [ -n "$p" ] && {{ '
            f'kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; sleep 1; '
            f'kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; }}; true'
        )
        try:
            self._exec(script, 15)
        except (DeviceError, OSError):
            pass

    # ------------------------------------------------------------------ files

    @property
    def workdir_base(self) -> str:
        return self.config.get("workdir") or self.default_workdir_base

    @property
    def cache_dir(self) -> str:
        """Persistent, content-addressed store on the device (files named by sha256)."""
        return f"{self.workdir_base.rstrip('/')}/edgeq-cache"

    @property
    def workdir(self) -> str:
        """This run's private folder on the device, created on first use."""
        if self._workdir is None:
            base = self.workdir_base.rstrip("/") or "/"
            res = self.run(
                f"mkdir -p {shlex.quote(base)} && mktemp -d {shlex.quote(base + '/run.XXXXXX')}",
                timeout=30,
            )
            path = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
            if not path.startswith(base):
                raise DeviceError(f"{self.name}: mktemp -d gave an unexpected answer {path!r}")
            self._workdir = path
        return self._workdir

    def remove_workdir(self) -> None:
        if self._workdir:
            wd, self._workdir = self._workdir, None
            try:
                self._exec(f"rm -rf {shlex.quote(wd)}", 60)
            except (DeviceError, OSError):
                pass

    def put(self, local: Path, remote: str) -> int:
        """Copy a file to the device; returns the bytes sent."""
        self.open()
        local = Path(local)
        self._put(local, remote)
        n = local.stat().st_size
        self.bytes_sent += n
        return n

    def get(self, remote: str, local: Path) -> Path:
        self.open()
        self._get(remote, Path(local))
        return Path(local)

    def remote_sha256(self, remote: str) -> str | None:
        """sha256 of a device file, or None if it does not exist."""
        q = shlex.quote(remote)
        res = self.run(
            f"if [ -f {q} ]; then sha256sum {q} 2>/dev/null || toybox sha256sum {q}; fi",
            timeout=60,
            check=False,
        )
        first = res.stdout.strip().split()
        return first[0].lower() if res.ok and first else None

    def ensure_file(self, local: Path, suffix: str = "") -> str:
        """Put `local` into the device cache unless an identical copy is there; returns its path.

        The check is the file's sha256 computed ON the device, so a stale or corrupt copy is
        replaced. Uploads go to a temporary name and are renamed into place.
        """
        local = Path(local)
        digest = sha256_file(local)
        remote = f"{self.cache_dir}/{digest}{suffix}"
        record = {"file": local.name, "sha256": digest, "bytes": local.stat().st_size}
        if not self._cache_ready:
            self.run(["mkdir", "-p", self.cache_dir], timeout=30)
            self._cache_ready = True
        if self.remote_sha256(remote) == digest:
            self.files_sent.append({**record, "sent": 0})
            return remote
        tmp = f"{remote}.part{time.time_ns()}"
        sent = self.put(local, tmp)
        self.run(["mv", "-f", tmp, remote], timeout=30)
        self.files_sent.append({**record, "sent": sent})
        return remote

    # ------------------------------------------------------------------ device python

    def python_argv(self) -> list[str]:
        """The device python as an argv prefix (the target's `python`, else python3)."""
        return shlex.split(self.config.get("python") or "python3")


def _killable(command: str, pidfile: str) -> str:
    """Run `command` as a child in its own session, recording its pid in `pidfile`.

    The shell waits for it, so a death by signal comes back as exit status 128+N (SSH
    servers would otherwise report a signal that paramiko drops), and `_kill` can stop the
    whole process group.
    """
    return (
        f"if command -v setsid >/dev/null 2>&1; then setsid {command} & else {command} & fi; "
        f"p=$!; echo $p > {shlex.quote(pidfile)}; wait $p"
    )


def _short(command: str, width: int = 160) -> str:
    return command if len(command) <= width else command[: width - 1] + "…"
