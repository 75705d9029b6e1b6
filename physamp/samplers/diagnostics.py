"""Convergence diagnostics of Markov chains: rank-normalised split-R̂ and bulk effective sample size.

A chain backend (``gibbs``, ``neal``) cannot know whether its sweeps were enough: a slow-mixing
model (the 6x5 RBM with weights ~N(0, 6) relaxes in ~1,800 sweeps) gives biased samples after a
fixed number of them without any sign. What it can do is compare its chains. This module
computes, for a scalar statistic recorded along ``m`` parallel chains (an array ``(chains,
draws)``), the two diagnostics of Vehtari, Gelman, Simpson, Carpenter & Bürkner, "Rank-normalization,
folding, and localization: an improved R̂ for assessing convergence of MCMC", Bayesian Analysis
16 (2021), as ArviZ (``arviz.rhat``, ``arviz.ess``; 0.23) computes them:

* **split-R̂** (:func:`rhat`): each chain is cut into its first and last halves (an odd middle
  draw is dropped), so a trend inside a chain shows up as a difference between chains. All values
  are replaced by their pooled ranks ``r`` (ties averaged), mapped to normal scores
  ``z = Φ⁻¹((r - 3/8) / (S + 1/4))`` (Blom's fractional offset, ``S`` values in all), which makes the
  diagnostic invariant to monotone transforms and well defined for heavy tails and discrete
  values. With ``M`` half-chains of ``n`` draws, ``W`` the mean within-chain variance and ``B/n``
  the variance of the chain means, ``var⁺ = (n - 1)/n · W + B/n`` and ``R̂ = sqrt(var⁺ / W)``.
  The ``"rank"`` method (ArviZ's default, and ours) reports the larger of this *bulk* R̂ and the
  same computed on the *folded* values ``|x - median(x)|``, which detects chains that agree in
  location but not in spread.
* **bulk ESS** (:func:`ess`): on the same rank-normalised split chains, the autocorrelation
  ``ρ̂_t = 1 - (W - mean_chains acov_t) / var⁺`` combines all chains (FFT autocovariances);
  Geyer's initial positive sequence truncates the sum of pairs ``P_k = ρ̂_2k + ρ̂_2k+1`` at the
  first non-positive pair, his initial monotone sequence makes the pairs non-increasing, and
  ``ESS = M n / τ̂`` with ``τ̂ = -1 + 2 Σ P_k`` (plus the next even ρ̂ when it is positive; τ̂ is
  at least ``1 / log10(M n)``).

R̂ near 1 means the chains agree; the modern rule (Vehtari et al. 2021) is ``R̂ < 1.01``, the
default :data:`RHAT_THRESHOLD` here (1.05 is the older, laxer rule; every sampler takes
``rhat_threshold``). ESS counts recorded draws (not sweeps).

Few draws make R̂ itself noisy: for independent draws its standard deviation is
:func:`rhat_noise`, 0.016 for 500 chains of 5 draws, 0.0066 for 10 chains of 50 (a simulation
of 2,000 such traces finds R̂ > 1.01 in 16 % of them). A sampler that records few draws (a short
call) would then cross 1.01 by chance, so :func:`diagnose` calls the chains *not mixed*
(``converged=False``, a :class:`ConvergenceWarning` from the samplers) only when R̂ exceeds both
the threshold and ``1 + 4 × noise`` (:data:`NOISE_SIGMAS`); between the two it reports
``converged=None`` ("undecided"). ``converged=True`` needs R̂ at most the threshold.

Degenerate input -- fewer than 2 chains (R̂) or 4 draws, NaN or infinite values, or a statistic
that never varies -- gives NaN and a reason (:func:`diagnose`), never an exception. Everything
is numpy only and vectorised over chains and draws (FFT autocovariances, one sort per ranking):
the functions take ``(..., chains, draws)`` and return one value per leading index.

The second half of this module runs a sampler's sweeps with the diagnostic: :func:`plan_checks`
and :func:`run_with_checks` record the statistic at thinned points of the last half of the sweeps
(the first half is burn-in) and, for ``steps="auto"``, sweep in doubling blocks until R̂ is below
the threshold or a cap is reached.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "RHAT_THRESHOLD",
    "MIN_DRAWS",
    "MAX_DRAWS",
    "MIN_THIN",
    "FIRST_AUTO_CHECK",
    "MAX_STEPS",
    "NOISE_SIGMAS",
    "ConvergenceWarning",
    "normal_quantile",
    "rank_normalize",
    "split_chains",
    "rhat",
    "ess",
    "rhat_noise",
    "Diagnosis",
    "diagnose",
    "check_rhat_threshold",
    "check_min_ess",
    "check_max_steps",
    "check_diagnostic_options",
    "not_recorded",
    "stack_records",
    "Check",
    "plan_checks",
    "RunReport",
    "run_with_checks",
    "warn_convergence",
    "warn_if_not_mixed",
]

#: Default R̂ threshold: the modern rule of Vehtari et al. (2021). 1.05 is the older, laxer rule.
RHAT_THRESHOLD = 1.01
#: Fewest draws per chain for which R̂ and ESS are computed (ArviZ's minimum).
MIN_DRAWS = 4
#: Most draws a sampler records for one check: the cost stays a few % of the sweeps.
MAX_DRAWS = 100
#: Fewest sweeps between two recorded draws. Recording one draw costs 0.35-0.5 of a Gibbs sweep
#: (the energy needs one product with W; measured on one thread for a dense 784x500 and a Chimera
#: 784x784 RBM, 100 and 1,000 chains), and draws are only recorded in the last half of the sweeps,
#: so the overhead is at most ~0.5 / (2 MIN_THIN) of a call: ~2 %.
MIN_THIN = 12
#: ``steps="auto"``: sweeps at the first check (then 2x, 4x, ... up to ``max_steps``).
FIRST_AUTO_CHECK = 400
#: ``steps="auto"``: default cap on the sweeps of one call.
MAX_STEPS = 100_000
#: R̂ must exceed ``1 + NOISE_SIGMAS * rhat_noise`` (as well as the threshold) for a "not mixed"
#: verdict. Independent draws did so in 0.1 % of 2,000 simulated traces of 500 chains x 5 draws,
#: 0.25 % with 10 x 50, 0.75 % with 4 x 100 and 1.3 % with 2 x 100 (R̂ > 1.01 alone: 47, 16, 12, 23 %).
NOISE_SIGMAS = 4.0


class ConvergenceWarning(UserWarning):
    """The chains of a sampler have not mixed (R̂ of their energies above the threshold)."""


# --- the normal quantile function -----------------------------------------------------------------
# Acklam's rational approximation of Φ⁻¹ (relative error < 1.2e-9 over (0, 1)): numpy has no
# erfinv, and the rank normalisation only needs the quantiles of (r - 3/8) / (S + 1/4).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def _horner(coefs: Sequence[float], x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, coefs[0])
    for a in coefs[1:]:
        out = out * x + a
    return out


def normal_quantile(p) -> np.ndarray:
    """Φ⁻¹(p), the standard normal quantile, elementwise for p in (0, 1) (±inf at 0 and 1).

    Acklam's algorithm: a rational function in the centre, one in ``sqrt(-2 log p)`` in each
    tail; relative error below 1.2e-9, far below what a diagnostic can resolve.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    inside = (p > 0) & (p < 1)  # 0, 1 and the rest are set below, without log(0) warnings
    low, high = inside & (p < _P_LOW), inside & (p > 1 - _P_LOW)
    mid = inside & ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = q * _horner(_A, r) / (_horner(_B, r) * r + 1.0)
    for sel, sign, tail in ((low, 1.0, p[low]), (high, -1.0, 1.0 - p[high])):
        s = np.sqrt(-2.0 * np.log(tail))
        out[sel] = sign * _horner(_C, s) / (_horner(_D, s) * s + 1.0)
    out[p == 0] = -np.inf
    out[p == 1] = np.inf
    out[~inside & (p != 0) & (p != 1)] = np.nan
    return out


