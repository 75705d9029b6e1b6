"""The freeze-out model: the simulated QPU and the simulated device sampling the transverse-field
distribution p_Γ (TV against diagonalisation and against the exact Trotter-M slice marginal), Γ = 0
being the classical engine sample for sample, the spec keys, the refusals, freeze_out's units, and
what the classical β_eff estimator returns on transverse-field reads (the beta-estimation
experiment's Γ axis)."""

import math
import warnings

import dimod
import numpy as np
import pytest
import torch

from physamp.samplers.quantum_exact import transverse_field_log_probs
from physamp.samplers.simulated_qpu import SimulatedQPU, freeze_out, from_spec, spec_options

from conftest import tv, tv_bound, tv_within

READS = 10_000  # the QPU's num_reads_range maximum


# --- exact distributions ---------------------------------------------------------------------------
def diagonal(bqm, variables) -> np.ndarray:
    """The classical energy of every state, bit ``i`` of the index = ``variables[i]`` (+1 for a 1)."""
    n = len(variables)
    spins = 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) - 1
    return bqm.energies((spins, variables))


def p_gamma(E: np.ndarray, gamma: float, beta: float) -> np.ndarray:
    return np.exp(transverse_field_log_probs(torch.as_tensor(E), gamma, beta)[0].numpy())


def p_trotter(E: np.ndarray, gamma: float, beta: float, M: int) -> np.ndarray:
    """The exact M-slice marginal ``⟨s|(e^{−εE} e^{εΓX})^M|s⟩ / Tr`` by dense matrix powers (written
    here, independently of physamp's own ``trotter_log_probs``)."""
    n = int(round(math.log2(E.size)))
    eps = beta / M
    one = np.array(
        [[math.cosh(eps * gamma), math.sinh(eps * gamma)], [math.sinh(eps * gamma), math.cosh(eps * gamma)]]
    )
    X = np.ones((1, 1))
    for _ in range(n):  # e^{εΓ Σσˣ} = ⊗ e^{εΓσˣ}; the kron order does not matter (it is symmetric)
        X = np.kron(one, X)
    P = np.linalg.matrix_power(np.exp(-eps * (E - E.min()))[:, None] * X, M)
    d = np.diag(P)
    return d / d.sum()


def empirical(sampleset, variables) -> np.ndarray:
    """The frequencies of the states (indexed as :func:`diagonal`) in a sampleset."""
    cols = [list(sampleset.variables).index(v) for v in variables]
    bits = (np.asarray(sampleset.record.sample)[:, cols] > 0).astype(np.int64)
    idx = bits @ (1 << np.arange(len(variables)))
    w = sampleset.record.num_occurrences
    return np.bincount(idx, weights=w, minlength=2 ** len(variables)) / w.sum()


def cell_problem(qpu: SimulatedQPU, seed: int = 2) -> dimod.BinaryQuadraticModel:
    """A random problem on a whole Chimera cell, in range (8 qubits, 16 couplers)."""
    rng = np.random.default_rng(seed)
    h = {v: rng.normal(0, 0.5) for v in qpu.nodelist}
    J = {e: float(np.clip(rng.normal(0, 0.5), -0.95, 0.95)) for e in qpu.edgelist}
    return dimod.BinaryQuadraticModel.from_ising(h, J)


# --- the simulated QPU's transverse-field engine ---------------------------------------------------
def test_the_dense_trotter_marginal_tends_to_p_gamma():
    """The reference itself: the Trotter-M marginal falls towards p_Γ about 4x per doubling of M, and
    agrees with physamp's trotter_log_probs where that exists."""
    qpu = SimulatedQPU("chimera", 1, beta=1.5, gamma=1.0, seed=0)
    bqm = cell_problem(qpu)
    E = diagonal(bqm, list(bqm.variables))
    exact = p_gamma(E, 1.0, 1.5)
    errors = [tv(p_trotter(E, 1.0, 1.5, M), exact) for M in (4, 8, 16, 32)]
    print("Trotter error (TV) at M = 4, 8, 16, 32:", [f"{e:.2e}" for e in errors])
    assert all(3.0 < a / b < 5.0 for a, b in zip(errors, errors[1:], strict=False))
    from physamp.samplers import quantum_exact

    if hasattr(quantum_exact, "trotter_log_probs"):
        ours = quantum_exact.trotter_log_probs(torch.as_tensor(E), 1.0, 1.5, 8)[0].exp().numpy()
        np.testing.assert_allclose(ours, p_trotter(E, 1.0, 1.5, 8), rtol=1e-9, atol=1e-14)


