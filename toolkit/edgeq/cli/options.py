"""Options several commands share, generated from their one definition.

`run_settings_options` adds one CLI option per run setting (`runners.option_specs()`: names,
defaults and help come from there) to a command and hands the command a validated
`RunSettings` as its `settings` argument — so `deploy`, `bench` and every later measuring
command take the same options with the same defaults as the lab's `[run]` table and the
device runner.

`quant_mode_options` does the same for the quant modes' own options (`QuantMode.options`,
each declared once in its mode's module): a mode with an option of its own is one new
module and one registration line, and `edgeq convert` takes its option.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from .. import quantmodes
from ..runners import option_specs
from ..settings import RunSettings


def _annotation(spec) -> Any:
    kind: Any = str if spec.many else spec.type  # "1,2,4", parsed by RunSettings
    if spec.optional:
        kind = kind | None
    return Annotated[kind, typer.Option(spec.cli, *spec.cli_aliases, help=spec.help)]


def run_settings_options(
    func: Callable[..., Any] | None = None, *, shared: dict[str, tuple[Any, Any]] | None = None
) -> Any:
    """Decorator: the command gets every run-setting option and a `settings` keyword.

    `shared`: options several commands take, {name: (Annotated type, default)}, defined
    once; a command that declares an `opts` parameter gets all of them as options, and
    their values as one namespace (`opts.target`, `opts.config`, ...)."""
    if func is None:
        return functools.partial(run_settings_options, shared=shared)
    hints = typing.get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    keyword = inspect.Parameter.KEYWORD_ONLY
    packs = (shared or {}) if "opts" in sig.parameters else {}
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation), kind=keyword)
        for p in sig.parameters.values()
        if p.name not in ("settings", "opts")
    ]
    common = [
        inspect.Parameter(name, keyword, default=default, annotation=annotation)
        for name, (annotation, default) in packs.items()
    ]
    taken = {p.name for p in own + common}
    specs = option_specs()  # the shared settings and every runner's own
    added = [
        inspect.Parameter(
            s.name, keyword, default=str(s.default) if s.many else s.default,
            annotation=_annotation(s),
        )
        for s in specs
        if s.cli and s.name not in taken
    ]  # fmt: skip
    # the command's own arguments first, then the shared options, the settings, --json
    args = [p for p in own if p.name != "json_out"]
    last = [p for p in own if p.name == "json_out"]
    params = args + common + added + last

    @functools.wraps(func)
    def command(**kw: Any) -> Any:
        values = {s.name: kw.pop(s.name) for s in specs if s.name in kw and s.name not in taken}
        if packs:
            kw["opts"] = SimpleNamespace(**{name: kw.pop(name) for name in packs})
        return func(settings=RunSettings(**values).validate(), **kw)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # Typer must read the new signature, not the original's
    return command


def quant_mode_options(func: Callable[..., Any]) -> Any:
    """Decorator: the command's `mode_options` parameter becomes the command-line
    parameters of every registered mode's options, in its place; the command is called
    with `mode_options` = {option name: value (None or empty when not given)}."""
    hints = typing.get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    declared = quantmodes.options()
    cli: dict[str, quantmodes.CliParam] = {}
    for option in declared.values():
        for p in option.cli:
            cli.setdefault(p.name, p)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    generated = [
        inspect.Parameter(
            p.name, kind, default=p.default,
            annotation=Annotated[p.type, typer.Option(p.flag, help=p.help)],
        )
        for p in cli.values()
    ]  # fmt: skip
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if p.name == "mode_options":
            params += generated
        else:
            params.append(p.replace(annotation=hints.get(p.name, p.annotation)))

    @functools.wraps(func)
    def command(**kw: Any) -> Any:
        values = {name: kw.pop(name) for name in cli}
        kw["mode_options"] = {name: o.from_cli(values) for name, o in declared.items()}
        return func(**kw)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # Typer must read the new signature, not the original's
    return command
