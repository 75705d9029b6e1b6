"""``quantum-negative-phase`` (issue 13, part 5): exact gradients, KLs, and tiny end-to-end runs."""

import csv
import math

import numpy as np
import pytest
import torch

from physamp.energy import free_energy
from physamp.experiments import noise_at_sampling
from physamp.experiments import quantum_negative_phase as q
from physamp.experiments.runner import run_experiment
from physamp.samplers.quantum_exact import transverse_field_log_probs

from conftest import all_states

FD_STEP = 1e-5
# central differences in float64 at step 1e-5 are good to about 1e-9 here; 1e-6 leaves room
FD_TOL = 1e-6


def _rbm(nv=4, nh=3, seed=0, scale=0.8):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(nh, nv, generator=g, dtype=torch.float64) * scale
    b = torch.randn(nv, generator=g, dtype=torch.float64) * scale * 0.5
    c = torch.randn(nh, generator=g, dtype=torch.float64) * scale * 0.5
    return W, b, c


def _fd(f, params: dict, name: str) -> torch.Tensor:
    """Central finite differences of ``f(params)`` in every entry of ``params[name]``."""
    out = torch.zeros_like(params[name])
    for i in range(out.numel()):
        plus = {k: v.clone() for k, v in params.items()}
        minus = {k: v.clone() for k, v in params.items()}
        plus[name].view(-1)[i] += FD_STEP
        minus[name].view(-1)[i] -= FD_STEP
        out.view(-1)[i] = (f(plus) - f(minus)) / (2 * FD_STEP)
    return out


def _log_likelihood(p: dict, data: torch.Tensor) -> float:
    """Mean exact log p_0(v) of ``data``, by enumeration of every visible state in numpy (independent
    of the module: its own free energy and normaliser)."""
    W, b, c = (p[k].numpy() for k in ("W", "b", "c"))
    V = all_states(W.shape[1])
    neg_f = lambda v: v @ b + np.logaddexp(0.0, v @ W.T + c).sum(-1)  # noqa: E731
    log_z = np.logaddexp.reduce(neg_f(V))
    return float(np.mean(neg_f(data.numpy())) - log_z)


def test_bars_and_stripes_patterns():
    for rows, cols, k in ((2, 2, 6), (2, 3, 10), (3, 3, 14), (1, 3, 8)):
        x = q.bars_and_stripes(rows, cols)
        assert x.shape == (k, rows * cols) and torch.unique(x, dim=0).shape[0] == k
        img = x.reshape(k, rows, cols)
        bars = (img == img[:, :, :1]).all(2).all(1)  # every row constant
        stripes = (img == img[:, :1, :]).all(1).all(1)  # every column constant
        assert (bars | stripes).all()
    assert q.parse_model("bas-2x3-h4") == {"rows": 2, "cols": 3, "n_hidden": 4}


def test_exact_negative_phase_at_gamma_0_is_the_log_likelihood_gradient():
    """At Γ = 0 the training direction is the exact gradient of the mean log-likelihood (finite
    differences of an independent enumeration); a 30 % wrong β fails the same bound."""
    W, b, c = _rbm()
    data = q.bars_and_stripes(2, 2)
    params = {"W": W, "b": b, "c": c}
    grad = q.exact_gradient(W, b, c, data, gamma=0.0)
    wrong = q.exact_gradient(W, b, c, data, gamma=0.0, beta=1.3)
    for name in ("W", "b", "c"):
        fd = _fd(lambda p: _log_likelihood(p, data), params, name)
        assert torch.allclose(grad[name], fd, atol=FD_TOL, rtol=0), name
        assert (wrong[name] - fd).abs().max() > 100 * FD_TOL, name
    # a transverse field in the negative phase is not the classical gradient
    quantum = q.exact_gradient(W, b, c, data, gamma=0.5)
    assert (quantum["W"] - _fd(lambda p: _log_likelihood(p, data), params, "W")).abs().max() > 100 * FD_TOL


@pytest.mark.parametrize("positive", ["classical", "clamped"])
def test_exact_gradient_at_gamma_is_the_gradient_of_the_objective(positive):
    """The exact negative phase at Γ > 0 is ∂ log Z_Γ / ∂θ (trace cyclicity), the clamped positive phase
    is ∂ mean log Tr_h e^{−βH_v} / ∂θ: together the gradient of ``objective``; 30 % wrong Γ fails."""
    W, b, c = _rbm(seed=1)
    data = q.bars_and_stripes(2, 2)
    params = {"W": W, "b": b, "c": c}
    gamma = 0.7
    grad = q.exact_gradient(W, b, c, data, gamma, positive=positive)
    wrong = q.exact_gradient(W, b, c, data, 1.3 * gamma, positive=positive)
    for name in ("W", "b", "c"):
        fd = _fd(lambda p: q.objective(p["W"], p["b"], p["c"], data, gamma, positive=positive), params, name)
        assert torch.allclose(grad[name], fd, atol=FD_TOL, rtol=0), name
        if name != "b":  # E[v] moves little with Γ on this model
            assert (wrong[name] - fd).abs().max() > 100 * FD_TOL, name


