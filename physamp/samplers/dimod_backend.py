"""Any dimod sampler as a physamp backend.

The RBM is written as a SPIN BQM by Eq. 3.1 (:func:`physamp.ising.rbm_to_bqm`),
handed to the wrapped sampler, and the returned ``SampleSet`` is read back into
``(v, h)`` -- permuting its columns by ``sampleset.variables`` (dimod never
promises the order you gave it) and mapping spins ``s`` to ``x = (s + 1) / 2``
(:mod:`physamp.samplers.dimod_io`, shared with the ``dwave`` backend)::

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
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import IsingRBM, ising_to_bqm, rbm_to_ising, resolve_labels
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.dimod_io import (
    HANDFUL,
    call_seed,
    check_sample_kwargs,
    collapse_warning,
    flip_energies,
    optimiser_reason,
    sampleset_to_units,
    split_units,
    warn_not_boltzmann,
)

__all__ = ["DimodBackend", "sampleset_to_units", "topology_labels"]

topology_labels = resolve_labels  # the old name of physamp.ising.resolve_labels, kept importable


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
    steps_option = None  # a fresh sampler call each time: PCD-k does not apply k (set the sampler's own)
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
        check_sample_kwargs(sampler, sample_kwargs, self._MANAGED, "DimodBackend")
        if seed is not None and "seed" not in sampler.parameters:
            warnings.warn(
                f"{type(sampler).__name__} has no 'seed' parameter: its samples are not "
                "reproducible from the backend's seed",
                stacklevel=2,
            )
        self.sampler = sampler
        self.labels = labels
        self.beta = beta  # checked by the protocol (Sampler.beta)
        self.sample_kwargs = dict(sample_kwargs)
        self._warn_if_optimiser(self.sample_kwargs)
        # per-call overrides: the wrapped sampler's parameters (less those set here)
        self.parameters = {  # type: ignore[misc]  # per instance: the wrapped sampler's
            k: "parameter of the wrapped dimod sampler" for k in sampler.parameters if k not in self._MANAGED
        }

    def _warn_if_optimiser(self, kwargs: dict[str, Any]) -> bool:
        """Warn (:class:`~physamp.samplers.dimod_io.NotBoltzmannWarning`) when the wrapped sampler,
        called with ``kwargs``, is an optimiser by construction; return whether it is."""
        why = optimiser_reason(self.sampler, kwargs)
        if why is not None:
            warn_not_boltzmann(f"the 'dimod' backend will not return Boltzmann samples of the RBM: {why}.")
        return why is not None

    def _repr_options(self) -> dict[str, Any]:
        return {"sampler": type(self.sampler).__name__, "beta": self.beta, **self.sample_kwargs}

    def __repr__(self) -> str:
        from physamp.samplers.redact import redact

        return redact(super().__repr__())  # a token among the sampler's kwargs stays hidden

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
        assert n is not None  # batched parameters
        h_v = np.broadcast_to(ising.h_visible, (n, params.n_visible))
        h_h = np.broadcast_to(ising.h_hidden, (n, params.n_hidden))
        offset = np.broadcast_to(np.asarray(ising.offset), (n,))
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
        labels = resolve_labels(self.labels, params.n_visible, params.n_hidden)
        kwargs = {**self.sample_kwargs, **overrides}
        if overrides and optimiser_reason(self.sampler, self.sample_kwargs) is None:
            self._warn_if_optimiser(kwargs)  # the per-call options made it one
        bqms = self._bqms(params, labels)
        reads = num_samples if len(bqms) == 1 else 1  # batched biases: one read per BQM
        rows, energies, ss_info = [], [], {}
        for bqm in bqms:
            ss = self.sampler.sample(bqm, **kwargs, num_reads=reads, **call_seed(self, self.sampler))
            x = sampleset_to_units(ss, labels)
            if x.shape[0] < reads:
                raise RuntimeError(
                    f"{type(self.sampler).__name__} returned {x.shape[0]} reads for num_reads={reads}"
                )
            rows.append(x[:reads])
            energies.append(bqm.energies((2 * x[:reads] - 1, labels)))
            ss_info = dict(ss.info)
        x = np.concatenate(rows, axis=0)
        v, h = split_units(x, params.n_visible)
        info = {
            "sampler": type(self.sampler).__name__,
            "beta": self.beta,
            "num_calls": len(bqms),
            "energy": np.concatenate(energies),
            "sampleset_info": ss_info,
        }
        if len(bqms) == 1 and np.unique(x, axis=0).shape[0] <= HANDFUL:
            spins = 2.0 * x - 1.0
            why = collapse_warning(spins, flip_energies(bqms[0], spins, labels), beta=1.0)
            if why is not None:  # the BQM already carries beta: its samples should be exp(-E_bqm)
                info["collapse_warning"] = why
                warn_not_boltzmann(f"'dimod' backend: {why}.")
        return v, h, info
