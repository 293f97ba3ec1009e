"""The conversion modes, as a registry: one module per mode, one name each in `REGISTRY`
(`base.py`).

    from edgeq import quantmodes
    quantmodes.MODES                 # ("float32", "dynamic", "float16", "int8", "int16x8")
    quantmodes.get("int8").calibrated

The order of those names is the canonical order (manifests, tables, `all`). The mode
modules are imported on first use (each calls `register`). The engines the modes share
live beside them: `converter` (the plain converter path) and `selective` (TF's
QuantizationDebugger, for int8 with layers kept in float).
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import REGISTRY, Calibration, CliParam, Option, QuantMode, register

__all__ = [
    "CALIBRATED",
    "MODES",
    "REGISTRY",
    "Calibration",
    "CliParam",
    "Option",
    "QuantMode",
    "get",
    "options",
    "register",
]


def get(name: str) -> QuantMode:
    """The registered mode `name`; an unknown one is a UsageError listing the valid ones."""
    if name not in REGISTRY:
        raise UsageError(f"unknown mode {name!r}; choose from {', '.join(REGISTRY)} or all")
    return REGISTRY[name]


def options() -> dict[str, Option]:
    """Every registered mode's options by name, in mode order (what `edgeq convert` takes;
    a name two modes declare is one option, as the first declares it)."""
    found: dict[str, Option] = {}
    for mode in REGISTRY.values():
        for name, option in mode.options.items():
            found.setdefault(name, option)
    return found


def __getattr__(name: str) -> Any:
    """`MODES` and `CALIBRATED`, read from the registry on first use (then kept)."""
    if name == "MODES":
        value: tuple[str, ...] = REGISTRY.names()
    elif name == "CALIBRATED":
        value = tuple(m for m, mode in REGISTRY.items() if mode.calibrated)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