def test_quantum_reads_follow_the_trotter_marginal_on_a_chimera_cell():
    """Noise off, 10,000 reads: TV to the exact Trotter-8 marginal within a perfect sampler's 99th
    percentile at the same reads; a Γ 30 % too small or too large, and the classical distribution,
    fail the same bound."""
    beta, gamma, M = 1.5, 1.0, 8
    qpu = SimulatedQPU("chimera", 1, beta=beta, gamma=gamma, trotter=M, num_sweeps=20, seed=1)
    bqm = cell_problem(qpu)
    variables = list(bqm.variables)
    E = diagonal(bqm, variables)
    target = p_trotter(E, gamma, beta, M)
    q = empirical(qpu.sample(bqm, num_reads=READS, auto_scale=False), variables)
    bound = tv_bound(target, READS)
    assert tv_within(q, target, bound, "simulated QPU, Γ = 1, M = 8, vs the Trotter-8 marginal")
    exact = p_gamma(E, gamma, beta)
    print(f"TV to p_Γ itself {tv(q, exact):.4f} (the Trotter-8 error {tv(target, exact):.4f})")
    for wrong, what in (
        (p_trotter(E, 1.3 * gamma, beta, M), "1.3 Γ"),
        (p_trotter(E, 0.7 * gamma, beta, M), "0.7 Γ"),
    ):
        assert tv(q, wrong) > bound, what
    classical = np.exp(-beta * (E - E.min()))
    assert tv(q, classical / classical.sum()) > bound


def test_quantum_reads_follow_p_gamma_itself_at_sixteen_slices():
    """M = 16 (a Trotter error below 2e-3 in TV, far below the noise), with a missing qubit and
    another problem: TV to the exact p_Γ itself within the bound."""
    beta, gamma = 1.0, 0.6
    qpu = SimulatedQPU(
        "chimera", 1, beta=beta, gamma=gamma, trotter=16, num_sweeps=15, missing_qubits=[2], seed=4
    )
    bqm = cell_problem(qpu, seed=5)
    variables = list(bqm.variables)
    E = diagonal(bqm, variables)
    exact = p_gamma(E, gamma, beta)
    trotter_error = tv(p_trotter(E, gamma, beta, 16), exact)
    print(f"Trotter-16 error {trotter_error:.1e}")
    assert trotter_error < 2e-3
    q = empirical(qpu.sample(bqm, num_reads=READS, auto_scale=False, answer_mode="raw"), variables)
    bound = tv_bound(exact, READS)
    assert tv_within(q, exact, bound, "simulated QPU, Γ = 0.6, M = 16, vs p_Γ")
    assert tv(q, p_gamma(E, 1.3 * gamma, beta)) > bound and tv(q, p_gamma(E, 0.7 * gamma, beta)) > bound


