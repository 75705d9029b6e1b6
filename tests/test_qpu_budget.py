"""QPU access time (physamp.samplers.qpu_budget): the estimate, the budget, the ledger.

The timing model is checked against the cloud client's own ``estimate_qpu_access_time`` (the
function a real ``DWaveSampler`` calls) on D-Wave's published timing data of two QPUs; the
backend's estimate against the time a structured sampler reports; the budget by counting what
reaches the sampler; the ledger by reading back what it wrote, torn and edited files included.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import dimod
import dwave.graphs as dg
import numpy as np
import pytest
import torch
from dwave.cloud.solver import StructuredSolver
from dwave.cloud.testing.mocks import qpu_problem_timing_data
from dwave.samplers import SimulatedAnnealingSampler
from dwave.system.testing import MockDWaveSampler

from physamp.models.rbm import RBM
from physamp.samplers.dwave import DWaveBackend
from physamp.samplers.qpu_budget import (
    LedgerError,
    LedgerWarning,
    QPUBudgetExceeded,
    QPULedger,
    UnknownQPUCostError,
    access_time_estimator,
    access_time_model,
    cost_report,
    format_cost_report,
)
from physamp.topology import chimera_rbm

pytestmark = pytest.mark.filterwarnings("ignore:.*not mocked.*:UserWarning")

ADVANTAGE = qpu_problem_timing_data("advantage")


class TimedSampler(dimod.Sampler, dimod.Structured):
    """A structured sampler on a Chimera graph that reports the access time of the timing model
    (as a QPU reports its measured one), samples at a fixed β by Gibbs SA seeded by the call's
    ``seed``, and counts its calls. ``fail`` makes every call raise."""

    def __init__(self, m: int = 2, *, beta: float = 1.0, sweeps: int = 20, max_reads: int = 100, fail=False):
        graph = dg.chimera_graph(m)
        self._nodes = sorted(graph.nodes)
        self._edges = sorted(tuple(sorted(e)) for e in graph.edges)
        self.beta, self.sweeps, self.fail = beta, sweeps, fail
        self.calls: list[dict] = []
        self._properties = {
            "chip_id": "timed-fake",
            "topology": {"type": "chimera", "shape": [m, m, 4]},
            "h_range": [-4.0, 4.0],
            "j_range": [-1.0, 1.0],
            "num_reads_range": [1, max_reads],
            "problem_timing_data": ADVANTAGE,
        }
        self._parameters = {"num_reads": [], "seed": [], "annealing_time": [], "answer_mode": []}

    @property
    def properties(self):
        return self._properties

    @property
    def parameters(self):
        return self._parameters

    @property
    def nodelist(self):
        return self._nodes

    @property
    def edgelist(self):
        return self._edges

    def sample(self, bqm, num_reads=1, seed=None, annealing_time=None, answer_mode=None):
        self.calls.append({"num_reads": num_reads, "num_variables": len(bqm)})
        if self.fail:
            raise ConnectionError("the network went away")
        ss = SimulatedAnnealingSampler().sample(
            bqm, num_reads=num_reads, seed=seed, beta_schedule_type="custom",
            beta_schedule=np.full(self.sweeps, self.beta), proposal_acceptance_criteria="Gibbs",
            randomize_order=True,
        )  # fmt: skip
        t = access_time_model(ADVANTAGE, len(bqm), num_reads, annealing_time=annealing_time)
        ss.info.update(timing={"qpu_access_time": t, "qpu_programming_time": 15072.88},
                       problem_id=f"fake-{len(self.calls)}")  # fmt: skip
        return ss


def small_rbm(m: int = 2, seed: int = 0):
    topo = chimera_rbm(m)
    rbm = RBM(len(topo.visible), len(topo.hidden), mask=topo.mask)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(rbm.W.shape, generator=g) * 0.5 * topo.mask)
        rbm.b.copy_(torch.randn(rbm.n_visible, generator=g) * 0.3)
    return topo, rbm


# --- the model ------------------------------------------------------------------------------
KWARGS = [
    {},
    {"annealing_time": 55.0},
    {"anneal_schedule": [[0, 1], [5, 0.45], [9, 1]], "initial_state": [1], "reinitialize_state": True},
    {"anneal_schedule": [[0, 1], [5, 0.45], [12, 1]], "initial_state": [1]},
    {"anneal_schedule": [[0, 0], [30, 1]]},
    {"programming_thermalization": 250.0, "readout_thermalization": 40.0},
    {"reduce_intersample_correlation": True, "annealing_time": 150.0},
]


@pytest.mark.parametrize("qpu", ["advantage", "2000q"])
@pytest.mark.parametrize("kwargs", KWARGS, ids=lambda k: ",".join(k) or "defaults")
def test_model_is_the_cloud_clients(qpu, kwargs):
    """Our model gives the µs the cloud client's Solver.estimate_qpu_access_time gives (it reads
    only ``self.properties``), over qubit counts across the readout model's pieces."""
    data = qpu_problem_timing_data(qpu)
    solver = SimpleNamespace(properties={"problem_timing_data": data})
    for qubits, reads in [(1, 1), (7, 3), (60, 100), (1568, 1000), (5600, 2)]:
        want = StructuredSolver.estimate_qpu_access_time(solver, qubits, num_reads=reads, **kwargs)
        assert access_time_model(data, qubits, reads, **kwargs) == pytest.approx(want, rel=1e-12)


