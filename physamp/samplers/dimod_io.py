"""What every physamp backend built on a dimod sampler shares (``dimod``, ``dwave``, ``neal``).

- :func:`check_sample_kwargs`: keyword arguments for ``sampler.sample`` must be
  among the sampler's ``parameters`` and not among those the backend sets itself.
- :func:`call_seed`: the per-call seed a backend passes to a sampler that takes one.
- :func:`sampleset_columns`, :func:`sampleset_to_array`, :func:`sampleset_to_units`:
  a ``SampleSet``'s columns in *our* order (dimod orders them by
  ``sampleset.variables``, never promising the order the BQM was built with), as
  raw values or as {0, 1} units, one row per read.
- :func:`split_units`: ``(N, n_visible + n_hidden)`` units into the ``(v, h)`` tensors
  a backend's ``_sample`` returns.
- :func:`resolve_labels` (from :mod:`physamp.ising`, its one home): the BQM variable
  of each unit, from a label sequence, a topology or the defaults.
- :func:`optimiser_reason`: why a dimod sampler returns (local) minima instead of
  Boltzmann samples by construction (None when it does not).
- :func:`flip_energies`, :func:`estimate_beta`, :func:`collapse_warning`: what a sample
  set says about the temperature it was drawn at (maximum pseudo-likelihood), and a
  warning when it has collapsed to a handful of minima. :func:`fit_beta` (and
  :func:`fit_beta_sampleset`) give the estimate with its standard error over reads, a
  confidence interval and, on request, a bootstrap over reads (:class:`BetaFit`).

dimod itself is imported only inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from physamp.ising import resolve_labels
from physamp.samplers.base import Sampler, UnknownOptionError

__all__ = [
    "check_structured",
    "check_sample_kwargs",
    "call_seed",
    "sampleset_columns",
    "sampleset_to_array",
    "sampleset_to_units",
    "split_units",
    "resolve_labels",
    "NotBoltzmannWarning",
    "warn_not_boltzmann",
    "optimiser_reason",
    "flip_energies",
    "estimate_beta",
    "BetaFit",
    "fit_beta",
    "fit_beta_sampleset",
    "collapse_warning",
]


STRUCTURED = ("sample", "nodelist", "edgelist", "properties", "parameters")


def check_structured(sampler, what: str, hint: str) -> None:
    """Raise ``TypeError`` unless ``sampler`` is a structured dimod sampler (a graph to place on).

    ``what`` names the argument in the message; ``hint`` says how to fix it.
    """
    for attr in STRUCTURED:
        if not hasattr(sampler, attr):
            raise TypeError(
                f"{what} must be a structured dimod sampler (with .{attr}); got "
                f"{type(sampler).__name__}. {hint}"
            )


def check_sample_kwargs(
    sampler,
    kwargs: Mapping[str, Any],
    managed: Sequence[str],
    who: str,
    why: str = "; do not pass them",
) -> None:
    """Raise unless every key of ``kwargs`` is a parameter of ``sampler`` that the backend
    ``who`` leaves to the user.

    Raises:
        ValueError: a key is in ``managed`` (set by the backend itself; ``why`` says how).
        UnknownOptionError: a key is not in ``sampler.parameters`` (the message lists
            the valid ones).
    """
    taken = sorted(set(kwargs) & set(managed))
    if taken:
        raise ValueError(f"{who} sets {taken} itself{why}")
    unknown = sorted(set(kwargs) - set(sampler.parameters))
    if unknown:
        valid = ", ".join(sorted(set(sampler.parameters) - set(managed))) or "(none)"
        raise UnknownOptionError(
            f"{type(sampler).__name__} has no parameter(s) {unknown}; its parameters are: {valid}"
        )


def call_seed(backend: Sampler, sampler) -> dict[str, int]:
    """``{"seed": backend.numpy_seed()}`` when ``backend`` is seeded and ``sampler`` has a
    ``seed`` parameter, else ``{}``: one fresh, reproducible seed per call."""
    if backend.seed is not None and "seed" in sampler.parameters:
        return {"seed": backend.numpy_seed()}
    return {}


def sampleset_columns(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """Column index in ``sampleset.record.sample`` of each of ``labels``.

    Raises:
        ValueError: a label is not a variable of the sampleset.
    """
    variables = sampleset.variables
    missing = [lab for lab in labels if lab not in variables]
    if missing:
        raise ValueError(
            f"the sampleset has no variable(s) {missing[:10]}; it holds {len(variables)} variables"
        )
    return np.fromiter((variables.index(lab) for lab in labels), dtype=np.int64, count=len(labels))


def sampleset_to_array(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """The raw values of ``sampleset`` (one row per record row, ``num_occurrences`` not
    expanded, vartype kept), columns in ``labels`` order.

    The record itself is returned, not copied, when its columns are already in order.
    """
    labels = list(labels)
    record = sampleset.record.sample
    variables = sampleset.variables
    if len(variables) == len(labels) and all(a == b for a, b in zip(variables, labels, strict=True)):
        return record
    return record[:, sampleset_columns(sampleset, labels)]


def sampleset_to_units(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """``(N, len(labels))`` {0,1} float64 rows of ``sampleset``, columns in ``labels`` order.

    Columns are looked up in ``sampleset.variables`` (never assumed to be in the
    order the BQM was built with); rows are repeated by ``num_occurrences`` so an
    aggregated (histogram) answer gives one row per read. SPIN values ``s`` become
    ``(s + 1) / 2``; BINARY values are kept.
    """
    import dimod

    cols = sampleset_columns(sampleset, list(labels))
    record = sampleset.record
    x = np.asarray(record.sample)[:, cols].astype(np.float64)
    occ = np.asarray(record.num_occurrences)
    if (occ != 1).any():
        x = np.repeat(x, occ, axis=0)
    if sampleset.vartype is dimod.SPIN:
        x = (x + 1.0) / 2.0
    return x


def split_units(x: np.ndarray, n_visible: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, n_visible + n_hidden)`` units (visible first) as contiguous ``(v, h)`` tensors."""
    return (
        torch.from_numpy(np.ascontiguousarray(x[:, :n_visible])),
        torch.from_numpy(np.ascontiguousarray(x[:, n_visible:])),
    )