# --- ranks, splits and the two statistics ---------------------------------------------------------
def _as_chains(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(
            f"a trace must be an array (chains, draws) or (..., chains, draws); got shape {x.shape}. "
            "One chain of draws is x[None, :]"
        )
    return x


def _rank_scores(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of a 1-D array (ties share their mean rank)."""
    k = x.size
    order = np.argsort(x)  # ties are averaged below, so no stable sort is needed
    s = x[order]
    new = np.empty(k, dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, k))
    mean_rank = starts + (counts + 1) / 2.0  # ranks starts+1 .. starts+counts
    scores = normal_quantile((mean_rank - 0.375) / (k + 0.25))  # once per distinct value
    out = np.empty(k, dtype=np.float64)
    out[order] = np.repeat(scores, counts)
    return out


def rank_normalize(x) -> np.ndarray:
    """Normal scores of the pooled ranks: ``Φ⁻¹((r - 3/8) / (S + 1/4))`` over each (chains, draws) block."""
    x = _as_chains(x)
    flat = x.reshape(-1, x.shape[-2] * x.shape[-1])
    if flat.shape[1] == 0:
        return np.empty(x.shape)
    return np.stack([_rank_scores(row) for row in flat]).reshape(x.shape)


def split_chains(x) -> np.ndarray:
    """``(..., m, n)`` -> ``(..., 2m, n // 2)``: first halves, then last halves (odd middle draw dropped)."""
    x = _as_chains(x)
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., x.shape[-1] - half :]], axis=-2)


