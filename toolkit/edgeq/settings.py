"""The run settings, defined once: how a device is measured (threads, timed runs, warm-up,
accuracy batch, timeouts, benchmark_model switches).

`SPECS` is the one definition. From it come the `RunSettings` dataclass, its validator,
the CLI options `deploy` and `bench` share (`cli_options`), the lab's `[run]` keys
(`LAB_FIELDS`) and the argv of both runners (`argv(settings, dialect)`). A test checks that
the device runner's own argparse defaults agree with these.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import UsageError
from .fields import Field


@dataclass(frozen=True)
class Spec:
    """One setting: its default, meaning, bounds, and how each consumer spells it."""

    name: str
    type: type
    default: Any
    help: str
    #: the CLI option(s), "" for none (e.g. "--use-xnnpack/--no-xnnpack")
    cli: str = ""
    #: the device runner's flag (edgeq_runner.py), "" when it does not take it
    runner: str = ""
    #: benchmark_model's flag name (without --), "" when it does not take it
    native: str = ""
    minimum: float | None = None
    exclusive: bool = False
    #: also a key of the lab's [run] table
    lab: bool = True
    optional: bool = False
    #: several values may be given ("1,2,4"; a list in lab.toml): each is measured
    many: bool = False

    @property
    def field(self) -> Field:
        types: tuple[type, ...] = (int, float) if self.type is float else (self.type,)
        if self.many:
            types = (*types, list)
        bounds = {} if self.many else {"minimum": self.minimum, "exclusive": self.exclusive}
        return Field(types, self.default, self.help, **bounds)


SPECS: tuple[Spec, ...] = (
    Spec("threads", int, 1, "Interpreter threads on the device; several (e.g. 1,2,4) are "
         "each measured, and the best one is judged.", "--threads", "--threads",
         "num_threads", minimum=1, many=True),
    Spec("runs", int, 100, "Timed inferences (at least).", "--runs", "--runs", "num_runs",
         minimum=1),
    Spec("min_s", float, 1.0, "Time the steady state for at least this many seconds.",
         "--min-s", "--min-s", "min_secs", minimum=0),
    Spec("warmup_runs", int, 10, "Untimed warm-up inferences.", "--warmup-runs",
         "--warmup-runs", "warmup_runs", minimum=0),
    Spec("warmup_min_s", float, 0.5, "Warm up for at least this many seconds.",
         "--warmup-min-s", "--warmup-min-s", "warmup_min_secs", minimum=0),
    Spec("max_s", float, 60.0, "Stop timing a phase after this many seconds.", "--max-s",
         "--max-s", "max_secs", minimum=0),
    Spec("max_samples", int, 100_000, "Timed inferences kept per loop; a steady state that "
         "fills them stops there (the validity says so: raise it).", "--max-samples",
         "--max-samples", minimum=1),
    Spec("batch_size", int, 64, "Accuracy batch size (images per interpreter call).",
         "--batch-size", "--batch-size", minimum=1),
    Spec("limit", int, None, "Evaluate on a deterministic subset of N samples.", "--limit",
         "--limit", minimum=1, lab=False, optional=True),
    Spec("timeout", float, 900.0, "Give up on the device run after this many seconds.",
         "--timeout", minimum=0, exclusive=True, lab=False),
    Spec("repeat", int, 1, "Measure the steady state N times, each in a fresh interpreter; "
         "with N >= 3 the budget judges the upper end of the 95 % interval.", "--repeat",
         minimum=1),
    Spec("cooldown_to", float, None, "Before each measurement wait until the hottest thermal "
         "zone is at most this many degrees C.", "--cooldown-to", optional=True),
    Spec("cooldown_max_s", float, 300.0, "Wait at most this long for --cooldown-to.",
         "--cooldown-max-s", minimum=0),
    Spec("pin_governor", str, "", "Set this CPU frequency governor (e.g. performance) for the "
         "run and restore the previous one afterwards.", "--pin-governor"),
    Spec("agreement", int, None, "Also run N seeded random inputs and compare every output with "
         "a host reference (default: 32 when there is no labelled data, else 0).",
         "--agreement", minimum=0, optional=True),
    Spec("agreement_seed", int, 0, "Seed of the agreement inputs.", "--agreement-seed",
         minimum=0),
    Spec("accept_invalid", bool, False, "Judge latency even when the run's validity is "
         "invalid (throttled, heated up, frequency changed).", "--accept-invalid"),
    Spec("use_xnnpack", bool, None, "benchmark_model: XNNPACK on/off (default: its own).",
         "--use-xnnpack/--no-xnnpack", native="use_xnnpack", optional=True),
    Spec("use_gpu", bool, False, "benchmark_model: the GPU delegate.", "--use-gpu",
         native="use_gpu"),
    Spec("use_nnapi", bool, False, "benchmark_model: the NNAPI delegate.", "--use-nnapi",
         native="use_nnapi"),
    Spec("op_profiling", bool, False, "benchmark_model: per-operator profile.",
         "--op-profiling", native="enable_op_profiling"),
    Spec("taskset", str, "", "benchmark_model: CPU mask to pin it to, e.g. f0 (big cores).",
         "--taskset"),
    Spec("benchmark_binary", str, "", "Run this native benchmark_model (else "
         "$EDGEQ_BENCHMARK_MODEL for adb targets, or benchmark_binary of the target).",
         "--benchmark-binary", lab=False),
)  # fmt: skip

SPEC = {s.name: s for s in SPECS}
_TASKSET = re.compile(r"(0[xX])?[0-9a-fA-F]+")


@dataclass(frozen=True)
class RunSettings:
    """How a device is measured. Build with keywords; `validate()` before use."""

    threads: int | tuple[int, ...] = SPEC["threads"].default
    runs: int = SPEC["runs"].default
    min_s: float = SPEC["min_s"].default
    warmup_runs: int = SPEC["warmup_runs"].default
    warmup_min_s: float = SPEC["warmup_min_s"].default
    max_s: float = SPEC["max_s"].default
    max_samples: int = SPEC["max_samples"].default
    batch_size: int = SPEC["batch_size"].default
    limit: int | None = SPEC["limit"].default
    timeout: float = SPEC["timeout"].default
    use_xnnpack: bool | None = SPEC["use_xnnpack"].default
    use_gpu: bool = SPEC["use_gpu"].default
    use_nnapi: bool = SPEC["use_nnapi"].default
    op_profiling: bool = SPEC["op_profiling"].default
    taskset: str = SPEC["taskset"].default
    benchmark_binary: str = SPEC["benchmark_binary"].default
    repeat: int = SPEC["repeat"].default
    cooldown_to: float | None = SPEC["cooldown_to"].default
    cooldown_max_s: float = SPEC["cooldown_max_s"].default
    pin_governor: str = SPEC["pin_governor"].default
    accept_invalid: bool = SPEC["accept_invalid"].default
    agreement: int | None = SPEC["agreement"].default
    agreement_seed: int = SPEC["agreement_seed"].default

    def __post_init__(self) -> None:
        if isinstance(self.threads, (list, str)):
            object.__setattr__(self, "threads", parse_many(self.threads, "--threads"))

    def validate(self) -> RunSettings:
        """The settings if every value is in range, else UsageError naming the option."""
        for spec in SPECS:
            value = getattr(self, spec.name)
            if value is None and spec.optional:
                continue
            opt = spec.cli.split("/")[0] or spec.name
            for v in value if spec.many and isinstance(value, tuple) else (value,):
                self._check_number(spec, opt, v)
        if self.pin_governor and not re.fullmatch(r"[a-z][a-z0-9_]*", self.pin_governor):
            raise UsageError(
                f"--pin-governor {self.pin_governor!r} is not a governor name (e.g. "
                f"performance, schedutil, ondemand)"
            )
        if self.taskset:
            if not _TASKSET.fullmatch(self.taskset):
                raise UsageError(
                    f"taskset mask {self.taskset!r} is not a hexadecimal CPU mask (e.g. f0 for "
                    f"cores 4-7, the big cores of many phones)"
                )
            if int(self.taskset, 16) == 0:
                raise UsageError("taskset mask 0 selects no CPU; use e.g. f0")
        return self

    @staticmethod
    def _check_number(spec: Spec, opt: str, value: Any) -> None:
        if spec.type not in (int, float):
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{opt} must be a number, got {value!r}")
        if spec.type is int and not float(value).is_integer():
            raise UsageError(f"{opt} must be a whole number, got {value!r}")
        if not math.isfinite(value):
            raise UsageError(f"{opt} must be a finite number, got {value!r}")
        if spec.minimum is not None and (
            value <= spec.minimum if spec.exclusive else value < spec.minimum
        ):
            op = ">" if spec.exclusive else ">="
            raise UsageError(f"{opt} must be {op} {spec.minimum:g}, got {value!r}")

    @property
    def thread_settings(self) -> tuple[int, ...]:
        """The thread counts to measure (one, or several for a sweep)."""
        return self.threads if isinstance(self.threads, tuple) else (self.threads,)

    def with_(self, **changes: Any) -> RunSettings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        """From a mapping that may hold other keys too (they are ignored)."""
        return cls(**{k: values[k] for k in SPEC if k in values})

    def delegates_requested(self) -> list[str]:
        return [
            name
            for name, on in (
                ("XNNPACK", self.use_xnnpack),
                ("GPU", self.use_gpu),
                ("NNAPI", self.use_nnapi),
            )
            if on
        ]


def parse_many(value: Any, opt: str) -> int | tuple[int, ...]:
    """ "1,2,4" or [1, 2, 4] → (1, 2, 4); one value → that int."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise UsageError(f"{opt} takes whole numbers separated by commas, got {value!r}") from None
    if not out:
        raise UsageError(f"{opt} needs at least one value")
    if len(set(out)) != len(out):
        raise UsageError(f"{opt} lists a value twice: {value!r}")
    return out[0] if len(out) == 1 else out


#: Agreement samples when there is no labelled data and --agreement is not given.
DEFAULT_AGREEMENT = 32


#: The lab's [run] keys (lab.toml), with the same defaults and bounds.
LAB_FIELDS: dict[str, Field] = {s.name: s.field for s in SPECS if s.lab}


def argv(settings: RunSettings, dialect: str) -> list[str]:
    """The measuring flags for a runner: `edgeq` (the device runner's `--threads 1 …`) or
    `benchmark_model` (`--num_threads=1 …`). Values that are unset are not passed."""
    out: list[str] = []
    if isinstance(settings.threads, tuple):
        raise ValueError("argv of one run: measure each thread setting separately")
    for spec in SPECS:
        value = getattr(settings, spec.name)
        if value is None:
            continue
        if dialect == "edgeq" and spec.runner:
            out += [spec.runner, _text(value)]
        elif dialect == "benchmark_model" and spec.native:
            if spec.type is bool and value is False and spec.default is False:
                continue  # switches that are off are left to the tool's default
            out.append(f"--{spec.native}={_text(value)}")
        elif dialect not in ("edgeq", "benchmark_model"):
            raise ValueError(f"unknown argv dialect {dialect!r}")
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) or abs(value) >= 1e-4 else repr(value)
    return str(value)