def test_model_refuses_what_it_cannot_estimate():
    with pytest.raises(ValueError, match="no field 'qpu_delay_time_per_sample'"):
        access_time_model({k: v for k, v in ADVANTAGE.items() if k != "qpu_delay_time_per_sample"}, 10)
    with pytest.raises(ValueError, match=r"version '2\.0\.0' is not supported"):
        access_time_model({**ADVANTAGE, "version": "2.0.0"}, 10)
    with pytest.raises(ValueError, match="not both"):
        access_time_model(ADVANTAGE, 10, annealing_time=5, anneal_schedule=[[0, 0], [5, 1]])
    with pytest.raises(ValueError, match="needs an initial_state"):
        access_time_model(ADVANTAGE, 10, anneal_schedule=[[0, 1], [5, 0.5], [9, 1]])
    with pytest.raises(ValueError, match="num_reads must be a positive int"):
        access_time_model(ADVANTAGE, 10, 0)


def test_explicit_zero_thermalizations_are_zero_microseconds_at_every_entry_point():
    """Regression (two copies of the model once disagreed here): an explicit
    ``programming_thermalization=0`` / ``readout_thermalization=0`` is 0 µs, as the QPU runs it,
    through ``access_time_model``, the properties estimator, ``SimulatedQPU.estimate_qpu_access_time``
    and the ``info["timing"]`` of a real call; ``None`` is the default. The cloud client reads a 0
    as the default: its estimate is higher by exactly the defaults (pinned, so a change there shows)."""
    from physamp.samplers.qpu_budget import access_time_breakdown
    from physamp.samplers.simulated_qpu import SimulatedQPU

    # a non-zero default readout thermalization, so that the readout branch is tested too
    data = {
        **SimulatedQPU("chimera", 1).properties["problem_timing_data"],
        "default_readout_thermalization": 20.0,
    }
    qpu = SimulatedQPU("chimera", 1, num_sweeps=1, seed=0, properties={"problem_timing_data": data})
    bqm = dimod.BQM({v: 0.1 for v in qpu.nodelist}, {e: -0.2 for e in qpu.edgelist}, 0.0, "SPIN")
    n, reads = bqm.num_variables, 7
    zeros = {"programming_thermalization": 0.0, "readout_thermalization": 0.0, "annealing_time": 20.0}

    parts = access_time_breakdown(data, n, reads, **zeros)
    no_wait = data["typical_programming_time"] + reads * (
        20.0 + parts["qpu_readout_time_per_sample"] + data["qpu_delay_time_per_sample"]
    )
    assert parts["qpu_programming_time"] == data["typical_programming_time"]
    assert parts["qpu_delay_time_per_sample"] == data["qpu_delay_time_per_sample"]
    want = access_time_model(data, n, reads, **zeros)
    assert want == pytest.approx(no_wait, rel=1e-12)
    estimate, _ = access_time_estimator(SimpleNamespace(properties={"problem_timing_data": data}))
    assert estimate(n, reads, zeros) == want
    assert qpu.estimate_qpu_access_time(n, num_reads=reads, **zeros) == want
    timing = qpu.sample(bqm, num_reads=reads, **zeros).info["timing"]
    assert {k: timing[k] for k in parts} == parts
    assert timing["qpu_access_time"] == want

    defaults = data["default_programming_thermalization"] + reads * data["default_readout_thermalization"]
    assert defaults > 0.01 * want  # so that reading a 0 as the default is a visible error
    assert access_time_model(data, n, reads, annealing_time=20.0) == pytest.approx(want + defaults, rel=1e-12)
    cloud = StructuredSolver.estimate_qpu_access_time(
        SimpleNamespace(properties={"problem_timing_data": data}), n, num_reads=reads, **zeros
    )
    assert cloud == pytest.approx(want + defaults, rel=1e-12)
    assert cloud != pytest.approx(want, rel=1e-3)


