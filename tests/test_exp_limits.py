"""Experiments of thesis ch. 3: magnitude limit, noise x limit, chimera, sample grids (tiny overrides)."""

import csv
import math

import pytest

from physamp.experiments.runner import run_experiment

TINY_AIS = dict(ais_runs=4, ais_betas=50)


def _run(name, tmp_path, monkeypatch, overrides, preset="quick"):
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / name
    summary = run_experiment(name, preset, out, workers=1, progress=False, overrides=overrides)
    with open(summary["csv"]) as f:
        rows = list(csv.DictReader(f))
    md = (out / f"{name}.md").read_text()
    png = out / f"{name}.png"
    assert png.exists() and png.stat().st_size > 1024
    return summary, rows, md


def _check_nll_outputs(rows, md, n_cells):
    assert len(rows) == n_cells
    assert all(math.isfinite(float(r["nll"])) for r in rows)
    assert all(float(r["nll_lower"]) <= float(r["nll"]) + 1e-9 <= float(r["nll_upper"]) + 2e-9 for r in rows)
    header = next(line for line in md.splitlines() if line.startswith("| "))
    assert "test NLL" in header and "thesis" in header
    assert "mnist" in md  # the data protocol is stated


def test_magnitude_limit_clips_every_parameter(tmp_path, monkeypatch):
    overrides = dict(n_hidden=6, epochs=1, thresholds=[0.05, None], seeds=[0], max_train=500, **TINY_AIS)
    _, rows, md = _run("magnitude-limit", tmp_path, monkeypatch, overrides)
    _check_nll_outputs(rows, md, 2)
    by_t = {r["threshold"]: r for r in rows}
    clipped, free = by_t["0.05"], by_t[""]
    assert float(clipped["max_abs_w"]) <= 0.05 + 1e-7
    assert float(clipped["max_abs_bias"]) <= 0.05 + 1e-7
    assert float(free["max_abs_bias"]) > 0.05  # base-rate visible biases are far outside the limit
    assert "| none |" in md and "| 0.05 |" in md


@pytest.mark.slow
def test_magnitude_limit_quick_preset(tmp_path, monkeypatch):
    _, rows, md = _run("magnitude-limit", tmp_path, monkeypatch, None)
    _check_nll_outputs(rows, md, 6)


def test_noise_and_limit_grid(tmp_path, monkeypatch):
    overrides = dict(
        n_hidden=4, epochs=1, noise=[0.0, 0.5], limits=[0.05, None], seeds=[0], max_train=300, **TINY_AIS
    )
    _, rows, md = _run("noise-and-limit", tmp_path, monkeypatch, overrides)
    _check_nll_outputs(rows, md, 4)
    cell = {(r["noise"], r["limit"]): r for r in rows}
    assert set(cell) == {("0.0", "0.05"), ("0.0", ""), ("0.5", "0.05"), ("0.5", "")}
    for sigma in ("0.0", "0.5"):
        assert float(cell[(sigma, "0.05")]["max_abs_w"]) <= 0.05 + 1e-7  # the limit holds under noise too
    # training on the noisy device changes the learned model (same seed, same data)
    assert cell[("0.5", "")]["nll"] != cell[("0.0", "")]["nll"]
    assert "| 0.5 | none |" in md and "vs unconstrained" in md


@pytest.mark.slow
def test_noise_and_limit_quick_preset(tmp_path, monkeypatch):
    _, rows, md = _run("noise-and-limit", tmp_path, monkeypatch, None)
    _check_nll_outputs(rows, md, 9)


def test_chimera_topologies(tmp_path, monkeypatch):
    overrides = dict(epochs=1, topologies=["pixel_blocks", "extended", "dense"], max_train=200, **TINY_AIS)
    _, rows, md = _run("chimera", tmp_path, monkeypatch, overrides)
    _check_nll_outputs(rows, md, 3)
    by = {r["topology"]: r for r in rows}
    for name in ("pixel_blocks", "extended"):
        assert int(by[name]["connections"]) == 4592
        assert int(by[name]["nonzero_weights"]) <= 4592  # masked weights stayed exactly zero
        assert by[name]["train.topology"].startswith("chimera")
    assert int(by["dense"]["connections"]) == 784 * 784
    assert "138.2" in md and "160.9" in md and "not given" in md


@pytest.mark.slow
def test_chimera_quick_preset(tmp_path, monkeypatch):
    _, rows, md = _run("chimera", tmp_path, monkeypatch, None)
    _check_nll_outputs(rows, md, 3)


def test_sample_grids(tmp_path, monkeypatch):
    import numpy as np

    overrides = dict(
        n_hidden=6,
        epochs=1,
        steps=20,
        sampling_noise=[0.3],
        train_noise=[0.3],
        limits=[0.05],
        removed=["chimera"],
        max_train=200,
    )
    summary, rows, md = _run("sample-grids", tmp_path, monkeypatch, overrides)
    figures = [r["figure"] for r in rows]
    assert figures == ["3.3", "3.3", "3.3", "3.5", "3.6", "3.8"]
    out = tmp_path / "sample-grids"
    for r in rows:
        arr = np.load(r["npy"])
        assert arr.shape == (100, 784)  # a 10 x 10 grid of 28 x 28 images
        assert 0.0 <= arr.min() and arr.max() <= 1.0 and np.isfinite(arr).all()
        assert float(r["sample_seconds"]) >= 0 and r["sampling.steps"] == "20"
        assert (tmp_path / "models" / "sample-grids").exists() and r["png"].endswith(".png")
    grids = sorted((out / "grids").glob("*.png"))
    assert len(grids) == 6 and all(g.stat().st_size > 1024 for g in grids)
    assert "| thesis | setting |" in md and "Fig. 3.8" in md
    chimera = next(r for r in rows if r["figure"] == "3.8")
    assert int(chimera["connections"]) == 4592
    # the noise-free and the noisy-at-sampling grids of one model differ
    a, b = (np.load(r["npy"]) for r in rows[:2])
    assert not np.allclose(a, b)
    # the report regenerates grids whose cached files were removed
    for p in (tmp_path / "models" / "sample-grids").iterdir():
        p.unlink()
    run_experiment("sample-grids", "quick", out, workers=1, progress=False, overrides=overrides)
    assert len(list((out / "grids").glob("*.png"))) == 6


@pytest.mark.slow
def test_sample_grids_quick_preset(tmp_path, monkeypatch):
    _, rows, md = _run("sample-grids", tmp_path, monkeypatch, None)
    assert len(rows) == 11
