"""One home for each concept of the sampler layer: dimod plumbing (dimod_io), chain embedding
as a composite (embedding), token redaction (redact), and the backends' declared PCD-k options."""

from __future__ import annotations

import logging
import secrets

import dimod
import dwave.graphs as dg
import numpy as np
import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler

from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer, build_training_sampler
from physamp.samplers import Sampler, make_sampler, registry
from physamp.samplers.base import UnknownOptionError
from physamp.samplers.dimod_io import (
    call_seed,
    check_sample_kwargs,
    sampleset_to_array,
    sampleset_to_units,
    split_units,
)
from physamp.samplers.embedding import (
    ChainEmbeddingComposite,
    EmbeddingError,
    chain_break_fraction,
    default_chain_strength,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def triangle_bqm(scale=1.0):
    """A frustrated triangle: not bipartite, so it needs a chain on Chimera."""
    return dimod.BinaryQuadraticModel.from_ising(
        {"a": 0.1 * scale, "b": -0.2 * scale, "c": 0.0},
        {("a", "b"): -1.0 * scale, ("b", "c"): 0.5 * scale, ("a", "c"): 0.3 * scale},
    )


def chimera_child(m=2):
    g = dg.chimera_graph(m)
    return dimod.StructureComposite(SimulatedAnnealingSampler(), list(g.nodes), list(g.edges))


def path_child(n=4):
    """A structured sampler on the path 0 - 1 - ... - n-1."""
    return dimod.StructureComposite(dimod.RandomSampler(), list(range(n)), [(i, i + 1) for i in range(n - 1)])


# --- the embedding composite ----------------------------------------------------------------
def test_composite_finds_the_embedding_once_reproducibly_and_samples():
    child = chimera_child()
    bqm = triangle_bqm()
    composite = ChainEmbeddingComposite(child, seed=3)
    assert composite.embedding is None and composite.max_chain_length is None
    assert composite.child is child and "chain_strength" in composite.parameters
    target = composite.embed_bqm(bqm, chain_strength=2.5)
    emb = composite.embedding
    assert set(emb) == {"a", "b", "c"} and composite.max_chain_length >= 2
    assert all(q in child.nodelist for chain in emb.values() for q in chain)
    # the target BQM lives on the child's qubits; every chain edge holds -chain_strength
    assert set(target.variables) == {q for chain in emb.values() for q in chain}
    for chain in emb.values():
        for p, q in zip(chain, chain[1:], strict=False):
            if (p, q) in target.quadratic or (q, p) in target.quadratic:
                assert target.get_quadratic(p, q) == pytest.approx(-2.5)
    # the same seed finds the same embedding
    again = ChainEmbeddingComposite(child, seed=3)
    again.embed_bqm(bqm)
    assert again.embedding == emb

    ss = composite.sample(bqm, chain_strength=4.0, num_reads=40, seed=1)
    assert composite.embedding == emb  # kept, not found again
    assert list(ss.variables) == list(bqm.variables) and len(ss) == 40
    assert "chain_break_fraction" in ss.record.dtype.names
    ctx = ss.info["embedding_context"]
    assert ctx["chain_strength"] == 4.0 and ctx["max_chain_length"] == composite.max_chain_length
    assert ctx["chain_break_method"] == "majority_vote"
    assert 0.0 <= ctx["chain_break_fraction"] <= 1.0
    assert "timing" in ss.info  # the child's info is kept
    np.testing.assert_allclose(ss.record.energy, bqm.energies(ss))  # logical energies
    # an annealer with strong chains finds the ground state of the triangle
    ground = dimod.ExactSolver().sample(bqm).first.energy
    assert ss.first.energy == pytest.approx(ground)

    composite.embedding = None  # forget it: found again on the next call
    assert composite.embedding is None
    composite.embed_bqm(bqm)
    assert composite.embedding is not None


def test_composite_majority_vote_and_chain_break_fraction():
    child = path_child(4)
    bqm = dimod.BinaryQuadraticModel.from_ising({"x": 0.0, "y": 0.0}, {("x", "y"): -1.0})
    composite = ChainEmbeddingComposite(child, {"x": [0, 1, 2], "y": [3]})
    target = composite.embed_bqm(bqm, chain_strength=2.0)
    assert target.get_quadratic(0, 1) == -2.0 and target.get_quadratic(1, 2) == -2.0
    assert target.get_quadratic(2, 3) == -1.0  # the logical coupling on the one coupler between chains
    raw = dimod.SampleSet.from_samples_bqm(([[1, 1, -1, 1], [-1, -1, -1, 1]], [0, 1, 2, 3]), target)
    before = raw.record.sample.copy()
    logical = composite.unembed_sampleset(raw, bqm)
    np.testing.assert_array_equal(sampleset_to_array(logical, ["x", "y"]), [[1, 1], [-1, 1]])
    np.testing.assert_allclose(logical.record.chain_break_fraction, [0.5, 0.0])  # x broken in read 0
    assert chain_break_fraction(logical) == pytest.approx(0.25)
    assert chain_break_fraction(logical, num_reads=1) == pytest.approx(0.5)
    assert list(raw.variables) == [0, 1, 2, 3] and np.array_equal(raw.record.sample, before)  # untouched
    ctx = composite.embedding_context(2.0, logical)
    assert ctx == {
        "chain_strength": 2.0,
        "max_chain_length": 3,
        "chain_break_method": "majority_vote",
        "chain_break_fraction": pytest.approx(0.25),
    }


def test_composite_refuses_what_does_not_fit():
    bqm = dimod.BinaryQuadraticModel.from_ising({"x": 0.0, "y": 0.0}, {("x", "y"): -1.0})
    child = path_child(4)
    with pytest.raises(EmbeddingError, match=r"no chain for variable\(s\) \['y'\]"):
        ChainEmbeddingComposite(child, {"x": [0]}).embed_bqm(bqm)
    with pytest.raises(EmbeddingError, match=r"qubit\(s\) \[9\] absent"):
        ChainEmbeddingComposite(child, {"x": [0], "y": [9]}).embed_bqm(bqm)
    with pytest.raises(EmbeddingError, match="not valid.*DisconnectedChainError"):
        ChainEmbeddingComposite(child, {"x": [0, 2], "y": [3]}).embed_bqm(bqm)
    with pytest.raises(EmbeddingError, match="does not carry.*MissingEdgeError"):
        ChainEmbeddingComposite(child, {"x": [0, 1], "y": [3]}).embed_bqm(bqm)
    with pytest.raises(EmbeddingError, match=r"no coupler between the chains of \[\('[xy]', '[xy]'\)\]"):
        ChainEmbeddingComposite(child, {"x": [0], "y": [2]}).embed_bqm(bqm)  # length-1 chains
    k4 = dimod.BinaryQuadraticModel.from_ising({}, {(i, j): 1.0 for i in range(4) for j in range(i + 1, 4)})
    with pytest.raises(EmbeddingError, match="minorminer found no embedding") as err:
        ChainEmbeddingComposite(child, seed=0).embed_bqm(k4)
    assert isinstance(err.value, ValueError)
    with pytest.raises(TypeError, match="structured dimod sampler.*StructureComposite"):
        ChainEmbeddingComposite(SimulatedAnnealingSampler())
    with pytest.raises(ValueError, match="chain_strength must be a positive"):
        ChainEmbeddingComposite(child, chain_strength=0.0)
    with pytest.raises(ValueError, match="chain_strength must be a positive"):
        ChainEmbeddingComposite(child, {"x": [0], "y": [1]}).embed_bqm(bqm, chain_strength=-1.0)
    with pytest.raises(TypeError, match="no parameter"):
        ChainEmbeddingComposite(child, {"x": [0], "y": [1]}).sample(bqm, anneal_time=3)


def test_default_chain_strength():
    bqm = triangle_bqm(scale=2.0)  # max |J| = 2
    assert default_chain_strength(bqm) == 4.0
    assert default_chain_strength(bqm, j_range=(-1.0, 1.0)) == 1.0
    assert default_chain_strength(dimod.BinaryQuadraticModel({"x": 1.0}, {}, 0.0, "SPIN")) == 1.0
    # the composite caps its default by the child's j_range property
    from dwave.system.testing import MockDWaveSampler

    mock = MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4])
    composite = ChainEmbeddingComposite(mock, seed=0)
    assert composite.resolve_chain_strength(bqm) == min(4.0, abs(mock.properties["j_range"][0]))
    assert ChainEmbeddingComposite(mock, chain_strength=0.7).resolve_chain_strength(bqm) == 0.7


