"""``physamp train-ali``: the toy, offline MNIST (plain and conditional), resume, and one-line errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from physamp.cli import main
from physamp.models.ali.data import load_ali_data
from physamp.training import load_checkpoint, read_metrics

TINY = ["--no-progress", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_train_ali_toy_writes_the_toy_figure_and_mode_count(tmp_path, capsys):
    run = tmp_path / "toy"
    argv = [
        "--threads",
        "1",
        "train-ali",
        "--dataset",
        "toy",
        "--max-train",
        "1000",
        "--run-dir",
        str(run),
        *TINY,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "modes covered by 10,000 samples of p(x)" in out and "13.4 ± 5.8" in out
    metrics = json.loads((run / "toy_metrics.json").read_text())
    assert 1 <= metrics["modes"] <= 25 and 0 <= metrics["high_quality"] <= 1
    assert Image.open(run / "toy.png").size[0] > 100
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"] == "ali" and cfg["model"] == "toy" and cfg["beta1"] == 0.8
    assert read_metrics(run / "metrics.jsonl")[-1]["step"] == 10
    # the same command again finds the finished run and does not train again; spelling out a
    # default value (--lr 1e-4, the table's) is the same run
    before = load_checkpoint(run / "checkpoint.pt")["step"]
    assert main([*argv, "--lr", "1e-4", "--beta1", "0.8"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == before == 10
    assert "--steps" not in capsys.readouterr().out


def test_train_ali_gan_baseline(tmp_path, capsys):
    run = tmp_path / "gan"
    argv = [
        "--threads",
        "1",
        "train-ali",
        "--dataset",
        "toy",
        "--gan",
        "--max-train",
        "500",
        "--run-dir",
        str(run),
    ]
    assert main(argv + TINY) == 0
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert not any(k.startswith("encoder.") for k in ckpt["state:model"])
    assert "GAN" in capsys.readouterr().out


def test_train_ali_mnist_offline_writes_the_pngs(tmp_path):
    run = tmp_path / "mnist"
    argv = ["--threads", "1", "train-ali", "--dataset", "mnist", "--max-train", "60", "--batch-size", "20"]
    assert main(argv + ["--run-dir", str(run), *TINY]) == 0
    for name in ("samples.png", "reconstructions.png", "interpolations.png"):
        assert Image.open(run / name).mode == "L"
    # reconstructions: originals in odd columns (1st, 3rd, ...), their reconstructions beside them
    grid = np.asarray(Image.open(run / "reconstructions.png"), dtype=np.float32) / 255
    data = load_ali_data("mnist")
    first = data.x_val[0, 0].numpy()
    assert np.abs(grid[2:30, 2:30] - first).max() < 1 / 255 + 1e-6


def test_conditional_mnist_draws_one_digit_per_column(tmp_path):
    run = tmp_path / "cond"
    argv = ["--threads", "1", "train-ali", "--dataset", "mnist", "--conditional", "--cond-embed", "8"]
    argv += ["--max-train", "40", "--batch-size", "20", "--run-dir", str(run), *TINY]
    assert main(argv) == 0
    grid = Image.open(run / "conditional.png")
    assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10 z (rows) x 10 digits (columns)
    assert load_checkpoint(run / "checkpoint.pt")["config"]["n_cond"] == 10


def test_a_smaller_mnist_is_a_random_subset_of_every_class():
    data = load_ali_data("mnist", max_train=200, seed=0)
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape == (200, 1, 28, 28)
    assert len(set(data.y_train.tolist())) == 10
    assert data.conditioning().shape == (200, 10) and data.conditioning("val").shape[1] == 10


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "mnst"], "unknown ALI dataset 'mnst'; choose one of toy, mnist"),
        (["--dataset", "mnist", "--model", "svhn"], "the svhn model takes images of shape (B, 3, 32, 32)"),
        (["--dataset", "toy", "--data-root", "x"], "the toy mixture is generated"),
        (["--dataset", "toy", "--lr", "1e30", "--max-train", "300"], "its gradients are not finite at step"),
        (["--dataset", "toy", "--gan", "--conditional"], "the GAN baseline is unconditional"),
        (["--dataset", "toy", "--device", "cuda"], "CUDA is not available"),
        (["--dataset", "toy", "--conditional"], "the toy mixture has no labels or attributes"),
        (["--dataset", "toy", "--amp"], "--amp (bfloat16 autocast) is for CUDA"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["--threads", "1", "train-ali", *argv, "--run-dir", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_missing_and_truncated_dataset_files_say_which_file(tmp_path, capsys):
    empty = tmp_path / "svhn"
    empty.mkdir()
    assert main(["train-ali", "--dataset", "svhn", "--data-root", str(empty), *TINY]) == 2
    err = capsys.readouterr().err
    assert "train_32x32.mat" in err and str(empty) in err
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    raw = pickle.dumps(batch, protocol=2)
    for name in (
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ):
        (folder / name).write_bytes(raw)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}, protocol=2))
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])  # truncated
    assert main(["train-ali", "--dataset", "cifar10", "--data-root", str(tmp_path / "cifar"), *TINY]) == 2
    assert "data_batch_3" in capsys.readouterr().err


def test_steps_are_what_the_plan_prints(tmp_path, capsys):
    argv = [
        "--threads",
        "1",
        "train-ali",
        "--dataset",
        "toy",
        "--steps",
        "3",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--no-progress"]) == 0
    assert "3 steps (1,000 per epoch)" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["step"] == 3


def _fake_celeba(folder, n=12):
    """Aligned 178x218 JPEGs, the 40-attribute list and the partition file, in CelebA's formats."""
    (folder / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    attrs = rng.choice([-1, 1], size=(n, 40))
    for name in names:
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(
            folder / "img_align_celeba" / name
        )
    header = " ".join(f"A{i}" for i in range(40))
    rows = [f"{nm} " + " ".join(map(str, a)) for nm, a in zip(names, attrs, strict=True)]
    (folder / "list_attr_celeba.txt").write_text(f"{n}\n{header}\n" + "\n".join(rows) + "\n")
    parts = [0] * (n - 4) + [1] * 4
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{nm} {p}\n" for nm, p in zip(names, parts, strict=True))
    )


def test_conditional_celeba_on_its_40_attributes(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSAMP_DATA", str(tmp_path / "cache"))
    _fake_celeba(tmp_path / "celeba")
    run = tmp_path / "run"
    argv = ["--threads", "1", "train-ali", "--dataset", "celeba", "--data-root", str(tmp_path / "celeba")]
    argv += ["--conditional", "--batch-size", "4", "--steps", "1", "--cond-embed", "8", "--run-dir", str(run)]
    assert main([*argv, "--no-progress"]) == 0
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["config"]["n_cond"] == 40 and ckpt["state:model"]["decoder.embed.linear.weight"].shape == (
        8,
        40,
    )
    assert Image.open(run / "samples.png").mode == "RGB"
