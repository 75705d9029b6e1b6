"""The N-styles transformer network of Table 7.1, with conditional instance normalization (Eq. 7.5).

One network ``T(c, s)`` for ``N`` styles: every convolution is shared, and a style is one row
of ``γ`` and one row of ``β`` in each :class:`CondInstanceNorm2d` (1,603 feature maps in all,
so 3,206 numbers per style against 1,674,432 shared convolution weights)::

    z = γ_s ((x − μ) / σ) + β_s        μ, σ: per instance and channel, over H and W   (Eq. 7.5)

Table 7.1, for a 256×256×3 input (every convolution is conv → CIN → nonlinearity)::

    conv 9×9 /1  32  ReLU      256×256×32
    conv 3×3 /2  64  ReLU      128×128×64
    conv 3×3 /2 128  ReLU       64×64×128
    5 × residual block 128      (conv 3×3 → CIN → ReLU → conv 3×3 → CIN, + input; no ReLU after)
    upsample 64                 (nearest ×2, conv 3×3 → CIN → ReLU)   128×128×64
    upsample 32                                                         256×256×32
    conv 9×9 /1   3  sigmoid    256×256×3

Choices where the thesis is silent (the spec's gaps; values from the authors' magenta code):

- **Padding**: reflect-pad ``k // 2`` on every side, then a valid convolution with the
  table's stride (``padding_mode="reflect"``); for 3×3 stride 2 on 256 that gives 128.
- **No convolution biases**: ``β`` plays their role (magenta's ``slim.conv2d`` with a
  normaliser creates none). Weights are drawn from N(0, 0.01²) (Table 7.1).
- **CIN statistics**: biased (population) variance per instance and channel, ``ε = 1e-5``
  added to it; ``γ = 1`` and ``β = 0`` for every style at initialisation.
- **Input**: RGB in [0, 1], ``(B, 3, H, W)``; the output is in [0, 1] by the sigmoid. The
  network is fully convolutional: ``H`` and ``W`` must be multiples of 4 (two stride-2
  convolutions, then two ×2 upsamplings, give back the input size) and at least 8 (a 9×9
  reflect padding needs more than 4 pixels).
- **Styles** (:meth:`StyleNetwork.forward`): a ``LongTensor`` of style ids ``(B,)`` (or one
  int for the whole batch) selects rows; a ``FloatTensor`` of weights ``(B, N)`` (or ``(N,)``
  for the whole batch) blends them, ``γ = Σ_k w_k γ_k`` and ``β = Σ_k w_k β_k`` at every CIN
  layer (§7.3.5). Weights must be finite and non-negative with a positive sum. **Weights
  that do not sum to 1 are divided by their sum**: a mix is always a convex combination, so
  ``(2, 1, 1)`` means ``(0.5, 0.25, 0.25)``. (magenta applies the weights unnormalised;
  ``normalize=False`` does that, for experiments off the simplex.)
- **Adding a style** (:meth:`StyleNetwork.add_styles`) appends rows initialised like the
  first ones (γ = 1, β = 0, magenta's fine-tuning script), or, with ``init="mean"``, to the
  mean of the existing styles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CondInstanceNorm2d",
    "ConvCIN",
    "ResidualBlock",
    "UpsampleConv",
    "StyleNetwork",
    "SHARED_CONV_WEIGHTS",
    "STYLE_PARAMS_PER_STYLE",
    "check_content",
    "style_weights",
]

#: convolution weights of Table 7.1's network (no biases): shared by every style
SHARED_CONV_WEIGHTS = 1_674_432
#: γ and β values of one style: 2 × 1,603 normalised feature maps
STYLE_PARAMS_PER_STYLE = 3_206


class CondInstanceNorm2d(nn.Module):
    """Conditional instance normalization (Eq. 7.5): ``γ`` and ``β`` are ``(N, C)``, one row per style.

    ``forward(x, s)``: ``x`` is ``(B, C, H, W)``; ``s`` is a ``LongTensor (B,)`` of style ids or a
    ``FloatTensor (B, N)`` of (already checked) mixing weights.
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    @property
    def num_styles(self) -> int:
        return self.gamma.shape[0]

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if s.dtype == torch.long:
            gamma, beta = self.gamma[s], self.beta[s]
        else:
            gamma, beta = s.to(self.gamma.dtype) @ self.gamma, s.to(self.beta.dtype) @ self.beta
        x = F.instance_norm(x, eps=self.eps)  # (x − μ) / sqrt(σ² + ε), biased σ², per instance and channel
        return x * gamma[:, :, None, None].to(x.dtype) + beta[:, :, None, None].to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.channels}, num_styles={self.num_styles}, eps={self.eps}"


