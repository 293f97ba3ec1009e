"""A per-device lock, so two lab runs never benchmark one device at the same time.

The lock is `flock(2)` on a file named after the device's identity (e.g.
`ssh://pi@10.0.0.7:22`), in a folder every lab process on this host shares. flock locks
belong to an open file description, so they exclude other processes and other threads of
this process alike, and the kernel drops them when the holder dies (no stale locks after a
crash or `kill -9`). The holder writes who it is into the file, so a waiter can say whom it
waits for. Scope: one lab host (see docs/lab-multi-host.md for several).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import interrupts
from .errors import DeviceError, UsageError
from .privdir import ensure_local

OnWait = Callable[[str], None]


class DeviceBusy(DeviceError):
    """Somebody else held the device for longer than we were willing to wait.

    The device is recorded as `busy` (neither failed nor quarantined)."""

    transient = False

    def __init__(self, message: str, *, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"holder": holder or {}})
        self.holder = holder or {}


class Lease(ABC):
    """Exclusive use of one device for a while. `with lease:` acquires and releases."""

    waited_s: float = 0.0

    @abstractmethod
    def acquire(self, on_wait: OnWait | None = None) -> Lease:
        """Take the device, waiting (and telling `on_wait` for whom) while another holds it;
        DeviceBusy after the lease's timeout."""

    @abstractmethod
    def release(self) -> None:
        """Give the device back. Safe to call when not held, and twice."""

    @property
    @abstractmethod
    def held(self) -> bool: ...

    def __enter__(self) -> Lease:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


#: What a lab waiter is told to do about a busy device.
LAB_FIX = "raise lock_timeout_s in [lab] or try again later"


def default_lock_dir() -> Path:
    """Where every edgeq process of this user keeps its device locks, so that `edgeq
    deploy`, `edgeq bench` and `edgeq lab run` exclude each other: $EDGEQ_LOCK_DIR, else
    $TMPDIR/edgeq-locks-<uid> (private to the user: see `edgeq.privdir`)."""
    env = os.environ.get("EDGEQ_LOCK_DIR")
    if env:
        return Path(env).expanduser()
    return Path(tempfile.gettempdir()) / f"edgeq-locks-{os.geteuid()}"


def open_lock(path: Path) -> int:
    """Open (create 0600) the lock file `path` in a private folder, never through a
    symlink: a planted `*.lock` symlink would make edgeq write its JSON into whatever it
    points at. Returns the file descriptor; UsageError (one line) when it cannot."""
    fix = "set lock_dir in [lab] (or $EDGEQ_LOCK_DIR) to a folder of yours"
    ensure_local(path.parent, "the device-lock folder", fix)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        why = "it is a symlink" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise UsageError(f"cannot open the device lock {path}: {why}; {fix}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise UsageError(
            f"cannot use the device lock {path}: not a regular file of yours; remove it, or {fix}"
        )
    return fd


def lock_dir_of(setting: str, folder: Path) -> Path:
    """The lock folder a `lock_dir` setting names (a relative one starts at `folder`, the
    inventory's); "" is `default_lock_dir()`."""
    if not setting:
        return default_lock_dir()
    p = Path(setting).expanduser()
    return p if p.is_absolute() else Path(folder) / p


def describe_holder(h: dict[str, Any]) -> str:
    """`pid 123 on host (run R)` / `(edgeq deploy --target pi)`: who holds a lock."""
    who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}"
    if h.get("run_id"):
        who += f" (run {h['run_id']})"
    if h.get("command"):
        who += f" ({h['command']})"
    return who


def lock_file(lock_dir: Path, identity: str) -> Path:
    """`<slug>-<hash>.lock`: readable, and unique per identity."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", identity).strip("_")[:60]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(lock_dir) / f"{slug}-{digest}.lock"


class DeviceLock(Lease):
    """Exclusive use of one device. `with DeviceLock(...):` waits up to `timeout_s`."""

    def __init__(
        self,
        identity: str,
        lock_dir: Path,
        timeout_s: float = 3600.0,
        owner: dict[str, Any] | None = None,
        poll_s: float = 0.1,
        fix: str = LAB_FIX,
    ) -> None:
        self.identity = identity
        self.path = lock_file(lock_dir, identity)
        self.timeout_s = timeout_s
        self.owner = owner or {}
        self.poll_s = poll_s
        self.fix = fix
        self._fh = None
        self.waited_s = 0.0

    def holder(self) -> dict[str, Any]:
        """Who holds (or last held) the lock, as written in the file (never through a
        symlink, and at most 64 KB of it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            with os.fdopen(fd, "rb") as fh:
                h = json.loads(fh.read(1 << 16) or b"{}")
            return h if isinstance(h, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self, on_wait: OnWait | None = None) -> DeviceLock:
        """Take the lock, waiting (and telling `on_wait` whom for) while another run holds it."""
        fh = os.fdopen(open_lock(self.path), "r+")
        t0 = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - t0
                if waited >= self.timeout_s:
                    fh.close()
                    h = self.holder()
                    raise DeviceBusy(
                        f"{self.identity} is busy: held by {describe_holder(h)} since "
                        f"{h.get('since', '?')}; waited {waited:.0f} s — {self.fix}",
                        holder=h,
                    ) from None
                if on_wait and not told:
                    on_wait(f"waiting for {describe_holder(self.holder())}")
                    told = True
                try:
                    interrupts.check()
                    time.sleep(self.poll_s)
                except BaseException:
                    fh.close()
                    raise
        self.waited_s = time.monotonic() - t0
        self._fh = fh
        info = {
            **self.owner,
            "identity": self.identity,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(info) + "\n")
        fh.flush()
        return self

    def release(self) -> None:
        if self._fh is not None:
            try:
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None
