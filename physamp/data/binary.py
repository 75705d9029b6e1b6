"""Binary datasets and stochastic binarisation (thesis §3.4).

Training images are grey levels in [0, 1], read as Bernoulli probabilities and re-binarised
at every presentation; test images are binarised once, with a seed stated in
``BinaryDataset.protocol``. Every random draw comes from the ``torch.Generator`` passed in, so
an epoch is reproducible from the generator's state (which a checkpoint can save and restore).

>>> import torch
>>> x = torch.tensor([[0.0, 1.0, 0.5], [0.2, 0.8, 1.0]])
>>> g = torch.Generator().manual_seed(0)
>>> [tuple(b.shape) for b in iterate_minibatches(x, 1, g)]
[(1, 3), (1, 3)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["BinaryDataset", "binarize", "iterate_minibatches", "num_batches"]


@dataclass
class BinaryDataset:
    """A dataset of binary vectors.

    Attributes:
        train: float32 ``(N, D)``, grey levels / Bernoulli probabilities in [0, 1] (re-binarise per use).
        test: float32 ``(M, D)`` in {0, 1}, binarised once.
        valid: optional float32 ``(K, D)``, same convention as ``test``.
        train_labels, test_labels, valid_labels: optional int64 ``(N,)``, ``(M,)``, ``(K,)``.
        protocol: one sentence naming the data protocol and the binarisation seed, for figure captions.
        image_shape: ``(28, 28)`` for MNIST, None for non-image data.
        root, binarize_seed: where it was loaded from (None: the default place) and the seed of
            the test set's binarisation, as given to :func:`physamp.data.load_dataset`.
    """

    train: torch.Tensor
    test: torch.Tensor
    name: str
    protocol: str
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    image_shape: tuple[int, int] | None = None
    valid: torch.Tensor | None = None
    valid_labels: torch.Tensor | None = None
    root: str | None = None
    binarize_seed: int | None = None

    @property
    def n_features(self) -> int:
        return int(self.train.shape[1])

    def identity(self) -> dict:
        """What makes this data this data, for a run's config: its name, the folder it was
        read from (None: the default place), the test binarisation seed and the sizes."""
        return {
            "name": self.name,
            "root": self.root,
            "binarize_seed": self.binarize_seed,
            "num_train": int(self.train.shape[0]),
            "num_test": int(self.test.shape[0]),
        }

    def __repr__(self) -> str:
        sizes = f"train={tuple(self.train.shape)}, test={tuple(self.test.shape)}"
        if self.valid is not None:
            sizes += f", valid={tuple(self.valid.shape)}"
        return f"BinaryDataset(name={self.name!r}, {sizes})"


def binarize(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Bernoulli sample with ``probs`` as probabilities: float32 {0, 1} tensor of the same shape.

    The uniforms are drawn on ``generator``'s device and moved to ``probs``'s device, so a CPU
    generator works for CUDA data (and gives the same bits as for CPU data).
    """
    u = torch.rand(probs.shape, generator=generator, device=generator.device)
    return (u.to(probs.device) < probs).to(torch.float32)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of minibatches per epoch of ``n`` examples."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_minibatches(
    data: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    binarize: bool = True,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """One epoch of minibatches of ``data`` (N, D), in a random order drawn from ``generator``.

    With ``binarize=True`` each batch is a fresh Bernoulli sample of its grey levels, so every
    epoch sees different binary images. The last batch is smaller when ``batch_size`` does not
    divide N, unless ``drop_last``. Call once per epoch; ``num_batches`` says how many batches.
    """
    n = int(data.shape[0])
    nb = num_batches(n, batch_size, drop_last)
    order = torch.randperm(n, generator=generator, device=generator.device) if shuffle else torch.arange(n)
    order = order.to(data.device)
    for i in range(nb):
        batch = data[order[i * batch_size : (i + 1) * batch_size]]
        yield _binarize(batch, generator) if binarize else batch


_binarize = binarize  # iterate_minibatches's `binarize` argument shadows the function
