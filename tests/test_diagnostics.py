"""Samplers that say when they have not mixed (issue 11, section 3).

Two kinds of test:

* the diagnostics themselves, on traces whose answer is known: independent chains have R̂ ≈ 1 and
  an ESS of about chains x draws, chains at different levels have R̂ far above the threshold, an
  AR(1) chain with coefficient ρ has ESS ≈ N (1 - ρ) / (1 + ρ); ArviZ gives the same numbers
  (when installed); degenerate traces give NaN and a reason.
* the samplers, on the 6x5 RBM with weights ~N(0, 6) of tests/test_bernoulli.py (relaxation time
  1,786 sweeps, computed from its exact transition matrix): a short run warns, and ``"auto"``
  sweeps until R̂ is below the threshold, with a TV distance against the exact distribution
  (enumeration) several times smaller than the short run's.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import physamp
from physamp.samplers import diagnostics as dg
from physamp.samplers import make_sampler
from physamp.samplers.diagnostics import ConvergenceWarning
from physamp.samplers.gibbs import GibbsSampler
from physamp.samplers.neal import NealSampler

from conftest import exact_joint, expected_tv, random_rbm, tv_distance


def ar1(seed: int, chains: int, draws: int, rho: float) -> np.ndarray:
    """Stationary AR(1) chains x_t = ρ x_{t-1} + ε_t: integrated autocorrelation time (1 + ρ) / (1 - ρ)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(chains, draws))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


# --- the numbers -------------------------------------------------------------------------------------
def test_normal_quantile_matches_scipy():
    from scipy.special import ndtri

    p = np.concatenate(
        [np.random.default_rng(0).uniform(0, 1, 20_000), [1e-300, 1e-12, 0.02425, 0.5, 1 - 1e-12]]
    )
    assert np.max(np.abs(dg.normal_quantile(p) - ndtri(p)) / np.maximum(1, np.abs(ndtri(p)))) < 2e-9
    assert dg.normal_quantile([0.0, 1.0]).tolist() == [-math.inf, math.inf]
    assert np.isnan(dg.normal_quantile([-0.1, 1.1, math.nan])).all()


def test_independent_chains_have_rhat_one_and_ess_of_all_draws():
    x = np.random.default_rng(1).normal(size=(8, 1000))
    assert abs(dg.rhat(x) - 1) < 0.005  # its noise for 8 x 1000 draws: rhat_noise = 0.0004
    # over 40 seeds ESS / 8,000 was 0.99 ± 0.03 (min 0.93): ±10 %
    assert 0.9 < dg.ess(x) / 8000 < 1.1
    d = dg.diagnose(x)
    assert d.converged is True and d.reason is None and d.chains == 8 and d.draws == 1000


@pytest.mark.parametrize("rho, tol", [(0.5, 0.12), (0.9, 0.2), (-0.5, 0.25)])
def test_ess_of_ar1_chains_is_n_times_one_minus_rho_over_one_plus_rho(rho, tol):
    """Tolerances: 3 standard deviations of ESS / expected over 40 seeds (0.04, 0.06, 0.055)
    plus the bias seen there; an antithetic chain (ρ < 0) is worth more draws than it has."""
    x = ar1(seed=2, chains=8, draws=4000, rho=rho)
    expected = x.size * (1 - rho) / (1 + rho)
    assert dg.ess(x) == pytest.approx(expected, rel=tol)
    assert dg.ess(x, method="mean") == pytest.approx(expected, rel=tol)


def test_chains_at_different_levels_have_rhat_far_above_the_threshold():
    x = np.random.default_rng(3).normal(size=(4, 500)) + np.array([0.0, 0.0, 1.0, 2.0])[:, None]
    assert dg.rhat(x) > 1.3 and dg.rhat(x, "bulk") > 1.3
    d = dg.diagnose(x)
    assert d.converged is False and "> 1.01" in d.reason
    # a trend inside each chain (the first half not yet at the level of the second) is caught by the split
    trend = np.random.default_rng(4).normal(size=(4, 400)) + np.linspace(0, 3, 400)
    assert dg.rhat(trend) > 1.1 and dg.rhat(trend, "split") > 1.1  # measured 1.24
    # chains that agree in location but not in spread: only the folded R̂ sees it
    spread = np.random.default_rng(5).normal(size=(4, 2000)) * np.array([1.0, 1.0, 3.0, 3.0])[:, None]
    assert dg.rhat(spread, "bulk") < 1.01 < 1.1 < dg.rhat(spread, "folded") == dg.rhat(spread)


