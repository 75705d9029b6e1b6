"""Exact samples and exact log Z by enumerating the smaller layer.

Summing out the larger layer analytically leaves a distribution over the
``2^k`` states of the smaller layer (``k = min(n_visible, n_hidden)``): with the
hidden layer smaller, ``p(h) ∝ exp(-F(h))``, ``F(h) = -c·h - Σ_i softplus(b_i + hᵀW_·i)``.
We draw the small layer from that distribution exactly (inverse CDF over all its
states), then the large layer from its factorised conditional. Cost grows as
``2^k``: past ``max_bits`` (default 24) the sampler refuses with a clear error.
:func:`log_partition` is physamp's one exact log Z (AIS checks against it and uses it
for batches of noisy models); the free energies come from :mod:`physamp.energy`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from physamp.energy import RBMParams, as_params, free_energy
from physamp.samplers.base import Sampler, check_beta

__all__ = ["ExactSampler", "exact_log_z", "log_partition", "enumerate_states", "small_layer_log_marginal"]

DEFAULT_MAX_BITS = 24
_BLOCK_BITS = 14


def enumerate_states(start: int, stop: int, k: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Binary states ``start..stop-1`` of ``k`` units as rows ``(stop - start, k)``; unit 0 is bit 0."""
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    shifts = torch.arange(k, device=device, dtype=torch.int64)
    return ((idx[:, None] >> shifts) & 1).to(dtype)


def _check_size(n_visible: int, n_hidden: int, max_bits: int) -> tuple[bool, int]:
    hidden_small = n_hidden <= n_visible
    k = n_hidden if hidden_small else n_visible
    if k > max_bits:
        raise ValueError(
            f"exact enumeration needs 2^{k} states of the smaller layer "
            f"({n_visible} visible x {n_hidden} hidden), past the limit of 2^{max_bits}; "
            "use the 'gibbs' backend (or AIS for log Z), or raise max_bits if you have the time and memory"
        )
    return hidden_small, k


def small_layer_log_marginal(params: RBMParams, states: torch.Tensor, hidden_small: bool, beta=1.0):
    """Unnormalised log p of small-layer ``states (S, k)``: ``-F(states; β)`` (one free energy).

    With batched biases (one row per chain) returns ``(N, S)``; otherwise ``(S,)``.
    """
    W, b, c = (t.to(states.dtype) for t in (params.W, params.b, params.c))
    if hidden_small:
        return -free_energy(states, W.t(), c, b, beta)
    return -free_energy(states, W, b, c, beta)


