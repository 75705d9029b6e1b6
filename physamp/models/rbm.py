"""Binary restricted Boltzmann machine (thesis Eq. 1.32).

Energy and distribution::

    E(v, h) = -b·v - c·h - hᵀ W v,        p(v, h) = exp(-E(v, h)) / Z

with ``v ∈ {0,1}^n_visible``, ``h ∈ {0,1}^n_hidden`` and ``W`` of shape
``(n_hidden, n_visible)``. The conditionals factorise (Eqs. 1.34-1.35)::

    p(h_j = 1 | v) = σ(β (c_j + W_j· v)),      p(v_i = 1 | h) = σ(β (b_i + W_·iᵀ h))

where β is an inverse temperature (β = 1 is the model; AIS and tempering use
β < 1). Samplers read a model through :class:`RBMParams`, a detached view whose
biases may carry a leading batch dimension (one bias vector per chain), which is
how per-sample bias noise of a physical device is represented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["RBM", "RBMParams", "as_params", "check_finite"]


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``t`` holds NaN or ±inf.

    A finite sum proves every entry finite (NaN and inf propagate), so the full
    elementwise check runs only when the sum is not finite (or overflowed).
    """
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf); the model cannot be "
            "sampled. Lower the learning rate, or reload a finite checkpoint."
        )


