"""Figures: image grids of samples, learning curves. matplotlib is imported lazily (Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["image_grid", "save_image_grid"]


def image_grid(images, image_shape: tuple[int, int], nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``images (N, H*W)`` with values in [0, 1] into one ``(rows*(H+pad), cols*(W+pad))`` array."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n = x.shape[0]
    h, w = image_shape
    if x.shape[1] != h * w:
        raise ValueError(f"images have {x.shape[1]} values each, not {h}x{w}")
    ncol = nrow or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncol))
    grid = np.ones((nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for k in range(n):
        r, c = divmod(k, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = (
            x[k].reshape(h, w)
        )
    return grid


def save_image_grid(
    images,
    path: str | Path,
    image_shape: tuple[int, int] = (28, 28),
    nrow: int | None = None,
    title: str | None = None,
) -> Path:
    """Write a grey-level grid of ``images (N, H*W)`` in [0, 1] to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, image_shape, nrow)
    fig, ax = plt.subplots(figsize=(max(3, grid.shape[1] / 40), max(3, grid.shape[0] / 40)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
