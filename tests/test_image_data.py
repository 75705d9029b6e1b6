"""Image datasets for ALI: each format written small and genuine in tmp_path, then read back."""

from __future__ import annotations

import collections
import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

import physamp.data.download as dl
import physamp.data.images as im
from physamp.data import IMAGE_DATASETS, DatasetError, DatasetNotFoundError, ImageDataset, load_image_dataset

PIL = pytest.importorskip("PIL")
sio = pytest.importorskip("scipy.io")
from PIL import Image  # noqa: E402

SHARED = dl.find_shared_datasets()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache and cannot reach the network."""
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: pytest.fail(f"unexpected download of {url}"))


def _fake_fetch(monkeypatch, files: dict[str, bytes]):
    """Serve ``files`` (URL -> content) instead of the network; returns the list of URLs asked for."""
    asked = []

    def fetch(url, dest, timeout=60.0):
        asked.append(url)
        with open(dest, "wb") as f:
            f.write(files[url])

    monkeypatch.setattr(dl, "_fetch", fetch)
    return asked


def _check_images(x: torch.Tensor, shape):
    assert x.dtype == torch.float32 and tuple(x.shape) == shape
    if x.numel():
        assert x.min() >= 0.0 and x.max() <= 1.0


# ---------------------------------------------------------------------------------------- general


def test_names_and_bad_arguments(tmp_path):
    assert IMAGE_DATASETS == ("mnist", "svhn", "cifar10", "celeba", "imagenet64")
    with pytest.raises(
        DatasetError, match=r"unknown image dataset 'lsun'.*mnist, svhn, cifar10, celeba, imagenet64"
    ):
        load_image_dataset("lsun")
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(DatasetError, match="max_train must be None or an integer"):
            load_image_dataset("svhn", tmp_path, max_train=bad)
    for name in ("mnist", "celeba", "imagenet64"):
        with pytest.raises(DatasetError, match=f"{name} cannot be downloaded.*drop --download"):
            load_image_dataset(name, tmp_path, download=True)
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(
        DatasetNotFoundError, ValueError
    )


# ------------------------------------------------------------------------------------------ MNIST


@pytest.mark.skipif(SHARED is None, reason="shared/datasets/mnist not found")
def test_mnist_offline_grey_levels_and_split():
    from physamp.data.mnist import _offline_arrays

    ds = load_image_dataset("mnist")
    assert isinstance(ds, ImageDataset) and ds.name == "mnist-offline" and ds.image_shape == (1, 28, 28)
    _check_images(ds.train, (13_000, 1, 28, 28))
    _check_images(ds.test, (2_000, 1, 28, 28))
    assert len(ds.train.unique()) > 200  # grey levels, not binarised
    a = _offline_arrays(SHARED)
    assert torch.equal(ds.train[0, 0], torch.from_numpy(a["csv_x"][0] / np.float32(255)))
    assert torch.equal(ds.train[5000, 0], torch.from_numpy(a["test_x"][0] / np.float32(255)))
    assert torch.equal(ds.test[0, 0], torch.from_numpy(a["test_x"][8000] / np.float32(255)))
    assert ds.train_labels.dtype == torch.int64 and ds.train_labels[5000] == int(a["test_y"][0])
    assert ds.test_labels.tolist() == a["test_y"][8000:].tolist()
    small = load_image_dataset("mnist", max_train=7, max_test=3)
    assert small.train.shape[0] == 7 and small.test.shape[0] == 3


def test_mnist_falls_back_to_bundled_slice(monkeypatch, tmp_path):
    monkeypatch.setattr(im, "find_shared_datasets", lambda root=None: None)
    ds = load_image_dataset("mnist")
    assert ds.name == "mnist-bundled"
    _check_images(ds.train, (2_000, 1, 28, 28))
    _check_images(ds.test, (500, 1, 28, 28))
    assert len(ds.test.unique()) > 2 and ds.test_labels.dtype == torch.int64
    # a root that holds no offline files is an error, not a silent fallback
    with pytest.raises(DatasetNotFoundError, match=r"mnist_5k\.csv\.gz.*not found in .*empty"):
        load_image_dataset("mnist", tmp_path / "empty")


# ------------------------------------------------------------------------------------------- SVHN


def _svhn_arrays(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 200, (32, 32, 3, n), dtype=np.uint8)  # X[row, col, channel, image]
    y = (np.arange(n) % 10 + 1).astype(np.float64).reshape(n, 1)  # 1..10, 10 is the digit 0
    return x, y


def _write_svhn(folder, n_train=7, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    x, y = _svhn_arrays(n_train, 0)
    x[0, 1, 0, 0] = 250  # image 0, channel 0, row 0, col 1
    x[3, 5, 2, 4] = 251  # image 4, channel 2, row 3, col 5
    sio.savemat(folder / "train_32x32.mat", {"X": x, "y": y})
    xt, yt = _svhn_arrays(n_test, 1)
    sio.savemat(folder / "test_32x32.mat", {"X": xt, "y": yt})
    return x, y


def test_svhn_reads_mat_files(tmp_path):
    x, y = _write_svhn(tmp_path)
    ds = load_image_dataset("svhn", tmp_path)
    assert ds.name == "svhn" and ds.image_shape == (3, 32, 32) and "train_32x32.mat" in ds.source
    _check_images(ds.train, (7, 3, 32, 32))
    _check_images(ds.test, (5, 3, 32, 32))
    assert ds.train[0, 0, 0, 1] == 250 / 255 and ds.train[4, 2, 3, 5] == 251 / 255
    assert torch.equal(ds.train[6], torch.from_numpy(x[..., 6].transpose(2, 0, 1) / np.float32(255)))
    assert ds.train_labels.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert load_image_dataset("svhn", tmp_path, max_train=12).train_labels.tolist()[:7] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
    ]
    _write_svhn(tmp_path / "ten", n_train=10)
    labels = load_image_dataset("svhn", tmp_path / "ten").train_labels
    assert labels.dtype == torch.int64 and labels[9] == 0  # the label 10 is the digit 0
    small = load_image_dataset("svhn", tmp_path, max_train=3, max_test=0)
    assert small.train.shape[0] == 3 and small.test.shape == (0, 3, 32, 32)


def test_svhn_missing_files_say_where_and_download(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as e:
        load_image_dataset("svhn", tmp_path)
    msg = str(e.value)
    assert "train_32x32.mat" in msg and "test_32x32.mat" in msg and str(tmp_path) in msg
    assert "http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in msg
    assert "--download" in msg and "--data-root DIR" in msg
    # download=True into the cache, md5-checked (the checksums of these small files stand in)
    src = tmp_path / "src"
    _write_svhn(src)
    content = {f: (src / f).read_bytes() for f in ("train_32x32.mat", "test_32x32.mat")}
    monkeypatch.setattr(
        im,
        "SVHN_FILES",
        {
            k: (f, dl.md5_of(content[f]))
            for k, f in (("train", "train_32x32.mat"), ("test", "test_32x32.mat"))
        },
    )
    asked = _fake_fetch(monkeypatch, {im.SVHN_URL + f: b for f, b in content.items()})
    ds = load_image_dataset("svhn", download=True)
    assert len(asked) == 2 and ds.train.shape == (7, 3, 32, 32)
    assert (dl.cache_dir() / "svhn" / "train_32x32.mat").is_file()
    load_image_dataset("svhn", download=True)
    assert len(asked) == 2  # present now: nothing fetched again


def test_svhn_bad_files_name_the_file(tmp_path):
    _write_svhn(tmp_path)
    train = tmp_path / "train_32x32.mat"
    good = train.read_bytes()
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": b"not a matlab file" * 20,
    }
    for what, data in cases.items():
        train.write_bytes(data)
        with pytest.raises(DatasetError, match=r"train_32x32\.mat: cannot read as a MATLAB file") as e:
            load_image_dataset("svhn", tmp_path)
        assert "--download" in str(e.value), what
    x, y = _svhn_arrays(4, 0)
    sio.savemat(train, {"X": x[:16], "y": y})
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: X is uint8 of shape \(16, 32, 3, 4\)"):
        load_image_dataset("svhn", tmp_path)
    sio.savemat(train, {"X": x, "y": np.array([[1], [2], [11], [3]])})
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: label 11 of image 2 is out of range"):
        load_image_dataset("svhn", tmp_path)
    sio.savemat(train, {"X": x, "y": y[:3]})
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: 4 images but labels of shape"):
        load_image_dataset("svhn", tmp_path)
    sio.savemat(train, {"X": x})
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: no 'X' and 'y'"):
        load_image_dataset("svhn", tmp_path)


# --------------------------------------------------------------------------------------- CIFAR-10


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` and numpy's reconstructor under its old module path,
    as the cPickle of Python 2 that made the CIFAR-10 python files did."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        b = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(b) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type] = save_global


def _py2_dump(obj, path):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def _cifar_batch(n: int, seed: int, label: str):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 200, (n, 3072), dtype=np.uint8),  # rows: R plane, G plane, B plane
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def _write_cifar(folder, n_batches=5, per_batch=2, n_test=3):
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = []
    for i in range(1, n_batches + 1):
        b = _cifar_batch(per_batch, i, f"training batch {i} of 5")
        if i == 1:
            b[b"data"][0, 0 * 1024 + 0 * 32 + 1] = 250  # image 0, channel 0, row 0, col 1
            b[b"data"][1, 2 * 1024 + 3 * 32 + 5] = 251  # image 1, channel 2, row 3, col 5
        _py2_dump(b, d / f"data_batch_{i}")
        batches.append(b)
    test = _cifar_batch(n_test, 99, "testing batch 1 of 1")
    _py2_dump(test, d / "test_batch")
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [n.encode() for n in im.CIFAR_CLASSES],
        b"num_vis": 3072,
    }
    with open(d / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)  # Python 3's protocol 2: bytes through _codecs.encode
    return d, batches, test


def test_cifar10_reads_the_python_batches(tmp_path):
    d, batches, test = _write_cifar(tmp_path)
    for root in (tmp_path, d):  # the folder above cifar-10-batches-py, or that folder itself
        ds = load_image_dataset("cifar10", root)
        assert ds.name == "cifar10" and ds.image_shape == (3, 32, 32)
        _check_images(ds.train, (10, 3, 32, 32))
        _check_images(ds.test, (3, 3, 32, 32))
        assert ds.train[0, 0, 0, 1] == 250 / 255 and ds.train[1, 2, 3, 5] == 251 / 255
        assert ds.train_labels.tolist() == sum((b[b"labels"] for b in batches), [])
        assert ds.test_labels.tolist() == test[b"labels"] and ds.train_labels.dtype == torch.int64
        assert torch.equal(ds.test, torch.from_numpy(test[b"data"].reshape(3, 3, 32, 32) / np.float32(255)))
        assert ds.classes == list(im.CIFAR_CLASSES)
    small = load_image_dataset("cifar10", tmp_path, max_train=3, max_test=1)
    assert small.train.shape[0] == 3 and small.test.shape[0] == 1
    assert small.train_labels.tolist() == ds.train_labels.tolist()[:3]


def test_cifar10_reads_only_the_batches_it_needs(tmp_path):
    d, _, _ = _write_cifar(tmp_path, n_batches=2, per_batch=3)
    assert load_image_dataset("cifar10", tmp_path, max_train=6).train.shape[0] == 6
    with pytest.raises(
        DatasetNotFoundError, match=r"cifar10: data_batch_3 not found in .*cifar-10-batches-py"
    ):
        load_image_dataset("cifar10", tmp_path)
    (d / "batches.meta").unlink()  # optional: the names are fixed
    assert load_image_dataset("cifar10", tmp_path, max_train=2).classes == list(im.CIFAR_CLASSES)


def test_cifar10_batches_pickled_again_by_python3(tmp_path):
    """Batches re-saved by Python 3 (protocol 2 with _codecs, protocol 5 with _frombuffer) read too."""
    d, batches, _ = _write_cifar(tmp_path, n_batches=2)
    for protocol, name in ((2, "data_batch_1"), (5, "data_batch_2")):
        with open(d / name, "wb") as f:
            pickle.dump(batches[int(name[-1]) - 1], f, protocol=protocol)
    ds = load_image_dataset("cifar10", tmp_path, max_train=4)
    expected = np.concatenate([b[b"data"] for b in batches]).reshape(4, 3, 32, 32)
    assert torch.equal(ds.train, torch.from_numpy(expected / np.float32(255)))


def _tar_cifar(src_dir, tar_path):
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(src_dir, arcname="cifar-10-batches-py")


def test_cifar10_tarball_is_extracted_once_into_the_cache(tmp_path):
    d, _, _ = _write_cifar(tmp_path / "src")
    expected = load_image_dataset("cifar10", d)
    root = tmp_path / "root"
    root.mkdir()
    _tar_cifar(d, root / "cifar-10-python.tar.gz")
    ds = load_image_dataset("cifar10", root)
    assert torch.equal(ds.train, expected.train) and torch.equal(ds.test_labels, expected.test_labels)
    assert "cifar-10-python.tar.gz" in ds.source
    extracted = list((dl.cache_dir() / "cifar10").glob("extracted-*/cifar-10-batches-py/.complete"))
    assert len(extracted) == 1
    stamp = extracted[0].stat().st_mtime_ns
    assert torch.equal(load_image_dataset("cifar10", root).train, expected.train)
    assert extracted[0].stat().st_mtime_ns == stamp  # not extracted again


def test_cifar10_download_and_missing(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as e:
        load_image_dataset("cifar10")
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and str(dl.cache_dir() / "cifar10") in msg
    assert im.CIFAR_URL in msg and "--download" in msg and "--data-root DIR" in msg
    d, _, _ = _write_cifar(tmp_path / "src")
    _tar_cifar(d, tmp_path / "c.tgz")
    blob = (tmp_path / "c.tgz").read_bytes()
    monkeypatch.setattr(im, "CIFAR_MD5", dl.md5_of(blob))
    asked = _fake_fetch(monkeypatch, {im.CIFAR_URL: blob})
    ds = load_image_dataset("cifar10", download=True)
    assert asked == [im.CIFAR_URL] and ds.train.shape == (10, 3, 32, 32)
    assert (dl.cache_dir() / "cifar10" / "cifar-10-python.tar.gz").is_file()
    monkeypatch.setattr(im, "CIFAR_MD5", "0" * 32)  # a mirror serving other bytes: refused, nothing kept
    with pytest.raises(ValueError, match="failed its checksum"):
        load_image_dataset("cifar10", tmp_path / "elsewhere", download=True)
    assert not (tmp_path / "elsewhere" / "cifar-10-python.tar.gz").exists()


def test_cifar10_bad_files_name_the_file(tmp_path):
    d, _, _ = _write_cifar(tmp_path)
    batch = d / "data_batch_2"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"data_batch_2: cannot read as a CIFAR-10 batch"):
        load_image_dataset("cifar10", tmp_path)
    # a pickle that names any other global is refused before anything runs
    evil = collections.OrderedDict(data=1)
    batch.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DatasetError, match=r"data_batch_2: .*global collections\.OrderedDict.*refused"):
        load_image_dataset("cifar10", tmp_path)
    for obj, pattern in [
        ([1, 2], r"data_batch_2: holds a list"),
        (
            {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
            r"data_batch_2: b'data' is uint8 \(2, 100\)",
        ),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"data_batch_2: label 10 of image 1"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"data_batch_2: 2 images but labels"),
    ]:
        _py2_dump(obj, batch)
        with pytest.raises(DatasetError, match=pattern):
            load_image_dataset("cifar10", tmp_path)
    # a tarball cut short
    batch.write_bytes(good)
    root = tmp_path / "tar"
    root.mkdir()
    _tar_cifar(d, root / "cifar-10-python.tar.gz")
    blob = (root / "cifar-10-python.tar.gz").read_bytes()
    (root / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz: truncated or corrupt tarball"):
        load_image_dataset("cifar10", root)
    assert not list((dl.cache_dir() / "cifar10").glob("extracted-*/cifar-10-batches-py"))
    (root / "cifar-10-python.tar.gz").write_bytes(gzip.compress(b"\0" * 10240))  # a valid but empty tar
    with pytest.raises(DatasetError, match=r"holds no cifar-10-batches-py/ batches"):
        load_image_dataset("cifar10", root)


# ----------------------------------------------------------------------------------------- CelebA

_CELEBA_NAMES = ["000001.jpg", "000002.jpg", "000003.jpg", "162771.jpg", "162772.jpg", "182638.jpg"]
_CELEBA_PARTS = [0, 0, 0, 1, 1, 2]
_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows"] + [f"Attr_{i}" for i in range(38)]


def _quadrants(seed: int) -> np.ndarray:
    """A 218×178 RGB face stand-in: red / green / blue / white quadrants, a black band at the top."""
    a = np.zeros((218, 178, 3), np.uint8)
    a[:109, :89] = (255, 0, 0)
    a[:109, 89:] = (0, 255, 0)
    a[109:, :89] = (0, 0, 255)
    a[109:, 89:] = (255, 255, 255)
    a[:10] = 0  # cut away by the crop (about 19.6 source rows at the top)
    a[100:118, 80:98] = seed * 30  # a small mark that differs between images
    return a


def _write_celeba(folder, partition=True):
    img = folder / "img_align_celeba"
    img.mkdir(parents=True)
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(len(_CELEBA_NAMES), 40))
    for k, n in enumerate(_CELEBA_NAMES):
        Image.fromarray(_quadrants(k)).save(img / n, quality=95)
    rows = [f"{n} " + " ".join(f"{v:2d}" for v in row) for n, row in zip(_CELEBA_NAMES, values, strict=True)]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(rows)}\n" + " ".join(_ATTRS) + " \n" + "\n".join(rows) + "\n"
    )
    if partition:
        lines = [f"{n} {p}" for n, p in zip(_CELEBA_NAMES, _CELEBA_PARTS, strict=True)]
        (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return values


def _fuel_64(path) -> np.ndarray:
    """Fuel's convert_celeba_64, written out independently: resize to 64×78, keep rows 7-70."""
    with Image.open(path) as x:
        return np.asarray(x.resize((64, 78), Image.LANCZOS).crop((0, 7, 64, 71))).transpose(2, 0, 1)


