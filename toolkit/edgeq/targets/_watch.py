"""Noticing a silent link: an SSH connection whose TCP stream stays open but carries nothing
(a Wi-Fi device that dropped off, a NAT that forgot the flow).

paramiko blocks in a socket write for as long as the kernel's send buffer stays full, and
in a channel read for as long as nothing arrives; neither a timeout nor a stop signal ends
that. So the connection's socket records when it last received a byte (`WatchedSocket`),
and a `Watchdog` thread per connection asks the server for a reply every few seconds (an
OpenSSH `keepalive@openssh.com` request with want-reply: a live server always answers,
even while a command prints nothing). When nothing at all arrived for `limit` seconds —
or for `STOP_GRACE_S` once edgeq is being stopped — it shuts the socket down: every
blocked read and write in every thread fails at once, and the target turns that into
"no data from DEVICE for N s during …".
"""

from __future__ import annotations

import socket
import threading
import time

from .. import interrupts

#: Once a stop signal arrived, a link silent for this long is given up (the cleanup on the
#: device is then impossible anyway).
STOP_GRACE_S = 3.0
#: Seconds between the watchdog's checks.
TICK_S = 0.25


class WatchedSocket(socket.socket):
    """A TCP socket that remembers when it last received data."""

    last_rx: float = 0.0

    @classmethod
    def connect(cls, host: str, port: int, timeout: float) -> WatchedSocket:
        raw = socket.create_connection((host, port), timeout=timeout)
        sock = cls(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.settimeout(timeout)
        sock.last_rx = time.monotonic()
        return sock

    def recv(self, n: int, *flags: int) -> bytes:  # type: ignore[override]
        data = super().recv(n, *flags)
        if data:
            self.last_rx = time.monotonic()
        return data

    def silent_for(self) -> float:
        return time.monotonic() - self.last_rx


class Watchdog(threading.Thread):
    """Pings the server and cuts the connection once it was silent for `limit` seconds."""

    def __init__(self, sock: WatchedSocket, transport, limit: float) -> None:
        super().__init__(name="edgeq-ssh-watchdog", daemon=True)
        self.sock = sock
        self.transport = transport
        self.limit = float(limit)
        self.ping_every = max(0.5, min(self.limit / 4, 10.0))
        #: seconds of silence when the link was cut (None while it is alive)
        self.cut_after: float | None = None
        self._done = threading.Event()
        self._pinging = threading.Lock()
        self._last_ping = 0.0

    def stop(self) -> None:
        self._done.set()

    def run(self) -> None:
        while not self._done.wait(TICK_S):
            silent = self.sock.silent_for()
            limit = min(self.limit, STOP_GRACE_S) if interrupts.STOP.is_set() else self.limit
            if silent > limit:
                self.cut_after = silent
                self._cut()
                return
            now = time.monotonic()
            if silent >= self.ping_every and now - self._last_ping >= self.ping_every:
                self._last_ping = now
                self._ping()

    def _ping(self) -> None:
        """Ask for a reply from another thread: a write may block on a silent link."""
        if not self._pinging.acquire(blocking=False):
            return  # the last ping is still stuck in a write: the link is in trouble

        def send() -> None:
            from paramiko.common import cMSG_GLOBAL_REQUEST
            from paramiko.message import Message

            try:
                m = Message()
                m.add_byte(cMSG_GLOBAL_REQUEST)
                m.add_string("keepalive@openssh.com")
                m.add_boolean(True)
                self.transport._send_user_message(m)
            except Exception:
                pass
            finally:
                self._pinging.release()

        threading.Thread(target=send, name="edgeq-ssh-ping", daemon=True).start()

    def _cut(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.transport.close()
        except Exception:
            pass
