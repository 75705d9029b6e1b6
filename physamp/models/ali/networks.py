"""The ALI networks of thesis Tables 5.3-5.6, written as data: one list of layer specs per table.

Every image model has three players, split as the tables split them:

- the encoder ``G_z(x)``: convolutions down to ``2·latent × 1 × 1``, read as
  ``(μ, log σ)`` of ``q(z | x) = N(μ(x), σ²(x) I)`` and sampled by Eq. 5.2,
  ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)``;
- the decoder ``G_x(z)``: transposed convolutions from ``latent × 1 × 1`` up to the
  image, sigmoid output in [0, 1];
- the discriminator: ``D(x)`` (convolutions over the image), ``D(z)`` (1×1
  convolutions over the latent), then ``D(x, z)`` on their concatenation along the
  channel axis, down to one **logit** (the tables' final "Sigmoid" is applied inside
  the loss, :func:`torch.nn.functional.binary_cross_entropy_with_logits`, where it
  is numerically stable).

Choices where the thesis is silent or inconsistent (spec ``../shared/specs/ALI.md`` §2, §8)
-------------------------------------------------------------------------------------------
1. **Padding 0** everywhere: it reproduces every size the tables state (each encoder
   reaches 1×1, each decoder exactly 32×32 or 64×64). The authors' code agrees.
2. **Layer order** op → batch norm → nonlinearity (the tables' column order; the code agrees).
3. **Dropout on the layer's input** (a rate on the final sigmoid layer only makes sense
   that way; the code agrees).
4. **Biases**: none on a convolution followed by batch norm (the norm's shift is the
   bias); every other layer has one. Batch norm is affine, running statistics with
   momentum 0.05 (the code's ``0.05·batch + 0.95·old``), eps 1e-5.
5. **Maxout** (CIFAR-10 discriminator only): a table's "feature maps" is the count
   **after** the max over the 2 pieces, so a maxout layer's convolution has 2× the
   listed channels. That is the reading under which the table's own joint input,
   "1024 × 1 × 1" = 512 + 512, holds. (The authors' code halves the listed count
   instead, which would make the joint input 512 and contradict the table.)
6. **log σ**: the encoder's last layer is split channel-wise into ``μ`` (first half)
   and ``log σ`` (second half), ``σ = exp(log σ)`` (the authors' code; the thesis does
   not say how σ is parameterised).
7. **CelebA latent**: 256, with a Gaussian encoder whose last layer has 512 = 2·256
   outputs, and decoder and ``D(z)`` taking 256 channels (the authors' code). Read
   literally, Table 5.5 would be a deterministic encoder of a 512-d latent, the only
   such model among the four. ``D(x)`` follows the table (batch norm on its first
   layer, no dropout), not the code.
8. **Adam β₂ = 0.999**: the tables' "β₂ = 10⁻³" is read as ``1 − β₂`` (the notation of
   the Blocks version the authors used; β₂ = 0.001 would be a very odd Adam). The
   optimiser itself is configured in :mod:`physamp.models.ali.train`.
9. **Initial weights** N(0, 0.01²), biases 0 (all four tables); the toy models use std 0.02.

The MNIST model is ours (the thesis has none): the SVHN model with one channel, with the
layer that reaches 1×1 given a 3×3 kernel (28×28 → 24 → 11 → 8 → 3 → 1), and a 64-d
latent (the CIFAR-10 latent size; MNIST needs less than SVHN's 256).

The toy models (§5.4.5) are the authors' released configuration (the thesis gives none):
an *implicit* encoder that maps ``[x, ε]`` (ε ~ N(0, I₂)) through an MLP 4 → 400 → 400 → 2,
a decoder MLP 2 → 400 → 400 → 400 → 400 → 2 (batch norm + ReLU on hidden layers,
linear outputs), and a discriminator of three linear maxout layers (200 units, 5 pieces)
then a linear logit, on ``[x, z]`` (ALI) or ``x`` alone (GAN). Adam lr 1e-4, β₁ 0.8, batch 100,
init std 0.02 as in that script; its 200 epochs are ``--epochs 200``, the default is 10 (minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "Layer",
    "ModelSpec",
    "SPECS",
    "MODEL_NAMES",
    "Maxout",
    "Stack",
    "build_stack",
    "layer_shapes",
    "conv",
    "tconv",
    "linear",
]

BN_MOMENTUM = 0.05  # torch's momentum is the weight of the new batch: new = 0.05·batch + 0.95·old


@dataclass(frozen=True)
class Layer:
    """One row of an architecture table.

    ``op``: ``"conv"``, ``"tconv"`` (transposed convolution) or ``"linear"`` (a dense
    layer, for the toy MLPs); ``out``: feature maps (units) after the nonlinearity;
    ``act``: ``"lrelu"``, ``"relu"``, ``"maxout"``, ``"sigmoid"`` or ``"linear"``.
    """

    op: str
    kernel: int
    stride: int
    out: int
    bn: bool
    dropout: float
    act: str


def conv(k: int, s: int, out: int, bn: bool, dropout: float, act: str) -> Layer:
    """A convolution row of a table: kernel ``k``, stride ``s``, ``out`` channels, batch norm,
    dropout, activation."""
    return Layer("conv", k, s, out, bn, dropout, act)


def tconv(k: int, s: int, out: int, bn: bool, dropout: float, act: str) -> Layer:
    """A transposed-convolution row of a table (the arguments of :func:`conv`)."""
    return Layer("tconv", k, s, out, bn, dropout, act)


def linear(out: int, bn: bool, act: str, dropout: float = 0.0) -> Layer:
    """A fully connected row of a table: ``out`` units, batch norm, activation, dropout."""
    return Layer("linear", 1, 1, out, bn, dropout, act)


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: its input, latent, the four layer lists and the table's training settings.

    ``encoder`` ends in ``2 · latent`` outputs for a Gaussian encoder (``implicit=False``)
    or ``latent`` outputs for an implicit one, which reads ``[x, ε]`` with ``ε`` of
    ``noise_dim`` dimensions. ``d_joint`` ends in one output, the logit.
    """

    name: str
    table: str
    image_shape: tuple[int, ...]  # (C, H, W); (2,) for the toy
    latent: int
    encoder: tuple[Layer, ...]
    decoder: tuple[Layer, ...]
    d_x: tuple[Layer, ...]
    d_z: tuple[Layer, ...]
    d_joint: tuple[Layer, ...]
    slope: float = 0.01  # leaky-ReLU slope
    pieces: int = 2  # maxout pieces
    init_std: float = 0.01
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 100
    epochs: int = 100
    implicit: bool = False
    noise_dim: int = 0

    @property
    def is_image(self) -> bool:
        return len(self.image_shape) == 3

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent, 1, 1) if self.is_image else (self.latent,)