# --- samplers that are optimisers, and samples that look like an optimiser's ---------------
class NotBoltzmannWarning(UserWarning):
    """The wrapped sampler, or the samples it returned, are not Boltzmann samples."""


def warn_not_boltzmann(message: str) -> None:
    """``warnings.warn(message, NotBoltzmannWarning)`` attributed to the first caller outside
    physamp's sampler layer (the user's line, whether it built the backend directly or through
    ``make_sampler``, or called ``sample``)."""
    import os
    import sys
    import types
    import warnings

    here = os.path.dirname(os.path.abspath(__file__))
    level = 1
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, NotBoltzmannWarning, stacklevel=level + 1)


# dimod / dwave-samplers classes that return (local) minima whatever they are given
_OPTIMISERS = {
    "SteepestDescentSampler": "a greedy descent to the nearest local minimum",
    "SteepestDescentSolver": "a greedy descent to the nearest local minimum",
    "SteepestDescentComposite": "a greedy descent to the nearest local minimum",
    "TabuSampler": "a tabu search for ground states",
    "TreeDecompositionSampler": "an exact ground-state solver",
    "TreeDecompositionSolver": "an exact ground-state solver",
    "PlanarGraphSolver": "an exact ground-state solver",
    "ExactSolver": "an exact solver listing every state",
}
_SA_FIX = (
    "pass beta_schedule_type='custom', beta_schedule=[1.0] * num_sweeps, "
    "proposal_acceptance_criteria='Gibbs', randomize_order=True (or use the 'neal' backend, SA at "
    "a fixed beta)"
)


