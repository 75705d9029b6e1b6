"""Sampler backends behind one protocol; choose one by name with :func:`make_sampler`.

=============  ==========================================================
``exact``      exact samples and log Z by enumerating the smaller layer
``gibbs``      block Gibbs sampling in PyTorch (CPU / CUDA / MPS)
``simulated``  the thesis's simulated physical device: noise and limits
               wrapped around a child sampler (``gibbs`` by default)
``neal``       dwave-samplers simulated annealing at a fixed β (Boltzmann)
``dwave``      a D-Wave QPU through Ocean, or any structured dimod sampler
``dimod``      any dimod sampler as a backend
=============  ==========================================================
"""

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
]
