"""The Target interface: one way to run commands and move files, one module per transport
(local, ssh, adb, adb+ssh: see `TRANSPORTS` in `targets/__init__.py`).

A transport implements five primitives (`_connect`, `_disconnect`, `_exec`, `_put`, `_get`).
Everything else is written once here, on top of them: lazy opening, the private per-run
workdir (created with `mktemp -d`, removed on close even after errors and Ctrl-C), the
content-addressed file cache that lets a second deploy send zero bytes, killing a command
that outlives its timeout, and `probe()`.

Commands are POSIX shell strings for the device's `sh`; build them from argv with
`quote_argv` (never by concatenating user input).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import interrupts
from ..errors import CommandError, CommandTimeout, ConnectError, DeviceError, tail
from ..fields import Field, TargetConfig, f
from ..fsutil import sha256_file
from . import pacing

#: The file that marks a `--keep` run folder: no later run's sweep removes it; `edgeq cache
#: prune --kept` does.
KEPT_MARKER = ".kept"

#: Keys every target has, whatever its transport (the transport's own come from its class,
#: the runner's from `edgeq.runners`).
COMMON_FIELDS: dict[str, Field] = {
    "transport": f(str, "local", "how to reach the device (a module of edgeq.targets)", True),
    "python": f(str, "python3", "the python that runs the device runner"),
    "workdir": f(str, "", "base folder on the device for edgeq's cache and per-run folders"),
    "description": f(str, "", "free text shown by `edgeq targets`"),
    "tags": f(list, [], "labels for lab selection (`--only TAG`)"),
    "env": f(dict, {}, "environment variables set for the runner on the device"),
    "result_max_mb": f(
        (int, float),
        8,
        "largest result document accepted from the device, in MB",
        minimum=0,
        exclusive=True,
    ),
}


@dataclass(frozen=True)
class CommandResult:
    """What a command did on the device."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float = 0.0
    #: bytes of output not kept (only the last part of a huge output is), per stream
    dropped: tuple[int, int] = (0, 0)

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
    #: How files travel to and from the device ("sftp", "exec", "copy", "adb"), for the
    #: result's `transfer.method`; a transport that chooses at run time sets it then.
    transfer_method: str = ""

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
        #: device paths of the cache files this target used (never pruned while in use)
        self.files_used: list[str] = []
        #: run folders of dead edgeq processes of this host, removed when the workdir was made
        self.swept: list[str] = []
        #: the command's --timeout (the lab: what is left of timeout_s): no network wait of
        #: a transport lasts longer (None: the transport's own bound)
        self.io_timeout: float | None = None
        #: what the target is doing, for "no data … during the push"
        self.phase = "a command"

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

    def pace_key(self) -> str | None:
        """The address whose connection set-ups are paced together (see `pacing`); None:
        not paced (this host, or a transport whose hop is paced itself)."""
        return None

    def open(self) -> Target:
        if not self._open:
            with pacing.CONNECTIONS.slot(self.pace_key()):
                self._connect()
            self._open = True
        return self

    def close(self) -> None:
        """Remove the per-run workdir (unless keep) and disconnect. Safe to call twice."""
        if not self._open:
            return
        with interrupts.shielded():
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
        if killable:
            with self._doing("the run"):
                return self._run(command, timeout, check, True)
        return self._run(command, timeout, check, False)

    @contextlib.contextmanager
    def _doing(self, phase: str) -> Iterator[None]:
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before

    def _run(self, command: str, timeout: float | None, check: bool, killable: bool):
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
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP (edgeq.interrupts)
            if pidfile:
                with interrupts.shielded():
                    self._kill(pidfile)
            raise
        except ConnectError:
            raise
        except DeviceError:
            if pidfile:
                with interrupts.shielded():
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

    def _quietly(self, command: str, timeout: float = 60) -> None:
        """Best-effort cleanup on the device (never raises for a device problem)."""
        with interrupts.shielded():
            try:
                self._exec(command, timeout)
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
        """This run's private folder on the device, created on first use.

        It holds an `.owner` file (this host, this process), so that a later run can remove
        the folders of runs from this host whose edgeq is gone (killed, or cut off from the
        device when the connection dropped): they are swept when the next one is made. A
        `--keep` folder also holds `KEPT_MARKER`: the sweep leaves it alone (only
        `edgeq cache prune --kept` removes it)."""
        if self._workdir is None:
            base = self.workdir_base.rstrip("/") or "/"
            q = shlex.quote(base)
            self.ensure_private()
            # a --keep folder is marked so that no later run's sweep removes it
            keep_mark = f': > "$d/{KEPT_MARKER}" && ' if self.keep else ""
            res, lines = self._short(
                f"umask 077; d=$(mktemp -d {shlex.quote(base + '/run.XXXXXX')}) && "
                f"printf '%s\\n' {shlex.quote(owner_line())} > \"$d/.owner\" && "
                f'{keep_mark}echo "$d" '
                f"|| exit 1; for f in {q}/run.*/.owner; do "
                f'[ -f "$f" ] && [ ! -f "${{f%/.owner}}/{KEPT_MARKER}" ] && '
                f'echo "$f $(cat "$f")"; done; exit 0'
            )
            path = lines[0].strip() if res.ok and lines else ""
            if not path.startswith(base + "/run."):
                raise self._base_error(base, res)
            self._workdir = path
            self._sweep(base, lines[1:])
        return self._workdir

    def _short(self, cmd: str) -> tuple[CommandResult, list[str]]:
        """A short shell command of edgeq's own on the device (30 s, no raise): its result
        and its output's lines."""
        res = self.run(cmd, timeout=30, check=False)
        return res, res.stdout.strip().splitlines()

    def ensure_private(self, sweep_parts: bool = True) -> None:
        """Create the workdir base and the cache on the device (0700 when new) and refuse
        them unless they are private to the login user (see `edgeq.privdir`): a file in
        the cache is checked by sha256 and then run, so nobody else may be able to swap
        it in between. Once per session."""
        if self._cache_ready:
            return
        from ..errors import ConfigError
        from ..privdir import judge_ls, refuse

        if any(ord(c) < 32 or ord(c) == 127 for c in self.workdir_base):
            raise ConfigError(
                f"{self.config.where}: workdir {self.workdir_base!r} holds a control character "
                f"(a newline?); give a plain folder path"
            )
        base = self.workdir_base.rstrip("/") or "/"
        cache = self.cache_dir
        probe = shlex.quote(base + "/.me.XXXXXX")
        res, lines = self._short(
            f"umask 077; mkdir -p {shlex.quote(base)} {shlex.quote(cache)} || exit 1; "
            # who am I: `id -u`, else the owner of a folder just made (no `id` on the device)
            f'id -u 2>/dev/null || {{ d=$(mktemp -d {probe}) && set -- $(ls -ldn "$d") && '
            f'rm -rf "$d" && echo "$3"; }}; '
            f"ls -ldn {shlex.quote(base + '/.')}; ls -ldn {shlex.quote(cache)}"
        )
        if res.failed or len(lines) < 3 or not lines[0].strip().isdigit():
            raise self._base_error(base, res)
        me = int(lines[0])
        setting = f'set workdir = "/a/folder/of/yours" in {self.config.where}'
        for path, line, shared_ok, what in (
            (base, lines[1], True, "edgeq's workdir base"),
            (cache, lines[2], False, "edgeq's cache"),
        ):
            why = judge_ls(path, line, me, shared_ok)
            if why:
                raise refuse(why, f"{what} on {self.name}", path, setting)
        self._cache_ready = True
        if not sweep_parts:
            return
        # unfinished uploads of runs cut off an hour ago or more (a live one is younger)
        self._quietly(
            f"find {shlex.quote(cache)} -maxdepth 1 -type f -name '*.part*' -mmin +60 "
            f"-exec rm -f {{}} + 2>/dev/null; true",
            30,
        )

    def prune_cache(self, older_than_days: float, dry_run: bool = False) -> list[str]:
        """Remove the device cache's files unused (untouched) for `older_than_days`, and
        unfinished uploads over an hour old; returns their paths. Files this run uses are
        touched when checked, so they are never old."""
        self.ensure_private(sweep_parts=False)
        q = shlex.quote(self.cache_dir)
        minutes = max(1, int(older_than_days * 1440))
        act = "-print" if dry_run else "-print -exec rm -f {} +"
        res = self.run(
            f"find {q} -maxdepth 1 -type f \\( -mmin +{minutes} -o -name '*.part*' -mmin +60 "
            f"\\) {act}",
            timeout=120,
            check=True,
        )
        return [ln for ln in res.stdout.splitlines() if ln.strip()]

    def _base_error(self, base: str, res: CommandResult) -> DeviceError:
        why = tail(res.stderr or res.stdout, 2) or f"exit {res.exit_code}"
        return CommandError.of(
            f"{self.name}: cannot create edgeq's folders under {base} on the device ({why}); "
            f'set workdir = "/a/writable/folder" in {self.config.where}',
            res,
        )

    def _sweep(self, base: str, owners: list[str]) -> None:
        """Remove run folders under `base` left by dead edgeq processes of this host."""
        stale = []
        for line in owners:
            path, _, owner = line.partition(" ")
            folder = path.rsplit("/", 1)[0]
            if folder != self._workdir and folder.startswith(base + "/run.") and orphaned(owner):
                stale.append(folder)
        if stale:
            self._quietly(quote_argv(["rm", "-rf", "--", *stale]))
            self.swept = stale

    def remove_workdir(self) -> None:
        if self._workdir:
            wd, self._workdir = self._workdir, None
            self._quietly(f"rm -rf {shlex.quote(wd)}")

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
        with self._doing("the result fetch"):
            self._get(remote, Path(local))
        return Path(local)

    def remote_sha256(self, remote: str) -> str | None:
        """sha256 of a device file, or None if it does not exist. A file that is there is
        touched: its time says when it was last used (`edgeq cache prune` goes by it)."""
        q = shlex.quote(remote)
        res = self.run(
            f"if [ -f {q} ]; then touch -c {q} 2>/dev/null; "
            f"sha256sum {q} 2>/dev/null || toybox sha256sum {q}; fi",
            timeout=60,
            check=False,
        )
        first = res.stdout.strip().split()
        return first[0].lower() if res.ok and first else None

    def ensure_file(self, local: Path, suffix: str = "") -> str:
        """Put `local` into the device cache unless an identical copy is there; returns its path.

        The check is the file's sha256 computed ON the device, so a stale or corrupt copy is
        replaced. Uploads go to a temporary name, are checked (sha256 on the device) and
        renamed into place; a failed or interrupted upload leaves nothing behind.
        """
        with self._doing("the push"):
            return self._ensure_file(Path(local), suffix)

    def _ensure_file(self, local: Path, suffix: str) -> str:
        digest = sha256_file(local)
        size = local.stat().st_size
        remote = f"{self.cache_dir}/{digest}{suffix}"
        record = {"file": local.name, "sha256": digest, "bytes": size}
        self.ensure_private()
        self.files_used.append(remote)
        if self.remote_sha256(remote) == digest:
            self.files_sent.append({**record, "sent": 0})
            return remote
        tmp = f"{remote}.part{time.time_ns()}"
        try:
            sent = self.put(local, tmp)
            self._install(tmp, remote, digest, local.name)
        except BaseException as exc:
            self._quietly(f"rm -f {shlex.quote(tmp)}")
            if isinstance(exc, DeviceError) and not isinstance(exc, ConnectError):
                full = self._no_space(local.name, size)
                if full is not None:
                    raise full from None
            raise
        self.files_sent.append({**record, "sent": sent})
        return remote

    def _install(self, tmp: str, remote: str, digest: str, name: str) -> None:
        """Rename an upload into place if its sha256 on the device is the one sent."""
        t, r = shlex.quote(tmp), shlex.quote(remote)
        res = self.run(
            f"set -- $(sha256sum {t} 2>/dev/null || toybox sha256sum {t} 2>/dev/null); "
            f'if [ -n "$1" ] && [ "$1" != {digest} ]; then echo "sha256 $1" >&2; exit 65; fi; '
            f"mv -f {t} {r}",
            timeout=60,
            check=False,
        )
        if res.exit_code == 65:
            raise CommandError.of(
                f"{self.name}: {name} arrived on the device with a different sha256 than was "
                f"sent ({tail(res.stderr, 1)}, expected {digest[:12]}…): it changed while it was "
                f"sent, or the transfer damaged it; run again",
                res,
            )
        if res.failed:
            raise CommandError.of(
                f"{self.name}: cannot move {name} into the device cache {self.cache_dir}: "
                f"{tail(res.stderr, 2) or f'exit {res.exit_code}'}",
                res,
            )

    def free_kb(self, path: str) -> int | None:
        """Free space (KB) of the filesystem holding `path` on the device, None if unknown."""
        try:
            q = shlex.quote(path)
            res = self._exec(f"df -Pk {q} 2>/dev/null || df -k {q}", 30)
        except (DeviceError, OSError):
            return None
        # Filesystem 1024-blocks Used Available Capacity Mounted-on (df may wrap a long
        # device name, and the mount point may hold spaces): Available precedes "NN%".
        words = " ".join(res.stdout.strip().splitlines()[1:]).split()
        for i, word in enumerate(words):
            if i and word.endswith("%") and word[:-1].isdigit():
                return int(words[i - 1]) if words[i - 1].isdigit() else None
        return None

    def _no_space(self, name: str, size: int) -> DeviceError | None:
        """The error to give when an upload failed for want of space (None: it did not)."""
        with interrupts.shielded():
            free = self.free_kb(self.cache_dir)
        if free is None or free * 1024 >= size:
            return None
        return CommandError(
            f"{self.name}: no space left on the device for {name} ({size / 1024:,.0f} KB): "
            f"{self.cache_dir} has {free:,} KB free; free some space there (`edgeq cache prune` "
            f'for a local target) or set workdir = "/a/bigger/disk" in {self.config.where}',
            details={"free_kb": free, "needed_bytes": size},
        )

    # ------------------------------------------------------------------ device python

    def python_argv(self) -> list[str]:
        """The device python as an argv prefix (the target's `python`, else python3)."""
        return shlex.split(self.config.get("python") or "python3")


def _start_time() -> str:
    """This process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        return Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


_owner: tuple[int, str] | None = None


def owner_line() -> str:
    """Who makes a run folder: `edgeq <host> <boot id> <pid> <start time>` (read once per
    process: `orphaned` asks for every run folder a device lists)."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:  # a forked child is another process
        _owner = (pid, f"edgeq {socket.gethostname()} {_boot_id()} {pid} {_start_time()}")
    return _owner[1]


def orphaned(owner: str) -> bool:
    """True if `owner` (an `.owner` line) is an edgeq process of THIS host that is gone."""
    parts = owner.split()
    me = owner_line().split()
    if len(parts) != 5 or parts[0] != "edgeq" or parts[1:3] != me[1:3] or "?" in parts[1:3]:
        return False  # another host's (or an unreadable) folder: never ours to remove
    pid, start = parts[3], parts[4]
    if not pid.isdigit():
        return False
    if pid == me[3]:
        return start != me[4]
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no such process
    return stat.rsplit(")", 1)[1].split()[19] != start  # the pid was reused


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
