"""Images for multi-style transfer: decoding, content datasets, style images, offline presets.

Conventions (every function here): an image is a float32 torch tensor of shape ``(3, H, W)``
(a batch: ``(N, 3, H, W)``), RGB, values in ``[0, 1]`` (8-bit pixels / 255), on the CPU.

- :func:`read_image` decodes one file with PIL, fully (a truncated file fails there, not in a
  training step), applies its EXIF orientation and converts every PIL mode to RGB.
  Failures raise :class:`ImageReadError`, which names the file.
- :func:`resize_smaller_side` and :func:`center_crop`: the content preprocessing of the spec (§4,
  **[EXT]** magenta): the smaller side is resized to 258 and a central 256 × 256 crop is taken.
  For other crop sizes the resize is :func:`default_resize` ``(size)`` = ``size × 258 / 256``,
  rounded half up.
- :class:`ContentImages`: a ``Dataset`` of every image file under a folder, recursively.
  This covers ImageNet's class subfolders and COCO's flat folder.
- :func:`load_style_images`: the style images, from a folder or a list of paths.
- :func:`bundled_content_images` and :func:`bundled_style_images`: offline images for quick presets.
  Content: crops of the photographs that ship inside the scikit-image and scikit-learn wheels.
  Styles: the textures that ship with scikit-image, plus numpy-generated patterns.
  :data:`BUNDLED_SOURCES` and :func:`bundled_image_source` say where each one comes from.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from physamp.seeding import derive_seed

__all__ = [
    "ImageReadError",
    "ImageReadWarning",
    "IMAGE_EXTENSIONS",
    "read_image",
    "default_resize",
    "resize_smaller_side",
    "center_crop",
    "ContentImages",
    "find_image_files",
    "load_style_images",
    "bundled_content_images",
    "bundled_content_names",
    "bundled_style_images",
    "bundled_image_source",
    "BUNDLED_SOURCES",
    "BUNDLED_CONTENT_PHOTOS",
    "BUNDLED_STYLE_TEXTURES",
    "PATTERN_KINDS",
]

#: file extensions :class:`ContentImages` and :func:`load_style_images` look for (case-insensitive)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: the background that transparent pixels are composited onto: white (a transparent logo or
#: scan is meant to be seen on a page; black would turn its soft edges into dark halos)
_BACKGROUND = 1.0


class ImageReadError(ValueError):
    """A file could not be decoded as an image; ``path`` is the file and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")

    def __reduce__(self):  # picklable across DataLoader workers despite the 2-argument __init__
        return (type(self), (self.path, self.reason))


class ImageReadWarning(UserWarning):
    """A content image could not be read; :class:`ContentImages` substituted or dropped it."""


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


def _to_float_rgb(im: Any) -> np.ndarray:
    """A loaded PIL image → float32 ``(H, W, 3)`` RGB in [0, 1]; the mode conventions are in
    :func:`read_image`."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float32)
        if mode != "F":
            a /= 65535.0
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
        a = np.clip(a, 0.0, 1.0)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[:, :, 3:4]
        return rgba[:, :, :3] * alpha + _BACKGROUND * (1.0 - alpha)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode one image file to a float32 tensor ``(3, H, W)``, RGB in [0, 1].

    The file is fully decoded here. A truncated file fails here, unless the caller has set
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``. Multi-frame files (GIF, TIFF) give their first frame.
    The EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so an upright photograph
    comes back upright. Mode conventions:

    - ``RGB``: pixels / 255. ``L`` (grayscale) and ``1`` (bilevel): the same value in all three
      channels; ``1`` gives 0 or 1.
    - ``P`` (palette): the palette colours.
    - Transparency is composited onto **white**: ``out = a·rgb + (1 − a)``. This covers ``RGBA``,
      ``LA``, ``PA``, premultiplied ``RGBa``, and ``P``/``L``/``RGB`` with a ``transparency`` key.
      White is chosen because a transparent image is made to be shown on a page; a fully
      transparent pixel becomes exactly 1.
    - ``CMYK``, ``YCbCr``, ``HSV``, ``LAB``: PIL's conversion to RGB. For CMYK this is the naive one.
      ICC profiles are ignored everywhere; pixel values are taken as sRGB.
    - ``I;16*`` (16-bit grayscale PNG and TIFF): value / 65535.
    - ``I`` (32-bit integer): taken to hold 16-bit data, as PIL gives for some 16-bit files.
      The result is value / 65535, clipped to [0, 1].
    - ``F`` (32-bit float): taken to be in [0, 1]; it is clipped, and NaN becomes 0.
      PIL's own conversion of these modes to RGB would clip at 255, which is why they are
      handled separately.

    Raises :class:`ImageReadError` naming ``path`` for a missing or unreadable file, a file that is
    not an image, or a corrupt or truncated one.
    """
    from PIL import Image, ImageOps

    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()  # full decode: truncation and corrupt data fail here
            try:
                oriented = ImageOps.exif_transpose(im)
            except Exception as exc:  # a broken EXIF block does not spoil the pixels
                warnings.warn(
                    f"{path!r}: ignoring an unreadable EXIF orientation ({exc})",
                    ImageReadWarning,
                    stacklevel=2,
                )
                oriented = im
            rgb = _to_float_rgb(oriented)
    except (ImageReadError, MemoryError):
        raise
    except FileNotFoundError as exc:
        raise ImageReadError(path, "no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image file PIL can identify") from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageReadError(path, f"decoded to an unusable array of shape {rgb.shape}")
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))


