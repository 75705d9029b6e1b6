"""The style commands end to end: train-style, stylize, add-style, export, fetch-vgg, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from physamp.cli import main
from physamp.models.style.stylize import load_style_network
from physamp.models.style.vgg import random_vgg, save_vgg
from physamp.training import load_component


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write_images(folder, n, size=(40, 36), seed=0, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        img = Image.fromarray(arr)
        if mode != "RGB":
            img = img.convert(mode)
        p = folder / f"img{k:02d}.png"
        img.save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small 3-style run (a tiny random VGG as the loss network) shared by the tests."""
    d = tmp_path_factory.mktemp("style-cli")
    vgg, pre = random_vgg(seed=0)
    save_vgg(d / "vgg.pt", vgg.state_dict(), pre, note="random test weights")
    _write_images(d / "styles", 3, size=(48, 40), seed=1)
    content = d / "content"
    _write_images(content / "class_a", 4, seed=2)
    _write_images(content / "class_b", 3, seed=3, mode="L")  # grayscale: converted
    _write_images(content / "class_b", 1, seed=4, mode="RGBA")  # overwrites img00 as RGBA
    args = ["--threads", "1", "train-style", "--styles", str(d / "styles"), "--content", str(content),
            "--image-size", "16", "--batch-size", "4", "--steps", "4", "--vgg", str(d / "vgg.pt"),
            "--style-size", "32", "--workers", "0", "--no-progress", "--run-dir", str(d / "run")]  # fmt: skip
    assert main(args) == 0
    return d, args


