"""Fewer idle wake-ups per SSH connection.

paramiko's transport thread reads its socket with a 0.1 s timeout, so every open
connection wakes 10 times a second to find nothing, taking the GIL each time. A lab holds
one connection per device for the whole benchmark; with a hundred devices in flight that
is a thousand wake-ups a second contending for the GIL with the lab's own threads, and
the lab's CPU per device-run grew with the fleet. Once the connection is up, the thread
needs the timeout only to notice a close (which `Transport.close` signals directly) and
for keepalives (edgeq sets none; the silent-link watchdog pings from its own thread).
At one second, a device-run at N = 128 still woke its transport thread ~30 times (the
device side is slow on a loaded machine) against ~2 at N = 8: the wake-ups grew with the
fleet, so the wait is 5 s. After `close()` the thread ends within that time (its socket
is closed; a blocked read that times out sees that and stops).
"""

from __future__ import annotations

#: Seconds paramiko's transport thread waits on an idle socket (paramiko's own: 0.1).
IDLE_READ_S = 5.0


def quiet(transport) -> None:
    """Make an open, authenticated transport's thread wake every IDLE_READ_S when idle."""
    sock = getattr(transport, "sock", None)
    if sock is not None and hasattr(sock, "settimeout"):
        try:
            sock.settimeout(IDLE_READ_S)
        except OSError:
            pass  # closed meanwhile: its own error comes with the next use
