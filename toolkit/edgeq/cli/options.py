"""Options several commands share, generated from their one definition.

`run_settings_options` adds one CLI option per run setting (`edgeq.settings.SPECS`: names,
defaults and help come from there) to a command and hands the command a validated
`RunSettings` as its `settings` argument — so `deploy`, `bench` and every later measuring
command take the same options with the same defaults as the lab's `[run]` table and the
device runner.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..settings import SPECS, RunSettings


def _annotation(spec) -> Any:
    kind: Any = spec.type
    if spec.optional:
        kind = kind | None
    return Annotated[kind, typer.Option(spec.cli, help=spec.help)]


def run_settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the command gets every run-setting option and a `settings` keyword."""
    hints = typing.get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    own = [p.replace(annotation=hints.get(p.name, p.annotation))
           for p in sig.parameters.values() if p.name != "settings"]  # fmt: skip
    taken = {p.name for p in own}
    added = [
        inspect.Parameter(
            s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=_annotation(s)
        )
        for s in SPECS
        if s.cli and s.name not in taken
    ]
    # keyword-only parameters must follow the others; --json stays last in --help
    last = [p for p in own if p.name == "json_out"]
    first = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name != "json_out"]
    params = first + added + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in last]

    @functools.wraps(func)
    def command(**kw: Any) -> Any:
        values = {s.name: kw.pop(s.name) for s in SPECS if s.name in kw and s.name not in taken}
        return func(settings=RunSettings(**values).validate(), **kw)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # Typer must read the new signature, not the original's
    return command