# --- Table 5.3: CIFAR-10 -------------------------------------------------------------------
_CIFAR_ENCODER = (
    conv(5, 1, 32, True, 0.0, "lrelu"),
    conv(4, 2, 64, True, 0.0, "lrelu"),
    conv(4, 1, 128, True, 0.0, "lrelu"),
    conv(4, 2, 256, True, 0.0, "lrelu"),
    conv(4, 1, 512, True, 0.0, "lrelu"),
    conv(1, 1, 512, True, 0.0, "lrelu"),
    conv(1, 1, 128, False, 0.0, "linear"),
)
_CIFAR_DECODER = (
    tconv(4, 1, 256, True, 0.0, "lrelu"),
    tconv(4, 2, 128, True, 0.0, "lrelu"),
    tconv(4, 1, 64, True, 0.0, "lrelu"),
    tconv(4, 2, 32, True, 0.0, "lrelu"),
    tconv(5, 1, 32, True, 0.0, "lrelu"),
    conv(1, 1, 32, True, 0.0, "lrelu"),
    conv(1, 1, 3, False, 0.0, "sigmoid"),
)
CIFAR10 = ModelSpec(
    name="cifar10",
    table="Table 5.3",
    image_shape=(3, 32, 32),
    latent=64,
    encoder=_CIFAR_ENCODER,
    decoder=_CIFAR_DECODER,
    d_x=(
        conv(5, 1, 32, False, 0.2, "maxout"),
        conv(4, 2, 64, False, 0.5, "maxout"),
        conv(4, 1, 128, False, 0.5, "maxout"),
        conv(4, 2, 256, False, 0.5, "maxout"),
        conv(4, 1, 512, False, 0.5, "maxout"),
    ),
    d_z=(conv(1, 1, 512, False, 0.2, "maxout"), conv(1, 1, 512, False, 0.5, "maxout")),
    d_joint=(
        conv(1, 1, 1024, False, 0.5, "maxout"),
        conv(1, 1, 1024, False, 0.5, "maxout"),
        conv(1, 1, 1, False, 0.5, "linear"),
    ),
    slope=0.1,
    pieces=2,
    epochs=6475,
)