def _rhat_of(z: np.ndarray) -> np.ndarray:
    """``sqrt(var⁺ / W)`` of (already split) chains ``(..., M, n)``; NaN/inf where W = 0."""
    n = z.shape[-1]
    w = z.var(axis=-1, ddof=1).mean(axis=-1)
    b_over_n = z.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1) / n * w + b_over_n) / w)


def _valid(x: np.ndarray, min_chains: int) -> np.ndarray:
    """Per leading index: enough chains and draws, all values finite."""
    ok = np.isfinite(x).all(axis=(-2, -1))
    if x.shape[-2] < min_chains or x.shape[-1] < MIN_DRAWS:
        ok = np.zeros_like(ok)
    return ok


def rhat(x, method: str = "rank") -> np.ndarray | float:
    """Split-R̂ of ``x (..., chains, draws)``; a float for a 2-D input.

    method: ``"rank"`` (default, as ArviZ: the larger of the bulk and folded R̂ -- the folded one
    ignored where it is undefined), ``"bulk"`` (rank-normalised split-R̂), ``"folded"`` (of
    ``|x - median|``, rank-normalised) or ``"split"`` (split-R̂ of the raw values).
    NaN where there are fewer than 2 chains or 4 draws, a non-finite value, or no variation.
    """
    if method not in ("rank", "bulk", "folded", "split"):
        raise ValueError(f"method must be 'rank', 'bulk', 'folded' or 'split', got {method!r}")
    x = _as_chains(x)
    ok = _valid(x, min_chains=2)
    if not ok.any():
        out = np.full(x.shape[:-2], np.nan)
        return float(out) if out.ndim == 0 else out
    clean = np.where(ok[..., None, None], x, 0.0)
    s = split_chains(clean)
    if method == "split":
        out = _rhat_of(s)
    else:
        bulk = _rhat_of(rank_normalize(s)) if method != "folded" else None
        folded = None
        if method != "bulk":
            flat = s.reshape(*s.shape[:-2], -1)
            med = np.median(flat, axis=-1)[..., None, None]
            folded = _rhat_of(rank_normalize(np.abs(s - med)))
        combined = bulk if folded is None else folded if bulk is None else np.fmax(bulk, folded)
        assert combined is not None  # method "bulk" computes bulk, "folded" folded, "rank" both
        out = combined
    out = np.where(ok, out, np.nan)
    return float(out) if out.ndim == 0 else out


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased (divided by n) autocovariance of each chain at every lag, by FFT along the last axis."""
    n = x.shape[-1]
    d = x - x.mean(axis=-1, keepdims=True)
    m = 1 << (2 * n - 1).bit_length()  # zero padding to >= 2n: no circular wrap-around
    f = np.fft.rfft(d, n=m, axis=-1)
    return np.fft.irfft(f * np.conjugate(f), n=m, axis=-1)[..., :n] / n


def _ess_of(z: np.ndarray) -> np.ndarray:
    """Effective sample size of chains ``(..., M, n)`` (n >= 4), Geyer's initial monotone sequence."""
    m, n = z.shape[-2:]
    acov = _autocovariance(z)
    mean_acov = acov.mean(axis=-2)  # (..., n): the chains' autocovariances combined
    w = mean_acov[..., 0] * n / (n - 1.0)  # mean within-chain variance (unbiased)
    var_plus = w * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + z.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (w[..., None] - mean_acov) / var_plus[..., None]
    rho[..., 0] = 1.0
    # pairs P_k = ρ_2k + ρ_2k+1 for k = 0..K, K the last pair the positive sequence may look at
    k_max = max((n - 3) // 2, 0)
    pairs = rho[..., 0 : 2 * k_max + 1 : 2] + rho[..., 1 : 2 * k_max + 2 : 2]
    # initial positive sequence: stop at the first non-positive pair (or at K)
    stop = pairs <= 0
    stop[..., k_max] = True
    k_end = np.argmax(stop, axis=-1)
    # initial monotone sequence over the pairs kept (k < k_end), summed
    mono = np.minimum.accumulate(pairs, axis=-1)
    kept = np.arange(k_max + 1) < k_end[..., None]
    total = np.where(kept, mono, 0.0).sum(axis=-1)
    # the even autocorrelation of the first pair left out, when positive (or when that pair is
    # kept because it is >= 0 at the length limit, as ArviZ's loop does)
    even = np.take_along_axis(rho, (2 * k_end)[..., None], axis=-1)[..., 0]
    pair_end = np.take_along_axis(pairs, k_end[..., None], axis=-1)[..., 0]
    extra = np.where((even > 0) | (pair_end >= 0), even, 0.0)
    tau = np.maximum(-1.0 + 2.0 * total + extra, 1.0 / np.log10(m * n))
    out = m * n / tau
    return np.where(np.isnan(rho).any(axis=-1), np.nan, out)


def ess(x, method: str = "bulk") -> np.ndarray | float:
    """Effective sample size of ``x (..., chains, draws)`` (in draws); a float for a 2-D input.

    method: ``"bulk"`` (default: rank-normalised split chains, as ``arviz.ess``) or ``"mean"``
    (split chains of the raw values). NaN where there are fewer than 4 draws, a non-finite
    value, or no variation at all (ArviZ returns the number of draws there; a constant trace
    says nothing about mixing, so it is NaN here).
    """
    if method not in ("bulk", "mean"):
        raise ValueError(f"method must be 'bulk' or 'mean', got {method!r}")
    x = _as_chains(x)
    ok = _valid(x, min_chains=1)
    flat = x.reshape(*x.shape[:-2], -1)
    ok &= flat.max(axis=-1) > flat.min(axis=-1)  # False for a constant trace (and for NaN)
    if x.shape[-1] < MIN_DRAWS:
        out = np.full(x.shape[:-2], np.nan)
    else:
        # invalid slices are computed on a stand-in that varies (no 0/0 warnings), then set to NaN
        stand_in = np.broadcast_to(np.arange(x.shape[-1], dtype=np.float64), x.shape)
        s = split_chains(np.where(ok[..., None, None], x, stand_in))
        out = np.where(ok, _ess_of(rank_normalize(s) if method == "bulk" else s), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def rhat_noise(num_chains: int, num_draws: int) -> float:
    """Standard deviation of split-R̂ for independent draws, ``sqrt(2/(M - 1) + 2/(M (n - 1))) / (2 n)``.

    ``M = 2 num_chains`` half-chains of ``n = num_draws // 2`` draws. With independent draws
    ``R̂² - 1 ≈ (B / (n W) - 1) / n``, where the variance of the chain means ``B / n`` has a
    relative spread ``sqrt(2 / (M - 1))`` (χ² with M - 1 degrees of freedom) and ``W`` one of
    ``sqrt(2 / (M (n - 1)))``. It is 0.016 for 500 chains of 5 draws, 0.0066 for 10 chains of
    50, 0.0009 for 500 chains of 50. NaN when R̂ is undefined (fewer than 2 chains or 4 draws).
    """
    if num_chains < 2 or num_draws < MIN_DRAWS:
        return math.nan
    m, n = 2 * int(num_chains), int(num_draws) // 2
    return math.sqrt(2.0 / (m - 1) + 2.0 / (m * (n - 1))) / (2.0 * n)


# --- one verdict ------------------------------------------------------------------------------------
def check_rhat_threshold(value) -> float:
    """A valid R̂ threshold (a real number > 1) as a float, else a one-line ValueError."""
    # (typeshed's numbers.Real declares no comparison with an int: hence the ignores)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not value > 1:  # type: ignore[operator]
        raise ValueError(
            f"rhat_threshold must be a number > 1 (1.01 is the modern rule, 1.05 a laxer one), got {value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"rhat_threshold must be finite, got {value!r}")
    return float(value)


def check_min_ess(value) -> float | None:
    """None (no ESS requirement) or a number >= 0, as a float; else a one-line ValueError."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= value < 1e308:  # type: ignore[operator]
        raise ValueError(f"min_ess must be None or a finite number >= 0 (effective draws), got {value!r}")
    return float(value)


def check_sweeps_or_auto(value, name: str = "steps", what: str = "Gibbs sweeps per call") -> int | str:
    """``value`` as an int >= 1, or ``"auto"`` (sweep until split-R̂ is below the threshold); anything
    else is a one-line ValueError naming the option (``steps`` of gibbs, ``num_sweeps`` of neal)."""
    if isinstance(value, str) and value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer ({what}) or 'auto' (sweep until the chains' split-R̂ "
            f"is below rhat_threshold, at most max_steps), got {value!r}"
        )
    return int(value)


def check_max_steps(value, name: str = "max_steps") -> int:
    """A cap on the sweeps of ``steps="auto"``: an integer >= 1, else a one-line ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer (cap on the sweeps of 'auto'), got {value!r}")
    return int(value)


def check_diagnostic_options(
    max_steps, rhat_threshold, min_ess, diagnostics
) -> tuple[int, float, float | None, bool]:
    """A chain backend's diagnostic options, checked: ``(max_steps, rhat_threshold, min_ess,
    diagnostics)``, or a one-line ValueError. The one check of all four, for every backend."""
    checked = check_max_steps(max_steps), check_rhat_threshold(rhat_threshold), check_min_ess(min_ess)
    if not isinstance(diagnostics, bool):
        raise ValueError(f"diagnostics must be True or False, got {diagnostics!r}")
    return (*checked, diagnostics)


def not_recorded(statistic: str, why: str = "diagnostics=False") -> dict[str, Any]:
    """The ``info`` keys of a call that recorded no trace: NaN R̂ and ESS, no verdict, and why."""
    reason = f"not computed: {why}"
    return {"rhat": math.nan, "ess": math.nan, "converged": None,
            "convergence": {"statistic": statistic, "reason": reason}}  # fmt: skip


def stack_records(records: list) -> np.ndarray:
    """Recorded per-chain statistics (1-D tensors, one per recording) as a float64 ``(chains, draws)``
    array, the trace :func:`run_with_checks` diagnoses."""
    import torch

    return torch.stack(records, 1).to("cpu", torch.float64).numpy()


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one trace ``(chains, draws)`` of a scalar statistic.

    ``rhat`` is the ``"rank"`` R̂ (max of bulk and folded), ``ess`` the bulk ESS (in draws);
    both NaN when not computed, with ``reason`` saying why. ``converged``: True when R̂ is at
    most ``threshold`` (and ESS at least ``min_ess``, when one is asked for), False when R̂ is
    above both the threshold and ``1 + NOISE_SIGMAS noise`` (or ESS is too small), None when it could not
    be computed or is above the threshold by less than its own noise (:func:`rhat_noise`).

    ESS from very short chains is ArviZ's number but not a meaningful one: a half-chain of 2 draws
    has a lag-1 autocorrelation of -1 by construction, so τ̂ sits at its floor and ESS at
    ``M n log10(M n)``. :meth:`summary` leaves it out below 20 draws per chain.
    """

    rhat: float
    ess: float
    rhat_bulk: float
    rhat_folded: float
    chains: int
    draws: int
    threshold: float
    noise: float
    converged: bool | None
    reason: str | None = None
    min_ess: float | None = None
    #: True when the statistic itself cannot show mixing (it never varies): more sweeps do not help.
    no_information: bool = False

    def as_info(self) -> dict[str, Any]:
        return {
            "rhat": self.rhat,
            "ess": self.ess,
            "rhat_bulk": self.rhat_bulk,
            "rhat_folded": self.rhat_folded,
            "chains": self.chains,
            "draws": self.draws,
            "threshold": self.threshold,
            "noise": self.noise,
            "min_ess": self.min_ess,
            "converged": self.converged,
            "reason": self.reason,
        }

    def summary(self) -> str:
        """``R̂ 1.53 > 1.01 (ESS 120 of 500 chains x 50 draws)`` -- for messages."""
        if math.isnan(self.rhat):
            return f"R̂ not computed ({self.reason})"
        op = "<=" if self.rhat <= self.threshold else ">"
        ess = f"ESS {self.ess:.4g} of " if self.draws >= 20 else ""  # see the class docstring
        shape = f"{self.chains} chains x {self.draws} draws"
        return f"split-R̂ {self.rhat:.4g} {op} {self.threshold:g} ({ess}{shape})"


def diagnose(trace, threshold: float = RHAT_THRESHOLD, min_ess: float | None = None) -> Diagnosis:
    """R̂ and bulk ESS of ``trace (chains, draws)`` and the verdict (see :class:`Diagnosis`)."""
    threshold = check_rhat_threshold(threshold)
    min_ess = check_min_ess(min_ess)
    x = _as_chains(trace)
    if x.ndim != 2:
        raise ValueError(f"diagnose takes one trace (chains, draws); got shape {x.shape}")
    m, n = x.shape
    nan = math.nan

    def undecided(reason: str, **kw: Any) -> Diagnosis:
        kw = {"rhat": nan, "ess": nan, "rhat_bulk": nan, "rhat_folded": nan, "noise": nan, **kw}
        return Diagnosis(chains=m, draws=n, threshold=threshold, converged=None, reason=reason,
                         min_ess=min_ess, **kw)  # fmt: skip

    if n < MIN_DRAWS:
        return undecided(f"{n} draws per chain; R̂ and ESS need at least {MIN_DRAWS}")
    if not np.isfinite(x).all():
        return undecided("the trace holds NaN or infinite values")
    if m < 2:
        return undecided("split-R̂ needs at least 2 chains, got 1", ess=ess(x))
    if x.min() == x.max():
        return undecided(
            f"the statistic is {x.flat[0]:g} at every draw of every chain, so it cannot show mixing",
            no_information=True,
        )
    # one split, two rank normalisations: the bulk z serves R̂ and ESS, as in ArviZ
    halves = split_chains(x)
    z = rank_normalize(halves)
    bulk = float(_rhat_of(z))
    folded = float(_rhat_of(rank_normalize(np.abs(halves - np.median(halves)))))
    r = float(np.fmax(bulk, folded))
    e = float(_ess_of(z))
    noise = rhat_noise(m, n)
    kw: dict[str, Any] = {"rhat": r, "ess": e, "rhat_bulk": bulk, "rhat_folded": folded, "noise": noise}
    if math.isnan(r):
        return undecided("the statistic does not vary within the half-chains", **kw)
    if r <= threshold:
        if min_ess is not None and not e >= min_ess:
            reason = f"ESS {e:.4g} < min_ess {min_ess:g}"
            return Diagnosis(chains=m, draws=n, threshold=threshold, converged=False, reason=reason,
                             min_ess=min_ess, **kw)  # fmt: skip
        return Diagnosis(chains=m, draws=n, threshold=threshold, converged=True, min_ess=min_ess, **kw)
    if r <= 1.0 + NOISE_SIGMAS * noise:
        return undecided(
            f"R̂ {r:.4g} is above {threshold:g} by less than its noise (±{noise:.2g} for independent "
            f"draws with {m} chains x {n} draws): more draws are needed to tell",
            **kw,
        )
    return Diagnosis(chains=m, draws=n, threshold=threshold, converged=False, min_ess=min_ess,
                     reason=f"R̂ {r:.4g} > {threshold:g}", **kw)  # fmt: skip


# --- running a sampler's sweeps with the diagnostic -------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One diagnostic check: after ``total`` sweeps, on the draws recorded at sweep counts ``points``.

    ``points`` are evenly spaced (``thin`` sweeps apart) over the last ``total // 2`` sweeps, the
    last one at ``total``; empty when fewer than :data:`MIN_DRAWS` would fit ``min_thin`` sweeps
    apart (the check then reports that it was not computed).
    """

    total: int
    points: tuple[int, ...]
    thin: int
    min_thin: int = MIN_THIN


def plan_checks(
    steps: int | str,
    max_steps: int = MAX_STEPS,
    *,
    max_draws: int = MAX_DRAWS,
    min_thin: int = MIN_THIN,
    first: int = FIRST_AUTO_CHECK,
) -> list[Check]:
    """The checks of one call: one at ``steps`` sweeps, or for ``"auto"`` at ``first``, 2 ``first``, ...
    (each on its own last half: consecutive windows do not overlap) and a last one at ``max_steps``."""
    if steps == "auto":
        totals, t = [], first
        while t < max_steps:
            totals.append(t)
            t *= 2
        totals.append(max_steps)
    else:
        totals = [int(steps)]
    checks = []
    for total in totals:
        window = total // 2  # the sweeps after the burn-in half
        draws = min(max_draws, window // min_thin)
        if draws < MIN_DRAWS:
            checks.append(Check(total, (), 0, min_thin))
            continue
        thin = window // draws
        points = tuple(total - thin * (draws - 1 - i) for i in range(draws))
        checks.append(Check(total, points, thin, min_thin))
    return checks


@dataclass
class RunReport:
    """What :func:`run_with_checks` did: the sweeps run (``steps``) and the verdict of the last
    check that could be computed (``diagnosis``, None if none could), on the recorded draws of
    ``window`` (first and last recorded sweep), ``thin`` sweeps apart. With ``auto``: ``history``
    holds ``(sweeps, R̂)`` of every computed check and ``capped`` whether the last check was reached."""

    steps: int
    diagnosis: Diagnosis | None
    thin: int
    window: tuple[int, int] | None
    auto: bool
    capped: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)
    min_thin: int = MIN_THIN

    def info(self, statistic: str) -> dict[str, Any]:
        """The ``info`` entries of a sampler: ``rhat``, ``ess``, ``converged`` and ``convergence``."""
        d = self.diagnosis
        detail: dict[str, Any] = {"statistic": statistic, "steps": self.steps, "auto": self.auto}
        if d is None:
            detail["reason"] = (
                f"not computed: {self.steps} sweeps leave fewer than {MIN_DRAWS} draws {self.min_thin} "
                f"sweeps apart in their last half (it needs >= {2 * MIN_DRAWS * self.min_thin} sweeps)"
            )
            return {"rhat": math.nan, "ess": math.nan, "converged": None, "convergence": detail}
        detail.update(d.as_info())
        detail.update({"thin": self.thin, "window": self.window})
        if self.auto:
            detail.update({"capped": self.capped, "history": list(self.history)})
        return {"rhat": d.rhat, "ess": d.ess, "converged": d.converged, "convergence": detail}


def run_with_checks(
    advance: Callable[[int], None],
    record: Callable[[], Any],
    stack: Callable[[list[Any]], np.ndarray],
    checks: Sequence[Check],
    *,
    auto: bool,
    threshold: float = RHAT_THRESHOLD,
    min_ess: float | None = None,
) -> RunReport:
    """Run a sampler's sweeps with the checks of :func:`plan_checks`.

    ``advance(n)`` runs ``n`` more sweeps of the sampler's chains; ``record()`` returns the
    statistic of every chain now (any object); ``stack(records)`` turns a check's records
    into a ``(chains, draws)`` array. The sweeps are run from one recording point to the next,
    so the chains are exactly those of one uninterrupted run. With ``auto`` the run stops at
    the first check whose verdict is ``converged=True``, or whose statistic is constant (more
    sweeps cannot help it); otherwise after the last check.
    """
    needed = sorted({p for c in checks for p in c.points} | {c.total for c in checks})
    points = {p for c in checks for p in c.points}
    by_total = {c.total: c for c in checks}
    done, store = 0, {}
    report = RunReport(0, None, 0, None, auto, min_thin=checks[-1].min_thin if checks else MIN_THIN)
    for ev in needed:
        advance(ev - done)
        done = ev
        if ev in points:
            store[ev] = record()
        check = by_total.get(ev)
        if check is None:
            continue
        report.steps = done
        d = None
        if check.points:
            d = diagnose(stack([store[p] for p in check.points]), threshold, min_ess)
            report.diagnosis, report.thin = d, check.thin
            report.window = (check.points[0], check.total)
            report.history.append((done, d.rhat))
        if auto and d is not None and (d.converged is True or d.no_information):
            break
        if auto and check is checks[-1]:
            report.capped = True
        # drop the records no later check uses
        later = [c.points[0] for c in checks if c.total > ev and c.points]
        store = {p: r for p, r in store.items() if later and p >= min(later)}
    return report


def warn_convergence(message: str) -> None:
    """``warnings.warn(message, ConvergenceWarning)`` attributed to the first caller outside
    physamp's sampler layer (the line that called ``sample``; decorators such as
    ``torch.no_grad`` in between are skipped too)."""
    here = os.path.dirname(os.path.abspath(__file__))

    def inside(frame) -> bool:
        path = os.path.abspath(frame.f_code.co_filename)
        return os.path.dirname(path) == here or os.path.basename(path) in ("contextlib.py", "_contextlib.py")

    level = 1
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and inside(frame):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, ConvergenceWarning, stacklevel=level + 1)


def warn_if_not_mixed(
    name: str, report: RunReport, steps: int | str, max_steps: int, option: str = "steps"
) -> None:
    """One :class:`ConvergenceWarning` for a call of backend ``name`` whose chains did not mix.

    A fixed number of sweeps warns when the verdict is ``converged=False``; ``"auto"`` warns when
    it reached ``max_steps`` without ``converged=True``. No warning when the diagnostic was not
    computed (a short call) or is undecided. ``option`` names the backend's sweeps option in the
    message (``steps``, ``num_sweeps``), whose fix it states.
    """
    d = report.diagnosis
    if d is None:
        return
    window = report.window
    assert window is not None  # a diagnosis is made over a window of sweeps
    where = f"on their energies over sweeps {window[0]:,}-{window[1]:,}"
    why = f" ({d.reason})" if d.reason and not d.reason.startswith("R̂") else ""
    if report.auto:
        if report.capped and d.converged is not True:
            warn_convergence(
                f"{name}: {option}='auto' reached max_steps={max_steps:,} sweeps before the chains mixed: "
                f"{d.summary()}{why} {where}, so the samples may be biased. Raise max_steps (or "
                "rhat_threshold)"
            )
        return
    if d.converged is False:
        warn_convergence(
            f"{name}: the chains have not mixed: {d.summary()}{why} {where} of {steps:,}, so the samples "
            f"may be biased. Run more sweeps ({option} > {steps:,}) or {option}='auto' (sweeps until "
            f"R̂ <= {d.threshold:g}, at most max_steps)"
        )