def test_estimator_prefers_the_solvers_own_then_the_samplers_then_the_properties():
    props_only = SimpleNamespace(properties={"problem_timing_data": ADVANTAGE})
    est, source = access_time_estimator(props_only)
    assert est(100, 10, {"annealing_time": 30.0, "flux_biases": [0]}) == pytest.approx(
        access_time_model(ADVANTAGE, 100, 10, annealing_time=30.0)
    )
    assert "problem_timing_data" in source
    # a real DWaveSampler: the cloud solver's method on its live properties wins over ours
    other = qpu_problem_timing_data("2000q")
    live = SimpleNamespace(
        estimate_qpu_access_time=lambda n, num_reads=1, **kw: StructuredSolver.estimate_qpu_access_time(
            SimpleNamespace(properties={"problem_timing_data": other}), n, num_reads=num_reads, **kw
        )
    )
    real = SimpleNamespace(solver=live, properties={"problem_timing_data": ADVANTAGE})
    est, source = access_time_estimator(real)
    assert source.endswith(".solver.estimate_qpu_access_time")
    assert est(100, 10, {}) == pytest.approx(access_time_model(other, 100, 10))
    # a composite: found through .child
    est, _ = access_time_estimator(SimpleNamespace(properties={}, child=props_only))
    assert est is not None
    # MockDWaveSampler: problem_timing_data is None -> unknown, and it says why
    est, why = access_time_estimator(MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4]))
    assert est is None and "MockDWaveSampler has no problem_timing_data property (it is None)" in why


# --- the backend: estimate, budget, ledger ------------------------------------------------------
def test_estimate_is_the_reported_time_of_every_call():
    """250 reads at 100 per call: three calls, each estimated (with its annealing_time and the
    number of programmed qubits) as the sampler then reports it; the ledger holds all three."""
    topo, rbm = small_rbm()
    fake = TimedSampler()
    backend = DWaveBackend(fake, topology=topo, seed=0, annealing_time=40.0)
    s = backend.sample(rbm, 250)
    reported = [t["qpu_access_time"] for t in s.info["qpu_timing"]]
    assert [c["num_reads"] for c in fake.calls] == [100, 100, 50]
    assert s.info["qpu_access_time_estimate"] == pytest.approx(reported, rel=1e-12)
    assert reported[0] == pytest.approx(access_time_model(ADVANTAGE, 32, 100, annealing_time=40.0))
    calls = backend.ledger.calls()
    assert [c["status"] for c in calls] == ["done"] * 3 and [c["source"] for c in calls] == ["reported"] * 3
    assert [c["problem_id"] for c in calls] == ["fake-1", "fake-2", "fake-3"]
    assert backend.ledger.spent_us == pytest.approx(sum(reported))
    assert s.info["qpu_spent_s"] == pytest.approx(sum(reported) * 1e-6)


def test_simulated_qpu_reports_what_it_estimates():
    """physamp's SimulatedQPU charges the time of the same model: estimate == reported, per call."""
    mod = pytest.importorskip("physamp.samplers.simulated_qpu")
    topo, rbm = small_rbm()
    qpu = mod.SimulatedQPU("chimera", 2, seed=0, num_sweeps=20)
    backend = DWaveBackend(qpu, topology=topo, seed=0, qpu_budget=10.0, annealing_time=35.0)
    s = backend.sample(rbm, 30)
    reported = s.info["qpu_timing"][0]["qpu_access_time"]
    assert s.info["qpu_access_time_estimate"] == pytest.approx([reported], rel=1e-12)
    assert reported == pytest.approx(access_time_model(qpu.properties["problem_timing_data"], 32, 30,
                                                       annealing_time=35.0))  # fmt: skip
    assert backend.ledger.spent_us == pytest.approx(reported)


