"""The path-integral sampler `quantum`, checked against the exact Trotterised and transverse-field
distributions of small random RBMs (dense matrices, quantum_exact), by TV with seeded bounds.

Every bound is the 99th percentile of a perfect sampler's TV at the same number of draws (200
seeded multinomial draws of the exact distribution); each distributional test also shows that the
same bound rejects the distribution of a 30 % larger Γ. The two random models (W ~ N(0, 1),
b, c ~ N(0, 0.5²)) use seeds whose 30 % wrong Γ lies at least 2x the bound away at every (Γ, M)
tested, so the checks have power.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import pytest
import torch

import physamp
from physamp.energy import RBMParams
from physamp.samplers import make_sampler
from physamp.samplers.base import Chains
from physamp.samplers.quantum import QuantumSampler
from physamp.samplers.quantum_exact import (
    format_trotter_table,
    rbm_transverse_field_log_probs,
    transverse_field_log_probs,
    trotter_error_table,
    trotter_log_probs,
)

MODELS = {"3x2": (3, 2, 4), "2x3": (2, 3, 11)}  # (n_visible, n_hidden, seed)


@functools.cache
def random_rbm(name: str, mask: bool = False) -> physamp.RBM:
    nv, nh, seed = MODELS[name]
    g = torch.Generator().manual_seed(seed)
    rbm = physamp.RBM(nv, nh)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(nh, nv, generator=g))
        rbm.b.copy_(0.5 * torch.randn(nv, generator=g))
        rbm.c.copy_(0.5 * torch.randn(nh, generator=g))
    if mask:  # two connections removed (set_mask zeroes their weights)
        m = torch.ones(nh, nv, dtype=torch.bool)
        m[0, 0] = m[1, 1] = False
        rbm.set_mask(m)
    return rbm


def empirical(v: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    """The distribution of the draws over the 2^(nv+nh) states (visible units first in the bits)."""
    x = torch.cat([v, h], 1).to(torch.int64)
    idx = (x * (2 ** torch.arange(x.shape[1]))).sum(1)
    return (torch.bincount(idx, minlength=1 << x.shape[1]).double() / x.shape[0]).numpy()


def tv(p, q) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def tv_bound(p, n: int, seed: int = 0, q: float = 0.99) -> float:
    """The q-quantile of a perfect sampler's TV at n draws (200 seeded multinomial draws of p)."""
    p = np.asarray(p, dtype=np.float64)
    counts = np.random.default_rng(seed).multinomial(n, p / p.sum(), size=200)
    return float(np.quantile(0.5 * np.abs(counts / n - p).sum(1), q))


def p_trotter(rbm, gamma, M, beta=1.0) -> np.ndarray:
    return trotter_log_probs(rbm, gamma, beta, M)[0].exp().numpy()


def p_gamma(rbm, gamma, beta=1.0) -> np.ndarray:
    return rbm_transverse_field_log_probs(rbm, gamma, beta)[0].exp().numpy()


def draw(rbm, n, **options):
    options = {"steps": 10, "seed": 0, "diagnostics": False, "progress": False, **options}
    s = make_sampler("quantum", **options).sample(rbm, n)
    return empirical(s.v, s.h), s


# --- the exact references ------------------------------------------------------------------------
def test_trotter_probs_match_a_direct_matrix_power():
    """⟨s|(D T)^M|s⟩ by numpy's matrix_power of D = e^{−εE} and T = ⊗ [[cosh εΓ, sinh εΓ], [sinh, cosh]]."""
    rbm = random_rbm("3x2")
    E = -torch.log(torch.as_tensor(p_gamma(rbm, 0.0))).numpy()  # E up to a constant, from the classical p
    gamma, beta, M = 1.3, 0.8, 5
    eps = beta / M
    ch, sh = math.cosh(eps * gamma), math.sinh(eps * gamma)
    T2 = np.array([[ch, sh], [sh, ch]])
    T = functools.reduce(np.kron, [T2] * 5)
    P = np.linalg.matrix_power(np.diag(np.exp(-eps * E)) @ T, M)
    log_p, log_z = trotter_log_probs(torch.as_tensor(E), gamma, beta, M)
    assert np.abs(log_p.exp().numpy() - np.diag(P) / np.trace(P)).max() < 1e-13
    assert log_z == pytest.approx(math.log(np.trace(P)), rel=1e-12)
    # the RBM form gives the same distribution (its energies differ from E by a constant)
    assert np.abs(p_trotter(rbm, gamma, M, beta) - np.diag(P) / np.trace(P)).max() < 1e-13


