"""SimulatedQPU: Boltzmann samples at its beta (TV against enumeration), the working graphs, the noise
model, the QPU's ranges and refusals, its timing, Ocean code on it unchanged, and the 'dwave' backend's
offline solver."""

import itertools
import math
import uuid
import warnings

import dimod
import numpy as np
import pytest
import torch

import physamp
from physamp.samplers import SimulatedQPU, make_sampler
from physamp.samplers.simulated_qpu import DEFAULT_SHAPES, OutOfRangeError, from_spec, is_simulated_spec
from physamp.topology import chimera_rbm, intersect_with_solver, make_topology, pegasus_rbm, zephyr_rbm
from physamp.topology.modern_pixels import _sub_lattice

from conftest import tv, tv_bound, tv_within

READS = 10_000  # the QPU's num_reads_range maximum


# --- exact distributions by enumeration -----------------------------------------------------------
def boltzmann(bqm, beta, variables):
    """All ±1 states of ``variables`` (rows) and their Boltzmann probabilities at ``beta``."""
    states = np.array(list(itertools.product([-1, 1], repeat=len(variables))), dtype=np.int8)
    e = bqm.energies((states, variables))
    w = np.exp(-beta * (e - e.min()))
    return states, w / w.sum()


def state_index(values, variables_of_values, variables):
    """Index (as in :func:`boltzmann`) of each row of a ±1 array whose columns are ``variables_of_values``."""
    cols = [list(variables_of_values).index(v) for v in variables]
    bits = (np.asarray(values)[:, cols] > 0).astype(np.int64)
    return bits @ (1 << np.arange(len(variables))[::-1])


def empirical(sampleset, variables, size):
    record = sampleset.record
    idx = state_index(record.sample, sampleset.variables, variables)
    return np.bincount(idx, weights=record.num_occurrences, minlength=size) / record.num_occurrences.sum()


def random_bqm(sampler, seed, h_scale=0.5, j_scale=0.5, nodes=None):
    rng = np.random.default_rng(seed)
    nodes = sampler.nodelist if nodes is None else nodes
    keep = set(nodes)
    h = {v: rng.normal(0, h_scale) for v in nodes}
    J = {(a, b): rng.normal(0, j_scale) for a, b in sampler.edgelist if a in keep and b in keep}
    J = {e: float(np.clip(x, -0.95, 0.95)) for e, x in J.items()}  # within j_range
    return dimod.BinaryQuadraticModel.from_ising(h, J)


# --- the working graphs ---------------------------------------------------------------------------
def test_default_graphs_are_the_ones_physamp_topologies_place_on():
    assert DEFAULT_SHAPES == {"chimera": (14, 14, 4), "pegasus": (9,), "zephyr": (7, 4)}
    for family, topo in (
        ("chimera", chimera_rbm(14)),
        ("pegasus", pegasus_rbm(9)),
        ("zephyr", zephyr_rbm(7)),
    ):
        qpu = SimulatedQPU(family, seed=0)
        assert qpu.properties["topology"] == {"type": family, "shape": list(DEFAULT_SHAPES[family])}
        nodes, edges = set(qpu.nodelist), {frozenset(e) for e in qpu.edgelist}
        assert set(topo.visible) | set(topo.hidden) <= nodes
        rows, cols = torch.nonzero(topo.mask, as_tuple=True)
        assert all(
            frozenset((topo.hidden[j], topo.visible[i])) in edges
            for j, i in zip(rows.tolist(), cols.tolist(), strict=True)
        )
    # the 784 x 784 Pegasus and Zephyr RBMs are cut from exactly these sub-lattices (same labels) ...
    assert _sub_lattice("pegasus", 784, 784).name == "pegasus(9)"
    assert _sub_lattice("zephyr", 784, 784).name == "zephyr(7,4)"
    # ... and the thesis's 784 x 784 Chimera RBM is placed one qubit per unit, without relabelling
    topo = make_topology("chimera", 784, 784)
    rbm = physamp.RBM(784, 784, mask=topo.mask, init_std=0.01, generator=torch.Generator().manual_seed(0))
    report = make_sampler("dwave", sampler=SimulatedQPU("chimera", seed=0), topology=topo).dry_run(rbm, 10)
    assert report.placement == "topology" and report.num_qubits == 1568 and report.num_couplers == 4592