def test_budget_refuses_a_sample_before_any_of_its_calls():
    """The budget fits two of the three calls of a 250-read sample: nothing is sent, the
    ledger is untouched, and the message says the estimate, what was spent, what is left,
    and how to raise the budget."""
    topo, rbm = small_rbm()
    per_call = access_time_model(ADVANTAGE, 32, 100) * 1e-6
    first = access_time_model(ADVANTAGE, 32, 20) * 1e-6
    fake = TimedSampler()
    backend = DWaveBackend(fake, topology=topo, seed=0, qpu_budget=first + 2.5 * per_call)
    backend.sample(rbm, 20)  # spends `first`
    assert len(fake.calls) == 1
    with pytest.raises(QPUBudgetExceeded) as err:
        backend.sample(rbm, 250)
    assert len(fake.calls) == 1, "a call was sent despite the budget"
    assert len(backend.ledger) == 1
    e = err.value
    estimate = 2 * per_call + access_time_model(ADVANTAGE, 32, 50) * 1e-6
    assert e.estimate_s == pytest.approx(estimate) and e.spent_s == pytest.approx(first)
    assert e.left_s == pytest.approx(2.5 * per_call) and e.num_calls == 3 and e.num_reads == 250
    msg = str(e)
    assert msg.startswith(f"QPU budget exceeded: this sample would use an estimated {estimate:.4g} s")
    assert f"(3 call(s), 250 reads on 32 qubits), but only {2.5 * per_call:.4g} s of the" in msg
    assert f"({first:.4g} s spent)" in msg and "Nothing was submitted" in msg and "--qpu-budget" in msg
    assert "\n" not in msg
    # what fits still goes
    backend.sample(rbm, 200)
    assert len(fake.calls) == 3


@pytest.mark.filterwarnings("ignore::physamp.samplers.dimod_io.NotBoltzmannWarning")
def test_unknown_cost_is_refused_unless_allowed():
    topo, rbm = small_rbm()
    mock = MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4])
    calls = []
    mock_sample = mock.sample
    mock.sample = lambda bqm, **kw: (calls.append(kw), mock_sample(bqm, **kw))[1]
    backend = DWaveBackend(mock, topology=topo, qpu_budget=100.0)
    with pytest.raises(UnknownQPUCostError, match="allow_unknown_cost=True") as err:
        backend.sample(rbm, 10)
    assert calls == [] and "Nothing was submitted" in str(err.value)
    assert DWaveBackend(mock, topology=topo).sample(rbm, 5)  # no budget: nothing to guard
    allowed = DWaveBackend(mock, topology=topo, qpu_budget=100.0, allow_unknown_cost=True)
    s = allowed.sample(rbm, 10)
    assert s.info["qpu_access_time_estimate"] is None
    (call,) = allowed.ledger.calls()
    assert call["estimate_us"] is None and call["source"] == "reported"
    assert call["qpu_access_time_us"] == s.info["qpu_timing"][0]["qpu_access_time"]  # the mock's 8550.28


def test_dry_run_reports_the_estimate_and_the_budget_without_raising():
    topo, rbm = small_rbm()
    fake = TimedSampler()
    backend = DWaveBackend(fake, topology=topo, seed=0, qpu_budget=0.05)
    backend.sample(rbm, 10)
    spent = backend.ledger.spent_s
    report = backend.dry_run(rbm, 250)
    want = (2 * access_time_model(ADVANTAGE, 32, 100) + access_time_model(ADVANTAGE, 32, 50)) * 1e-6
    assert report.estimated_qpu_access_time_s == pytest.approx(want)
    assert report.qpu_spent_s == pytest.approx(spent) and report.qpu_budget_left_s == pytest.approx(
        0.05 - spent
    )
    assert report.within_budget is False and "problem_timing_data of TimedSampler" in report.estimate_source
    assert "estimated_qpu_access_time_s" in str(report) and len(fake.calls) == 1
    assert backend.dry_run(rbm, 10).within_budget is True


def test_a_failed_call_is_recorded_and_keeps_counting_at_its_estimate():
    topo, rbm = small_rbm()
    backend = DWaveBackend(TimedSampler(fail=True), topology=topo, seed=0, qpu_budget=1.0)
    with pytest.raises(ConnectionError):
        backend.sample(rbm, 10)
    (call,) = backend.ledger.calls()
    assert call["status"] == "failed" and call["error"] == "ConnectionError"
    assert backend.ledger.spent_us == pytest.approx(access_time_model(ADVANTAGE, 32, 10))


