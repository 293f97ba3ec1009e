"""`int8`: full integer (int8 weights, activations, input and output), calibrated on the
training split. Options: keep named layers in float (`--keep-float`), or let edgeq pick
them until the accuracy drop fits (`--keep-float-auto --max-drop-pp X`); both go through
TF's QuantizationDebugger (`edgeq.quantmodes.selective`).
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from . import selective
from .base import Calibration, Option, QuantMode, register


def configure(converter, tf, calibration: Calibration | None) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration.representative_dataset()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def prepare(model: Any, calibration: Calibration, options: dict[str, Any]) -> Any:
    """Calibrate the debugger once and resolve `--keep-float` names (unknown = exit 2)."""
    if not (options.get("keep_float") or options.get("keep_float_auto") is not None):
        return None
    if options.get("keep_float_auto") is not None and float(options["keep_float_auto"]) < 0:
        raise UsageError(f"--max-drop-pp must be >= 0, got {options['keep_float_auto']}")
    debugger = selective.Debugger(model, calibration)
    keep = debugger.resolve(options.get("keep_float") or [])
    return {"debugger": debugger, "keep": keep}


def convert(
    model: Any,
    calibration: Calibration,
    options: dict[str, Any],
    plan: Any = None,
    validation: Any = None,
    progress: Any = None,
) -> tuple[bytes, dict[str, Any]] | None:
    """Selective int8 when an option asks for it; None = the plain converter path."""
    if plan is None:
        return None
    if options.get("keep_float_auto") is not None:
        return selective.auto_keep_float(
            plan["debugger"], validation, float(options["keep_float_auto"]), progress
        )
    return selective.selective_int8(plan["debugger"], plan["keep"])


MODE = register(
    QuantMode(
        "int8",
        "full integer, int8 input and output, calibrated on the training split",
        calibrated=True,
        configure=configure,
        options={
            "keep_float": Option("--keep-float NODE[,NODE]", "keep these layers in float"),
            "keep_float_auto": Option(
                "--keep-float-auto --max-drop-pp X",
                "keep the worst layers in float until the drop on a validation split is ≤ X",
            ),
        },
        prepare=prepare,
        convert=convert,
        manifest_defaults={"keep_float": []},
    )
)
