"""The exact transverse-field distribution p_Γ(s) = <s|e^{-βH}|s> / Tr e^{-βH}, H = H_Ising - Γ Σ σˣ."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm

import physamp
from physamp.samplers import make_sampler
from physamp.samplers.quantum_exact import (
    rbm_transverse_field_log_probs,
    transverse_field_log_probs,
)

X = np.array([[0.0, 1.0], [1.0, 0.0]])
I2 = np.eye(2)


def kron_all(ops):
    return functools.reduce(np.kron, ops)


def reference(E: np.ndarray, gamma: float, beta: float) -> np.ndarray:
    """The thermal state's diagonal by a matrix exponential of H built from Kronecker products of
    Pauli matrices: independent of the module's bit-flip construction and its eigendecomposition.
    Spin i is bit i of the index, i.e. the (n-1-i)-th factor of the Kronecker product."""
    n = int(math.log2(E.size))
    H = np.diag(E).astype(float)
    for i in range(n):
        H -= gamma * kron_all([X if n - 1 - k == i else I2 for k in range(n)])
    rho = expm(-beta * H)
    return np.diag(rho) / np.trace(rho), float(np.log(np.trace(rho)))


def random_rbm(nv, nh, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    rbm = physamp.RBM(nv, nh)
    with torch.no_grad():
        rbm.W.copy_(scale * torch.randn(nh, nv, generator=g))
        rbm.b.copy_(torch.randn(nv, generator=g))
        rbm.c.copy_(torch.randn(nh, generator=g))
    return rbm


@pytest.mark.parametrize("h,gamma,beta", [(0.7, 0.5, 1.0), (-1.3, 2.0, 0.4), (0.2, 0.05, 3.0)])
def test_a_single_spin_follows_the_closed_form(h, gamma, beta):
    """H = h σᶻ - Γ σˣ (dimod sign: E = h s): p(↑) = ½ (1 - (h/r) tanh(βr)), r = √(h² + Γ²)."""
    energies = torch.tensor([-h, h], dtype=torch.float64)  # index 1 = spin up
    log_p, log_z = transverse_field_log_probs(energies, gamma, beta)
    r = math.hypot(h, gamma)
    assert math.exp(float(log_p[1])) == pytest.approx(0.5 * (1 - h / r * math.tanh(beta * r)), rel=1e-12)
    assert log_z == pytest.approx(math.log(2 * math.cosh(beta * r)), rel=1e-12)


def test_an_rbm_matches_a_matrix_exponential_of_pauli_products():
    rbm = random_rbm(3, 2, seed=0)
    log_p, log_z = rbm_transverse_field_log_probs(rbm, gamma=0.8, beta=1.3)
    # the classical diagonal by the model's own energy, visible units first in the index bits
    states = ((torch.arange(32)[:, None] >> torch.arange(5)) & 1).double()
    W, b, c = (t.detach().double() for t in (rbm.W, rbm.b, rbm.c))
    v, h = states[:, :3], states[:, 3:]
    E = (-(v @ b) - (h @ c) - torch.einsum("sj,ji,si->s", h, W, v)).numpy()  # Eq. 1.32
    p_ref, log_z_ref = reference(E, 0.8, 1.3)
    np.testing.assert_allclose(torch.exp(log_p).numpy(), p_ref, rtol=1e-9, atol=1e-14)
    assert log_z == pytest.approx(log_z_ref, rel=1e-10)


def test_no_field_is_the_classical_distribution_and_a_huge_field_is_uniform():
    rbm = random_rbm(3, 3, seed=1, scale=2.0)
    classical = make_sampler("exact")
    log_p0, log_z0 = rbm_transverse_field_log_probs(rbm, gamma=0.0, beta=1.0)
    tiny, log_zt = rbm_transverse_field_log_probs(rbm, gamma=1e-6, beta=1.0)  # diagonalised
    assert log_z0 == pytest.approx(classical.log_z(rbm), rel=1e-12)
    np.testing.assert_allclose(torch.exp(tiny).numpy(), torch.exp(log_p0).numpy(), atol=1e-9)
    assert log_zt == pytest.approx(log_z0, abs=1e-9)
    huge, _ = rbm_transverse_field_log_probs(rbm, gamma=1e4, beta=1.0)
    np.testing.assert_allclose(torch.exp(huge).numpy(), np.full(64, 1 / 64), atol=1e-3)
    # and it moves away from the classical distribution in between
    mid, _ = rbm_transverse_field_log_probs(rbm, gamma=1.0, beta=1.0)
    assert 0.5 * float((torch.exp(mid) - torch.exp(log_p0)).abs().sum()) > 0.05


def test_exact_sampler_with_gamma_draws_the_quantum_distribution():
    """TV of 40,000 draws to p_Γ below a perfect sampler's 99th percentile (200 seeded multinomials)."""
    rbm = random_rbm(3, 2, seed=2)
    p = torch.exp(rbm_transverse_field_log_probs(rbm, gamma=1.0, beta=1.0)[0]).numpy()
    s = make_sampler("exact", gamma=1.0, seed=3).sample(rbm, 40_000)
    x = torch.cat([s.v, s.h], 1).long()
    index = (x << torch.arange(5)).sum(1).numpy()
    q = np.bincount(index, minlength=32) / len(index)
    rng = np.random.default_rng(0)
    perfect = [0.5 * np.abs(rng.multinomial(40_000, p) / 40_000 - p).sum() for _ in range(200)]
    bound = np.quantile(perfect, 0.99)
    assert 0.5 * np.abs(q - p).sum() < bound
    assert s.info["gamma"] == 1.0 and s.info["log_z"] == pytest.approx(
        make_sampler("exact", gamma=1.0).log_z(rbm), rel=1e-12
    )
    # a per-call gamma, and gamma = 0 is the classical path
    assert make_sampler("exact", seed=0).sample(rbm, 10, gamma=0.5).info["gamma"] == 0.5
    assert "gamma" not in make_sampler("exact", seed=0).sample(rbm, 10).info


def test_bad_gamma_and_too_many_spins_are_refused():
    rbm = random_rbm(3, 2, seed=0)
    for bad in (-0.1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
            make_sampler("exact", gamma=bad)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        make_sampler("exact").sample(rbm, 5, gamma=-1.0)
    with pytest.raises(ValueError, match=r"all 13 spins \(7 visible \+ 6 hidden\).*past the limit of 12"):
        make_sampler("exact", gamma=1.0).sample(physamp.RBM(7, 6), 5)
