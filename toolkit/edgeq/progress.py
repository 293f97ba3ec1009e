"""Progress lines from library code: a callback the caller may give, one line each."""

from __future__ import annotations

from collections.abc import Callable

#: What long-running library functions accept: called with one line of progress.
Progress = Callable[[str], None]

__all__ = ["Progress", "say"]


def say(progress: Progress | None, msg: str) -> None:
    """Tell `progress` (if any) `msg`."""
    if progress:
        progress(msg)