def optimiser_reason(sampler, kwargs: Mapping[str, Any] | None = None) -> str | None:
    """Why ``sampler`` (called with ``kwargs``) returns ground states or local minima rather than
    Boltzmann samples by construction, as a sentence naming the fix; None when it does not.

    Recognised: greedy / tabu / exact solvers of dimod and dwave-samplers;
    ``SimulatedAnnealingSampler`` with its default schedule (a geometric anneal over a
    β range chosen from the problem to end in its ground states); a
    ``MockDWaveSampler`` whose substitute is one of these (its default substitute is
    ``SteepestDescentSampler``); any composite around one of these.
    """
    kwargs = dict(kwargs or {})
    names = [c.__name__ for c in type(sampler).__mro__]
    name = type(sampler).__name__
    for cls_name in names:
        if cls_name in _OPTIMISERS:
            return f"{name} is {_OPTIMISERS[cls_name]}, not a Boltzmann sampler"
    if "SimulatedAnnealingSampler" in names and type(sampler).__module__.split(".")[0] in ("dwave", "neal"):
        if kwargs.get("beta_schedule_type", "geometric") != "custom" and kwargs.get("beta_range") is None:
            return (
                f"{name} with its default schedule anneals over a beta range chosen to end in the "
                f"problem's ground states: it is an optimiser, not a Boltzmann sampler; {_SA_FIX}"
            )
        return None
    if hasattr(sampler, "substitute_sampler"):  # MockDWaveSampler
        sub = sampler.substitute_sampler
        why = optimiser_reason(sub, {**kwargs, **dict(getattr(sampler, "substitute_kwargs", None) or {})})
        if why is not None:
            return (
                f"{name} stands in for the QPU with its substitute sampler, and {why}. Give it a "
                "Boltzmann substitute: MockDWaveSampler(..., substitute_sampler=SimulatedAnnealingSampler(), "
                "substitute_kwargs=dict(beta_schedule_type='custom', beta_schedule=[1.0] * 100, "
                "proposal_acceptance_criteria='Gibbs', randomize_order=True))"
            )
        return None
    children = getattr(sampler, "children", None)
    if children:
        try:
            child = children[0]
        except Exception:  # an odd composite: nothing to say
            return None
        if child is not sampler:
            why = optimiser_reason(child, kwargs)
            if why is not None:
                return f"{name} wraps a sampler that is not a Boltzmann sampler: {why}"
    return None


def flip_energies(bqm, spins: np.ndarray, labels: Sequence[Hashable]) -> np.ndarray:
    """``(N, n)`` energy change of flipping each spin of each sample: ``E(s with s_i flipped) - E(s)``.

    ``spins`` holds ±1 values, one row per sample, columns in ``labels`` order (the BQM's
    SPIN variables). Negative entries are local excitations (a flip would lower the energy).
    """
    import dimod
    import scipy.sparse as sp

    if bqm.vartype is not dimod.SPIN:
        bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
    labels = list(labels)
    h, (row, col, q), _ = bqm.to_numpy_vectors(variable_order=labels)
    n = len(labels)
    J = sp.coo_matrix((q, (row, col)), shape=(n, n)).tocsr()
    s = np.asarray(spins, dtype=np.float64)
    field = s @ (J + J.T).toarray() if n <= 256 else np.asarray((J + J.T) @ s.T).T
    field = field + h[None, :]
    return -2.0 * s * field


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def _solve_beta(vals: np.ndarray, wts: np.ndarray) -> tuple[float | None, str | None]:
    """The root of ``g(β) = Σ_k wts_k vals_k σ(-β vals_k)`` over distinct nonzero flip energies
    ``vals`` with total weights ``wts``: :func:`estimate_beta`'s ``(beta, reason)``."""
    from scipy.optimize import brentq

    keep = wts > 0
    vals, wts = vals[keep], wts[keep]
    if not (vals < 0).any():
        return math.inf, (
            "no sample has a local excitation (every sample is a local minimum: no single-spin flip "
            "lowers its energy), so the maximum-pseudo-likelihood beta_eff is infinite: the sampler "
            "behaves as an optimiser, or the device is far colder than the problem's energy scale"
        )
    if not (vals > 0).any():
        return None, (
            "every local excitation goes one way (no sample is below any of its single-spin flips: "
            "each is a local maximum), so the samples fit no positive temperature"
        )

    def g(beta: float) -> float:
        return float(np.dot(wts * vals, _expit(-beta * vals)))

    g0 = g(0.0)
    if g0 == 0.0:
        return 0.0, None
    # g decreases in beta from sum(d > 0) > 0 to sum(d < 0) < 0: bracket its one root
    step = (1.0 if g0 > 0 else -1.0) / float(np.median(np.abs(vals)))
    a, b = 0.0, step
    gb = g(b)
    while (gb > 0) == (g0 > 0) and gb != 0.0:
        a, b = b, 4.0 * b
        gb = g(b)
    if gb == 0.0:
        return float(b), None
    lo, hi = min(a, b), max(a, b)
    try:
        return float(brentq(g, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)), None
    except (RuntimeError, ValueError) as err:  # no convergence: say so rather than fail the call
        return None, f"the pseudo-likelihood maximisation did not converge in [{lo:.3g}, {hi:.3g}] ({err})"


