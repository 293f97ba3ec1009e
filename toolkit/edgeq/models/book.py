"""The book's MNIST CNN (Efficient Deep Learning, ch. 2) at any width."""

from __future__ import annotations

from .. import tfenv
from .base import Family, channels, register

BOOK_CNN_PARAMS = 35_210


def cnn_filters(width: float) -> tuple[int, int]:
    FAMILY.check_width(width)
    return channels(32, width), channels(64, width)


def build_cnn(
    width: float = 1.0,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    dropout: float = 0.5,
):
    """Two [Conv3x3 → BatchNorm → ReLU → MaxPool] blocks (32 and 64 filters), Flatten,
    Dropout, Dense logits. 35,210 parameters at width 1; `width` scales the filters.
    """
    keras = tfenv.keras()
    layers = keras.layers
    f1, f2 = cnn_filters(width)
    name = "book_cnn" if width == 1.0 else f"book_cnn_w{width:g}"
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Conv2D(f1, 3, name="conv1"),
            layers.BatchNormalization(name="bn1"),
            layers.ReLU(name="relu1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(f2, 3, name="conv2"),
            layers.BatchNormalization(name="bn2"),
            layers.ReLU(name="relu2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dropout(dropout, name="dropout"),
            layers.Dense(num_classes, name="logits"),
        ],
        name=name,
    )


FAMILY = register(
    Family(
        name="book",
        doc="the book's CNN: 2 × (conv3x3, BN, ReLU, maxpool), flatten, dropout, dense "
        "(35,210 parameters at width 1)",
        build=build_cnn,
        default_dropout=0.5,
    )
)
