"""The `adb` target: an Android device reached through the real `adb` client.

Every primitive is one `adb` client process (argv lists, never a host shell): `devices`
and `features` to pick and check the device, `shell` for commands, `push`/`pull` for
files. The client's own environment is honoured: `ANDROID_SERIAL` picks the device when
the target names none, `ANDROID_ADB_SERVER_PORT` the server port when `adb_port` is unset.

Exit codes: devices with the `shell_v2` feature (Android 7+) return the command's status
through `adb shell`. Older ones do not (`adb shell` always exits 0 and merges stderr into
stdout), so there the command runs inside `sh -c` with its stderr sent to a temporary
file, and a sentinel line that only this target knows carries the status back; the
output is split and the sentinel removed before anyone sees it.

`adb shell` joins its arguments with spaces and the device shell parses the result
again, so commands are passed as ONE string already quoted for a POSIX shell (Android's
mksh and toybox sh both honour single quotes).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import (
    AuthError,
    CommandError,
    CommandTimeout,
    ConnectError,
    DeviceError,
    EdgeqError,
    tail,
)
from ..fields import Field, f
from . import _process, register
from .base import CommandResult, Target

DEFAULT_SERVER_PORT = 5037
PLATFORM_TOOLS_URL = "https://developer.android.com/tools/releases/platform-tools"
#: How long host-side requests (`devices`, `features`) may take: a local server that is
#: not running yet is started by the client first, which takes a few seconds.
HOST_REQUEST_TIMEOUT = 45.0
TRANSFER_TIMEOUT = 900.0


@dataclass(frozen=True)
class AttachedDevice:
    """One line of `adb devices`."""

    serial: str
    state: str


@register
class AdbTarget(Target):
    """An Android device through the real `adb` client."""

    transport = "adb"
    platform = "android"
    transfer_method = "adb"
    default_workdir_base = "/data/local/tmp/edgeq"
    fields: ClassVar[dict[str, Field]] = {
        "serial": f(str, "", "device serial (default: $ANDROID_SERIAL, or the only device)"),
        "adb_host": f(str, "", "host of the adb server (default: localhost)"),
        "adb_port": f(
            int,
            0,
            "port of the adb server (default: $ANDROID_ADB_SERVER_PORT/5037)",
            minimum=0,
            maximum=65535,
        ),
        "adb_path": f(str, "adb", "the adb client executable"),
    }

    def __init__(self, config, keep: bool = False) -> None:
        super().__init__(config, keep)
        self._serial: str | None = None
        self._features: frozenset[str] | None = None
        token = uuid.uuid4().hex[:16]
        self._sentinel = f"__edgeq_status_{token}__"
        self._errfile = f"${{TMPDIR:-/data/local/tmp}}/.edgeq-stderr-{token}-$$"

    # ------------------------------------------------------------------ description

    @property
    def adb_path(self) -> str:
        return self.config.get("adb_path") or "adb"

    @property
    def server_host(self) -> str:
        return self.config.get("adb_host") or ""

    @property
    def server_port(self) -> int:
        """The configured port, else $ANDROID_ADB_SERVER_PORT, else adb's default 5037."""
        port = self.config.get("adb_port") or 0
        if port:
            return int(port)
        env = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
        return int(env) if env.isdigit() else DEFAULT_SERVER_PORT

    def server_address(self) -> str:
        socket_spec = os.environ.get("ADB_SERVER_SOCKET")
        if socket_spec and not (self.server_host or self.config.get("adb_port")):
            return socket_spec
        return f"{self.server_host or 'localhost'}:{self.server_port}"

    @property
    def serial(self) -> str | None:
        """The device in use: resolved on open, else the configured or $ANDROID_SERIAL one."""
        return self._serial or self.config.get("serial") or os.environ.get("ANDROID_SERIAL")

    @property
    def shell_v2(self) -> bool:
        """Whether the device propagates exit codes itself (known once open)."""
        return bool(self._features and "shell_v2" in self._features)

    @property
    def features(self) -> frozenset[str]:
        return self._features or frozenset()

    def describe(self) -> str:
        who = self.serial or "the only attached device"
        return f"{who} via adb server {self.server_address()}"

    def pace_key(self) -> str:
        """Connects through one adb server are paced together (`pacing`)."""
        return f"adb://{self.server_address()}"

    def identity(self) -> str:
        server = f"{self.server_host or 'localhost'}:{self.config.get('adb_port') or 5037}"
        return f"adb://{server}/{self.config.get('serial') or '(only device)'}"

    # ------------------------------------------------------------------ the adb client

    def _executable(self) -> str:
        path = self.adb_path
        found = shutil.which(path)
        if found is None:
            raise ConnectError(
                f"{self.name}: the adb client {path!r} was not found; install it "
                f"(Debian/Ubuntu: sudo apt-get install adb; macOS: brew install "
                f"android-platform-tools; or Android SDK Platform-Tools from "
                f"{PLATFORM_TOOLS_URL}) or set adb_path in {self.config.where}"
            )
        return found

    def adb_argv(self, *args: str, with_serial: bool = True) -> list[str]:
        """The client's argv: `adb [-H host] [-P port] [-s serial] args...`."""
        argv = [self._executable()]
        if self.server_host:
            argv += ["-H", self.server_host]
        if self.config.get("adb_port"):
            argv += ["-P", str(int(self.config["adb_port"]))]
        if with_serial and self._serial:
            argv += ["-s", self._serial]
        return argv + list(args)

    def _timed_out(self, what: str, timeout: float | None, command: str = "") -> CommandTimeout:
        return CommandTimeout(
            f"{self.name}: {what} did not finish within {timeout:g} s on {self._where()} and "
            f"was stopped; raise --timeout or lower --runs/--min-s",
            command=command,
        )

    def _where(self) -> str:
        """The device, for messages."""
        return self.serial or "the device"

    def _adb(
        self, *args: str, timeout: float | None, with_serial: bool = True, what: str = ""
    ) -> _process.Completed:
        """Run the adb client once; a timeout or Ctrl-C kills it (and its session)."""
        argv = self.adb_argv(*args, with_serial=with_serial)
        if self.io_timeout is not None:  # the command's --timeout bounds every adb call
            timeout = min(timeout, self.io_timeout) if timeout is not None else self.io_timeout
        return self._run_client(argv, timeout, what or f"adb {args[0]}")

    def _run_client(self, argv: list[str], timeout: float | None, what: str) -> _process.Completed:
        """One adb client process on this host (its own session, killed on timeout)."""
        try:
            return _process.run(argv, timeout)
        except OSError as exc:
            raise ConnectError(
                f"{self.name}: cannot run the adb client {argv[0]} ({exc.strerror or exc}); "
                f"reinstall it or fix adb_path in {self.config.where}"
            ) from None
        except _process.TimedOut:
            raise self._timed_out(what, timeout, " ".join(argv)) from None

    # ------------------------------------------------------------------ errors

    def _translate(self, text: str) -> DeviceError | None:
        """edgeq's error for one of the adb client's own failure messages, or None."""
        msg = " ".join(text.split())
        who = self.serial or "the device"
        addr = self.server_address()
        if "cannot connect to daemon" in msg or "cannot start server on remote host" in msg:
            reason = re.search(r"failed to connect to '[^']*': ([^*]+?)(?: \*|$)", msg)
            why = reason.group(1).strip() if reason else "no answer"
            return ConnectError(
                f"{self.name}: cannot reach the adb server at {addr} ({why}); start it there "
                f"(`adb -a -P {self.server_port} server nodaemon`) or fix adb_host/adb_port in "
                f"{self.config.where} (or $ANDROID_ADB_SERVER_PORT)"
            )
        if "no devices/emulators found" in msg or "no devices found" in msg:
            return self._no_device_error()
        if "more than one device" in msg or "more than one emulator" in msg:
            return ConnectError(
                f"{self.name}: more than one device is attached to the adb server at {addr}; "
                f'choose one with serial = "..." in {self.config.where} or $ANDROID_SERIAL '
                f"(see `adb devices`)"
            )
        if "device unauthorized" in msg:
            return self._refusal("unauthorized", who)
        if "device offline" in msg:
            return self._refusal("offline", who)
        m = re.search(r"device '([^']*)' not found", msg)
        if m:
            return ConnectError(
                f"{self.name}: device {m.group(1)!r} is not attached to the adb server at "
                f"{addr} (unplugged or rebooting?); check `adb devices` and serial in "
                f"{self.config.where}"
            )
        if "insufficient permissions" in msg or "no permissions" in msg:
            return self._refusal("permission", who)
        if re.search(r"error: (closed|protocol fault)", msg):
            return ConnectError(
                f"{self.name}: the adb connection to {who} was lost ({tail(text, 1)}); check "
                f"the cable and `adb devices`, then retry"
            )
        return None

    #: what each adb refusal means, and the fix: (error class, message after "NAME: ")
    _REFUSALS: ClassVar[dict[str, tuple[type[EdgeqError], str]]] = {
        "offline": (
            ConnectError,
            "device {serial} is offline; reconnect the cable (or run `adb reconnect offline`), "
            "wait until `adb devices` shows it as 'device'",
        ),
        "unauthorized": (
            AuthError,
            "device {serial} has not authorized this computer; unlock the phone and accept the "
            "RSA key prompt 'Allow USB debugging?' (no prompt? Developer options > Revoke USB "
            "debugging authorizations, then replug)",
        ),
        "permission": (
            ConnectError,
            "no permission to open the USB device {serial}; install udev rules (Debian: sudo "
            "apt-get install android-sdk-platform-tools-common), replug, and restart the server "
            "as your user (`adb kill-server; adb devices`)",
        ),
    }

    def _refusal(self, kind: str, serial: str) -> EdgeqError:
        cls, text = self._REFUSALS[kind]
        return cls(f"{self.name}: " + text.format(serial=serial))

    def _no_device_error(self) -> ConnectError:
        return ConnectError(
            f"{self.name}: no Android device is attached to the adb server at "
            f"{self.server_address()}; plug the phone in with USB debugging enabled "
            f"(Settings > Developer options) and check `adb devices`"
        )

    # ------------------------------------------------------------------ connection

    def list_devices(self) -> list[AttachedDevice]:
        """`adb devices`: every device the server knows, in any state."""
        res = self._adb("devices", timeout=HOST_REQUEST_TIMEOUT, with_serial=False)
        if res.code != 0:
            raise self._translate(res.stderr + res.stdout) or ConnectError(
                f"{self.name}: `adb devices` failed (exit {res.code}): "
                f"{tail(res.stderr or res.stdout)}"
            )
        found = []
        for line in res.stdout.splitlines():
            if "\t" not in line or line.startswith(("*", "List of devices")):
                continue
            serial, state = line.split("\t", 1)
            found.append(AttachedDevice(serial.strip(), state.strip()))
        return found

    def _connect(self) -> None:
        devices = self.list_devices()
        wanted = self.config.get("serial") or os.environ.get("ANDROID_SERIAL") or ""
        listing = ", ".join(f"{d.serial} ({d.state})" for d in devices)
        if wanted:
            match = [d for d in devices if d.serial == wanted]
            if not match:
                raise ConnectError(
                    f"{self.name}: device {wanted!r} is not attached to the adb server at "
                    f"{self.server_address()} (attached: {listing or 'none'}); check serial in "
                    f"{self.config.where} / $ANDROID_SERIAL and `adb devices`"
                )
            device = match[0]
        elif not devices:
            raise self._no_device_error()
        elif len(devices) > 1:
            raise ConnectError(
                f"{self.name}: {len(devices)} devices are attached ({listing}) and none is "
                f'chosen; set serial = "SERIAL" in {self.config.where} or $ANDROID_SERIAL'
            )
        else:
            device = devices[0]
        if device.state == "unauthorized":
            raise self._refusal("unauthorized", device.serial)
        if device.state == "offline":
            raise self._refusal("offline", device.serial)
        if device.state.startswith("no permissions"):
            raise self._refusal("permission", device.serial)
        if device.state != "device":
            raise ConnectError(
                f"{self.name}: device {device.serial} is in state {device.state!r}, not "
                f"'device'; boot it normally and wait until `adb devices` shows 'device'"
            )
        self._serial = device.serial
        res = self._adb("features", timeout=HOST_REQUEST_TIMEOUT)
        if res.code != 0:
            raise self._translate(res.stderr + res.stdout) or ConnectError(
                f"{self.name}: `adb features` failed (exit {res.code}): "
                f"{tail(res.stderr or res.stdout)}"
            )
        self._features = frozenset(f.strip() for f in re.split(r"[,\s]+", res.stdout) if f)

    def _disconnect(self) -> None:
        self._features = None  # the serial stays, for describe() in reports

    # ------------------------------------------------------------------ primitives

    def _env_prefix(self) -> str:
        env = self.config.get("env") or {}
        return "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in env.items())

    def _legacy_wrap(self, command: str) -> str:
        """Run `command` so that its stderr and exit status survive a legacy `shell:`.

        Only `sh`, `echo`, `cat` and `rm`: old phones' toolbox has no `printf`.
        """
        s = self._sentinel
        return (
            f'e={self._errfile}; sh -c {shlex.quote(command)} 2>"$e"; s=$?; '
            f'echo; echo {s}E; cat "$e" 2>/dev/null; rm -f "$e"; echo; echo "{s}X$s"'
        )

    def _legacy_split(self, raw: str) -> tuple[str, str, int] | None:
        """(stdout, stderr, status) from a legacy wrapper's output, None if it was cut."""
        text = raw.replace("\r\n", "\n")  # pre-N adbd ran commands on a pty
        s = self._sentinel
        m = re.search(rf"\n{s}X(\d+)\n?$", text)
        if not m:
            return None
        body = text[: m.start()]
        cut = body.rfind(f"\n{s}E\n")
        if cut < 0:
            return None
        return body[:cut], body[cut + len(s) + 3 :], int(m.group(1))

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        if self._features is None:
            raise ConnectError(f"{self.name}: not connected; call open() first")
        full = self._env_prefix() + command
        t0 = time.perf_counter()
        if self.shell_v2:
            res = self._adb("shell", full, timeout=timeout, what="the command")
            if res.code != 0 and not res.stdout and res.stderr.lstrip().startswith("error:"):
                translated = self._translate(res.stderr)
                if translated is not None:
                    raise translated
            return CommandResult(
                command, res.code, res.stdout, res.stderr, time.perf_counter() - t0, res.dropped
            )
        res = self._adb("shell", self._legacy_wrap(full), timeout=timeout, what="the command")
        split = self._legacy_split(res.stdout)
        if split is None:
            raise self._translate(res.stderr + res.stdout) or ConnectError(
                f"{self.name}: the command's output from {self._serial} ended early (adb exit "
                f"{res.code}, no status line); the connection was lost — check `adb devices`"
                + (f" — {tail(res.stderr)}" if res.stderr.strip() else "")
            )
        out, err, status = split
        return CommandResult(command, status, out, err, time.perf_counter() - t0, res.dropped)

    def _transfer_failed(self, res: _process.Completed, what: str) -> DeviceError:
        text = (res.stdout + "\n" + res.stderr).strip()
        translated = self._translate(text)
        if translated is not None:
            return translated
        return CommandError(
            f"{self.name}: {what} failed: {tail(text, 2) or f'adb exit {res.code}'}",
            exit_code=res.code,
            stdout=res.stdout,
            stderr=res.stderr,
        )

    def _put(self, local: Path, remote: str) -> None:
        if self._features is None:
            raise ConnectError(f"{self.name}: not connected; call open() first")
        res = self._adb(
            "push", str(local), remote, timeout=TRANSFER_TIMEOUT, what=f"adb push {local.name}"
        )
        if res.code != 0:
            raise self._transfer_failed(res, f"adb push of {local.name} to {remote}")

    def _get(self, remote: str, local: Path) -> None:
        if self._features is None:
            raise ConnectError(f"{self.name}: not connected; call open() first")
        res = self._adb("pull", remote, str(local), timeout=TRANSFER_TIMEOUT, what="adb pull")
        if res.code != 0:
            text = res.stdout + res.stderr
            if "does not exist" in text or "No such file" in text:
                raise CommandError(f"{self.name}: no such file on the device: {remote}")
            raise self._transfer_failed(res, f"adb pull of {remote}")
