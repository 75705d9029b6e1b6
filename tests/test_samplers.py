"""Every backend against the exact distribution, by enumeration (fixed seeds).

The tolerance is stated in terms of the sampling noise: for N samples over K
states the empirical TV distance to the truth is about
``0.5 Σ sqrt(2 p (1-p) / (π N))`` (``expected_tv``); we require TV below
``TV_TOL = 0.05`` with N = 30,000 on a 4x3 RBM (128 states, expected TV ≈ 0.02),
and show with a negative control that a wrong distribution exceeds it.
"""

import numpy as np
import pytest
import torch

import physamp
from physamp.samplers import Chains, Sampler, UnknownOptionError, available_samplers, make_sampler
from physamp.samplers.exact import exact_log_z

from conftest import exact_joint, expected_tv, random_rbm, tv_distance

N = 30_000
TV_TOL = 0.05


@pytest.fixture(scope="module")
def rbm():
    return random_rbm(4, 3, seed=11, scale=1.2)


@pytest.fixture(scope="module")
def p_exact(rbm):
    return exact_joint(rbm.W, rbm.b, rbm.c)


def test_tolerance_is_meaningful(rbm, p_exact):
    assert expected_tv(p_exact, N) < TV_TOL / 2
    # negative control: the same sampler at the wrong temperature is caught
    wrong = make_sampler("exact", seed=0).sample(rbm, N, beta=0.6)
    assert tv_distance(wrong, p_exact) > TV_TOL


@pytest.mark.parametrize(
    "name, options",
    [
        ("exact", {}),
        ("gibbs", {}),
        ("gibbs", {"rng": "uniform", "steps": 200}),
        ("simulated", {}),
        ("simulated", {"child": "neal", "num_sweeps": 300}),
        ("neal", {}),
    ],
)
def test_backend_matches_exact_distribution(rbm, p_exact, name, options):
    s = make_sampler(name, seed=123, **options).sample(rbm, N)
    assert s.v.shape == (N, 4) and s.h.shape == (N, 3)
    assert s.v.dtype == rbm.W.dtype
    assert set(s.v.unique().tolist()) <= {0.0, 1.0}
    assert tv_distance(s, p_exact) < TV_TOL


def test_neal_anneal_schedule_ends_at_target_beta(rbm, p_exact):
    s = make_sampler("neal", schedule="anneal", num_sweeps=300, seed=5).sample(rbm, N)
    assert tv_distance(s, p_exact) < TV_TOL


@pytest.mark.parametrize("masked", [False, True])
def test_neal_array_path_equals_public_bqm_path(masked):
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) < 0.6 if masked else None
    rbm = random_rbm(5, 3, seed=9, mask=mask)
    a = make_sampler("neal", seed=4, num_sweeps=7).sample(rbm, 50)
    b = make_sampler("neal", seed=4, num_sweeps=7, use_bqm=True).sample(rbm, 50)
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)


def test_gibbs_sparse_path_matches_exact():
    mask = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)
    rbm = random_rbm(4, 3, seed=3, scale=1.5, mask=mask)
    p = exact_joint(rbm.W, rbm.b, rbm.c)
    s = make_sampler("gibbs", sparse=True, seed=1, steps=200).sample(rbm, N)
    assert s.info["sparse"] is True
    assert tv_distance(s, p) < TV_TOL


def test_gibbs_beta_samples_tempered_distribution(rbm):
    p_half = exact_joint(rbm.W * 0.5, rbm.b * 0.5, rbm.c * 0.5)
    s = make_sampler("gibbs", seed=2, steps=200).sample(rbm, N, beta=0.5)
    assert tv_distance(s, p_half) < TV_TOL


def test_exact_log_z_matches_enumeration(rbm):
    W, b, c = (t.detach().double().numpy() for t in (rbm.W, rbm.b, rbm.c))
    from conftest import all_states

    V, H = all_states(4), all_states(3)
    E = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W.T @ H.T
    assert exact_log_z(rbm.params()) == pytest.approx(np.logaddexp.reduce(-E.ravel()), abs=1e-9)
    # the visible layer smaller than the hidden one: enumeration switches layers
    wide = random_rbm(3, 6, seed=4)
    Wd, bd, cd = (t.detach().double().numpy() for t in (wide.W, wide.b, wide.c))
    V, H = all_states(3), all_states(6)
    E = -(V @ bd)[:, None] - (H @ cd)[None, :] - V @ Wd.T @ H.T
    assert exact_log_z(wide.params()) == pytest.approx(np.logaddexp.reduce(-E.ravel()), abs=1e-9)


def test_exact_refuses_large_models():
    with pytest.raises(ValueError, match="2\\^30 states"):
        make_sampler("exact").sample(physamp.RBM(40, 30), 1)


