"""`float32`: the model as trained, no quantization (the reference for every drop)."""

from __future__ import annotations

from .base import QuantMode, register


def configure(converter, tf, calibration) -> None:
    pass


MODE = register(QuantMode("float32", "no quantization", calibrated=False, configure=configure))