def _prepare(flips, weights) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``(d, w, reason)``: the flip energies as float64 ``(N, n)``, the read weights ``(N,)``, and
    a sentence when they hold nothing to estimate from (None when they do)."""
    d = np.asarray(flips, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        return d, np.ones(0), "there are no samples (or no variables) to estimate the temperature from"
    w = np.ones(d.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (d.shape[0],) or not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(
            f"weights must hold one finite, non-negative number per sample ({d.shape[0]}); got shape "
            f"{w.shape}. Pass num_occurrences (or None for one read per row)"
        )
    if not w.sum() > 0:
        return d, w, "every sample has weight zero (num_occurrences all 0): nothing to estimate from"
    if not np.isfinite(d).all():
        return d, w, "the programmed problem has non-finite energies, so no temperature can be estimated"
    if not (d != 0).any():
        why = (
            "every spin's flip energy is zero in every sample (the programmed problem has no bias or "
            "coupling acting, e.g. an RBM whose parameters are all zero), so the samples carry no "
            "information about the effective temperature"
        )
        return d, w, why
    return d, w, None


def estimate_beta(flips: np.ndarray, weights: np.ndarray | None = None) -> tuple[float | None, str | None]:
    """Maximum pseudo-likelihood inverse temperature of samples with flip energies ``flips``.

    The pseudo-likelihood ``Π_s Π_i σ(β ΔE_i(s))`` is log-concave in β, so its maximiser is
    the one root of ``g(β) = Σ ΔE σ(-β ΔE)``, found by bracketing and Brent's method (no
    Newton step that can run away). Returns ``(beta, reason)``:

    - ``(β, None)``: a finite estimate (β <= 0 when the samples favour low energies no
      more than uniform random states do);
    - ``(inf, sentence)``: no sample has a local excitation: every sample is a local
      minimum, so the estimate diverges;
    - ``(None, sentence)``: every flip energy is zero (the problem is zero where it was
      sampled): the samples say nothing about β.

    ``weights``: one per sample (``num_occurrences``); default 1. :func:`fit_beta` gives the
    same estimate with its standard error and confidence interval.
    """
    d, w, why = _prepare(flips, weights)
    if why is not None:
        return None, why
    d_flat = d.ravel()
    w_flat = np.repeat(w, d.shape[1])
    nz = d_flat != 0
    vals, inverse = np.unique(d_flat[nz], return_inverse=True)
    return _solve_beta(vals, np.bincount(inverse, weights=w_flat[nz], minlength=vals.size))


@dataclass(frozen=True)
class BetaFit:
    """A maximum-pseudo-likelihood β with its uncertainty (:func:`fit_beta`).

    - ``beta``: the estimate; None when there is none, ``reason`` saying why (an infinite
      estimate, every read a local minimum, is None with ``infinite=True``: a warning, not a
      number).
    - ``std``: the standard error over *reads*: reads are independent, the spins of one read
      are not, so the variance is the sandwich ``Σ_r w_r u_r² / (Σ_r w_r H_r)²`` of the per-read
      scores ``u_r = Σ_i ΔE_ri σ(-β ΔE_ri)`` and curvatures ``H_r = Σ_i ΔE_ri² σ(β ΔE_ri)
      σ(-β ΔE_ri)`` at the estimate (times ``N / (N - 1)``), the delta method applied to the
      estimating equation. It holds whether or not the samples are Boltzmann.
    - ``ci``: the ``confidence`` interval ``beta ± z · std`` (normal quantile ``z``).
    - ``naive_std``: ``1 / sqrt(Σ H)``, what treating every spin of every read as an independent
      observation gives (the pseudo-likelihood is not a likelihood: it is too small where
      spins are correlated); kept for comparison.
    - ``bootstrap_std``, ``bootstrap_ci``: from ``num_bootstrap`` resamplings of the reads
      (percentile interval); None unless asked for. ``bootstrap_infinite``: how many of them
      had no local excitation (their estimate is infinite, and so is ``bootstrap_std``).
    - ``num_reads`` (total weight), ``num_spins``.
    """

    beta: float | None
    std: float | None = None
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    naive_std: float | None = None
    bootstrap_std: float | None = None
    bootstrap_ci: tuple[float, float] | None = None
    bootstrap_infinite: int = 0
    num_reads: float = 0.0
    num_spins: int = 0
    infinite: bool = False
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether there is a finite estimate."""
        return self.beta is not None

    @property
    def relative_std(self) -> float | None:
        """``std / |beta|`` (None without both)."""
        if self.beta is None or self.std is None or self.beta == 0:
            return None
        return self.std / abs(self.beta)

    def __str__(self) -> str:
        if self.beta is None:
            return f"beta: none ({self.reason})"
        text = f"beta = {self.beta:.4g}"
        if self.std is not None:
            assert self.ci is not None  # set with std
            lo, hi = self.ci
            text += f" ± {self.std:.2g} ({100 * self.confidence:g} % CI [{lo:.4g}, {hi:.4g}])"
        if self.bootstrap_std is not None:
            text += f"; bootstrap std {self.bootstrap_std:.2g}"
        return text + f"; {self.num_reads:g} reads of {self.num_spins} spins"


