"""The style-transfer objective (Eqs. 7.1-7.4) on a fixed VGG-16 loss network.

For a pastiche ``p = T(c, s)`` of content image ``c`` in style ``s``::

    L(s, c) = λ_c L_c(p) + λ_s L_s(p)                                            (Eqs. 7.1, 7.4)
    L_s(p)  = Σ_{i∈S} w_i · mean over C_i² of (G(φ_i(p)) − G(φ_i(s)))²            (Eq. 7.2)
    L_c(p)  = Σ_{j∈C} w_j · mean over C_j·H_j·W_j of (φ_j(p) − φ_j(c))²          (Eq. 7.3)
    G(F)    = Fᵀ F / (H · W)       for F the (H·W) × C matrix of a layer's activations

``φ_l`` are the activations of the loss network (VGG-16 with average pooling; see
:mod:`physamp.models.style.vgg`). The "1/U_l" of Eqs. 7.2-7.3 is read as the mean over a
layer's entries and the Gram matrix is normalised by ``H·W`` (the thesis leaves both open;
this is what the authors' magenta code does). Layers and weights are magenta's defaults:
content at ``relu3_3`` with weight 1, style at ``relu1_2``, ``relu2_2``, ``relu3_3``,
``relu4_3`` with weight ``λ_s = 1e-4`` each (the thesis: "we set λ_c = 1.0 and leave λ_s as
a free hyper-parameter"; its values are not given). The style targets ``G(φ_i(s))`` are
computed once per style image, at the image's own size.

Losses are returned **per example** (a vector over the batch), each example against its own
style's targets, so a batch can mix styles and a trainer can report every style's losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

__all__ = ["gram", "StyleLoss"]


def gram(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` activations → ``(B, C, C)`` Gram matrices ``F Fᵀ / (H·W)``, in float32."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):  # autocast would run bmm in bf16
        f = features.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (h * w)


def _layer_weights(weights, layers: Sequence[str], what: str) -> dict[str, float]:
    if isinstance(weights, Mapping):
        out = {str(k): float(v) for k, v in weights.items()}
    else:
        out = {name: float(weights) for name in layers}
    for name, v in out.items():
        if not (v >= 0 and v < float("inf")):
            raise ValueError(f"the {what} weight of {name} must be a non-negative finite number, got {v}")
    if not out:
        raise ValueError(f"no {what} layers")
    return out


class StyleLoss(nn.Module):
    """Content and style losses of pastiches, per example, on a frozen loss network.

    Args:
        vgg: the loss network: ``vgg.features(x, layers) -> {layer: (B, C, H, W)}``.
        preprocess: maps RGB images in [0, 1] to the network's input (its weights' normalisation).
        content_layers, style_layers: layer names (defaults: magenta's).
        content_weight: ``λ_c`` (a number for every content layer, or ``{layer: weight}``).
        style_weight: ``λ_s`` per style layer (a number, or ``{layer: weight}``).

    Call :meth:`set_styles` once with the style images; then :meth:`forward` gives
    ``(content_loss, style_loss)``, each ``(B,)`` and already weighted.
    """

    have_target: torch.Tensor | None  # a buffer (None until set_styles)
    vgg: Any  # a loss network with .features(x, layers) -> {layer: activations}

    def __init__(
        self,
        vgg: nn.Module,
        preprocess,
        *,
        content_layers: Sequence[str] = ("relu3_3",),
        style_layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        content_weight: float | Mapping[str, float] = 1.0,
        style_weight: float | Mapping[str, float] = 1e-4,
    ):
        super().__init__()
        self.vgg = vgg.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.content_weights = _layer_weights(content_weight, content_layers, "content")
        self.style_weights = _layer_weights(style_weight, style_layers, "style")
        self.layers = list(dict.fromkeys([*self.content_weights, *self.style_weights]))
        # {style layer: (N, C, C)} Gram targets, as buffers "target_<layer>" (they follow .to(device))
        self.register_buffer("have_target", None, persistent=False)  # (N,) bool: which styles have an image

    def train(self, mode: bool = True) -> StyleLoss:  # the loss network is always in eval mode
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg.features(self.preprocess(x), self.layers)

    @torch.no_grad()
    def style_grams(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{style layer: (C, C)}`` Gram matrices of one style image ``(3, H, W)`` (or ``(1, 3, H, W)``)."""
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"a style image must be (3, H, W) RGB, got shape {tuple(image.shape)}")
        param = next(self.vgg.parameters())
        feats = self.vgg.features(
            self.preprocess(image.to(param.device, param.dtype)), list(self.style_weights)
        )
        return {k: gram(feats[k])[0] for k in self.style_weights}

    def set_styles(self, images: Sequence[torch.Tensor | None]) -> None:
        """Compute the Gram targets of every style once; ``None`` leaves a style without targets
        (a style that is not trained, e.g. the old ones while :func:`add-style <physamp.models.style>`
        trains a new one)."""
        if not len(images):
            raise ValueError("no style images")
        grams = [None if im is None else self.style_grams(im) for im in images]
        some = next((g for g in grams if g is not None), None)
        if some is None:
            raise ValueError("every style image is None; at least one style needs an image")
        for k in self.style_weights:
            target = torch.stack([some[k].new_zeros(some[k].shape) if g is None else g[k] for g in grams])
            self.register_buffer(f"target_{k}", target, persistent=False)
        self.register_buffer("have_target", torch.tensor([g is not None for g in grams]), persistent=False)

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        """``{style layer: (N, C, C)}``: the Gram targets of every style (zeros for a style without image)."""
        return {k: getattr(self, f"target_{k}") for k in self.style_weights}

    @property
    def num_styles(self) -> int:
        return 0 if self.have_target is None else int(self.have_target.numel())

    def forward(
        self, pastiche: torch.Tensor, content: torch.Tensor, styles: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content_loss, style_loss)``, each ``(B,)``, of pastiches ``(B, 3, H, W)`` of ``content``
        in ``styles`` (``LongTensor (B,)`` of ids into :meth:`set_styles`'s images)."""
        if self.have_target is None:
            raise RuntimeError("call set_styles(style_images) before computing style losses")
        if pastiche.shape != content.shape:
            raise ValueError(f"pastiche {tuple(pastiche.shape)} and content {tuple(content.shape)} differ")
        if styles.dtype != torch.long or styles.shape != pastiche.shape[:1]:
            raise ValueError(f"styles must be a LongTensor of one style id per pastiche, got {styles.dtype} "
                             f"{tuple(styles.shape)}")  # fmt: skip
        n = self.num_styles
        if int(styles.min()) < 0 or int(styles.max()) >= n:
            raise ValueError(f"style ids must be in 0..{n - 1} (the styles given to set_styles)")
        missing = ~self.have_target.to(styles.device)[styles]
        if missing.any():
            raise ValueError(f"style {int(styles[missing][0])} has no target image")
        return self.per_example(pastiche, content, styles)

    def per_example(
        self, pastiche: torch.Tensor, content: torch.Tensor, styles: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` without its checks of ``styles`` (each one reads the ids back from the device):
        for a caller whose ids are valid by construction, such as the trainer's step."""
        targets = self.targets
        p = self.features(pastiche)
        with torch.no_grad():
            c = self.vgg.features(self.preprocess(content), list(self.content_weights))
        content_loss = sum(
            w * (p[k].float() - c[k].float()).pow(2).flatten(1).mean(1)
            for k, w in self.content_weights.items()
        )
        style_loss = self._style_loss(
            {k: gram(p[k]) for k in self.style_weights}, {k: t[styles] for k, t in targets.items()}
        )
        return content_loss, style_loss

    def _style_loss(self, grams: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 7.2: ``Σ_i w_i · mean over C_i² of (G_i − target_i)²`` over the last two axes, ``grams``
        broadcast against ``targets``: ``(B, C, C)`` against ``(B, C, C)`` or ``(C, C)``, or
        ``(B, 1, C, C)`` against ``(1, N, C, C)``."""
        total = sum(
            w * (grams[k] - targets[k]).pow(2).flatten(-2).mean(-1) for k, w in self.style_weights.items()
        )
        return cast(torch.Tensor, total)  # there is at least one style layer

    @torch.no_grad()
    def style_losses(self, pastiche: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` style loss of every pastiche against every style of :meth:`set_styles` (one VGG pass;
        a style without an image gets NaN)."""
        if self.have_target is None:
            raise RuntimeError("call set_styles(style_images) before computing style losses")
        p = self.vgg.features(self.preprocess(pastiche), list(self.style_weights))
        grams = {k: gram(p[k])[:, None] for k in self.style_weights}  # (B, 1, C, C) against (1, N, C, C)
        out = self._style_loss(grams, {k: t[None] for k, t in self.targets.items()})
        return out.masked_fill(~self.have_target.to(out.device)[None], float("nan"))

    @torch.no_grad()
    def style_loss_to(self, pastiche: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``(B,)`` style loss of pastiches against one style image (e.g. for an interpolation curve)."""
        p = self.vgg.features(self.preprocess(pastiche), list(self.style_weights))
        return self._style_loss({k: gram(p[k]) for k in self.style_weights}, self.style_grams(image))