def test_dwave_backend_programs_the_composites_embedded_bqm():
    """The 'chains' placement is the composite: dry_run reports its target BQM."""
    from dwave.system.testing import MockDWaveSampler

    from physamp.models.rbm import RBM
    from physamp.samplers.dwave import DWaveBackend

    rbm = RBM(5, 5, init_std=0.5, generator=torch.Generator().manual_seed(0))
    mock = MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4])
    backend = DWaveBackend(mock, seed=7, estimate_temperature=False)
    report = backend.dry_run(rbm, 10)
    assert isinstance(backend._embedder, ChainEmbeddingComposite) and backend._embedder.child is mock
    assert backend.embedding == backend._embedder.embedding
    assert report.max_chain_length == backend._embedder.max_chain_length
    assert report.num_qubits == sum(len(c) for c in backend.embedding.values())
    # the same embedding as the composite finds on its own with the same seed
    from physamp.ising import ising_to_bqm, rbm_to_ising

    alone = ChainEmbeddingComposite(mock, seed=7)
    target = alone.embed_bqm(ising_to_bqm(rbm_to_ising(rbm)), report.chain_strength)
    assert alone.embedding == backend.embedding
    assert target.num_variables == report.num_qubits and target.num_interactions == report.num_couplers
    # assigning the embedding reaches the composite
    backend.embedding = None
    assert backend.embedding is None and backend._embedder.embedding is None
    backend.dry_run(rbm, 10)
    assert backend.embedding == alone.embedding


