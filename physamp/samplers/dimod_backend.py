"""Any dimod sampler as a physamp backend.

The RBM is written as a SPIN BQM by Eq. 3.1 (:func:`physamp.ising.rbm_to_bqm`),
handed to the wrapped sampler, and the returned ``SampleSet`` is read back into
``(v, h)`` -- permuting its columns by ``sampleset.variables`` (dimod never
promises the order you gave it) and mapping spins ``s`` to ``x = (s + 1) / 2``::

    from dwave.samplers import SimulatedAnnealingSampler
    from physamp.samplers.dimod_backend import DimodBackend

    sa = SimulatedAnnealingSampler()
    backend = DimodBackend(sa, seed=0, beta_schedule_type="custom", beta_schedule=[1.0] * 1000,
                           proposal_acceptance_criteria="Gibbs", randomize_order=True)
    samples = backend.sample(rbm, num_samples=1000)     # p ∝ exp(-E) (SA held at β = 1)

The backend samples whatever distribution the wrapped sampler draws from the
BQM: a fixed-β annealer is a Boltzmann sampler, a default (optimising) annealer
is not. ``beta`` multiplies the BQM before it is handed over, so a sampler that
draws ``p ∝ exp(-E_bqm)`` samples the RBM at inverse temperature ``beta``.

Batched biases (one bias vector per sample, ``b: (N, n_visible)``) mean a
different BQM for every sample: the backend then makes ``N`` calls with
``num_reads=1``. That is correct but slow (one Python round trip per sample).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from physamp.ising import IsingRBM, default_labels, ising_to_bqm, rbm_to_ising
from physamp.energy import RBMParams
from physamp.samplers.base import Chains, Sampler, UnknownOptionError

__all__ = ["DimodBackend", "sampleset_to_units", "topology_labels"]


def topology_labels(labels, n_visible: int, n_hidden: int) -> list[Hashable]:
    """BQM variable of each unit, visible first: ``labels`` (a sequence or a topology
    with ``.visible`` / ``.hidden``) or the default ``0 .. n_visible + n_hidden - 1``."""
    if labels is None:
        return default_labels(n_visible, n_hidden)
    if hasattr(labels, "visible") and hasattr(labels, "hidden"):
        labels = list(labels.visible) + list(labels.hidden)
    labels = list(labels)
    if len(labels) != n_visible + n_hidden:
        raise ValueError(
            f"got {len(labels)} labels for an RBM with {n_visible} visible + {n_hidden} hidden "
            "units; the labels (or topology) must name one variable per unit"
        )
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct: two units cannot share a variable/qubit")
    return labels


def sampleset_to_units(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """``(N, len(labels))`` {0,1} float64 rows of ``sampleset``, columns in ``labels`` order.

    Columns are looked up in ``sampleset.variables`` (never assumed to be in the
    order the BQM was built with); rows are repeated by ``num_occurrences`` so an
    aggregated (histogram) answer gives one row per read. SPIN values ``s`` become
    ``(s + 1) / 2``; BINARY values are kept.
    """
    import dimod

    variables = sampleset.variables
    missing = [lab for lab in labels if lab not in variables]
    if missing:
        raise ValueError(
            f"the sampleset has no variable(s) {missing[:10]}; it holds {len(variables)} variables"
        )
    cols = np.fromiter((variables.index(lab) for lab in labels), dtype=np.int64, count=len(labels))
    record = sampleset.record
    x = np.asarray(record.sample)[:, cols].astype(np.float64)
    occ = np.asarray(record.num_occurrences)
    if (occ != 1).any():
        x = np.repeat(x, occ, axis=0)
    if sampleset.vartype is dimod.SPIN:
        x = (x + 1.0) / 2.0
    return x


def _check_kwargs(sampler, kwargs: dict[str, Any], managed: Sequence[str], who: str) -> None:
    """Raise if ``kwargs`` names a parameter ``sampler`` lacks, or one the backend sets itself."""
    taken = sorted(set(kwargs) & set(managed))
    if taken:
        raise ValueError(f"{who} sets {taken} itself; do not pass them")
    unknown = sorted(set(kwargs) - set(sampler.parameters))
    if unknown:
        valid = ", ".join(sorted(set(sampler.parameters) - set(managed))) or "(none)"
        raise UnknownOptionError(
            f"{type(sampler).__name__} has no parameter(s) {unknown}; its parameters are: {valid}"
        )


class DimodBackend(Sampler):
    """Wrap any dimod sampler (``sampler.sample(bqm, **kwargs) -> SampleSet``).

    Args:
        sampler: a dimod sampler; it must accept ``num_reads`` (one row per read).
        labels: BQM variable of each unit (visible first), or a topology with
            ``.visible`` / ``.hidden``; default: visible ``i`` → ``i``, hidden ``j`` →
            ``n_visible + j``.
        beta: the BQM handed over is ``beta · E`` (Eq. 3.1 energy), so a sampler of
            ``exp(-E_bqm)`` samples the RBM at inverse temperature ``beta``.
        seed: when the sampler has a ``seed`` parameter, each call passes a seed drawn
            from this backend's generator (reproducible, different per call).
        **sample_kwargs: passed to every ``sampler.sample`` call; each must be in
            ``sampler.parameters``. Per-call overrides of them go to ``sample(...)``.

    ``info`` holds ``sampler`` (class name), ``beta``, ``num_calls``, ``energy``
    (float64 numpy ``(N,)``, the BQM energies, i.e. ``beta · E(v, h)``) and
    ``sampleset_info`` (the last call's ``sampleset.info``, e.g. timing).
    The wrapped sampler's own state is not continued: ``initial`` is ignored.
    """

    name = "dimod"
    uses_chains = False
    _MANAGED = ("num_reads", "seed")

    def __init__(
        self,
        sampler,
        labels=None,
        beta: float = 1.0,
        seed: int | None = None,
        **sample_kwargs: Any,
    ) -> None:
        super().__init__(seed=seed)
        if not (hasattr(sampler, "sample") and hasattr(sampler, "parameters")):
            raise TypeError(f"sampler must be a dimod sampler, got {type(sampler).__name__}")
        if "num_reads" not in sampler.parameters:
            raise ValueError(
                f"{type(sampler).__name__} has no 'num_reads' parameter, so it cannot be asked for "
                "a number of samples (ExactSolver, for instance, lists every state once). Use a "
                "sampler that draws reads: SimulatedAnnealingSampler at a fixed beta, "
                "RandomSampler, MockDWaveSampler, DWaveSampler (or the 'dwave' backend)."
            )
        _check_kwargs(sampler, sample_kwargs, self._MANAGED, "DimodBackend")
        if not np.isfinite(beta) or beta <= 0:
            raise ValueError(f"beta must be a positive finite number, got {beta!r}")
        if seed is not None and "seed" not in sampler.parameters:
            warnings.warn(
                f"{type(sampler).__name__} has no 'seed' parameter: its samples are not "
                "reproducible from the backend's seed",
                stacklevel=2,
            )
        self.sampler = sampler
        self.labels = labels
        self.beta = float(beta)
        self.sample_kwargs = dict(sample_kwargs)
        # per-call overrides: the wrapped sampler's parameters (less those set here)
        self.parameters = {
            k: "parameter of the wrapped dimod sampler" for k in sampler.parameters if k not in self._MANAGED
        }

    def _repr_options(self) -> dict[str, Any]:
        return {"sampler": type(self.sampler).__name__, "beta": self.beta, **self.sample_kwargs}

    @property
    def properties(self) -> dict[str, Any]:
        return {**super().properties, "sampler": type(self.sampler).__name__, "beta": self.beta}

    def _bqms(self, params: RBMParams, labels: list) -> list:
        ising = rbm_to_ising(params)
        if not params.batched:
            bqm = ising_to_bqm(ising, labels)
            if self.beta != 1.0:
                bqm.scale(self.beta)
            return [bqm]
        n = params.batch_size
        h_v = np.broadcast_to(ising.h_visible, (n, params.n_visible))
        h_h = np.broadcast_to(ising.h_hidden, (n, params.n_hidden))
        offset = np.broadcast_to(ising.offset, (n,))
        out = []
        for i in range(n):
            bqm = ising_to_bqm(IsingRBM(h_v[i], h_h[i], ising.J, offset[i], ising.mask), labels)
            if self.beta != 1.0:
                bqm.scale(self.beta)
            out.append(bqm)
        return out

    def _sample(
        self, params: RBMParams, num_samples: int, initial: Chains | None, **overrides: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        labels = topology_labels(self.labels, params.n_visible, params.n_hidden)
        kwargs = {**self.sample_kwargs, **overrides}
        bqms = self._bqms(params, labels)
        reads = num_samples if len(bqms) == 1 else 1  # batched biases: one read per BQM
        rows, energies, ss_info = [], [], {}
        for bqm in bqms:
            call = dict(kwargs, num_reads=reads)
            if self.seed is not None and "seed" in self.sampler.parameters:
                call["seed"] = self.numpy_seed()
            ss = self.sampler.sample(bqm, **call)
            x = sampleset_to_units(ss, labels)
            if x.shape[0] < reads:
                raise RuntimeError(
                    f"{type(self.sampler).__name__} returned {x.shape[0]} reads for num_reads={reads}"
                )
            rows.append(x[:reads])
            energies.append(bqm.energies((2 * x[:reads] - 1, labels)))
            ss_info = dict(ss.info)
        x = np.concatenate(rows, axis=0)
        nv = params.n_visible
        v = torch.from_numpy(x[:, :nv])
        h = torch.from_numpy(x[:, nv:])
        info = {
            "sampler": type(self.sampler).__name__,
            "beta": self.beta,
            "num_calls": len(bqms),
            "energy": np.concatenate(energies),
            "sampleset_info": ss_info,
        }
        return v, h, info
