"""``make_sampler("openjij")``: OpenJij's SQA / SA at a fixed (β, Γ), checked against exact distributions.

The distributional tests compare the reads with (a) the exact slice marginal of OpenJij's
Trotterised model, ``⟨s|(e^{−εH_Ising} e^{εΓX})^M|s⟩`` with ``ε = β/M``, from dense matrices (the
tight test: only sampling noise and mixing separate them), and (b) the exact ``p_Γ`` of
:func:`~physamp.samplers.quantum_exact.rbm_transverse_field_log_probs`, with the Trotter error
``TV(p_M, p_Γ)`` added to the bound (triangle inequality). The noise bound is the 99th percentile of
a perfect sampler's TV at the same number of draws (200 seeded multinomials, ``tv_bound``). Each
test also shows that a 30 % wrong Γ (or β) fails the same bound. ``pytest -s`` prints the figures.

Most tests need OpenJij (``pip install "physamp[openjij]"``) and are skipped without it; the
missing-extra message is checked without it (its import is made to fail).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest
import torch

from physamp.energy import RBMParams
from physamp.samplers import Chains, make_sampler
from physamp.samplers.quantum_exact import rbm_transverse_field_log_probs

from conftest import random_rbm, tv, tv_bound

HAVE_OPENJIJ = importlib.util.find_spec("openjij") is not None
needs_openjij = pytest.mark.skipif(not HAVE_OPENJIJ, reason='needs OpenJij: pip install "physamp[openjij]"')

# A 3 visible x 2 hidden RBM, W ~ N(0, 1), at β = 2 (where a 30 % change of Γ moves p_Γ by
# 0.08-0.16 in TV, well above the noise of 5,000 draws); M = 8 slices, 60 sweeps from random starts.
BETA, TROTTER, STEPS, DRAWS = 2.0, 8, 60, 5000


@pytest.fixture(scope="module")
def rbm():
    return random_rbm(3, 2, seed=4)


def exact_p(rbm, gamma: float, beta: float = BETA) -> np.ndarray:
    return np.exp(rbm_transverse_field_log_probs(rbm, gamma, beta)[0].numpy())


def rbm_energies(rbm) -> np.ndarray:
    """E(v, h) of all 2ⁿ states, bit i of the index = unit i (visible first), as quantum_exact orders them."""
    p = rbm.params()
    W, b, c = (t.detach().double().numpy() for t in (p.W, p.b, p.c))
    nh, nv = W.shape
    x = ((np.arange(1 << (nv + nh))[:, None] >> np.arange(nv + nh)) & 1).astype(np.float64)
    v, h = x[:, :nv], x[:, nv:]
    return -(v @ b) - (h @ c) - ((h @ W) * v).sum(1)


def trotter_marginal(rbm, gamma: float, trotter: int, beta: float = BETA) -> np.ndarray:
    """The exact slice marginal ⟨s|(e^{−εH_Ising} e^{εΓX})^M|s⟩ / Tr(...) with dense matrices."""
    E = rbm_energies(rbm)
    n = int(np.log2(E.size))
    eps = beta / trotter
    ch, sh = np.cosh(eps * gamma), np.sinh(eps * gamma)
    X = np.ones((1, 1))
    for _ in range(n):  # e^{εΓ Σ σˣ} = ⊗ᵢ (cosh εΓ · 1 + sinh εΓ · σˣ)
        X = np.kron(np.array([[ch, sh], [sh, ch]]), X)
    step = np.exp(-eps * (E - E.min()))[:, None] * X  # e^{−εH_Ising} e^{εΓX} (a constant shift cancels)
    d = np.diag(np.linalg.matrix_power(step, trotter))
    return d / d.sum()


def histogram(samples) -> np.ndarray:
    x = torch.cat([samples.v, samples.h], 1).numpy().astype(np.int64)
    return np.bincount(x @ (1 << np.arange(x.shape[1])), minlength=1 << x.shape[1]) / len(x)


def check_within(name, q, p, bound) -> float:
    value = tv(q, p)
    print(f"{name}: TV {value:.4f} (bound {bound:.4f})")
    return value


@needs_openjij
@pytest.mark.parametrize("gamma", [0.5, 1.5])
def test_sqa_samples_the_trotterised_and_the_exact_transverse_field_distribution(rbm, gamma):
    sampler = make_sampler("openjij", gamma=gamma, beta=BETA, trotter=TROTTER, steps=STEPS, seed=0)
    s = sampler.sample(rbm, DRAWS)
    q = histogram(s)
    p_m, p_g = trotter_marginal(rbm, gamma, TROTTER), exact_p(rbm, gamma)
    noise_m, noise_g = tv_bound(p_m, DRAWS), tv_bound(p_g, DRAWS)
    trotter_error = tv(p_m, p_g)
    bound_g = noise_g + trotter_error
    print(f"Γ={gamma}: Trotter error TV(p_M, p_Γ) = {trotter_error:.4f} at M={TROTTER}, β={BETA}")
    assert check_within("vs exact Trotter-M", q, p_m, noise_m) < noise_m
    assert check_within("vs exact p_Γ", q, p_g, bound_g) < bound_g
    for factor in (0.7, 1.3):  # a 30 % wrong Γ fails both bounds
        wrong_m, wrong_g = trotter_marginal(rbm, factor * gamma, TROTTER), exact_p(rbm, factor * gamma)
        assert check_within(f"vs Trotter-M at {factor}Γ", q, wrong_m, noise_m) > noise_m
        assert check_within(f"vs p_Γ at {factor}Γ", q, wrong_g, bound_g) > bound_g
    assert s.info["openjij_schedule"] == [(0.5, 2 * BETA, STEPS)]  # one fixed point: no anneal
    assert s.info["openjij_point"] == {"s": 0.5, "beta": 2 * BETA, "gamma": gamma}


@needs_openjij
def test_sa_samples_the_classical_distribution(rbm):
    s = make_sampler("openjij", method="sa", beta=BETA, steps=STEPS, seed=0).sample(rbm, DRAWS)
    q, p0 = histogram(s), exact_p(rbm, 0.0)
    bound = tv_bound(p0, DRAWS)
    assert check_within("sa vs classical", q, p0, bound) < bound
    for factor in (0.7, 1.3):  # a 30 % wrong β fails the bound
        wrong = exact_p(rbm, 0.0, factor * BETA)
        assert check_within(f"sa vs classical at {factor}β", q, wrong, bound) > bound
    assert s.info["openjij_schedule"] == [(BETA, STEPS)] and s.info["trotter"] is None


@needs_openjij
def test_persistent_chains_continue_their_worldlines_and_stay_at_the_distribution(rbm):
    """Two calls of 30 sweeps continue the same worldlines: together the 60 sweeps of the one-call test."""
    gamma = 0.5
    sampler = make_sampler(
        "openjij", gamma=gamma, beta=BETA, trotter=TROTTER, steps=STEPS // 2, persistent=True, seed=1
    )
    first = sampler.sample(rbm, DRAWS)
    assert first.info["continued"] is None and sampler.worldlines.shape == (DRAWS, TROTTER, 5)
    assert torch.equal((sampler.worldlines[:, 0] > 0).float(), torch.cat([first.v, first.h], 1))
    s = sampler.sample(rbm, DRAWS)
    assert s.info["continued"] == "worldlines"
    p_m = trotter_marginal(rbm, gamma, TROTTER)
    bound = tv_bound(p_m, DRAWS)
    assert check_within("persistent, 2 x 30 sweeps, vs Trotter-M", histogram(s), p_m, bound) < bound


@needs_openjij
def test_one_sweep_moves_few_spins_of_a_continued_chain():
    rbm = random_rbm(16, 8, seed=0)
    sampler = make_sampler("openjij", gamma=1.0, trotter=8, steps=1, persistent=True, seed=0)
    a, b = sampler.sample(rbm, 200), sampler.sample(rbm, 200)
    fresh = make_sampler("openjij", gamma=1.0, trotter=8, steps=1, seed=5).sample(rbm, 200)
    changed = (torch.cat([a.v, a.h], 1) != torch.cat([b.v, b.h], 1)).float().mean().item()
    restarted = (torch.cat([a.v, a.h], 1) != torch.cat([fresh.v, fresh.h], 1)).float().mean().item()
    print(f"fraction of units changed by one continued sweep {changed:.3f}, by a restart {restarted:.3f}")
    assert changed < 0.2 < 0.4 < restarted


@needs_openjij
def test_state_dict_carries_the_worldlines_and_the_generator_and_reset_drops_them():
    rbm = random_rbm(6, 4, seed=2)
    a = make_sampler("openjij", gamma=1.0, trotter=4, steps=3, persistent=True, seed=7)
    a.sample(rbm, 50)
    b = make_sampler("openjij", gamma=1.0, trotter=4, steps=3, persistent=True, seed=99)
    b.load_state_dict(a.state_dict())
    sa, sb = a.sample(rbm, 50), b.sample(rbm, 50)
    assert sb.info["continued"] == "worldlines"
    assert torch.equal(sa.v, sb.v) and torch.equal(sa.h, sb.h) and torch.equal(a.worldlines, b.worldlines)
    # a classical start given by hand (not the chains' own slice 0) is copied into every slice
    assert a.sample(rbm, 50, initial=Chains(sa.v.flip(0), sa.h)).info["continued"] == "classical"
    a.reset_chains()
    assert a.worldlines is None and a.sample(rbm, 50).info["continued"] is None


@needs_openjij
@pytest.mark.parametrize("method", ["sqa", "sa"])
def test_reads_differ_and_a_seed_repeats_a_call(method):
    """OpenJij's own sample(num_reads=N, seed=k) returns N copies of one read; here each read has its seed."""
    rbm = random_rbm(32, 32, seed=0, scale=0.3)
    opts = {"gamma": 1.0, "trotter": 4} if method == "sqa" else {}
    make = lambda seed: make_sampler("openjij", method=method, steps=5, seed=seed, **opts)  # noqa: E731
    a, b = make(1), make(1)
    s1, s2 = a.sample(rbm, 300), b.sample(rbm, 300)
    assert torch.equal(s1.v, s2.v) and torch.equal(s1.h, s2.h)  # a fixed seed reproduces a call
    x = torch.cat([s1.v, s1.h], 1)
    assert len(torch.unique(x, dim=0)) == 300  # 300 different reads of 64 spins
    assert not torch.equal(a.sample(rbm, 300).v, s1.v)  # the next call draws new reads
    assert not torch.equal(make(2).sample(rbm, 300).v, s1.v)