def test_quantum_reads_on_pegasus_triangles_with_four_colour_classes():
    """Ten Pegasus qubits, 25 couplers, 20 triangles: a sweep is four colour classes in turn, each
    drawn given the other three; TV to the Trotter-8 marginal within the bound, 1.3 Γ fails it."""
    beta, gamma, M = 1.0, 0.8, 8
    qpu = SimulatedQPU("pegasus", 2, beta=beta, gamma=gamma, trotter=M, num_sweeps=20, seed=3)
    nodes = [2, 3, 28, 29, 30, 31, 12, 13, 8, 9]
    assert len({int(qpu._colour[v]) for v in nodes}) == 4
    rng = np.random.default_rng(4)
    keep = set(nodes)
    h = {v: rng.normal(0, 0.5) for v in nodes}
    J = {(a, b): float(np.clip(rng.normal(0, 0.5), -0.95, 0.95)) for a, b in qpu.edgelist if {a, b} <= keep}
    bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
    assert bqm.num_interactions == 25
    variables = list(bqm.variables)
    E = diagonal(bqm, variables)
    target = p_trotter(E, gamma, beta, M)
    q = empirical(qpu.sample(bqm, num_reads=READS, auto_scale=False), variables)
    bound = tv_bound(target, READS)
    assert tv_within(q, target, bound, "simulated QPU on Pegasus triangles, Γ = 0.8, M = 8")
    assert tv(q, p_trotter(E, 1.3 * gamma, beta, M)) > bound


def test_field_noise_is_one_draw_per_read_shared_by_its_slices():
    """One qubit in a field h with field noise σ: p(↑) is the Trotter marginal averaged over one
    Gaussian offset per read (Gauss-Hermite quadrature), within 3.3 binomial standard errors;
    ignoring the noise fails."""
    beta, gamma, M, h, sigma = 2.0, 0.8, 8, 0.4, 0.8
    qpu = SimulatedQPU("chimera", 1, beta=beta, gamma=gamma, trotter=M, h_noise=sigma, num_sweeps=2, seed=7)
    bqm = dimod.BinaryQuadraticModel.from_ising({0: h}, {})

    def up(field: float) -> float:
        return float(p_trotter(np.array([-field, field]), gamma, beta, M)[1])

    x, w = np.polynomial.hermite_e.hermegauss(60)  # ∫ f(z) φ(z) dz = Σ w f(x) / sqrt(2π)
    averaged = sum(wi * up(h + sigma * xi) for xi, wi in zip(x, w, strict=True)) / math.sqrt(2 * math.pi)
    ss = qpu.sample(bqm, num_reads=READS, auto_scale=False, answer_mode="raw")
    seen = float((ss.record.sample[:, 0] > 0).mean())
    se = math.sqrt(averaged * (1 - averaged) / READS)
    print(f"p(up): {seen:.4f} seen, {averaged:.4f} noise-averaged, {up(h):.4f} without noise (se {se:.4f})")
    assert abs(seen - averaged) < 3.3 * se
    assert abs(seen - up(h)) > 3.3 * se


def test_gamma_zero_is_the_classical_engine_sample_for_sample():
    """gamma=0 (any trotter) is the classical engine: the same reads for the same seeds, with field
    and coupler noise and with replicas, as a device built without the new options."""
    for kwargs in ({}, {"h_noise": 0.1, "j_noise": 0.05}, {"num_replicas": 3}):
        new = SimulatedQPU("pegasus", 2, beta=1.3, gamma=0.0, trotter=8, num_sweeps=15, seed=5, **kwargs)
        old = SimulatedQPU("pegasus", 2, beta=1.3, num_sweeps=15, seed=5, **kwargs)
        bqm = cell_problem(old, seed=3)
        a = new.sample(bqm, num_reads=200, answer_mode="raw", seed=3, auto_scale=False)
        b = old.sample(bqm, num_reads=200, answer_mode="raw", seed=3, auto_scale=False)
        assert np.array_equal(a.record.sample, b.record.sample), kwargs
        c = new.sample(bqm, num_reads=50, answer_mode="raw")  # the device's own stream, too
        d = old.sample(bqm, num_reads=50, answer_mode="raw")
        assert np.array_equal(c.record.sample, d.record.sample), kwargs
        assert a.info["gamma"] == 0.0 and a.info["trotter"] is None
        assert a.info["distribution"].startswith("classical Boltzmann")


