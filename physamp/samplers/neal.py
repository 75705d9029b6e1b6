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

Convergence diagnostic. The compiled routine returns only the final states, so with the
``fixed`` schedule a call of ``num_sweeps`` sweeps runs as segments that continue each other
through ``initial_states`` (the same chain as one run; each segment draws its own seed): the
reads' energies ``E(v, h)`` are recorded between segments, at up to 100 points of the last half
of the sweeps. Each extra call costs about ``2 + 250 / reads`` sweeps (the routine sets up and
scores every read and rebuilds its neighbour lists), so the points are ``40 + 5,000 / reads``
sweeps apart at least (45 for 1,000 reads, 90 for 100), which keeps the cost near 2.5 %; ``info`` gets
their split-R̂, bulk ESS and ``converged`` (:mod:`physamp.samplers.diagnostics`, as ``gibbs``), with a
:class:`~physamp.samplers.diagnostics.ConvergenceWarning` when R̂ is above ``rhat_threshold``.
``num_sweeps="auto"`` sweeps in doubling blocks until R̂ is below it (at most ``max_steps``).
Calls too short for 4 such draws (fewer than 360 sweeps for 1,000 reads, 720 for 100 reads; per-read
biases run one call per read, so then ~40,000), and the ``anneal`` schedule (its chains are not at
one β until its end), run in one segment and report ``converged=None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import ising_to_bqm, rbm_to_ising
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.diagnostics import (
    MAX_STEPS,
    MIN_THIN,
    RHAT_THRESHOLD,
    RunReport,
    check_diagnostic_options,
    check_sweeps_or_auto,
    not_recorded,
    plan_checks,
    run_with_checks,
    warn_if_not_mixed,
)
from physamp.samplers.dimod_io import sampleset_to_array  # re-exported: its old home was here

__all__ = ["NealSampler", "sampleset_to_array"]


_STATISTIC = "energy E(v, h) of the reads"
#: What one more segment (a call of the compiled routine, and the energies recorded after it)
#: costs, in sweeps: ``_SEGMENT_SWEEPS + _SEGMENT_READ_SWEEPS / reads``. Measured (CPU time, one
#: thread): a call costs 1.7 sweeps beyond its own sweeps for a 100x50 RBM with 1,000 reads (it
#: sets up and scores every read), 3.2 with 100 reads, 11.7 for a dense 784x500 one with 20 reads
#: (its neighbour lists are rebuilt on every call: 160 ms). Recording draws ``thin`` sweeps apart
#: in the last half of a call then costs ``segment / (2 thin)`` of it; ``_RECORD_BUDGET`` sets it.
_SEGMENT_SWEEPS = 2.0
_SEGMENT_READ_SWEEPS = 250.0
_RECORD_BUDGET = 0.025


def _min_thin(reads_per_call: int) -> int:
    """Fewest sweeps between two recorded draws for calls of ``reads_per_call`` reads (40 + 5,000 / reads)."""
    segment = _SEGMENT_SWEEPS + _SEGMENT_READ_SWEEPS / reads_per_call
    return max(MIN_THIN, math.ceil(segment / (2 * _RECORD_BUDGET) - 1e-9))


