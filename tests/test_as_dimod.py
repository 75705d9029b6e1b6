"""as_dimod: physamp backends as dimod samplers of bipartite BQMs -- exact Boltzmann samples (TV
against enumeration), labels, vartype, energies and offset, the bipartition, and the refusals."""

import itertools

import dimod
import numpy as np
import pytest

from physamp.samplers import as_dimod
from physamp.samplers.dimod_sampler import NotBipartiteError, PhysampDimodSampler, bipartition
from physamp.samplers.exact import ExactSampler

from conftest import tv, tv_bound, tv_within

READS = 20_000


def boltzmann(bqm, beta):
    """Exact distribution over all states of ``bqm`` (its vartype), in ``bqm.variables`` order."""
    values = [-1, 1] if bqm.vartype is dimod.SPIN else [0, 1]
    variables = list(bqm.variables)
    states = np.array(list(itertools.product(values, repeat=len(variables))))
    e = bqm.energies((states, variables))
    w = np.exp(-beta * (e - e.min()))
    return variables, w / w.sum()


def empirical(sampleset, variables):
    cols = [sampleset.variables.index(v) for v in variables]
    bits = (sampleset.record.sample[:, cols] > 0).astype(np.int64) @ (1 << np.arange(len(variables))[::-1])
    return np.bincount(bits, weights=sampleset.record.num_occurrences, minlength=2 ** len(variables)) / len(
        sampleset
    )


def rbm_shaped_bqm(vartype=dimod.SPIN, seed=0):
    """Four 'left' and three 'right' variables (mixed labels), most left-right pairs coupled."""
    rng = np.random.default_rng(seed)
    left, right = ["a", "b", 3, ("c", 1)], ["x", 10, "y"]
    linear = {v: rng.normal(0, 0.7) for v in left + right}
    pairs = [(u, w) for u in left for w in right if rng.random() < 0.75]
    quadratic = {(u, w): rng.normal(0, 0.5) for u, w in pairs}
    return dimod.BinaryQuadraticModel(linear, quadratic, 2.5, vartype)


@pytest.mark.parametrize("name, options", [("exact", {}), ("gibbs", {"steps": 200})], ids=["exact", "gibbs"])
@pytest.mark.parametrize("vartype", [dimod.SPIN, dimod.BINARY], ids=["spin", "binary"])
def test_samples_are_the_boltzmann_distribution_of_the_bqm(name, options, vartype):
    """TV to the exact distribution within what a perfect sampler exceeds 1 % of the time (tv_bound), at
    beta = 1 and 2; a wrong beta is told apart."""
    bqm = rbm_shaped_bqm(vartype)
    sampler = as_dimod(name, seed=1, **options)
    for beta in (None, 2.0):
        ss = sampler.sample(bqm, num_reads=READS, beta=beta)
        b = 1.0 if beta is None else beta
        variables, p = boltzmann(bqm, b)
        q = empirical(ss, variables)
        bound = tv_bound(p, READS)
        assert tv_within(q, p, bound, f"{name} {vartype.name} beta={b}")
        assert tv(q, boltzmann(bqm, 1.3 * b)[1]) > bound
        assert ss.vartype is vartype and set(ss.variables) == set(bqm.variables)
        assert set(np.unique(ss.record.sample)) <= ({-1, 1} if vartype is dimod.SPIN else {0, 1})
        np.testing.assert_allclose(ss.record.energy, bqm.energies((ss.record.sample, ss.variables)))
        assert ss.info["backend"] == name and ss.info["backend_info"]["num_samples"] == READS


def test_the_offset_is_in_the_energies_and_a_backend_without_beta_samples_the_scaled_problem():
    class NoBeta(ExactSampler):  # a backend that takes no per-call beta
        name = "nobeta"
        parameters = {}

    bqm = rbm_shaped_bqm(seed=2)
    ss = as_dimod(NoBeta(seed=3)).sample(bqm, num_reads=READS, beta=0.5)
    variables, p = boltzmann(bqm, 0.5)
    assert tv_within(empirical(ss, variables), p, tv_bound(p, READS), "no-beta backend, beta=0.5 folded")
    assert ss.info["backend_info"]["beta"] == 1.0  # the backend ran at 1, on the problem times 0.5
    shifted = bqm.copy()
    shifted.offset += 10.0
    s2 = as_dimod("exact", seed=4).sample(shifted, num_reads=5)
    np.testing.assert_allclose(s2.record.energy, shifted.energies((s2.record.sample, s2.variables)))