def test_train_style_writes_a_run_that_resumes_and_a_pastiche_grid(trained, capsys):
    d, args = trained
    run = d / "run"
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "pastiches.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["family"] == "style" and config["num_styles"] == 3
    assert config["style_names"] == ["img00", "img01", "img02"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4 and any(k.startswith("style_loss/") for k in records[-1])
    grid = Image.open(run / "pastiches.png")
    assert grid.size[0] > 4 * 16  # the content image and its 3 pastiches side by side
    before = load_component(run / "checkpoint.pt")
    # rerunning the finished command resumes at its end: nothing changes
    assert main(args) == 0
    after = load_component(run / "checkpoint.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_stylize_one_style_a_mix_and_all_styles(trained, tmp_path, capsys):
    d, _ = trained
    photo = tmp_path / "photo.jpg"
    Image.fromarray((np.random.default_rng(5).random((50, 70, 3)) * 255).astype(np.uint8)).save(photo)
    run = str(d / "run")
    assert (
        main(
            [
                "stylize",
                str(photo),
                "--model",
                run,
                "--style",
                "1",
                "--size",
                "32",
                "-o",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    a = np.asarray(Image.open(tmp_path / "a.png"))
    assert a.shape == (32, 44, 3)  # 50x70 -> smaller side 32 -> 32x45 -> cropped to multiples of 4
    assert (
        main(
            [
                "stylize",
                str(photo),
                "--model",
                run,
                "--style",
                "img01",
                "--size",
                "32",
                "-o",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "b.png")))  # a name selects the same style
    # a mix: weights not summing to 1 are proportions; a one-hot mix is the style itself
    assert (
        main(
            [
                "stylize",
                str(photo),
                "--model",
                run,
                "--mix",
                "0,3,0",
                "--size",
                "32",
                "-o",
                str(tmp_path / "c.png"),
            ]
        )
        == 0
    )
    assert np.abs(np.asarray(Image.open(tmp_path / "c.png")).astype(int) - a).max() <= 1
    assert (
        main(
            [
                "stylize",
                str(photo),
                "--model",
                run,
                "--mix",
                "1,1,2",
                "--size",
                "32",
                "-o",
                str(tmp_path / "d.png"),
            ]
        )
        == 0
    )
    assert "img00 0.25, img01 0.25, img02 0.5" in capsys.readouterr().out
    assert (
        main(
            [
                "stylize",
                str(photo),
                "--model",
                run,
                "--all-styles",
                "--size",
                "32",
                "-o",
                str(tmp_path / "e.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "e.png").size[0] > 4 * 44


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--style", "3"], "out of range: this network has 3 styles"),
        (["--style", "nope"], "neither a style id nor a style name"),
        (["--mix", "1,-1,0"], "non-negative"),
        (["--mix", "0,0,0"], "all zero"),
        (["--mix", "1,1"], "this network has 3 styles"),
        (["--style", "0", "--all-styles"], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_stylize_bad_styles_are_one_line_and_exit_2(trained, tmp_path, capsys, extra, message):
    d, _ = trained
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)
    assert (
        main(["stylize", str(photo), "--model", str(d / "run"), *extra, "-o", str(tmp_path / "x.png")]) == 2
    )
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_stylize_refuses_bad_files(trained, tmp_path, capsys):
    d, _ = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["stylize", str(bad), "--model", str(d / "run"), "--style", "0"]) == 2
    assert "bad.jpg" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes((d / "run" / "checkpoint.pt").read_bytes()[:1000])
    assert main(["stylize", str(photo), "--model", str(broken), "--style", "0"]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    from physamp.training import save_components

    other = save_components(tmp_path / "rbm.pt", {"model": torch.nn.Linear(2, 2)}, config={"family": "rbm"})
    assert main(["stylize", str(photo), "--model", str(other), "--style", "0"]) == 2
    assert "not a style-transfer checkpoint" in capsys.readouterr().err


def test_add_style_trains_only_the_new_row_and_the_result_stylizes(trained, tmp_path, capsys):
    d, _ = trained
    painting = _write_images(tmp_path / "new", 1, size=(30, 30), seed=9)[0]
    out = tmp_path / "plus"
    args = ["--threads", "1", "add-style", str(painting), "--model", str(d / "run"), "--steps", "3",
            "--no-progress", "--run-dir", str(out), "--name", "fresh"]  # fmt: skip
    assert main(args) == 0
    base = load_component(d / "run" / "checkpoint.pt")
    plus = load_component(out / "checkpoint.pt")
    for k, v in base.items():
        if k.endswith(("gamma", "beta")):
            assert plus[k].shape[0] == 4 and torch.equal(plus[k][:3], v), k
        else:
            assert torch.equal(plus[k], v), k
    assert not torch.equal(plus["conv1.norm.gamma"][3], torch.ones_like(plus["conv1.norm.gamma"][3]))
    net, info = load_style_network(out)
    assert net.num_styles == 4 and info["style_names"][-1] == "fresh"
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(photo)
    assert (
        main(["stylize", str(photo), "--model", str(out), "--style", "fresh", "-o", str(tmp_path / "f.png")])
        == 0
    )


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_torchscript_from_the_cli(trained, tmp_path, capsys):
    d, _ = trained
    out = tmp_path / "net.ts.pt"
    assert (
        main(["export", "--model", str(d / "run"), "--format", "torchscript", "--size", "32", "-o", str(out)])
        == 0
    )
    assert "checked against the eager model" in capsys.readouterr().out
    scripted = torch.jit.load(str(out))
    net, _ = load_style_network(d / "run")
    x, w = torch.rand(2, 3, 24, 28), torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, w), net(x, w), rtol=1e-4, atol=1e-5)


def test_train_style_bad_input_exits_2_before_work(tmp_path, capsys):
    styles = tmp_path / "styles"
    _write_images(styles, 2)
    content = tmp_path / "content"
    _write_images(content, 3)
    (styles / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    base = ["--threads", "1", "train-style", "--content", str(content), "--image-size", "16"]
    base += ["--batch-size", "2", "--steps", "1", "--vgg", str(tmp_path / "no-such-vgg.pt"), "--no-progress"]
    base += ["--run-dir", str(tmp_path / "r")]
    assert main([*base, "--styles", str(styles)]) == 2
    assert "broken.png" in capsys.readouterr().err  # a style cannot be skipped: its id would shift the others
    assert main([*base, "--styles", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (styles / "broken.png").unlink()
    assert (
        main([*base[:-2], "--run-dir", str(tmp_path / "r"), "--styles", str(styles), "--image-size", "18"])
        == 2
    )
    assert "multiple of 4" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base, "--styles", str(styles), "--content", str(empty)]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "image" in err
    assert main([*base, "--styles", str(styles)]) == 2  # everything fine but the loss network's weights
    assert "no-such-vgg.pt" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_fetch_vgg_converts_a_user_file_and_refuses_junk(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    vgg, pre = random_vgg(seed=1)
    path = save_vgg(tmp_path / "mine.pt", vgg.state_dict(), pre, note="my weights")
    assert main(["fetch-vgg", "--source", str(path)]) == 0
    assert "checked" in capsys.readouterr().out
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    assert main(["fetch-vgg", "--source", str(junk)]) == 2
    assert "junk.pth" in capsys.readouterr().err


def test_add_style_from_inside_the_run_directory_with_a_relative_vgg_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    vgg, pre = random_vgg(seed=0)
    save_vgg("vgg.pt", vgg.state_dict(), pre, note="random test weights")
    _write_images(
        tmp_path / "bundled_art", 2, size=(32, 32), seed=1
    )  # a folder whose name starts with bundled
    args = [
        "--threads",
        "1",
        "train-style",
        "--styles",
        "bundled_art",
        "--content",
        "bundled",
        "--image-size",
        "16",
    ]
    args += ["--batch-size", "4", "--steps", "2", "--vgg", "vgg.pt", "--max-content", "8", "--no-progress"]
    assert main([*args, "--run-dir", "run"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["style_names"] == ["img00", "img01"]  # the folder, not the bundled images
    assert config["vgg"] == str(tmp_path / "vgg.pt")
    painting = _write_images(tmp_path / "new", 1, size=(30, 30), seed=9)[0]
    elsewhere = tmp_path / "run"
    monkeypatch.chdir(elsewhere)  # the run's relative vgg.pt is not here
    assert main(["--threads", "1", "add-style", str(painting), "--model", "checkpoint.pt", "--steps", "1",
                 "--no-progress"]) == 0  # fmt: skip
    assert (tmp_path / "run-plus-img00" / "checkpoint.pt").is_file()
