"""Process helpers shared by the transports that run local client processes."""

from __future__ import annotations

import os
import signal
import subprocess


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
