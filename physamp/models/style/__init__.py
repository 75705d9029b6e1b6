"""Multi-style transfer with conditional instance normalization (thesis ch. 7, ICLR 2017).

One feed-forward network for N painting styles: every convolution is shared and a style is one
row of γ and β in each conditional instance normalization layer (3,206 numbers per style).

- :mod:`~physamp.models.style.network`: :class:`StyleNetwork` (Table 7.1) and
  :class:`CondInstanceNorm2d` (Eq. 7.5); styles as ids or mixing weights; :meth:`StyleNetwork.add_styles`.
- :mod:`~physamp.models.style.vgg`: the VGG-16 loss network and its weights (ImageNet, or HED's
  edge-detection fine-tuned ones offline); :func:`load_vgg`, :func:`fetch_vgg`.
- :mod:`~physamp.models.style.loss`: :class:`StyleLoss`, Eqs. 7.1-7.4 per example.
- :mod:`~physamp.models.style.train`: :class:`StyleTrainer` on the one training loop.
- :mod:`~physamp.models.style.data`: content folders, style images, the offline bundled images.
- :mod:`~physamp.models.style.stylize`: loading a trained network, pastiches, blend grids.
- :mod:`~physamp.models.style.export`: TorchScript / ONNX with the style weights as an input.

Example::

    from physamp.models.style import StyleNetwork
    net = StyleNetwork(num_styles=10)
    y = net(x, styles)   # x (B, 3, H, W) in [0, 1]; styles: LongTensor (B,) of ids, or (B, N) weights
"""

from physamp.models.style.loss import StyleLoss, gram
from physamp.models.style.network import (
    SHARED_CONV_WEIGHTS,
    STYLE_PARAMS_PER_STYLE,
    CondInstanceNorm2d,
    StyleNetwork,
    style_weights,
)
from physamp.models.style.train import StyleTrainConfig, StyleTrainer

__all__ = [
    "StyleNetwork",
    "CondInstanceNorm2d",
    "style_weights",
    "SHARED_CONV_WEIGHTS",
    "STYLE_PARAMS_PER_STYLE",
    "StyleLoss",
    "gram",
    "StyleTrainConfig",
    "StyleTrainer",
]
