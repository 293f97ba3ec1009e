"""The model recipe: the `[model]` keys (edgeq.toml, lab.toml) that say what deploy, the lab
and the sweep train when no artifact is given. Declared here, with the model families and
quant modes they choose from; `config` and the lab inventory validate against them."""

from __future__ import annotations

from .. import quantmodes
from ..data import DATASETS
from ..fields import Field
from ..fields import f as _f
from . import DEFAULT_FAMILY, FAMILIES

MODEL_FIELDS: dict[str, Field] = {
    "dataset": _f(str, "mnist", "dataset to train on", False, DATASETS),
    "epochs": _f(int, 3, "training epochs"),
    "batch_size": _f(int, 128, "training batch size"),
    "seed": _f(int, 0, "random seed"),
    "family": _f(
        str,
        DEFAULT_FAMILY,
        "model family (book = the book's CNN; bngap, dsconv = compact nets)",
        False,
        FAMILIES,
    ),
    "width": _f((int, float), 1.0, "filter width multiplier"),
    "learning_rate": _f((int, float), 1e-3, "Adam learning rate"),
    "lr_schedule": _f(str, "constant", "constant or cosine", False, ("constant", "cosine")),
    "augment": _f(bool, False, "random shifts/rotations while training"),
    "mode": _f(str, "int8", "conversion mode deployed", False, quantmodes.MODES),
    "calibration_samples": _f(int, 500, "representative images from the training split"),
}
