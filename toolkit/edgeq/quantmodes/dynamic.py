"""`dynamic`: dynamic-range quantization, int8 weights with float activations."""

from __future__ import annotations

from .base import QuantMode, register


def configure(converter, tf, calibration) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


MODE = register(
    QuantMode(
        "dynamic",
        "dynamic-range: int8 weights, float activations (no calibration)",
        calibrated=False,
        configure=configure,
    )
)
