"""The quantization mathematics of Efficient Deep Learning, chapter 2, done carefully.

Two schemes live here side by side:

* the chapter's **range scheme** (`get_scale`, `quantize`, `dequantize`): a value range
  [x_min, x_max] is cut into 2**b equal bins, a value maps to the floor of its bin;
* the **affine scheme** TensorFlow Lite uses (`affine_params`, `affine_quantize`,
  `affine_dequantize`): real = scale * (q - zero_point), round to nearest, with zero
  exactly representable.

Plus dense bit packing of b-bit codes (which the chapter only suggests) and error metrics.
Every function validates its input and raises `ValueError` naming the argument and the
allowed range; nothing wraps around silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_QUANT_BITS = 16
"""The range scheme accepts 1..16 bits (codes are stored as uint8 up to 8 bits, else uint16)."""


def _check_bits(bits: int, low: int, high: int, name: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {bits!r}")
    if not low <= int(bits) <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {bits}")
    return int(bits)


def _check_range(x_min: float, x_max: float) -> tuple[float, float]:
    for name, value in (("x_min", x_min), ("x_max", x_max)):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not float(x_min) < float(x_max):
        raise ValueError(f"x_min must be smaller than x_max, got x_min={x_min}, x_max={x_max}")
    return float(x_min), float(x_max)


def _check_finite(x: np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite: {bad} NaN/inf value(s) found")
    return arr


def _code_dtype(bits: int) -> type[np.unsignedinteger]:
    return np.uint8 if bits <= 8 else np.uint16


# --------------------------------------------------------------------------- range scheme


def get_scale(x_min: float, x_max: float, bits: int) -> float:
    """Width of one of the 2**bits bins covering [x_min, x_max] (the chapter's formula)."""
    x_min, x_max = _check_range(x_min, x_max)
    bits = _check_bits(bits, 1, MAX_QUANT_BITS)
    return (x_max - x_min) / 2**bits


def quantize(x: np.ndarray, x_min: float, x_max: float, bits: int) -> np.ndarray:
    """Map values to b-bit codes the chapter's way.

    Values are clamped to [x_min, x_max], then code = floor((x - x_min) / scale), clamped to
    2**bits - 1 (x_max itself falls one past the last bin). Codes are uint8 (≤ 8 bits) or
    uint16.
    """
    scale = get_scale(x_min, x_max, bits)
    arr = _check_finite(x).astype(np.float64)
    clipped = np.clip(arr, x_min, x_max)
    codes = np.floor((clipped - x_min) / scale)
    codes = np.minimum(codes, 2**bits - 1)
    return codes.astype(_code_dtype(bits))


def dequantize(codes: np.ndarray, x_min: float, x_max: float, bits: int) -> np.ndarray:
    """Back from codes to values: x_min + scale * code (the bin's lower edge)."""
    scale = get_scale(x_min, x_max, bits)
    q = _check_codes(codes, bits)
    return x_min + scale * q.astype(np.float64)


def _check_codes(codes: np.ndarray, bits: int, name: str = "codes") -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 2**bits - 1):
        raise ValueError(
            f"{name} must fit in {bits} bits (0..{2**bits - 1}), "
            f"got values in {arr.min()}..{arr.max()}"
        )
    return arr


# --------------------------------------------------------------------------- affine scheme


