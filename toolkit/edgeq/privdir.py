"""Private folders: where edgeq keeps files it later runs or trusts, nobody else may write.

A folder another user can write into lets that user swap a file between the moment edgeq
checks it and the moment edgeq uses it (the runner is checked by sha256, then run; a lock
file is opened, then written). So every folder edgeq writes into is created 0700 by the
edgeq user, and an existing one is accepted only if it is a real folder (not a symlink),
owned by that user and writable by nobody else. The folder that holds them (a workdir
base such as /tmp) may be shared if it is sticky (others cannot rename or remove what is
ours there) and owned by us or root.

The same rules apply on the host (`check_local`, `os.lstat`) and on a device (`judge`
reads `ls -ldn`, which every POSIX shell, busybox and toybox has).
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from .errors import UsageError


class UnsafeFolder(UsageError):
    """A folder edgeq would write into is not private to the edgeq user (exit 2)."""


def _fix(path: str, setting: str) -> str:
    q = shlex.quote(path)
    return (
        f"remove it if it is not yours (`rm -rf {q}` as its owner), or {setting}"
        if setting
        else f"remove it if it is not yours (`rm -rf {q}` as its owner)"
    )


def verdict(
    path: str,
    *,
    is_dir: bool,
    is_link: bool,
    uid: int,
    writable_by_others: bool,
    sticky: bool,
    me: int,
    shared_ok: bool,
) -> str | None:
    """Why `path` is unsafe for edgeq (one clause), or None if it is fine.

    `shared_ok`: the folder only holds edgeq's own private folders (a workdir base), so a
    sticky folder owned by us or root (like /tmp) is fine."""
    if is_link and not shared_ok:
        return f"{path} is a symlink (someone could point it anywhere)"
    if not is_dir:
        return f"{path} is not a folder"
    if shared_ok:
        if uid not in (me, 0):
            return f"{path} belongs to uid {uid}, not to you (uid {me}) or root"
        if writable_by_others and not sticky:
            return f"{path} is writable by other users and not sticky (mode o+t)"
        return None
    if uid != me:
        return f"{path} belongs to uid {uid}, not to you (uid {me})"
    if writable_by_others:
        return f"{path} is writable by other users (group or others)"
    return None


def judge_ls(path: str, line: str, me: int, shared_ok: bool) -> str | None:
    """`verdict` from one `ls -ldn PATH` line (as printed on a device)."""
    parts = line.split()
    if len(parts) < 3 or len(parts[0]) < 10:
        return f"{path} cannot be inspected (`ls -ldn` printed {line.strip()[:60]!r})"
    mode = parts[0]
    try:
        uid = int(parts[2])
    except ValueError:
        return f"{path} cannot be inspected (no numeric owner in `ls -ldn`)"
    return verdict(
        path,
        is_dir=mode[0] == "d",
        is_link=mode[0] == "l",
        uid=uid,
        writable_by_others=mode[5] == "w" or mode[8] == "w",
        sticky=mode[9] in "tT",
        me=me,
        shared_ok=shared_ok,
    )


def refuse(why: str, what: str, path: str, setting: str) -> UnsafeFolder:
    return UnsafeFolder(
        f"refusing to use {path} as {what}: {why} — another user could swap what edgeq "
        f"runs or writes there; {_fix(path, setting)}"
    )


def check_local(path: Path, what: str, setting: str = "", shared_ok: bool = False) -> None:
    """Raise UnsafeFolder unless the host folder `path` is private (see the module doc)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UsageError(f"cannot inspect {path} ({what}): {exc.strerror or exc}") from None
    target = st
    if shared_ok and stat.S_ISLNK(st.st_mode):
        target = os.stat(path)
    why = verdict(
        str(path),
        is_dir=stat.S_ISDIR(target.st_mode),
        is_link=stat.S_ISLNK(st.st_mode),
        uid=target.st_uid,
        writable_by_others=bool(target.st_mode & 0o022),
        sticky=bool(target.st_mode & stat.S_ISVTX),
        me=os.geteuid(),
        shared_ok=shared_ok,
    )
    if why:
        raise refuse(why, what, str(path), setting)


def ensure_local(path: Path, what: str, setting: str = "") -> Path:
    """Create the host folder `path` 0700 if missing (parents too), then `check_local` it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(
            f"cannot create {path} ({what}): {exc.strerror or exc}"
            + (f"; {setting}" if setting else "")
        ) from None
    check_local(path, what, setting)
    return path
