"""Binary restricted Boltzmann machine (thesis Eq. 1.32).

Energy and distribution::

    E(v, h) = -b·v - c·h - hᵀ W v,        p(v, h) = exp(-E(v, h)) / Z

with ``v ∈ {0,1}^n_visible``, ``h ∈ {0,1}^n_hidden`` and ``W`` of shape
``(n_hidden, n_visible)``. The conditionals factorise (Eqs. 1.34-1.35)::

    p(h_j = 1 | v) = σ(β (c_j + W_j· v)),      p(v_i = 1 | h) = σ(β (b_i + W_·iᵀ h))

where β is an inverse temperature (β = 1 is the model; AIS and tempering use
β < 1). The formulas themselves live in :mod:`physamp.energy` (one home for the
energy and the free energy); samplers read a model through its
:class:`~physamp.energy.RBMParams` view. The base-rate model of this module
(:func:`base_rate_biases`) is the one the trainer starts from and AIS anneals from.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from physamp.energy import LayerSizes, RBMParams, as_params, check_finite, check_mask, energy, free_energy

__all__ = [
    "RBM",
    "RBMParams",
    "as_params",
    "check_finite",
    "check_data",
    "base_rate_biases",
    "base_rate_log_z",
    "BASE_RATE_SMOOTHING",
]

#: S&M's smoothing of the base rate: a pseudo-count of 5 % of the examples for each outcome.
BASE_RATE_SMOOTHING = 0.05


def check_data(data, n_visible: int, *, binary: bool, name: str = "data") -> torch.Tensor:
    """``data`` as a float ``(N, n_visible)`` tensor, or a clear error (shape, NaN, range)."""
    data = torch.as_tensor(data)
    if data.dim() == 1:
        data = data[None]
    if data.dim() != 2 or data.shape[1] != n_visible:
        raise ValueError(
            f"{name} must have shape (N, {n_visible}) to match the RBM's {n_visible} visible units; "
            f"got {tuple(data.shape)}"
        )
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not data.is_floating_point():
        data = data.to(torch.float32)
    if not torch.isfinite(data).all():
        raise ValueError(f"{name} holds NaN or inf")
    if binary:
        if not ((data == 0) | (data == 1)).all():
            raise ValueError(f"{name} must be binary {{0, 1}} for a likelihood (binarise it first)")
    elif (data < 0).any() or (data > 1).any():
        raise ValueError(f"{name} must lie in [0, 1] (binary or probabilities)")
    return data


def base_rate_biases(
    n_visible: int, *, data=None, base_rate=None, smoothing: float = BASE_RATE_SMOOTHING
) -> torch.Tensor:
    """Visible biases ``b_A = logit(p)`` (float64) of the base-rate model: zero weights,
    zero hidden biases, each visible unit on with probability ``p``.

    - With ``data (N, n_visible)`` in [0, 1]: ``p = (mean + smoothing) / (1 + 2·smoothing)``,
      which adds a pseudo-count of ``smoothing·N`` to each outcome of each pixel.
      S&M add about 5 % to the "on" count.
    - With ``base_rate`` probabilities: ``p = base_rate``, clamped to [1e-6, 1 - 1e-6].
    - With neither: ``b_A = 0``, the uniform distribution.

    The trainer starts an RBM's visible biases here (Hinton's practical guide) and
    AIS anneals from this model.
    """
    if data is not None and base_rate is not None:
        raise ValueError("give data or base_rate, not both")
    if data is not None:
        d = check_data(data, n_visible, binary=False)
        p = (d.to(torch.float64).mean(0) + smoothing) / (1 + 2 * smoothing)
    elif base_rate is not None:
        p = torch.as_tensor(base_rate, dtype=torch.float64).detach().cpu()
        if p.shape != (n_visible,):
            raise ValueError(f"base_rate must have shape ({n_visible},); got {tuple(p.shape)}")
        if not torch.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise ValueError("base_rate must hold probabilities in [0, 1]")
        p = p.clamp(1e-6, 1 - 1e-6)
    else:
        return torch.zeros(n_visible, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


def base_rate_log_z(b_A: torch.Tensor, n_hidden: int) -> float:
    """log Z of the base-rate model: ``Σ_i softplus(b_A,i) + n_hidden · log 2``."""
    return float(F.softplus(b_A.to(torch.float64)).sum()) + n_hidden * math.log(2.0)


def _reapply_mask_post_hook(module, incompatible_keys) -> None:
    module.apply_constraints_()


class RBM(LayerSizes, nn.Module):
    """Bernoulli-Bernoulli RBM, ``p(v, h) ∝ exp(-E(v, h))`` with Eq. 1.32's energy.

    Args:
        n_visible, n_hidden: layer sizes.
        mask: optional ``(n_hidden, n_visible)`` connectivity (a topology's ``.mask``),
            boolean or exactly 0/1 (anything else is refused: :func:`~physamp.energy.check_mask`).
            Masked weights are zero at construction, their gradients
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

    @classmethod
    def from_state_dict(cls, sd, **kwargs) -> RBM:
        """An RBM of the shape (and mask) that state dict ``sd`` holds, loaded from it.

        A ``ValueError`` says what is wrong with a dict that holds no RBM.
        """
        if not isinstance(sd, dict) or not all(isinstance(sd.get(k), torch.Tensor) for k in ("W", "b", "c")):
            raise ValueError("it holds no RBM parameters W, b, c")
        W = sd["W"]
        if W.dim() != 2:
            raise ValueError(f"its W has shape {tuple(W.shape)}; an RBM's is (n_hidden, n_visible)")
        rbm = cls(int(W.shape[1]), int(W.shape[0]), mask=sd.get("mask"), dtype=W.dtype, **kwargs)
        try:
            rbm.load_state_dict(sd)
        except RuntimeError as err:
            raise ValueError(f"inconsistent RBM parameters ({str(err).splitlines()[0]})") from None
        return rbm

    # --- mask -------------------------------------------------------------------------
    def set_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or with ``None`` remove) the connectivity mask and zero masked weights.

        ``mask`` is boolean or exactly 0/1 (:func:`~physamp.energy.check_mask`; NaN, -1 or
        0.5 entries are an error, not connections).
        """
        if self._mask_hook is not None:
            self._mask_hook.remove()
            self._mask_hook = None
        if mask is None:
            self.mask = None
            return
        mask = check_mask(mask)
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
        if key in state_dict and state_dict[key] is not None:
            check_mask(state_dict[key])  # a stored mask is held to the same rule as a new one
            if self.mask is None:
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
        return energy(v, h, self.W, self.b, self.c)

    def free_energy(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F(v) = -β b·v - Σ_j softplus(β (c_j + W_j·v)), so p(v) ∝ exp(-F(v)) at β."""
        return free_energy(v, self.W, self.b, self.c, beta)

    def free_energy_hidden(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """``F(h) = -β c·h - Σ_i softplus(β (b_i + hᵀW[:, i]))``, so ``p(h) ∝ exp(-F(h))`` at β."""
        return free_energy(h, self.W.t(), self.c, self.b, beta)

    @torch.no_grad()
    def init_base_rate_(self, data: torch.Tensor, smoothing: float = BASE_RATE_SMOOTHING) -> RBM:
        """Visible biases to the base rate of ``data`` (:func:`base_rate_biases`); returns ``self``."""
        b = base_rate_biases(self.n_visible, data=data, smoothing=smoothing)
        self.b.copy_(b.to(device=self.b.device, dtype=self.b.dtype))
        return self

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