# --- dimod plumbing ----------------------------------------------------------------------
def test_check_sample_kwargs_and_call_seed():
    sa = SimulatedAnnealingSampler()
    check_sample_kwargs(sa, {"num_sweeps": 10}, ("num_reads", "seed"), "Backend")
    with pytest.raises(ValueError, match=r"Backend sets \['seed'\] itself; do not pass them"):
        check_sample_kwargs(sa, {"seed": 1}, ("num_reads", "seed"), "Backend")
    with pytest.raises(ValueError, match="itself because"):
        check_sample_kwargs(sa, {"num_reads": 1}, ("num_reads",), "Backend", why=" because")
    with pytest.raises(UnknownOptionError, match=r"no parameter\(s\) \['anneal_time'\].*num_sweeps") as err:
        check_sample_kwargs(sa, {"anneal_time": 1}, ("num_reads", "seed"), "Backend")
    assert "seed" not in str(err.value).split("its parameters are:")[1]

    seeded, unseeded = make_sampler("exact", seed=0), make_sampler("exact")
    first = call_seed(seeded, sa)
    assert set(first) == {"seed"} and call_seed(seeded, sa) != first  # fresh per call
    assert call_seed(make_sampler("exact", seed=0), sa) == first  # reproducible
    assert call_seed(unseeded, sa) == {}
    assert call_seed(seeded, dimod.ExactSolver()) == {}  # no seed parameter


