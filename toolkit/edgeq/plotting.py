"""Matplotlib without a screen, and figures saved atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .fsutil import atomic_path

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: Path, dpi: int = 110) -> str:
    """Write `fig` as PNG to `path` (never a half-written file) and close it."""
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return str(path)