def test_missing_qubits_and_couplers_leave_the_working_graph():
    qpu = SimulatedQPU(
        "chimera", shape=2, missing_qubits=[0, 5], missing_fraction=0.1, missing_couplers=[(8, 12)]
    )
    full = SimulatedQPU("chimera", shape=2)
    assert len(qpu.missing_qubits) == 2 + round(0.1 * 32)
    gone = set(qpu.missing_qubits)
    assert {0, 5} <= gone and not gone & set(qpu.nodelist) and len(qpu.nodelist) == 32 - len(gone)
    assert all(a not in gone and b not in gone for a, b in qpu.edgelist) and (8, 12) not in qpu.edgelist
    expected = [e for e in full.edgelist if not set(e) & gone and e != (8, 12)]
    assert qpu.edgelist == expected
    assert qpu.properties["qubits"] == qpu.nodelist and qpu.properties["couplers"] == [
        list(e) for e in expected
    ]
    assert qpu.properties["num_qubits"] == 32  # labels, working or not, as on the QPU
    assert set(qpu.to_networkx_graph().nodes) == set(qpu.nodelist)
    # physamp's own intersection with a solver's working graph sees the missing qubits
    _, report = intersect_with_solver(chimera_rbm(2), qpu)
    assert {mq.qubit for mq in report.missing_qubits} == gone
    # the random part is a fixed device unless another missing_seed is chosen
    again = SimulatedQPU("chimera", shape=2, missing_qubits=[0, 5], missing_fraction=0.1)
    other = SimulatedQPU("chimera", shape=2, missing_qubits=[0, 5], missing_fraction=0.1, missing_seed=1)
    assert again.missing_qubits == qpu.missing_qubits != other.missing_qubits
    with pytest.raises(ValueError, match=r"missing qubit 99 is not a qubit of the chimera graph"):
        SimulatedQPU("chimera", shape=2, missing_qubits=[99])
    with pytest.raises(ValueError, match=r"missing coupler \(0, 1\) is not a coupler"):
        SimulatedQPU("chimera", shape=2, missing_couplers=[(0, 1)])


def test_problems_off_the_working_graph_are_refused():
    qpu = SimulatedQPU("chimera", shape=1, missing_qubits=[3], seed=0)
    err = dimod.exceptions.BinaryQuadraticModelStructureError
    with pytest.raises(err, match=r"variable 3 of the BQM is not a working qubit"):
        qpu.sample(dimod.BQM.from_ising({3: 1.0}, {}))
    with pytest.raises(err, match=r"variable 'a' of the BQM is not a working qubit.*EmbeddingComposite"):
        qpu.sample(dimod.BQM.from_ising({"a": 1.0}, {}))
    with pytest.raises(err, match=r"interaction \(0, 1\) of the BQM is not a working coupler"):
        qpu.sample(dimod.BQM.from_ising({}, {(0, 1): 1.0}))  # same shore of a cell: no coupler
    with pytest.raises(TypeError, match="needs a dimod.BinaryQuadraticModel"):
        qpu.sample({0: 1.0})
    with pytest.raises(ValueError, match="unknown topology 'chimaera'"):
        SimulatedQPU("chimaera")


# --- Boltzmann samples ----------------------------------------------------------------------------
@pytest.mark.parametrize("missing", [[], [1, 6]], ids=["full-cell", "missing-qubits"])
def test_samples_are_boltzmann_on_a_chimera_cell(missing):
    """TV to the exact distribution at beta within what a perfect sampler with the same reads exceeds
    1 % of the time (tv_bound); a wrong beta is told apart."""
    qpu = SimulatedQPU("chimera", shape=1, beta=1.5, missing_qubits=missing, num_sweeps=100, seed=1)
    bqm = random_bqm(qpu, seed=2)
    variables = list(bqm.variables)
    assert len(variables) == 8 - len(missing)
    ss = qpu.sample(bqm, num_reads=READS, auto_scale=False, answer_mode="raw")
    bound = tv_bound(boltzmann(bqm, 1.5, variables)[1], READS)
    q = empirical(ss, variables, 2 ** len(variables))
    assert tv_within(q, boltzmann(bqm, 1.5, variables)[1], bound, f"chimera cell, missing {missing}")
    assert tv(q, boltzmann(bqm, 1.5 * 1.3, variables)[1]) > bound  # the test can tell a wrong beta


