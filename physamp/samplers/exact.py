"""Exact samples and exact log Z by enumerating the smaller layer.

Summing out the larger layer analytically leaves a distribution over the
``2^k`` states of the smaller layer (``k = min(n_visible, n_hidden)``): with the
hidden layer smaller, ``p(h) ∝ exp(-F(h))``, ``F(h) = -c·h - Σ_i softplus(b_i + hᵀW_·i)``.
We draw the small layer from that distribution exactly (inverse CDF over all its
states), then the large layer from its factorised conditional. Cost grows as
``2^k``: past ``max_bits`` (default 24) the sampler refuses with a clear error.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from physamp.energy import RBMParams
from physamp.samplers.base import Sampler

__all__ = ["ExactSampler", "exact_log_z", "enumerate_states", "small_layer_log_marginal"]

DEFAULT_MAX_BITS = 24
_BLOCK_BITS = 14


def enumerate_states(start: int, stop: int, k: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Binary states ``start..stop-1`` of ``k`` units as rows ``(stop - start, k)``; unit 0 is bit 0."""
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    shifts = torch.arange(k, device=device, dtype=torch.int64)
    return ((idx[:, None] >> shifts) & 1).to(dtype)


def _check_size(params: RBMParams, max_bits: int) -> tuple[bool, int]:
    hidden_small = params.n_hidden <= params.n_visible
    k = params.n_hidden if hidden_small else params.n_visible
    if k > max_bits:
        raise ValueError(
            f"exact enumeration needs 2^{k} states of the smaller layer "
            f"({params.n_visible} visible x {params.n_hidden} hidden), past the limit of 2^{max_bits}; "
            "use the 'gibbs' backend, or raise max_bits if you have the time and memory"
        )
    return hidden_small, k


def small_layer_log_marginal(params: RBMParams, states: torch.Tensor, hidden_small: bool, beta=1.0):
    """Unnormalised log p of small-layer ``states (S, k)``: ``-F`` at inverse temperature β.

    With batched biases (one row per chain) returns ``(N, S)``; otherwise ``(S,)``.
    """
    W = params.W.to(states.dtype)
    if hidden_small:
        own, other, lin = params.c.to(states.dtype), params.b.to(states.dtype), states @ W  # (S, nv)
    else:
        own, other, lin = params.b.to(states.dtype), params.c.to(states.dtype), states @ W.t()
    if own.dim() == 1 and other.dim() == 1:
        return beta * (states @ own) + F.softplus(beta * (lin + other)).sum(-1)
    own = own if own.dim() == 2 else own[None]
    other = other if other.dim() == 2 else other[None]
    # (N, S): per-chain biases; memory N*S*n_other, so callers block over S
    return beta * (own @ states.t()) + F.softplus(beta * (lin[None] + other[:, None, :])).sum(-1)


def exact_log_z(params, *, beta: float = 1.0, max_bits: int = DEFAULT_MAX_BITS) -> float:
    """log Z of an :class:`~physamp.RBM` or :class:`RBMParams` (float64), enumerating the
    smaller layer in blocks."""
    from physamp.energy import as_params

    params = as_params(params).validate()
    if params.batched:
        raise ValueError("exact_log_z needs one set of biases, not a batch")
    hidden_small, k = _check_size(params, max_bits)
    total = 1 << k
    block = 1 << min(k, _BLOCK_BITS)
    parts = []
    for start in range(0, total, block):
        states = enumerate_states(start, min(start + block, total), k, device=params.device)
        parts.append(torch.logsumexp(small_layer_log_marginal(params, states, hidden_small, beta), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


class ExactSampler(Sampler):
    """Exact samples by enumerating the smaller layer (tiny models only).

    Args:
        max_bits: refuse models whose smaller layer has more units (default 24).
        seed: seed of the sampler's generator.
    """

    name = "exact"
    parameters = {"beta": "inverse temperature (default 1)"}

    def __init__(self, max_bits: int = DEFAULT_MAX_BITS, beta: float = 1.0, seed: int | None = None):
        super().__init__(seed=seed)
        self.max_bits = int(max_bits)
        self.beta = float(beta)

    def log_z(self, rbm, beta: float | None = None) -> float:
        from physamp.energy import as_params

        return exact_log_z(
            as_params(rbm).validate(), beta=self.beta if beta is None else beta, max_bits=self.max_bits
        )

    def _sample(self, params: RBMParams, num_samples: int, initial, **opts) -> tuple[Any, Any, dict]:
        beta = float(opts.get("beta", self.beta))
        hidden_small, k = _check_size(params, self.max_bits)
        dev = params.device
        g = self.generator(dev)
        p64 = RBMParams(*(t.to(torch.float64) for t in (params.W, params.b, params.c)), params.mask)
        total = 1 << k
        block = 1 << min(k, _BLOCK_BITS)
        if not params.batched:
            logp = torch.cat(
                [
                    small_layer_log_marginal(
                        p64, enumerate_states(s, min(s + block, total), k, device=dev), hidden_small, beta
                    )
                    for s in range(0, total, block)
                ]
            )
            log_z = torch.logsumexp(logp, 0)
            cdf = torch.cumsum(torch.exp(logp - log_z), 0)
            u = torch.rand(num_samples, generator=g, device=dev, dtype=torch.float64) * cdf[-1]
            index = torch.searchsorted(cdf, u).clamp_(max=total - 1)
            info = {"log_z": float(log_z), "beta": beta}
        else:
            # per-chain biases: Gumbel-max over the states, streamed in blocks
            best = torch.full((num_samples,), -math.inf, dtype=torch.float64, device=dev)
            index = torch.zeros(num_samples, dtype=torch.int64, device=dev)
            for s in range(0, total, block):
                states = enumerate_states(s, min(s + block, total), k, device=dev)
                scores = small_layer_log_marginal(p64, states, hidden_small, beta)
                u = torch.rand(scores.shape, generator=g, device=dev, dtype=torch.float64)
                scores = scores - torch.log(-torch.log(u.clamp_min_(1e-300)))
                m, arg = scores.max(1)
                better = m > best
                best = torch.where(better, m, best)
                index = torch.where(better, arg + s, index)
            info = {"beta": beta}
        shifts = torch.arange(k, device=dev, dtype=torch.int64)
        small = ((index[:, None] >> shifts) & 1).to(torch.float64)
        if hidden_small:
            logits = p64.visible_logits(small, beta)
        else:
            logits = p64.hidden_logits(small, beta)
        other = (
            torch.rand(logits.shape, generator=g, device=dev, dtype=torch.float64) < torch.sigmoid(logits)
        ).to(torch.float64)
        v, h = (other, small) if hidden_small else (small, other)
        return v, h, info