# --------------------------------------------------------------------------------------------
# resize and crop
# --------------------------------------------------------------------------------------------


def default_resize(size: int) -> int:
    """The smaller side content images are resized to before a ``size`` crop.

    This is magenta's 258 for 256, in the same ratio for other sizes, rounded half up:
    ``size × 258 / 256`` (512 → 516, 128 → 129, 64 → 65, 32 → 32).
    """
    size = _check_size(size, "size")
    return size + (2 * size + 128) // 256


def _check_size(size: Any, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) < 1:
        raise ValueError(f"{what} must be a positive integer, got {size!r}")
    return int(size)


def _check_image(img: Any) -> None:
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or not img.is_floating_point():
        desc = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__qualname__
        raise ValueError(f"expected a float image tensor (C, H, W) or (N, C, H, W), got {desc}")


def resize_smaller_side(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the smaller side is ``size``, keeping the aspect ratio.

    ``img`` is ``(C, H, W)`` or ``(N, C, H, W)``, a float tensor. For ``H ≤ W`` the result is
    ``(…, size, round(W · size / H))``, rounded half up; ``W < H`` works the same way with the
    sides swapped. Resampling is bilinear with antialiasing (``F.interpolate(..., antialias=True)``,
    a triangle filter over the source footprint when downsampling), and values are clamped to [0, 1].
    An image smaller than ``size`` is **upsampled**. This is how content images smaller than the
    crop are handled: they are enlarged, not padded and not skipped. An image whose smaller side is
    already ``size`` is returned unchanged (the same tensor).
    """
    _check_image(img)
    size = _check_size(size, "size")
    h, w = img.shape[-2:]
    if min(h, w) == size:
        return img
    if h <= w:
        new_h, new_w = size, max(size, int(w * size / h + 0.5))
    else:
        new_h, new_w = max(size, int(h * size / w + 0.5)), size
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    out = F.interpolate(
        batch.to(torch.float32), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    out = out.clamp_(0.0, 1.0)
    return out if img.dim() == 4 else out.squeeze(0)


def center_crop(img: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central ``size × size`` (or ``(h, w)``) window of ``img`` ``(…, H, W)``, as a view.

    The offset is ``(H − h) // 2``, so an odd margin leaves one more row or column at the bottom
    or right. An image smaller than the crop is an error; resize it first with
    :func:`resize_smaller_side`.
    """
    _check_image(img)
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"crop size must be an int or (h, w), got {size!r}")
        ch, cw = _check_size(size[0], "crop height"), _check_size(size[1], "crop width")
    else:
        ch = cw = _check_size(size, "crop size")
    h, w = img.shape[-2:]
    if h < ch or w < cw:
        raise ValueError(
            f"image is {h}×{w}, smaller than the {ch}×{cw} crop; resize it first (resize_smaller_side)"
        )
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[..., top : top + ch, left : left + cw]


# --------------------------------------------------------------------------------------------
# content images from a folder
# --------------------------------------------------------------------------------------------


def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple(dict.fromkeys(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions))
    if not exts or any(e == "." for e in exts):
        raise ValueError(f"extensions must be non-empty file extensions, got {extensions!r}")
    return exts


