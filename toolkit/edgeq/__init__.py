"""edgeq: prove quantized TFLite models on real ARM hardware."""

__version__ = "0.1.0"