class ConvCIN(nn.Module):
    """Reflect-padded convolution (no bias) → CIN → nonlinearity: one row of Table 7.1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, num_styles: int, act: str = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode="reflect", bias=False
        )
        self.norm = CondInstanceNorm2d(c_out, num_styles)
        if act not in ("relu", "linear", "sigmoid"):
            raise ValueError(f"unknown nonlinearity {act!r}")
        self.act = act

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x), s)
        if self.act == "relu":
            return F.relu(x)
        if self.act == "sigmoid":
            return torch.sigmoid(x)
        return x


class ResidualBlock(nn.Module):
    """conv 3×3 → CIN → ReLU → conv 3×3 → CIN, added to the input (no nonlinearity after the sum)."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__()
        self.conv1 = ConvCIN(channels, channels, 3, 1, num_styles, "relu")
        self.conv2 = ConvCIN(channels, channels, 3, 1, num_styles, "linear")

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, s), s)


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling ×2, then conv 3×3 → CIN → ReLU (instead of a transposed conv)."""

    def __init__(self, c_in: int, c_out: int, num_styles: int):
        super().__init__()
        self.conv = ConvCIN(c_in, c_out, 3, 1, num_styles, "relu")

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"), s)


def check_content(x: torch.Tensor, what: str = "the content images") -> None:
    """A clear ``ValueError`` unless ``x`` is ``(B, 3, H, W)`` floats, ``H`` and ``W`` multiples of 4, ≥ 8."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a tensor (B, 3, H, W), got {type(x).__qualname__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what} must be (B, 3, H, W) RGB images, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be floats in [0, 1], got {x.dtype}")
    h, w = x.shape[-2:]
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(
            f"{what} are {h}×{w}; the network needs a height and width that are multiples of 4 and at "
            f"least 8 (crop or resize to e.g. {max(8, h - h % 4)}×{max(8, w - w % 4)})"
        )


def style_weights(styles, num_styles: int, batch: int, *, normalize: bool = True) -> torch.Tensor:
    """Check ``styles`` and broadcast them to ``batch`` images: ids ``LongTensor (B,)`` or weights ``(B, N)``.

    Accepted: an int or a ``LongTensor`` of ids in ``[0, N)`` of shape ``()`` or ``(B,)``;
    a float tensor (or sequence of floats) of weights of shape ``(N,)`` or ``(B, N)``, finite
    and non-negative, each row with a positive sum (divided by that sum unless ``normalize=False``).
    """
    if isinstance(styles, bool):
        raise TypeError("styles must be style ids (int / LongTensor) or mixing weights (float tensor)")
    if isinstance(styles, int):
        styles = torch.tensor(styles)
    elif not isinstance(styles, torch.Tensor):
        styles = torch.as_tensor(styles)
        if styles.dtype == torch.float64:
            styles = styles.float()
    if styles.dtype == torch.bool:
        raise TypeError(
            "styles must be style ids (int / LongTensor) or mixing weights (float tensor), not bool"
        )
    if not styles.is_floating_point():
        if styles.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"style ids must be integers, got {styles.dtype}")
        ids = styles.long()
        if ids.dim() == 0:
            ids = ids.expand(batch)
        if ids.dim() != 1 or ids.shape[0] != batch:
            raise ValueError(f"style ids must be one per image ({batch}), got shape {tuple(styles.shape)}")
        if batch and (int(ids.min()) < 0 or int(ids.max()) >= num_styles):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(
                f"style id {bad} is out of range: this network has {num_styles} styles (0..{num_styles - 1})"
            )
        return ids
    w = styles.float()  # float16 / bfloat16 / float64 weights are checked and mixed in float32
    if w.dim() == 1:
        w = w.unsqueeze(0).expand(batch, -1)
    if w.dim() != 2 or w.shape[0] != batch or w.shape[1] != num_styles:
        raise ValueError(
            f"mixing weights must be (N,) or (B, N) with N = {num_styles} styles and B = {batch} images, "
            f"got shape {tuple(styles.shape)}"
        )
    if not torch.isfinite(w).all():
        raise ValueError("mixing weights must be finite (got NaN or infinity)")
    if (w < 0).any():
        raise ValueError(f"mixing weights must be non-negative, got {w[(w < 0).any(1)][0].tolist()}")
    top = w.amax(1, keepdim=True)
    if (top <= 0).any():
        raise ValueError("mixing weights must not be all zero: give at least one style a positive weight")
    if not normalize:
        return w
    w = w / top  # in (0, 1] before summing: no overflow for huge weights
    return w / w.sum(1, keepdim=True)


