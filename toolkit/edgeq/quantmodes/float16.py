"""`float16`: float16 weights, float32 compute."""

from __future__ import annotations

from .base import QuantMode, register


def configure(converter, tf, calibration) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


MODE = register(QuantMode("float16", "float16 weights", calibrated=False, configure=configure))
