"""edgeq.quant: the chapter's figures, properties, and every bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeq import quant


def test_table_2_2_quantize_and_back():
    x = np.arange(-10.0, 10 + 1e-6, 2.5)
    q = quant.quantize(x, -10, 10, 3)
    assert q.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 7]
    assert q.dtype == np.uint8
    back = quant.dequantize(q, -10, 10, 3)
    assert back.tolist() == [-10, -7.5, -5, -2.5, 0, 2.5, 5, 7.5, 7.5]


def test_get_scale_is_the_chapters_formula():
    assert quant.get_scale(-10, 10, 3) == 20 / 8
    assert quant.get_scale(0, 255, 8) == 255 / 256


def test_quantize_clamps_out_of_range_values():
    q = quant.quantize(np.array([-100.0, 100.0]), -1, 1, 4)
    assert q.tolist() == [0, 15]


def test_wide_codes_use_uint16():
    q = quant.quantize(np.array([0.0, 1.0]), 0, 1, 12)
    assert q.dtype == np.uint16 and q.tolist() == [0, 4095]


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def range_and_values(draw):
    lo = draw(st.floats(-1e3, 1e3, allow_nan=False))
    width = draw(st.floats(1e-3, 1e3, allow_nan=False))
    hi = lo + width
    bits = draw(st.integers(1, 16))
    xs = draw(hnp.arrays(np.float64, st.integers(1, 64), elements=st.floats(lo, hi)))
    return lo, hi, bits, xs


@given(range_and_values())
def test_roundtrip_error_below_one_scale_inside_range(case):
    lo, hi, bits, xs = case
    scale = quant.get_scale(lo, hi, bits)
    back = quant.dequantize(quant.quantize(xs, lo, hi, bits), lo, hi, bits)
    assert np.all(np.abs(xs - back) < scale * (1 + 1e-9))


@given(range_and_values())
def test_quantize_is_monotonic(case):
    lo, hi, bits, xs = case
    order = np.argsort(xs, kind="stable")
    q = quant.quantize(xs[order], lo, hi, bits).astype(np.int64)
    assert np.all(np.diff(q) >= 0)


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((np.zeros(3), 1.0, 1.0, 8), "x_min must be smaller than x_max"),
        ((np.zeros(3), 2.0, 1.0, 8), "x_min must be smaller than x_max"),
        ((np.zeros(3), 0.0, 1.0, 0), "bits must be in 1..16"),
        ((np.zeros(3), 0.0, 1.0, 17), "bits must be in 1..16"),
        ((np.zeros(3), 0.0, 1.0, 2.5), "bits must be an integer"),
        ((np.array([0.0, np.nan]), 0.0, 1.0, 8), "x must be finite"),
        ((np.array([np.inf]), 0.0, 1.0, 8), "x must be finite"),
        ((np.zeros(3), -np.inf, 1.0, 8), "x_min must be a finite number"),
        ((np.zeros(3), 0.0, np.nan, 8), "x_max must be a finite number"),
    ],
)
def test_quantize_bad_input(args, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        quant.quantize(*args)


def test_dequantize_rejects_codes_that_do_not_fit():
    with pytest.raises(ValueError, match=r"codes must fit in 3 bits \(0\.\.7\)"):
        quant.dequantize(np.array([8]), 0, 1, 3)
    with pytest.raises(ValueError, match="codes must be integers"):
        quant.dequantize(np.array([1.0]), 0, 1, 3)


# --------------------------------------------------------------------------- affine


@pytest.mark.parametrize(
    "bits, signed, expected",
    [(8, False, (0, 255)), (8, True, (-128, 127)), (4, True, (-8, 7)), (16, True, (-32768, 32767))],
)
def test_integer_ranges(bits, signed, expected):
    assert quant.integer_range(bits, signed) == expected


def test_int8_asymmetric_params_match_tflite_convention():
    p = quant.affine_params(-1.0, 1.0, 8, signed=True)
    assert p.scale == pytest.approx(2 / 255)
    assert p.zero_point == -1  # qmin - x_min/scale = -0.5 rounds away from zero
    assert (p.qmin, p.qmax) == (-128, 127)


def test_symmetric_int8_is_narrow_with_zero_point_zero():
    p = quant.affine_params(-0.5, 2.0, 8, signed=True, symmetric=True)
    assert p.zero_point == 0 and (p.qmin, p.qmax) == (-127, 127)
    assert p.scale == pytest.approx(2.0 / 127)


def test_range_is_widened_to_include_zero():
    p = quant.affine_params(2.0, 4.0, 8, signed=False)
    assert p.zero_point == 0 and p.scale == pytest.approx(4.0 / 255)


@st.composite
def affine_case(draw):
    lo = draw(st.floats(-1e3, 1e3, allow_nan=False))
    hi = lo + draw(st.floats(1e-2, 1e3, allow_nan=False))
    bits = draw(st.integers(2, 16))
    signed = draw(st.booleans())
    symmetric = draw(st.booleans())
    return lo, hi, bits, signed, symmetric


@given(affine_case())
def test_affine_zero_is_exact_and_codes_in_range(case):
    lo, hi, bits, signed, symmetric = case
    p = quant.affine_params(lo, hi, bits, signed=signed, symmetric=symmetric)
    q0 = quant.affine_quantize(np.array([0.0]), p)
    assert quant.affine_dequantize(q0, p)[0] == 0.0
    xs = np.linspace(lo, hi, 33)
    q = quant.affine_quantize(xs, p)
    assert q.min() >= p.qmin and q.max() <= p.qmax
    back = quant.affine_dequantize(q, p)
    assert np.all(np.abs(back - xs) <= p.scale / 2 * (1 + 1e-6) + 1e-12)


def test_affine_bad_input():
    p = quant.affine_params(0, 1, 8, signed=False)
    with pytest.raises(ValueError, match=r"q must be in 0\.\.255"):
        quant.affine_dequantize(np.array([256]), p)
    with pytest.raises(ValueError, match=r"bits must be in 2\.\.32"):
        quant.affine_params(0, 1, 1, signed=True)
    with pytest.raises(ValueError, match="x must be finite"):
        quant.affine_quantize(np.array([np.nan]), p)


# --------------------------------------------------------------------------- bit packing


@settings(max_examples=300)
@given(st.integers(1, 8), st.integers(0, 200), st.data())
def test_pack_unpack_roundtrip_every_width(bits, n, data):
    codes = data.draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 2**bits - 1)))
    packed = quant.pack_bits(codes, bits)
    assert len(packed) == math.ceil(n * bits / 8)
    assert np.array_equal(quant.unpack_bits(packed, bits, n), codes)


def test_pack_layout_is_msb_first():
    assert quant.pack_bits(np.array([1, 0, 1, 1], dtype=np.uint8), 1) == bytes([0b10110000])
    assert quant.pack_bits(np.array([5, 3], dtype=np.uint8), 3) == bytes([0b10101100])


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_pack_rejects_bad_widths(bits):
    with pytest.raises(ValueError, match=r"bits must be in 1\.\.8"):
        quant.pack_bits(np.array([0], dtype=np.uint8), bits)


def test_pack_rejects_codes_too_wide_instead_of_wrapping():
    with pytest.raises(ValueError, match=r"codes must fit in 3 bits \(0\.\.7\)"):
        quant.pack_bits(np.array([8], dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="codes must fit in 8 bits"):
        quant.pack_bits(np.array([256]), 8)
    with pytest.raises(ValueError, match="codes must fit in 8 bits"):
        quant.pack_bits(np.array([-1]), 8)


def test_unpack_checks_count_against_length():
    packed = quant.pack_bits(np.arange(8, dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="packed must hold"):
        quant.unpack_bits(packed, 3, 20)


# --------------------------------------------------------------------------- metrics


def test_rmse_and_psnr():
    a = np.array([0.0, 0.0, 0.0, 0.0])
    b = np.array([1.0, -1.0, 1.0, -1.0])
    assert quant.rmse(a, b) == 1.0
    assert quant.psnr(a, b, peak=255) == pytest.approx(20 * math.log10(255))
    assert quant.psnr(a, a) == math.inf


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        quant.rmse(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="a must be finite"):
        quant.rmse(np.array([np.nan]), np.zeros(1))
    with pytest.raises(ValueError, match="peak must be a positive"):
        quant.psnr(np.zeros(1), np.ones(1), peak=0)
