"""Exact sampling of periodic 1-D Ising chains: the worldline update of path-integral samplers.

The Suzuki–Trotter form of the transverse-field model (DESIGN.md) gives every unit a *worldline*
``x⁰ … x^{M−1}`` in {0, 1} around imaginary time: ``M`` slices at ``ε = β/M``, neighbouring slices
of the same unit coupled by ``J⊥ = −½ ln tanh(εΓ)`` (ferromagnetic), and slice ``M−1`` next to
slice ``0``. Conditioned on everything else (for an RBM: on all worldlines of the other layer),
the worldlines of one layer are independent periodic chains with weight

    w(x) = Π_k exp(a_k x^k) · exp(J⊥ (2x^k − 1)(2x^{k+1} − 1)),        x^M ≡ x⁰,

where ``a_k`` is slice ``k``'s log-odds from the rest of the model (``ε`` times the unit's field).
A periodic chain is a tree after one cut, so it is sampled exactly, not by local moves:

1. the marginal of ``x⁰`` around the ring, from two forward passes (``x⁰`` clamped to 0 and to 1,
   run together) of unnormalised log-messages ``ℓ_k(x)``:
   ``ℓ_k(0) = logaddexp(ℓ_{k−1}(0), ℓ_{k−1}(1) − 2J⊥)``,
   ``ℓ_k(1) = a_k + logaddexp(ℓ_{k−1}(0) − 2J⊥, ℓ_{k−1}(1))``
   (the common factor ``e^{J⊥}`` of every step dropped), closed by the bond from ``x^{M−1}`` back
   to ``x⁰``;
2. ``x⁰`` drawn from that marginal, then ``x^{M−1}, …, x¹`` backwards, each from its filtered
   message of the pass clamped at the drawn ``x⁰`` and the bond to the slice after it (forward
   filtering, backward sampling).

The draw is exact for any ``J⊥``: the update does not slow down as ``M`` grows, unlike single-spin
moves on worldlines, whose flips of a whole worldline become rare as ``J⊥`` grows with ``M``.
Everything is vectorised over the trailing (batch) dimensions; the loop runs over the ``M`` slices.
``J⊥ = ∞`` (Γ = 0) ties all slices together: one classical draw with log-odds ``Σ_k a_k``.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["trotter_coupling", "ring_log_odds", "sample_periodic_chains"]


def trotter_coupling(gamma: float, beta: float, trotter: int) -> float:
    """``J⊥ = −½ ln tanh(εΓ)`` with ``ε = β/M``: the coupling of neighbouring Trotter slices.

    ``inf`` at Γ = 0 (slices tied: the classical model) and ``0`` once ``tanh(εΓ)`` rounds to 1
    (slices independent). Arguments are assumed checked (Γ >= 0, β > 0, M >= 1).
    """
    x = float(beta) / int(trotter) * float(gamma)
    if x == 0.0:
        return math.inf
    t = math.tanh(x)
    return 0.0 if t >= 1.0 else -0.5 * math.log(t)


def _check(logits: torch.Tensor, coupling: float) -> float:
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or logits.shape[0] < 1:
        raise ValueError("logits must be a tensor (M, ...) with at least one slice")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    bad = isinstance(coupling, bool) or not isinstance(coupling, numbers.Real)
    if bad or math.isnan(coupling) or coupling < 0:
        raise ValueError(f"the slice coupling J⊥ must be a number >= 0 (inf for Γ = 0), got {coupling!r}")
    return float(coupling)


def _forward(logits: torch.Tensor, two_k: float) -> torch.Tensor:
    """Log-messages ``ℓ (M, 2 clamps, 2 states, ...)`` of the two passes, ``x⁰`` clamped to 0 and 1."""
    M = logits.shape[0]
    msg = logits.new_empty((M, 2, 2) + tuple(logits.shape[1:]))
    # slice 0, clamped: ℓ_0 = (0, −inf) for x⁰ = 0 and (−inf, a_0) for x⁰ = 1; the first step is
    # written out so no −inf enters the arithmetic
    if M == 1:
        msg[0, 0, 0] = 0.0
        msg[0, 0, 1] = -math.inf
        msg[0, 1, 0] = -math.inf
        msg[0, 1, 1] = logits[0]
        return msg
    a0, a1 = logits[0], logits[1]
    msg[0, 0, 0], msg[0, 0, 1] = 0.0, -math.inf
    msg[0, 1, 0], msg[0, 1, 1] = -math.inf, a0
    msg[1, 0, 0] = 0.0  # from x⁰ = 0: stay 0 (weight 1), or flip (−2J⊥) then a_1
    torch.add(a1, -two_k, out=msg[1, 0, 1])
    torch.add(a0, -two_k, out=msg[1, 1, 0])  # from x⁰ = 1
    torch.add(a0, a1, out=msg[1, 1, 1])
    scratch = torch.empty_like(msg[0])
    for k in range(2, M):
        prev, cur = msg[k - 1], msg[k]
        # cur(0) = logaddexp(prev(0), prev(1) − 2J⊥);  cur(1) = a_k + logaddexp(prev(0) − 2J⊥, prev(1))
        torch.sub(prev, two_k, out=scratch)
        torch.logaddexp(prev[:, 0], scratch[:, 1], out=cur[:, 0])
        torch.logaddexp(scratch[:, 0], prev[:, 1], out=cur[:, 1])
        cur[:, 1] += logits[k]
    return msg


def _ring_odds_from(msg: torch.Tensor, two_k: float) -> torch.Tensor:
    """Log-odds of ``x⁰ = 1`` around the ring, from the last forward messages and the closing bond."""
    last = msg[-1]
    if msg.shape[0] == 1:  # a ring of one slice: the bond to itself is a constant
        return last[1, 1] - last[0, 0]
    z1 = torch.logaddexp(last[1, 0] - two_k, last[1, 1])  # x^{M−1} → x⁰ = 1
    z0 = torch.logaddexp(last[0, 0], last[0, 1] - two_k)  # x^{M−1} → x⁰ = 0
    return z1 - z0


def ring_log_odds(logits: torch.Tensor, coupling: float) -> torch.Tensor:
    """Exact log-odds ``log p(x⁰ = 1) − log p(x⁰ = 0)`` of slice 0 of periodic chains ``(M, ...)``.

    By the symmetry of the ring, slice ``k``'s marginal is this function of the logits rolled by
    ``k``. ``coupling = inf`` gives ``Σ_k a_k`` (slices tied).
    """
    coupling = _check(logits, coupling)
    if math.isinf(coupling):
        return logits.sum(0)
    return _ring_odds_from(_forward(logits, 2.0 * coupling), 2.0 * coupling)


def sample_periodic_chains(
    logits: torch.Tensor,
    coupling: float,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact draws of periodic Ising chains: ``{0, 1}`` states ``(M, ...)`` with weight ``w(x)`` above.

    Args:
        logits: ``a (M, ...)``, each slice's log-odds from the rest of the model; the trailing
            dimensions are independent chains (units × Markov chains).
        coupling: ``J⊥ >= 0`` between neighbouring slices (slice ``M−1`` next to slice 0);
            ``inf`` ties the slices (Γ = 0).
        generator: the torch generator of the ``M`` uniforms each chain uses (``x⁰``, then
            ``x^{M−1} … x¹``).
        noise: instead of a generator, the standard logistic draws ``log u − log(1 − u)`` to use,
            same shape as ``logits`` (slice 0's for ``x⁰``, slice ``k``'s for ``x^k``).
        out: optional output tensor of the logits' shape (any dtype).

    Computed in the logits' dtype (float32 is accurate to ~1e-5 in the log-odds for models whose
    summed fields ``Σ_k |a_k|`` stay below ~100; pass float64 logits otherwise).
    """
    coupling = _check(logits, coupling)
    M = logits.shape[0]
    if noise is None:
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        noise = torch.log1p(-u).neg_().add_(u.log_())  # log u − log(1 − u): a standard logistic draw
    elif noise.shape != logits.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected the logits' {tuple(logits.shape)}")
    if out is None:
        out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    if math.isinf(coupling):  # tied slices: one classical draw
        x0 = noise[0] < logits.sum(0)
        out.copy_(x0.expand_as(logits))
        return out
    two_k = 2.0 * coupling
    msg = _forward(logits, two_k)
    x_next = noise[0] < _ring_odds_from(msg, two_k)  # x⁰
    out[0] = x_next
    x0 = x_next
    if M > 1:
        # filtered log-odds of x^k given x⁰ and slices ≤ k, for both clamps: (M, 2, ...)
        filtered = msg[:, :, 1] - msg[:, :, 0]
        chosen = torch.where(x0, filtered[:, 1], filtered[:, 0])  # the pass clamped at the drawn x⁰
        pull = torch.empty_like(logits[0])
        for k in range(M - 1, 0, -1):
            # the bond to the slice after k (x^{k+1}; x⁰ for k = M−1) adds ±2J⊥ to the log-odds
            torch.mul(x_next.to(logits.dtype), 2.0 * two_k, out=pull)
            pull.add_(chosen[k]).sub_(two_k)
            x_next = noise[k] < pull
            out[k] = x_next
    return out