@dataclass(frozen=True)
class AffineParams:
    """real = scale * (q - zero_point), with q in [qmin, qmax]."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    @property
    def dtype(self) -> type[np.integer]:
        if self.qmin < 0:
            return np.int8 if self.qmax <= 127 else np.int16 if self.qmax <= 32767 else np.int32
        return np.uint8 if self.qmax <= 255 else np.uint16 if self.qmax <= 65535 else np.uint32


def integer_range(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """The code range of a b-bit integer.

    Unsigned: [0, 2**b - 1]. Signed (two's complement): [-2**(b-1), 2**(b-1) - 1].
    The chapter's signed-range formula does not give 2**b distinct codes; the ranges above
    are the correct ones. `narrow` drops the most negative code so the signed range is
    symmetric around zero (TFLite's int8 weights use [-127, 127]).
    """
    bits = _check_bits(bits, 2 if signed else 1, 32)
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (lo + 1 if narrow else lo), hi
    return (1 if narrow else 0), 2**bits - 1


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (what TFLite's kernels do)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def affine_params(
    x_min: float,
    x_max: float,
    bits: int = 8,
    *,
    signed: bool = True,
    symmetric: bool = False,
) -> AffineParams:
    """Scale and zero point for [x_min, x_max], TFLite-style.

    The range is first widened to contain 0, so that real zero (padding, ReLU output) maps to
    an exact code. Asymmetric: the range spans all codes and the zero point is the rounded
    code of 0.0. Symmetric: zero point is 0 (signed, narrow range [-(2**(b-1)-1), 2**(b-1)-1])
    or the mid code 2**(b-1) (unsigned), and scale = max(|x_min|, |x_max|) / half-range.
    """
    x_min, x_max = _check_range(x_min, x_max)
    lo, hi = min(x_min, 0.0), max(x_max, 0.0)
    if symmetric:
        qmin, qmax = integer_range(bits, signed, narrow=signed)
        half = qmax if signed else 2 ** (bits - 1) - 1
        scale = max(abs(lo), abs(hi)) / half
        zero_point = 0 if signed else 2 ** (bits - 1)
        return AffineParams(scale, zero_point, qmin, qmax)
    qmin, qmax = integer_range(bits, signed)
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(np.clip(_round_half_away(np.float64(qmin - lo / scale)), qmin, qmax))
    return AffineParams(scale, zero_point, qmin, qmax)


def affine_quantize(x: np.ndarray, params: AffineParams) -> np.ndarray:
    """q = clamp(round(x / scale) + zero_point, qmin, qmax)."""
    arr = _check_finite(x).astype(np.float64)
    q = _round_half_away(arr / params.scale) + params.zero_point
    return np.clip(q, params.qmin, params.qmax).astype(params.dtype)


def affine_dequantize(q: np.ndarray, params: AffineParams) -> np.ndarray:
    """real = scale * (q - zero_point)."""
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"q must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < params.qmin or arr.max() > params.qmax):
        raise ValueError(
            f"q must be in {params.qmin}..{params.qmax}, got values in {arr.min()}..{arr.max()}"
        )
    return params.scale * (arr.astype(np.float64) - params.zero_point)


# --------------------------------------------------------------------------- bit packing


def packed_size(count: int, bits: int) -> int:
    """Bytes needed for `count` codes of `bits` bits: ceil(count * bits / 8)."""
    bits = _check_bits(bits, 1, 8)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return (count * bits + 7) // 8


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Pack b-bit codes (b = 1..8) densely, most significant bit first, zero-padded at the end.

    The result is exactly ceil(len(codes) * bits / 8) bytes; keep the code count to unpack.
    """
    bits = _check_bits(bits, 1, 8)
    flat = _check_codes(np.asarray(codes).ravel(), bits).astype(np.uint8)
    if flat.size == 0:
        return b""
    bit_matrix = np.unpackbits(flat[:, None], axis=1)[:, 8 - bits :]
    return np.packbits(bit_matrix.ravel()).tobytes()


def unpack_bits(packed: bytes | np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack_bits`: `count` uint8 codes (the padding bits are dropped)."""
    bits = _check_bits(bits, 1, 8)
    buf = np.frombuffer(bytes(packed), dtype=np.uint8)
    expected = packed_size(count, bits)
    if buf.size != expected:
        raise ValueError(
            f"packed must hold ceil(count*bits/8) = {expected} bytes for count={count}, "
            f"bits={bits}; got {buf.size}"
        )
    if count == 0:
        return np.zeros(0, dtype=np.uint8)
    stream = np.unpackbits(buf)[: count * bits].reshape(count, bits)
    padded = np.zeros((count, 8), dtype=np.uint8)
    padded[:, 8 - bits :] = stream
    return np.packbits(padded, axis=1).ravel()


# --------------------------------------------------------------------------- error metrics


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _check_finite(a, "a").astype(np.float64)
    y = _check_finite(b, "b").astype(np.float64)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("a and b must not be empty")
    return x, y


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean squared error between two arrays of the same shape."""
    x, y = _pair(a, b)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical arrays); `peak` is the data range."""
    if not (math.isfinite(peak) and peak > 0):
        raise ValueError(f"peak must be a positive finite number, got {peak!r}")
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(peak) - 10.0 * math.log10(mse)
