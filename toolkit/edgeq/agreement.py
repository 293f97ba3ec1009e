"""What is judged on the host about a model and its data, with the device runner's code.

check_data(io, data)          the pre-push check of evaluation data against the model
                              (DataError, exit 2, naming both shapes and the fix)
host_accuracy(artifact, npz)  top-1 on this host's interpreter, as the device computes it
reference_for(artifact)       the model the device's outputs are compared with
agreement(artifact, run, npz) the device's agreement outputs vs the host reference
host_agreement(artifact, n)   the same with the artifact run here (for `edgeq eval`)
compare_outputs(...)          per output: max abs diff, RMSE, cosine, top-1 agreement
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import fsutil, manifest
from .devapi import (
    GENERATOR,
    ModelIO,
    RunnerFailure,
    TensorInfo,
    apply_shapes,
    dequantize_output,
    evaluate_accuracy,
    input_positions,
    input_spec,
    load_eval_data,
    model_io,
    open_model,
    preprocessing_rule,
    quantize_input,
    random_inputs,
    resolve_shapes,
    run_samples,
    runner,
    runtime,
    to_input,
)
from .errors import DataError, ModelError, RunnerError, UsageError
from .evaldata import EvalData

__all__ = [
    "NO_DATA_FIX",
    "AgreementReport",
    "DataCheck",
    "OutputAgreement",
    "Reference",
    "agreement",
    "agreement_inputs",
    "check_data",
    "compare_outputs",
    "host_accuracy",
    "host_agreement",
    "reference_for",
    "reference_outputs",
]

NO_DATA_FIX = "or run with --no-data (size, latency and output agreement are still judged)"


# --------------------------------------------------------------------------- data check


@dataclass(frozen=True)
class DataCheck:
    """What check_data found: whether accuracy applies, and how the data will be fed."""

    applicable: bool
    note: str | None
    classes: int | None
    samples: int
    #: the per-sample shape fed (a multi-input model's data: {input position: shape})
    sample_shape: list[int] | dict[int, list[int]]
    #: the rule each sample gets (a multi-input model's data: input 0's; `inputs` has all)
    preprocess: dict[str, Any]
    #: a multi-input model's data: per input, in order, its key and rule
    inputs: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_data(
    io: ModelIO, data: EvalData, input_shapes: dict[str, list[int]] | None = None
) -> DataCheck:
    """Check evaluation data against the model BEFORE anything is pushed.

    DataError (exit 2) names the model's input shape, the data's shape and the fix. A
    model that is not a classifier passes with `applicable=False` and the reason (its
    outputs are judged by output agreement instead).
    """
    name = Path(io.path).name
    if isinstance(data.x, dict):
        return _check_multi(io, data, input_shapes)
    x = data.x
    got = f"{list(x.shape[1:])} ({x.dtype}, {len(x)} samples)"
    if len(io.inputs) != 1:
        keys = ", ".join(t.short_name for t in io.inputs)
        raise DataError(
            f"{data.source}: evaluation data x feeds one input, and {name} has "
            f"{len(io.inputs)} ({io.describe_inputs()}): store one array per input in the "
            f".npz, keyed by its name ({keys}), {NO_DATA_FIX}"
        )
    inp = io.inputs[0]
    given = input_positions(io, input_shapes).get(0)
    try:
        sample_shape, add_channel = runner.fit_data(x.shape, inp.to_dict(), given)
    except RunnerFailure:
        want = list(given[1:]) if given else list(inp.shape_signature[1:])
        fixes = [f"give data of shape [N, {', '.join(map(str, want))}]"]
        if data.kind == "npz":
            fixes.append("or an image folder CLASS_NAME/*.png|jpg (resized for you)")
        if inp.dynamic or given:
            example = ",".join(map(str, [1, *x.shape[1:]]))
            fixes.append(f"or --input-shape {inp.short_name}={example} if the model takes it")
        raise DataError(
            f"{data.source}: samples of shape {got} do not fit {name}, whose input is "
            f"{inp.describe()}: {', '.join(fixes)}, {NO_DATA_FIX}"
        ) from None
    try:
        rule = preprocessing_rule(
            x.dtype, inp.to_dict(), data.preprocess_scale, data.preprocess_offset
        )
        to_input(x[:1, ..., None] if add_channel else x[:1], _d(inp), rule)
    except RunnerFailure as exc:
        raise DataError(
            f"{data.source}: {exc.message} ({name}'s input is {inp.describe()}); store x as "
            f"uint8 or float32, with preprocess_scale/preprocess_offset for the model's value "
            f"range, {NO_DATA_FIX}"
        ) from None
    resolve_shapes(io, input_shapes, sample_shape)
    return _labels_and_note(io, data, list(sample_shape), rule)


def _check_multi(
    io: ModelIO, data: EvalData, input_shapes: dict[str, list[int]] | None
) -> DataCheck:
    """check_data for an .npz with one array per input (the device runner's feed_plan)."""
    try:
        plan = _feed_plan(io, data, input_shapes)
    except DataError as exc:
        raise DataError(f"{exc.message}; {NO_DATA_FIX}") from None
    sample_shape = {i: list(p["sample_shape"]) for i, p in enumerate(plan)}
    resolve_shapes(io, input_shapes, sample_shape)
    check = _labels_and_note(io, data, sample_shape, plan[0]["rule"])
    inputs = [{"key": p["key"], "preprocess": p["rule"]} for p in plan]
    return DataCheck(**{**asdict(check), "inputs": inputs})


def _feed_plan(
    io: ModelIO, data: EvalData, input_shapes: dict[str, list[int]] | None
) -> list[dict[str, Any]]:
    """The device runner's feed_plan for `data` (checked by check_data already)."""
    try:
        return runner.feed_plan(
            data.x,
            [_d(t) for t in io.inputs],
            input_positions(io, input_shapes),
            data.preprocess_scale,
            data.preprocess_offset,
        )
    except RunnerFailure as exc:
        raise DataError(f"{data.source}: {exc.message} ({Path(io.path).name})") from None


def _labels_and_note(
    io: ModelIO,
    data: EvalData,
    sample_shape: list[int] | dict[int, list[int]],
    rule: dict[str, Any],
) -> DataCheck:
    name, y = Path(io.path).name, data.y
    classes = io.classes
    if classes is not None and y is not None:
        yv = np.asarray(y)
        if yv.size and (int(yv.min()) < 0 or int(yv.max()) >= classes):
            raise DataError(
                f"{data.source}: labels y range over {int(yv.min())}..{int(yv.max())}, and "
                f"{name} scores {classes} classes (labels 0..{classes - 1}): store class "
                f"ids in that range, {NO_DATA_FIX}"
            )
    note = io.accuracy_note
    if classes is not None and y is None:
        note = "not measured: the data has no labels y (outputs are compared)"
    return DataCheck(
        applicable=classes is not None and y is not None,
        note=note,
        classes=classes,
        samples=data.samples,
        sample_shape=sample_shape,
        preprocess=rule,
    )


def _d(t: TensorInfo) -> dict[str, Any]:
    return {**t.to_dict(), "quantization": (t.scale, t.zero_point)}


# --------------------------------------------------------------------------- accuracy


def host_accuracy(
    artifact: Path,
    npz: Path,
    limit: int | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    input_shapes: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Top-1 of `artifact` on the staged evaluation .npz, on this host's interpreter, exactly
    as the device runner computes it (first `limit` samples). DataError if the data does
    not fit or the model is not a classifier."""
    try:
        x, y, scale, offset = load_eval_data(str(npz))
    except RunnerFailure as exc:
        raise DataError(exc.message) from None
    io = model_io(artifact)
    data = EvalData(x, y, str(npz), "npz", scale, offset)
    check = check_data(io, data, input_shapes)
    if not check.applicable:
        raise DataError(f"{artifact}: accuracy {check.note}")
    interp = open_model(artifact, threads)
    shapes = resolve_shapes(io, input_shapes, check.sample_shape)
    apply_shapes(interp, shapes, artifact)
    assert y is not None  # applicable
    if isinstance(x, dict):  # one array per input: the device's own loop
        plan = _feed_plan(io, data, input_shapes)
        acc = runner.accuracy_fed(interp, plan, y[:limit] if limit else y, shapes)
    else:
        if limit:
            x, y = x[:limit], y[:limit]
        if x.ndim == len(check.sample_shape):
            x = x[..., None]
        acc = evaluate_accuracy(interp, x, y, scale, offset, batch_size)
    acc["source"] = "host"
    acc["classes"] = check.classes
    acc["runtime"] = runtime()
    acc["data_sha256"] = fsutil.sha256_file(npz)
    acc["model_sha256"] = fsutil.sha256_file(artifact)
    return acc


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Reference:
    """The model a run's outputs are compared with."""

    path: Path
    kind: str  # "float32 sibling" (from the manifest) or "same model"

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind}


def reference_for(artifact: Path) -> Reference:
    """The float32 sibling of `artifact` (same source model in its manifest) if there is
    one, else the artifact itself (then the host interpreter is the reference)."""
    artifact = Path(artifact)
    sibling = manifest.float32_sibling(artifact)
    if sibling is not None and sibling != artifact:
        return Reference(sibling, "float32 sibling")
    return Reference(artifact, "same model")


@dataclass(frozen=True)
class OutputAgreement:
    """How one output of the measured model compares with the reference's."""

    name: str
    shape: list[int]
    max_abs_diff: float
    rmse: float
    cosine: float
    reference_abs_max: float
    top1_agreement: float | None = None
    #: None when the output can say whether the models agree; else why it cannot (the
    #: reference's output is all zero or the same for every input: any model that also
    #: outputs a constant "agrees")
    not_informative: str | None = None

    @property
    def informative(self) -> bool:
        return self.not_informative is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "informative": self.informative}


