"""Runners: what measures on the device, one module each, registered by name. See
`base.py` for the interface and how to add one."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from ..fields import Field, TargetConfig, f
from ..settings import RunSettings
from .base import Health, HealthCheck, Job, Measurement, Runner

__all__ = [
    "RUNNERS",
    "Health",
    "HealthCheck",
    "Job",
    "Measurement",
    "Runner",
    "choose",
    "register",
    "runner_class",
    "runner_fields",
]

RUNNERS: dict[str, type[Runner]] = {}

_MODULES = ("benchmark_model", "python")


def register(cls: type[Runner]) -> type[Runner]:
    RUNNERS[cls.name] = cls
    return cls


def runner_fields() -> dict[str, Field]:
    """The runner keys of a target: `runner` and every runner's own."""
    out: dict[str, Field] = {
        "runner": f(str, "auto", f"what measures on the device: auto, {', '.join(RUNNERS)}")
    }
    for cls in RUNNERS.values():
        out.update(cls.fields)
    return out


def runner_path_fields() -> tuple[str, ...]:
    return tuple(k for cls in RUNNERS.values() for k in cls.path_fields)


def runner_class(name: str, where: str = "") -> type[Runner] | None:
    """The class for `runner = name` (None for "auto"); ConfigError for an unknown name."""
    if name == "auto":
        return None
    if name not in RUNNERS:
        raise ConfigError(
            f"{where + ': ' if where else ''}key 'runner' must be one of auto, "
            f"{', '.join(RUNNERS)}, got {name!r}"
        )
    return RUNNERS[name]


def choose(
    tcfg: TargetConfig, settings: RunSettings | None = None, name: str | None = None
) -> Runner:
    """The runner `name` (e.g. `bench --runner`), else the one the target asks for; for
    `auto`, the first (by `auto_order`) that is configured for it: the native binary when
    one is given, else python."""
    settings = settings or RunSettings()
    if name:
        cls = runner_class(name, "--runner")
    else:
        cls = runner_class(tcfg.get("runner") or "auto", tcfg.where)
    if cls is None:
        classes = sorted(RUNNERS.values(), key=lambda c: c.auto_order)
        cls = next((c for c in classes if c.configured(tcfg, settings)), classes[-1])
    return cls(tcfg, settings)


for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")
