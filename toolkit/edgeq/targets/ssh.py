"""The `ssh` target: a Raspberry Pi (or any Linux box) reached with Fabric.

Host keys are verified against a known_hosts file; an unknown key is refused unless the
target says `accept_new_host_key = true` (then it is recorded, like OpenSSH's accept-new).
~/.ssh/config is not read: the target's own keys say where and how to connect. A password
login takes the password from the environment variable named by `password_env`; it is
never in a file, and never printed.

Files travel over SFTP when the server offers it. Many do not (dropbear, minimal images
without sftp-server): with `transfer = "auto"` (the default) edgeq then streams them over
the exec channel instead — `cat > tmp` on the device, the size checked there (and the
sha256, by `ensure_file`) before the file is renamed into place; results come back with
`cat`. `transfer = "sftp"` or `"exec"` forces one. The result records which was used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from .. import interrupts
from ..errors import (
    AuthError,
    CommandError,
    CommandTimeout,
    ConnectError,
    DeviceError,
    HostKeyError,
    tail,
)
from ..fields import Field, f
from . import hostkeys, pacing, register, sshquiet
from ._process import Capped
from .base import CommandResult, Target

#: Seconds a file transfer may take.
TRANSFER_TIMEOUT = 900.0
#: The longest silence tolerated on a connection (shorter when the command's --timeout or
#: the device's timeout_s is): a live sshd answers a keepalive within a second.
SILENCE_MAX_S = 120.0
#: Seconds a command's reader waits for the exit status after the end of the output.
DRAIN_POLL_S = 0.5
#: Seconds a command's reader waits for output at most before it looks again (it wakes at
#: once for output, the end of it, a closed connection, a stop request — `interrupts.STOP`
#: is select()-able — and at the command's timeout). Each wait that runs out is a thread
#: wake-up while the device works: 0.1 s made a lab of N devices wake 10 N times a second,
#: and at 0.5 s a device-run at N = 256 (a minute of wall time) still woke ~120 times.
DRAIN_WAIT_S = 5.0
NO_SFTP = "has no SFTP subsystem (common with dropbear and minimal images)"


def q(value: object) -> str:
    """A value as one shell word, for the commands edgeq prints (to be pasted)."""
    return shlex.quote(str(value))


def fingerprint(key) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key (`ssh-keygen -lf` prints the same)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _key_file_kind(key_name: str) -> str:
    """The host key file's kind for a key type: ssh-ed25519 → ed25519, ecdsa-… → ecdsa."""
    if "ed25519" in key_name:
        return "ed25519"
    if key_name.startswith("ecdsa"):
        return "ecdsa"
    return "rsa"