def _check_fit_options(confidence, num_bootstrap) -> tuple[float, int]:
    import numbers

    # (typeshed's numbers.Real declares no comparison with an int)
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:  # type: ignore[operator]
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}")
    if (
        isinstance(num_bootstrap, bool)
        or not isinstance(num_bootstrap, numbers.Integral)
        or num_bootstrap < 0
        or num_bootstrap == 1
    ):
        raise ValueError(
            f"num_bootstrap must be 0 (none) or an integer >= 2, e.g. 200; got {num_bootstrap!r}"
        )
    return float(confidence), int(num_bootstrap)


def fit_beta(
    flips: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    num_bootstrap: int = 0,
    seed: int | None = None,
) -> BetaFit:
    """:func:`estimate_beta` with its uncertainty over reads: a :class:`BetaFit`.

    ``flips``: ``(N, n)`` flip energies, one row per read (or per distinct state, with its
    ``num_occurrences`` as ``weights``). The standard error is the per-read sandwich (closed
    form, one pass over the flips); ``num_bootstrap`` resamplings of the reads (multinomial
    counts, so aggregated rows resample as the reads they stand for; ``seed`` fixes them)
    check it. Never raises on the samples themselves: an estimate that does not exist is
    ``beta=None`` with the reason.
    """
    from statistics import NormalDist

    confidence, num_bootstrap = _check_fit_options(confidence, num_bootstrap)
    d, w, why = _prepare(flips, weights)
    n_reads = float(w.sum()) if w.size else 0.0
    n_spins = int(d.shape[1]) if d.ndim == 2 else 0
    common: dict[str, Any] = dict(confidence=confidence, num_reads=n_reads, num_spins=n_spins)
    if why is not None:
        return BetaFit(None, reason=why, **common)
    nz = d != 0
    rows, cols = np.nonzero(nz)
    vals, inverse = np.unique(d[rows, cols], return_inverse=True)
    beta, why = _solve_beta(vals, np.bincount(inverse, weights=w[rows], minlength=vals.size))
    if beta is None or math.isinf(beta):
        return BetaFit(None, infinite=beta is not None, reason=why, **common)
    s = _expit(-beta * d)
    score = (d * s).sum(axis=1)
    curv = (d * d * s * (1.0 - s)).sum(axis=1)
    info = float(w @ curv)
    std = naive = ci = None
    if info > 0:
        naive = 1.0 / math.sqrt(info)
        if n_reads > 1:
            meat = float(w @ (score * score)) * n_reads / (n_reads - 1.0)
            std = math.sqrt(meat) / info
            z = NormalDist().inv_cdf(0.5 + confidence / 2)
            ci = (beta - z * std, beta + z * std)
    boot_std = boot_ci = None
    boot_inf = 0
    if num_bootstrap:
        import scipy.sparse as sp

        # (distinct value x read) occurrence counts: a replicate's value weights are one product
        by_value = sp.csr_matrix((np.ones(rows.size), (inverse, rows)), shape=(vals.size, d.shape[0]))
        rng = np.random.default_rng(seed)
        total = max(1, int(round(n_reads)))
        reps = np.empty(num_bootstrap)
        for k in range(num_bootstrap):
            draw = rng.multinomial(total, w / w.sum()).astype(np.float64)
            b, _ = _solve_beta(vals, by_value @ draw)
            reps[k] = math.nan if b is None else b
        boot_inf = int(np.isinf(reps).sum())
        finite = reps[np.isfinite(reps)]
        if boot_inf:
            boot_std = math.inf
        elif finite.size > 1:
            boot_std = float(finite.std(ddof=1))
        defined = reps[~np.isnan(reps)]
        if defined.size > 1:
            a = (1.0 - confidence) / 2
            # no interpolation towards an infinity
            method: Literal["nearest", "linear"] = "nearest" if boot_inf else "linear"
            lo, hi = np.quantile(defined, [a, 1.0 - a], method=method)
            boot_ci = (float(lo), float(hi))
    return BetaFit(
        beta,
        std=std,
        ci=ci,
        naive_std=naive,
        bootstrap_std=boot_std,
        bootstrap_ci=boot_ci,
        bootstrap_infinite=boot_inf,
        **common,
    )


