"""Pruning the local target's cache: by age (last use) and by total size.

The local target keeps its content-addressed cache (runner, models, evaluation data) in
`$TMPDIR/edgeq-local-<uid>/edgeq-cache`, shared by every checkout of one user (and private
to that user).
A file's modification time is its last use (a deploy that finds a file there touches it),
so pruning removes the least recently used first. Besides the cache files, pruning
removes what no run needs any more: unfinished uploads (`*.part*` older than an hour) and
the run folders of edgeq processes of this host that are gone.

`prune()` never removes a file in `keep` (the files of the run that just finished).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .base import KEPT_MARKER, orphaned

#: Unfinished uploads older than this are leftovers (a live upload is younger).
PART_GRACE_S = 3600.0


@dataclass
class Removed:
    path: str
    bytes: int
    age_days: float
    why: str


@dataclass
class PruneReport:
    """What pruning one workdir base did (or, with dry_run, would do)."""

    base: str
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    kept_files: int = 0
    kept_bytes: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["freed_bytes"] = self.freed_bytes
        return d


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prune(
    base: Path,
    older_than_days: float | None = None,
    max_mb: float | None = None,
    keep: Iterable[str | Path] = (),
    dry_run: bool = False,
    now: float | None = None,
    kept: bool = False,
) -> PruneReport:
    """Prune the workdir base `base` (holding `edgeq-cache/` and `run.*/` folders): cache
    files unused for `older_than_days`, then the least recently used until the cache holds
    at most `max_mb` MB (0 or None: no cap), plus leftovers (see the module docstring).
    Folders of `--keep` runs (marked KEPT_MARKER) stay unless `kept`."""
    base = Path(base)
    now = time.time() if now is None else now
    report = PruneReport(str(base), dry_run)
    keep_set = {str(Path(k)) for k in keep}
    doomed: list[tuple[Path, Removed]] = []

    def doom(path: Path, size: int, mtime: float, why: str) -> None:
        doomed.append((path, Removed(str(path), size, round((now - mtime) / 86400, 3), why)))

    for run in sorted(base.glob("run.*")) if base.is_dir() else []:
        owner = run / ".owner"
        try:
            line = owner.read_text().strip() if owner.is_file() else ""
            mtime = run.stat().st_mtime
            size = _size(run)
        except OSError:
            continue
        if (run / KEPT_MARKER).exists():
            if kept:
                doom(run, size, mtime, "run folder kept with --keep (--kept)")
            continue
        if line and orphaned(line):
            doom(run, size, mtime, "run folder of an edgeq process that is gone")
        elif not line and older_than_days is not None and now - mtime > older_than_days * 86400:
            # made by an edgeq that wrote no owner: only its age says it is abandoned
            doom(run, size, mtime, f"run folder unused for over {older_than_days:g} days")

    cache_dir = base / "edgeq-cache"
    files = []
    for p in cache_dir.iterdir() if cache_dir.is_dir() else []:
        try:
            st = p.stat()
        except OSError:
            continue
        if not p.is_file():
            continue
        if str(p) in keep_set:
            files.append((p, st.st_size, st.st_mtime, True))
        elif ".part" in p.name and now - st.st_mtime > PART_GRACE_S:
            doom(p, st.st_size, st.st_mtime, "unfinished upload")
        elif older_than_days is not None and now - st.st_mtime > older_than_days * 86400:
            doom(p, st.st_size, st.st_mtime, f"unused for over {older_than_days:g} days")
        else:
            files.append((p, st.st_size, st.st_mtime, False))
    if max_mb:
        cap = int(max_mb * 1024 * 1024)
        total = sum(size for _, size, _, _ in files)
        for p, size, mtime, kept in sorted(files, key=lambda x: x[2]):  # least recent first
            if total <= cap:
                break
            if kept or ".part" in p.name:
                continue
            doom(p, size, mtime, f"over the {max_mb:g} MB cap (least recently used)")
            total -= size
    gone = {path for path, _ in doomed}
    for p, size, _, _ in files:
        if p not in gone:
            report.kept_files += 1
            report.kept_bytes += size
    for path, rec in doomed:
        if not dry_run:
            try:
                _remove(path)
            except OSError:
                continue
        report.removed.append(rec)
    return report