def test_samples_are_boltzmann_on_pegasus_triangles():
    """Ten Pegasus qubits with 25 couplers, 20 triangles and four colour classes."""
    qpu = SimulatedQPU("pegasus", shape=2, beta=1.0, num_sweeps=100, seed=3)
    nodes = [2, 3, 28, 29, 30, 31, 12, 13, 8, 9]
    assert len({int(qpu._colour[v]) for v in nodes}) == 4
    bqm = random_bqm(qpu, seed=4, nodes=nodes)
    assert bqm.num_interactions == 25
    variables = list(bqm.variables)
    p = boltzmann(bqm, 1.0, variables)[1]
    ss = qpu.sample(bqm, num_reads=READS, auto_scale=False)
    q = empirical(ss, variables, p.size)
    assert tv_within(q, p, tv_bound(p, READS), "pegasus triangles")


def test_tempering_mixes_where_plain_gibbs_does_not():
    """J = ±1 on two Chimera cells at beta = 3: single-site Gibbs stays in the wrong basins."""
    qpu = SimulatedQPU("chimera", shape=(1, 2), beta=3.0, seed=0)
    rng = np.random.default_rng(3)
    bqm = dimod.BQM.from_ising(
        {v: rng.uniform(-0.5, 0.5) for v in qpu.nodelist}, {e: rng.choice([-1.0, 1.0]) for e in qpu.edgelist}
    )
    variables = list(bqm.variables)
    states, p = boltzmann(bqm, 3.0, variables)
    e = bqm.energies((states, variables))
    mean, se = (p * e).sum(), math.sqrt((p * e**2).sum() - (p * e).sum() ** 2) / math.sqrt(4000)
    plain = qpu.sample(bqm, num_reads=4000, auto_scale=False, num_sweeps=100, answer_mode="raw")
    tempered = qpu.sample(bqm, num_reads=4000, auto_scale=False, num_sweeps=100, num_replicas=4)
    assert abs(plain.record.energy.mean() - mean) > 50 * se
    z = (np.average(tempered.record.energy, weights=tempered.record.num_occurrences) - mean) / se
    assert abs(z) < 4


def test_binary_problems_come_back_binary_with_their_energies():
    qpu = SimulatedQPU("chimera", shape=1, num_sweeps=50, seed=5)
    spin = random_bqm(qpu, seed=6)
    binary = spin.change_vartype(dimod.BINARY, inplace=False)
    a = qpu.sample(spin, num_reads=200, answer_mode="raw", seed=7, auto_scale=False)
    b = qpu.sample(binary, num_reads=200, answer_mode="raw", seed=7, auto_scale=False)
    assert b.vartype is dimod.BINARY and set(np.unique(b.record.sample)) <= {0, 1}
    np.testing.assert_array_equal(2 * b.record.sample - 1, a.record.sample)  # the same Ising problem
    np.testing.assert_allclose(b.record.energy, binary.energies((b.record.sample, b.variables)))
    np.testing.assert_allclose(a.record.energy, b.record.energy)


def test_answer_modes_and_seeds():
    qpu = SimulatedQPU("chimera", shape=1, num_sweeps=20, seed=8)
    bqm = random_bqm(qpu, seed=9, h_scale=1.5)
    raw = qpu.sample(bqm, num_reads=500, answer_mode="raw", seed=11)
    hist = qpu.sample(bqm, num_reads=500, seed=11)  # 'histogram' is the QPU's default
    assert len(raw) == 500 and (raw.record.num_occurrences == 1).all()
    assert hist.record.num_occurrences.sum() == 500 and len(hist) == len(np.unique(raw.record.sample, axis=0))
    assert (np.diff(hist.record.energy) >= 0).all()  # in order of increasing energy
    again = qpu.sample(bqm, num_reads=500, answer_mode="raw", seed=11)
    np.testing.assert_array_equal(raw.record.sample, again.record.sample)
    twins = [SimulatedQPU("chimera", shape=1, num_sweeps=20, seed=12) for _ in range(2)]
    a, b = (t.sample(bqm, num_reads=50, answer_mode="raw").record.sample for t in twins)
    np.testing.assert_array_equal(a, b)  # the constructor's seed fixes every draw
    assert (
        uuid.UUID(raw.info["problem_id"]).version == 4 and raw.info["problem_id"] != again.info["problem_id"]
    )
    assert qpu.sample(bqm, label="run 1").info["problem_label"] == "run 1"


# --- the noise model ------------------------------------------------------------------------------
def _offsets(qpu, bqm):
    """Programmed J minus the problem's J (auto_scale=False): the coupler noise of the last call."""
    prog = qpu.last_programmed
    return {e: prog.quadratic[e] - bias for e, bias in bqm.quadratic.items()}


