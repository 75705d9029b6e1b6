"""Image datasets for ALI: MNIST grey levels, SVHN, CIFAR-10, CelebA 64×64 and ImageNet 64×64.

>>> from physamp.data.images import load_image_dataset
>>> ds = load_image_dataset("mnist", max_train=10, max_test=5)   # offline files, else the bundled slice
>>> ds.image_shape, tuple(ds.train.shape), tuple(ds.test.shape)
((1, 28, 28), (10, 1, 28, 28), (5, 1, 28, 28))

Every loader returns an :class:`ImageDataset`: float32 images ``(N, C, H, W)`` in [0, 1] (uint8 / 255,
the scaling of the ALI code, ``uint8_pixels_to_floatX``), labels, class or attribute names. ``test``
is the split the figures call "the validation set" where the dataset has no labelled test set.

==============  ==================================================================================
``mnist``       the "mnist-offline" split of ``shared/datasets`` (13,000 / 2,000, found by
                ``find_shared_datasets(root)``), else the slice bundled in the package (2,000 /
                500); grey levels, not binarised. ``.name`` says which ("mnist-offline" or
                "mnist-bundled").
``svhn``        ``train_32x32.mat`` / ``test_32x32.mat`` (73,257 / 26,032); labels 1-10 with 10
                meaning the digit 0 are mapped to 0-9. ``download=True`` fetches them (md5 checked).
``cifar10``     ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or
                the tarball ``cifar-10-python.tar.gz`` (extracted once into ``cache_dir()``);
                50,000 / 10,000. ``download=True`` fetches the tarball (md5 checked).
``celeba``      ``img_align_celeba/*.jpg`` + ``list_attr_celeba.txt`` (+ ``list_eval_partition.txt``):
                train = partition 0 (162,770), test = partition 1, the validation set (19,867);
                labels are the 40 attributes as float 0/1. Each 178×218 image is resized to
                64×78 with Lanczos and its central 64 rows kept (rows 7-70), as Fuel's
                ``convert_celeba_64`` made the CelebA of the ALI code; the decoded images are
                cached in ``cache_dir()/celeba/decoded``. Local folder only.
``imagenet64``  the downsampled ImageNet of Chrabaszcz et al. (2017), ``train_data_batch_1..10.npz``
                and ``val_data.npz``: 1,281,167 / 50,000, labels 1-1000 mapped to 0-999. Local
                folder only (the download needs an image-net.org login).
==============  ==================================================================================

``root`` is the folder holding a dataset's files; without it the loaders look in
``cache_dir() / <name>`` (``$PHYSAMP_DATA`` or ``~/.cache/physamp``), where ``download=True`` puts
the public files. ``max_train`` / ``max_test`` keep the first images of each split (in file order)
and, for CIFAR-10, CelebA and ImageNet 64×64, read or decode only the files those need.

Memory: the images are float32, 4 bytes a value. Full SVHN train is 0.9 GB, CIFAR-10 0.6 GB,
CelebA train 8 GB, and ImageNet 64×64 train 63 GB (its uint8 batches alone are 15.7 GB): use
``max_train`` there.

Every problem with the files raises :class:`DatasetError` (a ``ValueError``; a missing file raises
:class:`DatasetNotFoundError`, also a ``FileNotFoundError``) whose message names the file and says
how to fix it.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from physamp.data import mnist as _mnist
from physamp.data.download import cache_dir, download_file, find_shared_datasets, md5_of

__all__ = [
    "IMAGE_DATASETS",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageDataset",
    "load_image_dataset",
]

IMAGE_DATASETS = ("mnist", "svhn", "cifar10", "celeba", "imagenet64")
_ALIASES = {"cifar-10": "cifar10", "imagenet-64": "imagenet64", "imagenet64x64": "imagenet64"}

_HOW_TO_PASS = "pass --download (download=True) or --data-root DIR (root=DIR)"


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt or not in its format; the message names it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder is missing (both a :class:`DatasetError` and a ``FileNotFoundError``)."""


@dataclass
class ImageDataset:
    """Images as float32 ``(N, C, H, W)`` in [0, 1], with their labels.

    ``train_labels`` / ``test_labels``: int64 ``(N,)`` class indices, or for CelebA float32
    ``(N, 40)`` attributes in {0, 1}. ``classes``: the class names, or CelebA's attribute names
    (None where the files carry none, as for ImageNet 64×64).
    """

    name: str
    source: str
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    classes: list[str] | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return cast("tuple[int, int, int]", tuple(int(s) for s in self.train.shape[1:]))  # (N, C, H, W)


