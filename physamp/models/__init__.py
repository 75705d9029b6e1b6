"""Model families trained with physical samplers, one home each.

- :mod:`physamp.models.rbm`: the RBM, its PCD-k trainer and AIS evaluation.

Every family trains through :class:`physamp.training.TrainLoop`.
"""

from physamp.models.rbm.model import RBM, RBMParams, as_params

__all__ = ["RBM", "RBMParams", "as_params"]
