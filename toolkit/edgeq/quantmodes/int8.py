"""`int8`: full integer (int8 weights, activations, input and output), calibrated on the
training split. Options: keep named layers in float (`--keep-float`), or let edgeq pick
them until the accuracy drop fits (`--keep-float-auto --max-drop-pp X`), optionally only
while the mixed model's latency measured on a device stays within a limit
(`--max-latency-ms X --target T`); both go through TF's QuantizationDebugger
(`edgeq.quantmodes.selective`).
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from . import selective
from .base import Calibration, CliParam, Option, QuantMode, register


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
    limit = options.get("max_latency_ms")
    if limit is not None and not float(limit) > 0:
        raise UsageError(f"--max-latency-ms must be > 0, got {limit:g}")
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
    device: Any = None,
) -> tuple[bytes, dict[str, Any]] | None:
    """Selective int8 when an option asks for it; None = the plain converter path.
    `device(flatbuffer, what)`: measures a step's latency (`--max-latency-ms`)."""
    if plan is None:
        return None
    if options.get("keep_float_auto") is not None:
        limit = options.get("max_latency_ms")
        return selective.auto_keep_float(
            plan["debugger"],
            validation,
            float(options["keep_float_auto"]),
            progress,
            max_latency_ms=float(limit) if limit is not None else None,
            latency=device,
        )
    return selective.selective_int8(plan["debugger"], plan["keep"])


def _names(keep_float: list[str] | None) -> list[str]:
    """`--keep-float a,b --keep-float c` → ["a", "b", "c"]."""
    return [n for item in keep_float or [] for n in item.split(",") if n.strip()]


def _max_drop(keep_float_auto: bool, max_drop_pp: float) -> float | None:
    return max_drop_pp if keep_float_auto else None


MODE = register(
    QuantMode(
        "int8",
        "full integer, int8 input and output, calibrated on the training split",
        calibrated=True,
        configure=configure,
        options={
            "keep_float": Option(
                "--keep-float NODE[,NODE]",
                "keep these layers in float",
                cli=(
                    CliParam(
                        "keep_float",
                        list[str] | None,
                        None,
                        "--keep-float",
                        "int8: keep these layers in float, NODE[,NODE] (names as `edgeq "
                        "inspect` prints them, or tensor names; repeatable).",
                    ),
                ),
                value=_names,
            ),
            "keep_float_auto": Option(
                "--keep-float-auto --max-drop-pp X",
                "keep the worst layers in float until the drop on a validation split is ≤ X",
                cli=(
                    CliParam(
                        "keep_float_auto",
                        bool,
                        False,
                        "--keep-float-auto",
                        "int8: keep the worst layers in float until the drop on a validation "
                        "split of the TRAINING data is <= --max-drop-pp.",
                    ),
                    CliParam(
                        "max_drop_pp",
                        float,
                        0.1,
                        "--max-drop-pp",
                        "With --keep-float-auto: the largest drop allowed, in pp.",
                    ),
                ),
                value=_max_drop,
                conflicts=("keep_float",),
                validation=True,
                progress="keep-float search",
            ),
            "max_latency_ms": Option(
                "--max-latency-ms X --target T",
                "with --keep-float-auto: keep a layer in float only while the mixed model's "
                "latency measured on the target stays <= X ms",
                cli=(
                    CliParam(
                        "max_latency_ms",
                        float | None,
                        None,
                        "--max-latency-ms",
                        "With --keep-float-auto and --target: measure each step's model on "
                        "the device and keep a layer in float only while its latency (the "
                        "budget's percentile) stays <= X ms.",
                    ),
                ),
                requires=("keep_float_auto",),
            ),
        },
        prepare=prepare,
        convert=convert,
        manifest_defaults={"keep_float": []},
    )
)
