"""`int16x8`: int16 activations, int8 weights, float input and output."""

from __future__ import annotations

from .base import QuantMode, register


def configure(converter, tf, calibration) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration.representative_dataset()
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]


MODE = register(
    QuantMode(
        "int16x8",
        "int16 activations, int8 weights (float input/output), calibrated on the training split",
        calibrated=True,
        configure=configure,
    )
)