def test_coupler_noise_is_drawn_once_per_programmed_value():
    qpu = SimulatedQPU("chimera", shape=1, j_noise=0.1, num_sweeps=1, seed=0)
    bqm = random_bqm(qpu, seed=1)
    kw = dict(num_reads=1, auto_scale=False)
    qpu.sample(bqm, **kw)
    first = _offsets(qpu, bqm)
    assert all(x != 0 for x in first.values()) and 0.03 < np.std(list(first.values())) < 0.3
    qpu.sample(bqm, **kw, seed=99)  # same values again (and another call seed): the same offsets
    assert _offsets(qpu, bqm) == first
    (u, v), bias = next(iter(bqm.quadratic.items()))
    changed = bqm.copy()
    changed.set_quadratic(u, v, bias + 0.25)
    qpu.sample(changed, **kw)
    second = _offsets(qpu, changed)
    assert second[(u, v)] != first[(u, v)]  # the new value has a new offset
    assert all(second[e] == first[e] for e in first if e != (u, v))  # the others keep theirs
    qpu.sample(bqm, **kw)  # back to the old value: its offset (noise fixed per programmed value)
    assert _offsets(qpu, bqm) == first
    # a fresh device with the same seed (a resumed run) meets the same offsets: no hidden state
    other = SimulatedQPU("chimera", shape=1, j_noise=0.1, num_sweeps=1, seed=0)
    other.sample(changed, **kw)
    assert _offsets(other, changed) == second
    assert qpu.last_programmed.linear == bqm.linear  # no field noise in the programmed problem


def test_coupler_noise_moves_the_distribution_to_the_perturbed_model():
    qpu = SimulatedQPU("chimera", shape=1, beta=1.0, j_noise=0.4, num_sweeps=100, seed=2)
    bqm = random_bqm(qpu, seed=3)
    variables = list(bqm.variables)
    ss = qpu.sample(bqm, num_reads=READS, auto_scale=False)
    q = empirical(ss, variables, 256)
    p_noisy = boltzmann(qpu.last_programmed, 1.0, variables)[1]
    p_clean = boltzmann(bqm, 1.0, variables)[1]
    bound = tv_bound(p_noisy, READS)
    assert tv_within(q, p_noisy, bound, "j_noise 0.4 vs the programmed model")  # one model per call
    assert tv(q, p_clean) > 2 * bound


def test_field_noise_is_redrawn_for_every_read():
    """With h_noise the reads sample the noise-averaged distribution E_eta[p(s | h + eta)], not one
    perturbed model: compared with that average, enumerated over 20,000 noise draws."""
    sigma, beta = 1.0, 1.0
    qpu = SimulatedQPU("chimera", shape=1, beta=beta, h_noise=sigma, num_sweeps=100, seed=4)
    bqm = random_bqm(qpu, seed=5)
    variables = list(bqm.variables)
    states, _ = boltzmann(bqm, beta, variables)
    e0 = bqm.energies((states, variables))
    eta = np.random.default_rng(6).normal(0, sigma, (20_000, len(variables)))
    logw = -beta * (e0[None, :] + eta @ states.T.astype(float))
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    p_avg = (w / w.sum(axis=1, keepdims=True)).mean(axis=0)
    one_draw = w[0] / w[0].sum()  # what a single, shared noise draw would give
    ss = qpu.sample(bqm, num_reads=READS, auto_scale=False)
    q = empirical(ss, variables, 256)
    bound = tv_bound(p_avg, READS)
    assert tv_within(q, p_avg, bound, "h_noise 1.0 vs the noise average")
    assert tv(q, one_draw) > 3 * bound and tv(q, boltzmann(bqm, beta, variables)[1]) > 2 * bound