def test_sampleset_readers():
    ss = dimod.SampleSet.from_samples(
        ([[1, -1, -1], [-1, 1, 1]], ["c", "a", "b"]), dimod.SPIN, energy=[0, 0],
        num_occurrences=[2, 1], sort_labels=False,
    )  # fmt: skip
    same = sampleset_to_array(ss, ["c", "a", "b"])
    assert np.shares_memory(same, ss.record.sample)  # already in order: no copy
    np.testing.assert_array_equal(sampleset_to_array(ss, ["a", "b", "c"]), [[-1, -1, 1], [1, 1, -1]])
    np.testing.assert_array_equal(sampleset_to_units(ss, ["a", "b", "c"]), [[0, 0, 1], [0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="no variable"):
        sampleset_to_array(ss, ["a", "d"])
    v, h = split_units(sampleset_to_units(ss, ["a", "b", "c"]), 2)
    assert v.shape == (3, 2) and h.shape == (3, 1) and v.is_contiguous() and h.is_contiguous()
    assert v.dtype == torch.float64 and torch.equal(
        h[:, 0], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    )


def test_old_names_are_the_shared_ones():
    from physamp import ising
    from physamp.samplers import dimod_backend, dimod_io, dwave, neal, redact

    assert dimod_backend.topology_labels is ising.resolve_labels is dimod_io.resolve_labels
    assert dimod_backend.sampleset_to_units is dimod_io.sampleset_to_units
    assert neal.sampleset_to_array is dimod_io.sampleset_to_array
    for name in ("token_available", "install_log_redaction", "_redact", "_TOKEN_PATTERN", "_config_token"):
        assert getattr(dwave, name) is getattr(redact, name)
    assert redact._redact is redact.redact


def test_resolve_labels():
    from types import SimpleNamespace

    from physamp.ising import default_labels, resolve_labels

    assert resolve_labels(None, 2, 1) == default_labels(2, 1) == [0, 1, 2]
    topo = SimpleNamespace(visible=["q1", "q0"], hidden=[7])
    assert resolve_labels(topo, 2, 1) == ["q1", "q0", 7]
    with pytest.raises(ValueError, match="got 2 labels.*one variable per unit"):
        resolve_labels(["a", "b"], 2, 1)
    with pytest.raises(ValueError, match="distinct"):
        resolve_labels(["a", "a", "b"], 2, 1)


# --- token redaction ---------------------------------------------------------------------
def test_redaction(monkeypatch, tmp_path, caplog):
    from physamp.samplers import redact

    secret = "DEV-" + secrets.token_hex(20)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "none.conf"))
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    assert not redact.token_available()
    lookalike = "ABC-" + "0f" * 16
    assert redact.redact(f"x {lookalike} y") == "x <redacted> y"  # token-shaped, never configured
    monkeypatch.setenv("DWAVE_API_TOKEN", secret)
    assert redact.token_available()
    assert redact.redact(f"token={secret}!") == "token=<redacted>!"
    redact.install_log_redaction()
    redact.install_log_redaction()  # idempotent
    caplog.set_level(logging.DEBUG)
    logging.getLogger("dwave.cloud.test").debug("config %s", {"token": secret})
    logging.getLogger("physamp.other").debug("not a dwave logger: %s", "kept")
    assert secret not in caplog.text and "<redacted>" in caplog.text and "kept" in caplog.text


def test_dwave_backend_looks_the_token_check_up_by_its_old_name(monkeypatch):
    """Monkeypatching physamp.samplers.dwave.token_available still decides the token check."""
    from physamp.models.rbm import RBM
    from physamp.samplers import dwave

    monkeypatch.setenv("DWAVE_API_TOKEN", "DEV-" + secrets.token_hex(20))
    monkeypatch.setattr(dwave, "token_available", lambda: False)
    with pytest.raises(dwave.MissingTokenError, match="DWAVE_API_TOKEN"):
        dwave.DWaveBackend().dry_run(RBM(3, 2), 5)


# --- declared PCD-k options -------------------------------------------------------------------
class _ToyChain(Sampler):
    """A chain backend that declares no steps option."""

    name = "toychain"
    uses_chains = True

    def __init__(self, my_steps: int = 1, *, persistent: bool = False, seed: int | None = None):
        super().__init__(seed=seed, persistent=persistent)
        self.my_steps = my_steps

    def _sample(self, params, num_samples, initial, **opts):
        g = self.generator("cpu")
        v = torch.randint(0, 2, (num_samples, params.n_visible), generator=g).to(params.dtype)
        h = torch.randint(0, 2, (num_samples, params.n_hidden), generator=g).to(params.dtype)
        return v, h, {"my_steps": self.my_steps}


class _ToyChainWithSteps(_ToyChain):
    steps_option = "my_steps"
    supports_persistent = True


class _ToyChainNoPersistence(_ToyChain):
    steps_option = "my_steps"

    def __init__(self, my_steps: int = 1, *, seed: int | None = None):
        super().__init__(my_steps, seed=seed)


