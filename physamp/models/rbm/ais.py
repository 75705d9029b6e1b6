"""Annealed importance sampling (AIS) estimates of an RBM's log partition function.

This follows Salakhutdinov & Murray, "On the quantitative analysis of deep
belief networks" (ICML 2008), cited below as S&M, and the evaluation of the
thesis (§3.4). It provides:

- :func:`estimate_log_z`: AIS from a base-rate RBM ``A`` to the target RBM ``B``,
  with the ±3σ bounds of S&M.
- :func:`exact_log_z`: exact log Z by enumerating the smaller layer. It calls
  :func:`physamp.samplers.exact.exact_log_z` and also accepts an :class:`~physamp.RBM`.
- :func:`log_likelihood` and :func:`test_nll`: per-example log-likelihoods and the
  mean test NLL with bounds.
- :func:`expected_nll_under_noise`: the thesis's expected NLL when the parameters
  are noisy at sampling time, batched over the noise draws.

The annealing path (S&M §3: AIS, and the ratio of the partition functions of two RBMs)
--------------------------------------------------------------------------------------
The equations are numbered (A1)-(A5) here. They follow S&M's equations for
``p_k``, ``p*_k``, ``T_k`` and the weights of §3; this module does not give
S&M's own equation numbers, because it has not checked them against the paper.
The base-rate model ``A`` has zero weights, visible biases ``b_A`` and zero
hidden biases, and it has as many hidden units as ``B``, so::

    log Z_A = Σ_i softplus(b_A,i) + n_hidden · log 2.                          (A1)

The intermediate distributions are::

    p_k(v) ∝ Σ_{h_A, h_B} exp(-(1-β_k) E(v, h_A; θ_A) - β_k E(v, h_B; θ_B))   (A2)

With the hidden units of A and B summed out, this is::

    p*_k(v) = exp((1-β_k) b_A·v) · exp(β_k b·v) · Π_j (1 + exp(β_k (c_j + W_j·v)))
            = exp(-(1-β_k) F_A(v) - F_B(v; β_k))                            (A3)

This holds up to the constant 2^n_hidden that A's hidden units contribute.

Here ``F_A(v) = -b_A·v`` and ``F_B(v; β) = -β b·v - Σ_j softplus(β (c_j + W_j·v))``
is the free energy of the tempered joint ``β E_B`` (:meth:`RBM.free_energy` with
``beta``). This is not ``β_k F_B(v)``: β multiplies the joint energy, inside the
softplus. The Gibbs transition below is exact for this form. ``p*_0`` is the base
rate, with normaliser ``Z_A`` as defined above, and ``p*_K = exp(-F_B)``, with
normaliser ``Z_B``.

The transition ``T_k`` is one block-Gibbs sweep that leaves ``p_k`` invariant::

    h ~ σ(β_k (c + W v)),       v ~ σ((1-β_k) b_A + β_k (b + Wᵀ h))        (A4)

A run draws ``v_1 ~ p_0`` exactly and sets ``v_{k+1} ~ T_k(v_k)``. Its
importance weight is::

    log w = Σ_{k=1..K} [log p*_k(v_k) - log p*_{k-1}(v_k)]                    (A5)

and ``Z_B / Z_A ≈ mean(w)``, an unbiased estimate. With ``K + 1`` values of β there are ``K``
weight factors and ``K - 1`` transitions.

Numerics and speed
------------------
For each state ``v_k`` one product gives ``a = c + W v_k``, and one extra row of
it gives ``(b - b_A)·v_k``. The product is computed once and serves twice:

* the weight factor: ``Δβ (b - b_A)·v + Σ_j [softplus(β_k a_j) - softplus(β_{k-1} a_j)]``.
  The softplus difference is evaluated as ``-log1p(σ(β_k a) · expm1(-Δβ a))``,
  which is exact algebra. It keeps float32's *relative* precision on a difference
  of order Δβ ≈ 1e-5, where subtracting two float32 softplus values would lose
  about two digits. That form overflows (``expm1`` to inf, ``σ`` to 0 or 1, then
  NaN or -inf) once ``Δβ·|a|`` is large -- coarse schedules, large or diverged
  weights -- so a step where ``Δβ · max|a|`` may exceed 1 uses the equivalent
  bounded form (every factor in [0, 1], no overflow for any finite ``a``)::

      softplus(β_k a) - softplus(β_{k-1} a)
          = Δβ·max(a, 0) - log1p(exp(-β_{k-1}|a|) · (1 - exp(-Δβ|a|)) · σ(β_k |a|))

  ``max|a|`` is bounded once per run by ``max_j |c_j| + Σ_i |W_ji|`` (``v`` is binary),
  so the common case pays nothing for the check.
* the transition: ``h ~ σ(β_k a)``, from the same ``σ(β_k a)`` buffer.

A model whose parameters are not finite cannot be evaluated (``ValueError``:
it has diverged), nor one so large that the activations overflow the dtype.

The K per-step factors, each (runs,), are stored in float32 and summed in float64.
Bernoulli draws are the 32-bit threshold draws the Gibbs sampler uses,
:class:`~physamp.samplers.bernoulli.Int32Bernoulli` (``x = [(K + 1/2)·2^-32 < p]``,
``P(1)`` the nearest multiple of ``2^-32`` to ``p``), seeded ``derive_seed(seed, "ais")``:
the hiddens from the ``σ(β_k a)`` the weight factor computes anyway, the visibles
straight from the product's logits (no sigmoid pass), each one compiled pass on the
CPU. The free energies are
:func:`physamp.energy.free_energy`, exact log Z is
:func:`physamp.samplers.exact.log_partition`, and the base-rate model is
:func:`physamp.models.rbm.model.base_rate_biases`: one implementation each.
States are kept unit-major, with shape ``(batch, units, runs)``, and all buffers are preallocated.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams, as_params, free_energy
from physamp.models.rbm.model import (
    BASE_RATE_SMOOTHING,  # noqa: F401  (re-exported: physamp.ais.BASE_RATE_SMOOTHING)
    base_rate_biases,
    base_rate_log_z,
    check_data,
)
from physamp.samplers.bernoulli import Int32Bernoulli
from physamp.samplers.exact import DEFAULT_MAX_BITS, log_partition
from physamp.samplers.exact import exact_log_z as _exact_log_z_params
from physamp.seeding import derive_seed

__all__ = [
    "AISResult",
    "NLLResult",
    "NoisyNLLResult",
    "default_betas",
    "schedule",
    "base_rate_biases",
    "estimate_log_z",
    "exact_log_z",
    "log_likelihood",
    "test_nll",
    "noisy_parameters",
    "expected_nll_under_noise",
]


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class AISResult:
    """An AIS estimate of log Z.

    Attributes:
        log_z: ``log Z_A + log mean(w)``.
        log_z_lower, log_z_upper: ``log Z_A + log(mean(w) ∓ 3 std(w)/sqrt(num_runs))``
            (S&M's ±3σ interval; ``std`` with ``ddof=1``). ``log_z_lower`` is ``-inf``
            when ``mean(w) - 3σ <= 0``, and both bounds are infinite when
            ``num_runs == 1``.
        log_weights: the ``(num_runs,)`` float64 log importance weights ``log w``.
        num_betas: the number of β values, ``K + 1``.
        log_z_base: ``log Z_A`` of the base-rate model.
        num_runs: the number of AIS runs.
        ess: the effective sample size ``(Σw)² / Σw²`` of the weights.
        seconds: wall time of the run. For a batched run it is the shared total.
    """

    log_z: float
    log_z_lower: float
    log_z_upper: float
    log_weights: torch.Tensor
    num_betas: int
    log_z_base: float
    num_runs: int
    ess: float
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.log_z

    def __repr__(self) -> str:
        return (
            f"AISResult(log_z={self.log_z:.4f}, bounds=[{self.log_z_lower:.4f}, {self.log_z_upper:.4f}], "
            f"num_runs={self.num_runs}, num_betas={self.num_betas}, ess={self.ess:.1f}, "
            f"seconds={self.seconds:.2f})"
        )


@dataclass
class NLLResult:
    """Mean negative log-likelihood in nats per example, with bounds from the log Z bounds.

    ``NLL = mean F(v) + log Z`` increases with log Z, so ``nll_lower`` uses
    ``log_z_lower`` and ``nll_upper`` uses ``log_z_upper``. In terms of the
    log-likelihood the bounds swap: the *upper* bound on the log-likelihood is
    ``-nll_lower``. With an exact (float) log Z all three values are equal.
    """

    nll: float
    nll_lower: float
    nll_upper: float
    num_examples: int


@dataclass
class NoisyNLLResult:
    """Expected NLL under parameter noise: the mean and std over noise draws.

    ``nll_per_draw`` is ``(num_draws,)`` float64, the mean NLL in nats of each noisy
    model on the data. ``log_z_per_draw`` holds each draw's log Z. ``ais`` holds the
    per-draw :class:`AISResult` list when ``log_z_method="ais"``.
    """

    mean: float
    std: float
    nll_per_draw: torch.Tensor
    log_z_per_draw: torch.Tensor
    num_draws: int
    log_z_method: str
    ais: list[AISResult] | None = None


# ---------------------------------------------------------------------------------------------
# schedule and base rate
# ---------------------------------------------------------------------------------------------
def default_betas() -> np.ndarray:
    """S&M's schedule: 14,501 float64 values of β, from exactly 0 to exactly 1.

    It has 500 values evenly spaced in [0, 0.5), 4,000 in [0.5, 0.9) and 10,001
    in [0.9, 1.0] (both ends included). That gives K = 14,500 weight factors,
    S&M's "14,500 intermediate distributions", and 14,499 Gibbs transitions.
    """
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, 500, endpoint=False),
            np.linspace(0.5, 0.9, 4000, endpoint=False),
            np.linspace(0.9, 1.0, 10001),
        ]
    )


def schedule(num_intermediate: int | None = None) -> np.ndarray:
    """The β schedule with ``num_intermediate`` intermediate distributions.

    ``None`` or 14,500 gives S&M's schedule (:func:`default_betas`); any other count
    ``n`` gives ``n + 1`` evenly spaced values from 0 to 1 (quick evaluations).
    """
    if num_intermediate is None or num_intermediate == 14500:
        return default_betas()
    if isinstance(num_intermediate, bool) or not isinstance(num_intermediate, int) or num_intermediate < 1:
        raise ValueError(
            f"the number of intermediate distributions must be a positive int, got {num_intermediate!r}"
        )
    return np.linspace(0.0, 1.0, num_intermediate + 1)


def _check_betas(betas) -> np.ndarray:
    if isinstance(betas, torch.Tensor):
        betas = betas.detach().cpu().numpy()
    try:
        arr = np.asarray(betas, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"betas must be a 1-D sequence of numbers: {e}") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(
            f"betas must be a 1-D schedule with at least 2 values (0 and 1); got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("betas hold NaN or inf")
    if arr[0] != 0.0 or arr[-1] != 1.0:
        raise ValueError(
            f"betas must start at exactly 0 and end at exactly 1; got {arr[0]!r} ... {arr[-1]!r}"
        )
    if not (np.diff(arr) > 0).all():
        i = int(np.argmax(np.diff(arr) <= 0))
        raise ValueError(
            f"betas must be strictly increasing; betas[{i}] = {arr[i]!r} >= betas[{i + 1}] = {arr[i + 1]!r}"
        )
    return arr


# ---------------------------------------------------------------------------------------------
# the AIS loop (batched over independent models of one shape)
# ---------------------------------------------------------------------------------------------
#: A step whose ``Δβ · max|a|`` stays at or below this uses the fast ``log1p(σ·expm1)`` form of the
#: softplus difference (``1 + σ·expm1 >= e^-1``: no cancellation, no overflow); above it the bounded form.
_FAST_FORM_LIMIT = 1.0
#: A step with ``Δβ · max|a| <= 1/16`` runs in the compiled pass (``Int32Bernoulli.ais_hidden_``), whose
#: series for expm1 and log1p are exact to 1e-11 relative there.
_FUSED_LIMIT = 1.0 / 16


def _activation_bound(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, b_A: torch.Tensor) -> float:
    """A bound on ``max |c + W v|`` and ``|(b - b_A)·v|`` over binary ``v`` and all models (float64)."""
    W64, c64 = W.to(torch.float64), c.to(torch.float64)
    hidden = float((c64.abs() + W64.abs().sum(-1)).max())
    visible = float((b.to(torch.float64) - b_A.to(torch.float64)[None]).abs().sum(-1).max())
    return max(hidden, visible)


def _check_evaluable(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, b_A: torch.Tensor) -> float:
    """The activation bound of the models, or a one-line ValueError if AIS cannot evaluate them."""
    for name, t in (("W", W), ("b", b), ("c", c)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"AIS cannot evaluate this model: its {name} holds NaN or inf, so the model has "
                "diverged; retrain it with a lower learning rate (or momentum), or evaluate an "
                "earlier, finite checkpoint"
            )
    bound = _activation_bound(W, b, c, b_A)
    limit = torch.finfo(W.dtype).max / (W.shape[-2] + 2)
    if not bound < limit:
        raise ValueError(
            f"AIS cannot evaluate this model in {W.dtype}: its activations reach about {bound:.3g}, "
            f"beyond what the dtype holds ({limit:.3g}), so the model has diverged; retrain it with a "
            "lower learning rate (or momentum), or evaluate an earlier checkpoint"
        )
    return bound


def _neg_softplus_step_(
    out: torch.Tensor,
    a: torch.Tensor,
    s: torch.Tensor,
    beta: float,
    beta_prev: float,
    bounded: bool,
    scratch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``out = softplus(β_{k-1} a) - softplus(β_k a)``, elementwise and in place in ``out``.

    ``s`` holds ``σ(β_k a)``. ``bounded=False`` is the fast form ``log1p(σ(β_k a)·expm1(-Δβ a))``,
    exact and precise while ``Δβ|a| <= 1``; ``bounded=True`` is the form whose factors all lie in
    [0, 1] (see the module docstring), finite for every finite ``a``. ``scratch``: two buffers
    shaped like ``a`` for the bounded form.
    """
    dbeta = beta - beta_prev
    if not bounded:
        return torch.mul(a, -dbeta, out=out).expm1_().mul_(s).log1p_()
    u, w = scratch if scratch is not None else (torch.empty_like(a), torch.empty_like(a))
    torch.abs(a, out=u)
    torch.mul(u, -dbeta, out=out).expm1_().neg_()  # 1 - e^{-Δβ|a|}
    out.mul_(torch.mul(u, beta, out=w).sigmoid_())  # · σ(β_k |a|)
    out.mul_(torch.mul(u, -beta_prev, out=w).exp_())  # · e^{-β_{k-1}|a|}
    return out.log1p_().sub_(torch.clamp(a, min=0, out=w), alpha=dbeta)


def _run_ais(
    W: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    b_A: torch.Tensor,
    betas: np.ndarray,
    num_runs: int,
    seed: int,
    progress: bool,
    desc: str = "AIS",
) -> torch.Tensor:
    """Log-weights of AIS runs for a batch of ``D`` RBMs of one shape.

    ``W (D, nh, nv)``, ``b (D, nv)``, ``c (D, nh)`` and ``b_A (nv,)`` all share one dtype and
    device. Returns float64 log-weights with shape ``(D, num_runs)``.
    """
    D, nh, nv = W.shape
    R = num_runs
    dev, dt = W.device, W.dtype
    K = len(betas) - 1
    a_bound = _check_evaluable(W, b, c, b_A)
    h_bound = float((c.to(torch.float64).abs() + W.to(torch.float64).abs().sum(-1)).max())  # max |c + W v|
    bern = Int32Bernoulli(dev, seed=derive_seed(seed, "ais"))
    # one product gives the hidden pre-activations and (b - b_A)·v: W_aug = [W; b - b_A]
    d_bias = b - b_A[None]  # (D, nv)
    W_aug = torch.cat([W, d_bias[:, None, :]], 1).contiguous()  # (D, nh+1, nv)
    c_aug = torch.cat([c, torch.zeros(D, 1, dtype=dt, device=dev)], 1)[:, :, None].contiguous()
    W_vh = W.transpose(1, 2).contiguous()  # (D, nv, nh)
    bA_col = b_A[None, :, None].expand(D, nv, 1).contiguous()
    dcol = d_bias[:, :, None].contiguous()
    # buffers
    A = torch.empty(D, nh + 1, R, dtype=dt, device=dev)
    s = torch.empty(D, nh, R, dtype=dt, device=dev)
    t = torch.empty(D, nh, R, dtype=dt, device=dev)
    z = torch.empty(D, nh, R, dtype=dt, device=dev)  # β_k a, then the hidden draws
    vT = torch.empty(D, nv, R, dtype=dt, device=dev)
    vbias = torch.empty(D, nv, 1, dtype=dt, device=dev)
    incr = torch.empty(K, D, R, dtype=dt, device=dev)  # per-step weight factors
    scratch = None  # buffers of the bounded form, allocated on its first step
    # v_1 ~ p_0 exactly: independent Bernoulli(σ(b_A))
    torch.sigmoid(bA_col.expand(D, nv, R), out=vT)
    bern.sample_from_probs_(vT)
    A_h, A_d = A[:, :nh], A[:, nh]
    bl = [float(x) for x in betas]
    it = range(1, K + 1)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc, unit="β", mininterval=0.5)
    for k in it:
        bk, dbk = bl[k], bl[k] - bl[k - 1]
        torch.baddbmm(c_aug, W_aug, vT, out=A)  # a = c + W v  and  (b - b_A)·v
        row = incr[k - 1]
        # the weight factor and h ~ σ(β_k a) in one compiled pass where Δβ|a| <= 1/16 (series forms)
        if k < K and dbk * h_bound <= _FUSED_LIMIT and bern.ais_hidden_(A, bk, dbk, z, row):
            h = z
        else:
            torch.mul(A_h, bk, out=z)
            torch.sigmoid(z, out=s)  # σ(β_k a)
            # t = softplus(β_{k-1} a) - softplus(β_k a), by the fast form where it cannot overflow
            bounded = dbk * a_bound > _FAST_FORM_LIMIT
            if bounded and scratch is None:
                scratch = (torch.empty_like(t), torch.empty_like(t))
            _neg_softplus_step_(t, A_h, s, bk, bl[k - 1], bounded, scratch)
            torch.sum(t, 1, out=row)
            row.neg_().add_(A_d, alpha=dbk)
            if k == K:
                break
            h = bern.sample_from_logits_(z)  # from the logits β_k a: the compiled pass's draws
        # T_k: h ~ σ(β_k a) (above), then v ~ σ((1-β_k) b_A + β_k (b + Wᵀh))
        torch.add(bA_col, dcol, alpha=bk, out=vbias)
        bern.sample_from_logits_(torch.baddbmm(vbias, W_vh, h, alpha=bk, out=vT))
    return incr.sum(0, dtype=torch.float64)


