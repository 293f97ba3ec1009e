"""Runners: what measures on the device, one module each, registered by name. See
`base.py` for the interface and how to add one."""

from __future__ import annotations

from .. import settings as settings_mod
from ..errors import ConfigError
from ..fields import Field, TargetConfig, f
from ..registry import Registry
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

RUNNERS: Registry[type[Runner]] = Registry(
    "runner", error=ConfigError, package=__name__, modules=("benchmark_model", "python")
)


def register(cls: type[Runner]) -> type[Runner]:
    """Class decorator: make `cls` the runner called `cls.name`, and its own `options` run
    settings (CLI options of deploy/bench, lab [run] keys)."""
    RUNNERS.register(cls)
    settings_mod.declare(*cls.options)
    return cls


def option_specs() -> tuple[settings_mod.Spec, ...]:
    """Every run setting: the shared ones and each registered runner's own."""
    RUNNERS.load()
    return settings_mod.all_specs()


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
    return RUNNERS.get(name)


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
