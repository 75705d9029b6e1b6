"""The transverse-field (quantum) Boltzmann distribution, exactly, for models small enough to diagonalise.

The convention, written once (DESIGN.md): over **all** spins (visible and hidden),

    H = H_Ising − Γ Σᵢ σˣᵢ,        p_Γ(s) = ⟨s| e^{−βH} |s⟩ / Tr e^{−βH},

where the diagonal ``H_Ising`` is the classical energy of each basis state (for an RBM, its
energy ``E(v, h) = −b·v − c·h − hᵀWv`` of Eq. 1.32, which is the Ising form of Eq. 3.1 plus a
constant, ``s = 2x − 1``), so β multiplies the transverse term too and Γ = 0 gives back
``p ∝ exp(−βE)``. This module builds ``H`` as a dense ``2ⁿ × 2ⁿ`` matrix (``σˣᵢ`` flips bit
``i`` of the basis index: a matrix element −Γ between states one flip apart), diagonalises it in
float64, ``H = V diag(λ) Vᵀ``, and reads the diagonal of the thermal state,
``p_Γ(s) ∝ Σ_k V_{sk}² e^{−β(λ_k − λ_0)}``, with ``log Tr e^{−βH} = −βλ_0 + log Σ_k e^{−β(λ_k − λ_0)}``.

Cost: ``O(8ⁿ)`` time and ``O(4ⁿ)`` memory: 12 spins (a 4096² matrix, 128 MB) take seconds, which
is :data:`MAX_SPINS`; past it the functions refuse with the reason.

Basis order: bit ``i`` of the state index is spin ``i``; for an RBM the visible units come first
(bits ``0..n_visible−1``), then the hidden units, and a bit of 1 is the unit's state 1 (spin up).
"""

from __future__ import annotations

import math
import numbers

import torch

from physamp.energy import RBMParams, as_params

__all__ = [
    "MAX_SPINS",
    "check_gamma",
    "transverse_field_log_probs",
    "rbm_transverse_field_log_probs",
]

#: The most spins the dense diagonalisation accepts by default (a 4096 x 4096 float64 matrix).
MAX_SPINS = 12


def check_gamma(gamma, name: str = "gamma") -> float:
    """``gamma`` as a float if it is a finite real number >= 0 (0: the classical distribution)."""
    x = gamma.item() if isinstance(gamma, torch.Tensor) and gamma.numel() == 1 else gamma
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)) or x < 0:
        raise ValueError(
            f"{name} must be a finite number >= 0 (the transverse field Γ; 0 for the classical "
            f"distribution), got {gamma!r}"
        )
    return float(x)


def _basis(n: int) -> torch.Tensor:
    """All ``2ⁿ`` basis states as {0, 1} rows ``(2ⁿ, n)``, float64; bit ``i`` of the index is column ``i``."""
    idx = torch.arange(1 << n, dtype=torch.int64)
    return ((idx[:, None] >> torch.arange(n, dtype=torch.int64)) & 1).to(torch.float64)


def transverse_field_log_probs(
    diagonal: torch.Tensor, gamma: float, beta: float = 1.0, *, max_spins: int = MAX_SPINS
) -> tuple[torch.Tensor, float]:
    """``(log p_Γ, log Tr e^{−βH})`` of ``H = diag(diagonal) − Γ Σᵢ σˣᵢ`` on ``n`` spins.

    ``diagonal`` holds the classical energy of each of the ``2ⁿ`` basis states (bit ``i`` of the
    index is spin ``i``). Returns the log of the thermal state's diagonal (normalised, float64,
    shape ``(2ⁿ,)``) and the log partition function.
    """
    gamma = check_gamma(gamma)
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    E = torch.as_tensor(diagonal, dtype=torch.float64).reshape(-1)
    size = E.numel()
    n = size.bit_length() - 1
    if size < 2 or 1 << n != size:
        raise ValueError(f"the diagonal must hold 2^n energies (n >= 1 spins), got {size}")
    if n > max_spins:
        raise ValueError(
            f"exact diagonalisation of {n} spins needs a 2^{n} x 2^{n} matrix, past the limit of "
            f"{max_spins} spins (max_spins); use a smaller model"
        )
    if not torch.isfinite(E).all():
        raise ValueError("the energies hold NaN or infinite values; check the model's parameters")
    if gamma == 0.0:  # the classical distribution, without a diagonalisation
        log_w = -beta * E
        log_z = torch.logsumexp(log_w, 0)
        return log_w - log_z, float(log_z)
    H = torch.diag(E)
    idx = torch.arange(size)
    for i in range(n):
        H[idx, idx ^ (1 << i)] = -gamma  # σˣᵢ flips bit i
    lam, V = torch.linalg.eigh(H)
    shifted = -beta * (lam - lam[0])  # <= 0: no overflow
    weights = (V * V) @ torch.exp(shifted)  # the thermal state's diagonal, up to e^{−βλ_0}
    log_trace = float(torch.logsumexp(shifted, 0)) - beta * float(lam[0])
    total = weights.sum()
    log_p = torch.log(weights.clamp_min(torch.finfo(torch.float64).tiny)) - torch.log(total)
    return log_p, log_trace


def rbm_transverse_field_log_probs(
    rbm, gamma: float, beta: float = 1.0, *, max_spins: int = MAX_SPINS
) -> tuple[torch.Tensor, float]:
    """:func:`transverse_field_log_probs` of an RBM over its ``n_visible + n_hidden`` units (visible
    first in the index bits), with the RBM energy as the classical diagonal."""
    params: RBMParams = as_params(rbm).validate()
    if params.batched:
        raise ValueError(
            "the transverse-field distribution is computed for one set of biases, not one per chain; "
            "sample with shared biases"
        )
    nv, nh = params.n_visible, params.n_hidden
    n = nv + nh
    if n > max_spins:
        raise ValueError(
            f"exact diagonalisation of the transverse-field model needs all {n} spins ({nv} visible + "
            f"{nh} hidden) in a 2^{n} x 2^{n} matrix, past the limit of {max_spins} (max_spins); use "
            "a smaller RBM"
        )
    states = _basis(n)
    v, h = states[:, :nv], states[:, nv:]
    W = params.W.detach().to(torch.float64).cpu()
    if params.mask is not None:
        W = W * params.mask.detach().to(torch.float64).cpu()
    b = params.b.detach().to(torch.float64).cpu()
    c = params.c.detach().to(torch.float64).cpu()
    E = -(v @ b) - (h @ c) - ((h @ W) * v).sum(1)
    return transverse_field_log_probs(E, gamma, beta, max_spins=max_spins)
