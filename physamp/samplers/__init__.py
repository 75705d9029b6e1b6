"""Sampler backends behind one protocol; choose one by name with :func:`make_sampler`.

=============  ==========================================================
``exact``      exact samples and log Z by enumerating the smaller layer
``gibbs``      block Gibbs sampling in PyTorch (CPU / CUDA / MPS)
``simulated``  the thesis's simulated physical device: noise and limits
               wrapped around a child sampler (``gibbs`` by default)
``neal``       dwave-samplers simulated annealing at a fixed β (Boltzmann)
``dwave``      a D-Wave QPU through Ocean, or any structured dimod sampler
               (``solver="simulated"``: the simulated QPU below, offline)
``dimod``      any dimod sampler as a backend
``quantum``    path-integral (Suzuki–Trotter) sampler of the transverse-field
               distribution p_Γ, exact worldline block updates in PyTorch
``openjij``    OpenJij's SQA / SA at a fixed (β, Γ): p_Γ through a second
               annealer SDK (extra ``physamp[openjij]``)
=============  ==========================================================

The other way round, for Ocean users (dimod samplers, not physamp backends):

- :class:`SimulatedQPU`: an offline stand-in for ``dwave.system.DWaveSampler`` that
  draws Boltzmann samples at a hidden β, with the QPU's graphs, ranges, noise and
  timing (:mod:`physamp.samplers.simulated_qpu`); with ``gamma=Γ`` the transverse-field
  state it freezes out in, and :func:`freeze_out` to get (β_eff, Γ) from an anneal schedule.
- :func:`as_dimod`: any physamp backend as a dimod sampler of bipartite BQMs
  (:mod:`physamp.samplers.dimod_sampler`).

Hardware runs (with a token, or offline on :class:`SimulatedQPU`):

- :func:`calibrate`: set the 'dwave' backend's prefactor until the measured β_eff ×
  prefactor reaches a target β (:mod:`physamp.samplers.temperature`).
- :class:`QPULedger`, :class:`QPUBudgetExceeded`, :class:`UnknownQPUCostError`: the QPU
  time a backend spends, costed before each call and refused over budget
  (:mod:`physamp.samplers.qpu_budget`).

These are imported on first use, so ``import physamp.samplers`` does not load Ocean.
"""

from importlib import import_module
from typing import Any

from physamp.samplers.base import Chains, Composite, Sampler, Samples, UnknownOptionError
from physamp.samplers.registry import available_samplers, make_sampler, register_sampler

__all__ = [
    "Sampler",
    "Composite",
    "Samples",
    "Chains",
    "UnknownOptionError",
    "make_sampler",
    "register_sampler",
    "available_samplers",
    "SimulatedQPU",
    "freeze_out",
    "as_dimod",
    "calibrate",
    "CalibrationResult",
    "QPULedger",
    "QPUBudgetExceeded",
    "UnknownQPUCostError",
    "ConvergenceWarning",
]

# name -> module of the exports that import dimod (loaded on first access)
_LAZY = {
    "SimulatedQPU": "physamp.samplers.simulated_qpu",
    "freeze_out": "physamp.samplers.simulated_qpu",
    "as_dimod": "physamp.samplers.dimod_sampler",
    "calibrate": "physamp.samplers.temperature",
    "CalibrationResult": "physamp.samplers.temperature",
    "QPULedger": "physamp.samplers.qpu_budget",
    "QPUBudgetExceeded": "physamp.samplers.qpu_budget",
    "UnknownQPUCostError": "physamp.samplers.qpu_budget",
    "ConvergenceWarning": "physamp.samplers.diagnostics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'physamp.samplers' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