@register
class SshTarget(Target):
    """A Raspberry Pi (or any POSIX box) over SSH."""

    transport = "ssh"
    default_workdir_base = "/tmp"
    fields: ClassVar[dict[str, Field]] = {
        "host": f(str, "", "device hostname or IP address", True),
        "port": f(int, 22, "SSH port", minimum=1, maximum=65535),
        "user": f(str, "", "login user (default: your local user name)"),
        "key_file": f(str, "", "private key file (default: ssh-agent and ~/.ssh keys)"),
        "known_hosts": f(str, "~/.ssh/known_hosts", "known_hosts file used to verify the host"),
        "accept_new_host_key": f(
            bool, False, "trust and record a host key seen for the first time"
        ),
        "connect_timeout": f(
            (int, float), 10, "seconds to wait for the SSH connection", minimum=0, exclusive=True
        ),
        "password_env": f(
            str, "", "environment variable holding the password for a password login"
        ),
        "transfer": f(
            str,
            "auto",
            "how files travel: auto (SFTP, else the exec channel), sftp, exec",
            choices=("auto", "sftp", "exec"),
        ),
    }
    path_fields = ("key_file", "known_hosts")

    def __init__(self, config, keep: bool = False) -> None:
        super().__init__(config, keep)
        self._conn = None
        self._sftp = None
        self._watchdog = None

    # ------------------------------------------------------------------ connection

    @property
    def host(self) -> str:
        return self.config["host"]

    @property
    def port(self) -> int:
        return int(self.config.get("port") or 22)

    @property
    def user(self) -> str:
        import getpass

        return self.config.get("user") or getpass.getuser()

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def identity(self) -> str:
        return f"ssh://{self.describe()}"

    def pace_key(self) -> str:
        """Handshakes with one sshd (host and port) are paced together (`pacing`)."""
        return f"ssh://{self.host}:{self.port}"

    def _host_label(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _connect(self) -> None:
        import paramiko
        from fabric import Config, Connection

        from ._watch import Watchdog, WatchedSocket

        key_file = self.config.get("key_file")
        limit = self.silence_limit
        kwargs: dict = {
            "banner_timeout": min(30.0, limit),
            "auth_timeout": min(30.0, limit),
            "channel_timeout": min(30.0, limit),
        }
        if key_file:
            key_path = Path(key_file).expanduser()
            if not key_path.is_file():
                raise AuthError(
                    f"{self.name}: key_file {key_path} does not exist; fix key_file in "
                    f"{self.config.where} or create a key with ssh-keygen -t ed25519"
                )
            kwargs.update(key_filename=[str(key_path)], look_for_keys=False, allow_agent=False)
        password, password_from = self._password()
        if password:
            kwargs["password"] = password
        cfg = Config(overrides={"load_ssh_configs": False})
        conn = Connection(
            self.host,
            user=self.user,
            port=self.port,
            config=cfg,
            connect_timeout=self.config.get("connect_timeout") or 10,
            connect_kwargs=kwargs,
        )
        known = Path(self.config.get("known_hosts") or "~/.ssh/known_hosts").expanduser()
        accept_new = bool(self.config.get("accept_new_host_key"))
        if accept_new and not known.exists():
            known.parent.mkdir(parents=True, exist_ok=True)
            known.touch(mode=0o600)
        if known.exists():
            # parsed once per process; a client that only checks gets its host's entries
            server = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            hostkeys.load_into(conn.client, known, None if accept_new else server)
        conn.client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if accept_new else paramiko.RejectPolicy()
        )
        sock = None
        try:
            sock = WatchedSocket.connect(self.host, self.port, conn.connect_timeout)
            conn.connect_kwargs["sock"] = sock
            # the handshake is CPU work of this host: bounded over all devices (`pacing`);
            # the TCP connect above is not (a powered-off device must not hold a slot)
            with pacing.SETUPS.slot(pacing.ALL, interrupts.STOP):
                conn.open()
        except paramiko.BadHostKeyException as exc:
            got, kind = fingerprint(exc.key), _key_file_kind(exc.key.get_name())
            label = self._host_label()
            raise HostKeyError(
                f"{self.name}: the host key of {label} does NOT match {known}: it offers "
                f"{exc.key.get_name()} {got}, {known} has {fingerprint(exc.expected_key)} "
                f"(the device was reinstalled, or someone is in the middle). Verify on the "
                f"device itself (its console, not over this network): `ssh-keygen -lf "
                f"/etc/ssh/ssh_host_{kind}_key.pub` must print {got}; only then replace the "
                f"old key: ssh-keygen -f {q(known)} -R {q(label)} && ssh-keyscan -p "
                f"{self.port} {q(self.host)} >> {q(known)}",
                details={"offered": got, "expected": fingerprint(exc.expected_key)},
            ) from None
        except paramiko.AuthenticationException as exc:
            if password:
                raise AuthError(
                    f"{self.name}: {self.describe()} refused the password from "
                    f"{password_from} ({exc}); check the variable's value, or use a key: "
                    f"ssh-copy-id -p {self.port} {q(f'{self.user}@{self.host}')}"
                ) from None
            how = f"key {key_file}" if key_file else "your ssh-agent/~/.ssh keys"
            raise AuthError(
                f"{self.name}: {self.describe()} refused {how} ({exc}); install the public key "
                f"on the device: ssh-copy-id -i "
                f"{q(key_file + '.pub') if key_file else '~/.ssh/id_ed25519.pub'} "
                f"-p {self.port} {q(f'{self.user}@{self.host}')}"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(
                    f"{self.name}: unknown host key for {self._host_label()} (not in {known}); "
                    f"after checking it, set accept_new_host_key = true in "
                    f"{self.config.where} or run: ssh-keyscan -p {self.port} {q(self.host)} "
                    f">> {q(known)}"
                ) from None
            raise ConnectError(
                f"{self.name}: SSH handshake with {self._host_label()} failed: {exc}"
            ) from None
        except socket.gaierror:
            raise ConnectError(
                f"{self.name}: could not resolve host {self.host!r}; check host in "
                f"{self.config.where}"
            ) from None
        except TimeoutError:
            raise ConnectError(
                f"{self.name}: timed out after {conn.connect_timeout} s connecting to "
                f"{self._host_label()}; is the device on and reachable?"
            ) from None
        except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionError, OSError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise ConnectError(
                f"{self.name}: cannot connect to {self._host_label()} ({reason}); is sshd "
                f"running there and is port = {self.port} right?"
            ) from None
        finally:
            if sock is not None and conn.transport is None:
                sock.close()
        sshquiet.quiet(conn.transport)  # an idle connection wakes every 5 s, not 10 times a second
        self._conn = conn
        self._watchdog = Watchdog(sock, conn.transport, limit)
        self._watchdog.start()

    @property
    def silence_limit(self) -> float:
        """Seconds of silence after which the connection is given up."""
        return min(self.io_timeout or SILENCE_MAX_S, SILENCE_MAX_S)

    def _silent_error(self) -> ConnectError | None:
        """The error for a connection the watchdog cut for silence (None: it did not)."""
        dog = self._watchdog
        if dog is None or dog.cut_after is None:
            return None
        return ConnectError(
            f"{self.name}: no data from {self._host_label()} for {dog.cut_after:.0f} s during "
            f"{self.phase}; the link went silent (the device left the network, or a NAT or "
            f"firewall forgot the connection) — check its network and run again",
            details={"silent_s": round(dog.cut_after, 1), "phase": self.phase},
        )

    def _guarded(self, fn, *args):
        """Run a primitive; a failure caused by a cut silent link becomes that error."""
        import paramiko

        try:
            return fn(*args)
        except (DeviceError, OSError, EOFError, paramiko.SSHException) as exc:
            silent = self._silent_error()
            if silent is not None:
                raise silent from None
            if isinstance(exc, DeviceError):
                raise
            raise self._lost(exc) from None

    def _password(self) -> tuple[str, str]:
        """(password, where it came from) — the environment variable `password_env`
        names (the lab fills `password` in from its own `password_env`); ("", "") if none."""
        if self.config.get("password"):
            return self.config["password"], "password_env"
        var = self.config.get("password_env")
        if not var:
            return "", ""
        value = os.environ.get(var)
        if value is None:
            raise AuthError(
                f"{self.name}: environment variable {var} (password_env in "
                f"{self.config.where}) is not set; export it before running edgeq"
            )
        return value, f"${var}"

    def _disconnect(self) -> None:
        self._sftp = None
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    # ------------------------------------------------------------------ primitives

    def _env_prefix(self) -> str:
        env = self.config.get("env") or {}
        return "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in env.items())

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(f"{self.name}: connection to {self._host_label()} lost ({exc})")

    def _channel(self, command: str):
        """A fresh session channel running `command`."""
        import paramiko

        assert self._conn is not None, "call open() first"
        try:
            chan = self._conn.transport.open_session(timeout=min(30.0, self.silence_limit))
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
            raise self._lost(exc) from None
        return chan

    def _drain(
        self,
        chan,
        command: str,
        timeout: float | None,
        t0: float,
        out: Callable[[bytes], None],
        err: Capped,
        partial: Callable[[], str] = lambda: "",
    ) -> int:
        """Read a channel to its end (stdout to `out`, stderr to `err`); its exit status.

        Polls, so a timeout or a stop signal (Ctrl-C, SIGTERM) ends the wait at once."""
        import paramiko

        try:
            while True:
                got = False
                while chan.recv_ready():
                    out(chan.recv(65536))
                    got = True
                while chan.recv_stderr_ready():
                    err.add(chan.recv_stderr(65536))
                    got = True
                # done when the status is in AND stdout reached its end: sshd may send the
                # exit status before the last of the output (a busy host makes it likely)
                if (
                    chan.exit_status_ready()
                    and chan.eof_received
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
                if chan.closed and not got:
                    break
                interrupts.check()
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    raise CommandTimeout(
                        f"{self.name}: command did not finish within {timeout:g} s on "
                        f"{self._host_label()} and was stopped; raise --timeout or lower "
                        f"--runs/--min-s",
                        command=command,
                        stdout=partial(),
                        stderr=err.text(),
                    )
                if got:
                    continue
                if chan.eof_received:
                    # after EOF, paramiko keeps the channel's pipe readable for good, so a
                    # select would return at once until the exit status arrives: a busy
                    # loop, as long as a loaded host takes to reap the command (measured:
                    # 400 000 selects, 1 s of CPU for a 1 s gap). Wait for the status.
                    chan.status_event.wait(DRAIN_POLL_S)
                else:
                    wait = DRAIN_WAIT_S
                    if timeout is not None:  # wake at the timeout, not up to 5 s after it
                        wait = min(wait, max(0.0, timeout - (time.perf_counter() - t0)) + 0.01)
                    # a stop already seen (cleanup shielded from it) must not wake us again
                    stop = [] if interrupts.STOP.is_set() else [interrupts.STOP]
                    select.select([chan, *stop], [], [], wait)
            status = chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._lost(exc) from None
        finally:
            chan.close()
        if status == -1:
            raise ConnectError(f"{self.name}: {self._host_label()} closed the session")
        return status

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        return self._guarded(self._exec_channel, command, timeout)

    def _exec_channel(self, command: str, timeout: float | None) -> CommandResult:
        """Run over a fresh SSH channel we drive ourselves, so a timeout or Ctrl-C stops
        waiting at once (invoke's runner would only forward Ctrl-C and keep waiting). Only
        the last MAX_OUTPUT bytes of each stream are kept."""
        t0 = time.perf_counter()
        out, err = Capped(), Capped()
        chan = self._channel(self._env_prefix() + command)
        try:
            chan.shutdown_write()
        except (OSError, EOFError) as exc:
            chan.close()
            raise self._lost(exc) from None
        status = self._drain(chan, command, timeout, t0, out.add, err, out.text)
        return CommandResult(
            command,
            status,
            out.text(),
            err.text(),
            time.perf_counter() - t0,
            (out.dropped, err.dropped),
        )

    # ------------------------------------------------------------------ files

    def _use_sftp(self) -> bool:
        """Whether files go over SFTP: per `transfer`, and (auto) whether the server has it."""
        import paramiko

        assert self._conn is not None, "call open() first"
        mode = self.config.get("transfer") or "auto"
        if mode == "exec":
            self.transfer_method = "exec"
        elif self._sftp is None and self.transfer_method != "exec":
            try:
                self._sftp = self._conn.client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                transport = self._conn.transport
                if transport is None or not transport.is_active():
                    raise self._lost(exc) from None
                if mode == "sftp":
                    raise DeviceError(
                        f"{self.name}: the SSH server at {self._host_label()} {NO_SFTP}; set "
                        f'transfer = "auto" (or "exec") in {self.config.where} to send files '
                        f"over the exec channel, or install sftp-server on the device"
                    ) from None
                self.transfer_method = "exec"
            else:
                self.transfer_method = "sftp"
                self._sftp.get_channel().settimeout(self.silence_limit)
        return self._sftp is not None and self.transfer_method == "sftp"

    def _put(self, local: Path, remote: str) -> None:
        self._guarded(self._put_any, local, remote)

    def _get(self, remote: str, local: Path) -> None:
        self._guarded(self._get_any, remote, local)

    def _put_any(self, local: Path, remote: str) -> None:
        if not self._use_sftp():
            self._put_exec(local, remote)
            return
        try:
            self._sftp.put(str(local), remote, confirm=True)
        except (OSError, EOFError) as exc:
            raise CommandError(
                f"{self.name}: upload of {local.name} to {remote} failed: {exc}"
            ) from None

    def _get_any(self, remote: str, local: Path) -> None:
        if not self._use_sftp():
            self._get_exec(remote, local)
            return
        try:
            self._sftp.get(remote, str(local))
        except FileNotFoundError:
            raise CommandError(f"{self.name}: no such file on the device: {remote}") from None
        except (OSError, EOFError) as exc:
            raise CommandError(f"{self.name}: download of {remote} failed: {exc}") from None

    def _put_exec(self, local: Path, remote: str) -> None:
        """Stream `local` into `cat > remote` on the device; the device reports the size it
        wrote, which must be the file's."""
        q = shlex.quote(remote)
        command = f"cat > {q} && wc -c < {q}"
        size = local.stat().st_size
        t0 = time.perf_counter()
        chan = self._channel(command)
        out, err = Capped(1 << 16), Capped()
        try:
            with open(local, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 15), b""):
                    interrupts.check()
                    chan.sendall(chunk)
            chan.shutdown_write()
        except (OSError, EOFError):
            pass  # the device stopped reading (disk full?): its status and stderr say why
        except BaseException:
            chan.close()
            raise
        status = self._drain(chan, command, TRANSFER_TIMEOUT, t0, out.add, err)
        wrote = out.text().strip()
        if status != 0 or wrote != str(size):
            why = tail(err.text(), 2) or (
                f"exit {status}" if status else f"{wrote or 0} of {size} bytes arrived"
            )
            raise CommandError(
                f"{self.name}: upload of {local.name} to {remote} (over the exec channel) "
                f"failed: {why}",
                command=command,
                exit_code=status,
                stderr=err.text(),
            )

    def _get_exec(self, remote: str, local: Path) -> None:
        """`cat` a device file into `local`."""
        command = f"cat < {shlex.quote(remote)}"
        t0 = time.perf_counter()
        err = Capped()
        with open(local, "wb") as fh:
            chan = self._channel(command)
            try:
                chan.shutdown_write()
            except (OSError, EOFError) as exc:
                chan.close()
                raise self._lost(exc) from None
            status = self._drain(chan, command, TRANSFER_TIMEOUT, t0, fh.write, err)
        if status != 0:
            text = err.text()
            if "No such file" in text or "cannot open" in text:
                raise CommandError(f"{self.name}: no such file on the device: {remote}")
            raise CommandError(
                f"{self.name}: download of {remote} (over the exec channel) failed: "
                f"{tail(text, 2) or f'exit {status}'}",
                command=command,
                exit_code=status,
                stderr=text,
            )
