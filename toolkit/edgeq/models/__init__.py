"""Model families behind the `[model]` recipe: the book's CNN and compact nets for tiny
budgets. Each family is one module, named once in `base.REGISTRY` (imported on first use).

    from edgeq import models
    models.build("bngap", width=0.75)       # a Keras model
    models.FAMILIES                          # ("book", "bngap", "dsconv")
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import REGISTRY, Family, register
from .book import BOOK_CNN_PARAMS, build_cnn, cnn_filters

DEFAULT_FAMILY = "book"

__all__ = [
    "BOOK_CNN_PARAMS",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "Family",
    "build",
    "build_cnn",
    "cnn_filters",
    "family",
    "register",
]


def family(name: str, key: str = "--family") -> Family:
    """The registered family `name`; an unknown one is a UsageError listing the valid ones."""
    if name not in REGISTRY:
        raise UsageError(
            f"unknown model family {name!r} for {key}; choose one of: {', '.join(REGISTRY)}"
        )
    return REGISTRY[name]


def build(
    name: str = DEFAULT_FAMILY,
    width: float = 1.0,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    dropout: float | None = None,
) -> Any:
    """Build family `name` (dropout None = the family's default)."""
    fam = family(name)
    fam.check_width(width)
    return fam.build(
        width, input_shape, num_classes, fam.default_dropout if dropout is None else dropout
    )


def __getattr__(name: str) -> Any:
    """`FAMILIES`, read from the registry on first use (then kept)."""
    if name != "FAMILIES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: tuple[str, ...] = REGISTRY.names()
    globals()[name] = value
    return value
