"""Running a local client process (the `local` target's shell, the `adb` client), shared by
the transports that need one: its own session, so that a timeout, Ctrl-C or SIGTERM stops
it and everything it started; and output kept within bounds (`Capped`), so a device that
prints gigabytes, or bytes that are not UTF-8, costs neither the host's memory nor a
traceback."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .. import interrupts

#: Output kept per stream (the last part: where the error and the result are).
MAX_OUTPUT = 4 << 20


class Capped:
    """A byte buffer that keeps only the last `limit` bytes, counting what it dropped."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        extra = len(self.data) - self.limit
        if extra > self.limit // 4:  # trim in steps, not on every chunk
            del self.data[:extra]
            self.dropped += extra

    def text(self) -> str:
        extra = len(self.data) - self.limit
        if extra > 0:
            del self.data[:extra]
            self.dropped += extra
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str
    seconds: float
    dropped: tuple[int, int] = (0, 0)


class TimedOut(Exception):
    """The process ran past its timeout; it and its process group were stopped."""

    def __init__(self, stdout: str = "", stderr: str = "") -> None:
        super().__init__("timed out")
        self.stdout = stdout
        self.stderr = stderr


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True and everything it spawned:
    SIGTERM to its group, SIGKILL if it lingers, then reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.communicate(timeout=2)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass


def run(argv: Sequence[str], timeout: float | None, env: dict[str, str] | None = None) -> Completed:
    """Run `argv` (no shell on the host) in a new session, stdin closed, output captured
    (the last MAX_OUTPUT bytes of each stream).

    OSError when it cannot start; TimedOut after `timeout` seconds (the group is killed);
    on Ctrl-C, SIGTERM (`edgeq.interrupts`) or any other interruption the group is killed
    too, then it propagates."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    out, err = Capped(), Capped()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, out)  # type: ignore[arg-type]
            sel.register(proc.stderr, selectors.EVENT_READ, err)  # type: ignore[arg-type]
            while sel.get_map():
                _deadline(proc, t0, timeout, out, err)
                for key, _ in sel.select(0.1):
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        sel.unregister(key.fileobj)
        while True:
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                _deadline(proc, t0, timeout, out, err)
    except BaseException:
        kill_group(proc)
        raise
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return Completed(
        proc.returncode,
        out.text(),
        err.text(),
        time.perf_counter() - t0,
        (out.dropped, err.dropped),
    )


def _deadline(proc, t0: float, timeout: float | None, out: Capped, err: Capped) -> None:
    """Raise TimedOut past the timeout, Interrupted when edgeq is being stopped."""
    interrupts.check()
    if timeout is not None and time.perf_counter() - t0 > timeout:
        raise TimedOut(out.text(), err.text())
