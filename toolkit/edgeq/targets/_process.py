"""Running a local client process (the `local` target's shell, the `adb` client), shared by
the transports that need one: its own session, so that a timeout or Ctrl-C stops it and
everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str
    seconds: float


class TimedOut(Exception):
    """The process ran past its timeout; it and its process group were stopped."""


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
    except (subprocess.TimeoutExpired, ValueError):
        pass


def run(argv: Sequence[str], timeout: float | None, env: dict[str, str] | None = None) -> Completed:
    """Run `argv` (no shell on the host) in a new session, stdin closed, output captured.

    OSError when it cannot start; TimedOut after `timeout` seconds (the group is killed);
    on Ctrl-C or any other interruption the group is killed too, then it propagates."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise TimedOut() from None
    except BaseException:
        kill_group(proc)
        raise
    return Completed(
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        time.perf_counter() - t0,
    )
