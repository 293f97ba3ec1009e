"""The device runner's API as the host sees it, plus host-side model I/O and shapes.

The device runner (`device_scripts/edgeq_runner.py`, installed as `edgeq_device`) must stay
one self-contained file, so the functions host and device share live there: input
preparation and quantization, seeded random inputs, accuracy, shape resolution. This module
is the ONE place host code imports them from (re-exported below), and it adds what only the
host does:

    open_model(artifact)          a host interpreter (ModelError if it is no model)
    interpreter(artifact)         an allocated host interpreter and its runtime name
    model_io(artifact)            every input/output tensor: name, shape, signature, dtype,
                                  quantization; is it a classifier
    runtime()                     the host interpreter package and version
    parse_input_shapes / resolve_shapes / apply_shapes / input_positions
                                  `--input-shape` values, as the device runner resolves them

What is judged with these (the data check, host accuracy, output agreement) is in
`edgeq.agreement`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeq_device import edgeq_runner as runner
from edgeq_device.edgeq_runner import (
    DEFAULT_INPUT_OFFSET,
    DEFAULT_INPUT_SCALE,
    GENERATOR,
    NON_SAMPLE_KEYS,
    RunnerFailure,
    benchmark,
    dequantize_output,
    display_name,
    evaluate_accuracy,
    input_spec,
    load_eval_data,
    make_interpreter,
    predict,
    prepare_images,
    preprocessing_rule,
    quantize_input,
    random_inputs,
    run_samples,
    tensor_info,
    to_input,
)

from . import tfenv
from .errors import ModelError, UsageError

__all__ = [
    "DEFAULT_INPUT_OFFSET",
    "DEFAULT_INPUT_SCALE",
    "GENERATOR",
    "NON_SAMPLE_KEYS",
    "ModelIO",
    "RunnerFailure",
    "TensorInfo",
    "apply_shapes",
    "benchmark",
    "dequantize_output",
    "display_name",
    "evaluate_accuracy",
    "find_interpreter",
    "input_positions",
    "input_spec",
    "interpreter",
    "load_eval_data",
    "make_interpreter",
    "model_io",
    "open_model",
    "parse_input_shapes",
    "predict",
    "prepare_images",
    "preprocessing_rule",
    "quantize_input",
    "random_inputs",
    "resolve_shapes",
    "run_samples",
    "runner",
    "runtime",
    "tensor_info",
    "to_input",
]

# --------------------------------------------------------------------------- tensors


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor as the interpreter describes it."""

    name: str
    index: int
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> TensorInfo:
        """From an interpreter detail dict or a run document's tensor entry."""
        i = runner._info(detail)
        return cls(
            name=str(i["name"]),
            index=int(i["index"]) if i.get("index") is not None else -1,
            shape=tuple(int(v) for v in i["shape"]),
            shape_signature=tuple(int(v) for v in i["shape_signature"]),
            dtype=str(i["dtype"]),
            scale=float(i["scale"]),
            zero_point=int(i["zero_point"]),
        )

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    @property
    def dynamic(self) -> bool:
        return any(v == -1 for v in self.shape_signature)

    @property
    def short_name(self) -> str:
        """The name without the converter's `serving_default_` / `:0` decoration."""
        return runner._short_name(self.name)

    def describe(self) -> str:
        """`image float32 [-1, 64, 64, 3]` (plus `s=…, zp=…` when quantized)."""
        sig = ", ".join(str(v) for v in self.shape_signature)
        q = f" (s={self.scale:.4g}, zp={self.zero_point})" if self.quantized else ""
        return f"{runner.display_name(self.name)} {self.dtype} [{sig}]{q}"

    def compact(self) -> str:
        """`uint8[-1,48,48,1]`: dtype and shape signature, for tables."""
        return f"{self.dtype}[{','.join(str(v) for v in self.shape_signature)}]"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"], d["shape_signature"] = list(self.shape), list(self.shape_signature)
        return d


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs, and whether accuracy applies to it."""

    path: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def classes(self) -> int | None:
        """N for a classifier (one output of [1, N] scores, N > 1), else None."""
        return runner.classifier_classes([t.to_dict() for t in self.outputs])[0]

    @property
    def accuracy_note(self) -> str | None:
        """Why accuracy does not apply (None for a classifier)."""
        return runner.classifier_classes([t.to_dict() for t in self.outputs])[1]

    def describe_inputs(self) -> str:
        return ", ".join(t.describe() for t in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "classes": self.classes,
            "accuracy_note": self.accuracy_note,
        }


_QUIET: dict[type, type] = {}


def find_interpreter() -> tuple[type, str, str | None]:
    """The device runner's find_interpreter for this host, with LiteRT's one-time INFO line
    about its XNNPACK delegate kept off edgeq's stderr (tfenv.runtime_notices_dropped;
    --debug shows it). The line comes with the first allocate_tensors that creates the
    delegate (not every model does): allocations are watched until it has been seen."""
    cls, name, version = runner.find_interpreter()
    if cls not in _QUIET:

        class Quiet(cls):  # type: ignore[misc, valid-type]
            _notice_seen = False

            def allocate_tensors(self):
                if Quiet._notice_seen:
                    return super().allocate_tensors()
                dropped: list[str] = []
                try:
                    with tfenv.runtime_notices_dropped() as dropped:
                        return super().allocate_tensors()
                finally:  # the list is filled when the block is over
                    Quiet._notice_seen = Quiet._notice_seen or bool(dropped)

        Quiet.__name__ = Quiet.__qualname__ = cls.__name__
        _QUIET[cls] = Quiet
    return _QUIET[cls], name, version


def open_model(artifact: Path, threads: int | None = None) -> Any:
    """A host interpreter for `artifact` (not yet allocated); ModelError if it is no model."""
    cls, _, _ = find_interpreter()
    try:
        return make_interpreter(cls, str(artifact), threads)
    except RunnerFailure as exc:
        what = "not a TFLite model" if exc.kind == "BadModel" else "cannot be run here"
        raise ModelError(f"{artifact}: {what} ({exc.message}); {exc.hint}") from None


def interpreter(artifact: Path, threads: int | None = None) -> tuple[Any, str]:
    """An allocated interpreter for `artifact` and the runtime's "name version"."""
    interp = open_model(artifact, threads)
    try:
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{artifact}: cannot allocate the model ({exc})") from None
    return interp, runtime()


