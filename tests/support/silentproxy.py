"""A TCP proxy that goes silent: it forwards faithfully until the client has sent `after`
bytes, then stops carrying data in both directions — and stops reading, so the client's
send buffer fills up — while keeping every connection open. That is what a Wi-Fi device
that dropped off, or a NAT that forgot the flow, looks like from the host."""

from __future__ import annotations

import socket
import threading

from tests.support.sshd import free_port


class SilentProxy:
    """`silent_on`: which connection (1 = the first) goes silent; the others are carried
    faithfully."""

    def __init__(
        self, upstream_port: int, after: int, silent_on: int = 1, host: str = "127.0.0.1"
    ) -> None:
        self.upstream = (host, upstream_port)
        self.after = after
        self.silent_on = silent_on
        self.connections = 0
        self.port = free_port()
        self.sent = 0  # client → server bytes forwarded on the connection that goes silent
        self.silent = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._closed = threading.Event()
        self._listener = socket.create_server((host, self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._socks += [client, server]
                self.connections += 1
                watched = self.connections == self.silent_on
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, up, watched), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool, watched: bool) -> None:
        silent = self.silent if watched else threading.Event()
        while not self._closed.is_set() and not silent.is_set():
            try:
                data = src.recv(4096)
            except OSError:
                return
            if not data:  # a clean end: pass it on
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if upstream and watched:
                with self._lock:
                    room = self.after - self.sent
                    self.sent += min(len(data), max(room, 0))
                if room <= len(data):
                    data = data[: max(room, 0)]
                    self.silent.set()
            if silent.is_set() and not upstream:
                break
            if data:
                try:
                    dst.sendall(data)
                except OSError:
                    return
        # silent: hold the connection open, read nothing, send nothing
        self._closed.wait()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