def test_rank_normalisation_makes_rhat_invariant_to_monotone_transforms():
    x = ar1(seed=6, chains=4, draws=300, rho=0.8) + np.arange(4)[:, None] * 0.3
    for f in (np.exp, lambda y: 3 * y - 7, lambda y: y**3):
        assert dg.rhat(f(x), "bulk") == pytest.approx(dg.rhat(x, "bulk"), rel=1e-12)
        assert dg.ess(f(x)) == pytest.approx(dg.ess(x), rel=1e-12)
    # ties share their mean rank: a discrete trace gives finite, sensible numbers
    counts = np.random.default_rng(7).integers(0, 3, size=(6, 200)).astype(float)
    assert abs(dg.rhat(counts) - 1) < 0.03 and 0.7 < dg.ess(counts) / counts.size < 1.3


def test_leading_dimensions_are_independent_traces():
    x = np.stack([ar1(s, 4, 200, 0.6) + s * np.arange(4)[:, None] for s in range(3)])
    assert np.allclose(dg.rhat(x), [dg.rhat(t) for t in x], rtol=1e-12)
    assert np.allclose(dg.ess(x), [dg.ess(t) for t in x], rtol=1e-12)


def test_degenerate_traces_give_nan_and_a_reason_not_an_exception():
    cases = {
        "constant": (np.full((4, 20), 2.5), "at every draw of every chain"),
        "one chain": (np.random.default_rng(0).normal(size=(1, 50)), "at least 2 chains, got 1"),
        "3 draws": (
            np.random.default_rng(0).normal(size=(5, 3)),
            "3 draws per chain; R̂ and ESS need at least 4",
        ),
        "NaN": (np.array([[0.0, 1.0, math.nan, 2.0, 3.0]] * 3), "NaN or infinite"),
    }
    for name, (x, reason) in cases.items():
        d = dg.diagnose(x)
        assert math.isnan(d.rhat) and d.converged is None and reason in d.reason, name
        assert math.isnan(dg.rhat(x)), name
    assert math.isnan(dg.ess(np.full((4, 20), 2.5))) and dg.ess(cases["one chain"][0]) > 0
    assert dg.diagnose(np.full((4, 20), 2.5)).no_information
    # chains stuck at different values: the between-chain variance is all there is
    stuck = np.repeat(np.arange(4.0)[:, None], 30, axis=1)
    assert dg.rhat(stuck) > 1e6 and dg.diagnose(stuck).converged is False
    with pytest.raises(ValueError, match=r"a trace must be an array \(chains, draws\)"):
        dg.rhat(np.zeros(10))
    with pytest.raises(ValueError, match="method must be 'rank', 'bulk', 'folded' or 'split'"):
        dg.rhat(stuck, method="mean")


def test_rhat_noise_predicts_the_spread_and_guards_against_false_alarms():
    """300 independent traces of 200 chains x 5 draws: R̂ > 1.01 in ~40 % of them, but (nearly) none
    crosses the 'not mixed' line 1 + 4 x rhat_noise."""
    x = np.random.default_rng(8).normal(size=(300, 200, 5))
    bulk = dg.rhat(x, "bulk")
    assert np.std(bulk) == pytest.approx(dg.rhat_noise(200, 5), rel=0.15)  # ±4 % from 300 traces
    assert np.mean(dg.rhat(x) > 1.01) > 0.3
    verdicts = [dg.diagnose(t).converged for t in x[:100]]
    assert verdicts.count(False) <= 1 and verdicts.count(None) > 20
    assert math.isnan(dg.rhat_noise(1, 100)) and math.isnan(dg.rhat_noise(10, 3))


