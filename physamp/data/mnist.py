"""MNIST loaders: the full set (local folder, cache, download), the offline protocol, the bundled slice.

Three ways to get digits, from most to least data:

- ``load_mnist`` — the official 60,000 / 10,000 split from the four IDX files, found in a
  folder you name, or in the cache (``$PHYSAMP_DATA`` or ``~/.cache/physamp``) where
  ``download=True`` puts them after checking their md5.
- ``load_mnist_offline`` — the "mnist-offline" protocol of ``shared/datasets/README.md``:
  train = the 5,000 digits of ``mnist_5k.csv.gz`` + test images 0-7,999 (13,000), test = test
  images 8,000-9,999 (2,000).
- ``load_mnist_bundled`` — 2,000 + 500 real digits shipped in the package
  (``mnist_slice.npz``, made by ``make_slice.py``), for examples and tests with nothing else.

Pixels are divided by 255; the test set is binarised once with ``binarize_seed``.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch

from physamp.data.binary import BinaryDataset, binarize
from physamp.data.download import cache_dir, download_file, find_shared_datasets, md5_of
from physamp.data.idx import parse_idx, read_maybe_gzip

__all__ = ["load_mnist", "load_mnist_offline", "load_mnist_bundled", "load_mnist_default", "MNIST_FILES"]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# name -> (md5 of the official .gz, md5 of the uncompressed IDX file). The uncompressed sums of
# the two t10k files were checked against shared/datasets/mnist; the .gz sums are the ones every
# loader publishes (torchvision among them).
MNIST_FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
# md5 of the uncompressed mnist_5k.csv (shared/datasets/mnist/mnist_5k.csv.gz)
MNIST_5K_CSV_MD5 = "6a6dab69682d018c65e9c04a15bc7b1e"

BUNDLED_PATH = Path(__file__).with_name("mnist_slice.npz")
IMAGE_SHAPE = (28, 28)


def _read_checked_idx(path: Path, raw_md5: str | None) -> np.ndarray:
    data = read_maybe_gzip(path)
    if raw_md5 is not None and md5_of(data) != raw_md5:
        raise ValueError(
            f"{path}: checksum mismatch (md5 of the uncompressed data is {md5_of(data)}, expected "
            f"{raw_md5}): the file is corrupt or not the official MNIST file. Delete it and run "
            "load_dataset('mnist', download=True), or copy a good copy in its place."
        )
    return parse_idx(data, str(path))


def _find_local(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    return binarize(x, torch.Generator().manual_seed(seed))


def _to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64))


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{where}: images {images.shape} and labels {labels.shape} do not form an MNIST set "
            "(expected (N, 28, 28) and (N,))"
        )


def _missing_message(folder: Path, missing: list[str], root_given: bool) -> str:
    names = ", ".join(f"{m}.gz" for m in missing)
    msg = f"MNIST files not found in {folder}: {names} (the .gz or the uncompressed file)."
    msg += f" Put them there (from {MNIST_MIRRORS[0]})"
    if not root_given:
        msg += ", or call load_dataset('mnist', download=True) to download them with checksums"
    return msg + ". Without the full set, load_dataset('mnist-default') uses the offline or bundled digits."


def load_mnist(
    root: str | os.PathLike | None = None, *, download: bool = False, binarize_seed: int = 0
) -> BinaryDataset:
    """Full MNIST, 60,000 training and 10,000 test digits of 784 pixels.

    ``root``: a folder holding the four standard IDX files (``.gz`` or not); without it, the
    cache folder ``cache_dir()/mnist``, filled from the standard mirrors when ``download``.
    Every file is checked against the md5 of the official data.
    """
    folder = Path(root).expanduser() if root is not None else cache_dir() / "mnist"
    arrays = {}
    missing = [name for name in MNIST_FILES if _find_local(folder, name) is None]
    if missing and download:
        for name in missing:
            gz_md5, _ = MNIST_FILES[name]
            download_file([m + f"{name}.gz" for m in MNIST_MIRRORS], folder / f"{name}.gz", gz_md5)
        missing = []
    if missing:
        raise FileNotFoundError(_missing_message(folder, missing, root is not None))
    for name, (_, raw_md5) in MNIST_FILES.items():
        path = _find_local(folder, name)
        assert path is not None  # every file was found (or downloaded) above
        arrays[name] = _read_checked_idx(path, raw_md5)
    xtr, ytr = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    xte, yte = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    _check_pair(xtr, ytr, str(folder))
    _check_pair(xte, yte, str(folder))
    return _mnist_dataset(
        "mnist", "MNIST full (60,000 train / 10,000 test)", xtr, ytr, xte, yte, binarize_seed
    )


def _mnist_dataset(name: str, source: str, xtr, ytr, xte, yte, binarize_seed: int) -> BinaryDataset:
    """A :class:`BinaryDataset` from uint8 images: grey levels for training, test binarised once."""
    return BinaryDataset(
        train=_to_float(xtr),
        test=_binarize_once(_to_float(xte), binarize_seed),
        train_labels=_labels(ytr),
        test_labels=_labels(yte),
        name=name,
        protocol=(
            f"{source}; pixels/255, training images re-binarised at every presentation, "
            f"test images binarised once with seed {binarize_seed}"
        ),
        image_shape=IMAGE_SHAPE,
    )


def read_mnist_csv(path: str | os.PathLike, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV of rows ``784 pixels (0-255), label``: uint8 images (N, 28, 28), labels (N,).

    ``md5``: expected md5 of the uncompressed text, checked when given.
    """
    path = Path(path)
    text = read_maybe_gzip(path)
    if md5 is not None and md5_of(text) != md5:
        raise ValueError(
            f"{path}: checksum mismatch (md5 of the uncompressed data {md5_of(text)}, expected {md5}); "
            "the file is corrupt or changed. Copy a good copy in its place."
        )
    try:
        table = np.loadtxt(text.decode("ascii").splitlines(), delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path}: cannot read as an MNIST CSV ({exc}). Copy a good copy in its place."
        ) from exc
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise ValueError(f"{path}: expected rows of 784 pixels in 0-255 then a label 0-9, got {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]


def _offline_arrays(folder: Path) -> dict[str, np.ndarray]:
    """uint8 arrays of the offline files: csv images/labels and the official test set."""
    csv_x, csv_y = read_mnist_csv(folder / "mnist_5k.csv.gz", MNIST_5K_CSV_MD5)
    t_x = _read_checked_idx(folder / "t10k-images-idx3-ubyte.gz", MNIST_FILES["t10k-images-idx3-ubyte"][1])
    t_y = _read_checked_idx(folder / "t10k-labels-idx1-ubyte.gz", MNIST_FILES["t10k-labels-idx1-ubyte"][1])
    _check_pair(t_x, t_y, str(folder))
    if len(csv_x) != 5000 or len(t_x) != 10000:
        raise ValueError(
            f"{folder}: expected 5,000 csv digits and 10,000 test digits, got {len(csv_x)}, {len(t_x)}"
        )
    return {"csv_x": csv_x, "csv_y": csv_y, "test_x": t_x, "test_y": t_y}


def load_mnist_offline(root: str | os.PathLike | None = None, *, binarize_seed: int = 0) -> BinaryDataset:
    """The "mnist-offline" protocol: 13,000 train (5,000 csv + test 0-7,999), 2,000 test (test 8,000-9,999).

    The files are found by ``find_shared_datasets(root)``.
    """
    folder = find_shared_datasets(root)
    if folder is None:
        where = (
            f"under {root}" if root is not None else "via $PHYSAMP_SHARED or a shared/datasets/mnist folder"
        )
        raise FileNotFoundError(
            f"the offline MNIST files (mnist_5k.csv.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz) were not found {where}. Set PHYSAMP_SHARED to the shared "
            "folder, pass root=, or use 'mnist-bundled'."
        )
    a = _offline_arrays(folder)
    train_x = np.concatenate([a["csv_x"], a["test_x"][:8000]])
    train_y = np.concatenate([a["csv_y"], a["test_y"][:8000]])
    source = (
        "mnist-offline (train: 5,000 MNIST training digits of mnist_5k.csv.gz + MNIST test images "
        "0-7,999 = 13,000; test: MNIST test images 8,000-9,999 = 2,000)"
    )
    xte, yte = a["test_x"][8000:], a["test_y"][8000:]
    return _mnist_dataset("mnist-offline", source, train_x, train_y, xte, yte, binarize_seed)


def load_mnist_bundled(*, binarize_seed: int = 0, path: str | os.PathLike | None = None) -> BinaryDataset:
    """The slice shipped in the package: 2,000 train digits (200 per class, from mnist_5k.csv.gz)
    and 500 test digits (MNIST test images 8,000-8,499)."""
    path = Path(path) if path is not None else BUNDLED_PATH
    try:
        with np.load(path) as z:
            xtr, ytr, xte, yte = (
                z[k] for k in ("train_images", "train_labels", "test_images", "test_labels")
            )
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing from the installed package; rebuild it with "
            "`python -m physamp.data.make_slice` next to the shared datasets"
        ) from None
    except (OSError, ValueError, KeyError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt bundled slice ({exc}); rebuild it with make_slice.py") from exc
    _check_pair(xtr, ytr, str(path))
    _check_pair(xte, yte, str(path))
    source = (
        f"mnist-bundled (train: {len(xtr):,} MNIST training digits, 200 per class, from mnist_5k.csv.gz; "
        f"test: MNIST test images 8,000-{8000 + len(xte) - 1:,} = {len(xte):,})"
    )
    return _mnist_dataset("mnist-bundled", source, xtr, ytr, xte, yte, binarize_seed)


def load_mnist_default(root: str | os.PathLike | None = None, *, binarize_seed: int = 0) -> BinaryDataset:
    """mnist-offline when its files are found, else mnist-bundled (``.name`` says which)."""
    if find_shared_datasets(root) is not None:
        return load_mnist_offline(root, binarize_seed=binarize_seed)
    return load_mnist_bundled(binarize_seed=binarize_seed)
