"""The chapter's exercises, bit-exact."""

from __future__ import annotations

import pytest

from edgeq import demos


def test_layer_exercise_reproduces_the_book():
    res = demos.layer_exercise()
    assert res.weights_quantized == [
        [124, 30, 251, 74, 146],
        [0, 135, 111, 136, 190],
        [96, 5, 228, 255, 16],
    ]
    assert res.weights_rmse == 0.003925407435722753
    assert res.output_rmse == 0.002573583625884542
    assert (res.bytes_float32, res.bytes_quantized) == (60, 15)


def test_rover_sizes_are_really_packed(tmp_path):
    res = demos.rover_exercise(bits=[1, 5, 8], out_dir=tmp_path)
    h, w, c = res.shape
    assert (h, w, c) == (586, 1041, 3)
    by_bits = {r.bits: r for r in res.rows}
    assert by_bits[8].bytes == h * w * c
    assert by_bits[5].bytes == -(-h * w * c * 5 // 8)
    assert by_bits[5].saving == pytest.approx(0.375, abs=1e-6)  # the book says 38.5 %
    assert by_bits[1].rmse > by_bits[5].rmse > by_bits[8].rmse
    assert by_bits[1].psnr_db < by_bits[5].psnr_db < by_bits[8].psnr_db
    for name in ("rover_grid.png", "rover_sizes.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