def test_celeba_64_attributes_and_partition(tmp_path):
    values = _write_celeba(tmp_path)
    ds = load_image_dataset("celeba", tmp_path)
    assert ds.name == "celeba" and ds.image_shape == (3, 64, 64) and ds.classes == _ATTRS
    _check_images(ds.train, (3, 3, 64, 64))
    _check_images(ds.test, (2, 3, 64, 64))  # partition 1 (valid); the partition-2 image is left out
    assert ds.train_labels.dtype == torch.float32 and tuple(ds.train_labels.shape) == (3, 40)
    assert torch.equal(ds.train_labels, torch.from_numpy((values[:3] > 0).astype(np.float32)))
    assert torch.equal(ds.test_labels, torch.from_numpy((values[3:5] > 0).astype(np.float32)))
    for k, x in [(0, ds.train[0]), (2, ds.train[2]), (4, ds.test[1])]:
        ref = _fuel_64(tmp_path / "img_align_celeba" / _CELEBA_NAMES[k])
        assert torch.equal(x, torch.from_numpy(ref / np.float32(255)))
    # orientation: channels R, G, B; rows top to bottom; columns left to right; the black band cropped
    u8 = (ds.train[0] * 255).round()
    assert u8[0, 0, 0] > 240 and u8[1, 0, 0] < 15 and u8[2, 0, 0] < 15  # top-left red
    assert u8[1, 0, 63] > 240 and u8[0, 0, 63] < 15  # top-right green
    assert u8[2, 63, 0] > 240 and u8[0, 63, 0] < 15  # bottom-left blue
    assert (u8[:, 63, 63] > 240).all()  # bottom-right white
    # without list_eval_partition.txt the official numbering gives the same split
    (tmp_path / "list_eval_partition.txt").unlink()
    by_number = load_image_dataset("celeba", tmp_path, max_train=2, max_test=1)
    assert torch.equal(by_number.train, ds.train[:2]) and torch.equal(by_number.test, ds.test[:1])
    assert "official numbering" in by_number.source


