"""Rendering by format name and writing reports: one file, or a folder of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ... import fsutil
from ...errors import UsageError
from .registry import FORMATS

STEM = "lab-report"


def parse_formats(values: list[str] | tuple[str, ...] | None, default: str = "html") -> list[str]:
    """`--format` values, repeated and/or comma-separated, in order, without repeats."""
    names: list[str] = []
    for value in values or [default]:
        for name in (v.strip().lower() for v in str(value).split(",")):
            if not name:
                continue
            if name not in FORMATS:
                raise UsageError(
                    f"--format: unknown report format {name!r}; choose from "
                    f"{', '.join(FORMATS)} (several: --format html,md or repeat --format)"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError(f"--format: give at least one of {', '.join(FORMATS)}")
    return names


def render(doc: dict[str, Any], fmt: str) -> str:
    """The report in format `fmt` (a registered name)."""
    return FORMATS[parse_formats([fmt])[0]].render(doc)


def means_folder(out: str | Path, formats: int = 1) -> bool:
    """A trailing slash, an existing folder or several formats: `out` is a folder."""
    text = os.fspath(out)
    return formats > 1 or text.endswith(("/", os.sep)) or Path(text).is_dir()


def _folder(out: str | Path, why: str) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {out} is a file, but {why} needs a folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the report folder {folder}: {exc.strerror or exc}; "
            "choose a writable --out"
        ) from None
    return folder


def write_all(doc: dict[str, Any], formats: list[str], out: str | Path) -> list[Path]:
    """Write each format; into the folder `out` (`lab-report<suffix>` each, the folder
    created) when `means_folder`, else to the file `out`. Returns the paths written."""
    formats = parse_formats(formats)
    if means_folder(out, len(formats)):
        why = f"writing {len(formats)} formats" if len(formats) > 1 else "a path ending in /"
        folder = _folder(out, why)
        targets = [(f, folder / f"{STEM}{FORMATS[f].suffix}") for f in formats]
    else:
        targets = [(formats[0], Path(out))]
    return [fsutil.write_text(path, FORMATS[f].render(doc)) for f, path in targets]


def write(doc: dict[str, Any], fmt: str, out: str | Path) -> Path:
    """Render one format and write it atomically (a folder `out` gets `lab-report.<ext>`)."""
    return write_all(doc, [fmt], out)[0]
