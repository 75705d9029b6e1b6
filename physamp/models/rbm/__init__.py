"""The RBM family: the model, its PCD-k trainer, AIS evaluation, and train-then-evaluate.

========================  =====================================================
:mod:`.model`             :class:`RBM` (thesis Eq. 1.32) and the base-rate model
:mod:`.pcd`               :class:`RBMTrainConfig`, :class:`RBMTrainer` (PCD-k / CD-k
                          on any sampler backend)
:mod:`.ais`               annealed importance sampling, test NLL, expected NLL
                          under parameter noise
:mod:`.evaluate`          :func:`train_and_evaluate`: what ``physamp train-rbm``,
                          the experiments and the notebooks run
========================  =====================================================

The model imports only :mod:`physamp.energy`; the trainer and AIS stand above
the samplers they use and are imported on first use.
"""

from physamp.models.rbm import model as _model
from physamp.models.rbm.model import *  # noqa: F403  (RBM, the base-rate model, check_data, ...)

_LAZY = {
    "RBMTrainConfig": "physamp.models.rbm.pcd",
    "RBMTrainer": "physamp.models.rbm.pcd",
    "QPUBudgetStop": "physamp.models.rbm.pcd",
    "train_and_evaluate": "physamp.models.rbm.evaluate",
    "RBMRunResult": "physamp.models.rbm.evaluate",
}
__all__ = [*_model.__all__, *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'physamp.models.rbm' has no attribute {name!r}")