def test_celeba_decoded_images_are_cached(tmp_path, monkeypatch):
    _write_celeba(tmp_path)
    first = load_image_dataset("celeba", tmp_path)
    cached = list((dl.cache_dir() / "celeba" / "decoded").glob("celeba64-*.npz"))
    assert len(cached) == 1

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(im, "_decode_celeba", no_decoding)
    again = load_image_dataset("celeba", tmp_path)
    assert torch.equal(again.train, first.train) and torch.equal(again.test, first.test)
    monkeypatch.undo()
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    # a changed image is decoded again
    path = tmp_path / "img_align_celeba" / "000002.jpg"
    Image.fromarray(_quadrants(5)[::-1].copy()).save(path, quality=95)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = load_image_dataset("celeba", tmp_path)
    assert not torch.equal(changed.train[1], first.train[1]) and torch.equal(changed.train[0], first.train[0])
    # a damaged cache file is rebuilt
    for f in (dl.cache_dir() / "celeba" / "decoded").glob("*.npz"):
        f.write_bytes(b"garbage")
    assert torch.equal(load_image_dataset("celeba", tmp_path).train, changed.train)


def test_celeba_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_image_dataset("celeba", tmp_path)
    msg = str(e.value)
    assert "img_align_celeba/" in msg and "list_attr_celeba.txt" in msg and str(tmp_path) in msg
    assert "--data-root DIR" in msg and "000001.jpg" in msg
    _write_celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "162772.jpg").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"1 image\(s\) listed in list_attr_celeba\.txt .* 162772\.jpg"
    ):
        load_image_dataset("celeba", tmp_path)
    # only the images of the splits asked for are needed
    assert load_image_dataset("celeba", tmp_path, max_test=1).test.shape[0] == 1


