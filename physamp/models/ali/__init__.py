"""Adversarially learned inference (ALI, thesis ch. 5; Dumoulin et al., ICLR 2017).

- :mod:`.networks`: Tables 5.3-5.6 (and the toy and MNIST models) as lists of layer specs,
  with every choice the thesis leaves open.
- :mod:`.model`: :func:`build_ali` → :class:`ALI` (``.encoder``, ``.decoder``, ``.discriminator``).
- :mod:`.train`: Algorithm 1 on :class:`physamp.training.TrainLoop` (:class:`ALITrainer`).
- :mod:`.figures`: the sample, reconstruction and interpolation PNGs.
- :mod:`.toy`: the 25-Gaussian mixture of §5.4.5 and its metrics.
- :mod:`.semi_supervised`: the L2-SVM protocol of Table 5.1.

::

    from physamp.models.ali import build_ali
    ali = build_ali("svhn")                  # Table 5.4
    z = ali.encode(x)                        # z = mu + sigma * eps (Eq. 5.2); mean=True gives mu
    x_tilde = ali.decode(z)                  # in [0, 1]
    logits = ali.discriminator(x, z)         # (B, 1): "the pair came from the encoder"
"""

from physamp.models.ali.model import ALI, Decoder, Discriminator, Encoder, build_ali
from physamp.models.ali.networks import MODEL_NAMES, SPECS, ModelSpec
from physamp.models.ali.train import ALITrainConfig, ALITrainer, NonFiniteLossError, ali_losses

__all__ = [
    "ALI",
    "Encoder",
    "Decoder",
    "Discriminator",
    "build_ali",
    "SPECS",
    "MODEL_NAMES",
    "ModelSpec",
    "ALITrainConfig",
    "ALITrainer",
    "NonFiniteLossError",
    "ali_losses",
]