def fit_beta_sampleset(bqm, sampleset, **options: Any) -> BetaFit:
    """:func:`fit_beta` of a dimod ``sampleset`` drawn from ``bqm`` (SPIN or BINARY, any column
    order; ``num_occurrences`` as weights); ``options`` go to :func:`fit_beta`."""
    import dimod

    labels = list(bqm.variables)
    x = sampleset_to_array(sampleset, labels).astype(np.float64)
    if sampleset.vartype is dimod.BINARY:
        x = 2.0 * x - 1.0
    return fit_beta(flip_energies(bqm, x, labels), sampleset.record.num_occurrences, **options)


HANDFUL = 5  # "a handful of distinct states"


def collapse_warning(
    states: np.ndarray, flips: np.ndarray, beta: float, weights: np.ndarray | None = None
) -> str | None:
    """A warning sentence when the samples collapsed to a handful of local minima that a
    Boltzmann sampler at inverse temperature ``beta`` would not give; None otherwise.

    Under ``p ∝ exp(-β E)`` the spin ``i`` sits in its higher-energy orientation with
    probability ``σ(-β |ΔE_i|)`` given the others, so the expected number of local
    excitations is ``Σ σ(-β |ΔE|)`` over the samples and spins. The warning is given when
    the samples hold at most :data:`HANDFUL` distinct states *and* show fewer than a quarter
    of the excitations this predicts (at least 20 expected): a low-entropy model that really
    has a handful of likely states is not flagged.
    """
    x = np.asarray(states)
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    n = float(w.sum())
    if x.shape[0] == 0 or n < 2 * HANDFUL:
        return None
    distinct = np.unique(x, axis=0).shape[0]
    if distinct > HANDFUL:
        return None
    d = np.asarray(flips, dtype=np.float64)
    nz = d != 0
    expected = float((w[:, None] * np.where(nz, _expit(-beta * np.abs(d)), 0.0)).sum())
    observed = float((w[:, None] * (d < 0)).sum())
    if expected < 20 or observed >= expected / 4:
        return None
    return (
        f"the {int(n)} samples hold only {distinct} distinct state(s) with {observed:.0f} local "
        f"excitation(s), where a Boltzmann sampler at beta = {beta:.4g} would show about {expected:.0f}: "
        "these look like an optimiser's minima, not Boltzmann samples. Check that the sampler runs at a "
        "fixed temperature (for simulated annealing: a constant custom beta_schedule with Gibbs "
        "acceptance) and that the problem's scale matches it"
    )