def test_celeba_bad_files_name_the_file(tmp_path):
    _write_celeba(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    good = attr.read_text()
    lines = good.splitlines()
    attr.write_text("\n".join(lines[:-1]) + "\n")  # one row short of the announced count
    with pytest.raises(
        DatasetError, match=r"list_attr_celeba\.txt: line 1 announces 6 images but the file has 5"
    ):
        load_image_dataset("celeba", tmp_path)
    attr.write_text(good.replace("000002.jpg -1", "000002.jpg  0").replace("000002.jpg  1", "000002.jpg  0"))
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt: 000002\.jpg has 5_o_Clock_Shadow = 0"):
        load_image_dataset("celeba", tmp_path)
    attr.write_text("\n".join(lines[:3] + [lines[3].rsplit(" ", 1)[0]] + lines[4:]))  # 39 values in row 2
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt: attribute rows that do not parse"):
        load_image_dataset("celeba", tmp_path)
    attr.write_text("\n".join(lines[:2] + [line + " 1" for line in lines[2:]]))  # 41 values in every row
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt: rows of 41 values .* expected 40"):
        load_image_dataset("celeba", tmp_path)
    attr.write_text("\n".join([lines[0], " ".join(_ATTRS[:39])] + lines[2:]))
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt: line 2 names 39 attributes"):
        load_image_dataset("celeba", tmp_path)
    attr.write_text(good)
    part = tmp_path / "list_eval_partition.txt"
    part.write_text("000001.jpg 0\n000002.jpg 0\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt: no partition for 4 image"):
        load_image_dataset("celeba", tmp_path)
    part.write_text("000001.jpg 3\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt: line 1 is '000001\.jpg 3'"):
        load_image_dataset("celeba", tmp_path)
    part.unlink()
    jpg = tmp_path / "img_align_celeba" / "000003.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match=r"000003\.jpg: does not decode as a JPEG"):
        load_image_dataset("celeba", tmp_path)
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(jpg)
    with pytest.raises(
        DatasetError, match=r"000003\.jpg: 100x100 pixels, expected the aligned and cropped 178x218"
    ):
        load_image_dataset("celeba", tmp_path)


# ------------------------------------------------------------------------------------- ImageNet64


def _imagenet_batch(path, n: int, seed: int, first_label: int | None = None):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 200, (n, 12288), dtype=np.uint8)  # 3 planes of 64×64, row-major
    labels = [int(v) for v in rng.integers(1, 1001, n)]
    if first_label is not None:
        labels[0] = first_label
    np.savez(path, data=data, labels=labels)
    return data, labels