def test_calibration_reads_are_budgeted_and_labelled(tmp_path):
    temperature = pytest.importorskip("physamp.samplers.temperature")
    topo, rbm = small_rbm()
    fake = TimedSampler(beta=2.0)
    backend = DWaveBackend(fake, topology=topo, seed=0, ledger=tmp_path / "l.jsonl", qpu_budget=10.0)
    with backend.ledger_label_as("calibration"):
        result = temperature.calibrate(backend, rbm, 1.0, num_samples=300, max_iter=4)
    assert backend.ledger_label == "sample"
    labels = {c["label"] for c in QPULedger(tmp_path / "l.jsonl").calls()}
    assert labels == {"calibration"} and len(fake.calls) == 3 * len(result.history)  # 300 reads: 3 calls
    # a budget too small for one calibration read refuses it before anything is sent
    tight = DWaveBackend(TimedSampler(), topology=topo, seed=0, qpu_budget=1e-3)
    with pytest.raises((QPUBudgetExceeded, ValueError), match="budget"):
        temperature.calibrate(tight, rbm, 1.0, num_samples=300)
    assert tight.sampler.calls == []


# --- the ledger file ------------------------------------------------------------------------
def test_ledger_writes_fsyncs_and_reloads(tmp_path, monkeypatch):
    path = tmp_path / "run" / "qpu_ledger.jsonl"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    led = QPULedger(path)
    a = led.open_call(num_qubits=32, num_reads=10, estimate_us=1000.0, label="train", solver="x")
    assert len(synced) >= 1 and path.exists()  # the submit record is on disk before the call
    n = len(synced)
    led.close_call(a, timing={"qpu_access_time": 900.0}, problem_id="p1")
    assert len(synced) == n + 1
    b = led.open_call(num_qubits=32, num_reads=5, estimate_us=500.0, label="calibration")
    lines = path.read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["submit", "done", "submit"]
    assert json.loads(lines[1]) == {
        "v": 1, "event": "done", "call": a, "time": json.loads(lines[1])["time"], "problem_id": "p1",
        "qpu_access_time_us": 900.0, "source": "reported",
    }  # fmt: skip
    again = QPULedger(path)  # b has no outcome: a crash during the call -> its estimate counts
    assert again.spent_us == pytest.approx(900.0 + 500.0) == led.spent_us
    assert [c["status"] for c in again.calls()] == ["done", "pending"]
    c = again.open_call(num_qubits=1, num_reads=1, estimate_us=None)
    assert c == b + 1
    again.close_call(c, timing={})  # neither a time nor an estimate: uncounted, and said so
    s = again.summary()
    assert s["calls"] == 3 and s["reads"] == 16 and s["uncounted_calls"] == 1 and s["pending_calls"] == 1
    assert s["by_label"]["calibration"]["reads"] == 5 and s["calibration_s"] == pytest.approx(500e-6)


def test_ledger_drops_a_torn_last_record_and_repairs_the_file(tmp_path):
    path = tmp_path / "qpu_ledger.jsonl"
    led = QPULedger(path)
    a = led.open_call(num_qubits=4, num_reads=2, estimate_us=100.0)
    led.close_call(a, timing={"qpu_access_time": 80.0})
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"v": 1, "event": "submit", "call": 2, "estim')  # a crash mid-write
    with pytest.warns(LedgerWarning, match="ends in a torn record"):
        torn = QPULedger(path)
    assert torn.spent_us == pytest.approx(80.0) and len(torn) == 1
    b = torn.open_call(num_qubits=4, num_reads=2, estimate_us=100.0)
    assert b == 2
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])  # valid JSON lines again
    assert QPULedger(path).spent_us == pytest.approx(180.0)
    # a valid last record that lost its newline is kept, and the next one starts on a new line
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    kept = QPULedger(path)
    kept.fail_call(b, "TimeoutError")
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == [
        "submit", "done", "submit", "failed",
    ]  # fmt: skip


def test_ledger_refuses_an_edited_file(tmp_path):
    path = tmp_path / "qpu_ledger.jsonl"
    led = QPULedger(path)
    for _ in range(2):
        led.close_call(led.open_call(num_qubits=4, num_reads=2, estimate_us=10.0), timing=None)
    lines = path.read_text().splitlines()
    lines[1] = "not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match=r"qpu_ledger\.jsonl line 2 is not a ledger record"):
        QPULedger(path)
    path.write_text(json.dumps({"v": 99, "event": "submit", "call": 1}) + "\n")
    with pytest.raises(LedgerError, match="newer than this physamp"):
        QPULedger(path)


