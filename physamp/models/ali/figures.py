"""The PNGs an ALI run writes: sample grids, reconstructions, interpolations (§5.4.1-5.4.2).

- ``samples.png``: ``x̃ = G_x(z)`` for a fixed set of ``z ~ p(z)`` (the same ``z`` every
  time, so successive files show training progress).
- ``reconstructions.png``: "odd columns are original samples from the validation set
  and even columns are corresponding reconstructions" (Figs 5.2b-5.5b), ``x̂ = G_x(ẑ)``
  with ``ẑ ~ q(z | x)``.
- ``interpolations.png``: one row per pair of validation images: ``x₁``, the decodings
  of ``(1 - t) z₁ + t z₂`` at evenly spaced ``t``, then ``x₂`` (Fig. 5.6).
- ``conditional.png`` (conditional MNIST): one fixed ``z`` per row, one digit per column.

Images are written with Pillow, 8-bit, grey or RGB, without matplotlib. Figure
drawing uses its own generator and eval mode (batch-norm running statistics, no
dropout) and puts the model back in training mode, so it changes nothing a
resumed run depends on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from physamp.plotting import save_grid, tile  # noqa: F401  (tile: kept importable from here)
from physamp.training import Callback

__all__ = [
    "tile",
    "save_grid",
    "interleave_columns",
    "write_sample_grid",
    "write_reconstructions",
    "write_interpolations",
    "write_conditional_grid",
    "ALIFigures",
]


def interleave_columns(originals: torch.Tensor, reconstructions: torch.Tensor, ncol: int) -> torch.Tensor:
    """Order images so that a grid of ``ncol`` (even) columns shows originals in odd columns
    (1st, 3rd, ...) and each one's reconstruction to its right."""
    if ncol % 2:
        raise ValueError("ncol must be even: originals and reconstructions alternate")
    if originals.shape != reconstructions.shape:
        raise ValueError("originals and reconstructions must have the same shape")
    return torch.stack([originals, reconstructions], dim=1).flatten(0, 1)


class _Eval:
    """Eval mode inside, the previous mode restored after."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self):
        self.was = self.module.training
        self.module.eval()
        return self.module

    def __exit__(self, *exc):
        self.module.train(self.was)


@torch.no_grad()
def write_sample_grid(ali, z: torch.Tensor, path: str | Path, y=None, ncol: int = 10) -> Path:
    """Decode ``z`` (labels ``y`` for conditional ALI) in eval mode and save the grid to ``path``."""
    with _Eval(ali):
        return save_grid(ali.decode(z, y), path, ncol)


@torch.no_grad()
def write_reconstructions(
    ali, x: torch.Tensor, path: str | Path, y=None, *, eps: torch.Tensor | None = None, ncol: int = 10
) -> Path:
    """Save ``x`` and its reconstructions ``decode(encode(x))`` side by side (originals in odd
    columns); ``eps`` fixes the encoder's noise (default: a generator seeded with 0)."""
    if eps is None:  # never the global generator: drawing a figure must not shift training
        eps = ali.draw_eps(x.shape[0], torch.Generator().manual_seed(0))
    with _Eval(ali):
        x_rec = ali.decode(ali.encode(x, y, eps=eps), y)
        return save_grid(interleave_columns(x, x_rec, ncol), path, ncol)


@torch.no_grad()
def write_interpolations(
    ali, x1: torch.Tensor, x2: torch.Tensor, path: str | Path, steps: int = 8, *, seed: int = 0
) -> Path:
    """Unconditional models: ``x₁``, ``steps`` decodings from ``z₁`` to ``z₂``, ``x₂`` per row
    (``ẑ ~ q(z | x)`` with ε drawn from ``seed``, never from the global generator)."""
    with _Eval(ali):
        mid = ali.interpolate(x1, x2, steps, generator=torch.Generator().manual_seed(seed))
        rows = torch.cat([x1[:, None], mid, x2[:, None]], dim=1)
        return save_grid(rows.flatten(0, 1), path, steps + 2)


@torch.no_grad()
def write_conditional_grid(ali, z: torch.Tensor, n_classes: int, path: str | Path) -> Path:
    """One row per ``z``, one column per class ``y`` (one-hot)."""
    with _Eval(ali):
        rows = z.shape[0]
        zz = z.repeat_interleave(n_classes, dim=0)
        y = torch.eye(n_classes, device=z.device).repeat(rows, 1)
        return save_grid(ali.decode(zz, y), path, n_classes)


class ALIFigures(Callback):
    """A :class:`~physamp.training.Callback` writing the run's PNGs every ``every`` steps and at the end.

    ``x_val``: validation images (at least 2·``n_pairs`` and 50 of them); ``y_val`` their
    conditioning when the model is conditional. The ``z`` and ``ε`` it uses are fixed
    (drawn once from ``seed``).
    """

    def __init__(self, ali, out_dir: str | Path, x_val: torch.Tensor, y_val=None, *, every: int | None = None,
                 seed: int = 0, n_classes: int | None = None, n_pairs: int = 8):  # fmt: skip
        self.ali, self.out_dir, self.every = ali, Path(out_dir), every
        device = next(ali.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn((100, *ali.latent_shape), generator=gen).to(device)
        self.x_val = x_val[:50].to(device)
        self.y_val = None if y_val is None else y_val[:50].to(device)
        self.pairs = (x_val[: 2 * n_pairs : 2].to(device), x_val[1 : 2 * n_pairs : 2].to(device))
        self.eps = ali.draw_eps(len(self.x_val), gen)  # None for a GAN
        self.n_classes = n_classes
        self.written: list[Path] = []

    def write(self) -> list[Path]:
        ali, out = self.ali, self.out_dir
        paths = []
        if self.n_classes:
            paths.append(write_conditional_grid(ali, self.z[:10], self.n_classes, out / "conditional.png"))
        elif ali.n_cond:  # attributes (CelebA): the validation images' own attribute vectors
            y_val = self.y_val
            assert y_val is not None, "a model conditioned on attributes needs y_val"
            n = min(len(self.z), len(y_val))
            paths.append(write_sample_grid(ali, self.z[:n], out / "samples.png", y_val[:n]))
        else:
            paths.append(write_sample_grid(ali, self.z, out / "samples.png"))
        if ali.encoder is not None:
            paths.append(write_reconstructions(ali, self.x_val, out / "reconstructions.png", self.y_val,
                                               eps=self.eps))  # fmt: skip
            if not ali.n_cond:
                paths.append(write_interpolations(ali, *self.pairs, out / "interpolations.png"))
        self.written = paths
        return paths

    def on_step_end(self, loop, step: int, metrics: dict) -> None:
        if self.every and step % self.every == 0 and step != loop.total_steps:
            self.write()

    def on_end(self, loop) -> None:
        self.write()
