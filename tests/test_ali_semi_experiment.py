"""``physamp experiment ali-semi-supervised``: the tiny preset end to end, the features, the flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from physamp.cli import main
from physamp.experiments import ali_semi_supervised as exp
from physamp.models.ali import build_ali


def test_cells_are_one_per_feature_set():
    cells = exp.cells(exp.PRESETS["quick"])
    assert [c["features"] for c in cells] == ["pixels", "untrained", "ali"]
    assert all(c["n_labels"] == 1000 and c["n_val"] == 10_000 and c["n_svms"] == 100 for c in cells)


def test_encoder_features_are_the_last_three_hidden_layers_and_mu():
    ali = build_ali("mnist", seed=0)
    x = (torch.rand(3, 1, 28, 28) * 255).round().to(torch.uint8)
    f = exp.encoder_features(ali.encoder, x)  # in eval mode, then back to the mode it found
    assert ali.encoder.training
    ali.eval()
    assert f.shape == (3, 256 * 3 * 3 + 512 + 512 + 64) and f.dtype == np.float32
    with torch.no_grad():
        mu, _ = ali.encoder.posterior(x.float() / 255)
        last_hidden = ali.encoder.body(x.float() / 255).flatten(1)
    assert np.allclose(f[:, -64:], mu.flatten(1).numpy(), atol=1e-6)
    assert np.allclose(f[:, -64 - 512 : -64], last_hidden.numpy(), atol=1e-6)


def test_untrained_baseline_takes_batch_norm_statistics_from_data():
    ali = build_ali("mnist", seed=0)
    weights = ali.encoder.body[0][0].weight.clone()
    x = torch.rand(200, 1, 28, 28)
    exp._batch_norm_statistics(ali.encoder, x)
    bn = ali.encoder.body[0][1]
    assert torch.equal(ali.encoder.body[0][0].weight, weights)
    conv = ali.encoder.body[0][0](x)
    assert torch.allclose(bn.running_mean, conv.mean(dim=(0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.05


def test_the_tiny_preset_runs_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "out"
    argv = ["--threads", "1", "experiment", "ali-semi-supervised", "--preset", "tiny", "--dataset", "mnist"]
    assert main([*argv, "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    text = (out / "ali-semi-supervised.md").read_text()
    for line in ("raw pixels", "untrained encoder", "ALI encoder", "19.14 ± 0.50", "4 steps"):
        assert line in text
    results = json.loads((out / "ali-semi-supervised.json").read_text())
    assert [r["feature_dim"] for r in results] == [784, 3392, 3392]
    assert all(0 <= r["error_mean"] <= 100 for r in results)
    assert (out / "ali-semi-supervised.png").stat().st_size > 1000
    assert any(p.name.startswith("ali-") for p in (tmp_path / "models").iterdir())  # the cached encoder


def test_dataset_flag_is_checked(capsys):
    assert main(["experiment", "chimera", "--dataset", "svhn"]) == 2
    assert "takes no --dataset" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["svhn"])
def test_a_dataset_without_its_files_is_one_clear_error(dataset, tmp_path, capsys):
    argv = ["experiment", "ali-semi-supervised", "--preset", "tiny", "--dataset", dataset]
    code = main([*argv, "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert code == 2
    assert "train_32x32.mat" in capsys.readouterr().err
