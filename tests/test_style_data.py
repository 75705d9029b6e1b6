"""Style-transfer image data: files written in tmp_path in their genuine formats with PIL, then read back."""

from __future__ import annotations

import importlib.util
import pickle
import socket
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import physamp.models.style.data as sd
from physamp.models.style.data import (
    BUNDLED_CONTENT_PHOTOS,
    BUNDLED_SOURCES,
    BUNDLED_STYLE_TEXTURES,
    ContentImages,
    ImageReadError,
    ImageReadWarning,
    bundled_content_images,
    bundled_content_names,
    bundled_image_source,
    bundled_style_images,
    center_crop,
    default_resize,
    load_style_images,
    read_image,
    resize_smaller_side,
)

have_skimage = importlib.util.find_spec("skimage") is not None
have_sklearn = importlib.util.find_spec("sklearn") is not None
needs_bundles = pytest.mark.skipif(
    not (have_skimage and have_sklearn), reason="needs scikit-image and scikit-learn"
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Nothing here may reach the network: bundled images are read from the installed wheels."""

    def refuse(*args, **kwargs):
        raise AssertionError("a style-data test tried to open a network connection")

    real_connect = socket.socket.connect

    def connect(self, address):  # local AF_UNIX sockets (DataLoader workers) are fine
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse()
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _save(img: Image.Image, path, fmt: str | None = None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **kw)
    return path


def _mode(path) -> str:
    with Image.open(path) as im:
        return im.mode


def _solid(colour, size=(12, 8)) -> Image.Image:
    return Image.new("RGB", size, colour)


def _rgb(t: torch.Tensor, y: int = 0, x: int = 0) -> list[float]:
    return t[:, y, x].tolist()


# ---------------------------------------------------------------------------------------------
# read_image: modes
# ---------------------------------------------------------------------------------------------


def test_rgb_png_exact_and_layout(tmp_path):
    a = np.zeros((2, 3, 3), dtype=np.uint8)
    a[0, 0] = (255, 0, 0)
    a[1, 2] = (10, 20, 30)
    t = read_image(_save(Image.fromarray(a), tmp_path / "x.png"))
    assert t.dtype == torch.float32 and t.shape == (3, 2, 3)
    assert _rgb(t, 0, 0) == [1.0, 0.0, 0.0]
    assert torch.allclose(t[:, 1, 2], torch.tensor([10, 20, 30]) / 255.0)


def test_gray_l_replicated(tmp_path):
    t = read_image(_save(Image.new("L", (5, 4), 128), tmp_path / "g.png"))
    assert t.shape == (3, 4, 5)
    assert torch.allclose(t, torch.full_like(t, 128 / 255.0))


def test_bilevel_mode_1(tmp_path):
    im = Image.new("1", (4, 1), 0)
    im.putpixel((1, 0), 1)
    path = _save(im, tmp_path / "b.png")
    assert _mode(path) == "1"
    t = read_image(path)
    assert t[:, 0, 0].tolist() == [0.0] * 3 and t[:, 0, 1].tolist() == [1.0] * 3


def test_rgba_composited_onto_white(tmp_path):
    a = np.array([[(200, 10, 10, 0), (200, 10, 10, 255), (0, 0, 0, 128)]], dtype=np.uint8)
    t = read_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "a.png"))
    assert _rgb(t, 0, 0) == [1.0, 1.0, 1.0]  # fully transparent → white
    assert torch.allclose(t[:, 0, 1], torch.tensor([200, 10, 10]) / 255.0)
    alpha = 128 / 255.0
    assert torch.allclose(t[:, 0, 2], torch.full((3,), 1.0 - alpha), atol=1e-6)  # black over white


def test_la_composited_onto_white(tmp_path):
    a = np.array([[(100, 0), (100, 255)]], dtype=np.uint8)
    t = read_image(_save(Image.fromarray(a, "LA"), tmp_path / "la.png"))
    assert _rgb(t, 0, 0) == [1.0] * 3
    assert torch.allclose(t[:, 0, 1], torch.full((3,), 100 / 255.0))


def _palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2])
    return im


def test_palette_colours(tmp_path):
    path = _save(_palette_image(), tmp_path / "p.png")
    assert _mode(path) == "P"
    t = read_image(path)
    assert _rgb(t, 0, 0) == [1.0, 0.0, 0.0] and _rgb(t, 0, 1) == [0.0, 1.0, 0.0]
    assert torch.allclose(t[:, 0, 2], torch.tensor([10, 20, 30]) / 255.0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_is_white(tmp_path, fmt):
    path = _save(_palette_image(), tmp_path / f"pt.{fmt.lower()}", fmt, transparency=1)
    with Image.open(path) as im:
        assert im.mode == "P" and "transparency" in im.info
    t = read_image(path)
    assert _rgb(t, 0, 0) == [1.0, 0.0, 0.0]
    assert _rgb(t, 0, 1) == [1.0, 1.0, 1.0]  # index 1 is transparent
    assert torch.allclose(t[:, 0, 2], torch.tensor([10, 20, 30]) / 255.0)


def test_rgb_colour_key_transparency(tmp_path):
    a = np.array([[(10, 20, 30), (40, 50, 60)]], dtype=np.uint8)
    path = _save(Image.fromarray(a), tmp_path / "key.png", transparency=(10, 20, 30))
    t = read_image(path)
    assert _rgb(t, 0, 0) == [1.0] * 3
    assert torch.allclose(t[:, 0, 1], torch.tensor([40, 50, 60]) / 255.0)


def test_cmyk_tiff(tmp_path):
    a = np.array([[(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 255, 255, 0)]], dtype=np.uint8)
    path = _save(Image.fromarray(a, "CMYK"), tmp_path / "c.tif")
    assert _mode(path) == "CMYK"
    t = read_image(path)
    assert _rgb(t, 0, 0) == [1.0, 1.0, 1.0]  # no ink: white
    assert _rgb(t, 0, 1) == [0.0, 1.0, 1.0]  # cyan
    assert _rgb(t, 0, 2) == [0.0, 0.0, 0.0]  # black
    assert _rgb(t, 0, 3) == [1.0, 0.0, 0.0]  # magenta + yellow = red


def test_16_bit_png_scaled_by_65535(tmp_path):
    a = np.array([[0, 32768, 65535, 255]], dtype=np.uint16)
    path = _save(Image.fromarray(a), tmp_path / "d.png")
    assert _mode(path) in ("I;16", "I")
    t = read_image(path)
    expected = torch.tensor([0, 32768, 65535, 255], dtype=torch.float32) / 65535.0
    for c in range(3):
        assert torch.allclose(t[c, 0], expected, atol=1e-7)
    assert 0.0 < float(t[0, 0, 3]) < 0.01  # 255 of 65535 is dark, not saturated as a clip at 255 would give


def test_32_bit_integer_and_float_tiff(tmp_path):
    ti = read_image(
        _save(Image.fromarray(np.array([[0, 70000, -5, 32768]], dtype=np.int32)), tmp_path / "i.tif")
    )
    assert torch.allclose(ti[0, 0], torch.tensor([0.0, 1.0, 0.0, 32768 / 65535.0]))
    fa = np.array([[0.25, 1.5, -1.0, np.nan]], dtype=np.float32)
    tf = read_image(_save(Image.fromarray(fa), tmp_path / "f.tif"))
    assert tf[:, 0].tolist() == [[0.25, 1.0, 0.0, 0.0]] * 3


@pytest.mark.parametrize("ext,fmt", [("bmp", "BMP"), ("webp", "WEBP"), ("tiff", "TIFF")])
def test_lossless_formats_round_trip(tmp_path, ext, fmt):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    kw = {"lossless": True} if fmt == "WEBP" else {}
    t = read_image(_save(Image.fromarray(a), tmp_path / f"r.{ext}", fmt, **kw))
    assert torch.equal(t, torch.from_numpy(a).permute(2, 0, 1).float() / 255.0)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: displayed after a 90° clockwise turn
    path = _save(im, tmp_path / "o.jpg", "JPEG", exif=exif, quality=95)
    plain = read_image(_save(im, tmp_path / "plain.jpg", "JPEG", quality=95))
    assert plain.shape == (3, 20, 40)
    t = read_image(path)
    assert t.shape == (3, 40, 20)  # height and width swapped
    top, bottom = t[:, 5, 10], t[:, 35, 10]  # the left edge turns into the top edge
    assert top[0] > 0.9 and top[2] < 0.1, top
    assert bottom[2] > 0.9 and bottom[0] < 0.1, bottom


def test_truncated_jpeg_fails_naming_the_file(tmp_path):
    rng = np.random.default_rng(1)
    path = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "cut.jpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as im:  # the header is fine: only a full decode notices
        assert im.size == (64, 64)
    with pytest.raises(ImageReadError, match="cut.jpg") as info:
        read_image(path)
    assert info.value.path == str(path) and "truncated" in info.value.reason
    assert isinstance(info.value, ValueError)


def test_truncated_png_fails(tmp_path):
    rng = np.random.default_rng(2)
    path = _save(Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)), tmp_path / "cut.png")
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(path)


def test_text_file_named_jpg_and_missing_file(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        read_image(fake)
    with pytest.raises(ImageReadError, match="nowhere.png.*no such file"):
        read_image(tmp_path / "nowhere.png")
    err = pickle.loads(pickle.dumps(ImageReadError("a.png", "why")))
    assert (err.path, err.reason) == ("a.png", "why")


# ---------------------------------------------------------------------------------------------
# resize and crop
# ---------------------------------------------------------------------------------------------


def test_default_resize_is_magentas_ratio():
    assert default_resize(256) == 258
    assert default_resize(512) == 516
    assert default_resize(64) == 65
    assert default_resize(32) == 32
    with pytest.raises(ValueError):
        default_resize(0)


@pytest.mark.parametrize(
    "shape,size,expected",
    [
        ((3, 100, 300), 50, (3, 50, 150)),  # wide
        ((3, 301, 100), 50, (3, 151, 50)),  # tall, 150.5 rounds up
        ((3, 10, 20), 64, (3, 64, 128)),  # tiny: upsampled
        ((2, 3, 20, 40), 10, (2, 3, 10, 20)),  # a batch
    ],
)
def test_resize_smaller_side_shapes(shape, size, expected):
    img = torch.full(shape, 0.3)
    out = resize_smaller_side(img, size)
    assert out.shape == expected
    assert torch.allclose(out, torch.full(expected, 0.3), atol=1e-6)  # a constant stays constant


def test_resize_noop_and_antialiasing():
    img = torch.rand(3, 16, 24)
    assert resize_smaller_side(img, 16) is img
    checker = ((torch.arange(96)[:, None] + torch.arange(96)[None, :]) % 2).float().expand(3, 96, 96)
    small = resize_smaller_side(checker, 32)  # a factor 3: plain bilinear would hit 0s and 1s only
    assert small.shape == (3, 32, 32)
    assert (small - 0.5).abs().max() < 0.15


def test_center_crop_positions():
    img = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 5, 7).expand(3, 5, 7)
    crop = center_crop(img, 3)
    assert crop.shape == (3, 3, 3)
    assert crop[0].tolist() == [[9.0, 10.0, 11.0], [16.0, 17.0, 18.0], [23.0, 24.0, 25.0]]
    assert center_crop(img, (5, 2))[0, 0].tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="resize"):
        center_crop(img, 6)


def test_resize_then_crop_keeps_the_middle_of_a_wide_image():
    img = torch.zeros(3, 30, 90)
    img[0, :, :30] = 1.0
    img[1, :, 30:60] = 1.0
    img[2, :, 60:] = 1.0
    out = center_crop(resize_smaller_side(img, 16), 16)
    assert out.shape == (3, 16, 16)
    green = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    assert torch.allclose(out[:, :, 2:-2], green.expand(3, 16, 12), atol=1e-5)  # away from the filter's reach
    assert out[1].min() > 0.5 and out[0, :, 0].mean() > out[0, :, -1].mean()  # red bleeds in at the left only


# ---------------------------------------------------------------------------------------------
# ContentImages
# ---------------------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (90, 60, 30)]


def _imagenet_like(root):
    """Class subfolders, mixed extensions and sizes; returns the expected sorted relative paths → colour."""
    files = {
        "n02/b.png": (COLOURS[1], (30, 20)),
        "n01/z.png": (COLOURS[0], (20, 40)),
        "n02/a.JPEG": (COLOURS[2], (24, 24)),
        "n10/c.bmp": (COLOURS[3], (9, 7)),  # smaller than the crop
        "n03/deep/d.tif": (COLOURS[4], (40, 18)),
    }
    for rel, (colour, size) in files.items():
        fmt = "JPEG" if rel.endswith("JPEG") else None
        _save(_solid(colour, size), root / rel, fmt, **({"quality": 100} if fmt else {}))
    (root / "labels.txt").write_text("n01 tench\n")
    (root / "n01" / ".hidden.jpg").write_text("junk, but hidden")
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.png").write_text("junk in a hidden folder")
    (root / "n01" / "readme.md").write_text("not an image")
    order = ["n01/z.png", "n02/a.JPEG", "n02/b.png", "n03/deep/d.tif", "n10/c.bmp"]
    return order, [files[r][0] for r in order]


def test_content_nested_sorted_and_cropped(tmp_path):
    order, colours = _imagenet_like(tmp_path / "train")
    ds = ContentImages(tmp_path / "train", size=16)
    assert ds.resize == default_resize(16) == 16
    rel = [p[len(str(tmp_path / "train")) + 1 :].replace("\\", "/") for p in ds.paths]
    assert rel == order and len(ds) == 5
    for i, colour in enumerate(colours):
        x = ds[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32
        tol = 2 / 255 if order[i].endswith("JPEG") else 1e-6
        assert torch.allclose(x, (torch.tensor(colour) / 255.0)[:, None, None].expand(3, 16, 16), atol=tol)
    assert torch.equal(ds[-1], ds[4])
    with pytest.raises(IndexError):
        ds[5]
    assert len(ContentImages(tmp_path / "train", size=8, max_images=2)) == 2
    assert len(ContentImages(tmp_path / "train", size=8, extensions=("png",))) == 2


def test_content_flat_folder(tmp_path):
    for i, c in enumerate(COLOURS):
        _save(_solid(c, (20 + i, 14)), tmp_path / f"COCO_{i:03d}.jpg", quality=100)
    ds = ContentImages(tmp_path, size=8, resize=12)
    assert len(ds) == len(COLOURS) and ds.paths == sorted(ds.paths)
    x = ds[3]
    assert x.shape == (3, 8, 8)
    assert torch.allclose(x.mean((1, 2)), torch.tensor(COLOURS[3]) / 255.0, atol=3 / 255)
    with pytest.raises(ValueError, match="at least the crop"):
        ContentImages(tmp_path, size=8, resize=6)


def test_content_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        ContentImages(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no image files.*\.jpg.*\.png"):
        ContentImages(tmp_path / "empty")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        ContentImages(tmp_path / "file.png")


def _with_corrupt(root, bad=(1,), n=4):
    for i in range(n):
        path = root / f"img{i}.png"
        if i in bad:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        else:
            _save(_solid(COLOURS[i], (10, 10)), path)
    return root


def test_corrupt_file_warns_once_and_is_substituted(tmp_path):
    ds = ContentImages(_with_corrupt(tmp_path, bad=(1, 3)), size=8)
    with pytest.warns(ImageReadWarning, match="img1.png"):
        x = ds[1]
    assert torch.equal(x, ds[2])  # the next readable one
    assert ds.bad_files == {ds.paths[1]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning for a file already known bad
        assert torch.equal(ds[1], ds[2])
    with pytest.warns(ImageReadWarning, match="img3.png"):
        assert torch.equal(ds[3], ds[0])  # wraps around
    with pytest.raises(ImageReadError, match="img1.png"):
        ds.load(1)


def test_validate_drops_bad_files(tmp_path):
    root = _with_corrupt(tmp_path / "a", bad=(0, 2))
    ds = ContentImages(root, size=8)
    with pytest.warns(ImageReadWarning, match="img0.png.*img2.png") as record:
        dropped = ds.validate()
    assert len([w for w in record if issubclass(w.category, ImageReadWarning)]) == 1
    assert [p.rsplit("/", 1)[-1] for p in dropped] == ["img0.png", "img2.png"]
    assert len(ds) == 2
    assert torch.allclose(ds[0][:, 0, 0], torch.tensor(COLOURS[1]) / 255.0)
    with pytest.warns(ImageReadWarning):
        assert len(ContentImages(root, size=8, check=True)) == 2


def test_all_bad_is_an_error(tmp_path):
    root = _with_corrupt(tmp_path, bad=(0, 1, 2), n=3)
    ds = ContentImages(root, size=8)
    with pytest.warns(ImageReadWarning), pytest.raises(ImageReadError, match="none of the 3"):
        ds[0]
    with pytest.raises(ImageReadError, match="none of the 3"):
        ContentImages(root, size=8).validate()


def test_content_in_dataloader_workers(tmp_path):
    for i, c in enumerate(COLOURS):
        _save(_solid(c, (14, 10 + i)), tmp_path / "cls" / f"{i}.png")
    ds = ContentImages(tmp_path, size=8)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.paths == ds.paths and torch.equal(clone[2], ds[2])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    assert torch.equal(torch.cat(batches), torch.stack([ds[i] for i in range(len(ds))]))


# ---------------------------------------------------------------------------------------------
# style images
# ---------------------------------------------------------------------------------------------


def test_load_style_images_from_folder_and_list(tmp_path):
    _save(_solid((255, 0, 0), (40, 20)), tmp_path / "s" / "b_wave.png")
    _save(_solid((0, 0, 255), (30, 60)), tmp_path / "s" / "a_night.jpg", quality=100)
    (tmp_path / "s" / "notes.txt").write_text("x")
    _save(_solid((0, 255, 0)), tmp_path / "s" / "nested" / "ignored.png")
    imgs, names = load_style_images(tmp_path / "s")
    assert names == ["a_night", "b_wave"]
    assert [tuple(i.shape) for i in imgs] == [(3, 60, 30), (3, 20, 40)]  # native sizes kept
    imgs, names = load_style_images(tmp_path / "s", size=10)
    assert [tuple(i.shape) for i in imgs] == [(3, 20, 10), (3, 10, 20)]
    paths = [
        tmp_path / "s" / "b_wave.png",
        tmp_path / "s" / "a_night.jpg",
        tmp_path / "s" / "nested" / "ignored.png",
    ]
    imgs, names = load_style_images([str(p) for p in paths])
    assert names == ["b_wave", "a_night", "ignored"]
    assert torch.allclose(imgs[2][:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    _, names = load_style_images(tmp_path / "s" / "b_wave.png")
    assert names == ["b_wave"]
    _save(_solid((1, 2, 3)), tmp_path / "t" / "b_wave.bmp")
    _, names = load_style_images([paths[0], tmp_path / "t" / "b_wave.bmp"])
    assert names == ["b_wave", "b_wave-2"]


def test_style_errors(tmp_path):
    _save(_solid((255, 0, 0)), tmp_path / "s" / "good.png")
    (tmp_path / "s" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        load_style_images(tmp_path / "s")
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="no style images"):
        load_style_images(tmp_path / "e")
    with pytest.raises(ValueError, match="empty"):
        load_style_images([])
    with pytest.raises(FileNotFoundError):
        load_style_images(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# bundled offline images
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def styles32():
    if not (have_skimage and have_sklearn):
        pytest.skip("needs scikit-image and scikit-learn")
    return bundled_style_images(32, 32, seed=0)


@pytest.fixture(scope="module")
def content32():
    if not (have_skimage and have_sklearn):
        pytest.skip("needs scikit-image and scikit-learn")
    return bundled_content_images(32)


def _mad_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None] - b[None]).abs().mean(dim=(2, 3, 4))


@needs_bundles
def test_bundled_content_shapes_range_and_distinct(content32):
    x = content32
    assert x.shape == (112, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.std() > 0.1
    d = _mad_matrix(x, x)
    d.fill_diagonal_(1.0)
    assert d.min() > 0.01  # every crop differs from every other
    assert torch.equal(bundled_content_images(32), x)  # deterministic
    names = bundled_content_names(32)
    assert len(names) == 112 and len(set(names)) == 112
    gray = [i for i, n in enumerate(names) if n.split("@")[0] in ("camera", "coins")]
    colour = [i for i, n in enumerate(names) if n.startswith("astronaut@")]
    assert len(gray) == 28 and len(colour) == 14
    assert torch.equal(x[gray, 0], x[gray, 1]) and torch.equal(x[gray, 1], x[gray, 2])
    assert (x[colour, 0] - x[colour, 2]).abs().mean() > 0.05
    assert bundled_content_images(64, 3).shape == (3, 3, 64, 64)


@needs_bundles
def test_bundled_content_subsets_are_seeded(content32):
    a = bundled_content_images(32, 20, seed=3)
    assert torch.equal(a, bundled_content_images(32, 20, seed=3))
    assert not torch.equal(a, bundled_content_images(32, 20, seed=4))
    idx = [bundled_content_names(32).index(n) for n in bundled_content_names(32, 20, seed=3)]
    assert len(set(idx)) == 20 and torch.equal(a, content32[idx])  # labels aligned with the images
    big = bundled_content_images(32, 120, seed=3)
    assert big.shape[0] == 120 and torch.equal(big[112:], big[:8])  # cycles after all 112


@needs_bundles
def test_bundled_styles_shapes_names_determinism(styles32):
    imgs, names = styles32
    assert len(imgs) == 32 and len(set(names)) == 32
    assert names[:5] == list(BUNDLED_STYLE_TEXTURES) and names[5:7] == ["stripes", "checkerboard"]
    assert "stripes-2" in names
    for img in imgs:
        assert img.dtype == torch.float32 and img.dim() == 3 and img.shape[0] == 3
        assert min(img.shape[1:]) == 32 and img.min() >= 0.0 and img.max() <= 1.0
    again, names2 = bundled_style_images(8, 32, seed=0)  # a prefix: pattern j never depends on n
    assert names2 == names[:8] and all(torch.equal(a, b) for a, b in zip(again, imgs[:8], strict=True))
    other, _ = bundled_style_images(8, 32, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(other[:5], imgs[:5], strict=True))  # textures are fixed
    assert all(not torch.equal(a, b) for a, b in zip(other[5:], imgs[5:8], strict=True))


@needs_bundles
def test_bundled_styles_colourful_and_distinct(styles32):
    imgs, names = styles32
    x = torch.stack([center_crop(i, 32) for i in imgs])
    d = _mad_matrix(x, x)
    d.fill_diagonal_(1.0)
    assert d.min() > 0.05, (names[int(d.argmin()) // 32], names[int(d.argmin()) % 32], float(d.min()))
    chroma = (x.amax(1) - x.amin(1)).mean(dim=(1, 2))
    assert chroma[5:].min() > 0.1, dict(
        zip(names[5:], chroma[5:].tolist(), strict=True)
    )  # colourful patterns
    assert chroma[:3].min() > 0.05  # the grayscale textures were colourised


@needs_bundles
def test_bundled_styles_native_size():
    imgs, names = bundled_style_images(6)
    shapes = dict(zip(names, (tuple(i.shape) for i in imgs), strict=True))
    assert shapes["brick"] == (3, 512, 512) and shapes["stripes"] == (3, 512, 512)
    assert shapes["hubble_deep_field"] == (3, 872, 1000)


@needs_bundles
def test_content_and_styles_are_disjoint(styles32, content32):
    imgs, names = styles32
    assert not set(names) & set(BUNDLED_CONTENT_PHOTOS)
    style_files = {rel for _, rel, _, _ in BUNDLED_STYLE_TEXTURES.values()}
    assert not style_files & {rel for _, rel, _ in BUNDLED_CONTENT_PHOTOS.values()}
    x = torch.stack([center_crop(i, 32) for i in imgs])
    assert _mad_matrix(x, content32).min() > 0.03


@needs_bundles
def test_sources_describe_every_bundled_image(styles32):
    assert "scikit-image" in BUNDLED_SOURCES["content"] and "scikit-learn" in BUNDLED_SOURCES["content"]
    assert "numpy" in BUNDLED_SOURCES["styles"]
    for name in styles32[1]:
        assert name in bundled_image_source(name)
    assert "CC BY 2.0" in bundled_image_source("china")
    assert "crop" in bundled_image_source(bundled_content_names(32)[5])
    assert "'style-pattern', 10" in bundled_image_source("stripes-2")
    with pytest.raises(KeyError):
        bundled_image_source("starry_night")


def test_missing_package_gives_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        sd.importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a)
    )
    with pytest.raises(ImportError, match="pip install scikit-image"):
        bundled_content_images(16, 2)
    with pytest.raises(ImportError, match="pip install scikit-image"):
        bundled_style_images(1)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        resize_smaller_side(torch.rand(3, 4, 4), 0)
    with pytest.raises(ValueError):
        resize_smaller_side(np.zeros((3, 4, 4)), 2)
    with pytest.raises(ValueError):
        bundled_style_images(0)
    with pytest.raises(ValueError):
        bundled_content_images(16, 0)
    with pytest.raises(ValueError, match="positive"):
        ContentImages(tmp_path, size=True)
