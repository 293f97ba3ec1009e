"""The chapter's exercises as library functions: the quantized FC layer and the rover image."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from . import quant
from .errors import UsageError

LAYER_SEED = 10007


@dataclass(frozen=True)
class LayerResult:
    weights_quantized: list[list[int]]
    weights_rmse: float
    output_rmse: float
    bytes_float32: int
    bytes_quantized: int

    def to_dict(self) -> dict:
        return asdict(self)


def layer_exercise(bits: int = 8, seed: int = LAYER_SEED) -> LayerResult:
    """Quantize the weights of a random ReLU(x·W + b) layer and measure the damage.

    Inputs [10, 3], weights [3, 5] and bias [5] are drawn from uniform(-1, 1) in that order
    after `np.random.seed(seed)`, exactly as in the chapter; the weights are quantized to
    `bits` over their own [min, max].
    """
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(10, 3))
    w = rng.uniform(-1, 1, size=(3, 5))
    b = rng.uniform(-1, 1, size=(5,))
    w_min, w_max = float(w.min()), float(w.max())
    w_q = quant.quantize(w, w_min, w_max, bits)
    w_dq = quant.dequantize(w_q, w_min, w_max, bits)
    y = np.maximum(x @ w + b, 0.0)
    y_q = np.maximum(x @ w_dq + b, 0.0)
    return LayerResult(
        weights_quantized=w_q.astype(int).tolist(),
        weights_rmse=quant.rmse(w, w_dq),
        output_rmse=quant.rmse(y, y_q),
        bytes_float32=w.size * 4,
        bytes_quantized=quant.packed_size(w.size, bits) if bits <= 8 else w.size * 2,
    )


# --------------------------------------------------------------------------- rover


def default_rover_image() -> Path:
    """The Mars Curiosity image shipped with edgeq (NASA/JPL-Caltech PIA23378, public domain)."""
    return Path(str(resources.files("edgeq") / "assets" / "pia23378-16.jpeg"))


@dataclass(frozen=True)
class RoverRow:
    bits: int
    bytes: int
    saving: float
    rmse: float
    psnr_db: float

    def to_dict(self) -> dict:
        d = asdict(self)
        if math.isinf(d["psnr_db"]):
            d["psnr_db"] = None
        return d


@dataclass(frozen=True)
class RoverResult:
    image: str
    shape: tuple[int, ...]
    rows: list[RoverRow]
    grid_png: str | None
    sizes_png: str | None


def load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise UsageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None


def rover_exercise(
    image: Path | None = None,
    bits: list[int] | None = None,
    out_dir: Path | None = None,
) -> RoverResult:
    """Transmit the rover image at b bits per channel value: packed size, saving, RMSE, PSNR.

    Pixels are quantized over [0, 255] with the chapter's scheme, packed densely (the real
    byte count, not an estimate) and unpacked again before measuring the error, so the
    figures are those of a real round trip. With `out_dir`, writes `rover_grid.png` (one
    panel per b) and `rover_sizes.png` (size vs bits).
    """
    path = Path(image) if image else default_rover_image()
    bit_list = sorted(set(bits or range(1, 9)))
    for b in bit_list:
        if not 1 <= b <= 8:
            raise UsageError(f"--bits must be in 1..8, got {b}")
    pixels = load_image(path)
    n = pixels.size
    baseline = quant.packed_size(n, 8)
    rows: list[RoverRow] = []
    restored: dict[int, np.ndarray] = {}
    for b in bit_list:
        codes = quant.quantize(pixels, 0.0, 255.0, b)
        packed = quant.pack_bits(codes, b)
        back = quant.unpack_bits(packed, b, n).reshape(pixels.shape)
        values = quant.dequantize(back, 0.0, 255.0, b)
        restored[b] = np.clip(np.round(values), 0, 255).astype(np.uint8)
        rows.append(
            RoverRow(
                bits=b,
                bytes=len(packed),
                saving=1.0 - len(packed) / baseline,
                rmse=quant.rmse(pixels, values),
                psnr_db=quant.psnr(pixels, values, peak=255.0),
            )
        )
    grid = sizes = None
    if out_dir is not None:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create output folder {out}: {exc.strerror}") from None
        grid, sizes = _rover_plots(restored, rows, out)
    return RoverResult(str(path), tuple(pixels.shape), rows, grid, sizes)


def _rover_plots(
    restored: dict[int, np.ndarray], rows: list[RoverRow], out: Path
) -> tuple[str, str]:
    from .plotting import plt, save_figure

    n = len(rows)
    cols = min(4, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), rows, strict=False):
        ax.imshow(restored[row.bits])
        psnr_txt = "∞" if math.isinf(row.psnr_db) else f"{row.psnr_db:.1f} dB"
        ax.set_title(f"{row.bits} bit{'s' if row.bits > 1 else ''} · PSNR {psnr_txt}", fontsize=9)
    fig.suptitle("Rover image quantized to b bits per channel value")
    grid = save_figure(fig, out / "rover_grid.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r.bits for r in rows]
    kb = [r.bytes / 1024 for r in rows]
    ax.bar(xs, kb, color="#4C72B0")
    for x, y, r in zip(xs, kb, rows, strict=True):
        label = f"-{r.saving:.1%}" if r.saving > 0 else "baseline"
        ax.annotate(label, (x, y), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("bits per value")
    ax.set_ylabel("packed size (KiB)")
    ax.set_xticks(xs)
    ax.set_title("Transmission size vs bits (saving vs 8-bit)")
    sizes = save_figure(fig, out / "rover_sizes.png")
    return grid, sizes
