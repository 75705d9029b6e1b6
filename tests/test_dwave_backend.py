"""The 'dwave' and 'dimod' backends, offline: MockDWaveSampler with an SA-Gibbs substitute.

A ``MockDWaveSampler`` whose substitute is simulated annealing held at β = 1 with
Gibbs acceptance and randomised order samples ``p ∝ exp(-E_programmed)`` (β_eff = 1),
so with prefactor 1 the backends must reproduce the RBM's exact distribution.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from types import SimpleNamespace

import dimod
import dwave.graphs as dg
import numpy as np
import pytest
import torch
from dwave.samplers import SimulatedAnnealingSampler
from dwave.system.testing import MockDWaveSampler

from physamp.models.rbm import RBM
from physamp.samplers.dimod_backend import DimodBackend, sampleset_to_units
from physamp.samplers.dwave import DWaveBackend, DWaveConnectionError, MissingTokenError

# the mock warns that auto_scale is "not mocked"; SA warns about the QPU-only kwargs it ignores
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GIBBS_BETA1 = dict(
    beta_schedule_type="custom",
    beta_schedule=np.ones(500),
    proposal_acceptance_criteria="Gibbs",
    randomize_order=True,
)
TV_TOL = 0.04  # E[TV] from sampling noise alone is ~0.02 at 20,000 samples of 64 states


class SeededSA(SimulatedAnnealingSampler):
    """SA whose every call gets the next seed of a fixed stream (reproducible, not repeated)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def sample(self, bqm, **kwargs):
        kwargs.setdefault("seed", int(self.rng.integers(2**31 - 1)))
        return super().sample(bqm, **kwargs)


