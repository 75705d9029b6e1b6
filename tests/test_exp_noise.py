"""The noise experiments of thesis ch. 3: noise-at-sampling, trained-with-noise, noise-during-training."""

from __future__ import annotations

import csv
import math

import pytest

from physamp.experiments.runner import load_experiment, run_experiment

TINY_AIS = dict(seeds=[0], ais_runs=4, ais_betas=50, n_hidden=8, epochs=1)


def _run(name, tmp_path, monkeypatch, overrides, preset="quick"):
    cache = tmp_path / "models"
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(cache))
    out = tmp_path / name
    summary = run_experiment(name, preset, out, workers=1, progress=False, overrides=overrides)
    with open(summary["csv"]) as f:
        rows = list(csv.DictReader(f))
    return summary, rows, out, cache


def _check_outputs(name, summary, rows, out, thesis_col):
    exp = load_experiment(name)
    assert summary["cells"] == len(rows)
    assert all(math.isfinite(float(r["nll"])) for r in rows)
    for r in rows:
        assert float(r["nll_lower"]) <= float(r["nll"]) <= float(r["nll_upper"])
        assert 50 < float(r["nll"]) < 784 * math.log(2)  # better than uniform on binary MNIST
    md = (out / f"{name}.md").read_text()
    assert md.startswith(f"# {exp.TITLE}")
    assert "| σ" in md and thesis_col in md and "mnist" in md
    assert "higher NLLs than full MNIST" in md
    png = out / f"{name}.png"
    assert png.exists() and png.stat().st_size > 1000


def _ais_err(r) -> float:
    return float(r["nll_upper"]) - float(r["nll_lower"])


def test_noise_at_sampling(tmp_path, monkeypatch):
    ov = dict(TINY_AIS, sigmas=[0.0, 0.3], draws=2)
    summary, rows, out, cache = _run("noise-at-sampling", tmp_path, monkeypatch, ov)
    assert len(rows) == 2 * 2  # (weights, biases) x 2 σ x 1 seed
    _check_outputs("noise-at-sampling", summary, rows, out, "thesis (Fig. 3.2a)")
    # every (kind, σ) cell of a seed evaluates the one noiseless model: one file per seed
    assert len(list(cache.glob("rbm-*.pt"))) == 1
    by = {(r["noise_kind"], float(r["sigma"])): r for r in rows}
    # σ = 0 is the same model and the same AIS run for both kinds
    assert float(by[("weights", 0.0)]["nll"]) == pytest.approx(float(by[("biases", 0.0)]["nll"]))
    assert int(by[("weights", 0.0)]["draws"]) == 1 and int(by[("weights", 0.3)]["draws"]) == 2
    # noise on a trained model costs likelihood, and weight noise costs more than bias noise
    for kind in ("weights", "biases"):
        r0, r1 = by[(kind, 0.0)], by[(kind, 0.3)]
        assert float(r1["nll"]) >= float(r0["nll"]) - _ais_err(r0) - _ais_err(r1)
    assert float(by[("weights", 0.3)]["nll"]) > float(by[("biases", 0.3)]["nll"])


def test_trained_with_noise(tmp_path, monkeypatch):
    ov = dict(TINY_AIS, train_sigmas=[0.0, 0.1], sample_sigmas=[0.0, 0.3], draws=2)
    summary, rows, out, cache = _run("trained-with-noise", tmp_path, monkeypatch, ov)
    assert len(rows) == 2 * 2
    _check_outputs("trained-with-noise", summary, rows, out, "reduction of the increase")
    assert len(list(cache.glob("rbm-*.pt"))) == 2  # one model per σ_train, shared across σ_sample
    md = (out / "trained-with-noise.md").read_text()
    assert "21.9" in md and "Average reduction of the NLL increase" in md
    by = {(float(r["sigma_train"]), float(r["sigma_sample"])): r for r in rows}
    # the two models differ: training with noise changed the parameters
    assert float(by[(0.0, 0.0)]["nll"]) != float(by[(0.1, 0.0)]["nll"])
    for st in (0.0, 0.1):
        r0, r1 = by[(st, 0.0)], by[(st, 0.3)]
        assert float(r1["nll"]) >= float(r0["nll"]) - _ais_err(r0) - _ais_err(r1)

    exp = load_experiment("trained-with-noise")
    fake = [
        {"cell": {"seed": s, "sigma_train": st, "sigma_sample": ss}, "result": {"nll": v}}
        for s, st, ss, v in [
            (0, 0.0, 0.0, 100.0),
            (0, 0.0, 0.1, 110.0),
            (0, 0.1, 0.0, 101.0),
            (0, 0.1, 0.1, 109.0),
        ]
    ]
    inc = exp.increases(fake)
    assert inc[(0.0, 0.1)] == [10.0] and inc[(0.1, 0.1)] == [8.0] and inc[(0.1, 0.0)] == [0.0]
    assert exp.reductions(inc) == {(0.1, 0.1): pytest.approx(20.0)}


def test_noise_during_training(tmp_path, monkeypatch):
    ov = dict(TINY_AIS, sigmas=[0.0, 0.2])
    summary, rows, out, cache = _run("noise-during-training", tmp_path, monkeypatch, ov)
    assert len(rows) == 2
    _check_outputs("noise-during-training", summary, rows, out, "thesis (Fig. 3.4a)")
    assert len(list(cache.glob("rbm-*.pt"))) == 2  # one model per σ_train
    by = {float(r["sigma_train"]): r for r in rows}
    assert float(by[0.0]["nll"]) != float(by[0.2]["nll"])
    cells = load_experiment("noise-during-training").cells(
        dict(load_experiment("noise-during-training").PRESETS["quick"])
    )
    noisy = [c for c in cells if c["sigma_train"] > 0]
    assert noisy and all(
        c["train"]["weight_noise"] == c["train"]["bias_noise"] == c["sigma_train"] for c in noisy
    )


def test_sigma_zero_model_shared_across_experiments():
    """σ_train = 0 in trained-with-noise and noise-during-training is the noise-at-sampling model."""
    a = load_experiment("noise-at-sampling")
    b = load_experiment("trained-with-noise")
    c = load_experiment("noise-during-training")
    ta = a.cells(a.PRESETS["full"])[0]["train"]
    tb = next(x["train"] for x in b.cells(b.PRESETS["full"]) if x["sigma_train"] == 0 and x["seed"] == 0)
    tc = next(x["train"] for x in c.cells(c.PRESETS["full"]) if x["sigma_train"] == 0 and x["seed"] == 0)
    assert ta == tb == tc


@pytest.mark.slow
@pytest.mark.parametrize("name", ["noise-at-sampling", "trained-with-noise", "noise-during-training"])
def test_quick_preset(name, tmp_path, monkeypatch):
    summary, rows, out, _ = _run(name, tmp_path, monkeypatch, None)
    exp = load_experiment(name)
    assert len(rows) == len(exp.cells(exp.PRESETS["quick"]))
    assert all(math.isfinite(float(r["nll"])) for r in rows)
    assert (out / f"{name}.png").stat().st_size > 1000
    assert "| σ" in (out / f"{name}.md").read_text()
