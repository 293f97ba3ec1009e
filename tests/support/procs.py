"""Processes: wait for a condition, find what runs under a pid or mentions a string, and kill a
test "Pi" the hard way (its sshd and every session under it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def wait_for(cond, timeout: float, step: float = 0.1) -> bool:
    """Poll `cond` every `step` s until it is true or `timeout` s have passed; its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by parent pid, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_device(server) -> None:
    """Pull the plug: SIGKILL the sshd, its sessions and whatever runs in them."""
    for p in descendants(server.proc.pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait(timeout=10)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (to prove nothing was left)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(cmd)
    return found
