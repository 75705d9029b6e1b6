"""The toy study of ALI (§5.4.5, Fig. 5.8): the inference baselines and the ``ali-toy`` experiment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physamp.experiments import EXPERIMENTS, ali_toy
from physamp.experiments.runner import load_experiment, run_experiment
from physamp.models.ali import build_ali
from physamp.models.ali.baselines import (
    BaselineConfig,
    InverseMappingTrainer,
    PostHocTrainer,
    ToyVAE,
    VAETrainer,
    gaussian_kl,
)
from physamp.models.ali.toy import grid_mixture
from physamp.training import TrainLoop, checkpoint_components, load_component


@pytest.fixture(scope="module")
def points():
    return grid_mixture(2000, seed=0)[0]


@pytest.fixture(scope="module")
def gan():
    return build_ali("toy", gan=True, seed=3, init_std=0.1).eval()  # a decoder that keeps z visible


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _first_last(history: list[dict], key: str) -> tuple[float, float]:
    return history[0][key], history[-1][key]


# --------------------------------------------------------------------------------------- baselines
def test_inverse_mapping_trains_on_the_loop_and_lowers_its_loss(gan):
    before = _state(gan.decoder)
    tr = InverseMappingTrainer(gan.decoder, BaselineConfig(steps=60, lr=1e-3, seed=1))
    history = tr.fit(progress=False, log_every=10)
    assert isinstance(tr.loop, TrainLoop) and tr.loop.step == 60 and len(history) == 6
    first, last = _first_last(history, "loss")
    # ‖z − G_z(G_x(z))‖² falls, well below E‖z‖² = 2 (the loss of an encoder that outputs 0)
    assert last < 0.8 * first and last < 1.5, (first, last)
    # the GAN's decoder is untouched, and the frozen copy is bit-identical to it (buffers included)
    assert _same(_state(gan.decoder), before) and _same(_state(tr.decoder), before)
    assert not any(p.requires_grad for p in tr.decoder.parameters()) and not tr.decoder.training


def test_inverse_mapping_resumes_bit_identical(gan, tmp_path):
    cfg = BaselineConfig(steps=8, lr=1e-3, seed=2)
    whole = InverseMappingTrainer(gan.decoder, cfg)
    whole.fit(progress=False)
    part = InverseMappingTrainer(gan.decoder, cfg)
    part.fit(tmp_path / "run", progress=False, stop_after=3)
    resumed = InverseMappingTrainer(gan.decoder, cfg)
    resumed.fit(tmp_path / "run", progress=False)
    assert resumed.loop.step == 8
    assert _same(_state(resumed.encoder), _state(whole.encoder))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert checkpoint_components(ckpt) == ["decoder", "encoder", "opt"]
    assert _same(load_component(ckpt, "encoder"), _state(whole.encoder))


def test_vae_trains_on_the_loop_and_raises_its_elbo(points):
    tr = VAETrainer(points, BaselineConfig(steps=60, lr=1e-3, seed=0))
    history = tr.fit(progress=False, log_every=10)
    assert isinstance(tr.loop, TrainLoop) and tr.loop.step == 60
    first, last = _first_last(history, "elbo")
    assert last > first + 10, (first, last)
    rec = history[-1]
    assert rec["elbo"] == pytest.approx(rec["log_px"] - rec["kl"], rel=1e-6)


def test_vae_elbo_terms():
    vae = ToyVAE(sigma_x=0.5)
    x = torch.randn(7, 2)
    eps = torch.randn(7, 2)
    terms = vae.elbo_terms(x, eps)
    mu, log_sigma = vae.posterior(x)
    z = mu + log_sigma.exp() * eps
    log_px = torch.distributions.Normal(vae.decode(z), 0.5).log_prob(x).sum(1)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, log_sigma.exp()), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    assert torch.allclose(terms["log_px"], log_px, atol=1e-4)
    assert torch.allclose(terms["kl"], kl, atol=1e-5)
    assert torch.allclose(gaussian_kl(mu, log_sigma), kl, atol=1e-5)
    assert torch.equal(vae.encode(x, eps=eps), z) and torch.equal(vae.encode(x, mean=True), mu)


def test_post_hoc_freezes_the_decoder_bit_identical(gan, points):
    before = _state(gan.decoder)
    tr = PostHocTrainer(gan.decoder, points, BaselineConfig(steps=30, lr=1e-3, seed=0))
    enc0, disc0 = _state(tr.ali.encoder), _state(tr.ali.discriminator)
    history = tr.fit(progress=False, log_every=10)
    assert isinstance(tr.loop, TrainLoop) and tr.loop.step == 30 and tr.total_steps == 30
    # the decoder's whole state (weights and batch-norm buffers) is the GAN's, bit for bit
    assert _same(_state(tr.ali.decoder), before) and _same(_state(gan.decoder), before)
    # the encoder and the new joint discriminator did train
    assert not _same(_state(tr.ali.encoder), enc0) and not _same(_state(tr.ali.discriminator), disc0)
    assert tr.ali.discriminator.sees_z and tr.config_dict()["steps"] == 30
    # the discriminator learns to tell the pairs apart: L_d falls below its start, 2 log 2
    assert history[-1]["loss_d"] < 2 * math.log(2) - 0.05, history


# ------------------------------------------------------------------------------ the random search
def test_hyperparameter_draws_are_shared_and_in_range():
    for name, p in ali_toy.PRESETS.items():
        cells = ali_toy.cells(p)
        assert len(cells) == 2 * p["runs"], name
        runs = {}
        for c in cells:
            runs.setdefault(c["run"], {})[c["model"]] = c
        for i, pair in runs.items():
            a, g = pair["ali"], pair["gan"]
            for key in ("lr", "beta1", "init_std", "seed", "steps", "batch_size", "n_train", "data_seed"):
                assert a[key] == g[key], (name, i, key)
            assert a["seed"] == i
            assert p["lr_range"][0] <= a["lr"] <= p["lr_range"][1]
            assert p["beta1_range"][0] <= a["beta1"] <= p["beta1_range"][1]
            assert p["init_std_range"][0] <= a["init_std"] <= p["init_std_range"][1]
            assert "data" not in a  # the runner would read it as an MNIST dataset
    quick = ali_toy.hyperparameters(ali_toy.PRESETS["quick"])
    assert ali_toy.hyperparameters(ali_toy.PRESETS["tiny"]) == quick[:2]  # run i's draw: (hp_seed, i) only
    assert ali_toy.hyperparameters(ali_toy.PRESETS["quick"]) == quick  # deterministic
    assert len({tuple(d.values()) for d in quick}) == len(quick)
    lr = np.log10([d["lr"] for d in quick])
    assert lr.max() - lr.min() > 0.5  # the draws do spread over the log range
    other = ali_toy.hyperparameters({**ali_toy.PRESETS["quick"], "hp_seed": 1})
    assert other != quick
    with pytest.raises(ValueError, match="lr_range"):
        ali_toy.hyperparameters({**ali_toy.PRESETS["quick"], "lr_range": [0, 1e-3]})


def test_cells_of_each_preset():
    exp = load_experiment("ali-toy")
    assert EXPERIMENTS["ali-toy"] == "physamp.experiments.ali_toy" and exp is ali_toy
    assert set(exp.PRESETS) == {"tiny", "quick", "full"}
    assert exp.RESULT_KEYS == ("modes", "high_quality", "modes_high_quality")
    steps = {name: {c["steps"] for c in exp.cells(p)} for name, p in exp.PRESETS.items()}
    assert steps["full"] == {200 * 100_000 // 100}  # the authors' 200 epochs at batch 100
    assert steps["quick"] == {1000} and steps["tiny"] == {20}
    assert len(exp.cells(exp.PRESETS["quick"])) == len(exp.cells(exp.PRESETS["full"])) == 20
    for p in exp.PRESETS.values():
        assert p["n_train"] == 100_000 and p["batch_size"] == 100
        cells = exp.cells(p)
        assert [c["model"] for c in cells[:2]] == ["ali", "gan"]
        assert len({str(sorted(c.items())) for c in cells}) == len(cells)


# ----------------------------------------------------------------------------- summary statistics
def _fake_rows():
    modes = {"ali": [8, 25, 10, 25], "gan": [1, 22, 3, 3]}
    return [
        {"cell": {"model": m, "run": i}, "result": {"modes": v, "high_quality": 0.5, "modes_high_quality": 1}}
        for m, vs in modes.items()
        for i, v in enumerate(vs)
    ]


def test_summary_statistics_on_fixed_rows():
    s = ali_toy.summary(_fake_rows())
    a = np.array([8, 25, 10, 25], float)
    assert s["ali"]["n"] == 4
    assert s["ali"]["mean"] == pytest.approx(17.0)
    assert s["ali"]["std"] == pytest.approx(math.sqrt(((a - 17) ** 2).sum() / 3))  # sample std, ddof = 1
    assert s["ali"]["std"] == pytest.approx(9.2736185, abs=1e-6)
    assert (s["ali"]["min"], s["ali"]["max"]) == (8, 25)
    assert s["gan"]["mean"] == pytest.approx(7.25) and (s["gan"]["min"], s["gan"]["max"]) == (1, 22)
    assert s["gan"]["std"] == pytest.approx(np.std([1, 22, 3, 3], ddof=1))
    assert math.isnan(ali_toy.summarise([4])["std"])
    # best-covering run: most modes, ties to the lower run index
    assert ali_toy.best_run(_fake_rows(), "ali")["cell"]["run"] == 1
    assert ali_toy.best_run(_fake_rows(), "gan")["cell"]["run"] == 1


# ------------------------------------------------------------------------------------ end to end
def test_tiny_preset_end_to_end(tmp_path, monkeypatch):
    out = tmp_path / "tiny"
    summary = run_experiment("ali-toy", "tiny", out_dir=out, workers=1, progress=False)
    assert summary["cells"] == 4
    md = (out / "ali-toy.md").read_text()
    assert (out / "ali-toy.png").stat().st_size > 0 and (out / "ali-toy-modes.png").stat().st_size > 0
    assert "13.4 ± 5.8 (min 8, max 25)" in md and "10.4 ± 9.2 (min 1, max 22)" in md
    assert "**Data:**" in md and "200 epochs" in md and "**20 steps**" in md
    assert "## Inference on the best-covering runs" in md
    for col in ali_toy.COLUMNS:
        assert f"| {col} |" in md
    assert "sample standard deviation" in md and "[3e-05, 0.001]" in md
    # the summary row holds the statistics of the cells' mode counts
    import csv

    with open(out / "cells.csv") as f:
        cells = list(csv.DictReader(f))
    for model, label in (("ali", "ALI"), ("gan", "GAN")):
        s = ali_toy.summarise(int(r["modes"]) for r in cells if r["model"] == model)
        assert f"| {label} | 2 | {s['mean']:.1f} | {s['std']:.1f} | {s['min']:g} | {s['max']:g} |" in md
    assert (out / "models").is_dir() and len(list((out / "models").glob("*.pt"))) == 3

    # rerunning the report retrains nothing: every model comes from a saved file
    def refuse(*args, **kwargs):
        raise AssertionError("the report retrained a model")

    from physamp.models.ali import baselines
    from physamp.models.ali.train import ALITrainer

    monkeypatch.setattr(ALITrainer, "fit", refuse)
    monkeypatch.setattr(baselines._Trainer, "fit", refuse)
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    rows = [{"cell": c, "result": r} for c, r in _cached(out)]
    ali_toy.report(rows, out, "tiny")
    assert (out / "ali-toy.md").read_text() == md


def _cached(out):
    import json

    records = [json.loads(p.read_text()) for p in sorted((out / "cache").glob("*.json"))]
    records.sort(key=lambda r: (r["cell"]["run"], r["cell"]["model"]))
    return [(r["cell"], r["result"]) for r in records]
