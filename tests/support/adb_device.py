"""An emulated adb server with emulated Android devices, for tests without a phone.

The real ``adb`` client (Debian's 29.0.6, or any client speaking server version 41) talks to
this server as if it were the adb server with a phone attached: start it on a private port on
127.0.0.1 and run ``adb -P PORT ...`` (or set ``ANDROID_ADB_SERVER_PORT=PORT``).

What runs where:

* The *host* side (the adb server's smart socket: ``host:version``, ``host:devices``,
  ``host:features``, ``host:tport:...``, ``host:kill`` ...) is emulated in this module.
* The *device* services (``shell,v2,...:``, legacy ``shell:``, ``exec:``, ``sync:``) are
  executed for real on this machine. Shell commands run with ``/bin/sh`` and the sandbox
  folder plays the phone's filesystem: device path ``/data/local/tmp/x`` is
  ``ROOT/data/local/tmp/x``.

Filesystem isolation (``isolation=``):

``namespace`` (the default when running as root with util-linux ``unshare``/``nsenter``)
    A private mount namespace per device, held open by a holder process: a tmpfs
    root with the host's top-level directories bind-mounted read-only (``/dev``, ``/proc``,
    ``/sys`` recursively and writable), plus ``ROOT/data`` -> ``/data``,
    ``ROOT/sdcard`` -> ``/sdcard`` (writable) and ``ROOT/system`` -> ``/system``
    (read-only). Each command enters it with ``nsenter -m -r`` (about a millisecond). No
    directory is created in the host's ``/``; nothing leaks out of the namespace.
``proot``
    ``proot -b ROOT/data:/data ...``. Works without root, but Debian 12's proot 5.1.0 does
    not translate ``statx`` (coreutils ``ls``/``stat`` fail on bound paths) and waits for
    background processes before exiting (``adb shell 'cmd &'`` blocks). Opt-in only.
``none``
    Commands run directly on the host with ``cwd`` mapped into the sandbox; absolute device
    paths (``/data/...``) inside shell commands do NOT resolve. Sync (push/pull) still maps
    device paths into the sandbox.

``auto`` picks ``namespace`` when it works, else ``none`` (with a warning). The
``EDGEQ_ADB_EMU_ISOLATION`` environment variable sets the default.

Stdlib only; Python 3.10+. Run by hand::

    python -m tests.support.adb_device --root /tmp/phone --port 15037
    adb -P 15037 devices -l
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fcntl
import itertools
import logging
import os
import posixpath
import re
import selectors
import shlex
import shutil
import signal
import socket
import socketserver
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("edgeq.tests.adb_device")

#: What ``host:version`` answers; the 29.x-35.x clients all expect 41 (0x29).
ADB_SERVER_VERSION = 41
DEFAULT_SERIAL = "EDGEQ0001"
DEVICE_STATES = ("device", "offline", "unauthorized")
ISOLATIONS = ("auto", "namespace", "proot", "none")

#: Device features advertised by a modern device. Only what this module implements: no
#: ``cmd``/``abb``/``apex`` (no package manager here), no ``sendrecv_v2`` (so clients use
#: the v1 SEND/RECV requests), no ``remount_shell``.
MODERN_FEATURES = (
    "shell_v2",
    "stat_v2",
    "ls_v2",
    "fixed_push_mkdir",
    "fixed_push_symlink_timestamp",
)
#: A legacy (pre-Android-N) device advertises no features at all.
LEGACY_FEATURES: tuple[str, ...] = ()

DEFAULT_PROPS = {
    "ro.product.model": "EdgeQ Emulated Phone",
    "ro.product.name": "edgeq_arm64",
    "ro.product.device": "edgeq_arm64",
    "ro.product.brand": "edgeq",
    "ro.product.manufacturer": "EdgeQ",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.build.type": "userdebug",
    "ro.hardware": "edgeq",
}

SYNC_DATA_MAX = 64 * 1024
MAX_PAYLOAD = 1024 * 1024
_SYNC_PATH_MAX = 1024
#: Device directories bound to ``ROOT/<name>``; the first two are writable.
_BIND_DIRS = ("data", "sdcard", "system")
_WRITABLE_PREFIXES = ("/data", "/sdcard")
_ENV_MARKER = "EDGEQ_ADB_EMULATOR"

_STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
_STAT_V2 = struct.Struct(
    "<4sIQQIIIIQqqq"
)  # id, error, dev, ino, mode, nlink, uid, gid, size, a/m/c
_DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
_DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # stat_v2 fields + namelen
_SYNC_MSG = struct.Struct("<4sI")


@dataclasses.dataclass
class DeviceSpec:
    """One emulated device attached to the emulated server.

    ``root`` is the sandbox that plays the device's ``/`` (``root/data/local/tmp`` ...);
    when ``None`` the server picks ``server_root`` (one device) or ``server_root/serial``.
    ``features`` defaults to :data:`MODERN_FEATURES` with ``shell_v2`` and to none without
    (a pre-N device: legacy ``shell:`` that loses the exit status, STAT v1 only).
    """

    serial: str = DEFAULT_SERIAL
    state: str = "device"
    shell_v2: bool = True
    root: Path | None = None
    features: tuple[str, ...] | None = None
    props: dict[str, str] = dataclasses.field(default_factory=dict)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Working directory of shell commands. A real adbd starts shells in ``/``.
    cwd: str = "/"

    def __post_init__(self) -> None:
        if self.state not in DEVICE_STATES:
            raise ValueError(f"state must be one of {DEVICE_STATES}, not {self.state!r}")
        if not self.serial or any(c.isspace() for c in self.serial):
            raise ValueError(f"bad serial {self.serial!r}")


class _ClientGone(Exception):
    """The client closed the connection (or it broke)."""


# --------------------------------------------------------------------------------------
# small helpers


def _hex4(n: int) -> bytes:
    return b"%04x" % n


def _nth_serial(base: str, index: int) -> str:
    """Serial of the index-th device: EDGEQ0001 -> EDGEQ0002, emulator-5554 -> emulator-5556."""
    if index == 0:
        return base
    m = re.fullmatch(r"(.*?)(\d+)", base)
    if not m:
        return f"{base}-{index + 1}"
    step = 2 if m.group(1) == "emulator-" else 1
    return f"{m.group(1)}{int(m.group(2)) + step * index:0{len(m.group(2))}d}"


def _sanitize(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", value)


def _strerror(err: int) -> str:
    return os.strerror(err)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _close_fd(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _marker_pids(marker: str) -> list[int]:
    """Pids of processes whose environment carries ``EDGEQ_ADB_EMULATOR=<marker...>``."""
    needle = f"{_ENV_MARKER}={marker}".encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for item in env.split(b"\0"):
            if item == needle or item.startswith(needle + b":"):
                found.append(int(entry))
                break
    return found


def _kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def find_real_adb_servers(port: int) -> list[int]:
    """Pids of real ``adb ... fork-server`` processes listening on ``port``.

    A client that dislikes the version answer sends ``host:kill`` and starts
    ``adb -L tcp:PORT fork-server server --reply-fd N`` on the same port.
    """
    spec = re.compile(rf"tcp:(?:[^:]*:)?{port}")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "fork-server" in args and any(spec.fullmatch(a) for a in args):
            pids.append(int(entry))
    return pids


def kill_real_adb_servers(port: int, timeout: float = 5.0) -> list[int]:
    """Kill real adb servers started for ``port``; return their pids."""
    pids = find_real_adb_servers(port)
    if pids:
        log.warning("killing real adb server(s) %s left on port %d", pids, port)
        _kill_pids(pids, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.02)
    return pids


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has closed its sockets)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _send_host_kill(port: int) -> None:
    """Ask whatever adb server answers on ``port`` to quit (raw ``host:kill``)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"0009host:kill")
        s.settimeout(2)
        with contextlib.suppress(OSError):
            while s.recv(4096):
                pass