# --- Table 5.4: SVHN ---------------------------------------------------------------------
_SVHN_D_X = (
    conv(5, 1, 32, False, 0.2, "lrelu"),
    conv(4, 2, 64, True, 0.2, "lrelu"),
    conv(4, 1, 128, True, 0.2, "lrelu"),
    conv(4, 2, 256, True, 0.2, "lrelu"),
    conv(4, 1, 512, True, 0.2, "lrelu"),
)
_SVHN_D_Z = (conv(1, 1, 512, False, 0.2, "lrelu"), conv(1, 1, 512, False, 0.2, "lrelu"))
_SVHN_D_JOINT = (
    conv(1, 1, 1024, False, 0.2, "lrelu"),
    conv(1, 1, 1024, False, 0.2, "lrelu"),
    conv(1, 1, 1, False, 0.2, "linear"),
)
SVHN = ModelSpec(
    name="svhn",
    table="Table 5.4",
    image_shape=(3, 32, 32),
    latent=256,
    encoder=_CIFAR_ENCODER[:-1] + (conv(1, 1, 512, False, 0.0, "linear"),),
    decoder=_CIFAR_DECODER,
    d_x=_SVHN_D_X,
    d_z=_SVHN_D_Z,
    d_joint=_SVHN_D_JOINT,
    slope=0.01,
    epochs=100,
)

# --- Table 5.5: CelebA (64x64) -------------------------------------------------------------
CELEBA = ModelSpec(
    name="celeba",
    table="Table 5.5",
    image_shape=(3, 64, 64),
    latent=256,  # choice 7 of the module docstring
    encoder=(
        conv(2, 1, 64, True, 0.0, "lrelu"),
        conv(7, 2, 128, True, 0.0, "lrelu"),
        conv(5, 2, 256, True, 0.0, "lrelu"),
        conv(7, 2, 256, True, 0.0, "lrelu"),
        conv(4, 1, 512, True, 0.0, "lrelu"),
        conv(1, 1, 512, False, 0.0, "linear"),
    ),
    decoder=(
        tconv(4, 1, 512, True, 0.0, "lrelu"),
        tconv(7, 2, 256, True, 0.0, "lrelu"),
        tconv(5, 2, 256, True, 0.0, "lrelu"),
        tconv(7, 2, 128, True, 0.0, "lrelu"),
        tconv(2, 1, 64, True, 0.0, "lrelu"),
        conv(1, 1, 3, False, 0.0, "sigmoid"),
    ),
    d_x=(
        conv(2, 1, 64, True, 0.0, "lrelu"),
        conv(7, 2, 128, True, 0.0, "lrelu"),
        conv(5, 2, 256, True, 0.0, "lrelu"),
        conv(7, 2, 256, True, 0.0, "lrelu"),
        conv(4, 1, 512, True, 0.0, "lrelu"),
    ),
    d_z=(conv(1, 1, 1024, False, 0.2, "lrelu"), conv(1, 1, 1024, False, 0.2, "lrelu")),
    d_joint=(
        conv(1, 1, 2048, False, 0.2, "lrelu"),
        conv(1, 1, 2048, False, 0.2, "lrelu"),
        conv(1, 1, 1, False, 0.2, "linear"),
    ),
    slope=0.02,
    epochs=123,
)