def test_backend_options_pass_through_and_the_dimod_mixins_work():
    sampler = as_dimod("gibbs", steps=5, seed=0)
    assert isinstance(sampler, PhysampDimodSampler) and {"num_reads", "beta", "steps"} <= set(
        sampler.parameters
    )
    ss = sampler.sample(rbm_shaped_bqm(), num_reads=10, steps=7)
    assert ss.info["backend_info"]["steps"] == 7
    ising = sampler.sample_ising({"p": 0.5, "q": -0.2}, {("p", "q"): 1.0}, num_reads=4)
    assert len(ising) == 4 and ising.vartype is dimod.SPIN
    qubo = sampler.sample_qubo({("p", "p"): 1.0, ("p", "q"): -2.0}, num_reads=3)
    assert len(qubo) == 3 and qubo.vartype is dimod.BINARY


def test_bipartition_layers():
    # a path a - b - c - d plus an isolated e: the larger class of each component is visible
    bqm = dimod.BQM.from_ising({"e": 1.0}, {("a", "b"): 1, ("b", "c"): 1, ("c", "d"): 1, ("d", "f"): 1})
    visible, hidden = bipartition(bqm)
    assert set(visible) | set(hidden) == set(bqm.variables) and not set(visible) & set(hidden)
    assert "e" in visible
    for u, w in bqm.quadratic:
        assert (u in visible) != (w in visible)
    assert len([v for v in visible if v != "e"]) >= len(hidden)
    # zero couplings are no couplings: this triangle has only a path
    zero = dimod.BQM.from_ising({}, {("a", "b"): 1, ("b", "c"): 1, ("a", "c"): 0.0})
    assert bipartition(zero) == (["a", "c"], ["b"])
    # no coupling at all: every variable visible (one idle hidden unit inside), still exact
    free = dimod.BQM.from_ising({"a": 0.5, "b": -1.0}, {})
    ss = as_dimod("exact", seed=0).sample(free, num_reads=READS)
    variables, p = boltzmann(free, 1.0)
    assert tv_within(empirical(ss, variables), p, tv_bound(p, READS), "no couplings")
    assert ss.info["hidden"] == []
    empty = as_dimod("exact").sample(dimod.BQM({}, {}, 1.5, dimod.SPIN), num_reads=3)
    assert len(empty) == 3 and (empty.record.energy == 1.5).all()


def test_non_bipartite_and_bad_input_are_refused_before_sampling():
    class Refuses(ExactSampler):
        name = "refuses"

        def _sample(self, *args, **kwargs):
            raise AssertionError("sampled")

    pentagon = dimod.BQM.from_ising(
        {}, {("a", "b"): 1, ("b", "c"): 1, ("c", "d"): 1, ("d", "e"): 1, ("e", "a"): 1}
    )
    sampler = as_dimod(Refuses())
    with pytest.raises(
        NotBipartiteError, match=r"odd cycle 'c' - 'b' - 'a' - 'e' - 'd' - 'c' \(5 variables\)"
    ):
        sampler.sample(pentagon)
    bqm = rbm_shaped_bqm()
    for kwargs, err, msg in [
        ({"num_reads": 0}, ValueError, "num_reads must be a positive integer"),
        ({"num_reads": True}, ValueError, "num_reads must be a positive integer"),
        ({"beta": -1.0}, ValueError, "beta must be a positive finite number"),
        (
            {"steps": 3},
            ValueError,
            r"has no parameter\(s\) \['steps'\]; its parameters are: beta, gamma, num_reads",
        ),
    ]:
        with pytest.raises(err, match=msg):
            sampler.sample(bqm, **kwargs)
    with pytest.raises(TypeError, match="needs a dimod.BinaryQuadraticModel"):
        sampler.sample({"a": 1.0})
    with pytest.raises(TypeError, match="options cannot be applied to an already-built Sampler"):
        as_dimod(ExactSampler(), seed=1)
    with pytest.raises(ValueError, match="unknown sampler 'gibs'"):
        as_dimod("gibs")


def test_a_bqm_with_a_nan_bias_is_refused_in_the_bqms_words():
    bqm = dimod.BQM({0: float("nan"), 1: 0.0}, {(0, 1): 1.0}, 0.0, "SPIN")
    with pytest.raises(
        ValueError, match=r"the BQM has non-finite \(NaN or infinite\) biases, e\.g\. at \[0\]"
    ):
        as_dimod("exact").sample(bqm)
