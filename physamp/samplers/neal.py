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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from physamp.ising import ising_to_bqm, rbm_to_ising
from physamp.models.rbm import RBMParams
from physamp.samplers.base import Chains, Sampler

__all__ = ["NealSampler", "sampleset_to_array"]


def sampleset_to_array(sampleset, labels) -> np.ndarray:
    """The SampleSet's samples as an ``(N, len(labels))`` array, columns in ``labels`` order.

    dimod orders columns by ``sampleset.variables``, not by the BQM's or ours.
    """
    variables = sampleset.variables
    record = sampleset.record.sample
    labels = list(labels)
    if len(variables) == len(labels) and all(a == b for a, b in zip(variables, labels, strict=True)):
        return record
    index = [variables.index(v) for v in labels]
    return record[:, index]


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
        seed: seed (each call draws a fresh 31-bit seed from the sampler's generator).
    """

    name = "neal"
    parameters = {"num_sweeps": "sweeps in this call", "beta": "inverse temperature"}
    uses_chains = True

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
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        if not isinstance(num_sweeps, int) or num_sweeps < 1:
            raise ValueError(f"num_sweeps must be a positive int, got {num_sweeps!r}")
        if schedule not in ("fixed", "anneal"):
            raise ValueError(f"schedule must be 'fixed' or 'anneal', got {schedule!r}")
        if acceptance not in ("Gibbs", "Metropolis"):
            raise ValueError(f"acceptance must be 'Gibbs' or 'Metropolis', got {acceptance!r}")
        if not beta > 0 or (schedule == "anneal" and not 0 < beta_start <= beta):
            raise ValueError(f"need 0 < beta_start <= beta, got beta_start={beta_start}, beta={beta}")
        self.num_sweeps, self.beta, self.schedule = num_sweeps, float(beta), schedule
        self.beta_start, self.randomize_order, self.acceptance = (
            float(beta_start),
            randomize_order,
            acceptance,
        )
        self._sa = None

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

    def _run(self, bqm, num_reads: int, schedule: np.ndarray, init: np.ndarray | None):
        kwargs: dict[str, Any] = dict(
            num_reads=num_reads,
            beta_schedule_type="custom",
            beta_schedule=schedule,
            randomize_order=self.randomize_order,
            proposal_acceptance_criteria=self.acceptance,
            seed=self.numpy_seed(),
        )
        if init is not None:
            kwargs.update(initial_states=(init, list(range(init.shape[1]))), initial_states_generator="none")
        return self.sa.sample(bqm, **kwargs)

    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        num_sweeps = int(opts.get("num_sweeps", self.num_sweeps))
        beta = float(opts.get("beta", self.beta))
        schedule = self.beta_schedule(num_sweeps, beta)
        nv, nh = params.n_visible, params.n_hidden
        labels = list(range(nv + nh))
        init = None
        if initial is not None:
            v0 = initial.v
            h0 = initial.h
            if h0 is None:  # a visible batch only: start hiddens from p(h|v) at β
                g = self.generator(params.device)
                p = torch.sigmoid(params.hidden_logits(v0, beta))
                h0 = (torch.rand(p.shape, generator=g, device=p.device, dtype=p.dtype) < p).to(p.dtype)
            init = (2 * torch.cat([v0, h0], 1) - 1).to(torch.int8).cpu().numpy()
        ising = rbm_to_ising(params)
        timing: list[dict] = []
        if not params.batched:
            bqm = ising_to_bqm(ising)
            ss = self._run(bqm, num_samples, schedule, init)
            spins = sampleset_to_array(ss, labels)
            timing.append(ss.info.get("timing", {}))
        else:  # one bias vector per sample: one problem per sample (slow, but exact)
            rows = []
            for i in range(num_samples):
                one = type(ising)(
                    ising.h_visible[i] if ising.h_visible.ndim == 2 else ising.h_visible,
                    ising.h_hidden[i] if ising.h_hidden.ndim == 2 else ising.h_hidden,
                    ising.J,
                    0.0,
                    ising.mask,
                )
                ss = self._run(ising_to_bqm(one), 1, schedule, None if init is None else init[i : i + 1])
                rows.append(sampleset_to_array(ss, labels))
            spins = np.concatenate(rows, 0)
        x = torch.from_numpy((spins > 0).astype(np.float32))
        info = {
            "num_sweeps": num_sweeps,
            "beta": beta,
            "schedule": self.schedule,
            "continued": initial is not None,
        }
        if timing:
            info["timing"] = timing[0]
        return x[:, :nv], x[:, nv:], info
