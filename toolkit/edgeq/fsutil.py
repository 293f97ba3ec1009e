"""Small filesystem helpers: atomic writes, content hashes, the first folder that takes a file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import UsageError

T = TypeVar("T")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it goes.

    Readers never see a half-written file, and a failed run leaves nothing behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(
            f"cannot write to {path.parent}: {exc.strerror or exc}; choose a writable folder"
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed and check we can write there; UsageError (exit 2) if not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} is not writable; choose another with --out")
    return path


def check_writable_dir(path: Path, option: str = "--results") -> Path:
    """Create `path` if needed and prove a file can be written there (by writing one), so a
    bad output folder is found before the work, not after it; UsageError (exit 2) names
    `option`. (os.access is not enough: /proc, read-only mounts and full disks lie to it.)"""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgeq-write-test-", dir=path)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise UsageError(
            f"{option} {path}: cannot write there ({exc.strerror or exc}); choose a writable "
            f"folder with {option}"
        ) from None
    return path


def write_first(folders: Iterable[Path | str], write: Callable[[Path], T]) -> T | None:
    """`write(folder)` for the first of `folders` that takes it: a folder that cannot be
    written (OSError, or UsageError from edgeq's own checks) passes to the next one. None
    when none does."""
    for folder in folders:
        try:
            return write(Path(folder))
        except (OSError, UsageError):
            continue
    return None
