"""The conversion modes, as a registry: one module per mode, one import line each.

    from edgeq import quantmodes
    quantmodes.MODES                 # ("float32", "dynamic", "float16", "int8", "int16x8")
    quantmodes.get("int8").calibrated

The order of the imports below is the canonical order (manifests, tables, `all`).
"""

from __future__ import annotations

from ..errors import UsageError
from .base import REGISTRY, Calibration, Option, QuantMode, register

# registration: one import per mode (each module calls `register`), in canonical order
# isort: off
from . import float32, dynamic, float16, int8, int16x8  # noqa: F401
# isort: on

MODES: tuple[str, ...] = tuple(REGISTRY)
CALIBRATED: tuple[str, ...] = tuple(m for m in MODES if REGISTRY[m].calibrated)

__all__ = [
    "CALIBRATED",
    "MODES",
    "REGISTRY",
    "Calibration",
    "Option",
    "QuantMode",
    "get",
    "register",
]


def get(name: str) -> QuantMode:
    """The registered mode `name`; an unknown one is a UsageError listing the valid ones."""
    if name not in REGISTRY:
        raise UsageError(f"unknown mode {name!r}; choose from {', '.join(MODES)} or all")
    return REGISTRY[name]