def load_image_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    max_train: int | None = None,
    max_test: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> ImageDataset:
    """Load the image dataset ``name`` (one of ``IMAGE_DATASETS``); see the module docstring.

    Args:
        root: the folder that holds the dataset's files; without it, ``cache_dir() / name``. For
            ``mnist`` it is the shared datasets folder, and without it the offline files are searched
            for (``find_shared_datasets``) and the bundled slice is the fallback.
        download: fetch missing public files (SVHN, CIFAR-10) into that folder, checking their md5.
            The other datasets have no public checksummed download, and asking for one is an error.
        max_train, max_test: keep only the first that many images of each split (None: all).
        dtype: ``torch.float32`` (default: pixels / 255 in [0, 1]) or ``torch.uint8`` (the raw 0..255
            pixels, a quarter of the memory: full ImageNet 64x64 is 15.7 GB as uint8, 63 GB as float32).
    """
    if not isinstance(name, str):
        raise DatasetError(f"dataset name must be a string, got {name!r}; known: {', '.join(IMAGE_DATASETS)}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in IMAGE_DATASETS:
        known = ", ".join(IMAGE_DATASETS)
        raise DatasetError(f"unknown image dataset {name!r}; known image datasets: {known}")
    limits = _check_limit("max_train", max_train), _check_limit("max_test", max_test)
    if not isinstance(download, bool):
        raise DatasetError(f"download must be True or False, got {download!r}")
    if download and key in ("mnist", "celeba", "imagenet64"):
        why = {
            "mnist": "it reads the offline files of shared/datasets or the bundled slice (the full binary "
            "set downloads with load_dataset('mnist', download=True))",
            "celeba": "CelebA is distributed through Google Drive / Baidu with no checksummed URL; "
            + _CELEBA_HOW,
            "imagenet64": "the downsampled ImageNet needs an image-net.org login; " + _IMAGENET_HOW,
        }[key]
        raise DatasetError(f"{key} cannot be downloaded ({why}); drop --download (download=True)")
    loader = {
        "mnist": _load_mnist,
        "svhn": _load_svhn,
        "cifar10": _load_cifar10,
        "celeba": _load_celeba,
        "imagenet64": _load_imagenet64,
    }[key]
    if dtype not in (torch.float32, torch.uint8):
        raise DatasetError(f"dtype must be torch.float32 or torch.uint8, got {dtype!r}")
    ds = loader(root, download, *limits)  # the loaders give uint8 pixels
    if dtype == torch.float32:  # x / 255, as in physamp.data.mnist
        ds.train, ds.test = ds.train.to(torch.float32).div_(255.0), ds.test.to(torch.float32).div_(255.0)
    return ds


# ---------------------------------------------------------------------------------------- helpers


def _check_limit(what: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DatasetError(f"{what} must be None or an integer >= 0, got {value!r}")
    return int(value)


def _folder(root, dataset: str) -> Path:
    return Path(root).expanduser() if root is not None else cache_dir() / dataset


def _pixels(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` as a (writeable, contiguous) uint8 tensor; :func:`load_image_dataset`
    scales it to float32 when asked."""
    x = np.ascontiguousarray(images_u8)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def _integer_labels(y, low: int, high: int, n: int, where: str, fix: str) -> np.ndarray:
    """``y`` as int64 ``(n,)`` after checking its values are integers in [low, high]."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{where}: {n} images but labels of shape {y.shape}. {fix}")
    if n == 0:
        return y.astype(np.int64)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DatasetError(f"{where}: labels of type {y.dtype}, expected integers {low}-{high}. {fix}")
    bad = np.flatnonzero((y < low) | (y > high) | (y != np.round(y)))
    if len(bad):
        raise DatasetError(
            f"{where}: label {y[bad[0]].item():g} of image {bad[0]} is out of range (expected integers "
            f"{low}-{high}; {len(bad)} bad labels). {fix}"
        )
    return y.astype(np.int64)


def _missing(dataset: str, folder: Path, files: Sequence[str], how: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{dataset}: {', '.join(files)} not found in {folder}. {how}")


# ------------------------------------------------------------------------------------------ MNIST


def _load_mnist(root, download, max_train, max_test) -> ImageDataset:
    folder = find_shared_datasets(root)
    if folder is not None:
        a = _mnist._offline_arrays(folder)  # the offline protocol of shared/datasets/README.md
        xtr = np.concatenate([a["csv_x"], a["test_x"][:8000]])
        ytr = np.concatenate([a["csv_y"], a["test_y"][:8000]])
        xte, yte = a["test_x"][8000:], a["test_y"][8000:]
        name = "mnist-offline"
        source = (
            f"{folder} (mnist-offline: train = the 5,000 digits of mnist_5k.csv.gz + MNIST test images "
            "0-7,999; test = MNIST test images 8,000-9,999; grey levels / 255)"
        )
    elif root is not None:
        raise DatasetNotFoundError(
            f"mnist: the offline MNIST files (mnist_5k.csv.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz) were not found in {root} (nor in its mnist/ or datasets/mnist/). "
            "Put them there, or drop --data-root (root=) to use the offline files found automatically or "
            "the bundled slice."
        )
    else:
        xtr, ytr, xte, yte = _bundled_arrays(_mnist.BUNDLED_PATH)
        name = "mnist-bundled"
        source = (
            f"{_mnist.BUNDLED_PATH} (mnist-bundled: {len(xtr):,} MNIST training digits, 200 per class; "
            f"test = MNIST test images 8,000-{8000 + len(xte) - 1:,}; grey levels / 255)"
        )
    xtr, ytr, xte, yte = xtr[:max_train], ytr[:max_train], xte[:max_test], yte[:max_test]
    return ImageDataset(
        name=name,
        source=source,
        train=_pixels(xtr[:, None]),
        test=_pixels(xte[:, None]),
        train_labels=_labels(ytr),
        test_labels=_labels(yte),
        classes=[str(d) for d in range(10)],
    )


def _bundled_arrays(path: Path):
    """uint8 images and labels of the bundled slice (``load_mnist_bundled`` binarises its test set)."""
    try:
        with np.load(path) as z:
            arrays = tuple(z[k] for k in ("train_images", "train_labels", "test_images", "test_labels"))
    except FileNotFoundError:
        raise DatasetNotFoundError(
            f"{path} is missing from the installed package; rebuild it with "
            "`python -m physamp.data.make_slice` next to the shared datasets"
        ) from None
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt bundled slice ({exc}); rebuild it with make_slice.py") from exc
    _mnist._check_pair(arrays[0], arrays[1], str(path))
    _mnist._check_pair(arrays[2], arrays[3], str(path))
    return arrays


# ------------------------------------------------------------------------------------------- SVHN

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
#: split -> (file, md5 of the official file)
SVHN_FILES = {
    "train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    "extra": ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
}


def _load_svhn(root, download, max_train, max_test) -> ImageDataset:
    folder = _folder(root, "svhn")
    names = {split: SVHN_FILES[split][0] for split in ("train", "test")}
    missing = [split for split, f in names.items() if not (folder / f).is_file()]
    if missing and download:
        for split in missing:
            fname, md5 = SVHN_FILES[split]
            download_file([SVHN_URL + fname], folder / fname, md5)
        missing = []
    if missing:
        files = [names[s] for s in missing]
        raise _missing(
            "svhn",
            folder,
            files,
            f"Download {' and '.join(SVHN_URL + f for f in files)} (the 'Format 2' cropped digits) into that "
            f"folder, or {_HOW_TO_PASS} naming a folder that holds them.",
        )
    xtr, ytr = _read_svhn(folder / names["train"], max_train)
    xte, yte = _read_svhn(folder / names["test"], max_test)
    return ImageDataset(
        name="svhn",
        source=f"{folder / names['train']} + {folder / names['test']} (labels 10 -> 0)",
        train=_pixels(xtr),
        test=_pixels(xte),
        train_labels=_labels(ytr),
        test_labels=_labels(yte),
        classes=[str(d) for d in range(10)],
    )


def _read_svhn(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(n, 3, 32, 32)`` and labels 0-9 from an SVHN ``*_32x32.mat``."""
    fix = (
        f"Delete it and download it again ({SVHN_URL + path.name}, or --download), or copy a good copy there."
    )
    try:
        import scipy.io
    except ImportError as exc:  # scipy comes with dwave-system, a dependency of physamp
        raise DatasetError(f"{path}: reading SVHN .mat files needs scipy (pip install scipy)") from exc
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # scipy raises many kinds (MatReadError, OSError, IndexError, ValueError ...)
        raise DatasetError(
            f"{path}: cannot read as a MATLAB file ({type(exc).__name__}: {exc}); it is truncated or "
            f"corrupt. {fix}"
        ) from exc
    if "X" not in mat or "y" not in mat:
        raise DatasetError(f"{path}: no 'X' and 'y' arrays in this .mat file (not an SVHN file). {fix}")
    x = mat["X"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DatasetError(
            f"{path}: X is {x.dtype} of shape {x.shape}, expected uint8 (32, 32, 3, N) "
            f"(the 32x32 'Format 2' files). {fix}"
        )
    y = _integer_labels(mat["y"], 1, 10, x.shape[3], str(path), fix)
    x, y = x[..., :limit], y[:limit]
    # X[row, col, channel, n] -> (n, channel, row, col); label 10 is the digit 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10


# --------------------------------------------------------------------------------------- CIFAR-10

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_TAR = "cifar-10-python.tar.gz"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_MEMBERS = (*CIFAR_TRAIN, "test_batch", "batches.meta")


def _load_cifar10(root, download, max_train, max_test) -> ImageDataset:
    folder = _folder(root, "cifar10")
    batches, origin = _find_cifar(folder, download)
    parts, labels, have = [], [], 0
    for fname in CIFAR_TRAIN:
        if max_train is not None and have >= max_train:
            break
        x, y = _read_cifar_batch(batches / fname, origin)
        parts.append(x)
        labels.append(y)
        have += len(x)
    xtr = np.concatenate(parts) if parts else np.zeros((0, 3072), np.uint8)
    ytr = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    xte, yte = _read_cifar_batch(batches / "test_batch", origin)
    xtr, ytr, xte, yte = xtr[:max_train], ytr[:max_train], xte[:max_test], yte[:max_test]
    return ImageDataset(
        name="cifar10",
        source=origin,
        train=_pixels(xtr.reshape(-1, 3, 32, 32)),
        test=_pixels(xte.reshape(-1, 3, 32, 32)),
        train_labels=_labels(ytr),
        test_labels=_labels(yte),
        classes=_read_cifar_meta(batches / "batches.meta", origin),
    )


def _find_cifar(folder: Path, download: bool) -> tuple[Path, str]:
    """The folder of the pickled batches and a description of where they came from."""
    for d in (folder, folder / CIFAR_DIR):
        if (d / "test_batch").is_file() or (d / CIFAR_TRAIN[0]).is_file():
            return d, str(d)
    tar = folder / CIFAR_TAR
    if not tar.is_file() and download:
        download_file([CIFAR_URL], tar, CIFAR_MD5)
    if tar.is_file():
        return _extract_cifar(tar), f"{tar} (extracted into {cache_dir() / 'cifar10'})"
    raise _missing(
        "cifar10",
        folder,
        [f"{CIFAR_DIR}/ (data_batch_1..5, test_batch, batches.meta)", CIFAR_TAR],
        f"Put the python version of CIFAR-10 there ({CIFAR_URL}, as the tarball or extracted), or "
        f"{_HOW_TO_PASS} naming a folder that holds it.",
    )


def _extract_cifar(tar: Path) -> Path:
    """Extract the batches of ``tar`` once into the cache, in a folder named by the tarball's md5.

    Only the known member names are written (no path from the archive is used), to a temporary
    folder renamed into place when complete, so a cut-short extraction is never taken for a good one.
    """
    digest = md5_of(tar)
    parent = cache_dir() / "cifar10" / f"extracted-{digest[:16]}"
    dest = parent / CIFAR_DIR
    if (dest / ".complete").is_file():
        return dest
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=parent))
    fix = f"Delete it and download it again ({CIFAR_URL}, or --download), or copy a good copy there."
    try:
        wanted = {f"{CIFAR_DIR}/{m}": m for m in _CIFAR_MEMBERS}
        found = 0
        try:
            with tarfile.open(tar, "r:gz") as tf:
                for member in tf:
                    m = wanted.get(member.name.removeprefix("./"))
                    if m is None or not member.isfile():
                        continue
                    member_file = tf.extractfile(member)
                    assert member_file is not None  # a regular file (checked above)
                    with member_file as src, open(tmp / m, "wb") as out:
                        shutil.copyfileobj(src, out)
                    found += 1
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DatasetError(
                f"{tar}: truncated or corrupt tarball ({type(exc).__name__}: {exc}). {fix}"
            ) from exc
        if not found:
            raise DatasetError(
                f"{tar}: holds no {CIFAR_DIR}/ batches; it is not the CIFAR-10 python tarball. {fix}"
            )
        (tmp / ".complete").write_text(f"extracted from {tar} (md5 {digest})\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# numpy's array reconstructors (protocols 2-4, and 5), whatever their module path in this numpy
_NP_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]


def _latin1_encode(obj, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles of bytes use it, restricted to latin-1 text."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return codecs.encode(obj, "latin1")


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numpy arrays.

    Unpickling can run arbitrary code through the globals a pickle names. We only read files the
    user points to, and this unpickler refuses every global except numpy's array reconstruction
    (``numpy[._]core.multiarray._reconstruct``, ``numpy[._]core.numeric._frombuffer``,
    ``numpy.ndarray``, ``numpy.dtype``) and the latin-1 ``_codecs.encode`` of protocol-2 bytes:
    dicts, lists, bytes, str and ints need no globals.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _NP_FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _NP_FROMBUFFER,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the pickle names the global {module}.{name}, which a CIFAR-10 batch never does (refused)"
            ) from None


def _unpickle(path: Path, origin: str):
    fix = f"Delete it and get CIFAR-10 again ({CIFAR_URL}, or --download), or copy a good copy there."
    if not path.is_file():
        raise DatasetNotFoundError(
            f"cifar10: {path.name} not found in {path.parent} (from {origin}): the CIFAR-10 python version "
            f"has {', '.join(_CIFAR_MEMBERS)}. {fix}"
        )
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a bad pickle can raise almost anything (UnpicklingError, EOFError, ...)
        raise DatasetError(
            f"{path}: cannot read as a CIFAR-10 batch ({type(exc).__name__}: {exc}); it is truncated, "
            f"corrupt or not a CIFAR-10 python file. {fix}"
        ) from exc


def _field(obj, key: str):
    return obj.get(key.encode(), obj.get(key))


def _read_cifar_batch(path: Path, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(N, 3072)`` rows (3 planes of 32×32, row-major) and int64 labels 0-9."""
    obj = _unpickle(path, origin)
    fix = f"Delete it and get CIFAR-10 again ({CIFAR_URL}, or --download)."
    if not isinstance(obj, dict):
        raise DatasetError(
            f"{path}: holds a {type(obj).__name__}, expected the dict of a CIFAR-10 batch. {fix}"
        )
    data, labels = _field(obj, "data"), _field(obj, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: b'data' is {what}, expected a uint8 array (N, 3072). {fix}")
    if not isinstance(labels, (list, np.ndarray)):
        raise DatasetError(f"{path}: b'labels' is {type(labels).__name__}, expected a list of 0-9. {fix}")
    return data, _integer_labels(labels, 0, 9, len(data), str(path), fix)


def _read_cifar_meta(path: Path, origin: str) -> list[str]:
    if not path.is_file():  # the label names are fixed; batches.meta only repeats them
        return list(CIFAR_CLASSES)
    obj = _unpickle(path, origin)
    names = _field(obj, "label_names") if isinstance(obj, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetError(f"{path}: no list of 10 b'label_names'; not the CIFAR-10 batches.meta. Delete it.")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


# ----------------------------------------------------------------------------------------- CelebA

CELEBA_IMAGES = "img_align_celeba"
CELEBA_ATTR = "list_attr_celeba.txt"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SIZE = (178, 218)  # width, height of the aligned and cropped images
#: the official partition by image number (also Fuel's TRAIN_STOP / VALID_STOP)
CELEBA_TRAIN_STOP, CELEBA_VALID_STOP = 162770, 182637
_CELEBA_HOW = (
    "download 'Align&Cropped Images' (img_align_celeba.zip) and Anno/list_attr_celeba.txt, "
    "Eval/list_eval_partition.txt from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unzip them into "
    "one folder: <folder>/img_align_celeba/000001.jpg ..., <folder>/list_attr_celeba.txt, "
    "<folder>/list_eval_partition.txt; pass that folder as --data-root DIR (root=DIR)"
)
_CELEBA_CACHE_VERSION = "celeba64-v1 resize(64,78) lanczos crop(0,7,64,71)"


def _load_celeba(root, download, max_train, max_test) -> ImageDataset:
    """CelebA at 64×64, as Fuel's ``convert_celeba_64`` made it for the ALI code.

    Crop: each aligned 178×218 image is resized to 64×78 (width × height) with PIL's Lanczos
    filter (Fuel's ``Image.ANTIALIAS``), then the central 64 rows are kept (``crop((0, 7, 64, 71))``).
    The thesis states no crop; this is the preprocessing of the authors' data pipeline.

    Split: ``list_eval_partition.txt`` when present, else the official split by image number
    (1-162,770 train, 162,771-182,637 valid, the rest test). Train = partition 0, test = partition
    1 (the validation set of the figures).

    Cache: the decoded 64×64 uint8 images are saved to ``cache_dir()/celeba/decoded/*.npz``, named
    by a hash of the folder, the crop, and the name, size and mtime of every image decoded (so
    ``max_train`` / ``max_test`` subsets have their own file, and a changed image is decoded again);
    the second load reads that file instead of decoding the JPEGs.
    """
    folder = _folder(root, "celeba")
    img_dir = folder / CELEBA_IMAGES
    if (img_dir / CELEBA_IMAGES).is_dir():  # img_align_celeba.zip unzipped into a folder of its own name
        img_dir = img_dir / CELEBA_IMAGES
    attr_path = folder / CELEBA_ATTR
    missing = []
    if not img_dir.is_dir():
        missing.append(f"{CELEBA_IMAGES}/ (000001.jpg ...)")
    if not attr_path.is_file():
        missing.append(CELEBA_ATTR)
    if missing:
        how = f"CelebA has no public checksummed download: {_CELEBA_HOW}."
        raise _missing("celeba", folder, missing, how)
    names, attrs, attr_names = _read_celeba_attr(attr_path)
    part_path = folder / CELEBA_PARTITION
    if part_path.is_file():
        partition = _read_celeba_partition(part_path, names, attr_path)
        split_from = part_path.name
    else:
        partition = _partition_by_number(names, attr_path)
        split_from = "the official numbering (no list_eval_partition.txt)"
    train_idx = np.flatnonzero(partition == 0)[:max_train]
    test_idx = np.flatnonzero(partition == 1)[:max_test]
    images = _celeba_images(img_dir, [names[i] for i in (*train_idx, *test_idx)], attr_path)
    return ImageDataset(
        name="celeba",
        source=(
            f"{folder} (img_align_celeba resized to 64x78 with Lanczos, centre 64x64 kept; train = "
            f"partition 0, test = partition 1 (valid), from {split_from})"
        ),
        train=_pixels(images[: len(train_idx)]),
        test=_pixels(images[len(train_idx) :]),
        train_labels=torch.from_numpy(attrs[train_idx]),
        test_labels=torch.from_numpy(attrs[test_idx]),
        classes=attr_names,
    )


def _read_text(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not a text file ({exc}); copy a good copy of it from the CelebA site."
        ) from exc


def _read_celeba_attr(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Image names, float32 ``(N, 40)`` attributes in {0, 1}, and the 40 attribute names."""
    fix = "Copy a good copy of list_attr_celeba.txt from the CelebA site (Anno/)."
    lines = _read_text(path)
    if len(lines) < 2:
        raise DatasetError(
            f"{path}: {len(lines)} lines; expected the image count, 40 attribute names, rows. {fix}"
        )
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DatasetError(
            f"{path}: line 1 is {lines[0][:40]!r}, expected the number of images. {fix}"
        ) from None
    attr_names = lines[1].split()
    if len(attr_names) != 40:
        raise DatasetError(f"{path}: line 2 names {len(attr_names)} attributes, expected 40. {fix}")
    rows = [line for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DatasetError(
            f"{path}: line 1 announces {count} images but the file has {len(rows)} rows; it is truncated or "
            f"edited. {fix}"
        )
    if not rows:
        raise DatasetError(f"{path}: lists no images. {fix}")
    pairs = [line.split(None, 1) for line in rows]
    bad = next((i for i, p in enumerate(pairs) if len(p) != 2), None)
    if bad is not None:
        raise DatasetError(f"{path}: row {bad + 1} ({rows[bad][:40]!r}) has no attribute values. {fix}")
    names = [p[0] for p in pairs]
    try:  # numpy's C parser: a second for the 202,599 rows, where str.split takes several
        values = np.loadtxt([p[1] for p in pairs], dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{path}: attribute rows that do not parse ({exc}). {fix}") from None
    if values.shape != (len(rows), 40):
        raise DatasetError(
            f"{path}: rows of {values.shape[1]} values after the file name, expected 40. {fix}"
        )
    bad_cells = np.argwhere((values != 1) & (values != -1))
    if len(bad_cells):
        i, j = bad_cells[0]
        raise DatasetError(
            f"{path}: {names[i]} has {attr_names[j]} = {values[i, j]}, expected -1 or 1 "
            f"({len(bad_cells)} bad values). {fix}"
        )
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: an image is listed twice. {fix}")
    return names, (values > 0).astype(np.float32), attr_names


def _read_celeba_partition(path: Path, names: list[str], attr_path: Path) -> np.ndarray:
    fix = (
        "Copy a good copy of list_eval_partition.txt from the CelebA site (Eval/), or delete it to split "
        "by number."
    )
    table: dict[str, int] = {}
    for k, line in enumerate(_read_text(path)):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetError(f"{path}: line {k + 1} is {line[:60]!r}, expected '<image>.jpg 0|1|2'. {fix}")
        table[fields[0]] = int(fields[1])
    absent = [n for n in names if n not in table]
    if absent:
        raise DatasetError(
            f"{path}: no partition for {len(absent)} image(s) of {attr_path.name}, first {absent[0]}; the "
            f"two files do not describe the same images. {fix}"
        )
    return np.array([table[n] for n in names], dtype=np.int64)


def _partition_by_number(names: list[str], attr_path: Path) -> np.ndarray:
    try:
        numbers = np.array([int(n.rsplit(".", 1)[0]) for n in names], dtype=np.int64)
    except ValueError:
        raise DatasetError(
            f"{attr_path}: image names that are not numbers (e.g. {names[0]!r}); without "
            f"{CELEBA_PARTITION} the split follows the official numbering 000001.jpg ... Put "
            f"{CELEBA_PARTITION} next to {attr_path.name}."
        ) from None
    return np.where(numbers <= CELEBA_TRAIN_STOP, 0, np.where(numbers <= CELEBA_VALID_STOP, 1, 2))


def _decode_celeba(path: Path) -> np.ndarray:
    """uint8 ``(3, 64, 64)``: Fuel's CelebA 64 preprocessing of one aligned image."""
    from PIL import Image

    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    try:
        with Image.open(path) as im:
            if im.size != CELEBA_SIZE:
                raise DatasetError(
                    f"{path}: {im.size[0]}x{im.size[1]} pixels, expected the aligned and cropped 178x218 "
                    "images of img_align_celeba (not the in-the-wild ones)."
                )
            small = im.convert("RGB").resize((64, 78), lanczos).crop((0, 7, 64, 71))
            arr = np.asarray(small, dtype=np.uint8)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"{path}: does not decode as a JPEG ({type(exc).__name__}: {exc}); it is truncated or corrupt. "
            "Copy a good copy from img_align_celeba.zip."
        ) from exc
    return arr.transpose(2, 0, 1)


def _celeba_images(img_dir: Path, names: list[str], attr_path: Path) -> np.ndarray:
    """The decoded images ``(N, 3, 64, 64)`` of ``names``, from the cache when it has them."""
    key = hashlib.sha256(f"{_CELEBA_CACHE_VERSION}\n{img_dir.resolve()}\n".encode())
    absent = []
    for n in names:
        try:
            st = (img_dir / n).stat()
        except FileNotFoundError:
            absent.append(n)
            continue
        key.update(f"{n}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if absent:
        raise DatasetNotFoundError(
            f"celeba: {len(absent)} image(s) listed in {attr_path.name} are missing from {img_dir}, first "
            f"{absent[0]}. Unzip all of img_align_celeba.zip there."
        )
    cache = cache_dir() / "celeba" / "decoded" / f"celeba64-{key.hexdigest()[:24]}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                images = z["images"]
            if images.shape == (len(names), 3, 64, 64) and images.dtype == np.uint8:
                return images
        except Exception:  # a damaged cache file is ours: decode again and replace it
            pass
    images = np.empty((len(names), 3, 64, 64), dtype=np.uint8)
    # PIL decodes and resizes without the GIL, so threads use every core; chunks bound the futures
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(names), 4096):
            chunk = names[start : start + 4096]
            for i, arr in enumerate(pool.map(_decode_celeba, [img_dir / n for n in chunk]), start):
                images[i] = arr
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=cache.name + ".", suffix=".part", dir=cache.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=images)
            os.replace(tmp, cache)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(f"could not cache the decoded CelebA images at {cache}: {exc}", stacklevel=3)
    return images


# ------------------------------------------------------------------------------------- ImageNet64

IMAGENET64_TRAIN = tuple(f"train_data_batch_{i}.npz" for i in range(1, 11))
IMAGENET64_VAL = "val_data.npz"
_IMAGENET64_SUBDIRS = ("", "Imagenet64_train_npz", "Imagenet64_val_npz")
_IMAGENET_HOW = (
    "download Imagenet64_train_npz.zip and Imagenet64_val_npz.zip from https://image-net.org/download-images "
    "('Downsampled ImageNet 64x64', login needed) and unzip them into one folder; pass that folder as "
    "--data-root DIR (root=DIR)"
)


def _load_imagenet64(root, download, max_train, max_test) -> ImageDataset:
    """ImageNet 64×64 of Chrabaszcz et al. (2017): the npz batches, read in order.

    With ``max_train`` only the first batches holding that many images are read (each batch is
    about 128,000 images, 1.6 GB of uint8); the full training set takes 15.7 GB as uint8 and 63 GB
    as the float32 this loader returns.
    """
    folder = _folder(root, "imagenet64")
    val = _find_imagenet_file(folder, IMAGENET64_VAL)
    if val is None:
        how = f"No public checksummed download: {_IMAGENET_HOW}."
        raise _missing("imagenet64", folder, [IMAGENET64_VAL], how)
    parts, labels, have, used = [], [], 0, []
    for fname in IMAGENET64_TRAIN:
        if max_train is not None and have >= max_train:
            break
        path = _find_imagenet_file(folder, fname)
        if path is None:
            need = "all ten batches" if max_train is None else f"{max_train:,} images"
            raise _missing(
                "imagenet64",
                folder,
                [fname],
                f"Reading {need} needs it (after {have:,} images in the batches before). {_IMAGENET_HOW}; "
                "or pass a smaller max_train.",
            )
        x, y = _read_imagenet_npz(path, None if max_train is None else max_train - have)
        parts.append(x)
        labels.append(y)
        have += len(x)
        used.append(path.name)
    if not parts:
        parts.append(np.zeros((0, 3, 64, 64), np.uint8))
    xtr = np.concatenate(parts) if len(parts) > 1 else parts[0]
    ytr = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    parts.clear()  # the batches are in xtr now: free them before the float copy
    xte, yte = _read_imagenet_npz(val, max_test)
    return ImageDataset(
        name="imagenet64",
        source=f"{folder} ({', '.join(used) or 'no train batch'} + {IMAGENET64_VAL}; labels 1-1000 -> 0-999)",
        train=_pixels(xtr),
        test=_pixels(xte),
        train_labels=_labels(ytr),
        test_labels=_labels(yte),
        classes=None,
    )


def _find_imagenet_file(folder: Path, fname: str) -> Path | None:
    for sub in _IMAGENET64_SUBDIRS:
        p = folder / sub / fname
        if p.is_file():
            return p
    return None


def _read_imagenet_npz(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(n, 3, 64, 64)`` (the 12,288 values are 3 planes of 64×64) and labels 0-999."""
    fix = "Delete it and unzip it again from the Imagenet64 npz archives, or copy a good copy there."
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            if "data" not in keys or "labels" not in keys:
                raise DatasetError(
                    f"{path}: arrays {keys}, expected 'data' and 'labels' (an Imagenet64 npz batch). {fix}"
                )
            data, labels = z["data"], z["labels"]
    except DatasetError:
        raise
    except Exception as exc:  # np.load: BadZipFile, ValueError (pickled data), OSError, EOFError, zlib.error
        raise DatasetError(
            f"{path}: cannot read as an npz file ({type(exc).__name__}: {exc}); it is truncated or "
            f"corrupt. {fix}"
        ) from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 64 * 64:
        raise DatasetError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 12288). {fix}")
    y = _integer_labels(labels, 1, 1000, len(data), str(path), fix)
    return data[:limit].reshape(-1, 3, 64, 64), y[:limit] - 1
