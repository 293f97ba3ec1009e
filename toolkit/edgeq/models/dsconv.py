"""`dsconv`: a depthwise-separable CNN with batch norm and global average pooling.

A full 3x3 stem, then [depthwise 3x3 → BN → ReLU → pointwise 1x1 → BN → ReLU] blocks with
two max-pools, global average pooling and a dense classifier. Depthwise filters cost 9
weights per channel, so the net can be wider than `bngap` for the same parameter count —
but not for the same FILE size: int8 stores a float scale and an int64 zero point per
output channel of every weight and bias tensor, so a many-channel net pays ~24 bytes per
channel (trained, width 0.75: 5,278 parameters make ~20 KB; `bngap`: 4,384 make ~11.3 KB).
"""

from __future__ import annotations

from .. import tfenv
from .base import Family, channels, gap_classifier, register


def build_dsconv(width: float, input_shape: tuple[int, int, int], num_classes: int, dropout: float):
    """Called through the registry (`models.build`), which supplies every argument."""
    keras = tfenv.keras()
    layers = keras.layers
    FAMILY.check_width(width)
    c1, c2, c3 = channels(16, width), channels(32, width), channels(48, width)

    def bn_relu(name: str) -> list:
        return [layers.BatchNormalization(name=f"bn_{name}"), layers.ReLU(name=f"relu_{name}")]

    def separable(i: int, filters: int) -> list:
        return [
            layers.DepthwiseConv2D(3, use_bias=False, name=f"dw{i}"),
            *bn_relu(f"dw{i}"),
            layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}"),
            *bn_relu(f"pw{i}"),
        ]

    stack = [
        keras.Input(shape=input_shape, name="image"),
        layers.Conv2D(c1, 3, use_bias=False, name="stem"),  # 26
        *bn_relu("stem"),
        *separable(1, c2),  # 24
        layers.MaxPooling2D(2, name="pool1"),  # 12
        *separable(2, c2),  # 10
        *separable(3, c3),  # 8
        layers.MaxPooling2D(2, name="pool2"),  # 4
        *separable(4, c3),  # 2
        *gap_classifier(layers, num_classes, dropout),
    ]
    return keras.Sequential(stack, name="dsconv")


FAMILY = register(
    Family(
        name="dsconv",
        doc="compact: conv stem + 4 depthwise-separable blocks with BN + ReLU, 2 max-pools, "
        "global average pooling, dense",
        build=build_dsconv,
        default_dropout=0.0,
    )
)
