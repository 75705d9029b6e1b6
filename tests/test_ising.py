"""Eq. 3.1 proved by enumeration: both forms define the same normalised distribution."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physamp.ising import (
    IsingRBM,
    ising_to_rbm,
    rbm_to_bqm,
    rbm_to_ising,
)

from conftest import all_states, exact_joint, random_rbm


def ising_joint(ising: IsingRBM) -> np.ndarray:
    nv, nh = ising.n_visible, ising.n_hidden
    SV, SH = 2 * all_states(nv) - 1, 2 * all_states(nh) - 1
    E = (SV @ ising.h_visible)[:, None] + (SH @ ising.h_hidden)[None, :] + SV @ ising.J.T @ SH.T
    logp = -E - np.logaddexp.reduce(-E.ravel())
    return np.exp(logp).ravel()


@settings(max_examples=25, deadline=None)
@given(nv=st.integers(1, 5), nh=st.integers(1, 4), seed=st.integers(0, 10_000), scale=st.floats(0.1, 3.0))
def test_eq_3_1_same_distribution(nv, nh, seed, scale):
    rbm = random_rbm(nv, nh, seed, scale)
    ising = rbm_to_ising(rbm)
    assert np.abs(ising_joint(ising) - exact_joint(rbm.W, rbm.b, rbm.c)).max() < 1e-12


def test_eq_3_1_coefficients_in_dimod_signs():
    rbm = random_rbm(3, 2, seed=4)
    W, b, c = (t.detach().double().numpy() for t in (rbm.W, rbm.b, rbm.c))
    ising = rbm_to_ising(rbm)
    np.testing.assert_allclose(ising.J, -W / 4)
    np.testing.assert_allclose(ising.h_visible, -(b / 2 + W.sum(0) / 4))
    np.testing.assert_allclose(ising.h_hidden, -(c / 2 + W.sum(1) / 4))


@settings(max_examples=25, deadline=None)
@given(nv=st.integers(1, 6), nh=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_round_trip_float64(nv, nh, seed):
    g = np.random.default_rng(seed)
    ising = IsingRBM(g.normal(size=nv), g.normal(size=nh), g.normal(size=(nh, nv)))
    rbm = ising_to_rbm(ising)
    assert rbm.W.dtype == torch.float64
    back = rbm_to_ising(rbm)
    np.testing.assert_array_equal(back.J, ising.J)  # scaling by 4 is exact in binary
    np.testing.assert_allclose(back.h_visible, ising.h_visible, rtol=0, atol=1e-13)
    np.testing.assert_allclose(back.h_hidden, ising.h_hidden, rtol=0, atol=1e-13)
    # and the distributions agree
    assert np.abs(ising_joint(ising) - exact_joint(rbm.W, rbm.b, rbm.c)).max() < 1e-12


def test_bqm_energies_equal_rbm_energies():
    rbm = random_rbm(4, 3, seed=5)
    bqm = rbm_to_bqm(rbm)
    assert bqm.vartype.name == "SPIN"
    assert list(bqm.variables) == list(range(7))
    for bits in itertools.product([0, 1], repeat=7):
        x = torch.tensor([bits], dtype=torch.float32)
        e_rbm = rbm.energy(x[:, :4], x[:, 4:]).item()
        e_bqm = bqm.energy({i: 2 * s - 1 for i, s in enumerate(bits)})
        assert abs(e_rbm - e_bqm) < 1e-5


def test_bqm_labels_and_mask():
    mask = torch.tensor([[True, False, True], [False, True, False]])
    rbm = random_rbm(3, 2, seed=6, mask=mask)
    labels = ["v0", "v1", "v2", "h0", "h1"]
    bqm = rbm_to_bqm(rbm, labels=labels)
    assert set(bqm.variables) == set(labels)
    assert bqm.num_interactions == 3
    assert bqm.quadratic[("h0", "v2")] == pytest.approx(-rbm.W[0, 2].item() / 4)
    with pytest.raises(ValueError, match="got 4 labels"):
        rbm_to_bqm(rbm, labels=labels[:4])
    with pytest.raises(ValueError, match="distinct"):
        rbm_to_bqm(rbm, labels=["a"] * 5)


def test_bqm_refuses_nan():
    rbm = random_rbm(3, 2, seed=7)
    with torch.no_grad():
        rbm.c[1] = float("inf")
    with pytest.raises(ValueError, match="c holds 1 non-finite"):
        rbm_to_bqm(rbm)


def test_ising_unpacks_and_converts_back_from_arrays():
    rbm = random_rbm(3, 2, seed=8)
    h_v, h_h, J, offset = rbm_to_ising(rbm)
    back = ising_to_rbm(h_v, h_h, J)
    np.testing.assert_allclose(back.W.detach().numpy(), rbm.W.detach().double().numpy(), atol=1e-7)
    np.testing.assert_allclose(back.b.detach().numpy(), rbm.b.detach().double().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="J has shape"):
        ising_to_rbm(h_v, h_h, J.T)
    with pytest.raises(ValueError, match="J holds NaN"):
        ising_to_rbm(h_v, h_h, J * np.nan)