# --- ranges ---------------------------------------------------------------------------------------
def test_out_of_range_problems_are_refused_without_auto_scale():
    qpu = SimulatedQPU("pegasus", shape=2, num_sweeps=1, seed=0)  # h_range [-4, 4], extended_j_range [-2, 1]
    a, b = qpu.edgelist[0]
    kw = dict(auto_scale=False)
    with pytest.raises(
        OutOfRangeError, match=rf"qubit {a}: h = 5 is outside h_range \[-4, 4\] with auto_scale=False"
    ):
        qpu.sample(dimod.BQM.from_ising({a: 5.0}, {}), **kw)
    with pytest.raises(
        OutOfRangeError, match=rf"coupler \({a}, {b}\): J = -2.5 is outside extended_j_range \[-2, 1\]"
    ):
        qpu.sample(dimod.BQM.from_ising({}, {(a, b): -2.5}), **kw)
    with pytest.raises(OutOfRangeError, match=r"J = 1.5 is outside extended_j_range"):
        qpu.sample(dimod.BQM.from_ising({}, {(a, b): 1.5}), **kw)
    qpu.sample(dimod.BQM.from_ising({}, {(a, b): -1.5}), **kw)  # within the extended range: accepted
    tight = SimulatedQPU(
        "chimera", shape=1, properties={"per_qubit_coupling_range": [-3.0, 3.0]}, num_sweeps=1
    )
    star = dimod.BQM.from_ising({}, {(0, k): 1.0 for k in (4, 5, 6, 7)})  # qubit 0's couplings sum to 4
    with pytest.raises(
        OutOfRangeError, match=r"couplings of qubit 0 sum to 4, outside per_qubit_coupling_range \[-3, 3\]"
    ):
        tight.sample(star, **kw)
    with pytest.raises(OutOfRangeError, match="per_qubit_coupling_range"):  # checked with auto_scale too
        tight.sample(star)
    with pytest.raises(ValueError, match="NaN or infinite"):
        qpu.sample(dimod.BQM.from_ising({a: float("nan")}, {}))


def test_auto_scale_programs_the_problem_scaled_into_range():
    qpu = SimulatedQPU("chimera", shape=1, num_sweeps=30, seed=1)  # h_range [-2, 2], j_range [-1, 1]
    bqm = random_bqm(qpu, seed=2, h_scale=0.4, j_scale=0.3)
    scale = max(max(abs(x) / 2 for x in bqm.linear.values()), max(abs(x) for x in bqm.quadratic.values()))
    big = bqm.copy()
    big.scale(40.0)  # far out of range: auto_scale brings it back to the same programmed problem
    a = qpu.sample(big, num_reads=300, answer_mode="raw", seed=3)
    prog = qpu.last_programmed
    inside = bqm.copy()
    inside.scale(1 / scale)  # the problem scaled into range by hand
    b = qpu.sample(inside, num_reads=300, answer_mode="raw", seed=3, auto_scale=False)
    for v in bqm.variables:
        assert prog.linear[v] == pytest.approx(inside.linear[v], rel=1e-12)
    np.testing.assert_array_equal(a.record.sample, b.record.sample)
    np.testing.assert_allclose(a.record.energy, big.energies((a.record.sample, a.variables)))  # unscaled
    extreme = max(max(abs(x) for x in prog.quadratic.values()), max(abs(x) / 2 for x in prog.linear.values()))
    assert extreme == pytest.approx(1.0)  # it uses as much of the ranges as possible
    with pytest.raises(OutOfRangeError):
        qpu.sample(big, auto_scale=False)