@dataclass(frozen=True)
class AgreementReport:
    """Outputs of N inputs (seeded random ones, or evaluation data): measured model vs the
    reference.

    `score` is what `min_output_agreement` judges: the top-1 agreement for a classifier,
    else the lowest cosine similarity over the outputs.
    """

    reference: Reference
    samples: int
    seed: int
    outputs: tuple[OutputAgreement, ...]
    classifier: bool
    #: what was fed: "random" (seeded inputs) or "data" (the evaluation data's samples)
    source: str = "random"
    #: a model that keeps state between calls: how the measured side reset it between
    #: samples (runner.RESET_VARIABLES / FRESH_INTERPRETER), or runner.HISTORY (it could
    #: not: the sequences over the same ordered samples are compared), and the note
    state: str | None = None
    state_reset: str | None = None

    @property
    def informative(self) -> bool:
        """At least one output can tell agreement from coincidence (see `score`)."""
        return any(o.informative for o in self.outputs)

    @property
    def not_informative(self) -> str:
        """Why the agreement says nothing ("" when it does)."""
        if self.informative:
            return ""
        why = sorted({o.not_informative or "" for o in self.outputs})
        return f"not informative: the reference's outputs are {' / '.join(why)}"

    @property
    def score(self) -> float | None:
        """Top-1 agreement for a classifier whose first output is informative, else the
        lowest cosine similarity over the informative outputs; None when none is."""
        if self._top1_judged:
            return self.outputs[0].top1_agreement
        cosines = [o.cosine for o in self.outputs if o.informative]
        return min(cosines) if cosines else None

    @property
    def _top1_judged(self) -> bool:
        first = self.outputs[0]
        return self.classifier and first.top1_agreement is not None and first.informative

    @property
    def score_kind(self) -> str:
        if self._top1_judged:
            return "top-1 agreement"
        return "cosine similarity (lowest informative output)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_dict(),
            "samples": self.samples,
            "seed": self.seed,
            "generator": GENERATOR,
            "source": self.source,
            "state": self.state,
            "state_reset": self.state_reset,
            "compared": "the sequence of outputs over the same ordered samples"
            if self.state_reset == runner.HISTORY
            else "each sample's outputs",
            "classifier": self.classifier,
            "score": self.score,
            "score_kind": self.score_kind,
            "informative": self.informative,
            "not_informative": self.not_informative or None,
            "outputs": [o.to_dict() for o in self.outputs],
        }