# --------------------------------------------------------------------------------------
# the device's filesystem


class SandboxFS:
    """Maps device paths to host paths: ``/data``, ``/sdcard``, ``/system`` live in ``root``.

    Other absolute paths are the host's (read-only for sync, as ``/system`` on a phone).
    Symlinks are resolved in the device's view, so a link to ``/data/local/tmp/x`` created
    by a device shell is followed into the sandbox.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.binds = {f"/{name}": str(self.root / name) for name in _BIND_DIRS}

    def host(self, device_path: str) -> str:
        """Lexical mapping of an absolute, normalised device path."""
        for prefix, target in self.binds.items():
            if device_path == prefix or device_path.startswith(prefix + "/"):
                return target + device_path[len(prefix) :]
        return device_path

    @staticmethod
    def writable(device_path: str) -> bool:
        return any(device_path == p or device_path.startswith(p + "/") for p in _WRITABLE_PREFIXES)

    def resolve(self, path: str, follow_last: bool = True) -> tuple[str, str]:
        """Return (device path, host path) with symlinks resolved in the device's view.

        A relative path is relative to ``/`` (adbd's working directory). A trailing slash
        follows the last component and requires a directory, as lstat(2) does.
        """
        trailing = len(path) > 1 and path.endswith("/")
        comps = [c for c in path.split("/") if c and c != "."]
        follow_last = follow_last or trailing
        cur = "/"
        hops = 0
        i = 0
        while i < len(comps):
            name = comps[i]
            if name == "..":
                cur = posixpath.dirname(cur)
                i += 1
                continue
            nxt = posixpath.join(cur, name)
            last = i == len(comps) - 1
            host = self.host(nxt)
            if (follow_last or not last) and os.path.islink(host):
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, _strerror(errno.ELOOP), path)
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = "/"
                comps = [c for c in target.split("/") if c and c != "."] + comps[i + 1 :]
                i = 0
                continue
            cur = nxt
            i += 1
        host = self.host(cur)
        if trailing and not os.path.isdir(host):
            err = errno.ENOTDIR if os.path.lexists(host) else errno.ENOENT
            raise OSError(err, _strerror(err), path)
        return cur, host


# --------------------------------------------------------------------------------------
# running device commands


_NS_HOLDER_SCRIPT = r"""
R=$1; D=$2
mount -t tmpfs -o mode=755 edgeq-device "$R" || exit 125
for p in /*; do
  n=${p#/}
  case "$n" in data|sdcard|system) continue;; esac
  if [ -L "$p" ]; then
    ln -s "$(readlink "$p")" "$R/$n" || exit 125
  elif [ -d "$p" ]; then
    mkdir "$R/$n" || exit 125
    case "$n" in
      dev|proc|sys) mount --rbind "$p" "$R/$n" || exit 125;;
      *) mount --bind "$p" "$R/$n" && mount -o remount,bind,ro "$R/$n" || exit 125;;
    esac
  fi
done
for n in data sdcard system; do
  mkdir "$R/$n" && mount --bind "$D/$n" "$R/$n" || exit 125
done
mount -o remount,bind,ro "$R/system" || exit 125
echo READY
# Hold the namespace until the server closes our stdin (or dies).
exec chroot "$R" /bin/cat >/dev/null
"""


class _Isolation:
    """How device commands see the sandbox. Subclasses build the argv."""

    name = "none"

    def __init__(self, fs: SandboxFS) -> None:
        self.fs = fs

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def argv(self, command: str | None, cwd: str) -> tuple[list[str], str | None]:
        """(argv, host cwd for Popen) that runs ``/bin/sh -c command`` (or ``/bin/sh``)."""
        shell = ["/bin/sh"] if command is None else ["/bin/sh", "-c", command]
        if cwd != "/":
            # cd first, as an Android shell would after `cd dir && ...`.
            body = 'cd -- "$1" || exit 1; shift; exec "$@"'
            shell = ["/bin/sh", "-c", body, "sh", cwd, *shell]
        return shell, None


class _NamespaceIsolation(_Isolation):
    name = "namespace"

    def __init__(self, fs: SandboxFS) -> None:
        super().__init__(fs)
        self.holder: subprocess.Popen[bytes] | None = None
        self.mountpoint: str | None = None

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and all(
            shutil.which(t) for t in ("unshare", "nsenter", "chroot", "mount")
        )

    def start(self) -> None:
        self.mountpoint = tempfile.mkdtemp(prefix="edgeq-adb-ns-")
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                _NS_HOLDER_SCRIPT,
                "edgeq-ns",
                self.mountpoint,
                str(self.fs.root),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != b"READY":
            self.holder.wait()
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.stderr else ""
            self.holder = None
            self.stop()
            raise OSError(f"could not set up a mount namespace: {err.strip() or line!r}")
        self.holder.stdout.close()

    def stop(self) -> None:
        if self.holder is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait()
            for pipe in (self.holder.stdin, self.holder.stdout, self.holder.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            self.holder = None
        if self.mountpoint:
            with contextlib.suppress(OSError):
                os.rmdir(self.mountpoint)
            self.mountpoint = None

    def argv(self, command: str | None, cwd: str) -> tuple[list[str], str | None]:
        if self.holder is None or self.holder.poll() is not None:
            raise OSError("the device's mount namespace is gone")
        shell, _ = super().argv(command, cwd)
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-r", "-w", *shell], None


class _ProotIsolation(_Isolation):
    name = "proot"

    @staticmethod
    def available() -> bool:
        return shutil.which("proot") is not None

    def argv(self, command: str | None, cwd: str) -> tuple[list[str], str | None]:
        binds = []
        for name in _BIND_DIRS:
            binds += ["-b", f"{self.fs.root / name}:/{name}"]
        shell = ["/bin/sh"] if command is None else ["/bin/sh", "-c", command]
        return ["proot", "-v", "-1", *binds, "-w", cwd, *shell], None


class _PlainIsolation(_Isolation):
    """No isolation: run on the host with cwd mapped into the sandbox."""

    name = "none"

    def argv(self, command: str | None, cwd: str) -> tuple[list[str], str | None]:
        shell = ["/bin/sh"] if command is None else ["/bin/sh", "-c", command]
        host_cwd = str(self.fs.root) if cwd == "/" else self.fs.host(posixpath.normpath(cwd))
        return shell, host_cwd


def _make_isolation(kind: str, fs: SandboxFS) -> _Isolation:
    if kind == "auto":
        if _NamespaceIsolation.available():
            iso = _NamespaceIsolation(fs)
            try:
                iso.start()
            except OSError as e:
                log.warning("mount namespace unavailable (%s); falling back to isolation=none", e)
            else:
                return iso
        else:
            log.warning(
                "not root or no unshare/nsenter: device shell commands run without "
                "/data mapping (isolation=none)"
            )
        iso = _PlainIsolation(fs)
    elif kind == "namespace":
        if not _NamespaceIsolation.available():
            raise OSError("isolation=namespace needs root and util-linux unshare/nsenter/chroot")
        iso = _NamespaceIsolation(fs)
    elif kind == "proot":
        if not _ProotIsolation.available():
            raise OSError("isolation=proot needs the proot binary (apt-get install proot)")
        iso = _ProotIsolation(fs)
    elif kind == "none":
        iso = _PlainIsolation(fs)
    else:
        raise ValueError(f"isolation must be one of {ISOLATIONS}")
    iso.start()
    return iso


class _Proc:
    """A running device command: its process and our ends of its stdio."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin_fd: int,
        stdout_fd: int,
        stderr_fd: int | None,
        is_pty: bool,
    ) -> None:
        self.popen = popen
        self.stdin_fd: int | None = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.is_pty = is_pty
        self.marker = ""

    def kill(self) -> None:
        """Kill the command's process group and anything else of this session."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        if self.marker:
            _kill_pids(_marker_pids(self.marker))

    def wait(self) -> int:
        rc = self.popen.wait()
        # adbd reports a signal death as 0x80 | signo, like a shell would.
        return (0x80 | -rc) if rc < 0 else rc & 0xFF


# --------------------------------------------------------------------------------------
# the device


class EmulatedDevice:
    """Runtime state of one attached device (see :class:`DeviceSpec`)."""

    def __init__(self, spec: DeviceSpec, transport_id: int, root: Path, token: str) -> None:
        self.spec = spec
        self.serial = spec.serial
        self.state = spec.state
        self.transport_id = transport_id
        self.root = Path(root)
        self.fs = SandboxFS(self.root)
        if spec.features is not None:
            self.features = tuple(spec.features)
        else:
            self.features = MODERN_FEATURES if spec.shell_v2 else LEGACY_FEATURES
        if spec.shell_v2 != ("shell_v2" in self.features):
            raise ValueError("shell_v2 and features disagree")
        self.props = {**DEFAULT_PROPS, "ro.serialno": spec.serial, **spec.props}
        self.transport_type = "local" if spec.serial.startswith("emulator-") else "usb"
        self.token = token
        self.isolation: _Isolation | None = None
        self._session_ids = itertools.count(1)

    # -- setup ------------------------------------------------------------------------

    def prepare(self, isolation: str) -> None:
        for d in ("data/local/tmp", "sdcard", "system/bin"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "data/local/tmp").chmod(0o771)
        getprop = self.root / "system/bin/getprop"
        getprop.write_text(_getprop_script(self.props))
        getprop.chmod(0o755)
        (self.root / "system/build.prop").write_text(
            "".join(f"{k}={v}\n" for k, v in sorted(self.props.items()))
        )
        self.isolation = _make_isolation(isolation, self.fs)

    def close(self) -> None:
        if self.isolation is not None:
            self.isolation.stop()
            self.isolation = None

    # -- listing ----------------------------------------------------------------------

    def matches(self, target: str) -> bool:
        if target == self.serial:
            return True
        for key, prop in (
            ("product:", "ro.product.name"),
            ("model:", "ro.product.model"),
            ("device:", "ro.product.device"),
        ):
            if target.startswith(key) and self.state == "device":
                want = target[len(key) :]
                value = self.props.get(prop, "")
                return want in (value, _sanitize(value))
        return False

    def listing(self, long: bool) -> str:
        if not long:
            return f"{self.serial}\t{self.state}\n"
        line = f"{self.serial:<22} {self.state}"
        if self.state == "device":
            line += f" product:{self.props['ro.product.name']}"
            line += f" model:{_sanitize(self.props['ro.product.model'])}"
            line += f" device:{self.props['ro.product.device']}"
        return line + f" transport_id:{self.transport_id}\n"

    # -- commands ---------------------------------------------------------------------

    def shell_env(self, term: str, marker: str) -> dict[str, str]:
        plain = isinstance(self.isolation, _PlainIsolation)
        tmp = str(self.root / "data/local/tmp") if plain else "/data/local/tmp"
        system_bin = str(self.root / "system/bin") if plain else "/system/bin"
        path = [system_bin, os.path.dirname(sys.executable)]
        path += os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
        path += ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        env = {
            "PATH": ":".join(dict.fromkeys(p for p in path if p)),
            "HOME": tmp,
            "TMPDIR": tmp,
            "TERM": term,
            "USER": "shell",
            "LOGNAME": "shell",
            "SHELL": "/bin/sh",
            "HOSTNAME": self.props.get("ro.product.device", "localhost"),
            "ANDROID_DATA": "/data",
            "ANDROID_ROOT": "/system",
            "EXTERNAL_STORAGE": "/sdcard",
            "LANG": "C.UTF-8",
            _ENV_MARKER: marker,
        }
        env.update(self.spec.env)
        return env

    def spawn(self, command: str | None, *, use_pty: bool, merge_stderr: bool, term: str) -> _Proc:
        """Start ``/bin/sh -c command`` (``/bin/sh`` reading stdin when ``command`` is None)."""
        assert self.isolation is not None
        marker = f"{self.token}:{self.serial}:{next(self._session_ids)}"
        argv, cwd = self.isolation.argv(command, self.spec.cwd)
        # The host resolves the helper (nsenter, proot, sh); the device's PATH may not
        # reach host tools at all (a phone without python, say).
        argv = [shutil.which(argv[0]) or argv[0], *argv[1:]]
        env = self.shell_env(term, marker)
        popen_kw: dict[str, Any] = {
            "env": env,
            "cwd": cwd,
            "start_new_session": True,
            "close_fds": True,
        }
        if use_pty:
            master, slave = os.openpty()
            try:
                popen = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, **popen_kw)
            except OSError:
                _close_fd(master)
                raise
            finally:
                _close_fd(slave)
            proc = _Proc(popen, os.dup(master), master, None, True)
        else:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = (None, None) if merge_stderr else os.pipe()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=in_r,
                    stdout=out_w,
                    stderr=subprocess.STDOUT if merge_stderr else err_w,
                    **popen_kw,
                )
            except OSError:
                for fd in (in_w, out_r, err_r):
                    _close_fd(fd)
                raise
            finally:
                for fd in (in_r, out_w, err_w):
                    _close_fd(fd)
            proc = _Proc(popen, in_w, out_r, err_r, False)
        proc.marker = marker
        return proc


def _getprop_script(props: dict[str, str]) -> str:
    lines = [
        "#!/bin/sh",
        "# getprop of an emulated edgeq test device (generated; values also in /system/build.prop)",
        'if [ "$#" -eq 0 ]; then',
    ]
    lines += [f"  printf '%s\\n' {shlex.quote(f'[{k}]: [{v}]')}" for k, v in sorted(props.items())]
    lines += ["  exit 0", "fi", 'case "$1" in']
    lines += [f"  {shlex.quote(k)}) printf '%s\\n' {shlex.quote(v)} ;;" for k, v in props.items()]
    lines += ["  *) printf '%s\\n' \"${2-}\" ;;", "esac", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# the wire


class _Conn:
    """A client connection to the emulated server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError as e:
                raise _ClientGone(str(e)) from e
            if not chunk:
                raise _ClientGone("EOF")
            buf += chunk
        return bytes(buf)

    def read_request(self) -> str:
        head = self.recv_exact(4)
        try:
            length = int(head, 16)
        except ValueError as e:
            raise _ClientGone(f"bad request length {head!r}") from e
        if not 0 < length <= MAX_PAYLOAD:
            raise _ClientGone(f"bad request length {length}")
        return self.recv_exact(length).decode("utf-8", "surrogateescape")

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise _ClientGone(str(e)) from e

    def okay(self, payload: str | None = None) -> None:
        if payload is None:
            self.send(b"OKAY")
        else:
            data = payload.encode("utf-8", "surrogateescape")
            self.send(b"OKAY" + _hex4(len(data)) + data)

    def fail(self, message: str) -> None:
        data = message.encode("utf-8", "surrogateescape")
        self.send(b"FAIL" + _hex4(len(data)) + data)

    def sync_fail(self, message: str) -> None:
        data = message.encode("utf-8", "surrogateescape")
        self.send(_SYNC_MSG.pack(b"FAIL", len(data)) + data)

    def shell_packet(self, packet_id: int, data: bytes) -> None:
        self.send(struct.pack("<BI", packet_id, len(data)) + data)

    def orderly_close(self, timeout: float = 5.0) -> None:
        """Shut down our side, drain what the client still sends, then close.

        Closing with unread input makes TCP send a reset, and the client may lose the last
        data (e.g. the shell's exit packet), so never close with data pending.
        """
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError):
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    break
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def peer_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for input; True when the client closed (or broke) it."""
        sel = selectors.DefaultSelector()
        try:
            sel.register(self.sock, selectors.EVENT_READ)
            if not sel.select(timeout):
                return False
            return not self.sock.recv(4096)  # input here is ignored, as adb's server does
        except OSError:
            return True
        finally:
            sel.close()


# --------------------------------------------------------------------------------------
# the server


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        conn = _Conn(self.request)
        emu = self.server.emu
        emu._track_conn(conn, add=True)
        try:
            emu._serve(conn)
        except _ClientGone as e:
            log.debug("client went away: %s", e)
        except Exception:
            log.exception("emulated adb server: internal error")
        finally:
            emu._track_conn(conn, add=False)
            conn.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    emu: EmulatedAdbServer


class EmulatedAdbServer:
    """An adb server on 127.0.0.1:``port`` with emulated devices attached.

    ``devices`` defaults to one :class:`DeviceSpec` built from ``serial``/``state``/
    ``shell_v2``; pass ``devices=[]`` for "no devices". With one device its sandbox is
    ``root``; with several, ``root/<serial>`` unless the spec names a root.

    ``exit_on_kill``: a real server exits on ``host:kill`` (``adb kill-server``); by default
    this one answers OKAY and keeps serving (as if restarted at once), so a later client
    never starts a real adb server on the port.
    """

    def __init__(
        self,
        root: Path | str,
        port: int = 0,
        devices: Sequence[DeviceSpec] | None = None,
        *,
        serial: str = DEFAULT_SERIAL,
        state: str = "device",
        shell_v2: bool = True,
        isolation: str | None = None,
        exit_on_kill: bool = False,
        version: int = ADB_SERVER_VERSION,
    ) -> None:
        if isolation is None:
            isolation = os.environ.get("EDGEQ_ADB_EMU_ISOLATION") or "auto"
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}")
        self.root = Path(root)
        self.requested_port = port
        self.isolation = isolation
        self.exit_on_kill = exit_on_kill
        self.version = version
        if devices is None:
            devices = [DeviceSpec(serial=serial, state=state, shell_v2=shell_v2)]
        serials = [d.serial for d in devices]
        if len(set(serials)) != len(serials):
            raise ValueError(f"duplicate serials: {serials}")
        self.specs = list(devices)
        self.token = uuid.uuid4().hex[:12]
        self.devices: list[EmulatedDevice] = []
        self.requests: list[str] = []
        self.kill_requests = 0
        #: seconds the server takes to answer each request (0: at once), as a busy one does
        self.answer_delay_s = 0.0
        #: the most requests it was answering at once (counted over that delay: a client
        #: has one request at a time, so this is the clients it served at once)
        self.peak_serving = 0
        self._serving = 0
        self._next_tid = itertools.count(1)
        self._cond = threading.Condition()
        self._generation = 0
        self._conns: set[_Conn] = set()
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._killed = threading.Event()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("server not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None and not self._killed.is_set()

    def start(self) -> EmulatedAdbServer:
        if self._server is not None:
            raise RuntimeError("already started")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                self._attach(spec, single=len(self.specs) == 1)
            server = _TCPServer(("127.0.0.1", self.requested_port), _Handler)
        except BaseException:
            for dev in self.devices:
                dev.close()
            raise
        server.emu = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"emulated-adb-{self._port}",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "emulated adb server on 127.0.0.1:%d with %s",
            self._port,
            ", ".join(f"{d.serial} ({d.state}, {self.device_isolation(d)})" for d in self.devices)
            or "no devices",
        )
        return self

    def _attach(self, spec: DeviceSpec, single: bool) -> EmulatedDevice:
        root = (
            spec.root
            if spec.root is not None
            else (self.root if single else self.root / spec.serial)
        )
        dev = EmulatedDevice(spec, next(self._next_tid), Path(root), self.token)
        dev.prepare(self.isolation)
        with self._cond:
            self.devices.append(dev)
            self._changed()
        return dev

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._killed.set()
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        """Stop serving, kill every process the devices started, remove stray real servers."""
        self._stop_listening()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        _kill_pids(_marker_pids(self.token))
        for dev in self.devices:
            dev.close()
        if self._port:
            kill_real_adb_servers(self._port)
            if _port_answers(self._port):
                log.warning("something still answers on port %d: sending host:kill", self._port)
                _send_host_kill(self._port)
                kill_real_adb_servers(self._port)

    def __enter__(self) -> EmulatedAdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_killed(self, timeout: float | None = None) -> bool:
        """Block until ``host:kill`` stopped an ``exit_on_kill`` server."""
        return self._killed.wait(timeout)

    # -- test helpers -----------------------------------------------------------------

    def device(self, serial: str | None = None) -> EmulatedDevice:
        with self._cond:
            if serial is None:
                if len(self.devices) != 1:
                    raise LookupError("more than one device: name the serial")
                return self.devices[0]
            for dev in self.devices:
                if dev.serial == serial:
                    return dev
        raise LookupError(serial)

    def device_isolation(self, dev: EmulatedDevice) -> str:
        return dev.isolation.name if dev.isolation else "?"

    def set_state(self, serial: str, state: str) -> None:
        """Change a device's state (``device``/``offline``/``unauthorized``) while serving."""
        if state not in DEVICE_STATES:
            raise ValueError(state)
        with self._cond:
            self.device(serial).state = state
            self._changed()

    def add_device(self, spec: DeviceSpec) -> EmulatedDevice:
        """Plug in another device (its root defaults to ``root/<serial>``)."""
        if any(d.serial == spec.serial for d in self.devices):
            raise ValueError(f"duplicate serial {spec.serial}")
        return self._attach(spec, single=False)

    def remove_device(self, serial: str) -> None:
        """Unplug a device (its sandbox stays on disk)."""
        with self._cond:
            dev = self.device(serial)
            self.devices.remove(dev)
            self._changed()
        _kill_pids(_marker_pids(f"{self.token}:{serial}"))
        dev.close()

    def adb_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for the real client that can only reach this server."""
        env = dict(os.environ if base is None else base)
        for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_SERIAL"):
            env.pop(var, None)
        env["ANDROID_ADB_SERVER_PORT"] = str(self.port)
        return env

    def adb(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``adb -P PORT args...`` (text mode, captured, stdin closed)."""
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(
            [shutil.which("adb") or "adb", "-P", str(self.port), *args],
            env=self.adb_env(env),
            timeout=timeout,
            check=False,
            **kw,
        )

    # -- bookkeeping ------------------------------------------------------------------

    def _track_conn(self, conn: _Conn, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _changed(self) -> None:
        self._generation += 1
        self._cond.notify_all()

    def _record(self, request: str) -> None:
        with self._cond:
            self.requests.append(request)
        if not self.answer_delay_s:
            return
        with self._cond:
            self._serving += 1
            self.peak_serving = max(self.peak_serving, self._serving)
        try:
            time.sleep(self.answer_delay_s)
        finally:
            with self._cond:
                self._serving -= 1

    # -- device selection (mirrors adb's acquire_one_transport) ------------------------

    def _acquire(
        self,
        ttype: str,
        serial: str | None,
        transport_id: int | None,
        accept_any_state: bool = False,
    ) -> tuple[EmulatedDevice | None, str, bool]:
        if transport_id:
            error = f"no device with transport id '{transport_id}'"
        elif serial:
            error = f"device '{serial}' not found"
        elif ttype == "local":
            error = "no emulators found"
        elif ttype == "any":
            error = "no devices/emulators found"
        else:
            error = "no devices found"
        result = None
        with self._cond:
            devices = list(self.devices)
        for dev in devices:
            if transport_id:
                if dev.transport_id == transport_id:
                    result = dev
                    break
                continue
            if serial:
                ok, many = dev.matches(serial), "more than one device"
            elif ttype == "any":
                ok, many = True, "more than one device/emulator"
            else:
                ok = dev.transport_type == ttype
                many = "more than one emulator" if ttype == "local" else "more than one device"
            if ok:
                if result is not None:
                    return None, many, True
                result = dev
        if result is None:
            return None, error, False
        if not accept_any_state:
            if result.state == "offline":
                return None, "device offline", False
            if result.state == "unauthorized":
                keys = os.environ.get("ADB_VENDOR_KEYS") or "not set"
                return (
                    None,
                    "device unauthorized.\n"
                    f"This adb server's $ADB_VENDOR_KEYS is {keys}\n"
                    "Try 'adb kill-server' if that seems wrong.\n"
                    "Otherwise check for a confirmation dialog on your device.",
                    False,
                )
        return result, "success", False

    # -- the smart socket ---------------------------------------------------------------

    def _serve(self, conn: _Conn) -> None:
        request = conn.read_request()
        self._record(request)
        log.debug("request %r", request)
        if not request.startswith("host"):
            conn.fail("device offline (no transport)")
            conn.orderly_close()
            return
        parsed = _parse_host_prefix(request)
        if parsed is None:
            log.debug("unparseable host request %r", request)
            conn.orderly_close()
            return
        ttype, serial, tid, service = parsed
        if service.startswith(("transport", "tport:")):
            dev = self._switch_transport(conn, service, ttype, serial, tid)
            if dev is None:
                return
            request = conn.read_request()
            self._record(request)
            log.debug("device %s service %r", dev.serial, request)
            if request.startswith("host"):
                parsed = _parse_host_prefix(request)
                if parsed is None:
                    conn.orderly_close()
                    return
                self._host_service(conn, *parsed, selected=dev)
            else:
                self._device_service(conn, dev, request)
            return
        self._host_service(conn, ttype, serial, tid, service)

    def _switch_transport(
        self, conn: _Conn, service: str, ttype: str, serial: str | None, tid: int | None
    ) -> EmulatedDevice | None:
        legacy = True
        if service.startswith("tport:"):
            legacy = False
            what = service[len("tport:") :]
            if what.startswith("serial:"):
                serial = what[len("serial:") :]
            elif what in ("usb", "local", "any"):
                ttype = what
        elif service.startswith("transport-id:"):
            try:
                tid = int(service[len("transport-id:") :])
            except ValueError:
                conn.fail("invalid transport id")
                conn.orderly_close()
                return None
        elif service in ("transport-usb", "transport-local", "transport-any"):
            ttype = service[len("transport-") :]
        elif service.startswith("transport:"):
            serial = service[len("transport:") :]
        dev, error, _ = self._acquire(ttype, serial, tid)
        if dev is None:
            conn.fail(error)
            conn.orderly_close()
            return None
        conn.send(b"OKAY" if legacy else b"OKAY" + struct.pack("<Q", dev.transport_id))
        return dev

    def _host_service(
        self,
        conn: _Conn,
        ttype: str,
        serial: str | None,
        tid: int | None,
        service: str,
        selected: EmulatedDevice | None = None,
    ) -> None:
        def pick() -> tuple[EmulatedDevice | None, str]:
            if selected is not None:
                return selected, "success"
            dev, error, _ = self._acquire(ttype, serial, tid)
            return dev, error

        if service == "version":
            conn.okay(f"{self.version:04x}")
        elif service == "kill":
            self.kill_requests += 1
            conn.okay()
            conn.orderly_close()
            if self.exit_on_kill:
                log.info("host:kill: the emulated server quits")
                threading.Thread(target=self._stop_listening, daemon=True).start()
            return
        elif service in ("devices", "devices-l"):
            conn.okay(self._device_list(service == "devices-l"))
        elif service in ("track-devices", "track-devices-l"):
            self._track_devices(conn, service.endswith("-l"))
            return
        elif service == "host-features":
            conn.okay(",".join((*MODERN_FEATURES, "push_sync")))
        elif service in ("features", "get-serialno", "get-state", "get-devpath"):
            dev, error = pick()
            if dev is None:
                conn.fail(error)
            elif service == "features":
                conn.okay(",".join(dev.features))
            elif service == "get-serialno":
                conn.okay(dev.serial)
            elif service == "get-state":
                conn.okay(dev.state)
            else:
                conn.okay("unknown")
        elif service.startswith("wait-for-"):
            self._wait_for(conn, service, ttype, serial, tid)
            return
        else:
            conn.fail("unknown host service")
        conn.orderly_close()

    def _device_list(self, long: bool) -> str:
        with self._cond:
            devices = sorted(self.devices, key=lambda d: (d.transport_type != "usb", d.serial))
        return "".join(d.listing(long) for d in devices)

    def _track_devices(self, conn: _Conn, long: bool) -> None:
        conn.send(b"OKAY")
        last = None
        while True:
            with self._cond:
                listing = self._device_list(long)
                generation = self._generation
            if listing != last:
                data = listing.encode()
                conn.send(_hex4(len(data)) + data)
                last = listing
            if conn.peer_closed(0.1):
                break
            with self._cond:
                if self._generation == generation:
                    self._cond.wait(0.1)
            if self._killed.is_set():
                break
        conn.close()

    def _wait_for(
        self, conn: _Conn, service: str, ttype: str, serial: str | None, tid: int | None
    ) -> None:
        m = re.fullmatch(r"wait-for-(usb|local|any)-(\w+)", service)
        states = {"device", "recovery", "rescue", "sideload", "bootloader", "any", "disconnect"}
        if not m or m.group(2) not in states:
            conn.fail("unknown host service")
            conn.orderly_close()
            return
        ttype, want = m.group(1), m.group(2)
        conn.send(b"OKAY")
        while not self._killed.is_set():
            dev, error, ambiguous = self._acquire(ttype, serial, tid)
            if want == "disconnect":
                if dev is None and not ambiguous:
                    conn.send(b"OKAY")
                    break
            elif dev is not None and want in ("any", dev.state):
                conn.send(b"OKAY")
                break
            if ambiguous:
                conn.fail(error)
                break
            if conn.peer_closed(0.1):
                conn.close()
                return
        conn.orderly_close()

    # -- device services --------------------------------------------------------------

    def _device_service(self, conn: _Conn, dev: EmulatedDevice, service: str) -> None:
        if service.startswith("shell"):
            args, sep, command = service[len("shell") :].partition(":")
            if not sep or (args and not args.startswith(",")):
                conn.fail("closed")
                conn.orderly_close()
                return
            use_pty = command == ""
            protocol = False
            term = "dumb"
            for arg in args.split(","):
                if arg == "raw":
                    use_pty = False
                elif arg == "pty":
                    use_pty = True
                elif arg == "v2":
                    protocol = True
                elif arg.startswith("TERM="):
                    term = arg[len("TERM=") :]
            if protocol and "shell_v2" not in dev.features:
                # An old adbd does not know this service and closes the stream.
                conn.fail("closed")
                conn.orderly_close()
                return
            self._run(conn, dev, command or None, use_pty=use_pty, protocol=protocol, term=term)
        elif service.startswith("exec:"):
            self._run(
                conn,
                dev,
                service[len("exec:") :],
                use_pty=False,
                protocol=False,
                term="dumb",
                exec_mode=True,
            )
        elif service == "sync:":
            conn.okay()
            _SyncSession(conn, dev).run()
        else:
            # adbd refuses with a CLSE before OKAY; the server reports that as "closed".
            conn.fail("closed")
            conn.orderly_close()

    def _run(
        self,
        conn: _Conn,
        dev: EmulatedDevice,
        command: str | None,
        *,
        use_pty: bool,
        protocol: bool,
        term: str,
        exec_mode: bool = False,
    ) -> None:
        conn.okay()
        try:
            proc = dev.spawn(command, use_pty=use_pty, merge_stderr=not protocol, term=term)
        except OSError as e:
            msg = f"error: {e}\n".encode()
            if protocol:
                conn.shell_packet(2, msg)
                conn.shell_packet(3, bytes([126]))
            else:
                conn.send(msg)
            conn.orderly_close()
            return
        _ShellSession(conn, proc, protocol=protocol, exec_mode=exec_mode).run()


def _parse_host_prefix(request: str) -> tuple[str, str | None, int | None, str] | None:
    """Split a host request into (transport type, serial, transport id, service)."""
    if request.startswith("host-serial:"):
        parsed = _parse_host_serial(request[len("host-serial:") :])
        if parsed is None:
            return None
        return "any", parsed[0], None, parsed[1]
    if request.startswith("host-transport-id:"):
        m = re.fullmatch(r"(\d+):(.+)", request[len("host-transport-id:") :], re.S)
        if not m:
            return None
        return "any", None, int(m.group(1)), m.group(2)
    for prefix, ttype in (("host-usb:", "usb"), ("host-local:", "local"), ("host:", "any")):
        if request.startswith(prefix):
            service = request[len(prefix) :]
            return (ttype, None, None, service) if service else None
    return None


def _parse_host_serial(rest: str) -> tuple[str, str] | None:
    """``SERIAL:command`` where SERIAL may be ``host:port``, ``[v6]:port`` or ``usb:...``."""
    m = re.fullmatch(r"((?:usb|product|model|device|localfilesystem):[^:]*):(.+)", rest, re.S)
    if m is None:
        m = re.fullmatch(r"((?:tcp:|udp:)?(?:\[[^\]]*\]|[^:]+)(?::\d+)?):(.+)", rest, re.S)
    return (m.group(1), m.group(2)) if m else None


# --------------------------------------------------------------------------------------
# shell / exec


class _ShellSession:
    """Pump a device command's stdio over a client connection.

    shell v2 (``protocol``): packets of id (1 byte), length (u32 LE), data; ids 0 stdin,
    1 stdout, 2 stderr, 3 exit, 4 close-stdin, 5 window-size. Otherwise raw bytes, stdout
    and stderr merged, and no exit status.
    """

    def __init__(self, conn: _Conn, proc: _Proc, *, protocol: bool, exec_mode: bool) -> None:
        self.conn = conn
        self.proc = proc
        self.protocol = protocol
        self.exec_mode = exec_mode
        self.finished = threading.Event()
        self.client_gone = threading.Event()

    def run(self) -> None:
        reader = threading.Thread(target=self._pump_input, name="adb-shell-stdin", daemon=True)
        reader.start()
        try:
            self._pump_output()
            status = self.proc.wait()
            # From here on a disconnect kills nothing (background jobs live on).
            self.finished.set()
            if self.protocol and not self.client_gone.is_set():
                self.conn.shell_packet(3, bytes([status]))
        except _ClientGone:
            self._client_gone()
        finally:
            self.finished.set()
            _close_fd(self.proc.stdout_fd)
            _close_fd(self.proc.stderr_fd)
        if self.client_gone.is_set():
            self.conn.close()
            # Reap the killed command without holding up this thread.
            threading.Thread(target=self.proc.popen.wait, daemon=True).start()
            return
        # Orderly shutdown: our FIN tells the client we are done; it then closes.
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_WR)
        reader.join(timeout=10)
        self.conn.close()

    def _client_gone(self) -> None:
        if not self.finished.is_set() and not self.client_gone.is_set():
            self.client_gone.set()
            log.debug("client disconnected: killing the device command")
            self.proc.kill()

    def _close_stdin(self) -> None:
        fd, self.proc.stdin_fd = self.proc.stdin_fd, None
        _close_fd(fd)

    def _write_stdin(self, data: bytes) -> None:
        if self.proc.stdin_fd is None:
            return
        try:
            _write_all(self.proc.stdin_fd, data)
        except OSError:  # EPIPE: nobody reads stdin any more
            self._close_stdin()

    def _pump_input(self) -> None:
        try:
            while True:
                if self.protocol:
                    head = self.conn.recv_exact(5)
                    packet_id, length = struct.unpack("<BI", head)
                    data = self.conn.recv_exact(length) if length else b""
                    if packet_id == 0:
                        self._write_stdin(data)
                    elif packet_id == 4 and not self.proc.is_pty:
                        self._close_stdin()
                    elif packet_id == 5 and self.proc.is_pty:
                        self._set_window_size(data)
                else:
                    try:
                        data = self.conn.sock.recv(65536)
                    except OSError as e:
                        raise _ClientGone(str(e)) from e
                    if not data:
                        raise _ClientGone("EOF")
                    self._write_stdin(data)
        except _ClientGone:
            if self.exec_mode and not self.finished.is_set():
                # exec-in half-closes after stdin; an exec-out client that dies shows up
                # as a failed send in the output pump.
                self._close_stdin()
            else:
                self._client_gone()
        finally:
            self._close_stdin()

    def _set_window_size(self, data: bytes) -> None:
        m = re.match(rb"(\d+)x(\d+),(\d+)x(\d+)", data)
        if m and self.proc.stdin_fd is not None:
            rows, cols, xpix, ypix = (int(g) for g in m.groups())
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self.proc.stdin_fd,
                    termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, xpix, ypix),
                )

    def _pump_output(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(self.proc.stdout_fd, selectors.EVENT_READ, 1)
            if self.proc.stderr_fd is not None:
                sel.register(self.proc.stderr_fd, selectors.EVENT_READ, 2)
            while sel.get_map():
                for key, _ in sel.select(timeout=0.5):
                    try:
                        data = os.read(key.fd, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:  # EIO: the pty's last writer closed
                            raise
                        data = b""
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    if self.protocol:
                        self.conn.shell_packet(key.data, data)
                    else:
                        self.conn.send(data)
                if self.client_gone.is_set():
                    raise _ClientGone("client disconnected")
        finally:
            sel.close()


# --------------------------------------------------------------------------------------
# sync


class _SyncSession:
    """The ``sync:`` service (adb push/pull/ls): requests of id (4 bytes) + u32 LE length."""

    def __init__(self, conn: _Conn, dev: EmulatedDevice) -> None:
        self.conn = conn
        self.dev = dev
        self.fs = dev.fs

    def run(self) -> None:
        try:
            while self._one():
                pass
        finally:
            self.conn.orderly_close()

    def _one(self) -> bool:
        try:
            head = self.conn.recv_exact(8)
        except _ClientGone:
            return False
        rid, length = _SYNC_MSG.unpack(head)
        if length > _SYNC_PATH_MAX:
            self.conn.sync_fail("path too long")
            return False
        path = self.conn.recv_exact(length).decode("utf-8", "surrogateescape")
        log.debug("sync %s %r", rid, path)
        features = self.dev.features
        if rid == b"STAT":
            self._stat_v1(path)
        elif rid in (b"STA2", b"LST2") and "stat_v2" in features:
            self._stat_v2(rid, path)
        elif rid == b"LIST" or (rid == b"LIS2" and "ls_v2" in features):
            self._list(path, v2=rid == b"LIS2")
        elif rid == b"SEND":
            return self._send(path)
        elif rid == b"RECV":
            return self._recv(path)
        elif rid == b"QUIT":
            return False
        else:
            self.conn.sync_fail(f"unknown command {struct.unpack('<I', rid)[0]:08x}")
            return False
        return True

    def _lstat(self, path: str, follow: bool) -> os.stat_result:
        _, host = self.fs.resolve(path, follow_last=follow)
        return os.stat(host) if follow else os.lstat(host)

    def _stat_v1(self, path: str) -> None:
        try:
            st = self._lstat(path, follow=False)
            values = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime) & 0xFFFFFFFF)
        except OSError:
            values = (0, 0, 0)  # v1 cannot say why; the client reports "does not exist"
        self.conn.send(_STAT_V1.pack(b"STAT", *values))

    def _stat_v2(self, rid: bytes, path: str) -> None:
        try:
            st = self._lstat(path, follow=rid == b"STA2")
        except OSError as e:
            self.conn.send(_STAT_V2.pack(rid, e.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        self.conn.send(_STAT_V2.pack(rid, 0, *_stat_fields(st)))

    def _list(self, path: str, v2: bool) -> None:
        try:
            _, host = self.fs.resolve(path)
            names = [".", "..", *sorted(os.listdir(host))]
        except OSError:
            names, host = [], ""
        for name in names:
            try:
                st = os.lstat(os.path.join(host, name))
            except OSError as e:
                if not v2:
                    continue
                head = _DENT_V2.pack(b"DNT2", e.errno or errno.EIO, *([0] * 10), 0)
            else:
                if v2:
                    head = _DENT_V2.pack(b"DNT2", 0, *_stat_fields(st), 0)
                else:
                    head = _DENT_V1.pack(
                        b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), 0
                    )
            raw = name.encode("utf-8", "surrogateescape")
            self.conn.send(head[:-4] + struct.pack("<I", len(raw)) + raw)
        done = _DENT_V2.pack(b"DONE", *([0] * 12)) if v2 else _DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        self.conn.send(done)

    def _send(self, spec: str) -> bool:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            self.conn.sync_fail("missing , in ID_SEND")
            return False
        try:
            mode = int(mode_text, 8) if re.fullmatch(r"0[0-7]+", mode_text) else int(mode_text, 0)
        except ValueError:
            self.conn.sync_fail("bad mode")
            return False
        try:
            device_path, host = self.fs.resolve(path, follow_last=False)
        except OSError as e:
            return self._send_failed(f"couldn't create file: {e.strerror}", None)
        if not self.fs.writable(device_path) or device_path in _WRITABLE_PREFIXES:
            return self._send_failed(f"couldn't create file: {_strerror(errno.EROFS)}", None)
        if stat.S_ISLNK(mode):
            return self._send_link(device_path, host)
        # adbd unlinks regular files and symlinks first (not device nodes or fifos).
        try:
            st = os.lstat(host)
            unlink = stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
        except OSError:
            unlink = True
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(host)
        mode &= 0o777
        mode |= (mode >> 3) & 0o070
        mode |= (mode >> 3) & 0o007
        try:
            fd = self._open_for_send(device_path, host, mode)
        except _SendError as e:
            return self._send_failed(str(e), host if unlink else None)
        try:
            while True:
                rid, size = _SYNC_MSG.unpack(self.conn.recv_exact(8))
                if rid == b"DONE":
                    timestamp = size
                    break
                if rid != b"DATA":
                    self.conn.sync_fail("invalid data message")
                    self._unlink(host if unlink else None)
                    return False
                if size > SYNC_DATA_MAX:
                    self.conn.sync_fail("oversize data message")
                    self._unlink(host if unlink else None)
                    return False
                data = self.conn.recv_exact(size)
                try:
                    _write_all(fd, data)
                except OSError as e:
                    return self._send_failed(
                        f"write failed: {e.strerror}", host if unlink else None
                    )
        except _ClientGone:
            self._unlink(host if unlink else None)  # no half-written files, as adbd
            raise
        finally:
            _close_fd(fd)
        with contextlib.suppress(OSError):
            os.utime(host, (timestamp, timestamp), follow_symlinks=False)
        self.conn.send(_SYNC_MSG.pack(b"OKAY", 0))
        return True

    def _open_for_send(self, device_path: str, host: str, mode: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(host, flags, mode)
        except FileNotFoundError:
            try:
                self._mkdirs(posixpath.dirname(device_path))
            except OSError as e:
                raise _SendError(f"secure_mkdirs failed: {e.strerror}") from e
            try:
                fd = os.open(host, flags, mode)
            except OSError as e:
                raise _SendError(f"couldn't create file: {e.strerror}") from e
        except FileExistsError:
            try:
                fd = os.open(host, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as e:
                raise _SendError(f"couldn't create file: {e.strerror}") from e
        except OSError as e:
            raise _SendError(f"couldn't create file: {e.strerror}") from e
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
        return fd

    def _mkdirs(self, device_dir: str) -> None:
        """Create the missing directories of a device path (mode 0775, like adbd)."""
        cur = "/"
        for name in [c for c in device_dir.split("/") if c]:
            cur = posixpath.join(cur, name)
            host = self.fs.host(cur)
            if os.path.isdir(host):
                continue
            if not self.fs.writable(cur):
                raise OSError(errno.EROFS, _strerror(errno.EROFS), cur)
            os.mkdir(host, 0o775)

    def _send_link(self, device_path: str, host: str) -> bool:
        rid, size = _SYNC_MSG.unpack(self.conn.recv_exact(8))
        if rid != b"DATA":
            self.conn.sync_fail("invalid data message: expected ID_DATA")
            return False
        if size > SYNC_DATA_MAX:
            self.conn.sync_fail("oversize data message")
            return False
        target = self.conn.recv_exact(size).rstrip(b"\0")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host)
            try:
                os.symlink(target, host)
            except FileNotFoundError:
                self._mkdirs(posixpath.dirname(device_path))
                os.symlink(target, host)
        except OSError as e:
            self.conn.sync_fail(f"symlink failed: {e.strerror}")
            return False
        rid, timestamp = _SYNC_MSG.unpack(self.conn.recv_exact(8))
        if rid != b"DONE":
            self.conn.sync_fail("invalid data message: expected ID_DONE")
            return False
        with contextlib.suppress(OSError):
            os.utime(host, (timestamp, timestamp), follow_symlinks=False)
        self.conn.send(_SYNC_MSG.pack(b"OKAY", 0))
        return True

    def _send_failed(self, message: str, unlink: str | None) -> bool:
        """Report FAIL, then swallow the DATA the client keeps sending until DONE (as adbd)."""
        self.conn.sync_fail(message)
        with contextlib.suppress(_ClientGone):
            while True:
                rid, size = _SYNC_MSG.unpack(self.conn.recv_exact(8))
                if rid != b"DATA" or size > SYNC_DATA_MAX:
                    break
                self.conn.recv_exact(size)
        self._unlink(unlink)
        return False

    @staticmethod
    def _unlink(host: str | None) -> None:
        if host:
            with contextlib.suppress(OSError):
                os.unlink(host)

    def _recv(self, path: str) -> bool:
        try:
            _, host = self.fs.resolve(path)
            if os.path.isdir(host):
                raise IsADirectoryError(errno.EISDIR, _strerror(errno.EISDIR))
            f = open(host, "rb")  # noqa: SIM115 - closed below
        except IsADirectoryError as e:
            self.conn.sync_fail(f"read failed: {e.strerror}")
            return False
        except OSError as e:
            self.conn.sync_fail(f"open failed: {e.strerror}")
            return False
        with f:
            while True:
                try:
                    data = f.read(SYNC_DATA_MAX - _SYNC_MSG.size)
                except OSError as e:
                    self.conn.sync_fail(f"read failed: {e.strerror}")
                    return False
                if not data:
                    break
                self.conn.send(_SYNC_MSG.pack(b"DATA", len(data)) + data)
        self.conn.send(_SYNC_MSG.pack(b"DONE", 0))
        return True


class _SendError(Exception):
    pass


def _stat_fields(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_dev,
        st.st_ino,
        st.st_mode,
        st.st_nlink & 0xFFFFFFFF,
        st.st_uid,
        st.st_gid,
        st.st_size,
        int(st.st_atime),
        int(st.st_mtime),
        int(st.st_ctime),
    )


# --------------------------------------------------------------------------------------
# command line


def _specs_from_args(args: argparse.Namespace) -> list[DeviceSpec]:
    return [
        DeviceSpec(
            serial=_nth_serial(args.serial, i),
            state=args.state,
            shell_v2=not args.no_shell_v2,
            cwd=args.cwd,
        )
        for i in range(args.devices)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.adb_device",
        description="Serve an emulated adb server with emulated devices (for the real adb client).",
    )
    parser.add_argument("--root", type=Path, required=True, help="sandbox that plays the phone's /")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--serial", default=DEFAULT_SERIAL, help="serial of the first device")
    parser.add_argument(
        "--no-shell-v2", action="store_true", help="legacy device: shell: loses the exit status"
    )
    parser.add_argument("--state", choices=DEVICE_STATES, default="device")
    parser.add_argument("--devices", type=int, default=1, help="number of attached devices")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="auto")
    parser.add_argument("--cwd", default="/", help="working directory of device shells")
    parser.add_argument(
        "--exit-on-kill", action="store_true", help="quit on host:kill like a real server"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    if args.devices < 0:
        parser.error("--devices must be >= 0")
    emu = EmulatedAdbServer(
        args.root,
        args.port,
        _specs_from_args(args),
        isolation=args.isolation,
        exit_on_kill=args.exit_on_kill,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with emu:
        print(
            f"emulated adb server listening on 127.0.0.1:{emu.port}\n"
            f"  try: adb -P {emu.port} devices -l   (or ANDROID_ADB_SERVER_PORT={emu.port})",
            flush=True,
        )
        while not stop.is_set() and not emu.wait_killed(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
