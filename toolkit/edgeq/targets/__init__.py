"""Targets: where the benchmark runs. One module per transport, each a `Target` subclass
that declares its own config keys (`fields`) and registers itself with `@register`.

To add a transport: a new module here with a registered `Target` subclass (the five
primitives of `base.Target`, its `fields`, `describe()` and `identity()`), and its module
name in the `modules` of `TRANSPORTS` below. `edgeq.toml` validation, the lab inventory and
`edgeq targets` all derive from this registry.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..fields import Field, TargetConfig
from ..registry import Registry
from .base import COMMON_FIELDS, CommandResult, Target, quote_argv

__all__ = [
    "COMMON_FIELDS",
    "TRANSPORTS",
    "CommandResult",
    "Target",
    "make_target",
    "quote_argv",
    "register",
    "transport_class",
    "transport_fields",
]

TRANSPORTS: Registry[type[Target]] = Registry(
    "transport",
    key="transport",
    error=ConfigError,
    package=__name__,
    modules=("local", "ssh", "adb", "adb_ssh"),
)

#: Class decorator: make `cls` the implementation of its `transport`.
register = TRANSPORTS.register


def transport_class(name: str, where: str = "") -> type[Target]:
    if name not in TRANSPORTS:
        raise ConfigError(
            f"{where + ': ' if where else ''}unknown transport {name!r}; choose one of "
            f"{', '.join(TRANSPORTS)}"
        )
    return TRANSPORTS.get(name)


def transport_fields(name: str) -> dict[str, Field]:
    """The keys a `[targets.NAME]` table of this transport may hold (without the runner's)."""
    return {**COMMON_FIELDS, **transport_class(name).fields}


def make_target(config: TargetConfig, keep: bool = False) -> Target:
    """A Target for the config (nothing is opened yet)."""
    return transport_class(config.transport, config.where)(config, keep)