def _summarise(log_w: torch.Tensor, log_z_base: float, num_betas: int, seconds: float, info) -> AISResult:
    """S&M's estimate and ±3σ bounds, computed stably in log space (float64)."""
    lw = log_w.detach().to(torch.float64).cpu()
    R = lw.numel()
    if not torch.isfinite(lw).all():  # not expected once _check_evaluable passed: a one-line error anyway
        raise ValueError(
            "AIS produced non-finite log-weights: the model's parameters are too large to evaluate "
            "(it has probably diverged); retrain with a lower learning rate, or use an earlier checkpoint"
        )
    m = float(lw.max())
    w = torch.exp(lw - m)  # in (0, 1], max exactly 1
    mean = float(w.mean())
    log_z = log_z_base + m + math.log(mean)
    ess = float(w.sum() ** 2 / (w * w).sum())
    if R > 1:
        sigma = float(w.std(correction=1)) / math.sqrt(R)
        upper = log_z_base + m + math.log(mean + 3 * sigma)
        lo = mean - 3 * sigma
        lower = log_z_base + m + math.log(lo) if lo > 0 else -math.inf
    else:
        lower, upper = -math.inf, math.inf
    return AISResult(
        log_z=log_z,
        log_z_lower=lower,
        log_z_upper=upper,
        log_weights=lw,
        num_betas=num_betas,
        log_z_base=log_z_base,
        num_runs=R,
        ess=ess,
        seconds=seconds,
        info=info,
    )


