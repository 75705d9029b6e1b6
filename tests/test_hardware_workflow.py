"""Training on a QPU as a workflow, offline on physamp's SimulatedQPU.

The dwave backend in the RBM trainer: the topology placed on the solver's working graph,
reads batched per step, calibration every N steps, the QPU budget stopping a run cleanly,
the ledger counted on resume (also after a crash between checkpoints), exact resume with
the calibrated prefactor in the checkpoint, the cost report, and the CLI's refusals.
"""

from __future__ import annotations

import json

import dwave.graphs as dg
import pytest
import torch

from physamp import cli
from physamp.models.rbm.pcd import (
    COST_FILE,
    LEDGER_FILE,
    QPUBudgetStop,
    RBMTrainConfig,
    RBMTrainer,
    place_on_solver,
)
from physamp.samplers.dwave import DWaveBackend
from physamp.samplers.qpu_budget import QPULedger, UnknownQPUCostError, access_time_model
from physamp.samplers.simulated_qpu import SimulatedQPU
from physamp.topology import chimera_rbm, pegasus_rbm
from physamp.training import load_checkpoint

pytestmark = pytest.mark.filterwarnings(
    "ignore::RuntimeWarning",
    "ignore:.*not simulated.*:UserWarning",
    "ignore::physamp.samplers.dimod_io.NotBoltzmannWarning",
)

STEPS_PER_EPOCH = 4


def config(**kw) -> RBMTrainConfig:
    base = dict(n_hidden=16, epochs=2, batch_size=10, num_chains=20, sampler="dwave", topology="chimera",
                calibrate_every=4, calibrate_samples=200, lr=0.1, seed=3)  # fmt: skip
    return RBMTrainConfig(**{**base, **kw})


def data() -> torch.Tensor:
    """40 4x4 images: 4 steps of 10 per epoch."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(40, 16, generator=g) < 0.3).float()


def trainer(cfg: RBMTrainConfig, *, beta: float = 2.0) -> RBMTrainer:
    """A trainer on a C_2 SimulatedQPU sampling at ``beta`` (calibration should bring the
    prefactor near 1/beta)."""
    qpu = SimulatedQPU("chimera", 2, beta=beta, num_sweeps=20, seed=0)
    from physamp.seeding import derive_seed

    return RBMTrainer(cfg, data(), sampler=DWaveBackend(qpu, seed=derive_seed(cfg.seed, "sampler")))


def step_cost_s(reads: int, qubits: int = 32) -> float:
    timing = SimulatedQPU("chimera", 2).properties["problem_timing_data"]
    return access_time_model(timing, qubits, reads) * 1e-6


def params(t: RBMTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (t.rbm.W, t.rbm.b, t.rbm.c)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the whole run under an ample budget."""
    run = tmp_path_factory.mktemp("ref")
    t = trainer(config(qpu_budget=100.0))
    history = t.fit(run, progress=False)
    return t, run, history


def test_a_run_trains_calibrates_and_reports(uninterrupted):
    t, run, history = uninterrupted
    assert t.total_steps == 2 * STEPS_PER_EPOCH
    calls = QPULedger(run / LEDGER_FILE).calls()
    train = [c for c in calls if c["label"] == "train"]
    assert len(train) == t.total_steps and all(c["num_reads"] == 20 for c in train)  # one call per step
    assert {c["label"] for c in calls} == {"train", "calibration"}
    assert [c["step"] for c in t.calibrations] == [0, 4]
    assert t._qpu.prefactor == pytest.approx(0.5, rel=0.25)  # β_eff = 2 -> prefactor ≈ 1/2
    for record in history:  # one record per epoch, each with one calibration in its window
        assert {"beta_eff", "beta_eff_std", "prefactor", "qpu_ms", "beta_model"} <= set(record)
        assert record["beta_eff"] == pytest.approx(2.0, rel=0.25)
    assert history[-1]["qpu_ms"] == pytest.approx(step_cost_s(20) * 1e3)
    report = json.loads((run / COST_FILE).read_text())
    assert report["calls"] == len(calls) and report["steps"] == t.total_steps
    assert report["spent_s"] == pytest.approx(sum(c["counted_us"] for c in calls) * 1e-6)
    assert report["per_step_s"] == pytest.approx(step_cost_s(20))
    assert 0 < report["calibration_share"] < 1 and report["stopped_by_budget"] is False
    assert [c["step"] for c in report["calibrations"]] == [0, 4]
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["state:qpu"]["prefactor"] == t._qpu.prefactor  # the calibrated scale is checkpointed
    assert ckpt["state:qpu"]["beta_eff"] == t._qpu.beta_eff
    # the budget is no part of the run's identity: a larger one continues the same run
    assert "qpu_budget" not in json.loads((run / "config.json").read_text())