def test_trotter_probs_tend_to_p_gamma_as_one_over_m_squared():
    rbm = random_rbm("2x3")
    pg = p_gamma(rbm, 1.0)
    errs = [tv(p_trotter(rbm, 1.0, M), pg) for M in (8, 16, 32, 64)]
    ratios = [a / b for a, b in zip(errs, errs[1:], strict=False)]
    assert all(3.7 < r < 4.3 for r in ratios), ratios
    assert errs[-1] < 1e-4
    # log Z_M -> log Tr e^{−βH}; Γ = 0 is classical for every M
    log_z = rbm_transverse_field_log_probs(rbm, 1.0)[1]
    assert trotter_log_probs(rbm, 1.0, 1.0, 256)[1] == pytest.approx(log_z, abs=1e-4)
    for M in (1, 2, 7):
        assert np.abs(p_trotter(rbm, 0.0, M) - p_gamma(rbm, 0.0)).max() < 1e-14
    # large fields and M do not overflow
    big = torch.linspace(-400.0, 300.0, 16, dtype=torch.float64)
    p = trotter_log_probs(big, 50.0, 3.0, 4096)[0].exp()
    assert torch.isfinite(p).all() and float(p.sum()) == pytest.approx(1.0)


def test_trotter_error_table_rows():
    rows = trotter_error_table(random_rbm("3x2"), gammas=(0.5, 1.0), trotters=(2, 4, 8))
    assert [(r["gamma"], r["trotter"]) for r in rows] == [(g, M) for g in (0.5, 1.0) for M in (2, 4, 8)]
    assert rows[0]["ratio"] is None and rows[2]["ratio"] > 3
    sampled = trotter_error_table(random_rbm("3x2"), gammas=(1.0,), trotters=(2,), num_samples=2000, steps=5)
    assert {"tv_sampled", "tv_sampled_trotter", "noise"} <= set(sampled[0])
    assert "TV(samples, p_Γ)" in format_trotter_table(sampled)


def test_trotter_probs_refuse_bad_input():
    rbm = random_rbm("3x2")
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="trotter must be an integer >= 1"):
            trotter_log_probs(rbm, 1.0, 1.0, bad)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        trotter_log_probs(rbm, -1.0, 1.0, 4)
    with pytest.raises(ValueError, match="past the limit of 4 spins"):
        trotter_log_probs(rbm, 1.0, 1.0, 4, max_spins=4)


# --- the sampler against the exact Trotter-M distribution ------------------------------------------
@pytest.mark.parametrize(
    "model, gamma, M", [("3x2", 1.0, 2), ("3x2", 0.5, 8), ("2x3", 2.0, 4), ("2x3", 1.0, 16)]
)
def test_samples_follow_the_trotter_distribution(model, gamma, M):
    rbm, n = random_rbm(model), 50_000
    q, s = draw(rbm, n, gamma=gamma, trotter=M, seed=M)
    p = p_trotter(rbm, gamma, M)
    bound = tv_bound(p, n)
    assert tv(q, p) < bound, (tv(q, p), bound)
    assert tv(q, p_trotter(rbm, 1.3 * gamma, M)) > bound  # a 30 % wrong Γ fails the same bound
    info = s.info
    assert info["gamma"] == gamma and info["trotter"] == M == info["slices"] and info["steps"] == 10
    assert info["epsilon"] == pytest.approx(1.0 / M)
    assert info["j_perp"] == pytest.approx(-0.5 * math.log(math.tanh(gamma / M)))
    assert 0 < info["kink_density"] < 0.5 and info["kinks_visible"] > 0 and not info["classical"]


@pytest.mark.parametrize("beta, M", [(0.5, 5), (2.0, 3)])
def test_beta_scales_the_slices_and_the_transverse_term(beta, M):
    """β ≠ 1: ε = β/M multiplies both the slice energies and the transverse term (J⊥ = −½ ln tanh(εΓ));
    confusing β/M with 1/M, or leaving β off the transverse term, fails the bound."""
    rbm, n, gamma = random_rbm("3x2"), 50_000, 1.0
    q, s = draw(rbm, n, gamma=gamma, trotter=M, beta=beta, seed=7)
    p = p_trotter(rbm, gamma, M, beta)
    bound = tv_bound(p, n)
    assert tv(q, p) < bound, (tv(q, p), bound)
    assert s.info["epsilon"] == pytest.approx(beta / M)
    assert tv(q, p_trotter(rbm, gamma, M, 1.3 * beta)) > bound
    assert tv(q, p_trotter(rbm, gamma * beta, M, 1.0)) > bound  # β on the transverse term only


