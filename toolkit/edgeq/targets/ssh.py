"""The `ssh` target: a Raspberry Pi (or any Linux box) reached with Fabric.

Host keys are verified against a known_hosts file; an unknown key is refused unless the
target says `accept_new_host_key = true` (then it is recorded, like OpenSSH's accept-new).
~/.ssh/config is not read: the target's own keys say where and how to connect.
"""

from __future__ import annotations

import select
import shlex
import socket
import time
from pathlib import Path
from typing import ClassVar

from ..errors import AuthError, CommandError, CommandTimeout, ConnectError, HostKeyError
from ..fields import Field, f
from . import register
from .base import CommandResult, Target


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
        "password": f(str, "", "password login (prefer keys)"),
    }
    path_fields = ("key_file", "known_hosts")

    def __init__(self, config, keep: bool = False) -> None:
        super().__init__(config, keep)
        self._conn = None

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

    def _host_label(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _connect(self) -> None:
        import paramiko
        from fabric import Config, Connection

        key_file = self.config.get("key_file")
        kwargs: dict = {"banner_timeout": 30, "auth_timeout": 30}
        if key_file:
            key_path = Path(key_file).expanduser()
            if not key_path.is_file():
                raise AuthError(
                    f"{self.name}: key_file {key_path} does not exist; fix key_file in "
                    f"{self.config.where} or create a key with ssh-keygen -t ed25519"
                )
            kwargs.update(key_filename=[str(key_path)], look_for_keys=False, allow_agent=False)
        if self.config.get("password"):
            kwargs["password"] = self.config["password"]
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
            conn.client.load_host_keys(str(known))
        conn.client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if accept_new else paramiko.RejectPolicy()
        )
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            raise HostKeyError(
                f"{self.name}: the host key of {self._host_label()} does NOT match {known} "
                f"(device reinstalled, or someone in the middle). If you trust the change: "
                f"ssh-keygen -f {known} -R '{self._host_label()}'"
            ) from None
        except paramiko.AuthenticationException as exc:
            how = f"key {key_file}" if key_file else "your ssh-agent/~/.ssh keys"
            raise AuthError(
                f"{self.name}: {self.describe()} refused {how} ({exc}); install the public key "
                f"on the device: ssh-copy-id -i {key_file or '~/.ssh/id_ed25519'}.pub "
                f"-p {self.port} {self.user}@{self.host}"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(
                    f"{self.name}: unknown host key for {self._host_label()} (not in {known}); "
                    f"after checking it, set accept_new_host_key = true in "
                    f"{self.config.where} or run: ssh-keyscan -p {self.port} {self.host} "
                    f">> {known}"
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
        self._conn = conn

    def _disconnect(self) -> None:
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

    def _exec(self, command: str, timeout: float | None) -> CommandResult:
        """Run over a fresh SSH channel we drive ourselves, so a timeout or Ctrl-C stops
        waiting at once (invoke's runner would only forward Ctrl-C and keep waiting)."""
        import paramiko

        assert self._conn is not None, "call open() first"
        t0 = time.perf_counter()
        out, err = bytearray(), bytearray()
        try:
            chan = self._conn.transport.open_session(timeout=30)
            chan.exec_command(self._env_prefix() + command)
            chan.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
            raise ConnectError(
                f"{self.name}: connection to {self._host_label()} lost ({exc})"
            ) from None
        try:
            while True:
                got = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    got = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    got = True
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not (chan.recv_stderr_ready())
                ):
                    break
                if chan.closed and not got:
                    break
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    raise CommandTimeout(
                        f"{self.name}: command did not finish within {timeout:g} s on "
                        f"{self._host_label()} and was stopped; raise --timeout or lower "
                        f"--runs/--min-s",
                        command=command,
                        stdout=out.decode(errors="replace"),
                        stderr=err.decode(errors="replace"),
                    )
                if not got:
                    select.select([chan], [], [], 0.1)
            status = chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectError(
                f"{self.name}: connection to {self._host_label()} lost ({exc})"
            ) from None
        finally:
            chan.close()
        if status == -1:
            raise ConnectError(f"{self.name}: {self._host_label()} closed the session")
        return CommandResult(
            command,
            status,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.perf_counter() - t0,
        )

    def _put(self, local: Path, remote: str) -> None:
        assert self._conn is not None, "call open() first"
        try:
            self._conn.put(str(local), remote)
        except (OSError, EOFError) as exc:
            raise CommandError(
                f"{self.name}: upload of {local.name} to {remote} failed: {exc}"
            ) from None

    def _get(self, remote: str, local: Path) -> None:
        assert self._conn is not None, "call open() first"
        try:
            self._conn.get(remote, str(local))
        except FileNotFoundError:
            raise CommandError(f"{self.name}: no such file on the device: {remote}") from None
        except (OSError, EOFError) as exc:
            raise CommandError(f"{self.name}: download of {remote} failed: {exc}") from None