def test_budget_stop_checkpoints_reports_and_resumes_exactly(uninterrupted, tmp_path):
    """A budget that runs out during step 6 (no calibration there): the run stops before that
    step with a checkpoint at 5 and the report; resumed under a larger budget it ends
    bit-identical to the uninterrupted run, programmed at the checkpointed prefactor, and its
    ledger holds exactly the uninterrupted run's calls (the refused step sent nothing)."""
    ref, ref_run, _ = uninterrupted
    calls = QPULedger(ref_run / LEDGER_FILE).calls()
    fifth_train = [i for i, c in enumerate(calls) if c["label"] == "train"][4]
    budget = sum(c["counted_us"] for c in calls[: fifth_train + 1]) * 1e-6 + 0.5 * step_cost_s(20)
    t = trainer(config(qpu_budget=budget))
    with pytest.raises(QPUBudgetStop) as stop:
        t.fit(tmp_path, progress=False)
    e = stop.value
    assert (
        e.step == 5 and e.checkpoint == tmp_path / "checkpoint.pt" and e.report_path == tmp_path / COST_FILE
    )
    assert load_checkpoint(e.checkpoint)["step"] == 5
    assert e.report["stopped_by_budget"] and json.loads(e.report_path.read_text())["stopped_by_budget"]
    assert e.refusal.estimate_s == pytest.approx(step_cost_s(20))
    assert str(e).startswith("QPU budget: training stopped before step 6 of 8, whose sampling would use")
    assert "holds step 5" in str(e) and "--qpu-budget" in str(e) and "\n" not in str(e)
    assert len(QPULedger(tmp_path / LEDGER_FILE)) == fifth_train + 1
    resumed = trainer(config(qpu_budget=100.0))
    resumed.fit(tmp_path, progress=False)
    for a, b in zip(params(resumed), params(ref), strict=True):
        assert torch.equal(a, b)
    assert QPULedger(tmp_path / LEDGER_FILE).spent_us == pytest.approx(
        QPULedger(ref_run / LEDGER_FILE).spent_us
    )


def test_a_calibrating_step_that_cannot_finish_spends_nothing(uninterrupted, tmp_path):
    """Budget left for step 4's calibration call or for its training sample, not for both: the
    step is refused before the calibration spends anything (else it would be paid for, then
    redone on resume)."""
    _, ref_run, _ = uninterrupted
    calls = QPULedger(ref_run / LEDGER_FILE).calls()
    fourth_train = [i for i, c in enumerate(calls) if c["label"] == "train"][3]
    spent = sum(c["counted_us"] for c in calls[: fourth_train + 1]) * 1e-6
    budget = spent + step_cost_s(200) + 0.5 * step_cost_s(20)
    with pytest.raises(QPUBudgetStop) as stop:
        trainer(config(qpu_budget=budget)).fit(tmp_path, progress=False)
    assert stop.value.step == 4 and len(QPULedger(tmp_path / LEDGER_FILE)) == fourth_train + 1


def test_a_crash_after_the_checkpoint_still_counts_on_resume(uninterrupted, tmp_path):
    """Killed at step 6 (checkpoint at 4): the QPU time of steps 4-5 (calibration included) is in
    the ledger, so the resumed run, which redoes them, runs out of a budget that would have
    covered the uninterrupted run; with more budget it ends identical to the uninterrupted run."""
    ref, ref_run, _ = uninterrupted
    full = QPULedger(ref_run / LEDGER_FILE).spent_s

    def crash(loop, step, metrics):
        if step == 6:
            raise RuntimeError("killed")

    t = trainer(config(qpu_budget=100.0))
    with pytest.raises(RuntimeError, match="killed"):
        t.fit(tmp_path, progress=False, callbacks=[crash])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    lost = QPULedger(tmp_path / LEDGER_FILE)
    assert [c["label"] for c in lost.calls()].count("train") == 6  # steps 0-5 were paid for
    again = trainer(config(qpu_budget=full * 1.001))
    with pytest.raises(QPUBudgetStop) as stop:  # steps 4-5 again cost more than the whole run did
        again.fit(tmp_path, progress=False)
    assert stop.value.step < 8 and stop.value.refusal.spent_s >= lost.spent_s  # the lost steps count
    more = trainer(config(qpu_budget=100.0))
    more.fit(tmp_path, progress=False)
    for a, b in zip(params(more), params(ref), strict=True):
        assert torch.equal(a, b)
    assert QPULedger(tmp_path / LEDGER_FILE).spent_s > full  # the redone steps were paid twice


def test_a_budget_too_small_for_one_step_trains_nothing(tmp_path):
    t = trainer(config(qpu_budget=step_cost_s(200) * 0.5))
    with pytest.raises(QPUBudgetStop) as stop:
        t.fit(tmp_path, progress=False)
    assert stop.value.step == 0 and stop.value.checkpoint is None and "nothing was trained" in str(stop.value)
    assert not (tmp_path / "checkpoint.pt").exists() and len(QPULedger(tmp_path / LEDGER_FILE)) == 0


