"""The run settings, defined once: how a device is measured (threads, timed runs, warm-up,
accuracy batch, timeouts) plus each runner's own options.

`SPECS` is the one definition of the settings every runner shares; a runner declares its
own options in its class (`Runner.options`, e.g. benchmark_model's delegate switches),
which registers them here with `declare()`. From `all_specs()` come the `RunSettings`
values and their validator, the CLI options `deploy` and `bench` share (`cli/options.py`),
the lab's `[run]` keys (`lab_fields()`) and the device runner's argv (`argv(settings)`;
every runner renders its own flags). A test checks that the device runner's own argparse
defaults agree with these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
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
    minimum: float | None = None
    exclusive: bool = False
    #: also a key of the lab's [run] table
    lab: bool = True
    optional: bool = False
    #: several values may be given ("1,2,4"; a list in lab.toml): each is measured
    many: bool = False
    #: a further check of a (non-None) value: raises UsageError naming the option
    check: Callable[[Any], None] | None = None
    #: other names of the setting (e.g. "op_profile"): a CLI option `--op-profile` beside
    #: `cli`, and a key of the lab's [run] table beside `name`
    aliases: tuple[str, ...] = ()

    @property
    def cli_aliases(self) -> tuple[str, ...]:
        """The aliases as CLI options (`--op-profile`), when the setting has an option."""
        return tuple("--" + a.replace("_", "-") for a in self.aliases) if self.cli else ()

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
         minimum=1, many=True),
    Spec("runs", int, 100, "Timed inferences (at least).", "--runs", "--runs",
         minimum=1),
    Spec("min_s", float, 1.0, "Time the steady state for at least this many seconds.",
         "--min-s", "--min-s", minimum=0),
    Spec("warmup_runs", int, 10, "Untimed warm-up inferences.", "--warmup-runs",
         "--warmup-runs", minimum=0),
    Spec("warmup_min_s", float, 0.5, "Warm up for at least this many seconds.",
         "--warmup-min-s", "--warmup-min-s", minimum=0),
    Spec("max_s", float, 60.0, "Stop timing a phase after this many seconds.", "--max-s",
         "--max-s", minimum=0),
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
)  # fmt: skip

SPEC = {s.name: s for s in SPECS}

#: The runners' own options (`Runner.options`), by name, in declaration order.
_DECLARED: dict[str, Spec] = {}


def declare(*specs: Spec) -> tuple[Spec, ...]:
    """Register a runner's own options (done by `runners.register` from `Runner.options`):
    they become `RunSettings` values, `deploy`/`bench` options and lab `[run]` keys."""
    for spec in specs:
        if spec.name in SPEC or _DECLARED.get(spec.name, spec) != spec:
            raise ValueError(f"run setting {spec.name!r} is declared twice")
        _DECLARED[spec.name] = spec
    return specs


def all_specs() -> tuple[Spec, ...]:
    """The shared settings, then every declared runner option."""
    return (*SPECS, *_DECLARED.values())


def spec(name: str) -> Spec:
    return SPEC.get(name) or _DECLARED[name]


@dataclass(frozen=True, init=False)
class RunSettings:
    """How a device is measured. Build with keywords (the shared settings and any runner's
    declared option, e.g. `RunSettings(threads=2, use_gpu=True)`); `validate()` before
    use. A runner's options are read like the others (`settings.use_gpu`)."""

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
    repeat: int = SPEC["repeat"].default
    cooldown_to: float | None = SPEC["cooldown_to"].default
    cooldown_max_s: float = SPEC["cooldown_max_s"].default
    pin_governor: str = SPEC["pin_governor"].default
    accept_invalid: bool = SPEC["accept_invalid"].default
    agreement: int | None = SPEC["agreement"].default
    agreement_seed: int = SPEC["agreement_seed"].default
    #: the runners' declared options that were given, as sorted (name, value) pairs
    options: tuple[tuple[str, Any], ...] = ()

    def __init__(self, options: Any = (), **values: Any) -> None:
        given = dict(options)
        for name in [k for k in values if k not in SPEC]:
            if name not in _DECLARED:
                raise TypeError(f"RunSettings got an unknown setting {name!r}")
            given[name] = values.pop(name)
        for f in fields(self):
            if f.name != "options":
                object.__setattr__(self, f.name, values.get(f.name, f.default))
        object.__setattr__(self, "options", tuple(sorted(given.items())))
        if isinstance(self.threads, (list, str)):
            object.__setattr__(self, "threads", parse_many(self.threads, "--threads"))

    def __getattr__(self, name: str) -> Any:
        if name in _DECLARED:
            return dict(self.options).get(name, _DECLARED[name].default)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def validate(self) -> RunSettings:
        """The settings if every value is in range, else UsageError naming the option."""
        for spec in all_specs():
            value = getattr(self, spec.name)
            if value is None and spec.optional:
                continue
            opt = spec.cli.split("/")[0] or spec.name
            for v in value if spec.many and isinstance(value, tuple) else (value,):
                self._check_number(spec, opt, v)
            if spec.check is not None and value is not None:
                spec.check(value)
        if self.pin_governor and not re.fullmatch(r"[a-z][a-z0-9_]*", self.pin_governor):
            raise UsageError(
                f"--pin-governor {self.pin_governor!r} is not a governor name (e.g. "
                f"performance, schedutil, ondemand)"
            )
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
        return {s.name: getattr(self, s.name) for s in all_specs()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        """From a mapping that may hold other keys too (they are ignored)."""
        return cls(**{s.name: values[s.name] for s in all_specs() if s.name in values})


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


def resolve_aliases(where: str, table: dict[str, Any]) -> dict[str, Any]:
    """A [run] table with each alias key (e.g. `op_profile`) renamed to its setting's name;
    UsageError when a table gives both."""
    out = dict(table)
    for spec in all_specs():
        for alias in spec.aliases:
            if alias in out:
                if spec.name in out:
                    raise UsageError(
                        f"{where}: keys {spec.name!r} and {alias!r} are the same setting; give one"
                    )
                out[spec.name] = out.pop(alias)
    return out


def lab_fields() -> dict[str, Field]:
    """The lab's [run] keys (lab.toml), with the same defaults and bounds."""
    return {s.name: s.field for s in all_specs() if s.lab}


def argv(settings: RunSettings) -> list[str]:
    """The device runner's measuring flags (`--threads 1 …`, edgeq_runner.py's own); values
    that are unset are not passed. Other runners render their own (see `Runner.options`)."""
    out: list[str] = []
    if isinstance(settings.threads, tuple):
        raise ValueError("argv of one run: measure each thread setting separately")
    for spec in all_specs():
        value = getattr(settings, spec.name)
        if value is not None and spec.runner:
            out += [spec.runner, text(value)]
    return out


def text(value: Any) -> str:
    """A value as a command-line word (true/false, 1, 0.25)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) or abs(value) >= 1e-4 else repr(value)
    return str(value)