def agreement_inputs(specs: list[dict[str, Any]], n: int, seed: int) -> Iterator[list]:
    """The very inputs the device fed in agreement mode (run document's `agreement.inputs`)."""
    return random_inputs(specs, n, seed)


def _match_reference_inputs(specs: list[dict[str, Any]], ref_io: ModelIO) -> list[int]:
    """For each reference input, the position of the measured model's input it takes."""
    if len(specs) != len(ref_io.inputs):
        raise ModelError(
            f"{ref_io.path} has {len(ref_io.inputs)} inputs and the measured model "
            f"{len(specs)}: it cannot be the reference"
        )
    names = [runner._short_name(s["name"]) for s in specs]
    ref_names = [t.short_name for t in ref_io.inputs]
    if sorted(names) == sorted(ref_names) and len(set(names)) == len(names):
        return [names.index(n) for n in ref_names]
    return list(range(len(specs)))


def data_inputs(section: dict[str, Any], data_npz: Path | None) -> list[list[np.ndarray]]:
    """The samples a device fed in agreement mode from evaluation data (`source: data`),
    rebuilt from the same staged .npz with the device's own rule."""
    if data_npz is None or not Path(data_npz).is_file():
        raise UsageError("the device compared outputs on evaluation data this host has not got")
    if section.get("data_sha256") and fsutil.sha256_file(data_npz) != section["data_sha256"]:
        raise UsageError(f"{data_npz} is not the data the device fed (sha256 differs)")
    try:
        x = load_eval_data(str(data_npz))[0]
    except RunnerFailure as exc:
        raise DataError(exc.message) from None
    specs = section["inputs"]
    feeds = section.get("data_inputs") or [{"key": "x", "preprocess": section.get("preprocess")}]
    if len(feeds) != len(specs):
        raise UsageError(
            f"the device fed {len(feeds)} input(s) from data and the model has {len(specs)}"
        )
    plan = []
    for spec, feed in zip(specs, feeds, strict=True):
        arr = x.get(feed["key"]) if isinstance(x, dict) else x
        if arr is None:
            raise UsageError(f"{data_npz} has no array {feed['key']!r}, which the device fed")
        if arr.ndim == len(spec["shape"]) - 1:
            arr = arr[..., None]
        plan.append({"key": feed["key"], "x": arr, "rule": feed["preprocess"] or {"rule": "raw"}})
    shapes = [s["shape"] for s in specs]
    return list(runner.data_samples_fed(plan, shapes, specs, int(section["samples"])))