class StyleNetwork(nn.Module):
    """The Table 7.1 transformer for ``num_styles`` styles: ``y = net(x, styles)``.

    Args:
        num_styles: ``N``, the rows of every CIN layer's ``γ`` and ``β``.
        init_std: std of the N(0, σ²) convolution weights (Table 7.1: 0.01).
        generator: a ``torch.Generator`` for the initial weights (default: the global one).

    ``forward(x, styles)``: ``x`` ``(B, 3, H, W)`` in [0, 1], ``H`` and ``W`` multiples of 4 (≥ 8);
    ``styles`` as :func:`style_weights` takes them. Returns ``(B, 3, H, W)`` in [0, 1].
    """

    def __init__(self, num_styles: int, *, init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(num_styles, bool) or not isinstance(num_styles, int) or num_styles < 1:
            raise ValueError(f"num_styles must be a positive int, got {num_styles!r}")
        n = num_styles
        self.conv1 = ConvCIN(3, 32, 9, 1, n)
        self.conv2 = ConvCIN(32, 64, 3, 2, n)
        self.conv3 = ConvCIN(64, 128, 3, 2, n)
        self.res = nn.ModuleList(ResidualBlock(128, n) for _ in range(5))
        self.up1 = UpsampleConv(128, 64, n)
        self.up2 = UpsampleConv(64, 32, n)
        self.out = ConvCIN(32, 3, 9, 1, n, "sigmoid")
        with torch.no_grad():
            for conv in self.convs():
                conv.weight.normal_(0.0, init_std, generator=generator)

    # --- parameters ------------------------------------------------------------------
    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]

    def norms(self) -> list[CondInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, CondInstanceNorm2d)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The convolution weights (shared by every style)."""
        # torch annotates Conv2d.weight as a Tensor; it is the module's Parameter
        return [c.weight for c in self.convs()]  # type: ignore[misc]

    def style_parameters(self) -> list[nn.Parameter]:
        """Every CIN layer's ``γ`` and ``β`` (``(N, C)`` each)."""
        return [p for m in self.norms() for p in (m.gamma, m.beta)]

    @property
    def num_styles(self) -> int:
        return self.conv1.norm.num_styles

    def style_vector(self, style: int) -> torch.Tensor:
        """The 3,206 numbers of one style: every layer's ``γ_s`` then ``β_s``, concatenated."""
        return torch.cat([p[style] for p in self.style_parameters()])

    def add_styles(self, k: int = 1, *, init: str = "identity") -> list[int]:
        """Append ``k`` styles to every CIN layer; returns their ids. The existing rows are copied
        unchanged (optimizers built before must be rebuilt: the parameters are new tensors).

        ``init="identity"``: γ = 1, β = 0 (as at construction); ``"mean"``: the existing styles' mean.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if init not in ("identity", "mean"):
            raise ValueError(f"init must be 'identity' or 'mean', got {init!r}")
        first = self.num_styles
        for m in self.norms():
            with torch.no_grad():
                if init == "mean":
                    g = m.gamma.mean(0, keepdim=True).expand(k, -1)
                    b = m.beta.mean(0, keepdim=True).expand(k, -1)
                else:
                    g, b = (
                        torch.ones_like(m.gamma[:1]).expand(k, -1),
                        torch.zeros_like(m.beta[:1]).expand(k, -1),
                    )
                m.gamma = nn.Parameter(torch.cat([m.gamma, g]), requires_grad=m.gamma.requires_grad)
                m.beta = nn.Parameter(torch.cat([m.beta, b]), requires_grad=m.beta.requires_grad)
        return list(range(first, first + k))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, with a clear error for weights of another number of styles."""
        gamma = state_dict.get("conv1.norm.gamma")
        if isinstance(gamma, torch.Tensor) and gamma.dim() == 2 and gamma.shape[0] != self.num_styles:
            raise ValueError(
                f"the weights are for a network of {gamma.shape[0]} styles; this one has {self.num_styles}. "
                f"Build StyleNetwork(num_styles={gamma.shape[0]}) (or add_styles) before loading"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # --- the forward pass ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, styles, *, normalize: bool = True) -> torch.Tensor:
        check_content(x)
        dtype = self.conv1.conv.weight.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(
                f"the images are {x.dtype} and the network {dtype}: convert them (e.g. x.to({dtype}))"
            )
        s = style_weights(styles, self.num_styles, x.shape[0], normalize=normalize).to(x.device)
        return self.transform(x, s)

    def transform(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Table 7.1 top to bottom for checked ``s`` (ids ``(B,)`` or weights ``(B, N)``); no input checks."""
        x = self.conv1(x, s)
        x = self.conv2(x, s)
        x = self.conv3(x, s)
        for block in self.res:
            x = block(x, s)
        x = self.up1(x, s)
        x = self.up2(x, s)
        return self.out(x, s)