def test_info_properties_and_parameters_say_which_distribution():
    qpu = SimulatedQPU("chimera", 1, beta=2.0, gamma=0.4, trotter=12, num_sweeps=3, seed=0)
    assert (qpu.gamma, qpu.trotter) == (0.4, 12)
    assert "gamma=0.4, trotter=12" in repr(qpu)
    ss = qpu.sample(cell_problem(qpu), num_reads=20)
    assert ss.info["gamma"] == 0.4 and ss.info["trotter"] == 12
    assert "transverse-field" in ss.info["distribution"] and "not the classical" in ss.info["distribution"]
    assert qpu.properties["simulated_distribution"] == ss.info["distribution"]
    assert "worldline" in qpu.properties["parameters"]["num_sweeps"]
    assert "1 with gamma > 0" in qpu.properties["parameters"]["num_replicas"]
    assert "timing" in ss.info and "problem_id" in ss.info  # the QPU's keys are all still there


def test_spec_strings_and_dicts_carry_gamma_and_trotter():
    assert spec_options("simulated:pegasus:gamma=0.3:trotter=16") == {
        "topology": "pegasus",
        "gamma": 0.3,
        "trotter": 16,
    }
    q = from_spec("simulated:chimera:1:beta=2:gamma=0.5:trotter=8", seed=1)
    assert (q.family, q.beta, q.gamma, q.trotter, q.seed) == ("chimera", 2.0, 0.5, 8, 1)
    q = from_spec({"name": "simulated", "topology": "chimera", "shape": 1, "gamma": 0.25})
    assert q.gamma == 0.25 and q.trotter == 16
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        from_spec("simulated:chimera:1:gamma=-0.5")
    with pytest.raises(ValueError, match="trotter must be an integer >= 2"):
        from_spec("simulated:chimera:1:gamma=0.5:trotter=1")


def test_bad_gamma_trotter_and_replicas_are_refused_with_one_line():
    for bad in (-0.1, float("nan"), float("inf"), "0.3", True, None):
        with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
            SimulatedQPU("chimera", 1, gamma=bad)
    for bad in (1, 0, 2.5, True, "8"):
        with pytest.raises(ValueError, match="trotter must be an integer >= 2"):
            SimulatedQPU("chimera", 1, gamma=0.5, trotter=bad)
    with pytest.raises(ValueError, match="num_replicas > 1 needs gamma = 0"):
        SimulatedQPU("chimera", 1, gamma=0.5, num_replicas=2)
    qpu = SimulatedQPU("chimera", 1, gamma=0.5, seed=0)
    with pytest.raises(ValueError, match="num_replicas > 1 needs gamma = 0"):
        qpu.sample(cell_problem(qpu), num_replicas=4)
    SimulatedQPU("chimera", 1, gamma=0.0, trotter=2, num_replicas=2)  # classical: replicas are fine