def test_clamped_log_trace_against_diagonalisation():
    """``log Tr_h e^{−βH_v}`` in closed form equals the dense diagonalisation of the hidden units with v
    clamped, and is the classical ``−βF_0(v)`` at Γ = 0; ``hidden_means`` is σ at Γ = 0."""
    W, b, c = _rbm(nv=3, nh=3, seed=2)
    v = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    beta, gamma = 0.8, 0.9
    got = q.clamped_log_trace(W, b, c, v, beta, gamma)
    h = torch.tensor(all_states(3)[:, ::-1].copy())  # bit i of the index = hidden unit i
    for row, value in zip(v, got, strict=True):
        energy = -(row @ b) - h @ c - (h @ W) @ row  # the hidden units' classical energies, v fixed
        _, log_trace = transverse_field_log_probs(energy, gamma, beta)
        assert value.item() == pytest.approx(log_trace, abs=1e-10)
    classical = q.clamped_log_trace(W, b, c, v, beta, 0.0)
    assert torch.allclose(classical, -free_energy(v, W, b, c, beta), atol=1e-12)
    assert torch.allclose(q.hidden_means(W, c, v, beta, 0.0), torch.sigmoid(beta * (c + v @ W.T)))


def test_kl_against_a_hand_computed_case():
    # data: (1, 0) twice, (1, 1) once; q over (v0, v1) indexed v0 + 2 v1: q(0,0), q(1,0), q(0,1), q(1,1)
    data = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    qv = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
    expected = 2 / 3 * math.log((2 / 3) / 0.4) + 1 / 3 * math.log((1 / 3) / 0.3)
    assert q.kl_data(data, qv.log()) == pytest.approx(expected, abs=1e-12)
    # swapping the visible bit order would read q(0,1) = 0.2 for (1, 0): a different number
    assert abs(q.kl_data(data.flip(1), qv.log()) - expected) > 0.1
    assert q.kl_data(data, qv.log()) >= 0 and q.kl_data(data[:1], torch.tensor([0.0, 1.0, 0, 0]).log()) == 0.0
    assert q.kl_data(data, torch.tensor([0.5, 0.5, 0.0, 0.0]).log()) == math.inf


def test_visible_marginal_of_the_exact_table_is_the_classical_model():
    """At Γ = 0 the visible marginal of the joint table is p_0(v) ∝ e^{−F_0(v)}; KL of the uniform
    distribution is log(2^n / K)."""
    W, b, c = _rbm(nv=4, nh=3, seed=3)
    log_p, _ = q.exact_log_probs(W, b, c, 0.0)
    got = q.visible_log_marginal(log_p, 4, 3)
    v = torch.tensor(all_states(4)[:, ::-1].copy())  # row k is the state of index k
    neg_f = -free_energy(v, W, b, c)
    assert torch.allclose(got, neg_f - torch.logsumexp(neg_f, 0), atol=1e-12)
    data = q.bars_and_stripes(2, 2)
    uniform = torch.full((16,), -math.log(16.0), dtype=torch.float64)
    assert q.kl_data(data, uniform) == pytest.approx(math.log(16 / 6), abs=1e-12)


def test_training_is_deterministic_and_learns_at_gamma_0():
    data = q.bars_and_stripes(2, 2)
    opts = dict(steps=150, lr=0.5, momentum=0.9, init_std=0.1, seed=5)
    a, b = q.train_exact(data, 3, 0.0, **opts), q.train_exact(data, 3, 0.0, **opts)
    assert all(torch.equal(a[k], b[k]) for k in ("W", "b", "c"))
    log_p, _ = q.exact_log_probs(a["W"], a["b"], a["c"], 0.0)
    assert q.kl_data(data, q.visible_log_marginal(log_p, 4, 3)) < 0.6 * math.log(
        16 / 6
    )  # uniform: log(16 / 6)


def test_bad_input_is_one_clear_line():
    with pytest.raises(ValueError, match="bas-RxC-hH"):
        q.parse_model("bars-2x2")
    with pytest.raises(ValueError, match="at most 12"):
        q.parse_model("bas-3x3-h4")
    p = dict(q.PRESETS["tiny"])
    with pytest.raises(ValueError, match="positive phases"):
        q.cells({**p, "positive_phases": ["quantum"]})
    with pytest.raises(ValueError, match="gammas entry"):
        q.cells({**p, "gammas": [-1.0]})
    with pytest.raises(ValueError, match="trotter must be an integer >= 2"):
        q.cells({**p, "mnist_gammas": [1.0], "trotter": 1})
    with pytest.raises(ValueError, match="positive phase must be"):
        q.positive_phase(*_rbm(), q.bars_and_stripes(2, 2), positive="both")