# --- Table 5.6: ImageNet 64x64 ("Tiny ImageNet") -------------------------------------------
IMAGENET64 = ModelSpec(
    name="imagenet64",
    table="Table 5.6",
    image_shape=(3, 64, 64),
    latent=256,
    encoder=(
        conv(4, 2, 64, True, 0.0, "lrelu"),
        conv(4, 1, 64, True, 0.0, "lrelu"),
        conv(4, 2, 128, True, 0.0, "lrelu"),
        conv(4, 1, 128, True, 0.0, "lrelu"),
        conv(4, 2, 256, True, 0.0, "lrelu"),
        conv(4, 1, 256, True, 0.0, "lrelu"),
        conv(1, 1, 2048, True, 0.0, "lrelu"),
        conv(1, 1, 2048, True, 0.0, "lrelu"),
        conv(1, 1, 512, False, 0.0, "linear"),
    ),
    decoder=(
        conv(1, 1, 2048, True, 0.0, "lrelu"),
        conv(1, 1, 256, True, 0.0, "lrelu"),
        tconv(4, 1, 256, True, 0.0, "lrelu"),
        tconv(4, 2, 128, True, 0.0, "lrelu"),
        tconv(4, 1, 128, True, 0.0, "lrelu"),
        tconv(4, 2, 64, True, 0.0, "lrelu"),
        tconv(4, 1, 64, True, 0.0, "lrelu"),
        tconv(4, 2, 64, True, 0.0, "lrelu"),
        conv(1, 1, 3, False, 0.0, "sigmoid"),
    ),
    d_x=(
        conv(4, 2, 64, False, 0.2, "lrelu"),
        conv(4, 1, 64, True, 0.2, "lrelu"),
        conv(4, 2, 128, True, 0.2, "lrelu"),
        conv(4, 1, 128, True, 0.2, "lrelu"),
        conv(4, 2, 256, True, 0.2, "lrelu"),
        conv(4, 1, 256, True, 0.2, "lrelu"),
    ),
    d_z=(conv(1, 1, 2048, False, 0.2, "lrelu"), conv(1, 1, 2048, False, 0.2, "lrelu")),
    d_joint=(
        conv(1, 1, 4096, False, 0.2, "lrelu"),
        conv(1, 1, 4096, False, 0.2, "lrelu"),
        conv(1, 1, 1, False, 0.2, "linear"),
    ),
    slope=0.01,
    batch_size=128,
    epochs=125,
)

# --- MNIST (ours): the SVHN model for 1 x 28 x 28 ------------------------------------------
MNIST = ModelSpec(
    name="mnist",
    table="the SVHN model of Table 5.4, for 1x28x28 (this package's)",
    image_shape=(1, 28, 28),
    latent=64,
    encoder=(
        conv(5, 1, 32, True, 0.0, "lrelu"),
        conv(4, 2, 64, True, 0.0, "lrelu"),
        conv(4, 1, 128, True, 0.0, "lrelu"),
        conv(4, 2, 256, True, 0.0, "lrelu"),
        conv(3, 1, 512, True, 0.0, "lrelu"),
        conv(1, 1, 512, True, 0.0, "lrelu"),
        conv(1, 1, 128, False, 0.0, "linear"),
    ),
    decoder=(
        tconv(3, 1, 256, True, 0.0, "lrelu"),
        tconv(4, 2, 128, True, 0.0, "lrelu"),
        tconv(4, 1, 64, True, 0.0, "lrelu"),
        tconv(4, 2, 32, True, 0.0, "lrelu"),
        tconv(5, 1, 32, True, 0.0, "lrelu"),
        conv(1, 1, 32, True, 0.0, "lrelu"),
        conv(1, 1, 1, False, 0.0, "sigmoid"),
    ),
    d_x=_SVHN_D_X[:-1] + (conv(3, 1, 512, True, 0.2, "lrelu"),),
    d_z=_SVHN_D_Z,
    d_joint=_SVHN_D_JOINT,
    slope=0.01,
    epochs=20,
)

# --- the toy (§5.4.5; the authors' released configuration) ---------------------------------
TOY = ModelSpec(
    name="toy",
    table="§5.4.5 (architecture from the authors' released code)",
    image_shape=(2,),
    latent=2,
    encoder=(linear(400, True, "relu"), linear(400, True, "relu"), linear(2, False, "linear")),
    decoder=(
        linear(400, True, "relu"),
        linear(400, True, "relu"),
        linear(400, True, "relu"),
        linear(400, True, "relu"),
        linear(2, False, "linear"),
    ),
    d_x=(),
    d_z=(),
    d_joint=(
        linear(200, False, "maxout"),
        linear(200, False, "maxout"),
        linear(200, False, "maxout"),
        linear(1, False, "linear"),
    ),
    pieces=5,
    init_std=0.02,
    lr=1e-4,
    beta1=0.8,
    # the authors' script trains 200 epochs (--epochs 200: about 3 hours on one core at ~50 ms a
    # step); 10 epochs of 1,000 steps take minutes and already cover most modes
    epochs=10,
    implicit=True,
    noise_dim=2,
)