def _validated_params(rbm) -> RBMParams:
    p = as_params(rbm)
    if p.batched:
        raise ValueError("AIS needs one set of biases, not per-chain (batched) biases")
    return p.validate()


def estimate_log_z(
    rbm,
    *,
    base_rate=None,
    data=None,
    num_runs: int = 100,
    betas=None,
    seed: int = 0,
    device=None,
    progress: bool = False,
) -> AISResult:
    """AIS estimate of log Z of ``rbm`` (an RBM or RBMParams); see the module docstring.

    Args:
        rbm: the target model ``B``.
        base_rate: visible "on" probabilities ``(n_visible,)`` for the base model ``A``.
        data: training data ``(N, n_visible)`` whose smoothed mean gives the base rate.
            S&M recommend it: a base model close to the data makes AIS much
            more accurate. Give at most one of ``base_rate`` and ``data``;
            with neither, ``b_A = 0``.
        num_runs: the number of independent AIS runs (S&M use 100).
        betas: a schedule that starts at exactly 0, ends at exactly 1 and increases
            strictly. Default :func:`default_betas`, with 14,501 values.
        seed: seeds the random draws.
        device: where to run. The default is the RBM's device. The computation
            uses the RBM's dtype, and the log-weights are float64.
        progress: show a tqdm bar.

    Returns:
        :class:`AISResult`.
    """
    t0 = time.perf_counter()
    p = _validated_params(rbm)
    if not isinstance(num_runs, int) or isinstance(num_runs, bool) or num_runs < 1:
        raise ValueError(f"num_runs must be a positive int, got {num_runs!r}")
    betas = default_betas() if betas is None else _check_betas(betas)
    dev = torch.device(device) if device is not None else p.device
    dt = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    b_A64 = base_rate_biases(p.n_visible, data=data, base_rate=base_rate)
    log_z_A = base_rate_log_z(b_A64, p.n_hidden)
    with torch.no_grad():
        W = p.W.to(device=dev, dtype=dt)
        if p.mask is not None:
            W = W * p.mask.to(device=dev, dtype=dt)
        log_w = _run_ais(
            W[None],
            p.b.to(device=dev, dtype=dt)[None],
            p.c.to(device=dev, dtype=dt)[None],
            b_A64.to(device=dev, dtype=dt),
            betas,
            num_runs,
            seed,
            progress,
        )[0]
    seconds = time.perf_counter() - t0
    info = {"seed": seed, "device": str(dev), "dtype": str(dt), "rng": "int32"}
    return _summarise(log_w, log_z_A, len(betas), seconds, info)


