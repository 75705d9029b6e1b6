"""Simulated annealing from ``dwave-samplers`` (what ``dwave-neal`` re-exports) as a Boltzmann sampler.

Simulated annealing is an optimiser by default: its geometric schedule ends at a
large β and the reads collapse to ground states. Used as a sampler of the RBM's
distribution it must instead run at the target inverse temperature: by default
every sweep is at β (a ``custom`` schedule ``[β] * num_sweeps``) with Gibbs
acceptance and a randomised update order, so each sweep is one step of a
single-site Gibbs chain on the Ising form (Eq. 3.1) and ``num_sweeps`` sweeps
from a random start draw from ``p ∝ exp(-β E)``. ``schedule="anneal"`` instead
anneals geometrically from ``beta_start`` and ends at β. With
``persistent=True`` the last reads become the ``initial_states`` of the next
call, so chains persist as PCD needs.

The problem goes to dwave-samplers' compiled annealing routine as the numpy
arrays of Eq. 3.1 (fields, coupler index pairs, couplings), the same routine and
arguments ``SimulatedAnnealingSampler.sample`` ends in, without building a
``dimod.BinaryQuadraticModel`` of up to n_visible x n_hidden couplers and
reading it back (``use_bqm=True`` goes through the public sampler instead;
both give identical reads for the same seed and initial states).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import ising_to_bqm, rbm_to_ising
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.dimod_io import sampleset_to_array  # re-exported: its old home was here

__all__ = ["NealSampler", "sampleset_to_array"]


def _check_sweeps(num_sweeps) -> int:
    if isinstance(num_sweeps, bool) or not isinstance(num_sweeps, numbers.Integral) or num_sweeps < 1:
        raise ValueError(f"num_sweeps must be a positive integer (sweeps per call), got {num_sweeps!r}")
    return int(num_sweeps)


class NealSampler(Sampler):
    """Simulated annealing (dwave-samplers) sampling the RBM's Boltzmann distribution.

    Args:
        num_sweeps: sweeps per call (default 1000).
        beta: target inverse temperature (1 samples the RBM itself).
        schedule: ``"fixed"`` (every sweep at β: a Gibbs chain; default) or
            ``"anneal"`` (geometric from ``beta_start`` to β).
        beta_start: first β of the ``anneal`` schedule.
        persistent: keep the reads as chains and continue from them next call.
        randomize_order: random site order in each sweep (default True).
        acceptance: ``"Gibbs"`` (heat bath; default) or ``"Metropolis"``.
        use_bqm: go through ``SimulatedAnnealingSampler.sample`` on a dimod BQM
            instead of handing the arrays to the compiled routine (same reads).
        seed: seed (each call draws a fresh 31-bit seed from the sampler's generator).
    """

    name = "neal"
    parameters = {"num_sweeps": "sweeps in this call", "beta": "inverse temperature"}
    uses_chains = True
    steps_option = "num_sweeps"
    supports_persistent = True

    def __init__(
        self,
        num_sweeps: int = 1000,
        *,
        beta: float = 1.0,
        schedule: str = "fixed",
        beta_start: float = 0.01,
        persistent: bool = False,
        randomize_order: bool = True,
        acceptance: str = "Gibbs",
        use_bqm: bool = False,
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        num_sweeps = _check_sweeps(num_sweeps)
        if schedule not in ("fixed", "anneal"):
            raise ValueError(f"schedule must be 'fixed' or 'anneal', got {schedule!r}")
        if acceptance not in ("Gibbs", "Metropolis"):
            raise ValueError(f"acceptance must be 'Gibbs' or 'Metropolis', got {acceptance!r}")
        self.beta = beta  # checked by the protocol (Sampler.beta)
        if schedule == "anneal" and not 0 < beta_start <= self.beta:
            raise ValueError(f"need 0 < beta_start <= beta, got beta_start={beta_start}, beta={beta}")
        self.num_sweeps, self.schedule = num_sweeps, schedule
        self.beta_start, self.randomize_order, self.acceptance = (
            float(beta_start),
            randomize_order,
            acceptance,
        )
        self._sa = None
        self.use_bqm = bool(use_bqm)

    def _repr_options(self) -> dict[str, Any]:
        return {
            "num_sweeps": self.num_sweeps,
            "beta": self.beta,
            "schedule": self.schedule,
            "persistent": self.persistent,
        }

    @property
    def sa(self):
        if self._sa is None:
            from dwave.samplers import SimulatedAnnealingSampler

            self._sa = SimulatedAnnealingSampler()
        return self._sa

    def beta_schedule(self, num_sweeps: int, beta: float) -> np.ndarray:
        if self.schedule == "fixed":
            return np.full(num_sweeps, beta)
        return np.geomspace(min(self.beta_start, beta), beta, num_sweeps)

    def _run_bqm(self, bqm, num_reads: int, schedule: np.ndarray, init: np.ndarray, seed: int):
        """The public path: ``SimulatedAnnealingSampler.sample`` on a BQM."""
        return self.sa.sample(
            bqm,
            num_reads=num_reads,
            beta_schedule_type="custom",
            beta_schedule=schedule,
            randomize_order=self.randomize_order,
            proposal_acceptance_criteria=self.acceptance,
            seed=seed,
            initial_states=(init, list(range(init.shape[1]))),
            initial_states_generator="none",
        )

    def _run_arrays(self, h, rows, cols, J, schedule: np.ndarray, init: np.ndarray, seed: int):
        """The compiled routine on Eq. 3.1's arrays; returns ``(num_reads, n)`` spins."""
        from dwave.samplers.sa.simulated_annealing import simulated_annealing

        samples, _ = simulated_annealing(
            init.shape[0],
            h,
            rows,
            cols,
            J,
            1,
            schedule,
            seed,
            init,
            self.randomize_order,
            self.acceptance,
            None,
        )
        return samples

    def _initial_spins(self, params: RBMParams, num_samples: int, initial: Chains | None, beta):
        g = self.generator("cpu")  # the spins go to numpy: draw them on the CPU
        if initial is None:  # uniformly random spins, as dwave-samplers' "random" generator
            bits = torch.randint(0, 2, (num_samples, params.n_visible + params.n_hidden), generator=g)
            return (2 * bits - 1).to(torch.int8).numpy()
        v0, h0 = initial.v, initial.h
        if h0 is None:  # a visible batch only: start hiddens from p(h|v) at β
            p = torch.sigmoid(params.hidden_logits(v0, beta)).cpu()
            h0 = (torch.rand(p.shape, generator=g, dtype=p.dtype) < p).to(p.dtype)
        return (2 * torch.cat([v0.cpu(), h0.cpu()], 1) - 1).to(torch.int8).numpy()

    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        num_sweeps = _check_sweeps(opts.get("num_sweeps", self.num_sweeps))
        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        schedule = self.beta_schedule(num_sweeps, beta)
        nv, nh = params.n_visible, params.n_hidden
        init = np.ascontiguousarray(self._initial_spins(params, num_samples, initial, beta))
        ising = rbm_to_ising(params)
        if ising.mask is None:
            rows, cols = np.divmod(np.arange(nh * nv, dtype=np.int32), np.int32(nv))
        else:
            rows, cols = (a.astype(np.int32) for a in np.nonzero(ising.mask))
        J = np.ascontiguousarray(ising.J[rows, cols])
        starts = rows + np.int32(nv)  # hidden variable of each coupler
        h_v, h_h = np.atleast_2d(ising.h_visible), np.atleast_2d(ising.h_hidden)
        spins = np.empty((num_samples, nv + nh), dtype=np.int8)
        # one problem per distinct bias vector: all reads at once unless biases are per-sample
        groups = (
            [slice(0, num_samples)] if not params.batched else [slice(i, i + 1) for i in range(num_samples)]
        )
        for sl in groups:
            i = sl.start
            h = np.concatenate([h_v[i if h_v.shape[0] > 1 else 0], h_h[i if h_h.shape[0] > 1 else 0]])
            seed = self.numpy_seed()
            if self.use_bqm:
                bqm = ising_to_bqm(type(ising)(h[:nv], h[nv:], ising.J, 0.0, ising.mask))
                ss = self._run_bqm(bqm, sl.stop - sl.start, schedule, init[sl], seed)
                spins[sl] = sampleset_to_array(ss, list(range(nv + nh)))
            else:
                spins[sl] = self._run_arrays(h, starts, cols, J, schedule, init[sl].copy(), seed)
        x = torch.from_numpy((spins > 0).astype(np.float32))
        info = {
            "num_sweeps": num_sweeps,
            "beta": beta,
            "schedule": self.schedule,
            "continued": initial is not None,
        }
        return x[:, :nv], x[:, nv:], info