@pytest.fixture
def toy_backends(monkeypatch):
    for name, cls in (
        ("toychain", _ToyChain),
        ("toychain-steps", _ToyChainWithSteps),
        ("toychain-nopersist", _ToyChainNoPersistence),
    ):
        monkeypatch.setitem(registry._REGISTERED, name, cls)


def small_cfg(**kw):
    base = dict(n_hidden=4, epochs=1, batch_size=8, k=3, num_chains=8, lr=0.05)
    return RBMTrainConfig(**{**base, **kw})


def toy_data(n=32, d=6):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0))


def test_backends_declare_their_steps_option():
    from physamp.samplers.dimod_backend import DimodBackend
    from physamp.samplers.dwave import DWaveBackend
    from physamp.samplers.exact import ExactSampler
    from physamp.samplers.gibbs import GibbsSampler
    from physamp.samplers.neal import NealSampler

    assert (GibbsSampler.steps_option, GibbsSampler.supports_persistent) == ("steps", True)
    assert (NealSampler.steps_option, NealSampler.supports_persistent) == ("num_sweeps", True)
    for cls in (ExactSampler, DimodBackend, DWaveBackend):
        assert cls.steps_option is None and not cls.uses_chains and not cls.supports_persistent
    assert registry.sampler_class("neal") is NealSampler
    with pytest.raises(ValueError, match="unknown sampler"):
        registry.sampler_class("nope")
    # the simulated device declares what its child declares (child options pass through)
    assert make_sampler("simulated").steps_option == "steps"
    dev = make_sampler("simulated", child="neal", num_sweeps=3)
    assert dev.steps_option == "num_sweeps" and dev.supports_persistent
    assert make_sampler("simulated", child="exact").steps_option is None


def test_chain_backend_without_steps_option_is_refused(toy_backends):
    for cfg in (
        small_cfg(sampler="toychain"),
        small_cfg(sampler="simulated", sampler_options={"child": "toychain"}),
    ):
        with pytest.raises(ValueError, match=r"'toychain' backend \(_ToyChain\).*declares no steps_option"):
            build_training_sampler(cfg)
        with pytest.raises(ValueError, match="must declare steps_option"):
            RBMTrainer(cfg, toy_data())


def test_declared_steps_option_receives_k(toy_backends):
    s = build_training_sampler(small_cfg(sampler="toychain-steps", k=7))
    assert type(s) is _ToyChainWithSteps and s.my_steps == 7 and s.persistent
    s = build_training_sampler(small_cfg(sampler="toychain-steps", k=4, method="cd"))
    assert s.my_steps == 4 and not s.persistent
    s = build_training_sampler(small_cfg(sampler="toychain-steps", k=4, sampler_options={"my_steps": 9}))
    assert s.my_steps == 9  # an explicit option wins
    s = build_training_sampler(
        small_cfg(sampler="simulated", k=5, sampler_options={"child": "toychain-steps"})
    )
    assert s.child.my_steps == 5 and s.child.persistent
    s = build_training_sampler(small_cfg(sampler="toychain-steps", k=2, weight_noise=0.1))
    assert s.child.my_steps == 2
    tr = RBMTrainer(small_cfg(sampler="toychain-steps", k=6), toy_data())
    tr.fit(progress=False)
    assert tr.sampler.my_steps == 6
    # a chain backend that cannot keep its chains runs CD, not PCD
    s = build_training_sampler(small_cfg(sampler="toychain-nopersist", k=3, method="cd"))
    assert s.my_steps == 3
    with pytest.raises(ValueError, match="supports_persistent = False.*method='cd'"):
        build_training_sampler(small_cfg(sampler="toychain-nopersist", k=3))


def test_k_does_not_apply_to_independent_samplers():
    from physamp.models.rbm.pcd import _chain_options

    for name in ("exact", "dimod", "dwave"):
        assert _chain_options(name, 15, True) == {}
    assert _chain_options("gibbs", 15, True) == {"steps": 15, "persistent": True}
    assert _chain_options("neal", 4, False) == {"num_sweeps": 4, "persistent": False}
    s = build_training_sampler(small_cfg(sampler="exact"))  # the default k = 15 is not an error
    assert type(s).__name__ == "ExactSampler"
    with pytest.raises(ValueError, match="per instance"):
        _chain_options("simulated", 3, True)
