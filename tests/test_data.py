"""Datasets: IDX files, checksummed cache, offline protocol, bundled slice, Connect-4, minibatches."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess

import numpy as np
import pytest
import torch

import physamp.data.download as dl
import physamp.data.mnist as mnist_mod
from physamp.data import (
    DATASETS,
    binarize,
    iterate_minibatches,
    load_connect4,
    load_dataset,
    num_batches,
    parse_connect4,
    read_idx,
    unlzw,
    write_idx,
)
from physamp.data.mnist import BUNDLED_PATH, MNIST_FILES

SHARED = dl.find_shared_datasets()
needs_shared = pytest.mark.skipif(SHARED is None, reason="shared/datasets/mnist not found")


def _hashes(images_u8: np.ndarray) -> set[str]:
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in images_u8.reshape(len(images_u8), -1)}


def _to_u8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def offline():
    if SHARED is None:
        pytest.skip("shared/datasets/mnist not found")
    return load_dataset("mnist-offline", binarize_seed=0)


# ---------------------------------------------------------------- offline protocol and bundled slice


@needs_shared
def test_offline_split_sizes_and_ranges(offline):
    assert offline.name == "mnist-offline"
    assert tuple(offline.train.shape) == (13_000, 784) and tuple(offline.test.shape) == (2_000, 784)
    assert offline.train.dtype == torch.float32 and offline.test.dtype == torch.float32
    assert offline.train.min() == 0.0 and offline.train.max() == 1.0
    assert 0.10 < offline.train.mean() < 0.16
    assert set(offline.test.unique().tolist()) == {0.0, 1.0}
    assert offline.train_labels.dtype == torch.int64 and len(offline.train_labels) == 13_000
    assert set(offline.test_labels.tolist()) == set(range(10))
    assert offline.n_features == 784 and offline.image_shape == (28, 28)
    assert "seed 0" in offline.protocol and "13,000" in offline.protocol


@needs_shared
def test_offline_test_binarisation_is_seeded(offline):
    again = load_dataset("mnist-offline", binarize_seed=0)
    other = load_dataset("mnist-offline", binarize_seed=1)
    assert torch.equal(offline.test, again.test)
    assert not torch.equal(offline.test, other.test)
    assert "seed 1" in other.protocol
    # binarised pixels follow the grey levels: near-black pixels stay 0, the mean is preserved
    grey = torch.from_numpy(mnist_mod._offline_arrays(SHARED)["test_x"][8000:].reshape(2000, -1) / 255.0)
    assert offline.test[grey == 0].sum() == 0 and offline.test[grey == 1].all()
    assert abs(offline.test.mean().item() - grey.mean().item()) < 0.002


@needs_shared
def test_offline_train_and_test_share_no_image(offline):
    train = _hashes(_to_u8(offline.train))
    test_grey = mnist_mod._offline_arrays(SHARED)["test_x"][8000:]
    test = _hashes(test_grey)
    assert len(train) > 12_900 and len(test) > 1_990  # the hashing tells images apart
    assert train.isdisjoint(test)
    # and the hashing finds equal images
    assert _hashes(test_grey[:5]) <= _hashes(mnist_mod._offline_arrays(SHARED)["test_x"])


def test_bundled_slice_is_real_digits():
    ds = load_dataset("mnist-bundled", binarize_seed=0)
    assert BUNDLED_PATH.stat().st_size < 1_000_000
    assert ds.name == "mnist-bundled" and "mnist-bundled" in ds.protocol
    assert tuple(ds.train.shape) == (2000, 784) and tuple(ds.test.shape) == (500, 784)
    assert 0.11 < ds.train.mean() < 0.16 and 0.11 < ds.test.mean() < 0.17
    assert torch.bincount(ds.train_labels, minlength=10).tolist() == [200] * 10
    assert set(ds.test_labels.tolist()) == set(range(10))
    # digits have ink in the middle and none in the corners
    img = ds.train.view(-1, 28, 28).mean(0)
    assert img[10:18, 10:18].mean() > 0.3 and img[:3, :3].max() < 0.01
    assert _hashes(_to_u8(ds.train)).isdisjoint(_hashes(np.load(BUNDLED_PATH)["test_images"]))


@needs_shared
def test_bundled_slice_comes_from_the_offline_files(offline):
    ds = load_dataset("mnist-bundled")
    a = mnist_mod._offline_arrays(SHARED)
    assert _hashes(_to_u8(ds.train)) <= _hashes(a["csv_x"])
    assert torch.equal(ds.test_labels, torch.from_numpy(a["test_y"][8000:8500]).long())


def test_default_dataset_falls_back_to_bundled(monkeypatch):
    monkeypatch.setattr(mnist_mod, "find_shared_datasets", lambda root=None: None)
    ds = load_dataset("mnist-default")
    assert ds.name == "mnist-bundled"
    if SHARED is not None:
        monkeypatch.undo()
        assert load_dataset("mnist-default").name == "mnist-offline"


def test_offline_missing_gives_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist_5k.csv.gz"):
        load_dataset("mnist-offline", root=tmp_path)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="mnist-offline") as info:
        load_dataset("cifar")
    assert all(name in str(info.value) for name in DATASETS)


# ---------------------------------------------------------------- IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 8
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw[:4] == bytes([0, 0, raw[2], 3]) and int.from_bytes(raw[4:8], "big") == 2


def test_idx_corrupt_files_raise_clear_errors(tmp_path):
    good = tmp_path / "good-idx1-ubyte"
    write_idx(good, np.arange(10, dtype=np.uint8))
    raw = good.read_bytes()
    cases = {
        "magic": (b"\x00\x01" + raw[2:], "magic"),
        "truncated": (raw[:-3], "truncated"),
        "trailing": (raw + b"\x00", "trailing"),
        "header": (raw[:6], "truncated IDX header"),
        "badgz": (gzip.compress(raw)[:-10], "gzip"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.gz"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            read_idx(path)
        assert str(path) in str(info.value) and "download" in str(info.value)
        assert path.read_bytes() == content  # nothing deleted or rewritten


# ---------------------------------------------------------------- full MNIST: cache, download, checksums


def _fake_mnist(folder, n_train=6, n_test=4):
    """Tiny IDX files with MNIST names; returns {name: (gz md5, raw md5)}."""
    rng = np.random.default_rng(0)
    sums = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, arr in (
            ("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
            ("labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8)),
        ):
            name = f"{prefix}-{kind}"
            write_idx(folder / f"{name}.gz", arr)
            raw = gzip.decompress((folder / f"{name}.gz").read_bytes())
            sums[name] = (dl.md5_of(folder / f"{name}.gz"), hashlib.md5(raw).hexdigest())
    return sums


def test_mnist_missing_without_download_says_which_files_where(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path))
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: pytest.fail("no download was asked for"))
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist")
    msg = str(info.value)
    assert str(tmp_path / "mnist") in msg and "download=True" in msg
    assert all(f"{name}.gz" in msg for name in MNIST_FILES)


def test_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path))
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        dest.write_bytes(b"<html>not the file</html>")

    monkeypatch.setattr(dl, "_fetch", fake_fetch)
    with pytest.raises(ValueError, match="checksum"):
        load_dataset("mnist", download=True)
    assert len(calls) == 2  # every mirror tried
    assert list((tmp_path / "mnist").iterdir()) == []  # no corrupt file, no .part left
    with pytest.raises(FileNotFoundError):  # and nothing is later taken for a good file
        load_dataset("mnist")


def test_download_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path))

    def offline_fetch(url, dest):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(dl, "_fetch", offline_fetch)
    with pytest.raises(OSError, match="put the file at"):
        load_dataset("mnist", download=True)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_verified_then_cached(tmp_path, monkeypatch):
    src = tmp_path / "mirror"
    src.mkdir()
    sums = _fake_mnist(src)
    monkeypatch.setattr(mnist_mod, "MNIST_FILES", sums)
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: shutil.copy(src / url.rsplit("/", 1)[1], dest))
    ds = load_dataset("mnist", download=True)
    assert tuple(ds.train.shape) == (6, 784) and tuple(ds.test.shape) == (4, 784)
    assert torch.equal(
        ds.train,
        torch.from_numpy(read_idx(src / "train-images-idx3-ubyte.gz").reshape(6, -1) / 255.0).float(),
    )
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(f"{n}.gz" for n in sums)
    monkeypatch.setattr(dl, "_fetch", lambda url, dest: pytest.fail("cached files must be reused"))
    assert torch.equal(load_dataset("mnist", download=True).train, ds.train)
    # a local folder with uncompressed files works as well
    local = tmp_path / "local"
    local.mkdir()
    for name in sums:
        (local / name).write_bytes(gzip.decompress((src / f"{name}.gz").read_bytes()))
    assert torch.equal(load_dataset("mnist", root=local).train, ds.train)


def test_corrupt_cached_file_is_refused_and_kept(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    sums = _fake_mnist(tmp_path / "mnist")
    monkeypatch.setattr(mnist_mod, "MNIST_FILES", sums)
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path))
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write_idx(target, np.full(4, 9, dtype=np.uint8))  # a valid IDX file with the wrong content
    before = target.read_bytes()
    for _ in range(2):  # refused every time, not accepted on a second call
        with pytest.raises(ValueError, match="checksum mismatch") as info:
            load_dataset("mnist")
        assert str(target) in str(info.value) and "Delete it" in str(info.value)
    assert target.read_bytes() == before


def test_real_t10k_checksums_match_the_table():
    if SHARED is None:
        pytest.skip("shared/datasets/mnist not found")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((SHARED / f"{name}.gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == MNIST_FILES[name][1]


# ---------------------------------------------------------------- binarisation and minibatches


def test_binarize_follows_probabilities_and_generator():
    p = torch.tensor([0.0, 1.0, 0.25]).repeat(20_000, 1)
    x = binarize(p, torch.Generator().manual_seed(3))
    assert x.dtype == torch.float32 and set(x.unique().tolist()) == {0.0, 1.0}
    assert x[:, 0].sum() == 0 and x[:, 1].all()
    assert abs(x[:, 2].mean().item() - 0.25) < 0.01
    assert torch.equal(x, binarize(p, torch.Generator().manual_seed(3)))
    assert not torch.equal(x, binarize(p, torch.Generator().manual_seed(4)))


def _indexed_data(n: int) -> torch.Tensor:
    """Rows whose first 8 columns spell the row index in bits (probability 0 or 1), then 0.5s."""
    ids = torch.arange(n)
    bits = ((ids[:, None] >> torch.arange(8)) & 1).float()
    return torch.cat([bits, torch.full((n, 40), 0.5)], dim=1)


def _ids(batch: torch.Tensor) -> list[int]:
    return (batch[:, :8] * (2 ** torch.arange(8)).float()).sum(1).long().tolist()


@pytest.mark.parametrize("drop_last", [False, True])
def test_minibatches_cover_each_example_once_and_rebinarise(drop_last):
    n, bs = 103, 10
    data = _indexed_data(n)
    g = torch.Generator().manual_seed(0)
    epochs = [list(iterate_minibatches(data, bs, g, drop_last=drop_last)) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == num_batches(n, bs, drop_last) == (10 if drop_last else 11)
        sizes = [len(b) for b in batches]
        assert sizes == [10] * 10 + ([] if drop_last else [3])
        ids = sum((_ids(b) for b in batches), [])
        assert len(ids) == len(set(ids)) == (100 if drop_last else n)
        assert all(set(b.unique().tolist()) <= {0.0, 1.0} for b in batches)
    ids0, ids1 = (sum((_ids(b) for b in e), []) for e in epochs)
    assert ids0 != ids1  # a new order each epoch
    noise = [torch.cat(e)[:, 8:][torch.argsort(torch.tensor(sum((_ids(b) for b in e), [])))] for e in epochs]
    assert (noise[0] != noise[1]).float().mean() > 0.3  # the same example, binarised afresh
    assert 0.45 < noise[0].mean() < 0.55


def test_minibatches_are_deterministic_given_generator_state():
    data = _indexed_data(50)
    g = torch.Generator().manual_seed(7)
    list(iterate_minibatches(data, 8, g))
    state = g.get_state()
    first = list(iterate_minibatches(data, 8, g))
    g2 = torch.Generator()
    g2.set_state(state)
    second = list(iterate_minibatches(data, 8, g2))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    plain = list(iterate_minibatches(data, 8, g, binarize=False, shuffle=False))
    assert torch.equal(torch.cat(plain), data)
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(10, 0)


# ---------------------------------------------------------------- Connect-4

C4_LINES = """\
b,b,b,b,b,b,b,b,b,b,b,b,x,o,b,b,b,b,x,o,x,o,x,o,b,b,b,b,b,b,b,b,b,b,b,b,b,b,b,b,b,b,win
x,x,b,b,b,b,o,b,b,b,b,b,o,x,b,b,b,b,x,o,b,b,b,b,b,b,b,b,b,b,o,b,b,b,b,b,b,b,b,b,b,b,loss
o,b,b,b,b,b,x,b,b,b,b,b,x,o,o,x,b,b,b,b,b,b,b,b,x,b,b,b,b,b,b,b,b,b,b,b,o,b,b,b,b,b,draw
"""


def test_connect4_parsing():
    bits, outcomes = parse_connect4(C4_LINES)
    assert bits.shape == (3, 126) and bits.dtype == np.uint8
    assert (bits.sum(1) == 42).all() and set(np.unique(bits)) == {0, 1}
    assert outcomes.tolist() == [0, 1, 2]
    cells = bits.reshape(3, 42, 3)  # one-hot (x, o, b) per cell
    assert cells[0, 12].tolist() == [1, 0, 0] and cells[0, 13].tolist() == [0, 1, 0]
    assert cells[0, 0].tolist() == [0, 0, 1]
    assert cells[0, :, 0].sum() == 4 and cells[0, :, 1].sum() == 4
    with pytest.raises(ValueError, match="line 2"):
        parse_connect4(C4_LINES.splitlines()[0] + "\n" + "x,q" + ",b" * 40 + ",win\n")
    with pytest.raises(ValueError, match="42 cells"):
        parse_connect4("x,o,win\n")


def test_connect4_wrong_row_count_and_missing(tmp_path, monkeypatch):
    (tmp_path / "connect-4.data").write_text(C4_LINES)
    with pytest.raises(ValueError, match="67557"):
        load_connect4(tmp_path)
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_dataset("connect4")


def _lzw_compress(data: bytes, maxbits: int = 16, clear_every: int | None = None) -> bytes:
    """A Unix `compress` encoder (block mode), to test the decoder without a .Z file at hand."""
    maxmaxcode = 1 << maxbits
    acc, pos, run_start = 0, 0, 0
    n_bits, maxcode, free_ent, table, since_clear = 9, 511, 257, {}, 0

    def align():
        nonlocal pos, run_start
        group = 8 * n_bits
        pos = run_start = run_start + -(-(pos - run_start) // group) * group

    def output(code, clear=False):
        nonlocal acc, pos, n_bits, maxcode
        acc |= code << pos
        pos += n_bits
        if clear:
            align()
            n_bits, maxcode = 9, 511
        elif free_ent > maxcode:
            align()
            n_bits += 1
            maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1

    ent = data[0]
    for c in data[1:]:
        if (ent, c) in table:
            ent = table[(ent, c)]
            continue
        output(ent)
        since_clear += 1
        if free_ent < maxmaxcode:
            table[(ent, c)] = free_ent
            free_ent += 1
        if clear_every and since_clear >= clear_every:
            free_ent, table, since_clear = 257, {}, 0
            output(256, clear=True)
        ent = c
    output(ent)
    return b"\x1f\x9d" + bytes([0x80 | maxbits]) + acc.to_bytes((pos + 7) // 8, "little")


@pytest.mark.parametrize("clear_every", [None, 700])
def test_unlzw_round_trip(clear_every, tmp_path):
    rng = np.random.default_rng(1)
    data = C4_LINES.encode() * 40 + bytes(rng.integers(0, 256, 3000, dtype=np.uint8)) + b"ab" * 2000
    z = _lzw_compress(data, clear_every=clear_every)
    assert len(z) < len(data)
    assert unlzw(z) == data
    gz = shutil.which("gzip")
    if gz:  # the system gzip reads .Z files: our encoder writes the real format
        (tmp_path / "x.Z").write_bytes(z)
        assert (
            subprocess.run([gz, "-dc", str(tmp_path / "x.Z")], capture_output=True, check=True).stdout == data
        )
    with pytest.raises(ValueError, match="magic"):
        unlzw(b"\x1f\x8b\x08" + z[3:])


def test_connect4_loads_from_a_z_file(tmp_path, monkeypatch):
    """A full-size synthetic file (67,557 rows) through the .Z path, split 16,000 / 4,000 / 47,557."""
    rows = (C4_LINES * (67_557 // 3 + 1)).splitlines()[:67_557]
    text = ("\n".join(rows) + "\n").encode()
    (tmp_path / "connect-4.data.Z").write_bytes(_lzw_compress(text))
    ds = load_dataset("connect4", root=tmp_path)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (16_000, 4_000, 47_557)
    assert ds.n_features == 126 and ds.image_shape is None
    assert (ds.train.sum(1) == 42).all()
    assert (
        torch.bincount(torch.cat([ds.train_labels, ds.valid_labels, ds.test_labels])).tolist() == [22_519] * 3
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["connect-4.data.Z"]  # root left untouched