def exact_log_z(rbm, *, beta: float = 1.0, max_bits: int = DEFAULT_MAX_BITS) -> float:
    """Exact log Z by enumeration, using :func:`physamp.samplers.exact.exact_log_z`.

    Accepts an :class:`~physamp.RBM` or :class:`RBMParams`. The smaller layer must
    have at most ``max_bits`` units.
    """
    return _exact_log_z_params(_validated_params(rbm), beta=beta, max_bits=max_bits)


# ---------------------------------------------------------------------------------------------
# likelihoods
# ---------------------------------------------------------------------------------------------
def _log_z_value(log_z) -> tuple[float, float, float]:
    if isinstance(log_z, AISResult):
        return log_z.log_z, log_z.log_z_lower, log_z.log_z_upper
    if isinstance(log_z, torch.Tensor):
        if log_z.numel() != 1:
            raise ValueError("log_z must be a scalar or an AISResult")
        log_z = log_z.item()
    if not isinstance(log_z, (int, float)) or not math.isfinite(log_z):
        raise ValueError(f"log_z must be a finite number or an AISResult, got {log_z!r}")
    return float(log_z), float(log_z), float(log_z)


def _free_energy(p: RBMParams, v: torch.Tensor) -> torch.Tensor:
    """F(v) in float64 (masked weights zeroed), shape ``(N,)``."""
    W, b, c = (x.to(torch.float64) for x in (p.W, p.b, p.c))
    if p.mask is not None:
        W = W * p.mask.to(W.dtype)
    return free_energy(v.to(device=W.device, dtype=torch.float64), W, b, c)