def test_samples_at_large_m_follow_p_gamma_within_the_trotter_error():
    rbm, n, gamma, M = random_rbm("2x3"), 40_000, 1.0, 32
    q, _ = draw(rbm, n, gamma=gamma, trotter=M, seed=5)
    pg = p_gamma(rbm, gamma)
    err = tv(p_trotter(rbm, gamma, M), pg)  # the exact Trotter error, ~2e-4
    bound = tv_bound(pg, n) + err
    assert tv(q, pg) < bound, (tv(q, pg), bound)
    assert tv(q, p_gamma(rbm, 1.3 * gamma)) > bound
    assert tv(q, p_gamma(rbm, 0.0)) > bound  # and it is not the classical distribution


def test_mixing_does_not_collapse_with_m():
    """From all-zeros worldlines, 4 sweeps at M = 64 already sample within the bound: whole
    worldlines move at once (single-spin updates reached only TV 0.054 at M = 32 after 300 sweeps)."""
    rbm, n, gamma, M = random_rbm("3x2"), 25_000, 1.0, 64
    q, s = draw(rbm, n, gamma=gamma, trotter=M, steps=4, init="zeros", seed=3)
    p = p_trotter(rbm, gamma, M)
    assert tv(q, p) < tv_bound(p, n), tv(q, p)
    assert s.info["j_perp"] > 2.0  # strongly tied slices: a single-slice flip costs e^{-4J⊥} < e^{-8}


def test_gamma_zero_is_classical_block_gibbs():
    rbm, n = random_rbm("3x2"), 40_000
    q, s = draw(rbm, n, gamma=0.0, trotter=8)
    p = transverse_field_log_probs(-torch.log(torch.as_tensor(p_gamma(rbm, 0.0))), 0.0)[0].exp().numpy()
    assert tv(q, p) < tv_bound(p, n)
    assert tv(q, p_gamma(rbm, 0.5)) > tv_bound(p, n)
    info = s.info
    assert info["classical"] and info["slices"] == 1 and info["j_perp"] == math.inf
    assert info["kink_density"] == 0.0 and "classical block Gibbs" in info["note"]


def test_per_chain_biases():
    """Two groups of chains with their own visible biases: each follows its own exact distribution."""
    rbm = random_rbm("2x3")
    n, gamma, M = 30_000, 1.0, 4
    b2 = torch.tensor([1.2, -1.0])
    b = torch.cat([rbm.b.detach().expand(n, 2), b2.expand(n, 2)])
    params = RBMParams(rbm.W.detach(), b, rbm.c.detach())
    sampler = make_sampler("quantum", gamma=gamma, trotter=M, steps=10, seed=2, diagnostics=False)
    s = sampler.sample(params, 2 * n)
    other = physamp.RBM(2, 3)
    with torch.no_grad():
        other.W.copy_(rbm.W), other.b.copy_(b2), other.c.copy_(rbm.c)
    p1, p2 = p_trotter(rbm, gamma, M), p_trotter(other, gamma, M)
    q1, q2 = empirical(s.v[:n], s.h[:n]), empirical(s.v[n:], s.h[n:])
    assert tv(q1, p1) < tv_bound(p1, n) and tv(q2, p2) < tv_bound(p2, n)
    assert tv(q1, p2) > tv_bound(p2, n) and tv(q2, p1) > tv_bound(p1, n)


@pytest.mark.parametrize("sparse", [True, False])
def test_masked_rbm(sparse):
    rbm, n, gamma, M = random_rbm("3x2", mask=True), 40_000, 1.0, 4
    q, s = draw(rbm, n, gamma=gamma, trotter=M, sparse=sparse, seed=7)
    assert s.info["sparse"] is sparse
    p = p_trotter(rbm, gamma, M)  # the exact reference applies the mask
    assert tv(q, p) < tv_bound(p, n)
    full = random_rbm("3x2")  # the same weights before the two connections were removed
    assert tv(q, p_trotter(full, gamma, M)) > tv_bound(p, n)