def test_the_same_numbers_as_arviz():
    az = pytest.importorskip("arviz")
    traces = [
        np.random.default_rng(9).normal(size=(4, 1000)),
        ar1(10, 4, 1001, 0.9),
        np.random.default_rng(11).normal(size=(4, 200)) + np.arange(4)[:, None],
        np.random.default_rng(12).integers(0, 3, size=(8, 50)).astype(float),
        np.random.default_rng(13).normal(size=(3, 5)),
        ar1(14, 3, 100, -0.7),
        np.random.default_rng(15).standard_cauchy(size=(6, 301)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in traces:
            assert dg.rhat(x) == pytest.approx(float(az.rhat(x)), rel=1e-8)
            assert dg.rhat(x, "bulk") == pytest.approx(float(az.rhat(x, method="z_scale")), rel=1e-8)
            assert dg.rhat(x, "folded") == pytest.approx(float(az.rhat(x, method="folded")), rel=1e-8)
            assert dg.rhat(x, "split") == pytest.approx(float(az.rhat(x, method="split")), rel=1e-10)
            assert dg.ess(x) == pytest.approx(float(az.ess(x)), rel=1e-8)
            assert dg.ess(x, "mean") == pytest.approx(float(az.ess(x, method="mean")), rel=1e-10)


def test_plan_records_the_last_half_at_most_100_draws_at_least_12_sweeps_apart():
    (c,) = dg.plan_checks(1000)
    assert c.total == 1000 and c.thin == 12 and len(c.points) == 41 and c.points[0] == 520
    assert c.points[-1] == 1000
    (c,) = dg.plan_checks(100_000)
    assert len(c.points) == 100 and c.thin == 500 and c.points[0] > 50_000
    assert dg.plan_checks(95)[0].points == () and dg.plan_checks(96)[0].points == (60, 72, 84, 96)
    auto = dg.plan_checks("auto", max_steps=5000)
    assert [c.total for c in auto] == [400, 800, 1600, 3200, 5000]
    assert all(c.points[0] > c.total // 2 and c.points[-1] == c.total for c in auto)


# --- the samplers on a model where the default is too short --------------------------------------------
@pytest.fixture(scope="module")
def slow_rbm():
    """The 6x5 RBM of tests/test_bernoulli.py (issue 8): numpy default_rng(5), W ~ N(0, 6), b, c ~ N(0, 1).

    Its exact block-Gibbs transition matrix has second eigenvalue 0.99944 (relaxation 1,786 sweeps);
    the energy's integrated autocorrelation time is 592 sweeps.
    """
    rng = np.random.default_rng(5)
    W, b, c = rng.normal(0, 6, (5, 6)), rng.normal(0, 1, 6), rng.normal(0, 1, 5)
    rbm = physamp.RBM(6, 5)
    with torch.no_grad():
        rbm.W.copy_(torch.tensor(W)), rbm.b.copy_(torch.tensor(b)), rbm.c.copy_(torch.tensor(c))
    return rbm


@pytest.fixture(scope="module")
def slow_exact(slow_rbm):
    return exact_joint(slow_rbm.W, slow_rbm.b, slow_rbm.c)


N_CHAINS = 400  # sampling noise alone gives TV ≈ 0.036 (expected_tv)


def test_a_short_run_on_the_slow_model_warns_and_is_far_from_the_distribution(slow_rbm, slow_exact):
    with pytest.warns(
        ConvergenceWarning, match=r"gibbs: the chains have not mixed: split-R̂ .* > 1\.01"
    ) as rec:
        s = make_sampler("gibbs", steps=100, seed=3).sample(slow_rbm, N_CHAINS)
    assert len(rec) == 1 and rec[0].filename == __file__  # the user's line, not the sampler's
    msg = str(rec[0].message)
    assert "sweeps 64-100 of 100" in msg and "steps='auto'" in msg and "steps > 100" in msg
    info = s.info
    assert info["converged"] is False and info["rhat"] > 1.5 and info["ess"] > 0  # measured 2.07
    assert info["convergence"]["draws"] == 4 and info["convergence"]["thin"] == 12
    assert info["convergence"]["statistic"].startswith("energy E(v, h)")
    assert tv_distance(s, slow_exact) > 0.25  # measured 0.38 (exact samples: 0.031 ± 0.013)


def test_auto_sweeps_until_rhat_is_below_the_threshold(slow_rbm, slow_exact):
    """R̂ <= 1.05 here (measured: 25,600 sweeps, 1-4 s); the default 1.01 took 51,200 (the slow test).

    TV of 400 exact samples is itself 0.031 ± 0.013 (200 seeds, largest 0.073): the bound 0.08 is
    above all of them, and the short run's TV is bias (0.36 with any seed).
    """
    short = make_sampler("gibbs", steps=100, seed=3, diagnostics=False).sample(slow_rbm, N_CHAINS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        s = make_sampler("gibbs", steps="auto", rhat_threshold=1.05, seed=3).sample(slow_rbm, N_CHAINS)
    info = s.info
    assert info["converged"] is True and info["rhat"] <= 1.05
    # measured: R̂ 1.89, 1.84, 1.61, 1.33, 1.14, 1.056, 1.014 after 400 ... 25,600 sweeps
    assert 3200 <= info["steps"] <= 51_200
    history = info["convergence"]["history"]
    assert [t for t, _ in history] == [400 * 2**i for i in range(len(history))]
    assert history[-1][0] == info["steps"] and all(r > 1.05 for _, r in history[:-1])
    assert info["convergence"]["capped"] is False
    tv_short, tv_auto = tv_distance(short, slow_exact), tv_distance(s, slow_exact)
    assert tv_auto < 0.08 and tv_auto < tv_short / 4, (tv_short, tv_auto)  # measured 0.38 -> 0.047
    assert expected_tv(slow_exact, N_CHAINS) == pytest.approx(0.036, abs=0.002)


@pytest.mark.slow
def test_auto_with_the_default_threshold_on_the_slow_model(slow_rbm, slow_exact):
    """Measured: R̂ 1.0081 after 51,200 sweeps (1.0138 at 25,600), TV 0.023, 2-6 s; an earlier random
    stream (before the compiled draw) took the cap, 100,000 sweeps (R̂ 1.0082, TV 0.037, no warning)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = make_sampler("gibbs", steps="auto", seed=3).sample(slow_rbm, N_CHAINS)
    capped = [w for w in rec if issubclass(w.category, ConvergenceWarning)]
    assert (s.info["converged"] is True) == (not capped)
    assert s.info["rhat"] < 1.02 and s.info["steps"] >= 25_600 and tv_distance(s, slow_exact) < 0.08


def test_auto_warns_when_it_reaches_max_steps(slow_rbm):
    with pytest.warns(
        ConvergenceWarning, match=r"steps='auto' reached max_steps=1,000 sweeps before the chains mixed"
    ):
        s = make_sampler("gibbs", steps="auto", max_steps=1000, seed=4).sample(slow_rbm, 200)
    assert s.info["steps"] == 1000 and s.info["converged"] is False
    assert s.info["convergence"]["capped"] is True and [t for t, _ in s.info["convergence"]["history"]] == [
        400,
        800,
        1000,
    ]


def test_the_default_gibbs_and_neal_on_the_slow_model_now_warn(slow_rbm, slow_exact):
    """The issue: the defaults (1,000 sweeps) give TV 0.22 (gibbs) and 0.28 (neal) with no warning.
    Measured with 400 chains: TV 0.21 and 0.29, R̂ 1.69 and 1.85, each with a ConvergenceWarning."""
    for name in ("gibbs", "neal"):
        with pytest.warns(ConvergenceWarning, match=f"{name}: the chains have not mixed"):
            s = make_sampler(name, seed=3).sample(slow_rbm, N_CHAINS)
        assert s.info["converged"] is False and s.info["rhat"] > 1.2
        assert tv_distance(s, slow_exact) > 0.12, name


# --- a model that mixes fast: no warning ----------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_rbm():
    return random_rbm(4, 3, seed=11, scale=1.2)  # the model of tests/test_samplers.py


@pytest.mark.parametrize("name", ["gibbs", "neal", "simulated"])
def test_a_fast_mixing_model_is_converged_without_warning(fast_rbm, name):
    """2,000 chains: R̂ of independent draws is then within ~0.003 of 1 even from neal's 10 draws."""
    option = "num_sweeps" if name == "neal" else "steps"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        s = make_sampler(name, seed=5).sample(fast_rbm, 2000)
        auto = make_sampler(name, seed=5, **{option: "auto"}).sample(fast_rbm, 2000)
    for out in (s, auto):
        assert out.info["converged"] is True and out.info["rhat"] < 1.01, out.info
        assert out.info["ess"] > 2000  # 2,000 chains x >= 4 draws, nearly independent
        assert set(out.info["convergence"]) >= {"statistic", "draws", "thin", "threshold", "noise", "window"}
    sweeps = (auto.info["child"] if name == "simulated" else auto.info)[option]
    assert sweeps == 400 if name != "neal" else sweeps <= 1600  # the first check (neal: 4 draws there)


def test_simulated_passes_its_childs_diagnostic_through(slow_rbm):
    with pytest.warns(ConvergenceWarning, match="gibbs: the chains have not mixed"):
        s = make_sampler("simulated", child="gibbs", weight_noise=0.01, steps=100, seed=6).sample(
            slow_rbm, 200
        )
    for key in ("rhat", "ess", "converged", "convergence"):
        assert s.info[key] == s.info["child"][key]
    assert s.info["converged"] is False


# --- what is not computed, and what does not change ---------------------------------------------------------
def test_short_pcd_calls_record_nothing_and_do_not_warn(slow_rbm):
    s = make_sampler("gibbs", steps=15, seed=0, persistent=True)
    n = make_sampler("neal", num_sweeps=15, seed=0, persistent=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for sampler in (s, n):
            for _ in range(2):
                out = sampler.sample(slow_rbm, 50)
                assert (
                    out.info["converged"] is None
                    and math.isnan(out.info["rhat"])
                    and math.isnan(out.info["ess"])
                )
                assert out.info["convergence"]["reason"].startswith("not computed: 15 sweeps")
    off = make_sampler("gibbs", steps=1000, diagnostics=False, seed=0).sample(slow_rbm, 50)
    assert off.info["converged"] is None and "diagnostics=False" in off.info["convergence"]["reason"]
    anneal = make_sampler("neal", num_sweeps=100, schedule="anneal", seed=0).sample(slow_rbm, 20)
    assert anneal.info["converged"] is None and "anneal" in anneal.info["convergence"]["reason"]


def test_recording_does_not_change_the_gibbs_chains(slow_rbm):
    a = make_sampler("gibbs", steps=300, seed=7, diagnostics=False).sample(slow_rbm, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = make_sampler("gibbs", steps=300, seed=7).sample(slow_rbm, 64)
    assert b.info["convergence"]["draws"] == 12
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)


def test_neal_segments_continue_the_same_chains(fast_rbm):
    """In segments (initial_states) the reads are still Boltzmann samples: TV against enumeration."""
    p = exact_joint(fast_rbm.W, fast_rbm.b, fast_rbm.c)
    s = make_sampler("neal", num_sweeps=400, seed=8).sample(fast_rbm, 20_000)
    assert s.info["convergence"]["draws"] == 4  # 20,000 reads: segments >= 41 sweeps apart
    assert tv_distance(s, p) < 2 * expected_tv(p, 20_000)
    # few reads per call: a segment costs more sweeps, so they are spaced further apart (40 + 5,000 / reads)
    few = make_sampler("neal", num_sweeps=1000, seed=8).sample(fast_rbm, 100)
    assert few.info["convergence"]["thin"] == 100 and few.info["convergence"]["draws"] == 5
    short = make_sampler("neal", num_sweeps=700, seed=8).sample(fast_rbm, 100)
    assert short.info["converged"] is None and "90 sweeps apart" in short.info["convergence"]["reason"]
    # the public path (a dimod BQM through SimulatedAnnealingSampler.sample) continues the same segments
    a = make_sampler("neal", num_sweeps=400, seed=9).sample(fast_rbm, 1000)
    b = make_sampler("neal", num_sweeps=400, seed=9, use_bqm=True).sample(fast_rbm, 1000)
    assert a.info["convergence"]["draws"] == 4 and torch.equal(a.v, b.v) and torch.equal(a.h, b.h)
    assert a.info["rhat"] == b.info["rhat"]


def test_steps_auto_and_its_options_are_checked_before_any_work(slow_rbm):
    for bad in ("fast", "AUTO", 0, 2.5, True, None):
        with pytest.raises(
            ValueError, match=r"steps must be a positive integer \(Gibbs sweeps per call\) or 'auto'"
        ):
            GibbsSampler(steps=bad)
        with pytest.raises(ValueError, match=r"num_sweeps must be a positive integer .* or 'auto'"):
            NealSampler(num_sweeps=bad)
    g = GibbsSampler(steps=10, seed=0)
    with pytest.raises(ValueError, match=r"steps must be a positive integer .* got 'many'"):
        g.sample(slow_rbm, 10, steps="many")
    with pytest.raises(ValueError, match=r"steps='auto' compares chains .* needs num_samples >= 2"):
        g.sample(slow_rbm, 1, steps="auto")
    with pytest.raises(ValueError, match="num_sweeps='auto' needs schedule='fixed'"):
        NealSampler(num_sweeps="auto", schedule="anneal")
    for kw, msg in [
        ({"max_steps": 0}, "max_steps must be a positive integer"),
        ({"max_steps": 1e5}, "max_steps must be a positive integer"),
        ({"rhat_threshold": 1.0}, r"rhat_threshold must be a number > 1 \(1.01 is the modern rule"),
        ({"rhat_threshold": "1.05"}, "rhat_threshold must be a number > 1"),
        ({"min_ess": -1}, "min_ess must be None or a finite number >= 0"),
        ({"diagnostics": "yes"}, "diagnostics must be True or False"),
    ]:
        for cls in (GibbsSampler, NealSampler):
            with pytest.raises(ValueError, match=msg):
                cls(**kw)
    assert GibbsSampler().rhat_threshold == NealSampler().rhat_threshold == dg.RHAT_THRESHOLD == 1.01
    assert GibbsSampler().max_steps == NealSampler().max_steps == dg.MAX_STEPS
    # per call, "auto" is accepted (and the trainer's steps_option is unchanged)
    assert GibbsSampler.steps_option == "steps" and NealSampler.steps_option == "num_sweeps"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = g.sample(slow_rbm, 20, steps="auto", beta=0.05)  # β = 0.05: nearly independent units
    assert out.info["steps"] == 400 and out.info["converged"] is True


def test_min_ess_is_required_by_auto(fast_rbm):
    s = make_sampler("gibbs", steps="auto", min_ess=1e9, max_steps=800, seed=9)
    with pytest.warns(ConvergenceWarning, match=r"max_steps=800 .*ESS .* < min_ess 1e\+09"):
        out = s.sample(fast_rbm, 100)
    assert out.info["converged"] is False and out.info["steps"] == 800


def test_auto_keeps_checkpoints_and_persistent_chains(slow_rbm):
    """A persistent 'auto' sampler's state_dict resumes it exactly (chains and random words)."""
    kw = dict(steps="auto", rhat_threshold=1.5, persistent=True)
    a = make_sampler("gibbs", seed=10, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = a.sample(slow_rbm, 100)
        sd = a.state_dict()
        nxt = a.sample(slow_rbm, 100)
        b = make_sampler("gibbs", seed=99, **kw)
        b.load_state_dict(sd)
        again = b.sample(slow_rbm, 100)
    assert first.info["steps"] >= 400 and nxt.info["continued"]
    assert (
        torch.equal(nxt.v, again.v)
        and torch.equal(nxt.h, again.h)
        and nxt.info["steps"] == again.info["steps"]
    )
    assert repr(a).startswith("GibbsSampler(steps='auto'")