class CountingMock(MockDWaveSampler):
    """MockDWaveSampler that counts submissions and remembers their num_reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []

    def sample(self, bqm, **kwargs):
        self.calls.append(dict(kwargs))
        return super().sample(bqm, **kwargs)


class ReversedOrderSampler(dimod.Sampler):
    """A dimod sampler whose SampleSet lists the variables in reverse order."""

    def __init__(self, child):
        self.child = child

    @property
    def parameters(self):
        return self.child.parameters

    @property
    def properties(self):
        return {}

    def sample(self, bqm, **kwargs):
        ss = self.child.sample(bqm, **kwargs)
        labels = list(ss.variables)[::-1]
        rev = ss.record.sample[:, ::-1]
        out = dimod.SampleSet.from_samples(
            (rev, labels), ss.vartype, energy=ss.record.energy, sort_labels=False
        )
        assert list(out.variables) == labels  # really reversed
        return out


def mock(shape=(1, 1, 4), seed=0, cls=MockDWaveSampler, sweeps=500, **kwargs):
    subs = dict(GIBBS_BETA1, beta_schedule=np.ones(sweeps))
    return cls(
        topology_type="chimera",
        topology_shape=list(shape),
        substitute_sampler=SeededSA(seed),
        substitute_kwargs=subs,
        **kwargs,
    )


def cell_topology(nv=3, nh=3, order=None):
    """Stand-in for physamp.topology.chimera_rbm: one Chimera cell, visible u=0, hidden u=1."""
    g = dg.chimera_graph(1)
    vis = sorted(n for n, d in g.nodes(data=True) if d["chimera_index"][2] == 0)[:nv]
    hid = sorted(n for n, d in g.nodes(data=True) if d["chimera_index"][2] == 1)[:nh]
    if order is not None:
        vis, hid = [vis[i] for i in order[0]], [hid[i] for i in order[1]]
    mask = torch.tensor([[g.has_edge(q, p) for p in vis] for q in hid], dtype=torch.bool)
    return SimpleNamespace(visible=vis, hidden=hid, mask=mask)


def random_rbm(nv=3, nh=3, seed=0, std=1.0):
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(nv, nh, init_std=std, dtype=torch.float64, generator=g)
    with torch.no_grad():
        rbm.b.copy_(torch.randn(nv, generator=g, dtype=torch.float64))
        rbm.c.copy_(torch.randn(nh, generator=g, dtype=torch.float64))
    return rbm


def exact_joint(rbm) -> np.ndarray:
    """p(v, h) ∝ exp(-E) over all states, indexed by the bits of concat(v, h) (first unit = MSB)."""
    n = rbm.n_visible + rbm.n_hidden
    states = torch.tensor(
        [[(k >> (n - 1 - i)) & 1 for i in range(n)] for k in range(2**n)], dtype=torch.float64
    )
    with torch.no_grad():
        e = rbm.energy(states[:, : rbm.n_visible], states[:, rbm.n_visible :])
    p = torch.softmax(-e, 0).numpy()
    return p


def empirical_joint(v, h) -> np.ndarray:
    x = torch.cat([v, h], 1).to(torch.int64).numpy()
    n = x.shape[1]
    idx = x @ (1 << np.arange(n - 1, -1, -1))
    return np.bincount(idx, minlength=2**n) / len(idx)


def reversed_units(p) -> np.ndarray:
    """p over states with the unit order reversed (what a column-order bug would sample)."""
    n = int(np.log2(len(p)))
    rev = [int(format(k, f"0{n}b")[::-1], 2) for k in range(len(p))]
    return p[rev]


def tv(p, q) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def expected_tv_noise(p, n) -> float:
    """E[TV] of n multinomial samples of p, normal approximation: ½ Σ sqrt(2 p(1-p) / (π n))."""
    return 0.5 * float(np.sqrt(2 * p * (1 - p) / (np.pi * n)).sum())


# --- (a) exact distribution ---------------------------------------------------------------
N_TV = 20_000


def test_dwave_backend_topology_matches_exact_distribution():
    rbm = random_rbm(seed=1)
    p = exact_joint(rbm)
    noise = expected_tv_noise(p, N_TV)
    assert noise < 0.6 * TV_TOL  # the tolerance is well above the sampling noise
    topo = cell_topology(order=([2, 0, 1], [1, 2, 0]))  # shuffled qubit order
    backend = DWaveBackend(mock(seed=1), topology=topo)
    s = backend.sample(rbm, N_TV)
    d = tv(empirical_joint(s.v, s.h), p)
    print(f"dwave topology TV = {d:.4f} (expected noise {noise:.4f}, tolerance {TV_TOL})")
    assert d < TV_TOL
    # the estimate of the device temperature: the mock samples at β = 1
    assert s.info["beta_eff"] == pytest.approx(1.0, abs=0.05)
    assert s.info["beta_model"] == pytest.approx(s.info["beta_eff"] * 1.0)
    assert s.info["num_calls"] == 2  # num_reads_range max is 10,000
    # the same samples are far from a different model: the check can fail
    other = random_rbm(seed=2)
    assert tv(empirical_joint(s.v, s.h), exact_joint(other)) > 3 * TV_TOL


def test_dwave_backend_prefactor_samples_scaled_model():
    """prefactor 0.5 on a β=1 device samples the RBM at β_model = 0.5."""
    rbm = random_rbm(seed=3)
    backend = DWaveBackend(mock(seed=3), topology=cell_topology(), prefactor=0.5)
    s = backend.sample(rbm, N_TV)
    half = random_rbm(seed=3)
    with torch.no_grad():
        for t in (half.W, half.b, half.c):
            t.mul_(0.5)
    d = tv(empirical_joint(s.v, s.h), exact_joint(half))
    print(f"dwave prefactor 0.5 TV = {d:.4f}")
    assert d < TV_TOL
    assert s.info["prefactor"] == 0.5
    assert s.info["beta_model"] == pytest.approx(0.5, abs=0.03)
    assert tv(empirical_joint(s.v, s.h), exact_joint(rbm)) > TV_TOL


def test_dimod_backend_matches_exact_distribution_with_reversed_columns():
    rbm = random_rbm(seed=4)
    p = exact_joint(rbm)
    sampler = ReversedOrderSampler(SeededSA(4))
    backend = DimodBackend(sampler, **GIBBS_BETA1)
    s = backend.sample(rbm, N_TV)
    d = tv(empirical_joint(s.v, s.h), p)
    print(f"dimod (reversed columns) TV = {d:.4f}")
    assert d < TV_TOL
    # a column-order bug would sample reversed_units(p), far from p: the check can fail
    assert tv(empirical_joint(s.v, s.h), reversed_units(p)) > 3 * TV_TOL
    assert s.info["energy"].shape == (N_TV,)
    with torch.no_grad():
        e = rbm.energy(s.v, s.h).numpy()
    np.testing.assert_allclose(s.info["energy"], e, atol=1e-9)


# --- (b) SampleSet column order -------------------------------------------------------------
def strong_rbm():
    """W = 0 and |biases| = 8: the samples are (almost surely) the pattern below."""
    v = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    h = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    rbm = RBM(4, 3, dtype=torch.float64)
    with torch.no_grad():
        rbm.W.zero_()
        rbm.b.copy_(16 * v - 8)
        rbm.c.copy_(16 * h - 8)
    return rbm, v, h


def test_dimod_backend_permutes_columns_by_sampleset_variables():
    rbm, v, h = strong_rbm()
    labels = ["q7", "a", 3, "z", (0, 1), "b", 11]  # arbitrary, unsorted labels
    for sampler in (SeededSA(5), ReversedOrderSampler(SeededSA(5))):
        s = DimodBackend(sampler, labels=labels, **GIBBS_BETA1).sample(rbm, 200)
        assert torch.allclose(s.v.mean(0), v, atol=0.02)
        assert torch.allclose(s.h.mean(0), h, atol=0.02)


def test_sampleset_to_units_reads_variables_and_occurrences():
    ss = dimod.SampleSet.from_samples(
        ([[1, -1, -1], [-1, 1, 1]], ["c", "a", "b"]), dimod.SPIN, energy=[0, 0],
        num_occurrences=[2, 1], sort_labels=False,
    )  # fmt: skip
    assert list(ss.variables) == ["c", "a", "b"]
    x = sampleset_to_units(ss, ["a", "b", "c"])
    np.testing.assert_array_equal(x, [[0, 0, 1], [0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="no variable"):
        sampleset_to_units(ss, ["a", "b", "d"])


def test_dimod_backend_batched_biases_one_call_per_sample():
    rbm, v, h = strong_rbm()
    n = 6
    g = torch.Generator().manual_seed(0)
    vb = (torch.rand(n, 4, generator=g) < 0.5).double()
    hb = (torch.rand(n, 3, generator=g) < 0.5).double()
    p = rbm.params()
    params = type(p)(p.W, 16 * vb - 8, 16 * hb - 8)
    calls = []

    class Spy(SeededSA):
        def sample(self, bqm, **kw):
            calls.append(kw["num_reads"])
            return super().sample(bqm, **kw)

    s = DimodBackend(Spy(6), **GIBBS_BETA1).sample(params, n)
    assert calls == [1] * n
    assert torch.equal(s.v, vb) and torch.equal(s.h, hb)


def test_dimod_backend_rejects_unknown_kwargs_and_samplers_without_reads():
    with pytest.raises(TypeError, match="no parameter"):
        DimodBackend(SimulatedAnnealingSampler(), anneal_time=5)
    with pytest.raises(TypeError, match="unknown option"):
        DimodBackend(SeededSA(0)).sample(random_rbm(), 5, anneal_time=5)
    with pytest.raises(ValueError, match="num_reads"):
        DimodBackend(dimod.ExactSolver())


# --- (c) checks before anything is submitted ----------------------------------------------
def test_out_of_range_raises_before_submitting():
    rbm = random_rbm(seed=0)
    with torch.no_grad():
        rbm.W.mul_(10)  # |J| = |W|/4 exceeds j_range [-1, 1]
    sampler = mock(cls=CountingMock)
    backend = DWaveBackend(sampler, topology=cell_topology())
    with pytest.raises(ValueError, match=r"max \|J\|.*j_range.*prefactor") as err:
        backend.sample(rbm, 10)
    with pytest.raises(ValueError, match="Nothing was submitted"):
        backend.dry_run(rbm, 10)
    assert sampler.calls == []
    # the suggested prefactor fits
    suggested = float(str(err.value).split("prefactor to <= ")[1].split(",")[0])
    report = backend.dry_run(rbm, 10, prefactor=suggested * 0.999)
    assert report.max_abs_J <= 1.0 and report.max_abs_h <= 4.0
    assert sampler.calls == []
    # tighter ranges given to the backend are honoured
    with pytest.raises(ValueError, match="h_range"):
        DWaveBackend(sampler, topology=cell_topology(), h_range=(-0.01, 0.01)).sample(random_rbm(seed=0), 10)
    assert sampler.calls == []


def test_topology_mismatch_and_missing_coupler_raise():
    sampler = mock(cls=CountingMock)
    with pytest.raises(ValueError, match="4 visible x 3 hidden"):
        DWaveBackend(sampler, topology=cell_topology(3, 3)).sample(random_rbm(4, 3), 5)
    broken = mock(cls=CountingMock, broken_edges=[(0, 4)])
    topo = cell_topology()  # says qubit 0 (visible 0) - qubit 4 (hidden 0) is coupled
    rbm = random_rbm()
    with pytest.raises(ValueError, match=r"nonzero weights.*\(0, 0, 4, 0\)"):
        DWaveBackend(broken, topology=topo).sample(rbm, 5)
    with pytest.raises(ValueError, match="mask keeps have no coupler"):
        with torch.no_grad():
            rbm.W[0, 0] = 0.0
        DWaveBackend(broken, topology=topo).sample(rbm, 5)
    # a topology built from the broken graph (mask False there) and a masked RBM fit
    topo.mask[0, 0] = False
    rbm.set_mask(topo.mask)
    s = DWaveBackend(broken, topology=topo).sample(rbm, 5)
    assert s.v.shape == (5, 3) and len(broken.calls) == 1
    with pytest.raises(ValueError, match="not in the solver's graph"):
        DWaveBackend(mock(broken_nodes=[5]), topology=cell_topology()).sample(random_rbm(), 5)
    assert sampler.calls == []


def test_batched_biases_and_managed_kwargs_refused():
    rbm = random_rbm()
    p = rbm.params()
    params = type(p)(p.W, p.b.expand(4, 3).clone(), p.c)
    with pytest.raises(ValueError, match="one problem per call"):
        DWaveBackend(mock(), topology=cell_topology()).sample(params, 4)
    with pytest.raises(ValueError, match="auto_scale"):
        DWaveBackend(mock(), auto_scale=True)
    with pytest.raises(TypeError, match="no parameter"):
        DWaveBackend(mock(), anneal_time=3)


# --- (d) the token never leaks --------------------------------------------------------------
def _assert_absent(secret, *texts):
    for t in texts:
        assert secret not in str(t)


def test_token_never_appears(monkeypatch, capsys, caplog, tmp_path):
    import dwave.system

    secret = "DEV-" + secrets.token_hex(20)
    monkeypatch.setenv("DWAVE_API_TOKEN", secret)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "none.conf"))
    caplog.set_level(logging.DEBUG)

    class FailingDWaveSampler:
        def __init__(self, **kwargs):
            raise ConnectionError(f"cannot reach SAPI with token {secret} (solver {kwargs})")

    monkeypatch.setattr(dwave.system, "DWaveSampler", FailingDWaveSampler)
    backend = DWaveBackend(topology=cell_topology(), solver="Advantage_system4.1")
    with pytest.raises(DWaveConnectionError) as err:
        backend.sample(random_rbm(), 10)
    with pytest.raises(DWaveConnectionError) as err2:
        backend.dry_run(random_rbm(), 10)
    assert "redacted" in str(err.value)
    tb = "".join(traceback.format_exception(err.value))
    out = capsys.readouterr()
    _assert_absent(
        secret, err.value, repr(err.value), err2.value, tb, out.out, out.err, caplog.text,
        repr(backend), backend.properties,
    )  # fmt: skip
    assert err.value.__context__ is None and err.value.__cause__ is None

    # a connection that works (a mock in DWaveSampler's place): report, info, repr stay clean
    built = []

    def fake_dwave_sampler(**kwargs):
        built.append(kwargs)
        return mock(seed=9)

    monkeypatch.setattr(dwave.system, "DWaveSampler", fake_dwave_sampler)
    backend = DWaveBackend(topology=cell_topology(), solver="Advantage_system4.1")
    report = backend.dry_run(random_rbm(), 100)
    s = backend.sample(random_rbm(), 100)
    assert built == [{"solver": "Advantage_system4.1"}]
    out = capsys.readouterr()
    _assert_absent(
        secret, report, report.to_dict(), s.info, repr(backend), backend.properties,
        backend.state_dict(), out.out, out.err, caplog.text,
    )  # fmt: skip


def test_missing_token_raises_helpful_error(monkeypatch, tmp_path):
    import dwave.system

    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    empty = tmp_path / "dwave.conf"
    empty.write_text("")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(empty))
    built = []
    monkeypatch.setattr(dwave.system, "DWaveSampler", lambda **kw: built.append(kw))
    backend = DWaveBackend(topology=cell_topology())
    for call in (lambda: backend.sample(random_rbm(), 5), lambda: backend.dry_run(random_rbm())):
        with pytest.raises(MissingTokenError, match="DWAVE_API_TOKEN") as err:
            call()
        assert "dwave config create" in str(err.value)
        assert isinstance(err.value, RuntimeError)
    assert built == []
    # a passed sampler needs no token
    assert DWaveBackend(mock(), topology=cell_topology()).dry_run(random_rbm()).num_calls == 1


# --- (e) reads batched within num_reads_range -----------------------------------------------
def test_reads_are_batched():
    sampler = mock(cls=CountingMock, sweeps=20, properties={"num_reads_range": [1, 250]})
    backend = DWaveBackend(sampler, topology=cell_topology(), estimate_temperature=False)
    assert backend.dry_run(random_rbm(), 600).reads_per_call == [250, 250, 100]
    assert sampler.calls == []
    s = backend.sample(random_rbm(), 600)
    assert [c["num_reads"] for c in sampler.calls] == [250, 250, 100]
    assert all(c["auto_scale"] is False and c["answer_mode"] == "raw" for c in sampler.calls)
    assert s.v.shape == (600, 3) and s.info["num_calls"] == 3
    assert len(s.info["qpu_timing"]) == 3
    one = s.info["qpu_timing"][0]["qpu_access_time"]
    assert s.info["qpu_timing_total"]["qpu_access_time"] == pytest.approx(3 * one)
    assert s.info["beta_eff"] is None and s.info["beta_model"] is None
    sampler.calls.clear()
    backend.sample(random_rbm(), 100, num_reads_per_call=40)
    assert [c["num_reads"] for c in sampler.calls] == [40, 40, 20]
    with pytest.raises(ValueError, match="num_reads_range"):
        backend.sample(random_rbm(), 100, num_reads_per_call=1000)


# --- (f) chains ---------------------------------------------------------------------------
def test_chains_with_minorminer_embedding():
    rbm = random_rbm(5, 5, seed=7, std=0.5)  # K5,5 does not fit one K4,4 cell: chains needed
    backend = DWaveBackend(mock(shape=(2, 2, 4), seed=7, sweeps=200), seed=7)
    report = backend.dry_run(rbm, 500)
    assert report.placement == "chains" and report.max_chain_length >= 2
    emb = dict(backend.embedding)
    s = backend.sample(rbm, 500)
    assert backend.embedding == emb  # found once, kept
    assert s.v.shape == (500, 5) and s.h.shape == (500, 5)
    assert 0.0 <= s.info["chain_break_fraction"] <= 1.0
    assert s.info["max_chain_length"] >= 2
    # default chain strength: 2 max|J| (J = -W/4), within j_range
    assert s.info["chain_strength"] == pytest.approx(min(2 * rbm.W.abs().max().item() / 4, 1.0))
    # weak chains at a high temperature break; strong ones hardly do
    weak = backend.sample(rbm, 500, chain_strength=0.01, prefactor=0.05)
    assert weak.info["chain_break_fraction"] > s.info["chain_break_fraction"]
    # a user embedding is used as given
    fixed = DWaveBackend(mock(shape=(2, 2, 4), seed=8, sweeps=50), embedding=emb)
    assert fixed.dry_run(rbm, 10).num_qubits == sum(len(c) for c in emb.values())


def physamp_rbm(nv, nh):
    from physamp import RBM

    return RBM(nv, nh)


def test_token_not_logged_by_the_real_cloud_client(monkeypatch, capsys, caplog, tmp_path):
    """Ocean's client logs its config (token included) at DEBUG: our redaction must catch it.

    The real DWaveSampler is built against an unreachable local endpoint (no network).
    """
    import logging

    secret = "DEV-" + secrets.token_hex(20)
    monkeypatch.setenv("DWAVE_API_TOKEN", secret)
    (tmp_path / "empty.conf").write_text("")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "empty.conf"))
    monkeypatch.setenv("DWAVE_API_ENDPOINT", "http://127.0.0.1:9/sapi/v2/")
    monkeypatch.setenv("DWAVE_LEAP_API_ENDPOINT", "http://127.0.0.1:9/leap/api/")
    caplog.set_level(logging.DEBUG)
    backend = DWaveBackend()
    from physamp.samplers.dwave import DWaveConnectionError

    rbm = physamp_rbm(3, 2)
    with pytest.raises(DWaveConnectionError) as info:
        backend.sample(rbm, 10)
    text = caplog.text + capsys.readouterr().out + capsys.readouterr().err + str(info.value) + repr(backend)
    assert any(r.name.startswith("dwave") for r in caplog.records), str(info.value)  # the client did log
    assert secret not in text