# --- chains, state, reproducibility -----------------------------------------------------------------
def test_persistent_worldlines_continue_and_round_trip_bit_identically():
    rbm = random_rbm("3x2")
    a = make_sampler("quantum", gamma=1.0, trotter=6, steps=3, persistent=True, seed=4)
    first = a.sample(rbm, 50)
    assert first.info["start"] == "new"
    V, H = a.worldlines
    assert V.shape == (3, 6, 50) and H.shape == (2, 6, 50)
    assert (V != V[:, :1]).any()  # the worldlines are not copies of slice 0
    v_first = first.v.clone()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    second = a.sample(rbm, 50)
    assert second.info["start"] == "continued"
    assert torch.equal(first.v, v_first)  # a later call does not overwrite returned samples
    b = make_sampler("quantum", gamma=1.0, trotter=6, steps=3, persistent=True, seed=99)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    again = b.sample(rbm, 50)
    assert again.info["start"] == "continued"
    assert torch.equal(again.v, second.v) and torch.equal(again.h, second.h)
    assert torch.equal(b.worldlines[0], a.worldlines[0]) and torch.equal(b.worldlines[1], a.worldlines[1])
    assert a.state_dict()["worldlines_v"].dtype == torch.bool  # compact checkpoints
    # a per-call β with the same slices continues; Γ = 0 (one slice) restarts from slice 0
    assert a.sample(rbm, 50, beta=0.7).info["start"] == "continued"
    c = a.sample(rbm, 50, gamma=0.0)
    assert c.info["start"] == "restarted" and a.worldlines[0].shape == (3, 1, 50)
    # a given initial state is copied into every slice; reset drops the worldlines
    v0 = torch.zeros(50, 3)
    assert a.sample(rbm, 50, initial=Chains(v0)).info["start"] == "initial"
    a.reset_chains()
    assert a.worldlines is None and a.chains is None and a.sample(rbm, 50).info["start"] == "new"
    # without persistence nothing is kept
    d = make_sampler("quantum", gamma=1.0, steps=2)
    d.sample(rbm, 10)
    assert d.worldlines is None and d.sample(rbm, 10).info["start"] == "new"


@pytest.mark.parametrize("nv", [1, 3])
def test_samples_and_checkpoints_do_not_hold_the_worldline_buffers(nv):
    """The returned slice 0 and the chains in ``state_dict`` own compact storage: views of the
    ``(units, M, N)`` buffers would keep them alive and make a checkpoint M times larger."""
    rbm = physamp.RBM(nv, 2)
    s = make_sampler("quantum", gamma=1.0, trotter=16, steps=2, persistent=True, seed=0, diagnostics=False)
    out = s.sample(rbm, 40)
    sd = s.state_dict()
    for t in (out._v, out._h, sd["chains_v"], sd["chains_h"]):
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
    saved = []
    for state in (sd, {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in sd.items()}):
        buf = io.BytesIO()
        torch.save(state, buf)
        saved.append(buf.tell())
    assert saved[0] <= saved[1]  # no larger than a checkpoint of compact copies
    assert s.sample(rbm, 40).info["start"] == "continued"


def test_seeded_reproducibility():
    rbm = random_rbm("2x3")
    run = lambda seed: make_sampler("quantum", gamma=0.7, trotter=5, steps=4, seed=seed).sample(rbm, 200)  # noqa: E731
    x, y, z = run(1), run(1), run(2)
    assert torch.equal(x.v, y.v) and torch.equal(x.h, y.h)
    assert not torch.equal(x.v, z.v)


def test_diagnostics_progress_and_auto_steps(capsys):
    rbm = random_rbm("3x2")
    s = make_sampler("quantum", gamma=1.0, trotter=4, steps=200, seed=0, progress=True).sample(rbm, 64)
    assert math.isfinite(s.info["rhat"]) and s.info["converged"] is not False  # None: within R̂'s noise
    assert "energy" in s.info["convergence"]["statistic"]
    off = make_sampler("quantum", gamma=1.0, trotter=4, steps=200, diagnostics=False).sample(rbm, 64)
    assert math.isnan(off.info["rhat"])
    auto = make_sampler("quantum", gamma=1.0, trotter=4, steps="auto", max_steps=800, progress=False)
    assert auto.sample(rbm, 64).info["steps"] in (400, 800)