@needs_openjij
@pytest.mark.parametrize("method, sparse", [("sqa", True), ("sqa", False), ("sa", True)])
def test_the_public_sampler_api_gives_the_same_reads(method, sparse):
    """api='sampler' (SQASampler.sample / SASampler.sample, one call per read) = api='cxxjij'."""
    rbm = random_rbm(5, 4, seed=3)
    opts = {"gamma": 0.8, "trotter": 4} if method == "sqa" else {}
    x = [
        make_sampler("openjij", method=method, steps=7, seed=11, api=api, sparse=sparse, **opts).sample(
            rbm, 40
        )
        for api in ("cxxjij", "sampler")
    ]
    assert torch.equal(x[0].v, x[1].v) and torch.equal(x[0].h, x[1].h)
    assert x[1].info["api"] == "sampler"


@needs_openjij
def test_outputs_follow_the_model_and_per_chain_biases():
    rbm = random_rbm(3, 2, seed=0).to(torch.float64)
    s = make_sampler("openjij", gamma=0.5, trotter=4, steps=2, seed=0).sample(rbm, 4)
    assert s.v.dtype == torch.float64 and s.v.shape == (4, 3) and s.h.shape == (4, 2)
    assert s.info["backend"] == "openjij" and s.info["time_s"] > 0 and s.info["openjij_time_s"] > 0
    p = rbm.params()
    b = torch.stack([torch.full((3,), 30.0), torch.full((3,), -30.0)]).double()
    batched = RBMParams(p.W.detach(), b, p.c.detach())
    v = make_sampler("openjij", gamma=0.1, trotter=4, steps=20, seed=0).sample(batched, 2).v
    assert v.tolist() == [[1.0] * 3, [0.0] * 3]  # each read under its own visible bias


