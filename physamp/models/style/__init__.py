"""Multi-style transfer with conditional instance normalization (thesis ch. 7, ICLR 2017).

- :mod:`~physamp.models.style.network`: :class:`StyleNetwork`, the Table 7.1 transformer, and
  :class:`CondInstanceNorm2d` (Eq. 7.5); blending by mixing weights, adding styles.
"""

from physamp.models.style.network import (
    SHARED_CONV_WEIGHTS,
    STYLE_PARAMS_PER_STYLE,
    CondInstanceNorm2d,
    StyleNetwork,
    style_weights,
)

__all__ = [
    "StyleNetwork",
    "CondInstanceNorm2d",
    "style_weights",
    "SHARED_CONV_WEIGHTS",
    "STYLE_PARAMS_PER_STYLE",
]
