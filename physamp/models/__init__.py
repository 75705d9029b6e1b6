"""Models trained with physical samplers."""

from physamp.models.rbm import RBM, RBMParams, as_params

__all__ = ["RBM", "RBMParams", "as_params"]
