"""The 25-Gaussian toy data and its metrics (physamp.models.ali.toy). Fixed seeds throughout; each
statistical tolerance is stated next to its binomial / sampling standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physamp.models.ali import toy

N_BIG = 100_000


@pytest.fixture(scope="module")
def big():
    return toy.grid_mixture(N_BIG, seed=0)


# --------------------------------------------------------------------------------------------- data
def test_constants():
    assert toy.GRID == (-4, -2, 0, 2, 4)
    assert toy.STD == 0.05
    assert toy.MEANS.shape == (25, 2) and toy.MEANS.dtype == torch.float32
    # row-major over (x, y)
    assert toy.MEANS[0].tolist() == [-4, -4]
    assert toy.MEANS[1].tolist() == [-4, -2]
    assert toy.MEANS[4].tolist() == [-4, 4]
    assert toy.MEANS[22].tolist() == [4, 0]
    assert toy.MEANS[24].tolist() == [4, 4]
    assert len({tuple(m) for m in toy.MEANS.tolist()}) == 25


def test_grid_mixture_shapes_and_dtypes():
    x, c = toy.grid_mixture(1000, seed=3)
    assert x.shape == (1000, 2) and x.dtype == torch.float32
    assert c.shape == (1000,) and c.dtype == torch.int64
    assert int(c.min()) >= 0 and int(c.max()) <= 24
    x0, c0 = toy.grid_mixture(0)
    assert x0.shape == (0, 2) and c0.shape == (0,)


def test_grid_mixture_statistics(big):
    x, c = big
    assert torch.unique(c).numel() == 25
    counts = torch.bincount(c, minlength=25).double()
    # each count ~ Binomial(1e5, 1/25): mean 4000, std ~62; 6 std = 372
    assert (counts - N_BIG / 25).abs().max() < 372
    # per-component sample mean: std of the mean 0.05/sqrt(4000) ~ 7.9e-4 per coordinate; tolerance 5e-3
    means = torch.stack([x[c == k].double().mean(0) for k in range(25)])
    assert (means - toy.MEANS.double()).abs().max() < 5e-3
    # pooled std of the 2e5 residual coordinates: standard error 0.05/sqrt(2*2e5) ~ 7.9e-5; tolerance 1e-3
    resid = x.double() - toy.MEANS.double()[c]
    assert abs(float(resid.std()) - 0.05) < 1e-3
    # component labels agree with the responsibilities (modes are 40 std apart)
    assert torch.equal(toy.assign_modes(x), c)


def test_grid_mixture_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    x1, c1 = toy.grid_mixture(500, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    x2, c2 = toy.grid_mixture(500, seed=7)
    assert torch.equal(x1, x2) and torch.equal(c1, c2)
    x3, _ = toy.grid_mixture(500, seed=8)
    assert not torch.equal(x1, x3)


def test_grid_mixture_rejects_bad_n():
    with pytest.raises(ValueError):
        toy.grid_mixture(-1)
    with pytest.raises(ValueError):
        toy.grid_mixture(2.5)


# ---------------------------------------------------------------------------------- responsibilities
def test_count_modes_full_and_partial():
    x, c = toy.grid_mixture(10_000, seed=0)
    assert toy.count_modes(x) == 25
    keep = (c == 0) | (c == 12) | (c == 24)
    assert toy.count_modes(x[keep]) == 3
    assert toy.count_modes(x[c == 5]) == 1
    assert toy.count_modes(np.zeros((0, 2))) == 0


def test_far_samples_count_and_map_to_nearest_mean():
    far = [[1e4, 1e4], [1e4, 0.0], [-50.0, 50.0], [50.0, 50.0], [-1e4, -3e3], [0.9, -1.1]]
    logr = toy.log_responsibilities(far)
    assert logr.shape == (6, 25) and logr.dtype == torch.float64
    assert torch.isfinite(logr).all()
    # normalised in log space
    assert torch.allclose(torch.logsumexp(logr, 1), torch.zeros(6, dtype=torch.float64), atol=1e-9)
    k = toy.assign_modes(far)
    assert k.dtype == torch.int64
    assert k.tolist() == [24, 22, 4, 24, 0, 11]  # (4,4), (4,0), (-4,4), (4,4), (-4,-4), (0,-2)
    # nearest mean, checked independently
    d = torch.cdist(torch.tensor(far, dtype=torch.float64), toy.MEANS.double())
    assert torch.equal(k, d.argmin(1))
    # far samples count for the thesis's metric
    assert toy.count_modes(far) == 5


def test_responsibilities_match_direct_formula_near_the_modes():
    x, _ = toy.grid_mixture(200, seed=1)
    x = x.double() + 0.3 * torch.randn(
        200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    logn = -((x[:, None, :] - toy.MEANS.double()[None]) ** 2).sum(-1) / (2 * toy.STD**2)
    logn = logn - math.log(2 * math.pi * toy.STD**2) + math.log(1 / 25)
    ref = logn - torch.logsumexp(logn, 1, keepdim=True)
    got = toy.log_responsibilities(x)
    # compare where the responsibility is not astronomically small (relative precision of log r)
    mask = ref > -200
    assert torch.allclose(got[mask], ref[mask], atol=1e-6)


def test_non_finite_input_is_rejected_with_the_count():
    x, _ = toy.grid_mixture(100)
    x = x.clone()
    x[3, 0] = float("nan")
    x[10, 1] = float("inf")
    x[11] = float("nan")
    for f in (toy.count_modes, toy.assign_modes, toy.log_responsibilities, toy.high_quality_fraction):
        with pytest.raises(ValueError, match="3 non-finite"):
            f(x)


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.zeros(10), np.zeros((2, 2, 2)), "abc"])
def test_wrong_shape_is_rejected(bad):
    with pytest.raises(ValueError):
        toy.count_modes(bad)


# ------------------------------------------------------------------------------------ quality metrics
def test_high_quality_fraction_of_the_mixture(big):
    x, _ = big
    p = 1 - math.exp(-4.5)  # chi2 with 2 dof, radius <= 3 sigma: 0.98889
    se = math.sqrt(p * (1 - p) / N_BIG)  # ~3.3e-4
    assert abs(toy.high_quality_fraction(x) - p) < 5 * se
    assert toy.modes_with_quality(x) == 25
    p1 = 1 - math.exp(-0.5)  # within 1 sigma: 0.3935, se ~1.5e-3
    assert abs(toy.high_quality_fraction(x, n_std=1.0) - p1) < 5 * math.sqrt(p1 * (1 - p1) / N_BIG)


def test_high_quality_fraction_of_uniform_noise():
    g = torch.Generator().manual_seed(0)
    u = torch.rand(N_BIG, 2, generator=g) * 10 - 5
    p = 25 * math.pi * 0.15**2 / 100  # 0.01767: 25 discs of radius 3 sigma in [-5, 5]^2
    se = math.sqrt(p * (1 - p) / N_BIG)  # ~4.2e-4
    assert abs(toy.high_quality_fraction(u) - p) < 5 * se
    assert toy.count_modes(u) == 25


def test_modes_with_quality_ignores_far_samples():
    x, c = toy.grid_mixture(1000, seed=2)
    x = x[c == 7]
    far = torch.tensor([[1e4, 1e4], [50.0, 50.0], [1.0, 1.0]])  # (1,1): sqrt(2)/0.05 ~ 28 std from 4 modes
    both = torch.cat([x, far])
    assert toy.count_modes(both) == 3  # mode 7, (4,4) and one of the 4 modes around (1,1)
    assert toy.modes_with_quality(both) == 1
    assert toy.high_quality_fraction(far) == 0.0


def test_reconstruction_error_and_mode_agreement():
    x, c = toy.grid_mixture(5000, seed=4)
    assert toy.reconstruction_error(x, x) == 0.0
    assert toy.mode_agreement(x, x) == 1.0
    shifted = x + torch.tensor([0.3, -0.4])
    assert toy.reconstruction_error(x, shifted) == pytest.approx(0.25, rel=1e-5)
    perm = x[torch.randperm(5000, generator=torch.Generator().manual_seed(0))]
    # a random permutation agrees with probability sum_k pi_k^2 = 1/25
    assert toy.mode_agreement(x, perm) < 0.2
    with pytest.raises(ValueError, match="same number"):
        toy.mode_agreement(x, x[:10])
    with pytest.raises(ValueError):
        toy.reconstruction_error(np.zeros((0, 2)), np.zeros((0, 2)))


# ------------------------------------------------------------------------------------------- MMD
def _normal(n, seed, shift=0.0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) + shift


def test_mmd_matches_brute_force():
    a, b = _normal(300, 0).double(), _normal(200, 1, 0.3).double()
    h = 1.3
    res = toy.two_sample_statistic(a, b, bandwidth=h, block_entries=1000)
    k = lambda u, v: torch.exp(-(torch.cdist(u, v) ** 2) / (2 * h**2))  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    m, n = 300, 200
    ref = (
        (kaa.sum() - kaa.trace()) / (m * (m - 1)) + (kbb.sum() - kbb.trace()) / (n * (n - 1)) - 2 * kab.mean()
    )
    assert res.mmd2 == pytest.approx(float(ref), abs=1e-7)
    assert res.bandwidth == h and res.p_value is None
    exact = toy.two_sample_statistic(a, b, bandwidth=h, dtype=torch.float64)
    assert exact.mmd2 == pytest.approx(float(ref), abs=1e-12)


def test_mmd_median_heuristic():
    a, b = _normal(400, 0), _normal(400, 1)
    res = toy.two_sample_statistic(a, b)
    pool = torch.cat([a, b]).double()
    d = torch.cdist(pool, pool)
    iu = torch.triu_indices(800, 800, 1)
    assert res.bandwidth == pytest.approx(float(d[iu[0], iu[1]].median()))
    # for N(0, I) in 2-D the distance between two points is Rayleigh(sqrt 2): median 2 sqrt(ln 2) ~ 1.665
    assert res.bandwidth == pytest.approx(2 * math.sqrt(math.log(2)), rel=0.05)


def test_mmd_separates_same_from_shifted():
    a, b, c = _normal(1000, 0), _normal(1000, 1), _normal(1000, 2, shift=0.5)
    same = toy.two_sample_statistic(a, b, n_permutations=200, seed=0)
    diff = toy.two_sample_statistic(a, c, n_permutations=200, seed=0)
    assert abs(same.mmd2) < 5e-3
    assert same.p_value > 0.01
    assert diff.mmd2 > 0.02 and diff.mmd2 > 10 * abs(same.mmd2)
    assert diff.p_value == pytest.approx(1 / 201)  # no permutation reaches it
    # deterministic for a seed
    again = toy.two_sample_statistic(a, b, n_permutations=200, seed=0)
    assert again == same


def test_mmd_translation_invariant_and_input_checks():
    a, b = _normal(500, 0), _normal(500, 1, 0.2)
    r0 = toy.two_sample_statistic(a, b)
    r1 = toy.two_sample_statistic(a + 1000.0, b + 1000.0)
    assert r1.mmd2 == pytest.approx(r0.mmd2, abs=1e-6)
    with pytest.raises(ValueError, match="dimension"):
        toy.two_sample_statistic(a, torch.zeros(10, 3))
    with pytest.raises(ValueError, match="at least 2"):
        toy.two_sample_statistic(a, b[:1])
    with pytest.raises(ValueError, match="non-finite"):
        toy.two_sample_statistic(a, torch.full((10, 2), float("nan")))
    with pytest.raises(ValueError, match="bandwidth"):
        toy.two_sample_statistic(a, b, bandwidth=0.0)


# -------------------------------------------------------------------------------------- numpy / tensor
def test_numpy_and_tensor_inputs_agree():
    x, _ = toy.grid_mixture(3000, seed=5)
    xr = x + 0.1 * torch.randn(3000, 2, generator=torch.Generator().manual_seed(5))
    xn, xrn = x.numpy(), xr.numpy()
    assert toy.count_modes(x) == toy.count_modes(xn) == toy.count_modes(xn.tolist())
    assert torch.equal(toy.assign_modes(x), toy.assign_modes(xn))
    assert torch.equal(toy.log_responsibilities(x), toy.log_responsibilities(xn))
    assert toy.high_quality_fraction(x) == toy.high_quality_fraction(xn)
    assert toy.modes_with_quality(x) == toy.modes_with_quality(xn)
    assert toy.reconstruction_error(x, xr) == toy.reconstruction_error(xn, xrn)
    assert toy.mode_agreement(x, xr) == toy.mode_agreement(xn, xrn)
    a, b = _normal(300, 0), _normal(300, 1)
    assert toy.two_sample_statistic(a, b) == toy.two_sample_statistic(a.numpy(), b.numpy())
    assert toy.toy_metrics(x, x, xr, a, b) == toy.toy_metrics(xn, xn, xrn, a.numpy(), b.numpy())
    # gradients are ignored
    assert toy.count_modes(x.clone().requires_grad_(True)) == toy.count_modes(x)


# ------------------------------------------------------------------------------------------- summary
def test_toy_metrics_keys_and_types():
    x, c = toy.grid_mixture(2000, seed=6)
    only = toy.toy_metrics(x)
    assert set(only) == {"modes", "high_quality", "modes_high_quality"}
    assert only["modes"] == 25 and isinstance(only["modes"], int)
    assert isinstance(only["high_quality"], float)
    full = toy.toy_metrics(x, x_data=x, x_rec=x, z_data=_normal(200, 0), z_prior=_normal(200, 1))
    assert set(full) == {
        "modes",
        "high_quality",
        "modes_high_quality",
        "recon_mse",
        "recon_same_mode",
        "qz_pz_mmd",
    }
    assert full["recon_mse"] == 0.0 and full["recon_same_mode"] == 1.0
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in full.values())
    recon = toy.toy_metrics(x_data=x, x_rec=x)
    assert set(recon) == {"recon_mse", "recon_same_mode"}
    withp = toy.toy_metrics(z_data=_normal(200, 0), z_prior=_normal(200, 1), mmd_permutations=50)
    assert set(withp) == {"qz_pz_mmd", "qz_pz_mmd_p"}
    with pytest.raises(ValueError, match="both"):
        toy.toy_metrics(x, x_data=x)
    with pytest.raises(ValueError, match="both"):
        toy.toy_metrics(x, z_prior=x)


# -------------------------------------------------------------------------------------------- figure
def test_plot_toy_panels_writes_png(tmp_path):
    x, c = toy.grid_mixture(1000, seed=0)
    z = _normal(1000, 1)
    full = {"x": x, "qz": z, "x_rec": x + 0.05, "pz": _normal(1000, 2), "x_samples": x.numpy()}
    bad = dict(full, x_samples=torch.full((10, 2), float("nan")), mode=c)
    panels = {
        "ALI": full,
        "GAN + inverse mapping": dict(full, mode=c.numpy()),
        "GAN + post-hoc": bad,
        "VAE": {"x": x, "x_samples": x},  # missing rows are left empty
    }
    out = toy.plot_toy_panels(panels, tmp_path / "sub" / "fig58.png")
    assert out == tmp_path / "sub" / "fig58.png"
    data = out.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    one = toy.plot_toy_panels({"only": full}, str(tmp_path / "one.png"))
    assert one.stat().st_size > 0
    with pytest.raises(ValueError, match="aligned"):
        toy.plot_toy_panels({"m": dict(full, qz=z[:10])}, tmp_path / "x.png")