@dataclass(frozen=True)
class RBMParams:
    """Detached RBM parameters as samplers see them.

    W: ``(n_hidden, n_visible)``; b: ``(n_visible,)`` or ``(N, n_visible)``;
    c: ``(n_hidden,)`` or ``(N, n_hidden)``; mask: ``(n_hidden, n_visible)`` bool or None.
    A batched bias gives chain ``i`` its own bias vector ``b[i]`` (``N`` must then
    equal the number of samples requested).
    """

    W: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[0]

    @property
    def device(self) -> torch.device:
        return self.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def batched(self) -> bool:
        return self.b.dim() == 2 or self.c.dim() == 2

    @property
    def batch_size(self) -> int | None:
        for t in (self.b, self.c):
            if t.dim() == 2:
                return t.shape[0]
        return None

    def validate(self) -> RBMParams:
        nh, nv = self.W.shape if self.W.dim() == 2 else (None, None)
        if self.W.dim() != 2:
            raise ValueError(f"W must be 2-D (n_hidden, n_visible); got shape {tuple(self.W.shape)}")
        if self.b.shape[-1] != nv or self.b.dim() > 2:
            raise ValueError(
                f"visible bias b has shape {tuple(self.b.shape)}; expected ({nv},) or (N, {nv}) "
                f"for W of shape {tuple(self.W.shape)}"
            )
        if self.c.shape[-1] != nh or self.c.dim() > 2:
            raise ValueError(
                f"hidden bias c has shape {tuple(self.c.shape)}; expected ({nh},) or (N, {nh}) "
                f"for W of shape {tuple(self.W.shape)}"
            )
        if self.b.dim() == 2 and self.c.dim() == 2 and self.b.shape[0] != self.c.shape[0]:
            raise ValueError(
                f"batched biases disagree on the batch size: b {tuple(self.b.shape)}, c {tuple(self.c.shape)}"
            )
        if self.mask is not None and tuple(self.mask.shape) != (nh, nv):
            raise ValueError(f"mask has shape {tuple(self.mask.shape)}; expected ({nh}, {nv})")
        check_finite("W", self.W)
        check_finite("b", self.b)
        check_finite("c", self.c)
        return self

    def with_batched_biases(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Biases broadcast to ``(n, n_visible)`` and ``(n, n_hidden)`` (views, no copy)."""
        bs = self.batch_size
        if bs is not None and bs != n:
            raise ValueError(f"the parameters carry {bs} bias vectors but {n} samples were requested")
        return self.b.expand(n, self.n_visible), self.c.expand(n, self.n_hidden)

    # conditionals shared by every torch-based sampler ---------------------------------
    def hidden_logits(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """β (c + v Wᵀ): ``(N, n_hidden)`` logits of p(h=1 | v)."""
        out = torch.addmm(self.c, v, self.W.t()) if self.c.dim() == 1 else self.c + v @ self.W.t()
        return out if beta == 1.0 else out * beta

    def visible_logits(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """β (b + h W): ``(N, n_visible)`` logits of p(v=1 | h)."""
        out = torch.addmm(self.b, h, self.W) if self.b.dim() == 1 else self.b + h @ self.W
        return out if beta == 1.0 else out * beta

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -b·v - c·h - hᵀWv, shape ``(N,)`` (Eq. 1.32)."""
        return -(v * self.b).sum(-1) - (h * self.c).sum(-1) - ((h @ self.W) * v).sum(-1)


def as_params(model) -> RBMParams:
    """Return the :class:`RBMParams` view of an :class:`RBM` (or pass RBMParams through)."""
    if isinstance(model, RBMParams):
        return model
    if isinstance(model, RBM):
        return model.params()
    raise TypeError(
        f"expected a physamp.RBM or RBMParams, got {type(model).__name__}; build one with "
        "physamp.RBM(n_visible, n_hidden)"
    )


def _reapply_mask_post_hook(module, incompatible_keys) -> None:
    module.apply_constraints_()


class RBM(nn.Module):
    """Bernoulli-Bernoulli RBM, ``p(v, h) ∝ exp(-E(v, h))`` with Eq. 1.32's energy.

    Args:
        n_visible, n_hidden: layer sizes.
        mask: optional ``(n_hidden, n_visible)`` bool connectivity (a topology's
            ``.mask``). Masked weights are zero at construction, their gradients
            are zeroed by a hook, and :meth:`apply_constraints_` / ``load_state_dict``
            re-zero them, so any optimizer (momentum, weight decay, Adam) keeps them
            exactly zero.
        init_std: standard deviation of the initial weights (biases start at 0).
        generator: optional ``torch.Generator`` for the initial weights.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        mask: torch.Tensor | None = None,
        *,
        init_std: float = 0.01,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, n in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{name} must be a positive int, got {n!r}")
        W = torch.randn(n_hidden, n_visible, generator=generator, dtype=torch.float64) * init_std
        self.W = nn.Parameter(W.to(dtype=dtype, device=device))
        self.b = nn.Parameter(torch.zeros(n_visible, dtype=dtype, device=device))
        self.c = nn.Parameter(torch.zeros(n_hidden, dtype=dtype, device=device))
        self.register_buffer("mask", None)
        self._mask_hook = None
        if mask is not None:
            self.set_mask(mask)
        self._register_load_state_dict_pre_hook(self._load_mask_pre_hook)
        self.register_load_state_dict_post_hook(_reapply_mask_post_hook)

    # --- shape and mask ---------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[0]

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or with ``None`` remove) the connectivity mask and zero masked weights."""
        if self._mask_hook is not None:
            self._mask_hook.remove()
            self._mask_hook = None
        if mask is None:
            self.mask = None
            return
        mask = torch.as_tensor(mask)
        if tuple(mask.shape) != (self.n_hidden, self.n_visible):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, but the RBM needs (n_hidden, n_visible) = "
                f"({self.n_hidden}, {self.n_visible}); a topology's .mask is laid out that way"
            )
        self.mask = mask.to(device=self.W.device, dtype=torch.bool)
        self.apply_constraints_()
        self._mask_hook = self.W.register_hook(lambda g: g * self.mask.to(g.dtype))

    def _load_mask_pre_hook(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint may have a mask where this module has none (or the reverse)
        key = prefix + "mask"
        if key in state_dict and state_dict[key] is not None and self.mask is None:
            self.set_mask(state_dict[key])

    @torch.no_grad()
    def apply_constraints_(self, max_weight: float | None = None, max_bias: float | None = None):
        """Zero masked weights and clip magnitudes in place; returns ``self``."""
        if self.mask is not None:
            self.W.mul_(self.mask.to(self.W.dtype))
        if max_weight is not None:
            self.W.clamp_(-max_weight, max_weight)
        if max_bias is not None:
            self.b.clamp_(-max_bias, max_bias)
            self.c.clamp_(-max_bias, max_bias)
        return self

    def params(self) -> RBMParams:
        """Detached view used by samplers (no copy)."""
        return RBMParams(self.W.detach(), self.b.detach(), self.c.detach(), self.mask)

    # --- probabilities ------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -b·v - c·h - hᵀWv for batches ``v: (N, n_visible)``, ``h: (N, n_hidden)``."""
        return -(v @ self.b) - (h @ self.c) - ((h @ self.W) * v).sum(-1)

    def free_energy(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F(v) = -β b·v - Σ_j softplus(β (c_j + W_j·v)), so p(v) ∝ exp(-F(v)) at β."""
        return -beta * (v @ self.b) - F.softplus(beta * torch.addmm(self.c, v, self.W.t())).sum(-1)

    def free_energy_hidden(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F(h) = -β c·h - Σ_i softplus(β (b_i + hᵀW_·i)), so p(h) ∝ exp(-F(h)) at β."""
        return -beta * (h @ self.c) - F.softplus(beta * torch.addmm(self.b, h, self.W)).sum(-1)

    def p_h_given_v(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """p(h_j = 1 | v) = σ(β (c_j + W_j·v)), shape ``(N, n_hidden)``."""
        return torch.sigmoid(beta * torch.addmm(self.c, v, self.W.t()))

    def p_v_given_h(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """p(v_i = 1 | h) = σ(β (b_i + Σ_j h_j W_ji)), shape ``(N, n_visible)``."""
        return torch.sigmoid(beta * torch.addmm(self.b, h, self.W))

    def sample_h_given_v(self, v, beta: float = 1.0, generator=None) -> torch.Tensor:
        p = self.p_h_given_v(v, beta)
        return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)

    def sample_v_given_h(self, h, beta: float = 1.0, generator=None) -> torch.Tensor:
        p = self.p_v_given_h(h, beta)
        return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)

    def extra_repr(self) -> str:
        dens = "" if self.mask is None else f", connections={int(self.mask.sum())}/{self.mask.numel()}"
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}{dens}"

    def num_connections(self) -> int:
        return self.W.numel() if self.mask is None else int(self.mask.sum())
