"""physamp: physical samplers and the models trained with them.

The import is light: torch is imported when a model is first used, and Ocean
(dimod, dwave-samplers, dwave-system) only when a backend that needs it runs.

>>> import physamp
>>> from physamp.samplers import make_sampler
>>> rbm = physamp.RBM(n_visible=6, n_hidden=4)
>>> s = make_sampler("exact").sample(rbm, num_samples=10)
>>> tuple(s.v.shape), tuple(s.h.shape)
((10, 6), (10, 4))
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["RBM", "make_sampler", "__version__"]


def __getattr__(name: str):
    if name == "RBM":
        from physamp.models.rbm import RBM

        return RBM
    if name == "make_sampler":
        from physamp.samplers import make_sampler

        return make_sampler
    raise AttributeError(f"module 'physamp' has no attribute {name!r}")
