"""Datasets of binary vectors for RBMs: MNIST (full, offline protocol, bundled slice) and Connect-4.

>>> from physamp.data import load_dataset, iterate_minibatches
>>> ds = load_dataset("mnist-bundled", binarize_seed=0)
>>> ds.n_features, ds.image_shape
(784, (28, 28))

Names for ``load_dataset``:

=================  ==========================================================================
``mnist``          full MNIST 60,000 / 10,000 from IDX files (``root`` folder or the cache;
                   ``download=True`` fetches them with md5 checks)
``mnist-offline``  13,000 / 2,000 from ``shared/datasets/mnist`` (see its README)
``mnist-bundled``  2,000 / 500 real digits shipped inside the package
``mnist-default``  ``mnist-offline`` if its files are found, else ``mnist-bundled``
``connect4``       UCI Connect-4, 126 bits, 16,000 / 4,000 / 47,557 (``valid`` is set)
=================  ==========================================================================

Training sets hold grey levels (probabilities); re-binarise them at every presentation with
``iterate_minibatches(ds.train, batch_size, generator)``. Test sets are binarised once with
``binarize_seed``; print ``ds.protocol`` next to every figure.
"""

from __future__ import annotations

import os
from pathlib import Path

from physamp.data.binary import BinaryDataset, binarize, iterate_minibatches, num_batches
from physamp.data.connect4 import load_connect4, parse_connect4, unlzw
from physamp.data.download import cache_dir, find_shared_datasets
from physamp.data.idx import read_idx, write_idx
from physamp.data.images import (
    IMAGE_DATASETS,
    DatasetError,
    DatasetNotFoundError,
    ImageDataset,
    load_image_dataset,
)
from physamp.data.mnist import load_mnist, load_mnist_bundled, load_mnist_default, load_mnist_offline

__all__ = [
    "BinaryDataset",
    "DATASETS",
    "DatasetError",
    "DatasetNotFoundError",
    "IMAGE_DATASETS",
    "ImageDataset",
    "binarize",
    "cache_dir",
    "default_dataset",
    "find_shared_datasets",
    "iterate_minibatches",
    "load_connect4",
    "load_dataset",
    "load_image_dataset",
    "load_mnist",
    "load_mnist_bundled",
    "load_mnist_offline",
    "num_batches",
    "parse_connect4",
    "read_idx",
    "unlzw",
    "write_idx",
]

DATASETS = ("mnist", "mnist-offline", "mnist-bundled", "mnist-default", "connect4")


#: the datasets that read ``root`` (a folder of their files) and those that can ``download``
READS_ROOT = ("mnist", "mnist-offline", "mnist-default", "connect4")
DOWNLOADS = ("mnist", "connect4")


def load_dataset(
    name: str, root: str | os.PathLike | None = None, *, download: bool = False, binarize_seed: int = 0
) -> BinaryDataset:
    """Load the dataset ``name`` (one of ``DATASETS``); see the module docstring.

    Args:
        root: a local folder with the files: the four IDX files for ``mnist``, the shared datasets
            folder for ``mnist-offline`` (and ``mnist-default``, which then means the offline split
            found there), ``connect-4.data`` for ``connect4``. ``mnist-bundled`` ships in the
            package and takes no root.
        download: fetch missing files into ``cache_dir()`` (``mnist``, also into ``root``;
            ``connect4`` into the cache only).
        binarize_seed: seed of the one-off binarisation of the test set (any 64-bit integer).

    A ``root`` or ``download`` the dataset would not use is an error, not silently ignored.
    """
    key = name.lower()
    if key == "connect-4":
        key = "connect4"
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if root is not None and key not in READS_ROOT:
        raise ValueError(
            f"{name} ships inside the package and reads no data root (got {str(root)!r}); drop the root "
            "(--data-root), or name a dataset that reads one: mnist (IDX files), mnist-offline, connect4"
        )
    if download and (key not in DOWNLOADS or (key == "connect4" and root is not None)):
        where = "with a root (put connect-4.data there)" if key in DOWNLOADS else "at all"
        raise ValueError(
            f"{name} is not downloaded {where}; drop --download (download=True), or use "
            "--dataset mnist / connect4 without a root to download into the cache"
        )
    if (
        isinstance(binarize_seed, bool)
        or not isinstance(binarize_seed, int)
        or not (-(2**63) <= binarize_seed < 2**63)
    ):
        raise ValueError(f"binarize_seed must be an integer from -2^63 to 2^63 - 1, got {binarize_seed!r}")
    if key == "mnist":
        ds = load_mnist(root, download=download, binarize_seed=binarize_seed)
    elif key == "mnist-offline" or (key == "mnist-default" and root is not None):
        ds = load_mnist_offline(root, binarize_seed=binarize_seed)  # a root names the offline split's folder
    elif key == "mnist-bundled":
        ds = load_mnist_bundled(binarize_seed=binarize_seed)
    elif key == "mnist-default":
        ds = load_mnist_default(binarize_seed=binarize_seed)
    else:
        ds = load_connect4(root, download=download)
    # the identity of the data (physamp.data.BinaryDataset.identity): the folder as an absolute path,
    # so the same folder named from another working directory is the same data
    ds.root = None if root is None else str(Path(root).expanduser().resolve())
    ds.binarize_seed = None if key == "connect4" else binarize_seed
    return ds


def default_dataset(binarize_seed: int = 0) -> BinaryDataset:
    """``load_dataset("mnist-default")``: mnist-offline when its files are found, else mnist-bundled."""
    return load_dataset("mnist-default", binarize_seed=binarize_seed)
