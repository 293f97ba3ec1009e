"""Fewer idle wake-ups per SSH connection, and paramiko's log lines off the CLI's stderr.

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

import logging
import re

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


#: paramiko's transport thread logs a failed handshake (a connection abandoned under load:
#: "Error reading SSH protocol banner", "Bad file descriptor") at ERROR, followed by the
#: traceback one line per record; edgeq reports the same failure as its own one-line error.
_TRACEBACK_LINE = re.compile(
    r"(\s|Traceback \(most recent call last\)|During handling of the above exception"
    r"|The above exception was the direct cause"
    r"|[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:|$))"
)


class _OneLineDebug(logging.Handler):
    """paramiko's records become one DEBUG line each on the `edgeq.ssh` logger (shown only
    where DEBUG logging is on); the lines of a traceback are dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: nothing worth a line
            return
        if not text.strip() or _TRACEBACK_LINE.match(text):
            return
        logging.getLogger("edgeq.ssh").debug("paramiko (%s): %s", record.levelname, text)


def quiet_logs() -> None:
    """Keep paramiko's log records (and their tracebacks) off a CLI user's stderr: without
    logging configured, Python prints WARNING and above from any thread there. Called by
    the CLI unless --debug (with --debug paramiko logs as it always did). Idempotent."""
    log = logging.getLogger("paramiko")
    if not any(isinstance(h, _OneLineDebug) for h in log.handlers):
        log.addHandler(_OneLineDebug())
    log.propagate = False
