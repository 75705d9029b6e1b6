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
  warning when it has collapsed to a handful of minima.

dimod itself is imported only inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

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
    import warnings

    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
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

    ``weights``: one per sample (``num_occurrences``); default 1.
    """
    from scipy.optimize import brentq

    d = np.asarray(flips, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        return None, "there are no samples (or no variables) to estimate the temperature from"
    w = np.ones(d.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    d_flat = d.ravel()
    w_flat = np.repeat(w, d.shape[1])
    nz = d_flat != 0
    if not np.isfinite(d_flat).all():
        return None, "the programmed problem has non-finite energies, so no temperature can be estimated"
    if not nz.any():
        return None, (
            "every spin's flip energy is zero in every sample (the programmed problem has no bias or "
            "coupling acting, e.g. an RBM whose parameters are all zero), so the samples carry no "
            "information about the effective temperature"
        )
    vals, inverse = np.unique(d_flat[nz], return_inverse=True)
    wts = np.bincount(inverse, weights=w_flat[nz])
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
