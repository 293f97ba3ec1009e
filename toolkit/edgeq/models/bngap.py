"""`bngap`: a small all-convolutional net with batch norm and global average pooling.

Six 3x3/1x1 convolutions, each followed by BN and ReLU, one max-pool, no Flatten: the
classifier sees only `16·width` averaged features, so almost every parameter sits in the
convolutions. 7,602 parameters at width 1 (7,442 trainable; BN is folded into the
convolutions in the .tflite), 4,384 at width 0.75.
"""

from __future__ import annotations

from .. import tfenv
from .base import Family, channels, gap_classifier, register


def build_bngap(width: float, input_shape: tuple[int, int, int], num_classes: int, dropout: float):
    """Called through the registry (`models.build`), which supplies every argument."""
    keras = tfenv.keras()
    layers = keras.layers
    FAMILY.check_width(width)
    narrow, wide = channels(8, width), channels(16, width)

    def block(i: int, filters: int, kernel: int = 3) -> list:
        return [
            layers.Conv2D(filters, kernel, use_bias=False, name=f"conv{i}"),
            layers.BatchNormalization(name=f"bn{i}"),
            layers.ReLU(name=f"relu{i}"),
        ]

    stack = [keras.Input(shape=input_shape, name="image")]
    stack += block(1, narrow) + block(2, wide)  # 26, 24
    stack += [layers.MaxPooling2D(2, name="pool1")]  # 12
    stack += block(3, narrow, 1)  # 1x1 transition
    stack += block(4, wide) + block(5, wide) + block(6, wide)  # 10, 8, 6
    stack += gap_classifier(layers, num_classes, dropout)
    return keras.Sequential(stack, name="bngap")


FAMILY = register(
    Family(
        name="bngap",
        doc="compact: 6 convs with BN + ReLU, one max-pool, global average pooling, dense "
        "(~7.6k parameters at width 1)",
        build=build_bngap,
        default_dropout=0.0,
    )
)