def test_parameters_are_checked_as_the_qpu_checks_them():
    qpu = SimulatedQPU("pegasus", shape=2, num_sweeps=1, seed=0)
    bqm = dimod.BQM.from_ising({qpu.nodelist[0]: 0.1}, {})
    for kw, msg in [
        ({"num_reads": 0}, r"num_reads must be an integer in \[1, 10000\], got 0"),
        ({"num_reads": 10_001}, r"num_reads must be an integer in \[1, 10000\]"),
        ({"num_reads": 2.0}, "num_reads must be an integer"),
        ({"answer_mode": "list"}, "answer_mode must be 'raw' or 'histogram'"),
        ({"auto_scale": 1}, "auto_scale must be True or False"),
        ({"annealing_time": 3000}, r"annealing_time must be a number of microseconds in \[0.5, 2000\]"),
        ({"annealing_time": 20, "anneal_schedule": [[0, 0], [20, 1]]}, "set only one of anneal_schedule"),
        ({"anneal_schedule": [[0, 1], [10, 0.5], [20, 1]]}, "reverse anneal.*needs an initial_state"),
        ({"anneal_schedule": [[0, 0], [0, 1]]}, "times must start at 0 and increase"),
        ({"readout_thermalization": -1}, "readout_thermalization must be a number of microseconds"),
        (
            {"num_reads": 10_000, "annealing_time": 2000},
            r"run duration .* outside problem_run_duration_range",
        ),
        ({"num_sweeps": 0}, "num_sweeps must be an integer >= 1"),
        (
            {"chain_strength": 2.0},
            r"SimulatedQPU has no parameter\(s\) \['chain_strength'\]; its parameters are: ",
        ),
    ]:
        with pytest.raises(ValueError, match=msg):
            qpu.sample(bqm, **kw)
    with pytest.warns(UserWarning, match=r"accepts \['flux_biases'\] but does not simulate them"):
        qpu.sample(bqm, flux_biases=[0.0] * qpu.properties["num_qubits"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimulatedQPU("pegasus", shape=2, parameter_warnings=False, num_sweeps=1).sample(
            bqm, flux_biases=[0.0]
        )
        qpu.sample(bqm, annealing_time=100.0, programming_thermalization=500.0, readout_thermalization=10.0)


def test_properties_hold_what_ocean_code_reads():
    qpu = SimulatedQPU("zephyr", shape=(2, 4), seed=0)
    p = qpu.properties
    for key in (
        "qubits", "couplers", "h_range", "j_range", "extended_j_range", "per_qubit_coupling_range",
        "num_reads_range", "annealing_time_range", "default_annealing_time",
        "default_programming_thermalization", "default_readout_thermalization",
        "problem_run_duration_range", "problem_timing_data", "topology",
        "chip_id", "num_qubits", "supported_problem_types", "parameters", "category",
    ):  # fmt: skip
        assert key in p, key
    assert p["category"] == "qpu" and p["topology"] == {"type": "zephyr", "shape": [2, 4]}
    assert p["num_qubits"] == 4 * 4 * 2 * 5 == len(qpu.nodelist)
    assert set(qpu.parameters) >= {
        "num_reads",
        "annealing_time",
        "auto_scale",
        "answer_mode",
        "seed",
        "label",
    }
    assert set(p["parameters"]) == set(qpu.parameters)
    with pytest.raises(ValueError, match=r"properties \['qubits'\] follow from the graph"):
        SimulatedQPU("zephyr", shape=2, properties={"qubits": [0]})


# --- timing ---------------------------------------------------------------------------------------
TIMING_KEYS = {
    "qpu_access_time", "qpu_programming_time", "qpu_sampling_time", "qpu_anneal_time_per_sample",
    "qpu_readout_time_per_sample", "qpu_delay_time_per_sample", "qpu_access_overhead_time",
    "total_post_processing_time", "post_processing_overhead_time",
}  # fmt: skip


@pytest.mark.parametrize("family", ["chimera", "pegasus"])
def test_timing_info_is_the_estimate_and_the_cloud_clients_formula(family):
    from dwave.cloud.solver import StructuredSolver
    from dwave.cloud.testing.mocks import structured_solver_data

    qpu = SimulatedQPU(family, shape=2, num_sweeps=1, seed=0)
    cloud = StructuredSolver(client=None, data=structured_solver_data(properties=dict(qpu.properties)))
    bqm = random_bqm(qpu, seed=1)
    n = bqm.num_variables
    for kw in [
        {"num_reads": 1},
        {"num_reads": 700, "annealing_time": 125.0},
        {
            "num_reads": 50,
            "anneal_schedule": [[0, 0], [40, 0.5], [90, 1]],
            "programming_thermalization": 300.0,
        },
        {"num_reads": 30, "readout_thermalization": 15.0, "reduce_intersample_correlation": True},
        {
            "num_reads": 20,
            "anneal_schedule": [[0, 1], [5, 0.4], [12, 1]],
            "initial_state": {v: 1 for v in bqm.variables},
            "reinitialize_state": True,
        },
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # initial_state / schedule shape: accepted, not simulated
            timing = qpu.sample(bqm, **kw).info["timing"]
        assert set(timing) == TIMING_KEYS
        estimate = qpu.estimate_qpu_access_time(n, **kw)
        assert timing["qpu_access_time"] == estimate  # exactly: one formula
        assert estimate == pytest.approx(cloud.estimate_qpu_access_time(n, **kw), rel=1e-12)
        assert timing["qpu_access_time"] == timing["qpu_programming_time"] + timing["qpu_sampling_time"]
        per_read = (
            timing["qpu_anneal_time_per_sample"]
            + timing["qpu_readout_time_per_sample"]
            + timing["qpu_delay_time_per_sample"]
        )
        assert timing["qpu_sampling_time"] == pytest.approx(kw["num_reads"] * per_read, rel=1e-12)
    # an Advantage's order of magnitude: 1000 reads of 1,000 qubits take about 0.1 to 0.2 s
    assert 0.05e6 < SimulatedQPU("pegasus").estimate_qpu_access_time(1000, num_reads=1000) < 0.3e6


def test_zero_thermalizations_are_one_figure_from_the_estimate_the_call_and_the_budget():
    """Regression: explicit ``programming_thermalization=0`` and ``readout_thermalization=0``
    give one figure from ``estimate_qpu_access_time``, the call's ``info["timing"]`` and the
    budget's ``access_time_model`` (one model), with no thermalization in it; the cloud client
    (where installed) reads the 0 as its 1000 µs default and is higher by exactly that."""
    from physamp.samplers.qpu_budget import access_time_model

    qpu = SimulatedQPU("pegasus", shape=2, num_sweeps=1, seed=0)
    bqm = random_bqm(qpu, seed=3)
    n, kw = bqm.num_variables, {"num_reads": 40, "programming_thermalization": 0, "readout_thermalization": 0}
    d = qpu.properties["problem_timing_data"]
    timing = qpu.sample(bqm, **kw).info["timing"]
    estimate = qpu.estimate_qpu_access_time(n, **kw)
    assert timing["qpu_access_time"] == estimate
    assert estimate == access_time_model(d, n, **kw)
    assert timing["qpu_programming_time"] == d["typical_programming_time"]
    assert timing["qpu_delay_time_per_sample"] == d["qpu_delay_time_per_sample"]
    default = qpu.estimate_qpu_access_time(n, num_reads=40)
    assert default - estimate == pytest.approx(d["default_programming_thermalization"], rel=1e-12)
    cloud_solver = pytest.importorskip("dwave.cloud.solver")
    from dwave.cloud.testing.mocks import structured_solver_data

    cloud = cloud_solver.StructuredSolver(
        client=None, data=structured_solver_data(properties=dict(qpu.properties))
    )
    assert cloud.estimate_qpu_access_time(n, **kw) == pytest.approx(default, rel=1e-12)
    assert cloud.estimate_qpu_access_time(n, **{**kw, "programming_thermalization": 1e-9}) == pytest.approx(
        estimate, rel=1e-12
    )


# --- Ocean code, unchanged ------------------------------------------------------------------------
def test_embedding_composite_samples_a_non_native_problem():
    from dwave.system import EmbeddingComposite

    qpu = SimulatedQPU("chimera", shape=2, num_sweeps=100, seed=0)
    triangle = dimod.BQM.from_ising(
        {"a": 0.3, "b": -0.2, "c": 0.1}, {("a", "b"): -1, ("b", "c"): 0.5, ("a", "c"): 0.8}
    )
    ss = EmbeddingComposite(qpu).sample(triangle, num_reads=500, return_embedding=True, answer_mode="raw")
    assert set(ss.variables) == {"a", "b", "c"} and ss.record.num_occurrences.sum() == 500
    np.testing.assert_allclose(ss.record.energy, triangle.energies((ss.record.sample, ss.variables)))
    assert "chain_break_fraction" in ss.record.dtype.names and "timing" in ss.info
    assert max(len(c) for c in ss.info["embedding_context"]["embedding"].values()) >= 2  # chains


def test_fixed_embedding_composite_is_boltzmann():
    """One qubit per variable of a labelled bipartite problem: exactly the problem's distribution."""
    from dwave.system import FixedEmbeddingComposite

    qpu = SimulatedQPU("chimera", shape=1, beta=1.0, num_sweeps=100, seed=1)
    embedding = {"v0": [0], "v1": [1], "v2": [2], "h0": [4], "h1": [5], "h2": [6]}
    rng = np.random.default_rng(2)
    bqm = dimod.BQM.from_ising(
        {v: rng.normal(0, 0.5) for v in embedding},
        {(f"v{i}", f"h{j}"): rng.normal(0, 0.6) for i in range(3) for j in range(3)},
    )
    ss = FixedEmbeddingComposite(qpu, embedding).sample(bqm, num_reads=READS, auto_scale=False)
    variables = list(bqm.variables)
    p = boltzmann(bqm, 1.0, variables)[1]
    assert tv_within(empirical(ss, variables, p.size), p, tv_bound(p, READS), "FixedEmbeddingComposite")


def test_dwave_temperature_estimators_recover_beta():
    from dwave.system.temperatures import fast_effective_temperature, maximum_pseudolikelihood_temperature

    qpu = SimulatedQPU("chimera", shape=2, beta=2.0, num_sweeps=100, seed=3)
    bqm = random_bqm(qpu, seed=4, h_scale=0.3, j_scale=0.3)
    ss = qpu.sample(bqm, num_reads=2000, auto_scale=False)
    T, _ = maximum_pseudolikelihood_temperature(bqm, ss)
    assert 1 / T == pytest.approx(2.0, rel=0.05)
    # single-qubit problems at small fields, with auto_scale=False: Ocean's own offline estimate
    fast = SimulatedQPU("pegasus", shape=4, beta=5.0, num_sweeps=2, seed=5)
    T, _ = fast_effective_temperature(fast, seed=6)  # 1000 reads by default
    assert 1 / T == pytest.approx(5.0, rel=0.1)


# --- the 'dwave' backend offline --------------------------------------------------------------------
def test_solver_specs():
    topo = chimera_rbm(1, 2)
    assert is_simulated_spec("simulated") and is_simulated_spec({"name": "simulated"})
    assert not is_simulated_spec("Advantage_system4.1") and not is_simulated_spec(
        {"topology__type": "pegasus"}
    )
    q = from_spec("simulated", topology=topo)  # the graph the topology is laid out on
    assert (q.family, q.shape) == ("chimera", (1, 2, 4))
    q = from_spec("simulated:zephyr:3x4:beta=2.5:h_noise=0.05:num_sweeps=10", seed=1)
    assert (q.family, q.shape, q.beta, q.h_noise, q.num_sweeps, q.seed) == (
        "zephyr",
        (3, 4),
        2.5,
        0.05,
        10,
        1,
    )
    q = from_spec({"name": "simulated", "topology": "chimera", "shape": [2, 2, 4], "missing_qubits": [0]})
    assert q.shape == (2, 2, 4) and q.missing_qubits == [0]
    assert from_spec("simulated").properties["topology"] == {"type": "pegasus", "shape": [9]}
    for spec, msg in [
        ("simulated:foo", "cannot read 'foo' in solver spec 'simulated:foo'"),
        ("simulated:pegasus:bogus=1", "unknown option 'bogus'"),
        ("simulated:pegasus:beta=hot", "beta='hot' in solver spec .* is not a number"),
        ("simulatedpegasus", "must start with 'simulated:'"),
        ({"name": "simulated", "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ("simulated:chimera:beta=-1", "beta must be a positive finite number"),
    ]:
        with pytest.raises(ValueError, match=msg):
            from_spec(spec)


def test_dwave_backend_runs_offline_on_the_simulated_qpu(monkeypatch):
    """solver='simulated' (as the CLI passes it: a string) needs no token and samples the RBM."""
    import physamp.samplers.dwave as dwave_backend
    from physamp.cli import parse_options
    from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer, build_training_sampler

    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    monkeypatch.setattr(dwave_backend, "token_available", lambda: False)
    options = parse_options(["solver=simulated:num_sweeps=100"])
    assert options == {"solver": "simulated:num_sweeps=100"}
    topo = chimera_rbm(1)  # 4 visible x 4 hidden qubits of one cell
    rbm = physamp.RBM(4, 4, mask=topo.mask, init_std=0.6, generator=torch.Generator().manual_seed(0))
    backend = make_sampler("dwave", topology=topo, seed=0, **options)
    s = backend.sample(rbm, READS)
    assert s.info["solver"] == "SimulatedQPU_chimera_1x1x4" and s.info["beta_eff"] == pytest.approx(
        1.0, rel=0.05
    )
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8)))
    logp = -rbm.energy(states[:, :4], states[:, 4:]).detach().double()
    p = torch.softmax(logp, 0).numpy()
    idx = (torch.cat([s.v, s.h], 1).long() * (1 << torch.arange(7, -1, -1))).sum(1).numpy()
    assert tv_within(np.bincount(idx, minlength=256) / READS, p, tv_bound(p, READS), "DWaveBackend offline")
    with pytest.raises(ValueError, match="simulated QPU, which needs no token"):
        make_sampler("dwave", solver="simulated", token="abc").dry_run(rbm)
    # and it trains, through the one training loop, without a token
    data = (torch.rand(32, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    opts = {"solver": "simulated:chimera:1:num_sweeps=20", "topology": topo, "estimate_temperature": False}
    cfg = RBMTrainConfig(
        n_hidden=4, epochs=1, batch_size=8, num_chains=8, lr=0.05, sampler="dwave", sampler_options=opts
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = RBMTrainer(cfg, data, sampler=build_training_sampler(cfg))
        trainer.rbm.set_mask(topo.mask)
        W0 = trainer.rbm.W.detach().clone()
        trainer.fit(run_dir=None, progress=False)
    assert not torch.equal(W0, trainer.rbm.W) and torch.isfinite(trainer.rbm.W).all()
