"""The model-family interface and its registry.

A family is a builder plus what the CLI and the config need to know about it: its name, a
one-line doc, the widths it accepts and its default dropout. Adding a family is one module
that calls `register(...)` and its name in `REGISTRY` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..registry import Registry

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


#: registration: one name per family module, in listing order; the modules are imported on
#: first use and each calls `register`
REGISTRY: Registry[Family] = Registry(
    "model family", package="edgeq.models", modules=("book", "bngap", "dsconv")
)


#: a family module calls this at import; another family under a registered name is refused
register = REGISTRY.register


def channels(base: int, width: float) -> int:
    """`base` filters scaled by `width`, at least 1."""
    return max(1, round(base * width))


def gap_classifier(layers, num_classes: int, dropout: float) -> list:
    """The compact families' head: global average pooling, optional dropout, dense logits."""
    head = [layers.GlobalAveragePooling2D(name="gap")]
    if dropout:
        head.append(layers.Dropout(dropout, name="dropout"))
    return [*head, layers.Dense(num_classes, name="logits")]
