"""The model-family interface and its registry.

A family is a builder plus what the CLI and the config need to know about it: its name, a
one-line doc, the widths it accepts and its default dropout. Adding a family is one module
that calls `register(...)` and one import line in `edgeq/models/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

MAX_WIDTH = 4.0


@dataclass(frozen=True)
class Family:
    """A model family: `build(width, input_shape, num_classes, dropout)` → a Keras model."""

    name: str
    doc: str
    build: Callable[..., Any]
    default_dropout: float

    def check_width(self, width: float) -> float:
        if not 0 < width <= MAX_WIDTH:
            raise UsageError(f"--width must be in (0, {MAX_WIDTH:g}], got {width}")
        return width


REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in REGISTRY:
        raise ValueError(f"model family {family.name!r} registered twice")
    REGISTRY[family.name] = family
    return family


def channels(base: int, width: float) -> int:
    """`base` filters scaled by `width`, at least 1."""
    return max(1, round(base * width))


def gap_classifier(layers, num_classes: int, dropout: float) -> list:
    """The compact families' head: global average pooling, optional dropout, dense logits."""
    head = [layers.GlobalAveragePooling2D(name="gap")]
    if dropout:
        head.append(layers.Dropout(dropout, name="dropout"))
    return [*head, layers.Dense(num_classes, name="logits")]