@needs_openjij
def test_bad_options_get_one_clear_line():
    def refuses(match, **opts):
        with pytest.raises(ValueError, match=match):
            make_sampler("openjij", **opts)

    refuses("gamma must be a finite number >= 0", gamma=-0.5)
    refuses("gamma must be a finite number >= 0", gamma=float("nan"))
    refuses("needs gamma, the transverse field", trotter=8)
    refuses("method='sqa' needs gamma > 0", gamma=0.0)
    refuses("trotter must be an integer >= 2", gamma=1.0, trotter=1)
    refuses("trotter must be an integer >= 2", gamma=1.0, trotter=4.0)
    refuses("trotter must be an integer >= 2", gamma=1.0, trotter=True)
    refuses("method='sa' is OpenJij's classical SASampler", method="sa", gamma=0.5)
    refuses("method must be 'sqa'", method="qa", gamma=1.0)
    refuses("api must be 'cxxjij'", gamma=1.0, api="dimod")
    refuses("steps must be an integer >= 1", gamma=1.0, steps=0)
    refuses("beta must be a positive finite number", gamma=1.0, beta=0.0)
    sampler = make_sampler("openjij", gamma=1.0, trotter=4, steps=1)
    rbm = random_rbm(2, 2, seed=0)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        sampler.sample(rbm, 2, gamma=-1.0)
    with pytest.raises(ValueError, match="method='sqa' needs gamma > 0"):
        sampler.sample(rbm, 2, gamma=0)
    assert make_sampler("openjij", method="sa").sample(rbm, 2, gamma=0.0).info["gamma"] == 0.0
    # attributes set after construction are checked at the call (trotter=0 crashed OpenJij's core,
    # a negative gamma ran silently on NaN couplings)
    for attr, value, match in [
        ("trotter", 0, "trotter must be an integer >= 2"),
        ("gamma", -1.0, "gamma must be a finite number >= 0"),
    ]:
        bad = make_sampler("openjij", gamma=1.0, trotter=4, steps=1)
        setattr(bad, attr, value)
        with pytest.raises(ValueError, match=match):
            bad.sample(rbm, 2)