def test_gibbs_persistent_chains_continue_and_roundtrip():
    rbm = random_rbm(6, 4, seed=8)
    s = make_sampler("gibbs", steps=1, persistent=True, seed=0)
    first = s.sample(rbm, 5)
    assert s.chains is not None and torch.equal(s.chains.v, first.v)
    state = s.state_dict()
    a = s.sample(rbm, 5)
    assert a.info["continued"]
    # reloading the state reproduces the continuation bit for bit
    t = make_sampler("gibbs", steps=1, persistent=True, seed=99)
    t.load_state_dict(state)
    b = t.sample(rbm, 5)
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)
    s.reset_chains()
    assert s.chains is None


def test_gibbs_one_step_from_initial_is_a_gibbs_step():
    """From v0 with extreme weights, one sweep's h follows p(h|v0) deterministically."""
    rbm = physamp.RBM(3, 2)
    with torch.no_grad():
        rbm.W.copy_(torch.tensor([[30.0, 0, 0], [-30.0, 0, 0]]))
    v0 = torch.tensor([[1.0, 0, 0]] * 4)
    out = make_sampler("gibbs", steps=1, seed=0).sample(rbm, 4, initial=Chains(v0))
    assert torch.equal(out.h, torch.tensor([[1.0, 0.0]] * 4))


def test_initial_shape_errors():
    rbm = physamp.RBM(4, 3)
    with pytest.raises(ValueError, match=r"expected \(5, 4\)"):
        make_sampler("gibbs", steps=1).sample(rbm, 5, initial=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="0/1 valued"):
        make_sampler("gibbs", steps=1).sample(rbm, 2, initial=torch.full((2, 4), 0.5))


def test_simulated_without_noise_is_exactly_gibbs(rbm):
    a = make_sampler("simulated", seed=7, steps=20).sample(rbm, 200)
    b = make_sampler("gibbs", seed=7, steps=20).sample(rbm, 200)
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)


def test_registry_errors_and_listing():
    assert {"exact", "gibbs", "simulated", "neal", "dwave", "dimod"} <= set(available_samplers())
    with pytest.raises(ValueError, match="unknown sampler 'gibs'.*available: .*gibbs"):
        make_sampler("gibs")
    with pytest.raises(TypeError, match="Options of the 'gibbs' sampler: .*steps"):
        make_sampler("gibbs", stepz=3)
    with pytest.raises(UnknownOptionError, match="unknown option\\(s\\) \\['sweeps'\\].*steps"):
        make_sampler("gibbs").sample(physamp.RBM(2, 2), 1, sweeps=3)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        make_sampler("gibbs").sample(physamp.RBM(2, 2), 0)


def test_register_third_party_backend(monkeypatch):
    from physamp.samplers import register_sampler, registry

    class Ones(Sampler):
        name = "ones"

        def _sample(self, params, num_samples, initial, **opts):
            return (torch.ones(num_samples, params.n_visible), torch.ones(num_samples, params.n_hidden), {})

    monkeypatch.setattr(registry, "_REGISTERED", {})
    register_sampler("ones", Ones)
    s = make_sampler("ones").sample(physamp.RBM(3, 2), 4)
    assert s.v.sum() == 12 and s.info["backend"] == "ones"

    class EP:
        name = "ep-ones"

        def load(self):
            return Ones

    monkeypatch.setattr(registry, "_entry_points", lambda: {"ep-ones": EP()})
    assert "ep-ones" in available_samplers()
    assert isinstance(make_sampler("ep-ones"), Ones)


def test_samples_on_the_rbm_dtype():
    rbm = physamp.RBM(3, 2, dtype=torch.float64)
    for name in ["exact", "gibbs", "neal"]:
        s = make_sampler(name, seed=0).sample(rbm, 3)
        assert s.v.dtype == torch.float64 and s.h.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gibbs_on_cuda(rbm, p_exact):
    s = make_sampler("gibbs", seed=1).sample(rbm.cuda(), N)
    assert s.v.is_cuda
    assert tv_distance(s, p_exact) < TV_TOL


def test_sparse_structure_cache_never_serves_another_mask():
    from physamp.samplers.gibbs import SparseStructure

    for trial in range(20):  # new masks of one shape, each freed before the next is made
        mask = torch.rand(60, 50, generator=torch.Generator().manual_seed(trial)) < 0.05
        s = SparseStructure.get(mask)
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert torch.equal(s.rows, rows) and torch.equal(s.cols, cols)
        assert SparseStructure.density_of(mask) == pytest.approx(float(mask.float().mean()))
        del mask, s
    # an in-place change of a mask is a new structure too
    mask = torch.zeros(6, 5, dtype=torch.bool)
    mask[0, 0] = True
    assert SparseStructure.get(mask).rows.numel() == 1
    mask[1, 1] = True
    assert SparseStructure.get(mask).rows.numel() == 2


def test_samples_are_contiguous_and_unpack():
    rbm = random_rbm(6, 4, seed=1)
    s = make_sampler("gibbs", steps=2, seed=0).sample(rbm, 5)
    assert s.v.is_contiguous() and s.h.is_contiguous()
    assert s.v.view(-1).shape == (30,)
    v, h = s
    assert torch.equal(v, s.v) and torch.equal(h, s.h) and len(s) == 5
