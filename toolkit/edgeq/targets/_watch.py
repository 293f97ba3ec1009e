"""Noticing a silent link: an SSH connection whose TCP stream stays open but carries nothing
(a Wi-Fi device that dropped off, a NAT that forgot the flow).

paramiko blocks in a socket write for as long as the kernel's send buffer stays full, and
in a channel read for as long as nothing arrives; neither a timeout nor a stop signal ends
that. So the connection's socket records when it last received a byte (`WatchedSocket`),
and a `Watchdog` per connection (all of them looked at by one `Patrol` thread) asks the
server for a reply every few seconds (an OpenSSH `keepalive@openssh.com` request with
want-reply: a live server always answers, even while a command prints nothing). When
nothing at all arrived for `limit` seconds — or for `STOP_GRACE_S` once edgeq is being
stopped — it shuts the socket down: every blocked read and write in every thread fails at
once, and the target turns that into
"no data from DEVICE for N s during …".
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

from .. import interrupts

#: Once a stop signal arrived, a link silent for this long is given up (the cleanup on the
#: device is then impossible anyway).
STOP_GRACE_S = 3.0
#: Seconds between the watchdog's checks.
TICK_S = 0.25


#: Bytes asked of the kernel per read (what a packet's reads then take from).
RX_CHUNK = 65536


class WatchedSocket(socket.socket):
    """A TCP socket that remembers when it last received data.

    It also reads ahead: paramiko reads each SSH packet in two calls (its first cipher
    block, then the rest), so a `recv` asks the kernel for up to RX_CHUNK bytes and serves
    the next calls from what came — half the system calls per packet, or fewer when
    several packets arrived together (a lab of many devices paid for each recv more the
    busier the machine was). Only paramiko's transport thread reads this socket, always
    through `recv` and never through select/poll, so data held here cannot be missed."""

    last_rx: float = 0.0
    _rx: bytes = b""
    _rx_at: int = 0

    @classmethod
    def connect(cls, host: str, port: int, timeout: float) -> WatchedSocket:
        raw = socket.create_connection((host, port), timeout=timeout)
        sock = cls(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.settimeout(timeout)
        sock.last_rx = time.monotonic()
        return sock

    def recv(self, n: int, *flags: int) -> bytes:  # type: ignore[override]
        if self._rx_at < len(self._rx):
            data = self._rx[self._rx_at : self._rx_at + n]
            self._rx_at += len(data)
            return data
        if flags:
            data = super().recv(n, *flags)
        else:
            data = super().recv(max(n, RX_CHUNK))
            if len(data) > n:
                self._rx, self._rx_at = data, n
                data = data[:n]
        if data:
            self.last_rx = time.monotonic()
        return data

    def silent_for(self) -> float:
        return time.monotonic() - self.last_rx


class Watchdog:
    """Pings the server and cuts the connection once it was silent for `limit` seconds.

    Checked by the one `Patrol` thread of the process (`start()` joins it, `stop()` leaves
    it): a thread per connection waking four times a second made the lab's CPU per device
    grow with the fleet (256 connections: a thousand wake-ups a second)."""

    def __init__(self, sock: WatchedSocket, transport, limit: float) -> None:
        self.sock = sock
        self.transport = transport
        self.limit = float(limit)
        self.ping_every = max(0.5, min(self.limit / 4, 10.0))
        #: seconds of silence when the link was cut (None while it is alive)
        self.cut_after: float | None = None
        self._pinging = threading.Lock()
        self._last_ping = 0.0

    def start(self) -> None:
        PATROL.add(self)

    def stop(self) -> None:
        PATROL.discard(self)

    def check(self, now: float) -> bool:
        """One look (never blocks); True once the link was cut (the watch is over)."""
        silent = now - self.sock.last_rx
        limit = min(self.limit, STOP_GRACE_S) if interrupts.STOP.is_set() else self.limit
        if silent > limit:
            self.cut_after = silent
            # closing a transport joins its thread: not on the patrol's time
            threading.Thread(target=self._cut, name="edgeq-ssh-cut", daemon=True).start()
            return True
        if silent >= self.ping_every and now - self._last_ping >= self.ping_every:
            self._last_ping = now
            self._ping()
        return False

    def due(self) -> float:
        """The earliest time `check` could do anything (ping or cut) — from what is known
        now; data arriving meanwhile only moves it later."""
        ping = max(self.sock.last_rx, self._last_ping) + self.ping_every
        return min(ping, self.sock.last_rx + self.limit)

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


class Patrol:
    """One thread that looks at every live connection's `Watchdog` when it is due (a heap
    of due times, looked at each TICK_S); it starts with the first watch and ends after a
    minute without any. Each tick costs the connections due then, not all of them: looking
    at all N every tick made the lab's CPU per device-run grow with the fleet (its wall time
    grows with N, and so did its ticks × N). While edgeq is being stopped every tick looks
    at all of them (the silence allowed shrinks to STOP_GRACE_S)."""

    IDLE_S = 60.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dogs: set[Watchdog] = set()
        self._due: list[tuple[float, int, Watchdog]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        #: looks taken so far (for tests: one thread serves every connection)
        self.ticks = 0
        #: Watchdog.check calls so far (for tests: connections looked at when due)
        self.checks = 0

    def add(self, dog: Watchdog) -> None:
        with self._cond:
            self._dogs.add(dog)
            heapq.heappush(self._due, (time.monotonic(), next(self._seq), dog))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edgeq-ssh-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def discard(self, dog: Watchdog) -> None:
        with self._cond:
            self._dogs.discard(dog)  # its heap entry is dropped when it comes up

    def watching(self) -> int:
        with self._cond:
            return len(self._dogs)

    def _take_due(self, now: float) -> list[Watchdog]:
        """The watched dogs due by `now` (all of them while stopping); under the lock."""
        if interrupts.STOP.is_set():
            self._due = []
            return list(self._dogs)
        out = []
        while self._due and self._due[0][0] <= now:
            dog = heapq.heappop(self._due)[2]
            if dog in self._dogs:
                out.append(dog)
        return out

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._dogs and not self._cond.wait_for(lambda: self._dogs, self.IDLE_S):
                    self._thread = None  # under the lock: the next add() starts another
                    self._due = []
                    return
                now = time.monotonic()
                dogs = self._take_due(now)
                self.ticks += 1
            later = []
            for dog in dogs:
                self.checks += 1
                try:
                    over = dog.check(now)
                except Exception:
                    over = True
                if over:
                    self.discard(dog)
                else:
                    later.append((max(dog.due(), now + TICK_S / 2), dog))
            with self._cond:
                for due, dog in later:
                    if dog in self._dogs:
                        heapq.heappush(self._due, (due, next(self._seq), dog))
            time.sleep(TICK_S)


#: The process's one patrol.
PATROL = Patrol()
