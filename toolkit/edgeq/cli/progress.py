"""Rich progress bars on stderr for long work (training epochs, conversions, evaluations)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .common import err


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@contextlib.contextmanager
def training_bar() -> Iterator[Any]:
    """Yields fn(epoch, epochs, batch, batches, logs) for `edgeq.train.train`."""
    with _progress() as prog:
        tasks: dict[int, Any] = {}

        def update(epoch: int, epochs: int, batch: int, batches: int, logs: dict) -> None:
            if epoch not in tasks:
                tasks[epoch] = prog.add_task(f"epoch {epoch}/{epochs}", total=batches, info="")
            info = ""
            if "loss" in logs:
                info = f"loss {logs['loss']:.4f} acc {logs.get('accuracy', 0):.4f}"
            if "val_accuracy" in logs:
                info += f" val_acc {logs['val_accuracy']:.4f}"
            prog.update(tasks[epoch], completed=batch, info=info)

        yield update


@contextlib.contextmanager
def steps_bar(label: str) -> Iterator[Any]:
    """Yields fn(done, total, what) for step-wise work (convert, eval)."""
    with steps_bars(label) as (update,):
        yield update


@contextlib.contextmanager
def steps_bars(*labels: str) -> Iterator[tuple[Any, ...]]:
    """One fn(done, total, what) per label, as bars of one display; a bar appears on its
    first update (so a step that never runs shows nothing)."""
    with _progress() as prog:

        def updater(label: str) -> Any:
            task = None

            def update(done: int, total: int, what: str) -> None:
                nonlocal task
                if task is None:
                    task = prog.add_task(label, total=total, info="")
                prog.update(task, completed=done, total=total, info=what)

            return update

        yield tuple(updater(label) for label in labels)


def plain() -> bool:
    """True when stderr is not a terminal (cron mail, CI logs): print words, no markup."""
    return not err.is_terminal


def say_line(msg: str, style: str = "dim", mark: str = "·") -> None:
    """One progress line on stderr: styled on a terminal, plain text otherwise (user and
    device text is never read as markup)."""
    if plain():
        err.print(f"{mark} {msg}" if mark else msg, markup=False, highlight=False)
    else:
        err.print(f"[{style}]{mark}[/] {escape(msg)}" if mark else escape(msg))


def progress_printer() -> Callable[[str], None]:
    """A `progress(msg)` function for deploy-like work."""
    return say_line
