"""The quantization-mode interface and its registry.

A mode says what it is called, whether it needs calibration images, how it sets up a
`tf.lite.TFLiteConverter`, and which options it takes. Adding a mode is one module that
calls `register(...)` and its name in `REGISTRY` below (the one registration line); the config
(`[model] mode`), `edgeq convert --mode`, the manifest, evaluation and the lab inventory
all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ..registry import Registry


@dataclass(frozen=True)
class Calibration:
    """Representative images (preprocessed float32 [N, H, W, C]) and where they came from."""

    images: np.ndarray
    source: str
    samples: int

    def representative_dataset(self) -> Callable[[], Any]:
        """The converter's `representative_dataset`: one image per call, in order."""
        images = self.images

        def gen():
            for i in range(len(images)):
                yield [images[i : i + 1]]

        return gen


@dataclass(frozen=True)
class CliParam:
    """One command-line parameter of a mode option: its Python name, type, default, flag
    and help (a Typer option on `edgeq convert` and `edgeq quantize`)."""

    name: str
    type: Any
    default: Any
    flag: str
    help: str


@dataclass(frozen=True)
class Option:
    """An option a mode accepts, declared once: its CLI spelling and what it does, the
    command-line parameters it is given with (`cli`) and how their values make the
    option's value (`value(**params)`, None when not given).

    `conflicts`: options that cannot be given with this one; `requires`: options it is
    given with (it refines them). `validation`: the option
    needs the validation split (training images held out from calibration). `progress`:
    the label of the step bar the option's work reports to.
    """

    flag: str
    doc: str
    cli: tuple[CliParam, ...] = ()
    value: Callable[..., Any] | None = None
    conflicts: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    validation: bool = False
    progress: str | None = None

    @property
    def main_flag(self) -> str:
        """`--keep-float` of `--keep-float NODE[,NODE]`."""
        return self.flag.split()[0]

    def from_cli(self, values: dict[str, Any]) -> Any:
        """The option's value from the command-line values (by parameter name)."""
        mine = {p.name: values[p.name] for p in self.cli}
        return self.value(**mine) if self.value else next(iter(mine.values()), None)


@dataclass(frozen=True)
class QuantMode:
    """A conversion mode.

    `configure(converter, tf, calibration)` sets the converter up for this mode.
    `prepare(model, calibration, options)`, when given, checks the options against the
    model before anything is converted or written (e.g. that named layers exist) and
    returns a plan for `convert`.
    `convert(model, calibration, options, plan=, validation=, progress=)` (and `device=`,
    the latency meter of `edgeq convert --target`, when one is given), when given, is
    asked first: it returns (flatbuffer, what it applied, for the manifest) when the
    options need another path than `converter.convert()` (int8 with layers kept in
    float), or None for the plain path.
    """

    name: str
    doc: str
    calibrated: bool
    configure: Callable[[Any, Any, Calibration | None], None]
    options: dict[str, Option] = field(default_factory=dict)
    prepare: Callable[..., Any] | None = None
    convert: Callable[..., tuple[bytes, dict[str, Any]] | None] | None = None
    manifest_defaults: dict[str, Any] = field(default_factory=dict)

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            flag = unknown[0].replace("_", "-")
            raise UsageError(
                f"--{flag} does not apply to mode {self.name}"
                + (
                    f" (it takes: {', '.join(o.flag for o in self.options.values())})"
                    if self.options
                    else ""
                )
            )
        return options


#: registration: one name per mode module, in canonical order (manifests, tables, `all`);
#: the modules are imported on first use and each calls `register`
REGISTRY: Registry[QuantMode] = Registry(
    "mode", package="edgeq.quantmodes", modules=("float32", "dynamic", "float16", "int8", "int16x8")
)


def register(mode: QuantMode) -> QuantMode:
    """Register a mode (its module calls this at import); `all` is reserved, and another
    mode under a registered name is refused."""
    if mode.name == "all":
        raise ValueError("quant mode name 'all' is reserved (it means every mode)")
    return REGISTRY.register(mode)
