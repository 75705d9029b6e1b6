"""Issue 11, section 2: the β_eff estimator with its uncertainty, and closed-loop calibration.

- The maximum-pseudo-likelihood estimate on samples drawn *exactly* at a known β (exact
  RBM sampler, enumeration of small Ising models) is within a stated tolerance of β, its
  per-read sandwich standard error matches a bootstrap over reads and the empirical
  spread over seeds, and it agrees with Ocean's ``maximum_pseudolikelihood_temperature``.
- An infinite estimate (every read a local minimum) is a warning and ``None``, not ``inf``.
- ``calibrate`` finds the prefactor of a device with a hidden β, of a device whose β
  depends on the programmed scale, and says so when the target is out of range.
"""

from __future__ import annotations

import math
import warnings

import dimod
import numpy as np
import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler
from dwave.system.testing import MockDWaveSampler

from physamp.models.rbm import RBM
from physamp.samplers.dimod_io import (
    NotBoltzmannWarning,
    estimate_beta,
    fit_beta,
    fit_beta_sampleset,
    flip_energies,
)
from physamp.samplers.dwave import DWaveBackend
from physamp.samplers.exact import ExactSampler
from physamp.samplers.temperature import calibrate
from physamp.topology import chimera_rbm

# the mock warns that auto_scale is "not mocked"; SA warns about the QPU-only kwargs it ignores
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --- exact samples at a known beta --------------------------------------------------------
def small_rbm(nv=6, nh=4, seed=0, scale=1.0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(nv, nh, init_std=scale, dtype=torch.float64, generator=g)
    with torch.no_grad():
        rbm.b.copy_(scale * torch.randn(nv, generator=g, dtype=torch.float64))
        rbm.c.copy_(scale * torch.randn(nh, generator=g, dtype=torch.float64))
    return rbm


def exact_rbm_spins(rbm, beta, n, seed):
    """``(bqm, labels, spins)``: n exact samples of ``rbm`` at ``beta`` as ±1 spins of its BQM."""
    from physamp.ising import rbm_to_bqm

    bqm = rbm_to_bqm(rbm)
    s = ExactSampler(seed=seed).sample(rbm, n, beta=beta)
    return bqm, list(bqm.variables), 2.0 * torch.cat([s.v, s.h], 1).numpy() - 1.0


def frustrated_ising(n=9, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    h = {i: scale * rng.normal() for i in range(n)}
    J = {(i, j): scale * rng.normal() for i in range(n) for j in range(i + 1, n) if rng.random() < 0.4}
    return dimod.BQM.from_ising(h, J)


def exact_ising_spins(bqm, beta, n, seed):
    """n exact samples of ``exp(-beta E)`` by enumeration, columns in ``bqm.variables`` order."""
    labels = list(bqm.variables)
    k = len(labels)
    states = 1.0 - 2.0 * ((np.arange(2**k)[:, None] >> np.arange(k)) & 1)
    logp = -beta * bqm.energies((states, labels))
    p = np.exp(logp - logp.max())
    return labels, states[np.random.default_rng(seed).choice(p.size, size=n, p=p / p.sum())]


TOL_SIGMAS = 3.5  # stated tolerance: |beta_hat - beta| <= 3.5 sandwich std, and within 10 %


@pytest.mark.parametrize("beta", [0.3, 1.0, 3.0])
def test_estimate_is_within_tolerance_on_exact_samples(beta):
    for seed, (nv, nh, scale) in enumerate([(6, 4, 1.0), (8, 6, 0.5), (5, 5, 2.0)]):
        rbm = small_rbm(nv, nh, seed=seed, scale=scale)
        bqm, labels, spins = exact_rbm_spins(rbm, beta, 2000, seed=100 + seed)
        fit = fit_beta(flip_energies(bqm, spins, labels))
        assert fit.reason is None and fit.std > 0
        assert abs(fit.beta - beta) <= TOL_SIGMAS * fit.std, (beta, nv, nh, scale, str(fit))
        assert abs(fit.beta / beta - 1) < 0.1
        assert fit.num_reads == 2000 and fit.num_spins == nv + nh
        # the old API gives the same number
        assert estimate_beta(flip_energies(bqm, spins, labels)) == (pytest.approx(fit.beta, rel=1e-12), None)
    bqm = frustrated_ising(9, seed=3)
    labels, spins = exact_ising_spins(bqm, beta, 2000, seed=7)
    fit = fit_beta(flip_energies(bqm, spins, labels))
    assert abs(fit.beta - beta) <= TOL_SIGMAS * fit.std and abs(fit.beta / beta - 1) < 0.1, str(fit)


def test_sandwich_std_matches_the_bootstrap_and_the_spread_over_seeds():
    """Stated tolerances: the sandwich std within 20 % of a 300-replicate bootstrap over reads, and the
    mean sandwich std within 25 % of the std of 60 independent estimates (whose own relative sampling
    error is about 1/sqrt(2 * 59) = 9 %); the 95 % intervals cover the truth in 50 to 60 of the 60."""
    rbm = small_rbm(6, 4, seed=0)
    beta, n = 1.0, 400
    bqm, labels, spins = exact_rbm_spins(rbm, beta, n, seed=0)
    fit = fit_beta(flip_energies(bqm, spins, labels), num_bootstrap=300, seed=1)
    assert fit.bootstrap_std == pytest.approx(fit.std, rel=0.2), str(fit)
    lo, hi = fit.bootstrap_ci
    assert lo < fit.beta < hi and hi - lo == pytest.approx(fit.ci[1] - fit.ci[0], rel=0.3)
    fits = []
    for seed in range(60):
        bqm, labels, spins = exact_rbm_spins(rbm, beta, n, seed=1000 + seed)
        fits.append(fit_beta(flip_energies(bqm, spins, labels)))
    est = np.array([f.beta for f in fits])
    spread = est.std(ddof=1)
    assert np.mean([f.std for f in fits]) == pytest.approx(spread, rel=0.25)
    covered = sum(f.ci[0] <= beta <= f.ci[1] for f in fits)
    assert 50 <= covered <= 60, covered
    assert abs(est.mean() - beta) < 3 * spread / math.sqrt(len(est))  # no bias beyond its noise


def test_the_std_is_over_reads_not_spins():
    """Two copies of a model whose spins are copied read by read: the estimate and its per-read
    std are those of one copy (the copy adds no information), while the naive std that treats every
    spin as independent shrinks by sqrt(2). An estimator that resampled spins would be fooled."""
    rbm = small_rbm(6, 4, seed=2)
    bqm, labels, spins = exact_rbm_spins(rbm, 1.0, 500, seed=3)
    flips = flip_energies(bqm, spins, labels)
    one, two = fit_beta(flips), fit_beta(np.concatenate([flips, flips], axis=1))
    assert two.beta == pytest.approx(one.beta, rel=1e-12)
    assert two.std == pytest.approx(one.std, rel=1e-10)
    assert two.naive_std == pytest.approx(one.naive_std / math.sqrt(2), rel=1e-10)


def test_agrees_with_oceans_maximum_pseudolikelihood_temperature():
    from dwave.system.temperatures import maximum_pseudolikelihood_temperature

    for beta in (0.3, 1.0, 3.0):
        bqm = frustrated_ising(10, seed=int(10 * beta))
        labels, spins = exact_ising_spins(bqm, beta, 500, seed=1)
        # an aggregated sampleset whose variables are in another order: weights and columns count
        order = labels[::-1]
        ss = dimod.SampleSet.from_samples((spins[:, ::-1], order), "SPIN", energy=0.0).aggregate()
        assert len(ss) < 500 and list(ss.variables) != labels
        ours = fit_beta_sampleset(bqm, ss)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            T, _ = maximum_pseudolikelihood_temperature(bqm, ss)
        assert ours.beta == pytest.approx(1.0 / T, rel=1e-9)
        # aggregated and raw give the same estimate and the same std (weights = repeated reads)
        raw = fit_beta(flip_energies(bqm, spins, labels))
        assert ours.beta == pytest.approx(raw.beta, rel=1e-12) and ours.std == pytest.approx(
            raw.std, rel=1e-9
        )


def test_fit_beta_edge_cases_and_bad_options():
    only_minima = np.array([[1.0, 2.0], [0.5, 3.0]])
    fit = fit_beta(only_minima)
    assert fit.beta is None and fit.infinite and fit.std is None and "local minimum" in fit.reason
    assert "none" in str(fit)
    zero = fit_beta(np.zeros((4, 3)))
    assert zero.beta is None and not zero.infinite and "flip energy is zero" in zero.reason
    one_read = fit_beta(np.array([[-1.0, 1.0, 1.0, 1.0]]))
    assert one_read.beta == pytest.approx(math.log(3.0)) and one_read.std is None  # one read: no spread
    with pytest.raises(ValueError, match="num_bootstrap must be 0"):
        fit_beta(only_minima, num_bootstrap=1)
    with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\)"):
        fit_beta(only_minima, confidence=95)
    with pytest.raises(ValueError, match="one finite, non-negative number per sample"):
        fit_beta(only_minima, weights=[1.0])


# --- the dwave backend's info --------------------------------------------------------------
def device(beta: float, shape=(1, 1, 4), sweeps: int = 100, cls=MockDWaveSampler, **kwargs):
    """A MockDWaveSampler that samples exp(-beta * E_programmed): SA held at a fixed beta (Gibbs)."""
    return cls(
        topology_type="chimera",
        topology_shape=list(shape),
        substitute_sampler=SimulatedAnnealingSampler(),
        substitute_kwargs=dict(
            beta_range=[beta, beta],
            num_sweeps=sweeps,
            beta_schedule_type="linear",
            proposal_acceptance_criteria="Gibbs",
            randomize_order=True,
        ),
        **kwargs,
    )


class CountingDevice(MockDWaveSampler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: list[int] = []

    def sample(self, bqm, **kwargs):
        self.reads.append(kwargs.get("num_reads"))
        return super().sample(bqm, **kwargs)


class ScaleDependentDevice(CountingDevice):
    """A device whose beta_eff falls with the programmed scale: beta0 * (max|J| / 0.25) ** -0.5, so that
    beta_model = prefactor * beta_eff grows only as sqrt(prefactor) (a fixed-point step halves the error)."""

    def __init__(self, beta0: float, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta0 = beta0

    def beta_at(self, bqm) -> float:
        scale = max(abs(v) for v in bqm.quadratic.values())
        return self.beta0 * (scale / 0.25) ** -0.5

    def sample(self, bqm, **kwargs):
        b = self.beta_at(bqm)
        self.substitute_kwargs = dict(self.substitute_kwargs, beta_range=[b, b])
        return super().sample(bqm, **kwargs)


def cell_rbm(seed=0, scale=1.0) -> RBM:
    return small_rbm(4, 4, seed=seed, scale=scale)


def test_info_reports_beta_eff_with_its_uncertainty():
    backend = DWaveBackend(device(1.0), topology=chimera_rbm(1), prefactor=0.5, seed=0)
    s = backend.sample(cell_rbm(), 3000)
    b, std = s.info["beta_eff"], s.info["beta_eff_std"]
    assert s.info["beta_eff_source"] == "pseudolikelihood" and not s.info["beta_eff_infinite"]
    assert 0 < std < 0.05 and abs(b - 1.0) <= TOL_SIGMAS * std
    lo, hi = s.info["beta_eff_ci"]
    assert (lo + hi) / 2 == pytest.approx(b) and (hi - lo) / 2 == pytest.approx(1.959964 * std, rel=1e-5)
    assert s.info["beta_model"] == pytest.approx(0.5 * b) and s.info["beta_model_std"] == pytest.approx(
        0.5 * std
    )
    off = backend.sample(cell_rbm(), 50, estimate_temperature=False)
    assert off.info["beta_eff"] is None and off.info["beta_eff_std"] is None


def test_an_infinite_beta_eff_is_a_warning_and_none():
    rbm = cell_rbm(seed=1)
    with pytest.warns(NotBoltzmannWarning):
        backend = DWaveBackend(MockDWaveSampler(topology_type="chimera", topology_shape=[1, 1, 4]),
                               topology=chimera_rbm(1), seed=0)  # fmt: skip
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        s = backend.sample(rbm, 200)
    msgs = [str(w.message) for w in record if issubclass(w.category, NotBoltzmannWarning)]
    assert any("beta_eff is infinite" in m and "info['beta_eff'] is None" in m for m in msgs), msgs
    assert s.info["beta_eff"] is None and s.info["beta_model"] is None and s.info["beta_eff_infinite"]
    assert "local minimum" in s.info["beta_eff_error"] and s.info["beta_eff_std"] is None
    # a believed beta_eff is kept (and said to be assumed), never replaced by inf
    backend.beta_eff = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = backend.sample(rbm, 200)
    assert (
        s.info["beta_eff"] == 2.0 and s.info["beta_eff_source"] == "assumed" and s.info["beta_eff_infinite"]
    )


# --- calibrate -----------------------------------------------------------------------------
def test_calibrate_finds_the_prefactor_of_a_device_with_a_hidden_beta():
    hidden = 2.5
    sampler = device(hidden, cls=CountingDevice)
    backend = DWaveBackend(sampler, topology=chimera_rbm(1), seed=0)
    result = calibrate(backend, cell_rbm(), target_beta=1.0, num_samples=3000, rtol=0.05)
    print(result)
    assert result.converged and result.reason is None and result.iterations <= 4
    # the truth, not only the estimate: the device's hidden beta times the prefactor
    true_model = hidden * result.prefactor
    rel_err = result.beta_eff_std / result.beta_eff
    assert abs(true_model - 1.0) <= 0.05 + TOL_SIGMAS * rel_err, (true_model, str(result))
    assert result.prefactor == pytest.approx(0.4, rel=0.1)
    assert abs(result.beta_model - 1.0) <= 0.05
    assert backend.prefactor == result.prefactor and backend.beta_eff == result.beta_eff and result.applied
    # the reads are counted, every call went through sample(): one info with timing per call
    assert sampler.reads == [3000] * result.iterations and result.num_reads == 3000 * result.iterations
    assert len(result.infos) == result.iterations and all("qpu_timing" in i for i in result.infos)
    assert result.qpu_access_time_us == pytest.approx(
        sum(i["qpu_timing_total"]["qpu_access_time"] for i in result.infos)
    )
    assert result.history[0].prefactor == 1.0 and result.history[-1].prefactor == result.prefactor
    text = str(result)
    assert "converged in" in text and "prefactor" in text and len(text.splitlines()) == 6 + result.iterations
    assert result.to_dict()["iterations"] == result.iterations
    # apply=False leaves the backend alone
    fresh = DWaveBackend(device(hidden), topology=chimera_rbm(1), seed=1)
    calibrate(fresh, cell_rbm(), num_samples=500, max_iter=2, apply=False)
    assert fresh.prefactor is None and fresh.beta_eff is None


def test_calibrate_converges_on_a_device_whose_beta_depends_on_the_scale():
    sampler = ScaleDependentDevice(3.0, topology_type="chimera", topology_shape=[1, 1, 4],
                                   substitute_sampler=SimulatedAnnealingSampler(),
                                   substitute_kwargs=device(1.0).substitute_kwargs)  # fmt: skip
    rbm = cell_rbm(seed=2)
    backend = DWaveBackend(sampler, topology=chimera_rbm(1), seed=0)
    result = calibrate(backend, rbm, target_beta=1.0, num_samples=3000, rtol=0.05, max_iter=6)
    print(result)
    assert result.converged and result.iterations <= 4  # a fixed-point iteration alone needs 5
    # beta_eff moved with the prefactor: the secant step followed it
    betas = [s.beta_eff for s in result.history]
    assert betas[-1] > 1.3 * betas[0]
    scale = backend.dry_run(rbm, 10, prefactor=result.prefactor).max_abs_J  # what is programmed there
    true_model = result.prefactor * 3.0 * (scale / 0.25) ** -0.5
    assert abs(true_model - 1.0) <= 0.05 + TOL_SIGMAS * result.beta_eff_std / result.beta_eff, str(result)


def test_calibrate_reports_a_target_beyond_the_range():
    rbm = cell_rbm(seed=3, scale=3.0)  # large weights: the j_range binds at a small prefactor
    backend = DWaveBackend(device(0.5), topology=chimera_rbm(1), seed=0)
    result = calibrate(backend, rbm, target_beta=1.0, num_samples=1000)
    print(result)
    assert not result.converged and result.iterations == 1  # started at the maximum: one check
    assert result.prefactor == result.max_prefactor < 1.0
    assert "needs a prefactor above" in result.reason and "max_prefactor" in result.reason
    assert result.beta_model < 0.5  # at most 0.5 * max_prefactor: far below the target
    assert backend.prefactor == result.max_prefactor  # the best there is, applied
    # the maximum is the one a dry run reports, and it is accepted by sample
    assert result.max_prefactor == backend.dry_run(rbm, 1000, prefactor=0.01).max_prefactor


def test_calibrate_on_an_optimiser_stops_with_the_reason():
    with pytest.warns(NotBoltzmannWarning):
        backend = DWaveBackend(MockDWaveSampler(topology_type="chimera", topology_shape=[1, 1, 4]),
                               topology=chimera_rbm(1), seed=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = calibrate(backend, cell_rbm(), num_samples=100, max_iter=3)
    assert not result.converged and not result.applied and backend.prefactor is None
    assert [s.prefactor for s in result.history] == [1.0, 1 / 8, 1 / 64]
    assert "every read was a local minimum" in result.reason and result.beta_eff is None


def test_calibrate_refuses_bad_input_before_any_read():
    with pytest.raises(TypeError, match=r"'exact' backend .* has none.*Backends that calibrate: 'dwave'"):
        calibrate(ExactSampler(), cell_rbm())
    with pytest.raises(TypeError, match="needs a physamp sampler backend"):
        calibrate(MockDWaveSampler(), cell_rbm())
    sampler = device(1.0, cls=CountingDevice)
    backend = DWaveBackend(sampler, topology=chimera_rbm(1))
    bad = [
        (dict(target_beta=0.0), "target_beta must be a positive finite number"),
        (dict(target_beta=float("nan")), "target_beta must be a positive finite number"),
        (dict(rtol=0.0), r"rtol must be a number in \(0, 1\)"),
        (dict(num_samples=1), "num_samples must be an integer >= 2"),
        (dict(max_iter=0), "max_iter must be an integer >= 1"),
        (dict(apply="yes"), "apply must be True or False"),
        (dict(prefactor=-1.0), "prefactor must be a positive finite number"),
        (dict(sample_options={"prefactor": 2.0}), "sample_options may not set"),
        (dict(sample_options={"no_such_option": 1}), "no parameter"),
    ]
    for kwargs, message in bad:
        with pytest.raises((ValueError, TypeError), match=message):
            calibrate(backend, cell_rbm(), **kwargs)
    assert sampler.reads == []  # nothing was sampled


def test_calibrate_on_the_simulated_qpu():
    sq = pytest.importorskip("physamp.samplers.simulated_qpu")
    qpu = sq.SimulatedQPU("chimera", 1, beta=2.5, num_sweeps=100, seed=0)
    backend = DWaveBackend(qpu, topology=chimera_rbm(1), seed=0)
    result = calibrate(backend, cell_rbm(), target_beta=1.0, num_samples=3000)
    print(result)
    assert result.converged and abs(2.5 * result.prefactor - 1.0) <= 0.05 + TOL_SIGMAS * (
        result.beta_eff_std / result.beta_eff
    )


# --- the study -------------------------------------------------------------------------------
def test_beta_estimation_experiment_tiny_preset_end_to_end(tmp_path):
    from physamp.experiments import EXPERIMENTS
    from physamp.experiments.runner import run_experiment

    assert EXPERIMENTS["beta-estimation"] == "physamp.experiments.beta_estimation"
    summary = run_experiment("beta-estimation", "tiny", tmp_path / "out", workers=1, progress=False)
    assert summary["cells"] == 6
    text = (tmp_path / "out" / "beta-estimation.md").read_text()
    assert "**Data:**" in text and "| model | β | reads |" in text and "**Findings**" in text
    assert (tmp_path / "out" / "beta-estimation.png").stat().st_size > 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "cells.csv")))
    assert len(rows) == 6
    for r in rows:
        assert float(r["ocean_max_rel_diff"]) < 1e-9  # Ocean and physamp: one estimator
        assert abs(float(r["rel_bias"])) < 0.1 and 0.6 < float(r["std_ratio"]) < 1.6
    with pytest.raises(ValueError, match="unknown model"):
        run_experiment("beta-estimation", "tiny", tmp_path / "bad", overrides={"models": ["rbm-6"]})
