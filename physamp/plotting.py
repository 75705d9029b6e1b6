"""Figures: image grids of samples, learning curves. matplotlib is imported lazily (Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["image_grid", "save_image_grid", "tile", "save_grid", "save_image"]


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


def tile(images: torch.Tensor, ncol: int, pad: int = 2) -> np.ndarray:
    """``images (N, C, H, W)`` in [0, 1] → one uint8 array ``(rows·(H+pad)+pad, ncol·(W+pad)+pad, C)``."""
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.detach().float().clamp(0, 1).cpu().numpy()
    n, c, h, w = x.shape
    rows = -(-n // ncol)
    grid = np.ones((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.float32)
    for k in range(n):
        r, q = divmod(k, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top : top + h, left : left + w] = x[k].transpose(1, 2, 0)
    return np.round(grid * 255).astype(np.uint8)


def save_grid(images: torch.Tensor, path: str | Path, ncol: int, pad: int = 2) -> Path:
    """Write ``images (N, C, H, W)`` in [0, 1] as a PNG grid of ``ncol`` columns (grey for C = 1)."""
    from PIL import Image

    grid = tile(images, ncol, pad)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one image ``(C, H, W)`` in [0, 1] as an 8-bit PNG (or any format Pillow infers from the name)."""
    from PIL import Image

    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"an image must be (1 or 3, H, W), got shape {tuple(image.shape)}")
    x = (image.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.png'}")
    Image.fromarray(x[..., 0] if x.shape[2] == 1 else x).save(tmp)
    tmp.replace(path)
    return path