def log_likelihood(rbm, data, log_z) -> torch.Tensor:
    """``log p(v) = -F(v) - log Z`` for each row of ``data``: float64, shape ``(N,)``.

    ``log_z`` is a float or an :class:`AISResult`, whose point estimate is used.
    """
    p = _validated_params(rbm)
    v = check_data(data, p.n_visible, binary=True)
    lz, _, _ = _log_z_value(log_z)
    with torch.no_grad():
        return -_free_energy(p, v) - lz


def test_nll(rbm, data, log_z, *, batch_size: int = 4096) -> NLLResult:
    """Mean test NLL in nats, with bounds from the log Z bounds (see :class:`NLLResult`)."""
    p = _validated_params(rbm)
    v = check_data(data, p.n_visible, binary=True)
    lz, lz_lo, lz_hi = _log_z_value(log_z)
    total = 0.0
    with torch.no_grad():
        for i in range(0, v.shape[0], batch_size):
            total += float(_free_energy(p, v[i : i + batch_size]).sum())
    mean_f = total / v.shape[0]
    return NLLResult(mean_f + lz, mean_f + lz_lo, mean_f + lz_hi, int(v.shape[0]))


test_nll.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite the name


# ---------------------------------------------------------------------------------------------
# expected NLL under parameter noise (thesis §3.4)
# ---------------------------------------------------------------------------------------------
def noisy_parameters(
    rbm, *, weight_noise: float = 0.0, bias_noise: float = 0.0, num_draws: int = 20, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``num_draws`` noisy copies ``W (D, nh, nv)``, ``b (D, nv)``, ``c (D, nh)`` in float64.

    Each draw is one noisy model: Gaussian noise with σ ``weight_noise`` on W and
    σ ``bias_noise`` on b and c, held fixed for that model (RBM space, as in the
    thesis §3.4). Weights that the mask removes stay zero. The draws come from a
    CPU ``torch.Generator`` seeded from ``seed``, in the order W, b, c, so they
    are reproducible on any device (the stream ``derive_seed(seed, "noise-draws")``).
    """
    p = _validated_params(rbm)
    for name, val in (("weight_noise", weight_noise), ("bias_noise", bias_noise)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val >= 0):
            raise ValueError(f"{name} must be a finite σ >= 0, got {val!r}")
    if not isinstance(num_draws, int) or isinstance(num_draws, bool) or num_draws < 1:
        raise ValueError(f"num_draws must be a positive int, got {num_draws!r}")
    g = torch.Generator().manual_seed(derive_seed(int(seed), "noise-draws"))
    D, nh, nv = num_draws, p.n_hidden, p.n_visible
    W0, b0, c0 = (x.detach().to("cpu", torch.float64) for x in (p.W, p.b, p.c))
    W = W0 + weight_noise * torch.randn(D, nh, nv, generator=g, dtype=torch.float64)
    b = b0 + bias_noise * torch.randn(D, nv, generator=g, dtype=torch.float64)
    c = c0 + bias_noise * torch.randn(D, nh, generator=g, dtype=torch.float64)
    if p.mask is not None:
        W = W * p.mask.to("cpu", torch.float64)
    return W.to(p.device), b.to(p.device), c.to(p.device)


def _batched_mean_free_energy(
    W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, v: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Mean over the data of F_d(v) for each draw ``d``, float64 ``(D,)``: one batched product per batch."""
    D = W.shape[0]
    W, b, c = (x.to(torch.float64) for x in (W, b, c))
    v = v.to(device=W.device, dtype=torch.float64)
    total = torch.zeros(D, dtype=torch.float64, device=W.device)
    step = max(1, min(batch_size, (1 << 23) // max(1, D * W.shape[1])))
    for i in range(0, v.shape[0], step):
        total += free_energy(v[i : i + step], W, b, c).sum(1)
    return total / v.shape[0]


def expected_nll_under_noise(
    rbm,
    data,
    *,
    weight_noise: float = 0.0,
    bias_noise: float = 0.0,
    num_draws: int = 20,
    seed: int = 0,
    log_z_method: str = "exact",
    ais_kwargs: dict[str, Any] | None = None,
    batch_size: int = 4096,
) -> NoisyNLLResult:
    """Expected test NLL when the parameters are noisy at sampling time (thesis §3.4).

    ``E_noise[NLL(θ + ε)]`` is estimated as a Monte Carlo average over
    ``num_draws`` noisy models from :func:`noisy_parameters` (same ``seed``, same
    draws). Each draw's NLL is ``mean_v F_d(v) + log Z_d``. Both terms are batched
    over the draws:

    * data term: one batched product ``(D, n, nh)`` per data batch;
    * ``log_z_method="exact"``: batched enumeration of the smaller layer of all draws;
    * ``log_z_method="ais"``: a single AIS run on a batch of ``num_draws`` models, with
      ``num_runs`` chains each, through ``baddbmm``. ``ais_kwargs`` takes
      ``num_runs``, ``betas``, ``data`` or ``base_rate``, ``progress`` and
      ``device``. The base-rate model is shared by all draws; it defaults to the
      base rate of ``data``.

    With zero noise, every draw is the model itself.
    """
    if log_z_method not in ("exact", "ais"):
        raise ValueError(f"log_z_method must be 'exact' or 'ais', got {log_z_method!r}")
    p = _validated_params(rbm)
    v = check_data(data, p.n_visible, binary=True)
    W, b, c = noisy_parameters(
        p, weight_noise=weight_noise, bias_noise=bias_noise, num_draws=num_draws, seed=seed
    )
    ais_results = None
    with torch.no_grad():
        mean_f = _batched_mean_free_energy(W, b, c, v, batch_size)
        if log_z_method == "exact":
            max_bits = int((ais_kwargs or {}).get("max_bits", DEFAULT_MAX_BITS))
            log_z = log_partition(W, b, c, max_bits=max_bits)
        else:
            kw = dict(ais_kwargs or {})
            unknown = set(kw) - {"num_runs", "betas", "data", "base_rate", "progress", "device"}
            if unknown:
                raise ValueError(f"unknown ais_kwargs {sorted(unknown)}")
            num_runs = int(kw.get("num_runs", 100))
            if num_runs < 1:
                raise ValueError(f"num_runs must be a positive int, got {num_runs!r}")
            betas = default_betas() if kw.get("betas") is None else _check_betas(kw["betas"])
            base_data = kw.get("data", None if "base_rate" in kw else v)
            b_A64 = base_rate_biases(p.n_visible, data=base_data, base_rate=kw.get("base_rate"))
            log_z_A = base_rate_log_z(b_A64, p.n_hidden)
            dev = torch.device(kw["device"]) if kw.get("device") is not None else p.device
            dt = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
            t0 = time.perf_counter()
            log_w = _run_ais(
                W.to(dev, dt),
                b.to(dev, dt),
                c.to(dev, dt),
                b_A64.to(dev, dt),
                betas,
                num_runs,
                seed,
                bool(kw.get("progress", False)),
                desc=f"AIS x{num_draws} draws",
            )
            sec = time.perf_counter() - t0
            info = {"seed": seed, "device": str(dev), "dtype": str(dt), "batched_draws": num_draws}
            ais_results = [_summarise(lw, log_z_A, len(betas), sec, info) for lw in log_w]
            log_z = torch.tensor([r.log_z for r in ais_results], dtype=torch.float64)
    nll = (mean_f.cpu() + log_z.cpu()).to(torch.float64)
    std = float(nll.std(correction=1)) if num_draws > 1 else 0.0
    return NoisyNLLResult(
        mean=float(nll.mean()),
        std=std,
        nll_per_draw=nll,
        log_z_per_draw=log_z.cpu(),
        num_draws=num_draws,
        log_z_method=log_z_method,
        ais=ais_results,
    )