def find_image_files(
    root: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS, *, recursive: bool = True
) -> list[str]:
    """Paths of the image files in ``root``, sorted by their path relative to ``root``.

    Files are matched by extension, case-insensitively. With ``recursive`` the search goes down
    all subfolders, following symlinked folders (each real folder once). Hidden files and folders
    (names starting with ``.``, e.g. macOS ``._x.jpg`` resource forks) are skipped. Sorting uses the
    relative path with ``/`` separators, so ImageNet's ``class/xxx.JPEG`` files come class by class
    on every OS. Raises ``FileNotFoundError`` / ``NotADirectoryError`` for a bad ``root``; an empty
    result is not an error here.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root!r} is not a folder")
    exts = _normalise_extensions(extensions)
    found: list[tuple[str, str]] = []
    if recursive:
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a symlink loop or a folder linked twice
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, root)
            for name in filenames:
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                    rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                    found.append((Path(rel).as_posix(), os.path.join(dirpath, name)))
    else:
        for entry in os.scandir(root):
            name = entry.name
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts and entry.is_file():
                found.append((name, entry.path))
    found.sort()
    return [p for _, p in found]


def _list_for_message(paths: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class ContentImages(Dataset):
    """Every image file under ``root``, recursively, as ``(3, size, size)`` float32 tensors in [0, 1].

    Files are listed by :func:`find_image_files`, sorted by relative path. This works for
    ImageNet's ``train/<class>/<image>.JPEG`` and for COCO's flat ``train2014/*.jpg``. Item ``i``
    is file ``paths[i]``, decoded by :func:`read_image`. It is then resized so that its smaller
    side is ``resize`` (:func:`resize_smaller_side`; smaller images are upsampled), and
    center-cropped to ``size`` (:func:`center_crop`). ``resize`` defaults to
    :func:`default_resize` ``(size)`` (258 for 256, spec §4 **[EXT]**). There are no labels and no
    augmentation. ``max_images`` keeps the first files in sorted order. In the ImageNet layout
    these are the first classes.

    Unreadable files: a file that fails at load time gets one :class:`ImageReadWarning` naming it,
    and is remembered as bad. Its item becomes the next readable file (``i + 1``, ``i + 2``, …,
    wrapping), so the substitute is deterministic. If no file is readable, :class:`ImageReadError`
    is raised. With ``DataLoader`` workers, each worker keeps its own record (at most one warning
    per file per worker). :meth:`validate` (or ``check=True``) decodes every file up front and
    drops the unreadable ones instead, which keeps the items unique.

    Only paths and settings are stored, and no file stays open, so the dataset pickles to
    ``DataLoader`` workers under fork or spawn.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 256,
        resize: int | None = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        max_images: int | None = None,
        *,
        check: bool = False,
    ):
        self.root = os.fspath(root)
        self.size = _check_size(size, "size")
        self.resize = default_resize(self.size) if resize is None else _check_size(resize, "resize")
        if self.resize < self.size:
            raise ValueError(f"resize ({self.resize}) must be at least the crop size ({self.size})")
        self.extensions = _normalise_extensions(extensions)
        paths = find_image_files(self.root, self.extensions)
        if not paths:
            raise ValueError(
                f"no image files under {self.root!r} (looked recursively for {', '.join(self.extensions)}, "
                "case-insensitively)"
            )
        if max_images is not None:
            paths = paths[: _check_size(max_images, "max_images")]
        self.paths: list[str] = paths
        self.bad_files: set[str] = set()
        if check:
            self.validate()

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.root!r}, size={self.size}, resize={self.resize}, "
            f"{len(self)} images)"
        )

    def load(self, index: int) -> torch.Tensor:
        """Item ``index`` without substitution: the ``(3, size, size)`` crop, or :class:`ImageReadError`."""
        img = read_image(self.paths[index])
        return center_crop(resize_smaller_side(img, self.resize), self.size).contiguous()

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self.paths)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} content images")
        index %= n
        for k in range(n):
            j = (index + k) % n
            path = self.paths[j]
            if path in self.bad_files:
                continue
            try:
                return self.load(j)
            except ImageReadError as exc:
                self.bad_files.add(path)
                warnings.warn(
                    f"skipping unreadable content image {path!r} ({exc.reason}); "
                    "using the next readable one instead",
                    ImageReadWarning,
                    stacklevel=2,
                )
        raise ImageReadError(self.root, f"none of the {n} image files under this folder is readable")

    def validate(self) -> list[str]:
        """Decode every file now and drop the unreadable ones; return the dropped paths.

        All the dropped files are listed in one :class:`ImageReadWarning`. If no file is left,
        :class:`ImageReadError` is raised. This decodes the whole folder, which is slow for all of
        ImageNet, but afterwards every item is unique and no substitution happens.
        """
        bad = []
        for path in self.paths:
            try:
                read_image(path)
            except ImageReadError:
                bad.append(path)
        if len(bad) == len(self.paths):
            raise ImageReadError(
                self.root, f"none of the {len(bad)} image files is readable: {_list_for_message(bad)}"
            )
        if bad:
            warnings.warn(
                f"dropping {len(bad)} unreadable content image(s) of {len(self.paths)}: "
                f"{_list_for_message(bad)}",
                ImageReadWarning,
                stacklevel=2,
            )
            dropped = set(bad)
            self.paths = [p for p in self.paths if p not in dropped]
        self.bad_files = set()
        return bad


# --------------------------------------------------------------------------------------------
# style images
# --------------------------------------------------------------------------------------------


def load_style_images(
    paths_or_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], size: int | None = None
) -> tuple[list[torch.Tensor], list[str]]:
    """The style images and their names: ``(images, names)``, with style id ``k`` being ``images[k]``.

    ``paths_or_dir`` can be a folder, in which case its image files are used in sorted order (not
    recursive; extensions as in :data:`IMAGE_EXTENSIONS`). It can also be one file or a sequence of
    files, which keeps its order. Each image is ``(3, H, W)`` float32 in [0, 1]. With
    ``size=None`` the images are kept at their own resolution, as magenta does. Otherwise each one
    is resized so that its smaller side is ``size`` (:func:`resize_smaller_side`, aspect kept, no
    crop). Names are the file stems. When two stems are equal, the later ones get ``-2``, ``-3``, …
    in order.

    An unreadable style image is an error (:class:`ImageReadError` naming the file), not a skip:
    dropping a style would shift every later style id.
    """
    if isinstance(paths_or_dir, (str, os.PathLike)):
        p = os.fspath(paths_or_dir)
        if os.path.isdir(p):
            paths = find_image_files(p, IMAGE_EXTENSIONS, recursive=False)
            if not paths:
                raise ValueError(f"no style images in {p!r} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        elif os.path.exists(p):
            paths = [p]
        else:
            raise FileNotFoundError(f"style image folder or file {p!r} does not exist")
    else:
        paths = [os.fspath(q) for q in paths_or_dir]
        if not paths:
            raise ValueError("no style images given (an empty list)")
    if size is not None:
        size = _check_size(size, "size")
    images, names = [], []
    counts: dict[str, int] = {}
    for path in paths:
        img = read_image(path)
        if size is not None:
            img = resize_smaller_side(img, size).contiguous()
        images.append(img)
        stem = Path(path).stem
        counts[stem] = counts.get(stem, 0) + 1
        names.append(stem if counts[stem] == 1 else f"{stem}-{counts[stem]}")
    return images, names


# --------------------------------------------------------------------------------------------
# bundled offline images
# --------------------------------------------------------------------------------------------

#: content photographs: name → (package, file inside the package, licence / origin)
BUNDLED_CONTENT_PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png", "NASA photograph of Eileen Collins, public domain"),
    "camera": ("skimage", "data/camera.png", "grayscale photograph by Lav Varshney, CC0"),
    "chelsea": ("skimage", "data/chelsea.png", "Chelsea the cat, by Stefan van der Walt, CC0"),
    "coffee": ("skimage", "data/coffee.png", "coffee cup, by Rachel Michetti, CC0"),
    "coins": (
        "skimage",
        "data/coins.png",
        "grayscale photograph of Greek coins, Brooklyn Museum, no known copyright",
    ),
    "rocket": ("skimage", "data/rocket.jpg", "SpaceX launch of DSCOVR, public domain"),
    "china": ("sklearn", "datasets/images/china.jpg", "Flickr photograph by danielbuechele, CC BY 2.0"),
    "flower": ("sklearn", "datasets/images/flower.jpg", "Flickr photograph by vultilion, CC BY 2.0"),
}

#: style textures: name → (package, file inside the package, origin, colour map or None for colour images)
BUNDLED_STYLE_TEXTURES: dict[str, tuple[str, str, str, tuple[tuple[float, float, float], ...] | None]] = {
    "brick": (
        "skimage",
        "data/brick.png",
        "grayscale brick-wall texture (CC0Textures, CC0)",
        ((0.16, 0.04, 0.03), (0.62, 0.21, 0.11), (0.95, 0.76, 0.55)),
    ),
    "grass": (
        "skimage",
        "data/grass.png",
        "grayscale grass texture (DeviantArt linolafett, CC0)",
        ((0.02, 0.10, 0.03), (0.22, 0.50, 0.10), (0.88, 0.92, 0.38)),
    ),
    "gravel": (
        "skimage",
        "data/gravel.png",
        "grayscale gravel texture (CC0Textures, CC0)",
        ((0.08, 0.08, 0.22), (0.42, 0.40, 0.55), (0.96, 0.86, 0.70)),
    ),
    "immunohistochemistry": (
        "skimage",
        "data/ihc.png",
        "colour micrograph of IHC-stained colonic glands (public domain)",
        None,
    ),
    "hubble_deep_field": (
        "skimage",
        "data/hubble_deep_field.jpg",
        "NASA Hubble eXtreme Deep Field, public domain",
        None,
    ),
}

#: the procedural pattern kinds, cycled in this order after the textures
PATTERN_KINDS: tuple[str, ...] = (
    "stripes",
    "checkerboard",
    "blobs",
    "rings",
    "cells",
    "waves",
    "dots",
    "zigzag",
    "spiral",
    "mondrian",
)

_PATTERN_DESCRIPTIONS = {
    "stripes": "parallel colour bands at a random angle",
    "checkerboard": "a rotated two-colour checkerboard",
    "blobs": "smooth colour-noise blobs (low-pass filtered noise through a palette)",
    "rings": "concentric colour rings around a random centre",
    "cells": "Voronoi cells of random colours with dark borders",
    "waves": "interfering sine waves through a cyclic palette (plasma)",
    "dots": "polka dots on a staggered grid",
    "zigzag": "zigzag (chevron) colour bands",
    "spiral": "a multi-armed logarithmic colour spiral",
    "mondrian": "Mondrian-like rectangles with black lines",
}

#: where the bundled images come from, as sentences for experiment reports
BUNDLED_SOURCES: dict[str, str] = {
    "content": (
        "crops of photographs shipped with scikit-image (skimage.data: astronaut, camera, chelsea, coffee, "
        "coins, rocket) and scikit-learn (sklearn.datasets.load_sample_images: china, flower); "
        "grayscale ones replicated to RGB; each cut into 14 deterministic crops at 3 scales"
    ),
    "styles": (
        "textures shipped with scikit-image (brick, grass, gravel colourised with a fixed colour map each; "
        "immunohistochemistry and hubble_deep_field in their own colours), then procedural patterns "
        "generated with numpy from the seed (" + ", ".join(PATTERN_KINDS) + ")"
    ),
}

_PATTERN_RES = 512  # generated patterns are drawn at 512 × 512, then resized if a size is asked for
_CONTENT_CROPS: tuple[tuple[float, int], ...] = ((1.0, 1), (1.6, 2), (2.4, 3))  # (scale, grid) → 1+4+9


def _package_file(package: str, rel: str) -> str:
    pip = {"skimage": "scikit-image", "sklearn": "scikit-learn"}[package]
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the bundled style-transfer images need {pip}: pip install {pip} "
            "(or install physamp with its style extra, physamp[style])"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], *rel.split("/"))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path!r} is missing from the installed {pip}; it has shipped with {pip} for years, so the "
            "installation may be incomplete"
        )
    return path


def _photo(name: str) -> torch.Tensor:
    package, rel, _ = BUNDLED_CONTENT_PHOTOS[name]
    return read_image(_package_file(package, rel))


def _crop_specs() -> list[tuple[str, float, int, int, int]]:
    """Every content crop as ``(photo, scale, grid, row, col)``, in canonical order."""
    return [
        (name, scale, grid, r, c)
        for name in BUNDLED_CONTENT_PHOTOS
        for scale, grid in _CONTENT_CROPS
        for r in range(grid)
        for c in range(grid)
    ]


def _select(k: int, n: int | None, seed: int) -> list[int]:
    if n is None:
        return list(range(k))
    n = _check_size(n, "n")
    g = torch.Generator().manual_seed(derive_seed(seed, "style-content-subset"))
    perm = torch.randperm(k, generator=g).tolist()
    return [perm[i % k] for i in range(n)]


def bundled_content_names(size: int, n: int | None = None, *, seed: int = 0) -> list[str]:
    """Labels of :func:`bundled_content_images` ``(size, n, seed=seed)``, one per image, aligned.

    Each label is ``"photo@scale:row,col"``. ``size`` does not change the labels; it is accepted
    so that the two calls take the same arguments.
    """
    _check_size(size, "size")
    specs = _crop_specs()
    return [
        f"{specs[i][0]}@{specs[i][1]:g}:{specs[i][3]},{specs[i][4]}" for i in _select(len(specs), n, seed)
    ]


def bundled_content_images(size: int, n: int | None = None, *, seed: int = 0) -> torch.Tensor:
    """Offline content images: ``(K, 3, size, size)`` float32 in [0, 1], crops of bundled photographs.

    The photographs are listed in :data:`BUNDLED_CONTENT_PHOTOS`: 8 of them, 6 from scikit-image and
    2 from scikit-learn. Grayscale ones are replicated to RGB. Each photograph is resized so that its
    smaller side is ``size`` and center-cropped (1 crop). It is also resized to 1.6 × ``size`` and cut
    on a 2 × 2 grid, and resized to 2.4 × ``size`` and cut on a 3 × 3 grid. The grid crops are evenly
    spaced from corner to corner. That gives 14 distinct crops per photograph and ``K = 112`` in all,
    at every size. The crops are deterministic.

    ``n=None`` gives all of them, in canonical order (photograph by photograph; see
    :func:`bundled_content_names`). ``n`` gives ``n`` crops in a seeded random order: distinct while
    ``n ≤ 112``, cycling through that order again after that. Memory is
    ``K × 3 × size² × 4`` bytes (about 88 MB for all crops at 256). The files are read from the
    installed packages, never downloaded. Without scikit-image or scikit-learn, ``ImportError`` says
    what to install.
    """
    size = _check_size(size, "size")
    specs = _crop_specs()
    chosen = _select(len(specs), n, seed)
    out = torch.empty(len(chosen), 3, size, size, dtype=torch.float32)
    photos: dict[str, torch.Tensor] = {}
    scaled: dict[tuple[str, float], torch.Tensor] = {}
    for slot, i in enumerate(chosen):
        name, scale, grid, r, c = specs[i]
        if (name, scale) not in scaled:
            if name not in photos:
                photos[name] = _photo(name)
            scaled[(name, scale)] = resize_smaller_side(photos[name], int(size * scale + 0.5))
        img = scaled[(name, scale)]
        h, w = img.shape[-2:]
        top = (h - size) // 2 if grid == 1 else round(r * (h - size) / (grid - 1))
        left = (w - size) // 2 if grid == 1 else round(c * (w - size) / (grid - 1))
        out[slot] = img[:, top : top + size, left : left + size]
    return out


# ---- procedural patterns (numpy only; every parameter comes from the seed) -------------------


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (any equal shapes) → RGB ``(..., 3)``."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sextants = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    table = np.stack([np.stack(c, axis=-1) for c in sextants], axis=0)
    return np.take_along_axis(table, i[None, ..., None].repeat(3, axis=-1), axis=0)[0]


def _palette(rng: np.random.Generator, k: int, base_hue: float) -> np.ndarray:
    """``k`` colours ``(k, 3)`` around ``base_hue``: a random harmony, alternating dark and light."""
    scheme = rng.integers(3)
    spread = (0.08, 0.5, 1.0 / 3.0)[scheme]
    hues = base_hue + spread * np.arange(k) + rng.uniform(-0.03, 0.03, k)
    sat = rng.uniform(0.55, 1.0, k)
    val = np.where(np.arange(k) % 2 == 0, rng.uniform(0.75, 1.0, k), rng.uniform(0.2, 0.55, k))
    return _hsv_to_rgb(hues, sat, val)


def _bands(phase: np.ndarray, colours: np.ndarray, edge: float | np.ndarray) -> np.ndarray:
    """Colour bands: band ``floor(phase)`` gets ``colours[floor(phase) % k]``; ``edge`` (in band units,
    about one pixel) blends each band into the next, so the edges are antialiased."""
    k = len(colours)
    idx = np.floor(phase).astype(np.int64)
    frac = phase - idx
    w = np.clip((frac - (1.0 - edge)) / np.maximum(edge, 1e-6), 0.0, 1.0)[..., None]
    return (1.0 - w) * colours[idx % k] + w * colours[(idx + 1) % k]


def _smooth_noise(rng: np.random.Generator, res: int, sigma: float) -> np.ndarray:
    """Periodic Gaussian-filtered white noise ``(res, res)``, standardised (mean 0, std 1)."""
    noise = rng.standard_normal((res, res))
    f = np.fft.fftfreq(res)
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    return (field - field.mean()) / (field.std() + 1e-12)


def _pattern(kind: str, rng: np.random.Generator, base_hue: float, res: int = _PATTERN_RES) -> np.ndarray:
    """One pattern of ``kind`` as float ``(res, res, 3)`` in [0, 1]."""
    y, x = np.mgrid[0:res, 0:res].astype(np.float64) + 0.5
    theta = rng.uniform(0.0, np.pi)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    if kind == "stripes":
        width = rng.uniform(6.0, 28.0)
        return _bands(u / width, _palette(rng, int(rng.integers(2, 5)), base_hue), 1.0 / width)
    if kind == "checkerboard":
        cell = rng.uniform(14.0, 64.0)
        s = np.sin(np.pi * u / cell) * np.sin(np.pi * v / cell)
        w = (0.5 + 0.5 * np.tanh(s * cell / 2.0))[..., None]
        c = _palette(rng, 2, base_hue)
        return w * c[0] + (1.0 - w) * c[1]
    if kind == "blobs":
        sigma = rng.uniform(6.0, 30.0)
        t = 0.5 + 0.5 * np.tanh(0.8 * _smooth_noise(rng, res, sigma))
        c = _palette(rng, 4, base_hue)
        img = np.stack([np.interp(t, np.linspace(0, 1, len(c)), c[:, ch]) for ch in range(3)], axis=-1)
        shade = 0.75 + 0.25 * np.tanh(_smooth_noise(rng, res, sigma * 0.5))[..., None]
        return img * shade
    if kind == "rings":
        cy, cx = rng.uniform(0.1 * res, 0.9 * res, 2)
        width = rng.uniform(5.0, 22.0)
        r = np.hypot(x - cx, y - cy)
        return _bands(r / width, _palette(rng, int(rng.integers(2, 5)), base_hue), 1.0 / width)
    if kind == "cells":
        m = int(rng.integers(16, 72))
        pts = rng.uniform(0.0, res, (m, 2))
        colours = _palette(rng, 5, base_hue)[rng.integers(5, size=m)]
        colours = np.clip(colours + rng.uniform(-0.08, 0.08, (m, 3)), 0.0, 1.0)
        from scipy.spatial import cKDTree  # scipy is a dependency of physamp

        dist, idx = cKDTree(pts).query(np.stack([y.ravel(), x.ravel()], axis=1), k=2)
        nearest, gap = idx[:, 0], dist[:, 1] - dist[:, 0]
        border = rng.uniform(1.5, 5.0)
        w = np.clip((gap - border) / 1.5, 0.0, 1.0)[:, None]
        img = w * colours[nearest] + (1.0 - w) * np.array([0.05, 0.04, 0.06])
        return img.reshape(res, res, 3)
    if kind == "waves":
        field = np.zeros((res, res))
        for _ in range(int(rng.integers(3, 6))):
            a = rng.uniform(0.0, 2 * np.pi)
            freq = rng.uniform(1.0, 7.0) * 2 * np.pi / res
            field += np.sin(freq * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0.0, 2 * np.pi))
        t = np.mod(field * rng.uniform(0.25, 0.6), 1.0)
        c = _palette(rng, 4, base_hue)
        cyc = np.concatenate([c, c[:1]])
        return np.stack([np.interp(t, np.linspace(0, 1, len(cyc)), cyc[:, ch]) for ch in range(3)], axis=-1)
    if kind == "dots":
        spacing = rng.uniform(18.0, 56.0)
        radius = rng.uniform(0.2, 0.42) * spacing
        row = np.floor(v / spacing)
        uu = u + 0.5 * spacing * (row % 2)
        du = uu - spacing * (np.floor(uu / spacing) + 0.5)
        dv = v - spacing * (row + 0.5)
        w = np.clip(radius - np.hypot(du, dv) + 0.5, 0.0, 1.0)[..., None]
        c = _palette(rng, 3, base_hue)
        dot = np.where(((np.floor(uu / spacing) + row) % 2 == 0)[..., None], c[0], c[2])
        return w * dot + (1.0 - w) * c[1]
    if kind == "zigzag":
        wavelength = rng.uniform(30.0, 110.0)
        amplitude = rng.uniform(0.2, 0.6) * wavelength
        width = rng.uniform(7.0, 24.0)
        tri = np.abs(np.mod(u / wavelength, 1.0) - 0.5) * 2.0
        colours = _palette(rng, int(rng.integers(2, 5)), base_hue)
        return _bands((v + amplitude * tri) / width, colours, 1.0 / width)
    if kind == "spiral":
        cy, cx = rng.uniform(0.25 * res, 0.75 * res, 2)
        arms = int(rng.integers(2, 7))
        twist = rng.uniform(2.0, 6.0) * rng.choice([-1.0, 1.0])
        r = np.hypot(x - cx, y - cy) + 1.0
        phase = arms * (np.arctan2(y - cy, x - cx) / (2 * np.pi) + twist * np.log(r) / (2 * np.pi))
        edge = np.clip(arms / (2 * np.pi * r) * 1.5, 0.02, 0.5)
        return _bands(phase, _palette(rng, int(rng.integers(2, 5)), base_hue), edge)
    if kind == "mondrian":
        colours = np.concatenate([_palette(rng, 3, base_hue), [[0.96, 0.95, 0.92]] * 3])
        img = np.empty((res, res, 3))
        line = int(rng.integers(4, 11))
        stack = [(0, 0, res, res, 0)]
        while stack:
            y0, x0, y1, x1, depth = stack.pop()
            h, w = y1 - y0, x1 - x0
            if depth < 6 and max(h, w) > 4 * line + 40 and (depth < 2 or rng.uniform() < 0.7):
                if h > w or (h == w and rng.uniform() < 0.5):
                    cut = int(rng.integers(y0 + h // 4, y1 - h // 4))
                    stack += [(y0, x0, cut, x1, depth + 1), (cut, x0, y1, x1, depth + 1)]
                else:
                    cut = int(rng.integers(x0 + w // 4, x1 - w // 4))
                    stack += [(y0, x0, y1, cut, depth + 1), (y0, cut, y1, x1, depth + 1)]
            else:
                img[y0:y1, x0:x1] = colours[rng.integers(len(colours))]
                img[y0 : y0 + line // 2, x0:x1] = img[y1 - (line + 1) // 2 : y1, x0:x1] = 0.04
                img[y0:y1, x0 : x0 + line // 2] = img[y0:y1, x1 - (line + 1) // 2 : x1] = 0.04
        return img
    raise ValueError(f"unknown pattern kind {kind!r}; known: {', '.join(PATTERN_KINDS)}")


def _generated_style(j: int, seed: int) -> tuple[torch.Tensor, str, str]:
    """Generated style ``j`` (0-based among the generated ones): ``(image (3, 512, 512), kind, name)``."""
    kind = PATTERN_KINDS[j % len(PATTERN_KINDS)]
    variant = j // len(PATTERN_KINDS)
    rng = np.random.default_rng(derive_seed(seed, "style-pattern", j))
    base_hue = (rng.uniform(0.0, 0.12) + 0.618033988749895 * j) % 1.0
    img = np.clip(_pattern(kind, rng, base_hue), 0.0, 1.0).astype(np.float32)
    name = kind if variant == 0 else f"{kind}-{variant + 1}"
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), kind, name


def _texture(name: str) -> torch.Tensor:
    package, rel, _, cmap = BUNDLED_STYLE_TEXTURES[name]
    img = read_image(_package_file(package, rel))
    if cmap is None:
        return img
    gray = img[0].numpy().astype(np.float64)
    lo, hi = np.percentile(gray, [1.0, 99.0])
    t = np.clip((gray - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    stops = np.asarray(cmap)
    rgb = np.stack([np.interp(t, np.linspace(0, 1, len(stops)), stops[:, c]) for c in range(3)], axis=0)
    return torch.from_numpy(rgb.astype(np.float32))


def bundled_style_images(
    n: int, size: int | None = None, *, seed: int = 0
) -> tuple[list[torch.Tensor], list[str]]:
    """``n`` offline style images and their names: ``(images, names)``, each image ``(3, H, W)`` in [0, 1].

    The first five are the textures in :data:`BUNDLED_STYLE_TEXTURES`, read from the installed
    scikit-image: ``brick``, ``grass`` and ``gravel``, each colourised by its own fixed colour map
    after a 1–99 percentile contrast stretch, then ``immunohistochemistry`` and
    ``hubble_deep_field`` in their own colours. After them come procedural patterns drawn with
    numpy at 512 × 512. Their kinds cycle through :data:`PATTERN_KINDS` (names ``stripes``, …,
    ``mondrian``, then ``stripes-2``, …). Pattern ``j`` draws every parameter (geometry and palette)
    from ``derive_seed(seed, "style-pattern", j)``. The palettes' base hues step by the golden ratio,
    so neighbouring patterns differ in colour as well as in kind. Each pattern therefore depends
    only on ``seed`` and its position, never on ``n``: the first ``m`` of ``n`` styles are the
    ``m`` styles. The textures do not depend on ``seed``.

    ``size=None`` keeps the native resolutions: 512 × 512, and 872 × 1000 for the Hubble field.
    Otherwise each image is resized so that its smaller side is ``size``, with the aspect kept and
    no crop. None of these images is among the content photographs of
    :func:`bundled_content_images`.
    """
    n = _check_size(n, "n")
    if size is not None:
        size = _check_size(size, "size")
    images, names = [], []
    textures = list(BUNDLED_STYLE_TEXTURES)
    for i in range(n):
        if i < len(textures):
            img, name = _texture(textures[i]), textures[i]
        else:
            img, _, name = _generated_style(i - len(textures), seed)
        if size is not None:
            img = resize_smaller_side(img, size).contiguous()
        images.append(img)
        names.append(name)
    return images, names


def bundled_image_source(name: str, *, seed: int = 0) -> str:
    """Where the bundled image ``name`` comes from, as one line for a report.

    ``name`` is a photograph from :data:`BUNDLED_CONTENT_PHOTOS`, a content crop label from
    :func:`bundled_content_names`, a texture, or a generated style name such as ``"stripes-2"``.
    """
    photo = name.split("@", 1)[0]
    if photo in BUNDLED_CONTENT_PHOTOS:
        package, rel, origin = BUNDLED_CONTENT_PHOTOS[photo]
        crop = f", crop {name.split('@', 1)[1]}" if "@" in name else ""
        return f"content photograph {photo!r}: {package} {rel}, {origin}{crop}"
    if name in BUNDLED_STYLE_TEXTURES:
        package, rel, origin, cmap = BUNDLED_STYLE_TEXTURES[name]
        colour = "" if cmap is None else ", colourised with a fixed colour map"
        return f"style texture {name!r}: {package} {rel}, {origin}{colour}"
    kind, _, variant = name.partition("-")
    if kind in PATTERN_KINDS and (not variant or (variant.isdigit() and int(variant) >= 2)):
        number = 1 if not variant else int(variant)
        j = PATTERN_KINDS.index(kind) + (number - 1) * len(PATTERN_KINDS)
        return (
            f"generated style {name!r}: {_PATTERN_DESCRIPTIONS[kind]}; numpy, "
            f"derive_seed({seed}, 'style-pattern', {j}), drawn at {_PATTERN_RES}×{_PATTERN_RES}"
        )
    raise KeyError(f"{name!r} is not a bundled image")