def model_io(artifact: Path) -> ModelIO:
    """Every input and output tensor of `artifact`, read by this host's interpreter."""
    interp = open_model(artifact)
    return ModelIO(
        path=str(artifact),
        inputs=tuple(TensorInfo.from_detail(d) for d in interp.get_input_details()),
        outputs=tuple(TensorInfo.from_detail(d) for d in interp.get_output_details()),
    )


def runtime() -> str:
    """`ai-edge-litert 2.3.0`: the host interpreter package and version."""
    _, name, version = find_interpreter()
    return f"{name} {version or ''}".strip()


# --------------------------------------------------------------------------- shapes


def parse_input_shapes(items: Iterable[str] | None) -> dict[str, list[int]]:
    """`--input-shape NAME=d0,d1,...` values -> {NAME: shape}; UsageError if malformed."""
    try:
        return runner.parse_input_shapes(list(items or ()))
    except RunnerFailure as exc:
        raise UsageError(exc.message) from None


def input_positions(io: ModelIO, input_shapes: dict[str, list[int]] | None) -> dict[int, list[int]]:
    """For each input position given a shape with `--input-shape`, that shape."""
    try:
        return runner.match_inputs([t.to_dict() for t in io.inputs], input_shapes or {})
    except RunnerFailure as exc:
        raise UsageError(f"{Path(io.path).name}: {exc.message}") from None


def resolve_shapes(
    io: ModelIO,
    input_shapes: dict[str, list[int]] | None = None,
    data_sample_shape: Sequence[int] | dict[int, list[int]] | None = None,
) -> list[list[int]]:
    """The shape each input runs at (as the device runner resolves it); UsageError naming
    the input and its signature when a dynamic dimension is left unset. The data's sample
    shape fills input 0's dynamic dimensions, or each input's ({position: shape})."""
    fill: list[int] | dict[int, list[int]] | None = None
    if isinstance(data_sample_shape, dict):
        fill = {int(k): list(v) for k, v in data_sample_shape.items()}
    elif data_sample_shape is not None:
        fill = list(data_sample_shape)
    try:
        return runner.resolve_input_shapes(
            [t.to_dict() for t in io.inputs], input_positions(io, input_shapes), fill
        )
    except RunnerFailure as exc:
        raise UsageError(f"{Path(io.path).name}: {exc.message}") from None


def apply_shapes(interp: Any, shapes: list[list[int]], artifact: Path) -> None:
    """Resize the interpreter's inputs to `shapes` and allocate (UsageError if refused)."""
    try:
        runner.apply_input_shapes(interp, shapes)
    except RunnerFailure as exc:
        cls = UsageError if exc.kind == "BadInput" else ModelError
        raise cls(f"{artifact}: {exc.message}") from None
