"""Using a trained N-styles network: load it, stylize, blend, and the figures of §7.3.

- :func:`load_style_network`: a :class:`StyleNetwork` (and its style names) from a
  ``train-style`` / ``add-style`` checkpoint, with clear errors for anything else.
- :func:`prepare_content`: a photograph as the network takes it: the smaller side resized
  (the thesis evaluates at 512), then centre-cropped to a multiple of 4.
- :func:`stylize`: pastiches of one image in styles given as ids or mixing weights.
- :func:`pastiche_grid`: the image in all ``N`` styles, in one batch of ``N`` (§7.2.1).
- :func:`corner_weights` / :func:`blend_grid`: the four-style convex-combination grid of
  Fig. 7.7 (left). The thesis does not say how the grid's weights are laid out; here the
  point ``(u, v)`` of the unit square weighs the corners bilinearly,
  ``((1-u)(1-v), u(1-v), (1-u)v, uv)`` for top-left, top-right, bottom-left, bottom-right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from physamp.models.style.network import StyleNetwork, check_content
from physamp.training.checkpoint import CheckpointError, checkpoint_config, load_checkpoint, load_component
from physamp.training.loop import Callback

__all__ = [
    "load_style_network",
    "prepare_content",
    "stylize",
    "pastiche_grid",
    "corner_weights",
    "blend_grid",
    "PasticheFigures",
]


def load_style_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[StyleNetwork, dict]:
    """``(net, info)`` from a style checkpoint (a ``checkpoint.pt``, or the run directory holding one).

    ``info`` has ``num_styles``, ``style_names`` and the run's ``config``. The network is in eval mode.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    config = checkpoint_config(ckpt)
    if config.get("family") != "style":
        family = config.get("family", "unknown")
        raise CheckpointError(
            f"{path} is not a style-transfer checkpoint (its family is {family!r}); give the checkpoint.pt "
            "that physamp train-style or add-style wrote"
        )
    state = load_component(ckpt, "model")
    gamma = state.get("conv1.norm.gamma")
    if not isinstance(gamma, torch.Tensor) or gamma.dim() != 2:
        raise CheckpointError(f"{path}: its model has no conditional instance norm γ; the file is damaged")
    n = int(gamma.shape[0])
    names = list(config.get("style_names") or [f"style {k}" for k in range(n)])
    if len(names) != n:
        names = [f"style {k}" for k in range(n)]
    net = StyleNetwork(n)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: its weights do not fit the Table 7.1 network ({str(err)[:200]})"
        ) from None
    for p in net.parameters():
        if not torch.isfinite(p).all():
            raise CheckpointError(
                f"{path}: its weights hold NaN or infinite values; use an earlier checkpoint"
            )
    return net.to(device).eval(), {"num_styles": n, "style_names": names, "config": config, "path": str(path)}