def test_freeze_out_turns_a_schedule_into_beta_and_gamma():
    """β_eff = h·B(s*)/(2 k_B T) per programmed unit and Γ = A(s*)/B(s*): B = 4 GHz at 12 mK is
    β_eff = 8.0 (h·1 GHz/k_B = 0.0479924 K)."""
    beta, gamma = freeze_out(lambda s: 0.1, lambda s: 4.0, 0.5, 0.012)
    assert beta == pytest.approx(0.0479924307 * 4.0 / (2 * 0.012), rel=1e-8)
    assert beta == pytest.approx(8.0, abs=0.01) and gamma == pytest.approx(0.025)
    points_A = [(0.0, 6.0), (0.4, 1.0), (1.0, 0.0)]
    points_B = [(0.0, 0.1), (0.4, 2.1), (1.0, 10.1)]
    beta, gamma = freeze_out(points_A, points_B, 0.2, 0.015)  # linear interpolation: A = 3.5, B = 1.1
    assert gamma == pytest.approx(3.5 / 1.1) and beta == pytest.approx(0.0479924307 * 1.1 / 0.03, rel=1e-8)
    for args, msg in [
        ((points_A, points_B, 1.5, 0.012), "s_star must be a number in"),
        ((points_A, points_B, 0.5, 0.0), "temperature_K must be a positive temperature"),
        ((points_A, [(0.0, 0.0), (1.0, 0.0)], 0.5, 0.012), r"schedule_B\(s_star\) must be > 0 GHz"),
        (([(0.5, 1.0), (1.0, 0.0)], points_B, 0.2, 0.012), "must increase and cover s_star"),
        (("A", points_B, 0.2, 0.012), "schedule_A must be a callable"),
        ((lambda s: -1.0, points_B, 0.2, 0.012), "must be a finite energy >= 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            freeze_out(*args)


# --- the 'dwave' backend on transverse-field reads ---------------------------------------------------
def test_dwave_backend_says_its_beta_eff_assumes_a_classical_distribution():
    from physamp.models.rbm import RBM
    from physamp.samplers.dwave import DWaveBackend
    from physamp.topology import chimera_rbm

    topo = chimera_rbm(1)
    rbm = RBM(4, 4, mask=topo.mask, init_std=0.6, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classical = DWaveBackend(SimulatedQPU("chimera", 1, num_sweeps=20, seed=0), topology=topo, seed=0)
        s0 = classical.sample(rbm, 500)
        quantum = DWaveBackend(
            SimulatedQPU("chimera", 1, gamma=1.0, trotter=8, num_sweeps=20, seed=0), topology=topo, seed=0
        )
        s1 = quantum.sample(rbm, 2000)
    assert s0.info["beta_eff_assumes"] == "classical Boltzmann distribution"
    assert "solver_gamma" not in s0.info
    assert s1.info["beta_eff_assumes"] == "classical Boltzmann distribution"
    assert s1.info["solver_gamma"] == 1.0 and "below" in s1.info["beta_eff_note"]
    assert s1.info["beta_eff"] < 1.0 - 4 * s1.info["beta_eff_std"]  # the device's beta is 1: read as hotter


def test_calibration_on_transverse_field_reads_says_what_it_matched():
    """calibrate steers the estimator's β_model to the target; on a device with gamma > 0 the
    estimator reads it as hotter, so the prefactor comes out above 1 / beta, and the notes say why."""
    from physamp.models.rbm import RBM
    from physamp.samplers.dwave import DWaveBackend
    from physamp.samplers.temperature import calibrate
    from physamp.topology import chimera_rbm

    topo = chimera_rbm(1)
    rbm = RBM(4, 4, mask=topo.mask, init_std=0.6, generator=torch.Generator().manual_seed(1))
    qpu = SimulatedQPU("chimera", 1, beta=2.0, gamma=0.5, trotter=8, num_sweeps=20, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = calibrate(DWaveBackend(qpu, topology=topo, seed=0), rbm, target_beta=1.0, num_samples=2000)
    # classical reads calibrate to 1 / beta = 0.5 within rtol; these to about 0.68 (measured)
    assert result.converged and result.prefactor > 0.6
    assert any("classical estimator" in n and "transverse-field" in n for n in result.notes)


# --- the simulated device with the 'quantum' child ---------------------------------------------------
def _quantum_module():
    try:
        import physamp.samplers.quantum as quantum
    except ImportError:
        pytest.skip("physamp.samplers.quantum (the 'quantum' backend) is not there yet")
    return quantum


def test_simulated_device_with_the_quantum_child_samples_p_gamma():
    """SimulatedDevice(child='quantum', gamma=..., trotter=...) with noise off: the child's options
    pass through, and the samples follow the exact Trotter-M marginal of the RBM by TV (a 30 % wrong
    Γ fails)."""
    _quantum_module()
    from physamp.models.rbm import RBM
    from physamp.samplers.simulated import SimulatedDevice

    g = torch.Generator().manual_seed(3)
    rbm = RBM(3, 2, init_std=0.8, dtype=torch.float64, generator=g)
    with torch.no_grad():
        rbm.b.copy_(0.5 * torch.randn(3, generator=g, dtype=torch.float64))
        rbm.c.copy_(0.5 * torch.randn(2, generator=g, dtype=torch.float64))
    beta, gamma, M, n = 1.0, 0.8, 8, 20_000
    device = SimulatedDevice(child="quantum", gamma=gamma, trotter=M, steps=20, seed=0)
    assert (device.child.gamma, device.child.trotter) == (gamma, M)
    s = device.sample(rbm, n)
    x = torch.cat([s.v, s.h], 1).double().numpy()
    idx = (x > 0.5).astype(np.int64) @ (1 << np.arange(5))  # visible first, bit i = unit i
    q = np.bincount(idx, minlength=32) / n
    states = ((np.arange(32)[:, None] >> np.arange(5)) & 1).astype(np.float64)
    v, h = torch.from_numpy(states[:, :3]), torch.from_numpy(states[:, 3:])
    E = rbm.energy(v, h).detach().numpy()
    target = p_trotter(E, gamma, beta, M)
    bound = tv_bound(target, n)
    assert tv_within(q, target, bound, "SimulatedDevice(child='quantum'), Γ = 0.8, M = 8")
    assert (
        tv(q, p_trotter(E, 1.3 * gamma, beta, M)) > bound
        and tv(q, p_trotter(E, 0.7 * gamma, beta, M)) > bound
    )


# --- the estimator's bias against Γ: the beta-estimation experiment's Γ axis --------------------------
def test_beta_estimation_gamma_axis_tiny(tmp_path):
    """Exact transverse-field samples and the simulated QPU's reads, fitted by the classical
    estimator: at Γ = 0 its infinite-read limit is β itself, at Γ > 0 it is below β and falls with Γ,
    and the mean over repeats agrees within 4 standard errors with that limit (exact samples) or
    with the limit on the exact Trotter-8 marginal the QPU's reads follow (computed here)."""
    import csv

    from physamp.experiments.beta_estimation import PRESETS, cells, make_model
    from physamp.experiments.runner import run_experiment
    from physamp.samplers.dimod_io import estimate_beta, flip_energies

    assert PRESETS["tiny"]["gammas"] == [0.0] and len(cells(PRESETS["tiny"])) == 6  # unchanged
    assert max(PRESETS["quick"]["gammas"]) > 0 and max(PRESETS["full"]["gammas"]) > 0
    overrides = dict(
        models=["ising-8-w1"], betas=[1.0], reads=[400], repeats=6, gammas=[0.0, 0.5, 2.0],
        bootstrap_repeats=1, qpu_models=["chimera-1-w1"], qpu_reads=[400], qpu_repeats=5, trotter=8,
        num_sweeps=20,
    )  # fmt: skip
    run_experiment("beta-estimation", "tiny", tmp_path, workers=1, progress=False, overrides=overrides)
    rows = list(csv.DictReader(open(tmp_path / "cells.csv")))
    assert len(rows) == 6 and {r["source"] for r in rows} == {"exact", "simulated-qpu"}
    text = (tmp_path / "beta-estimation.md").read_text()
    assert "β̂/β against the transverse field Γ" in text and "hotter (β̂ < β)" in text
    bqm, _ = make_model("chimera-1-w1", 0, exact=False)
    labels = list(bqm.variables)
    E = diagonal(bqm, labels)
    states = 2.0 * ((np.arange(E.size)[:, None] >> np.arange(len(labels))) & 1) - 1.0
    flips = flip_energies(bqm, states, labels)
    for source in ("exact", "simulated-qpu"):
        by = {float(r["gamma"]): r for r in rows if r["source"] == source}
        limits = [float(by[g]["limit_ratio"]) for g in (0.0, 0.5, 2.0)]
        assert limits[0] == pytest.approx(1.0, abs=1e-6) and 1.0 > limits[1] > limits[2]
        for g in (0.5, 2.0):
            r = by[g]
            se = float(r["ratio_spread"]) / math.sqrt(int(r["estimates"]))
            target = float(r["limit_ratio"])
            if source == "simulated-qpu":  # the reads follow the Trotter-8 marginal, not p_Γ
                target = estimate_beta(flips, p_trotter(E, g, 1.0, 8))[0]
            print(f"{source}, Γ = {g}: β̂/β {float(r['beta_ratio']):.4f} ± {se:.4f}, limit {target:.4f}")
            assert abs(float(r["beta_ratio"]) - target) < 4 * se