def test_declarations_and_repr():
    assert QuantumSampler.uses_chains and QuantumSampler.steps_option == "steps"
    assert QuantumSampler.supports_persistent
    assert set(QuantumSampler.parameters) == {"steps", "beta", "gamma"}
    assert "gamma=1.5" in repr(make_sampler("quantum", gamma=1.5))


@pytest.mark.parametrize(
    "options, match",
    [
        ({}, "needs gamma"),
        ({"gamma": -0.5}, "gamma must be a finite number >= 0"),
        ({"gamma": float("nan")}, "gamma must be a finite number >= 0"),
        ({"gamma": math.inf}, "gamma must be a finite number >= 0"),
        ({"gamma": 1.0, "trotter": 1}, "trotter must be an integer >= 2"),
        ({"gamma": 1.0, "trotter": 16.0}, "trotter must be an integer >= 2"),
        ({"gamma": 1.0, "trotter": True}, "trotter must be an integer >= 2"),
        ({"gamma": 1.0, "trotter": "16"}, "trotter must be an integer >= 2"),
        ({"gamma": 1.0, "beta": float("nan")}, "beta must be a positive finite number"),
        ({"gamma": 1.0, "beta": 0.0}, "beta must be a positive finite number"),
        ({"gamma": 1.0, "steps": 0}, "steps must be a positive integer"),
        ({"gamma": 1.0, "init": "ones"}, "init must be 'random' or 'zeros'"),
        ({"gamma": 1.0, "progress": "yes"}, "progress must be 'auto', True or False"),
    ],
)
def test_bad_options_are_one_clear_line(options, match):
    with pytest.raises(ValueError, match=match) as err:
        make_sampler("quantum", **options)
    assert "\n" not in str(err.value)


def test_bad_per_call_options():
    rbm, s = random_rbm("3x2"), make_sampler("quantum", gamma=1.0, steps=2)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        s.sample(rbm, 10, gamma=-1.0)
    with pytest.raises(ValueError, match="beta must be a positive finite number"):
        s.sample(rbm, 10, beta=float("nan"))
    with pytest.raises(TypeError, match="unknown option"):
        s.sample(rbm, 10, trotter=4)
    # attributes set after construction are checked at the call, with the same one-line errors
    for attr, value, match in [
        ("gamma", -1.0, "gamma must be a finite number >= 0"),
        ("gamma", float("nan"), "gamma must be a finite number >= 0"),
        ("trotter", 0, "trotter must be an integer >= 2"),
    ]:
        t = make_sampler("quantum", gamma=1.0, steps=2)
        setattr(t, attr, value)
        with pytest.raises(ValueError, match=match):
            t.sample(rbm, 10)


# --- training and the command line ------------------------------------------------------------------
def test_pcd_training_through_the_quantum_sampler_resumes_bit_identically(tmp_path):
    from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer, build_training_sampler

    cfg = RBMTrainConfig(
        n_hidden=6, epochs=2, batch_size=16, k=2, num_chains=10, lr=0.05, sampler="quantum",
        sampler_options={"gamma": 0.5, "trotter": 4},
    )  # fmt: skip
    s = build_training_sampler(cfg)
    assert isinstance(s, QuantumSampler) and s.steps == 2 and s.persistent and s.trotter == 4
    data = torch.rand(48, 12, generator=torch.Generator().manual_seed(0))
    full = RBMTrainer(cfg, data)
    full.fit(run_dir=tmp_path / "full", progress=False)
    RBMTrainer(cfg, data).fit(run_dir=tmp_path / "cut", progress=False, checkpoint_every=2, stop_after=3)
    resumed = RBMTrainer(cfg, data)
    resumed.fit(run_dir=tmp_path / "cut", progress=False)
    assert torch.isfinite(full.rbm.W).all()
    assert torch.equal(full.rbm.W, resumed.rbm.W) and torch.equal(full.rbm.b, resumed.rbm.b)


def test_check_sampler_compares_with_the_transverse_field_distribution(capsys):
    from physamp.cli import main

    args = ["check-sampler", "quantum", "-o", "gamma=1", "-o", "trotter=8", "-o", "steps=10"]
    assert main(args + ["--visible", "3", "--hidden", "3"]) == 0
    out = capsys.readouterr().out
    assert "transverse-field" in out and "Trotter-8" in out and "total-variation distance" in out
    # a sampler at the wrong β is caught against the same reference
    assert main(args + ["--visible", "3", "--hidden", "3", "-o", "beta=0.3"]) == 1