@needs_openjij
def test_the_thread_limit_applies_and_is_undone_without_threadpoolctl(monkeypatch):
    import openjij

    from physamp.samplers.openjij_backend import _bundled_openmp, _openmp_threads

    runtime = _bundled_openmp(openjij)
    if runtime is None:
        pytest.skip("this OpenJij build bundles no OpenMP runtime where the wheel for Linux keeps it")
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # the ctypes path
    before = runtime.omp_get_max_threads()
    with _openmp_threads(1, openjij) as applied:
        assert applied == 1 and runtime.omp_get_max_threads() == 1
    assert runtime.omp_get_max_threads() == before
    s = make_sampler("openjij", gamma=1.0, trotter=4, steps=1, seed=0).sample(random_rbm(2, 2, seed=0), 2)
    assert s.info["num_threads"] == 1


def test_a_missing_extra_says_how_to_install_it_and_importing_physamp_does_not_need_it(monkeypatch):
    """Runs with or without OpenJij: its import is made to fail, and the backend's module is imported
    afresh under that block (so it imports OpenJij only when a sampler is built)."""
    for name in [m for m in sys.modules if m.split(".")[0] == "openjij"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openjij", None)  # `import openjij` raises ImportError
    monkeypatch.delitem(sys.modules, "physamp.samplers.openjij_backend", raising=False)
    module = importlib.import_module("physamp.samplers.openjij_backend")
    with pytest.raises(ImportError, match=r'pip install "physamp\[openjij\]"') as err:
        make_sampler("openjij", gamma=1.0)
    assert "\n" not in str(err.value)
    with pytest.raises(ImportError, match=r"physamp\[openjij\]"):
        module.OpenJijBackend(method="sa")
    with pytest.raises(ValueError, match="trotter must be"):  # bad options read the same without it
        module.OpenJijBackend(gamma=1.0, trotter=1)
