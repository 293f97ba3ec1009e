"""The plain converter path: a Keras model to a TFLite flatbuffer in one registered mode."""

from __future__ import annotations

from typing import Any

from .. import tfenv
from ..errors import ModelError, UsageError
from . import get
from .base import Calibration

__all__ = ["convert_model", "converter"]


def converter(model: Any) -> tuple[Any, Any]:
    """(tensorflow, a `TFLiteConverter` for the Keras `model`)."""
    tf = tfenv.tf()
    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def convert_model(model: Any, mode: str, calibration: Calibration | None = None) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer in `mode` (the plain converter path)."""
    spec = get(mode)
    if spec.calibrated and calibration is None:
        raise UsageError(f"mode {mode} needs calibration data")
    tf, conv = converter(model)
    spec.configure(conv, tf, calibration)
    try:
        with tfenv.stdout_to_log(), tfenv.native_stderr_to_log():
            return conv.convert()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ModelError(f"the TFLite converter cannot produce mode {mode}: {reason}") from None