def prepare_content(image: torch.Tensor, size: int | None = 512) -> torch.Tensor:
    """``(3, H, W)`` in [0, 1] → the smaller side resized to ``size`` (None: kept), then centre-cropped
    so that both sides are multiples of 4 (the network's constraint)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"an image must be (3, H, W) RGB, got shape {tuple(image.shape)}")
    if size is not None:
        from physamp.models.style.data import resize_smaller_side

        image = resize_smaller_side(image, size)
    h, w = image.shape[-2:]
    h4, w4 = h - h % 4, w - w % 4
    if h4 < 8 or w4 < 8:
        raise ValueError(f"the image is {h}×{w}; it needs at least 8 pixels each way (give a larger --size)")
    top, left = (h - h4) // 2, (w - w4) // 2
    return image[:, top : top + h4, left : left + w4]


@torch.inference_mode()
def stylize(net: StyleNetwork, image: torch.Tensor, styles, *, batch_size: int = 8) -> torch.Tensor:
    """Pastiches of ``image`` ``(3, H, W)`` (H, W multiples of 4), one per row of ``styles``:
    ``styles`` is a ``LongTensor (K,)`` of ids or mixing weights ``(K, N)`` / ``(N,)`` (one pastiche).
    Returns ``(K, 3, H, W)``; computed ``batch_size`` pastiches at a time."""
    from physamp.models.style.network import style_weights

    check_content(image.unsqueeze(0), "the image")
    if isinstance(styles, int) or (isinstance(styles, torch.Tensor) and styles.dim() == 0):
        styles = torch.as_tensor([int(styles)])
    styles = torch.as_tensor(styles)
    if styles.is_floating_point() and styles.dim() == 1:
        styles = styles.unsqueeze(0)
    k = styles.shape[0]
    s = style_weights(styles, net.num_styles, k)  # checked once, for every chunk
    device = next(net.parameters()).device
    x = image.to(device)
    out = []
    for i in range(0, k, batch_size):
        chunk = s[i : i + batch_size].to(device)
        out.append(net.transform(x.expand(len(chunk), -1, -1, -1), chunk).cpu())
    return torch.cat(out)


def pastiche_grid(
    net: StyleNetwork, image: torch.Tensor, path: str | Path, *, ncol: int | None = None
) -> Path:
    """The content image followed by its ``N`` pastiches (one batch of ``N``), as one PNG grid."""
    from physamp.plotting import save_grid

    n = net.num_styles
    pastiches = stylize(net, image, torch.arange(n), batch_size=n)
    images = torch.cat([image.unsqueeze(0).cpu(), pastiches])
    return save_grid(images, path, ncol or min(n + 1, 6))


def corner_weights(steps: int, corners: Sequence[int], num_styles: int) -> torch.Tensor:
    """``(steps², N)`` mixing weights of a ``steps × steps`` grid over four corner styles (row-major,
    top-left first): bilinear in the grid position, each row summing to 1."""
    if len(corners) != 4:
        raise ValueError(f"a blend grid takes 4 corner styles, got {len(corners)}")
    if steps < 2:
        raise ValueError("a blend grid needs at least 2 steps per side")
    for c in corners:
        if not 0 <= int(c) < num_styles:
            raise ValueError(f"style id {c} is out of range: the network has {num_styles} styles")
    t = torch.linspace(0, 1, steps)
    v, u = torch.meshgrid(t, t, indexing="ij")  # v: down the rows, u: along the columns
    bilinear = torch.stack([(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v], -1).reshape(-1, 4)
    w = torch.zeros(steps * steps, num_styles)
    for j, c in enumerate(corners):
        w[:, int(c)] += bilinear[:, j]
    return w


def blend_grid(
    net: StyleNetwork,
    image: torch.Tensor,
    path: str | Path,
    corners: Sequence[int] = (0, 1, 2, 3),
    steps: int = 5,
) -> Path:
    """Fig. 7.7 (left): a ``steps × steps`` PNG of pastiches of ``image`` whose γ, β are convex
    combinations of the four ``corners`` styles' (see :func:`corner_weights`)."""
    from physamp.plotting import save_grid

    w = corner_weights(steps, corners, net.num_styles)
    return save_grid(stylize(net, image, w), path, steps)


class PasticheFigures(Callback):
    """Write ``pastiches.png`` (and ``blend.png`` for 4 styles or more) at every checkpoint and at the end,
    so a long run shows its progress. The network goes to eval mode for the figure and back after."""

    def __init__(self, net: StyleNetwork, image: torch.Tensor, out_dir: str | Path):
        self.net, self.image, self.out_dir = net, image, Path(out_dir)
        self.written: list[Path] = []

    def write(self) -> list[Path]:
        was_training = self.net.training
        self.net.eval()
        try:
            paths = [pastiche_grid(self.net, self.image, self.out_dir / "pastiches.png")]
            if self.net.num_styles >= 4:
                paths.append(blend_grid(self.net, self.image, self.out_dir / "blend.png"))
        finally:
            self.net.train(was_training)
        self.written = paths
        return paths

    def on_checkpoint(self, loop, path) -> None:
        self.write()

    def on_end(self, loop) -> None:
        self.write()