class NealSampler(Sampler):
    """Simulated annealing (dwave-samplers) sampling the RBM's Boltzmann distribution.

    Args:
        num_sweeps: sweeps per call (default 1000), or ``"auto"`` (``fixed`` schedule only):
            sweep in doubling blocks until the split-R̂ of the reads' energies is at most
            ``rhat_threshold``, at most ``max_steps`` sweeps (``info["num_sweeps"]`` says how
            many ran).
        beta: target inverse temperature (1 samples the RBM itself).
        schedule: ``"fixed"`` (every sweep at β: a Gibbs chain; default) or
            ``"anneal"`` (geometric from ``beta_start`` to β).
        beta_start: first β of the ``anneal`` schedule.
        persistent: keep the reads as chains and continue from them next call.
        randomize_order: random site order in each sweep (default True).
        acceptance: ``"Gibbs"`` (heat bath; default) or ``"Metropolis"``.
        use_bqm: go through ``SimulatedAnnealingSampler.sample`` on a dimod BQM
            instead of handing the arrays to the compiled routine (same reads).
        max_steps: cap on the sweeps of ``num_sweeps="auto"`` (default 100,000).
        rhat_threshold: R̂ above which the chains count as not mixed (default 1.01).
        min_ess: with ``"auto"``, also require this bulk ESS (default None: R̂ only).
        diagnostics: record the energies and report R̂ (default True; see the module docstring).
        seed: seed (each call draws a fresh 31-bit seed from the sampler's generator).
    """

    name = "neal"
    parameters = {
        "num_sweeps": "sweeps in this call, or 'auto' (until the chains mix)",
        "beta": "inverse temperature",
    }
    uses_chains = True
    steps_option = "num_sweeps"
    supports_persistent = True

    def __init__(
        self,
        num_sweeps: int | str = 1000,
        *,
        beta: float = 1.0,
        schedule: str = "fixed",
        beta_start: float = 0.01,
        persistent: bool = False,
        randomize_order: bool = True,
        acceptance: str = "Gibbs",
        use_bqm: bool = False,
        max_steps: int = MAX_STEPS,
        rhat_threshold: float = RHAT_THRESHOLD,
        min_ess: float | None = None,
        diagnostics: bool = True,
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        num_sweeps = check_sweeps_or_auto(num_sweeps, "num_sweeps", "sweeps per call")
        if schedule not in ("fixed", "anneal"):
            raise ValueError(f"schedule must be 'fixed' or 'anneal', got {schedule!r}")
        if num_sweeps == "auto" and schedule != "fixed":
            raise ValueError(
                "num_sweeps='auto' needs schedule='fixed' (an annealing schedule must know its length and "
                "its chains are not at one beta until its end)"
            )
        self.max_steps, self.rhat_threshold, self.min_ess, self.diagnostics = check_diagnostic_options(
            max_steps, rhat_threshold, min_ess, diagnostics
        )
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
        self._sa: Any = None  # dwave.samplers' SimulatedAnnealingSampler, built on first use
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
        num_sweeps = check_sweeps_or_auto(
            opts.get("num_sweeps", self.num_sweeps), "num_sweeps", "sweeps per call"
        )
        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        auto = num_sweeps == "auto"
        if auto and self.schedule != "fixed":
            raise ValueError("num_sweeps='auto' needs schedule='fixed'")
        if auto and num_samples < 2:
            raise ValueError(
                "num_sweeps='auto' compares chains (split-R̂), so it needs num_samples >= 2; "
                "pass an integer num_sweeps for a single chain"
            )
        nv, nh = params.n_visible, params.n_hidden
        spins = np.ascontiguousarray(self._initial_spins(params, num_samples, initial, beta))
        ising = rbm_to_ising(params)
        if ising.mask is None:
            rows, cols = np.divmod(np.arange(nh * nv, dtype=np.int32), np.int32(nv))
        else:
            rows, cols = (a.astype(np.int32) for a in np.nonzero(ising.mask))
        J = np.ascontiguousarray(ising.J[rows, cols])
        starts = rows + np.int32(nv)  # hidden variable of each coupler
        h_v, h_h = np.atleast_2d(ising.h_visible), np.atleast_2d(ising.h_hidden)
        # one problem per distinct bias vector: all reads at once unless biases are per-sample
        groups = (
            [slice(0, num_samples)] if not params.batched else [slice(i, i + 1) for i in range(num_samples)]
        )
        fields = [
            np.concatenate([h_v[i if h_v.shape[0] > 1 else 0], h_h[i if h_h.shape[0] > 1 else 0]])
            for i in (sl.start for sl in groups)
        ]

        def advance(n: int) -> None:
            """``n`` more sweeps of every read, continuing from ``spins`` (the annealing schedule
            is only ever run whole, in one segment)."""
            schedule = self.beta_schedule(n, beta)
            for sl, h in zip(groups, fields, strict=True):
                seed = self.numpy_seed()
                if self.use_bqm:
                    bqm = ising_to_bqm(type(ising)(h[:nv], h[nv:], ising.J, 0.0, ising.mask))
                    ss = self._run_bqm(bqm, sl.stop - sl.start, schedule, spins[sl], seed)
                    spins[sl] = sampleset_to_array(ss, list(range(nv + nh)))
                else:
                    spins[sl] = self._run_arrays(h, starts, cols, J, schedule, spins[sl].copy(), seed)

        report = None
        if auto or (self.diagnostics and self.schedule == "fixed"):
            reads_per_call = groups[0].stop - groups[0].start
            report = self._run_diagnosed(params, spins, advance, num_sweeps, reads_per_call)
        else:
            advance(int(num_sweeps))  # not "auto": an int
        x = torch.from_numpy((spins > 0).astype(np.float32))
        info = {
            "num_sweeps": num_sweeps if report is None else report.steps,
            "beta": beta,
            "schedule": self.schedule,
            "continued": initial is not None,
        }
        if report is not None:
            info.update(report.info(_STATISTIC))
            warn_if_not_mixed(self.name, report, num_sweeps, self.max_steps, option="num_sweeps")
        else:
            why = "diagnostics=False" if not self.diagnostics else "the anneal schedule is not at one beta"
            info.update(not_recorded(_STATISTIC, why))
        return x[:, :nv], x[:, nv:], info

    def _run_diagnosed(
        self, params: RBMParams, spins: np.ndarray, advance, num_sweeps, reads_per_call: int
    ) -> RunReport:
        """Run the sweeps in segments between the recording points of :func:`plan_checks`, spaced so
        that the extra calls cost ~2.5 % at most (:func:`_min_thin`)."""
        W = params.W.detach().cpu().double().numpy()
        if params.mask is not None:
            W = W * params.mask.cpu().numpy()  # the couplers the problem has
        b, c = params.b.detach().cpu().double().numpy(), params.c.detach().cpu().double().numpy()
        nv = params.n_visible

        def record() -> np.ndarray:
            """E(v, h) of every read (biases per read when batched), as :func:`physamp.energy.energy`."""
            v, h = (spins[:, :nv] > 0).astype(np.float64), (spins[:, nv:] > 0).astype(np.float64)
            lin = (v * b).sum(1) + (h * c).sum(1) if b.ndim == 2 or c.ndim == 2 else v @ b + h @ c
            return -lin - ((h @ W) * v).sum(1)

        return run_with_checks(
            advance,
            record,
            lambda records: np.stack(records, axis=1),
            plan_checks(num_sweeps, self.max_steps, min_thin=_min_thin(reads_per_call)),
            auto=num_sweeps == "auto",
            threshold=self.rhat_threshold,
            min_ess=self.min_ess,
        )