def test_imagenet64_npz_batches(tmp_path):
    d1, l1 = _imagenet_batch(tmp_path / "train_data_batch_1.npz", 4, 1, first_label=1)
    d1[0, 0 * 4096 + 0 * 64 + 1] = 250  # image 0, channel 0, row 0, col 1
    d1[3, 2 * 4096 + 3 * 64 + 5] = 251  # image 3, channel 2, row 3, col 5
    np.savez(tmp_path / "train_data_batch_1.npz", data=d1, labels=l1)
    _, l2 = _imagenet_batch(tmp_path / "train_data_batch_2.npz", 3, 2, first_label=1000)
    dv, lv = _imagenet_batch(tmp_path / "val_data.npz", 5, 3)
    ds = load_image_dataset("imagenet64", tmp_path, max_train=6)
    assert ds.name == "imagenet64" and ds.image_shape == (3, 64, 64) and ds.classes is None
    _check_images(ds.train, (6, 3, 64, 64))
    _check_images(ds.test, (5, 3, 64, 64))
    assert ds.train[0, 0, 0, 1] == 250 / 255 and ds.train[3, 2, 3, 5] == 251 / 255
    assert ds.train_labels.dtype == torch.int64 and ds.train_labels[0] == 0 and ds.train_labels[4] == 999
    assert ds.train_labels.tolist() == [v - 1 for v in (l1 + l2)[:6]]
    assert ds.test_labels.tolist() == [v - 1 for v in lv]
    assert torch.equal(ds.test, torch.from_numpy(dv.reshape(5, 3, 64, 64) / np.float32(255)))
    # only the batches needed are read: batch 2 may be broken when batch 1 suffices
    (tmp_path / "train_data_batch_2.npz").write_bytes(b"broken")
    assert load_image_dataset("imagenet64", tmp_path, max_train=4, max_test=2).test.shape[0] == 2
    with pytest.raises(DatasetError, match=r"train_data_batch_2\.npz: cannot read as an npz file"):
        load_image_dataset("imagenet64", tmp_path, max_train=5)
    (tmp_path / "train_data_batch_2.npz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"train_data_batch_2\.npz not found in .*all ten batches"):
        load_image_dataset("imagenet64", tmp_path)
    # the folders the two zip files unpack to are searched too
    sub = tmp_path / "other" / "Imagenet64_val_npz"
    sub.mkdir(parents=True)
    os.replace(tmp_path / "val_data.npz", sub / "val_data.npz")
    assert load_image_dataset("imagenet64", tmp_path / "other", max_train=0).test.shape[0] == 5


def test_imagenet64_bad_files_name_the_file(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match=r"imagenet64: val_data\.npz not found in .*image-net\.org"
    ):
        load_image_dataset("imagenet64", tmp_path)
    _imagenet_batch(tmp_path / "train_data_batch_1.npz", 2, 1)
    val = tmp_path / "val_data.npz"
    np.savez(val, images=np.zeros((2, 12288), np.uint8), labels=[1, 2])
    with pytest.raises(DatasetError, match=r"val_data\.npz: arrays \['images', 'labels'\], expected 'data'"):
        load_image_dataset("imagenet64", tmp_path, max_train=2)
    np.savez(val, data=np.zeros((2, 4096), np.uint8), labels=[1, 2])
    with pytest.raises(DatasetError, match=r"val_data\.npz: 'data' is uint8 \(2, 4096\)"):
        load_image_dataset("imagenet64", tmp_path, max_train=2)
    np.savez(val, data=np.zeros((2, 12288), np.uint8), labels=[0, 2])
    with pytest.raises(DatasetError, match=r"val_data\.npz: label 0 of image 0 is out of range"):
        load_image_dataset("imagenet64", tmp_path, max_train=2)
    _imagenet_batch(val, 3, 4)
    blob = val.read_bytes()
    val.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match=r"val_data\.npz: cannot read as an npz file .*truncated"):
        load_image_dataset("imagenet64", tmp_path, max_train=2)