def reference_outputs(
    reference: Path,
    specs: list[dict[str, Any]],
    n: int,
    seed: int,
    threads: int | None = None,
    samples: list[list[np.ndarray]] | None = None,
    history: bool = False,
) -> tuple[list[np.ndarray], ModelIO]:
    """Run the reference on the agreement inputs (`samples`, else the seeded random ones;
    converted to its dtypes through their real values, at the measured model's shapes);
    returns (outputs stacked [n, ...], its IO). A reference that keeps state has it reset
    between samples (runner.state_reset: this runtime's way), as the device did; with
    `history` (the device could not reset it) it runs the samples in order on one
    interpreter, so that the two sequences are compared."""
    ref_io = model_io(reference)
    order = _match_reference_inputs(specs, ref_io)
    shapes = [list(specs[j]["shape"]) for j in order]
    interp = open_model(reference, threads)
    apply_shapes(interp, shapes, reference)
    ref_details = interp.get_input_details()

    def fresh():
        it = open_model(reference, threads)
        apply_shapes(it, shapes, reference)
        return it

    def convert(sample: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for detail, j in zip(ref_details, order, strict=True):
            arr, spec = sample[j], specs[j]
            want = np.dtype(detail["dtype"])
            if arr.dtype == want and (spec.get("scale") or 0.0) == detail["quantization"][0]:
                out.append(arr)
                continue
            real = dequantize_output(arr, spec)
            if want.kind == "f":
                out.append(real.astype(want))
            elif detail["quantization"][0]:
                out.append(quantize_input(real, detail))
            else:
                out.append(np.asarray(real).astype(want))
        return out

    source = samples if samples is not None else agreement_inputs(specs, n, seed)
    converted = [convert(s) for s in source]
    if history:  # the measured model's state could not be reset: the same ordered sequence
        return run_samples(fresh(), converted), ref_io
    method = runner.state_reset(interp, converted[0], fresh)[0] if converted else None
    interp = fresh()
    return run_samples(interp, converted, runner.resetter(interp, method, fresh)), ref_io


#: (reference file, size, mtime, input specs, n, seed, threads, history) → its outputs on the seeded
#: inputs: a lab judges every device's run of one model against the same reference on the
#: same inputs, so it is run once per model, not once per device.
_SEEDED: OrderedDict[tuple, tuple[list[np.ndarray], ModelIO]] = OrderedDict()
_SEEDED_MAX = 16
_SEEDED_LOCK = threading.Lock()


def _seeded_reference_outputs(
    reference: Path,
    specs: list[dict[str, Any]],
    n: int,
    seed: int,
    threads: int | None,
    history: bool = False,
) -> tuple[list[np.ndarray], ModelIO]:
    """`reference_outputs` on the seeded random inputs, remembered (read-only arrays) for as
    long as the reference file is unchanged (its size and mtime are in the key)."""
    st = Path(reference).stat()
    key = (
        str(reference),
        st.st_size,
        st.st_mtime_ns,
        json.dumps(specs, sort_keys=True, default=str),
        n,
        seed,
        threads,
        history,
    )
    with _SEEDED_LOCK:
        hit = _SEEDED.get(key)
        if hit is not None:
            _SEEDED.move_to_end(key)
            return hit
    outs, io = reference_outputs(reference, specs, n, seed, threads, None, history)
    for arr in outs:
        arr.setflags(write=False)
    with _SEEDED_LOCK:
        _SEEDED[key] = (outs, io)
        while len(_SEEDED) > _SEEDED_MAX:
            _SEEDED.popitem(last=False)
    return outs, io


def compare_outputs(
    measured: Sequence[np.ndarray],
    measured_info: Sequence[TensorInfo],
    reference: Sequence[np.ndarray],
    reference_info: Sequence[TensorInfo],
    classifier: bool,
) -> list[OutputAgreement]:
    """Per output, in real values (quantized outputs dequantized): max abs diff, RMSE,
    cosine similarity over all samples, and top-1 agreement of the argmax for a classifier.
    Arrays are [n, *output shape]."""
    if len(measured) != len(reference):
        raise ModelError(
            f"the reference has {len(reference)} outputs and the measured model "
            f"{len(measured)}: they cannot be compared"
        )
    result = []
    for k, (m, mi, r, ri) in enumerate(
        zip(measured, measured_info, reference, reference_info, strict=True)
    ):
        mv = dequantize_output(m, _d(mi)).astype(np.float64)
        rv = dequantize_output(r, _d(ri)).astype(np.float64)
        if mv.shape != rv.shape:
            raise ModelError(
                f"output {k} ({mi.name}) has shape {list(mv.shape[1:])} on the measured model "
                f"and {list(rv.shape[1:])} on the reference: they cannot be compared"
            )
        n = mv.shape[0]
        diff = mv - rv
        top1 = None
        if classifier and k == 0 and n:
            top1 = float(
                np.mean(mv.reshape(n, -1).argmax(axis=1) == rv.reshape(n, -1).argmax(axis=1))
            )
        result.append(
            OutputAgreement(
                name=mi.name,
                shape=list(mi.shape),
                max_abs_diff=float(np.max(np.abs(diff))) if diff.size else 0.0,
                rmse=float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0,
                cosine=_cosine(mv.ravel(), rv.ravel()),
                reference_abs_max=float(np.max(np.abs(rv))) if rv.size else 0.0,
                top1_agreement=top1,
                not_informative=_uninformative(rv),
            )
        )
    return result


def _uninformative(ref: np.ndarray) -> str | None:
    """Why a reference output [n, ...] cannot judge agreement, or None: all zero, or the
    same for every input (then top-1 and cosine are met by any constant output)."""
    if ref.size == 0:
        return "empty"
    if not np.any(ref):
        return "all zero"
    if ref.shape[0] > 1 and np.all(ref == ref[:1]):
        return "the same for every input"
    return None


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0 or not (math.isfinite(na) and math.isfinite(nb)):
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def agreement(
    artifact: Path,
    run: dict[str, Any],
    outputs_npz: Path,
    reference: Reference | None = None,
    threads: int | None = None,
    data_npz: Path | None = None,
) -> AgreementReport:
    """Compare the outputs a device saved in agreement mode (`--agreement N --outputs-out`,
    pulled to `outputs_npz`) with the reference run on this host on the same inputs (the
    seeded random ones, or the samples of `data_npz` when the device fed evaluation data)."""
    section = run.get("agreement")
    if not isinstance(section, dict) or not section.get("samples"):
        raise UsageError("the run has no agreement section (run the runner with --agreement N)")
    reference = reference or reference_for(artifact)
    specs, n, seed = section["inputs"], int(section["samples"]), int(section["seed"])
    try:
        with np.load(outputs_npz, allow_pickle=False) as f:
            measured = [f[o["key"]] for o in section["outputs"]]
    except (OSError, KeyError, ValueError) as exc:
        raise RunnerError(
            f"{outputs_npz}: the device's agreement outputs are unusable ({exc})"
        ) from None
    history = section.get("state_reset") == runner.HISTORY
    if section.get("source") == "data":
        samples = data_inputs(section, data_npz)
        ref, ref_io = reference_outputs(reference.path, specs, n, seed, threads, samples, history)
    else:
        ref, ref_io = _seeded_reference_outputs(reference.path, specs, n, seed, threads, history)
    measured_info = [TensorInfo.from_detail(o) for o in section["outputs"]]
    classifier = runner.classifier_classes(section["outputs"])[0] is not None
    outs = compare_outputs(measured, measured_info, ref, ref_io.outputs, classifier)
    return AgreementReport(
        reference,
        n,
        seed,
        tuple(outs),
        classifier,
        section.get("source") or "random",
        state=section.get("state"),
        state_reset=section.get("state_reset"),
    )


def host_agreement(
    artifact: Path,
    samples: int,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
    reference: Reference | None = None,
    threads: int | None = None,
    data_npz: Path | None = None,
) -> AgreementReport:
    """Agreement with `artifact` itself run on this host (what `edgeq eval` reports: an
    int8 model against its float32 sibling), on seeded random inputs, or on the samples of
    the staged evaluation data `data_npz` (fed as the device feeds them)."""
    reference = reference or reference_for(artifact)
    io = model_io(artifact)
    data = None
    if data_npz is not None:
        try:
            x, y, scale, offset = load_eval_data(str(data_npz))
        except RunnerFailure as exc:
            raise DataError(exc.message) from None
        data = EvalData(x, y, str(data_npz), "npz", scale, offset)
        shapes = resolve_shapes(io, input_shapes, check_data(io, data, input_shapes).sample_shape)
    else:
        shapes = resolve_shapes(io, input_shapes)
    interp = open_model(artifact, threads)
    apply_shapes(interp, shapes, artifact)
    details = interp.get_input_details()
    specs = [input_spec(d) for d in details]
    fed: list[list[np.ndarray]] | None = None
    if data is not None:
        plan = _feed_plan(io, data, input_shapes)
        fed = list(runner.data_samples_fed(plan, shapes, details, samples))

    def fresh():
        it = open_model(artifact, threads)
        apply_shapes(it, shapes, artifact)
        return it

    source = fed if fed is not None else list(agreement_inputs(specs, samples, seed))
    method, _ops, note = runner.state_reset(interp, source[0], fresh) if source else (None,) * 3
    interp = fresh()
    measured = run_samples(interp, source, runner.resetter(interp, method, fresh))
    out_info = [TensorInfo.from_detail(d) for d in interp.get_output_details()]
    ref, ref_io = reference_outputs(
        reference.path, specs, samples, seed, threads, fed, method == runner.HISTORY
    )
    classifier = io.classes is not None
    outs = compare_outputs(measured, out_info, ref, ref_io.outputs, classifier)
    return AgreementReport(
        reference,
        samples,
        seed,
        tuple(outs),
        classifier,
        "data" if fed else "random",
        state=note,
        state_reset=method,
    )