def test_a_backend_with_a_ledger_path_counts_an_earlier_session(tmp_path):
    topo, rbm = small_rbm()
    path = tmp_path / "qpu_ledger.jsonl"
    first = DWaveBackend(TimedSampler(), topology=topo, seed=0, ledger=path)
    first.sample(rbm, 100)
    spent = first.ledger.spent_s
    fake = TimedSampler()
    second = DWaveBackend(fake, topology=topo, seed=0, ledger=str(path), qpu_budget=spent * 1.5)
    assert second.qpu_budget_left == pytest.approx(spent * 0.5)
    with pytest.raises(QPUBudgetExceeded):
        second.sample(rbm, 100)
    assert fake.calls == []


def test_cost_report_text():
    led = QPULedger()
    for label, reads, us in [("calibration", 100, 3000.0), ("train", 20, 1000.0), ("train", 20, 1000.0)]:
        led.close_call(led.open_call(num_qubits=8, num_reads=reads, estimate_us=us, label=label), timing=None)
    report = cost_report(led, budget_s=1.0, steps=2)
    assert report["spent_s"] == pytest.approx(5e-3) and report["per_step_s"] == pytest.approx(1e-3)
    assert report["calibration_share"] == pytest.approx(0.6) and report["left_s"] == pytest.approx(0.995)
    text = format_cost_report(report)
    assert "total QPU access time  0.005 s of a 1 s budget (0.995 s left)" in text
    assert "calls / reads          3 / 140" in text and "per gradient step      1 ms (2 steps)" in text
    assert "calibration            0.003 s (60.0 % of the total)" in text


def test_ledger_extend_renumbers_and_keeps_counting(tmp_path):
    memory = QPULedger()
    memory.close_call(memory.open_call(num_qubits=4, num_reads=2, estimate_us=50.0), timing=None)
    memory.open_call(num_qubits=4, num_reads=2, estimate_us=70.0)  # pending
    run = QPULedger(tmp_path / "l.jsonl")
    call = run.open_call(num_qubits=4, num_reads=2, estimate_us=10.0)
    run.close_call(call, timing={"qpu_access_time": 9.0})
    run.extend(memory)
    again = QPULedger(tmp_path / "l.jsonl")
    assert [c["call"] for c in again.calls()] == [1, 2, 3] and again.spent_us == pytest.approx(129.0)
    assert [c["status"] for c in again.calls()] == ["done", "done", "pending"]


def test_a_problem_the_solver_refuses_is_refused_before_it_is_charged(tmp_path):
    """An out-of-range solver parameter is refused by dry_run and sample alike, and the ledger
    records nothing: a QPU refuses such a problem at submission, before any QPU time is spent."""
    from physamp.samplers.simulated_qpu import SimulatedQPU

    topo = chimera_rbm(1)
    rbm = RBM(topo.n_visible, topo.n_hidden, mask=topo.mask)
    qpu = SimulatedQPU("chimera", 1, seed=0)
    b = DWaveBackend(qpu, topology=topo, qpu_budget=60.0, seed=0, annealing_time=0.1,
                     ledger=tmp_path / "l.jsonl")  # fmt: skip
    for call in (lambda: b.dry_run(rbm, 10), lambda: b.sample(rbm, 10)):
        with pytest.raises(
            ValueError, match=r"annealing_time must be a number of microseconds in \[1, 2000\]"
        ):
            call()
    assert b.ledger.calls() == [] and b.ledger.spent_s == 0.0


def test_reads_are_split_so_that_every_call_fits_the_run_duration_range():
    """(annealing_time + readout_thermalization) * reads + programming_thermalization must stay in
    problem_run_duration_range (1e7 us here): 2000 us anneals allow 4,999 reads per call at most."""
    from physamp.samplers.simulated_qpu import SimulatedQPU

    topo = chimera_rbm(1)
    rbm = RBM(topo.n_visible, topo.n_hidden, mask=topo.mask)
    qpu = SimulatedQPU("chimera", 1, num_sweeps=5, seed=0)
    p = qpu.properties
    b = DWaveBackend(qpu, topology=topo, seed=0, annealing_time=2000.0)
    per_read = 2000.0 + p["default_readout_thermalization"]
    most = int((p["problem_run_duration_range"][1] - p["default_programming_thermalization"]) // per_read)
    assert most == 4999
    report = b.dry_run(rbm, 12000)
    assert report.reads_per_call == [most, most, 12000 - 2 * most]
    assert len(b.sample(rbm, 12000).v) == 12000  # every call accepted by the device's own check