SPECS: dict[str, ModelSpec] = {s.name: s for s in (TOY, MNIST, SVHN, CIFAR10, CELEBA, IMAGENET64)}
MODEL_NAMES = tuple(SPECS)


class Maxout(nn.Module):
    """The max over ``pieces`` consecutive groups of channels: ``(B, k·pieces, ...) -> (B, k, ...)``."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return x.view(b, c // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class Block(nn.Sequential):
    """One table row: dropout (on the input) → op → batch norm → nonlinearity."""


def _block(layer: Layer, in_ch: int, slope: float, pieces: int) -> Block:
    parts: list[nn.Module] = []
    if layer.dropout > 0:
        parts.append(nn.Dropout(layer.dropout))
    width = layer.out * (pieces if layer.act == "maxout" else 1)
    bias = not layer.bn
    if layer.op == "conv":
        parts.append(nn.Conv2d(in_ch, width, layer.kernel, layer.stride, padding=0, bias=bias))
    elif layer.op == "tconv":
        parts.append(nn.ConvTranspose2d(in_ch, width, layer.kernel, layer.stride, padding=0, bias=bias))
    elif layer.op == "linear":
        parts.append(nn.Linear(in_ch, width, bias=bias))
    else:  # pragma: no cover - specs are ours
        raise ValueError(f"unknown op {layer.op!r}")
    if layer.bn:
        norm = nn.BatchNorm2d if layer.op in ("conv", "tconv") else nn.BatchNorm1d
        parts.append(norm(width, momentum=BN_MOMENTUM))
    if layer.act == "lrelu":
        parts.append(nn.LeakyReLU(slope))
    elif layer.act == "relu":
        parts.append(nn.ReLU())
    elif layer.act == "maxout":
        parts.append(Maxout(pieces))
    elif layer.act == "sigmoid":
        parts.append(nn.Sigmoid())
    elif layer.act != "linear":  # pragma: no cover
        raise ValueError(f"unknown nonlinearity {layer.act!r}")
    return Block(*parts)


class Stack(nn.Sequential):
    """The layers of one table, in order; ``forward_all`` also returns every layer's output."""

    def __init__(self, layers: Sequence[Layer], in_ch: int, *, slope: float, pieces: int):
        blocks, ch = [], in_ch
        for layer in layers:
            blocks.append(_block(layer, ch, slope, pieces))
            ch = layer.out
        super().__init__(*blocks)
        self.layers = tuple(layers)
        self.in_channels, self.out_channels = in_ch, ch

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self:
            x = block(x)
            outs.append(x)
        return outs


def build_stack(layers: Sequence[Layer], in_ch: int, spec: ModelSpec) -> Stack:
    """The :class:`Stack` of ``layers`` on ``in_ch`` input channels, with the model's leaky slope
    and maxout pieces."""
    return Stack(layers, in_ch, slope=spec.slope, pieces=spec.pieces)


def layer_shapes(layers: Sequence[Layer], in_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """The output shape ``(C, H, W)`` (or ``(units,)``) of every layer, by arithmetic (padding 0).

    Conv: ``(H - k) // s + 1``; transposed conv: ``(H - 1)·s + k``.
    """
    shape: tuple[int, ...] = tuple(in_shape)
    out: list[tuple[int, ...]] = []
    for layer in layers:
        if layer.op == "linear":
            shape = (layer.out,)
        else:
            h, w = shape[1:]
            if layer.op == "conv":
                h, w = (h - layer.kernel) // layer.stride + 1, (w - layer.kernel) // layer.stride + 1
            else:
                h, w = (h - 1) * layer.stride + layer.kernel, (w - 1) * layer.stride + layer.kernel
            shape = (layer.out, h, w)
        out.append(shape)
    return out
