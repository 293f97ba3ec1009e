"""The quantization-mode interface and its registry.

A mode says what it is called, whether it needs calibration images, how it sets up a
`tf.lite.TFLiteConverter`, and which options it takes. Adding a mode is one module that
calls `register(...)` and one import line in `edgeq/quantmodes/__init__.py`; the config
(`[model] mode`), `edgeq convert --mode`, the manifest, evaluation and the lab inventory
all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError


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
class Option:
    """An option a mode accepts: its CLI spelling and what it does."""

    flag: str
    doc: str


@dataclass(frozen=True)
class QuantMode:
    """A conversion mode.

    `configure(converter, tf, calibration)` sets the converter up for this mode.
    `prepare(model, calibration, options)`, when given, checks the options against the
    model before anything is converted or written (e.g. that named layers exist) and
    returns a plan for `convert`.
    `convert(model, calibration, options, plan=, validation=, progress=)`, when given, is
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


REGISTRY: dict[str, QuantMode] = {}


def register(mode: QuantMode) -> QuantMode:
    if mode.name in REGISTRY or mode.name == "all":
        raise ValueError(f"quant mode {mode.name!r} registered twice (or reserved)")
    REGISTRY[mode.name] = mode
    return mode