def test_cells_and_mnist_configs():
    cells = q.cells(dict(q.PRESETS["full"]))
    exact = [c for c in cells if c["part"] == "exact"]
    # per seed and model: Γ = 0 once, each Γ > 0 with both positive phases
    assert len(exact) == 5 * 2 * (1 + 2 * 3)
    mnist = [c for c in cells if c["part"] == "mnist"]
    assert len(mnist) == 5 * 4
    quantum = next(c for c in mnist if c["sampler"] == "quantum")
    assert quantum["train"]["sampler"] == "quantum" and quantum["train"]["k"] == 15
    assert quantum["train"]["sampler_options"] == {"gamma": quantum["gamma"], "trotter": 8}
    gibbs = next(c for c in mnist if c["sampler"] == "gibbs" and c["seed"] == 0)
    assert (
        gibbs["train"] == noise_at_sampling.cells(noise_at_sampling.PRESETS["full"])[0]["train"]
    )  # shared model


def _run(tmp_path, monkeypatch, overrides=None):
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "out"
    summary = run_experiment(q.NAME, "tiny", out, workers=1, progress=False, overrides=overrides)
    with open(summary["csv"]) as f:
        rows = list(csv.DictReader(f))
    md = (out / f"{q.NAME}.md").read_text()
    png = out / f"{q.NAME}.png"
    assert png.exists() and png.stat().st_size > 1024
    return rows, md


def test_tiny_preset_end_to_end(tmp_path, monkeypatch):
    rows, md = _run(tmp_path, monkeypatch)
    assert len(rows) == len(q.cells(dict(q.PRESETS["tiny"]))) == 3
    for r in rows:
        assert 0 <= float(r["kl_model"]) < math.inf and 0 <= float(r["kl_device"]) < math.inf
        assert r["kl_eval.0"] == r["kl_model"] and float(r["frozen_hidden"]) in (0.0, 0.5, 1.0)
    classical = next(r for r in rows if r["gamma"] == "0.0")
    assert classical["kl_device"] == classical["kl_model"]  # Γ = 0: the device is the model
    assert "KL(data ‖ p_0): the model" in md and "Γ_train \\ Γ_eval" in md and "bars and stripes" in md
    assert "## Part 2" not in md  # tiny has no MNIST cells


@pytest.mark.slow
def test_quick_preset_exact_part(tmp_path):
    """The quick preset's exact findings (deterministic): the classical model learns; with the classical
    positive phase the hidden units freeze at Γ >= 1 and the device fits worse than the classically
    trained model run on the device; with the clamped positive phase no unit freezes and it fits better."""
    p = {**q.PRESETS["quick"], "mnist_gammas": [], "mnist_gibbs": False}
    rows = [{"cell": c, "result": q.run_cell(c)} for c in q.cells(p)]
    q.report(rows, tmp_path, "quick")
    by = {(r["cell"]["positive"], r["cell"]["gamma"]): r["result"] for r in rows}
    assert by[("classical", 0.0)]["kl_model"] < 0.05
    for g in (0.5, 1.0, 2.0):
        no_compensation = by[("classical", 0.0)]["kl_eval"][f"{g:g}"]
        assert by[("classical", g)]["kl_device"] > no_compensation
        assert by[("clamped", g)]["kl_device"] < no_compensation
        assert by[("clamped", g)]["frozen_hidden"] == 0.0
        if g >= 1:
            assert by[("classical", g)]["frozen_hidden"] >= 0.5
    assert "does not compensate" in (tmp_path / f"{q.NAME}.md").read_text()


def test_mnist_cells_on_a_tiny_configuration(tmp_path, monkeypatch):
    """The MNIST part end to end on 200 digits and a 784 x 4 RBM: gibbs and quantum at Γ = 1."""
    rows, md = _run(tmp_path, monkeypatch, overrides={"mnist_gammas": [1.0], "mnist_gibbs": True})
    mnist = [r for r in rows if r["part"] == "mnist"]
    assert sorted(r["sampler"] for r in mnist) == ["gibbs", "quantum"]
    for r in mnist:
        assert math.isfinite(float(r["nll"])) and float(r["nll_lower"]) <= float(r["nll"]) + 1e-9
        assert 0 <= float(r["frozen_hidden"]) <= 1 and int(r["updates"]) == 2
    assert next(r for r in mnist if r["sampler"] == "quantum")["train.sampler"] == "quantum"
    assert "Part 2: MNIST" in md and "classical test NLL (AIS)" in md and "mnist" in md