def test_unknown_cost_and_wrong_backend_are_refused_before_training():
    from dwave.system.testing import MockDWaveSampler

    mock = MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4])
    with pytest.raises(UnknownQPUCostError, match="allow_unknown_cost=True"):
        RBMTrainer(config(qpu_budget=1.0), data(), sampler=DWaveBackend(mock))
    with pytest.raises(ValueError, match="qpu_budget applies to the dwave backend"):
        RBMTrainer(config(sampler="gibbs", qpu_budget=1.0, calibrate_every=None), data())
    with pytest.raises(ValueError, match="calibrate_every must be None or an integer >= 0"):
        config(calibrate_every=-1).validate()
    assert config(calibrate_every=0).validate().calibrate_every is None


def test_place_on_solver_moves_a_smaller_layout_off_missing_qubits():
    """chimera_rbm(2) (C_2 labels) on a C_4 solver whose first cell is broken: moved by whole
    cells onto working qubits, every connection kept; pegasus_rbm(3) onto Pegasus 5 likewise."""
    topo = chimera_rbm(2)
    qpu = SimulatedQPU("chimera", 4, missing_qubits=[0, 5], seed=0)
    placed = place_on_solver(topo, qpu)
    assert set(placed.labels()) <= set(qpu.nodelist) and placed.num_connections == topo.num_connections
    assert placed.info["placed_shift"] != [0, 0] and torch.equal(placed.mask, topo.mask)
    peg = pegasus_rbm(3)
    bad = dg.pegasus_coordinates(5).pegasus_to_linear(
        dg.pegasus_coordinates(3).linear_to_pegasus(peg.visible[0])
    )
    qpu = SimulatedQPU("pegasus", 5, missing_qubits=[bad], seed=0)
    placed = place_on_solver(peg, qpu)
    assert set(placed.labels()) <= set(qpu.nodelist) and placed.num_connections == peg.num_connections
    with pytest.raises(ValueError, match="laid out on a chimera graph"):
        place_on_solver(topo, SimulatedQPU("pegasus", 2, seed=0))


# --- the command line ---------------------------------------------------------------------
CLI = [
    "--threads", "1", "train-rbm", "--dataset", "mnist-bundled", "--sampler", "dwave",
    "--topology", "chimera", "--hidden", "784", "--epochs", "1", "--batch-size", "100", "--chains", "10",
    "--ais-runs", "2", "--ais-betas", "10", "--figure-steps", "2", "--no-progress",
]  # fmt: skip


def test_cli_without_a_token_fails_before_training(tmp_path, monkeypatch, capsys):
    import physamp.samplers.dwave as dwave_mod

    monkeypatch.setattr(dwave_mod, "token_available", lambda: False)
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    # the command as written: no --hidden, the chimera topology's own 784 (500 would not fit)
    argv = [a for a in CLI if a not in ("--hidden", "784")]
    assert cli.main([*argv, "--run-dir", str(tmp_path / "r"), "--qpu-budget", "600"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: No D-Wave Leap API token is configured")
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


def test_cli_budget_stop_prints_the_report_and_one_line(tmp_path, capsys):
    """Offline (``-o solver=simulated``: a SimulatedQPU on the topology's C_14): a budget of 1.5
    steps trains one step, checkpoints it, prints the cost report and one error line (exit 2);
    the same command with a larger budget resumes, counting the ledger, and finishes."""
    one = access_time_model(SimulatedQPU("chimera", 14).properties["problem_timing_data"], 1568, 10) * 1e-6
    run = tmp_path / "r"
    argv = [*CLI, "--run-dir", str(run), "-o", "solver=simulated:num_sweeps=5"]
    assert cli.main([*argv, "--qpu-budget", repr(1.5 * one)]) == 2
    out = capsys.readouterr()
    err = out.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: QPU budget: training stopped before step 2 of 20")
    assert "QPU cost report (stopped by the budget)" in out.out and "estimated QPU access time" in out.out
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1
    assert json.loads((run / COST_FILE).read_text())["calls"] == 1
    assert cli.main([*argv, "--qpu-budget", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{one:.6g} s already spent (ledger)" in out and "calls / reads          20 / 200" in out


def test_hidden_units_default_to_the_topologys_own_shape():
    """`physamp train-rbm --topology chimera|pegasus` needs no --hidden: the square 784x784 layout is
    the only one those topologies have, while a dense or randomly thinned RBM keeps 500."""
    from physamp.models.rbm.pcd import DEFAULT_HIDDEN, default_hidden

    assert DEFAULT_HIDDEN == 500
    assert default_hidden(None, 784) == 500 and default_hidden("dense", 784) == 500
    assert default_hidden("random:0.5", 784) == 500
    assert default_hidden("chimera", 784) == 784
    with pytest.raises(ValueError, match="chimera"):
        default_hidden("chimera", 783)  # neither 500 nor 783 fits: the topology's own error
    from physamp.models.rbm import RBMTrainConfig

    assert RBMTrainConfig(topology="chimera").validate().n_hidden == 500  # the Python API never guesses
