"""The transverse-field (quantum) Boltzmann distribution, exactly, for models small enough to diagonalise.

The convention, written once (DESIGN.md): over **all** spins (visible and hidden)::

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
from typing import Any

import torch

from physamp.energy import RBMParams, as_params

__all__ = [
    "MAX_SPINS",
    "check_gamma",
    "transverse_field_log_probs",
    "rbm_transverse_field_log_probs",
    "trotter_log_probs",
    "trotter_error_table",
    "format_trotter_table",
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
    return transverse_field_log_probs(_rbm_energies(params), gamma, beta, max_spins=max_spins)


def _rbm_energies(params: RBMParams) -> torch.Tensor:
    """``E(v, h)`` (float64) of every joint state, visible units first in the index bits."""
    nv = params.n_visible
    states = _basis(nv + params.n_hidden)
    v, h = states[:, :nv], states[:, nv:]
    W = params.W.detach().to(torch.float64).cpu()
    if params.mask is not None:
        W = W * params.mask.detach().to(torch.float64).cpu()
    b = params.b.detach().to(torch.float64).cpu()
    c = params.c.detach().to(torch.float64).cpu()
    return -(v @ b) - (h @ c) - ((h @ W) * v).sum(1)


# --- the Trotterised model: what a path-integral sampler with M slices draws exactly ----------------
def _diagonal(model, max_spins: int) -> tuple[torch.Tensor, int]:
    """The classical energies ``(2ⁿ,)`` (float64) of ``model``: given as such, or an RBM's over its
    visible (first in the index bits) and hidden units; and ``n``."""
    if isinstance(model, (torch.Tensor, list, tuple)) or hasattr(model, "__array__"):
        E = torch.as_tensor(model, dtype=torch.float64).reshape(-1).cpu()
        size = E.numel()
        n = size.bit_length() - 1
        if size < 2 or 1 << n != size:
            raise ValueError(f"the diagonal must hold 2^n energies (n >= 1 spins), got {size}")
    else:
        params: RBMParams = as_params(model).validate()
        if params.batched:
            raise ValueError(
                "the Trotterised distribution is computed for one set of biases, not one per chain; "
                "sample with shared biases"
            )
        nv, nh = params.n_visible, params.n_hidden
        n = nv + nh
        if n <= max_spins:
            E = _rbm_energies(params)
    if n > max_spins:
        raise ValueError(
            f"the exact Trotterised distribution of {n} spins needs a 2^{n} x 2^{n} matrix, past the "
            f"limit of {max_spins} spins (max_spins); use a smaller model"
        )
    if not torch.isfinite(E).all():
        raise ValueError("the energies hold NaN or infinite values; check the model's parameters")
    return E, n


def _log_cosh(x: float) -> float:
    return x + math.log1p(math.exp(-2.0 * x)) - math.log(2.0)


def trotter_log_probs(
    model, gamma: float, beta: float = 1.0, trotter: int = 16, *, max_spins: int = MAX_SPINS
) -> tuple[torch.Tensor, float]:
    """``(log p_M, log Z_M)``: the exact slice marginal of the ``M``-slice Trotterised model.

    ``p_M(s) = ⟨s|(e^{−εH_Ising} e^{εΓX})^M|s⟩ / Z_M`` with ``ε = β/M``, ``X = Σᵢ σˣᵢ`` and
    ``Z_M = Tr (e^{−εH_Ising} e^{εΓX})^M`` (DESIGN.md): what a path-integral sampler with ``M``
    slices and ``J⊥ = −½ ln tanh(εΓ)`` draws at slice 0, exactly. It tends to ``p_Γ``
    (:func:`transverse_field_log_probs`) as ``M → ∞``, with an error ``O(1/M²)``; at Γ = 0 it is
    the classical distribution for every ``M``.

    ``model`` is the ``2ⁿ`` classical energies (bit ``i`` of the index is spin ``i``) or an RBM
    (visible units first). Computed in float64 without overflow: with
    ``D = e^{−ε(H_Ising − E_min)}`` and ``e^{εΓX} = cosh(εΓ)ⁿ · T``, ``T = ⊗ᵢ [[1, t], [t, 1]]``,
    ``t = tanh(εΓ)`` (``T_{ss'} = t^{d(s, s')}``, ``d`` the Hamming distance), the symmetric
    positive semi-definite ``B = D^{1/2} T D^{1/2}`` has the same ``M``-th power diagonal as
    ``D T``, so one eigendecomposition ``B = U diag(μ) Uᵀ`` gives ``p_M(s) ∝ Σ_k U_{sk}² μ_k^M``
    for any ``M`` (the powers taken relative to the largest μ). Cost ``O(8ⁿ)``, as
    :func:`transverse_field_log_probs`.
    """
    gamma = check_gamma(gamma)
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    if isinstance(trotter, bool) or not isinstance(trotter, numbers.Integral) or trotter < 1:
        raise ValueError(f"trotter must be an integer >= 1 (the number M of Trotter slices), got {trotter!r}")
    M = int(trotter)
    E, n = _diagonal(model, max_spins)
    eps = beta / M
    e_min = float(E.min())
    if gamma == 0.0:  # T = identity: the classical distribution for every M
        log_w = -beta * E
        log_z = torch.logsumexp(log_w, 0)
        return log_w - log_z, float(log_z)
    t = math.tanh(eps * gamma)
    factor = torch.tensor([[1.0, t], [t, 1.0]], dtype=torch.float64)
    B = factor
    for _ in range(n - 1):  # T = ⊗ᵢ [[1, t], [t, 1]]: the factors are equal, so their order is moot
        B = torch.kron(B, factor)
    half = torch.exp(-0.5 * eps * (E - e_min))  # D^{1/2}
    B *= half[:, None]
    B *= half[None, :]
    mu, U = torch.linalg.eigh(B)
    del B
    tiny = torch.finfo(torch.float64).tiny
    log_mu = torch.log(mu.clamp_min(tiny))  # PSD up to rounding: the clamped ones weigh nothing
    top = float(log_mu.max())
    powers = torch.exp(M * (log_mu - top))
    weights = (U * U) @ powers
    total = float(weights.sum())
    log_p = torch.log(weights.clamp_min(tiny)) - math.log(total)
    log_z = M * (-eps * e_min + n * _log_cosh(eps * gamma) + top) + math.log(total)
    return log_p, log_z


def _tv(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    return 0.5 * float((log_p.exp() - log_q.exp()).abs().sum())


def trotter_error_table(
    rbm,
    gammas=(0.5, 1.0, 2.0),
    beta: float = 1.0,
    trotters=(2, 4, 8, 16, 32, 64),
    *,
    num_samples: int = 0,
    steps: int = 50,
    seed: int = 0,
    chunk: int = 20_000,
    max_spins: int = MAX_SPINS,
) -> list[dict]:
    """The Trotter error of a small RBM: one row per ``(gamma, trotter)``.

    Each row holds ``gamma``, ``trotter`` (M), ``tv_trotter`` = TV(p_M, p_Γ) exactly (from
    :func:`trotter_log_probs` and :func:`rbm_transverse_field_log_probs`) and ``ratio``, the
    previous row's ``tv_trotter`` over this one (about ``(M/M_prev)²`` once ``M`` is large, 4 per
    doubling). With ``num_samples > 0`` it also draws that many samples from
    ``make_sampler("quantum", gamma=Γ, beta=β, trotter=M, steps=steps)`` (from random starts, in
    chunks of at most ``chunk`` chains, seeded from ``seed``) and adds ``tv_sampled`` (their TV to
    p_Γ), ``tv_sampled_trotter`` (to p_M) and ``noise``, the expected TV of a perfect sampler of
    p_M at that many draws (``½ Σ_s √(2 p(1−p) / (π n))``, the mean of the normal approximation).
    """
    rows = []
    for gamma in gammas:
        log_pg, _ = rbm_transverse_field_log_probs(rbm, gamma, beta, max_spins=max_spins)
        prev: float | None = None
        for M in trotters:
            log_pm, _ = trotter_log_probs(rbm, gamma, beta, M, max_spins=max_spins)
            tv = _tv(log_pm, log_pg)
            row: dict[str, Any] = {"gamma": float(gamma), "trotter": int(M), "tv_trotter": tv}
            row["ratio"] = prev / tv if prev is not None and tv > 0 else None
            prev = tv
            if num_samples:
                q = _sampled_distribution(rbm, gamma, beta, M, num_samples, steps, seed, chunk)
                pm, pg = log_pm.exp(), log_pg.exp()
                row["tv_sampled"] = 0.5 * float((q - pg).abs().sum())
                row["tv_sampled_trotter"] = 0.5 * float((q - pm).abs().sum())
                row["noise"] = 0.5 * float(torch.sqrt(2 * pm * (1 - pm) / (math.pi * num_samples)).sum())
            rows.append(row)
    return rows


def _sampled_distribution(rbm, gamma, beta, trotter, num_samples, steps, seed, chunk) -> torch.Tensor:
    """The empirical distribution (float64, ``(2ⁿ,)``) of ``num_samples`` draws of ``quantum``."""
    from physamp.samplers.registry import make_sampler

    params = as_params(rbm).validate()
    nv, nh = params.n_visible, params.n_hidden
    weights = 2 ** torch.arange(nv + nh, dtype=torch.int64)
    counts = torch.zeros(1 << (nv + nh), dtype=torch.float64)
    done, part = 0, 0
    while done < num_samples:
        n = min(chunk, num_samples - done)
        sampler = make_sampler(
            "quantum", gamma=gamma, beta=beta, trotter=trotter, steps=steps, seed=seed + part,
            diagnostics=False, progress=False,
        )  # fmt: skip
        s = sampler.sample(rbm, n)
        idx = torch.cat([s.v, s.h], 1).to(torch.int64).cpu() @ weights
        counts += torch.bincount(idx, minlength=counts.numel()).to(torch.float64)
        done, part = done + n, part + 1
    return counts / num_samples


def format_trotter_table(rows: list[dict]) -> str:
    """:func:`trotter_error_table`'s rows as a Markdown table."""
    sampled = any("tv_sampled" in r for r in rows)
    head = "| Γ | M | TV(p_M, p_Γ) exact | ratio to M/2 |"
    rule = "| --- | --- | --- | --- |"
    if sampled:
        head += " TV(samples, p_Γ) | TV(samples, p_M) | noise |"
        rule += " --- | --- | --- |"
    lines = [head, rule]
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        line = f"| {r['gamma']:g} | {r['trotter']} | {r['tv_trotter']:.2e} | {ratio} |"
        if sampled:
            line += f" {r['tv_sampled']:.4f} | {r['tv_sampled_trotter']:.4f} | {r['noise']:.4f} |"
        lines.append(line)
    return "\n".join(lines)
