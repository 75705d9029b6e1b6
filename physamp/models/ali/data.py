"""The data an ALI run trains on: the toy mixture or an image dataset, as tensors.

``load_ali_data(name)`` gives training images (uint8 on the CPU, scaled to [0, 1]
per batch by the trainer: a quarter of the memory of float32), validation images for
the figures, the conditioning variable when there is one, and the identity stored
in the run's config. The image datasets come from :func:`physamp.data.load_image_dataset`
(download with checksums where public, or a local directory; MNIST offline from
``../shared/datasets``). Splits: the dataset's own train split for training and its
test split (validation for CelebA, ``val_data.npz`` for ImageNet 64×64) for figures;
the toy draws 100,000 training points and a separate 10,000 held-out points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from physamp.seeding import derive_seed

__all__ = [
    "ALIData",
    "load_ali_data",
    "ALI_DATASETS",
    "TOY_TRAIN",
    "TOY_HELD_OUT",
    "unit_float",
    "one_hot_labels",
]

#: the datasets ALI trains on; each trains the model of the same name by default
ALI_DATASETS = ("toy", "mnist", "svhn", "cifar10", "celeba", "imagenet64")
TOY_TRAIN, TOY_HELD_OUT = 100_000, 10_000  # §5.4.5: "We trained ALI and GAN on 100,000 q(x) samples"


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 pixels / 255, floats as they are (the one scaling of ALI's data)."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)


def one_hot_labels(y: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Conditional ALI's ``y``: int labels ``(N,)`` → one-hot float ``(N, n_classes)`` (``n_classes``
    default: ``max + 1``; give it when a subset may miss the top classes); a float ``(N, n_cond)``
    (attributes) is checked and returned as float."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a tensor, got a {type(y).__qualname__}")
    if y.dim() == 1:
        if y.is_floating_point() or y.numel() == 0 or y.min() < 0:
            raise ValueError("class labels must be a non-empty tensor of non-negative integers")
        k = int(y.max()) + 1 if n_classes is None else int(n_classes)
        if int(y.max()) >= k:
            raise ValueError(f"a label is {int(y.max())} but there are only {k} classes")
        return torch.nn.functional.one_hot(y.long(), k).float()
    if y.dim() == 2:
        if not torch.isfinite(y.float()).all():
            raise ValueError("y holds NaN or infinite values")
        return y.float()
    raise ValueError(f"y must be (N,) labels or (N, n_cond) attributes, got shape {tuple(y.shape)}")


@dataclass
class ALIData:
    """Tensors of one dataset for ALI; ``y_*`` are int labels ``(N,)`` or attributes ``(N, 40)`` or None."""

    name: str
    source: str
    x_train: torch.Tensor
    x_val: torch.Tensor
    y_train: torch.Tensor | None
    y_val: torch.Tensor | None
    classes: list[str] | None
    identity: dict[str, Any]

    @property
    def n_classes(self) -> int | None:
        """Number of classes for integer labels (the conditional grid's columns), else None."""
        if self.y_train is None or self.y_train.dim() != 1:
            return None
        if self.classes:
            return len(self.classes)
        return int(max(self.y_train.max(), -1 if self.y_val is None else self.y_val.max())) + 1

    def conditioning(self, split: str = "train") -> torch.Tensor:
        """``y`` of conditional ALI for ``split`` (``"train"`` / ``"val"``): one-hot ``(N, n_classes)``
        for class labels (every class a column, whichever appear in the split), the float
        attributes ``(N, n_attributes)`` as they are."""
        y = self.y_train if split == "train" else self.y_val
        if y is None or self.name == "toy":
            raise ValueError(f"{self.name} has no labels or attributes, so it cannot train conditional ALI")
        return one_hot_labels(y, self.n_classes if y.dim() == 1 else None)

    def describe(self) -> str:
        n, m = self.x_train.shape[0], self.x_val.shape[0]
        return f"{self.name} ({n:,} train / {m:,} held out) from {self.source}"


def load_ali_data(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    max_train: int | None = None,
    max_held_out: int | None = None,
    seed: int = 0,
) -> ALIData:
    """The training and held-out data of ``name`` (one of :data:`ALI_DATASETS`).

    The toy's points depend on ``seed`` (``derive_seed(seed, "toy-data", split)``); a
    ``root`` or ``download`` it cannot use is an error. ``max_held_out`` keeps the first that
    many held-out images (the figures need 50; the SVM protocol needs the whole test set).
    The identity (stored in a run's config) is the dataset's name and sizes, not the folder it
    was read from, so a run resumes from another path to the same files.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ALI_DATASETS:
        raise ValueError(f"unknown ALI dataset {name!r}; choose one of {', '.join(ALI_DATASETS)}")
    if max_train is not None and (
        isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 1
    ):
        raise ValueError(f"max_train must be a positive int or None, got {max_train!r}")
    if key == "toy":
        if root is not None or download:
            raise ValueError("the toy mixture is generated, so it takes no --data-root or --download")
        from physamp.models.ali.toy import grid_mixture

        n = TOY_TRAIN if max_train is None else min(max_train, TOY_TRAIN)
        x, comp = grid_mixture(n, derive_seed(seed, "toy-data", "train"))
        xv, compv = grid_mixture(TOY_HELD_OUT, derive_seed(seed, "toy-data", "held-out"))
        return ALIData("toy", "physamp.models.ali.toy.grid_mixture", x, xv, comp, compv, None,
                       {"name": "toy", "n": n, "seed": seed})  # fmt: skip
    from physamp.data import load_image_dataset

    # the offline MNIST training split is stored class by class, so its first N digits would all be
    # zeros: a smaller MNIST is a seeded random subset instead (the other loaders keep the first N)
    limit = None if key == "mnist" else max_train
    ds = load_image_dataset(
        key, root, download=download, max_train=limit, max_test=max_held_out, dtype=torch.uint8
    )
    x_train, y_train = ds.train, ds.train_labels
    if key == "mnist" and max_train is not None and max_train < x_train.shape[0]:
        gen = torch.Generator().manual_seed(derive_seed(seed, "mnist-subset"))
        keep = torch.randperm(x_train.shape[0], generator=gen)[:max_train].sort().values
        x_train, y_train = x_train[keep], None if y_train is None else y_train[keep]
    identity = {"name": ds.name, "num_train": int(x_train.shape[0])}
    if key == "mnist" and max_train is not None:
        identity["subset_seed"] = seed
    x_val = unit_float(ds.test)
    return ALIData(ds.name, str(ds.source), x_train, x_val, y_train, ds.test_labels, ds.classes, identity)