def log_partition(
    W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, beta: float = 1.0, max_bits: int = DEFAULT_MAX_BITS
) -> torch.Tensor:
    """log Z by enumerating the smaller layer, in float64 -- physamp's one exact log Z.

    One RBM (``W (n_hidden, n_visible)``, ``b (n_visible,)``, ``c (n_hidden,)``) gives a
    0-d tensor; ``D`` RBMs of one shape (``W (D, n_hidden, n_visible)``, ``b (D, n_visible)``,
    ``c (D, n_hidden)``) give ``(D,)``, enumerated together in blocks of states sized
    to keep the ``(D, states, larger layer)`` product near 4M entries.
    """
    single = W.dim() == 2
    if single:
        W, b, c = W[None], b[None], c[None]
    D, nh, nv = W.shape
    hidden_small, k = _check_size(nv, nh, max_bits)
    W, b, c = (x.to(torch.float64) for x in (W, b, c))
    if hidden_small:  # states of the hiddens: F(h) = free_energy(h, Wᵀ, c, b)
        Wk, own, other = W.transpose(1, 2), c, b
    else:
        Wk, own, other = W, b, c
    total = 1 << k
    block = max(1, min(total, (1 << 22) // max(1, D * other.shape[1])))
    parts = []
    for start in range(0, total, block):
        states = enumerate_states(start, min(start + block, total), k, device=W.device)
        parts.append(torch.logsumexp(-free_energy(states, Wk, own, other, beta), -1))
    out = torch.logsumexp(torch.stack(parts, -1), -1)
    return out[0] if single else out


def exact_log_z(params, *, beta: float = 1.0, max_bits: int = DEFAULT_MAX_BITS) -> float:
    """log Z of an :class:`~physamp.RBM` or :class:`RBMParams` (float64), by :func:`log_partition`."""
    beta = check_beta(beta)
    params = as_params(params).validate()
    if params.batched:
        raise ValueError("exact_log_z needs one set of biases, not a batch")
    W = params.W if params.mask is None else params.W * params.mask.to(params.W.dtype)
    return float(log_partition(W, params.b, params.c, beta=beta, max_bits=max_bits))


class ExactSampler(Sampler):
    """Exact samples by enumerating the smaller layer (tiny models only).

    With ``gamma = Γ > 0`` it samples the transverse-field (quantum) Boltzmann distribution
    ``p_Γ(v, h) = ⟨s| e^{−βH} |s⟩ / Tr e^{−βH}``, ``H = H_Ising − Γ Σᵢ σˣᵢ`` over all visible and
    hidden spins, by diagonalising ``H`` (:mod:`physamp.samplers.quantum_exact`; at most
    ``max_spins`` units in all, 12 by default). ``info["log_z"]`` is then ``log Tr e^{−βH}``.

    Args:
        max_bits: refuse models whose smaller layer has more units (default 24).
        beta: inverse temperature (default 1).
        gamma: transverse field Γ >= 0 (default 0: the classical distribution).
        max_spins: with ``gamma > 0``, refuse models of more units in all (default 12).
        seed: seed of the sampler's generator.
    """

    name = "exact"
    parameters = {
        "beta": "inverse temperature (default 1)",
        "gamma": "transverse field (default 0: classical)",
    }
    steps_option = None  # independent exact samples: no sweeps (PCD-k does not apply k)

    def __init__(
        self,
        max_bits: int = DEFAULT_MAX_BITS,
        beta: float = 1.0,
        seed: int | None = None,
        *,
        gamma: float = 0.0,
        max_spins: int | None = None,
    ):
        from physamp.samplers.quantum_exact import MAX_SPINS, check_gamma

        super().__init__(seed=seed)
        self.max_bits = int(max_bits)
        self.beta = beta  # checked by the protocol (Sampler.beta)
        self.gamma = check_gamma(gamma)
        self.max_spins = MAX_SPINS if max_spins is None else int(max_spins)

    def _repr_options(self) -> dict[str, Any]:
        return {"beta": self.beta, **({"gamma": self.gamma} if self.gamma else {})}

    def log_z(self, rbm, beta: float | None = None) -> float:
        """log Z at ``beta`` (default the sampler's); with the sampler's ``gamma > 0``, ``log Tr e^{−βH}``."""
        beta = self.beta if beta is None else check_beta(beta)
        if self.gamma > 0:
            from physamp.samplers.quantum_exact import rbm_transverse_field_log_probs

            return rbm_transverse_field_log_probs(rbm, self.gamma, beta, max_spins=self.max_spins)[1]
        return exact_log_z(rbm, beta=beta, max_bits=self.max_bits)

    def _sample_quantum(self, params: RBMParams, num_samples: int, beta: float, gamma: float):
        from physamp.samplers.quantum_exact import rbm_transverse_field_log_probs

        log_p, log_trace = rbm_transverse_field_log_probs(params, gamma, beta, max_spins=self.max_spins)
        dev, n = params.device, params.n_visible + params.n_hidden
        cdf = torch.cumsum(torch.exp(log_p), 0)
        u = torch.rand(num_samples, generator=self.generator("cpu"), dtype=torch.float64) * cdf[-1]
        index = torch.searchsorted(cdf, u).clamp_(max=(1 << n) - 1)
        x = ((index[:, None] >> torch.arange(n, dtype=torch.int64)) & 1).to(torch.float64).to(dev)
        info = {"log_z": log_trace, "beta": beta, "gamma": gamma}
        return x[:, : params.n_visible], x[:, params.n_visible :], info

    def _sample(self, params: RBMParams, num_samples: int, initial, **opts) -> tuple[Any, Any, dict]:
        from physamp.samplers.quantum_exact import check_gamma

        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        gamma = check_gamma(opts.get("gamma", self.gamma))
        if gamma > 0:
            return self._sample_quantum(params, num_samples, beta, gamma)
        hidden_small, k = _check_size(params.n_visible, params.n_hidden, self.max_bits)
        dev = params.device
        g = self.generator(dev)
        W64, b64, c64 = (t.to(torch.float64) for t in (params.W, params.b, params.c))
        p64 = RBMParams(W64, b64, c64, params.mask)
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
