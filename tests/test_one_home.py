"""One home per concept: the free energy, exact log Z, the Bernoulli draw, seeds, the config flags."""

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

import physamp
from physamp.energy import RBMParams, as_params, energy, free_energy
from physamp.samplers.bernoulli import Int32Bernoulli
from physamp.samplers.exact import enumerate_states, exact_log_z, log_partition
from physamp.seeding import derive_seed
from physamp.training.options import (
    add_config_arguments,
    apply_overrides,
    config_from_args,
    option,
    positive_int,
)

from conftest import random_rbm


def brute_log_z(rbm) -> float:
    """log Σ_{v,h} exp(-E(v, h)) over every joint state (independent of the enumeration code)."""
    nv, nh = rbm.n_visible, rbm.n_hidden
    s = enumerate_states(0, 1 << (nv + nh), nv + nh)
    e = energy(s[:, :nv], s[:, nv:], *(t.detach().double() for t in (rbm.W, rbm.b, rbm.c)))
    return float(torch.logsumexp(-e, 0))


def test_free_energy_sums_out_the_hiddens_for_one_and_many_models():
    rbms = [random_rbm(5, 3, seed=s) for s in range(4)]
    v = enumerate_states(0, 32, 5)
    W = torch.stack([r.W.detach().double() for r in rbms])
    b = torch.stack([r.b.detach().double() for r in rbms])
    c = torch.stack([r.c.detach().double() for r in rbms])
    batched = free_energy(v, W, b, c, beta=0.7)  # (D, N)
    assert batched.shape == (4, 32)
    h = enumerate_states(0, 8, 3)
    for d, rbm in enumerate(rbms):
        p = as_params(rbm)
        one = free_energy(v, p.W.double(), p.b.double(), p.c.double(), beta=0.7)
        assert torch.allclose(batched[d], one, atol=1e-12)
        # F(v; β) = -log Σ_h exp(-β E(v, h)), by enumerating h
        e = energy(v[:, None, :].expand(32, 8, 5), h[None].expand(32, 8, 3), W[d], b[d], c[d])
        assert torch.allclose(one, -torch.logsumexp(-0.7 * e, 1), atol=1e-10)
    # per-model biases with one shared W: the same as stacking W
    shared = free_energy(v, W[0], b, c)
    assert torch.allclose(shared[1], free_energy(v, W[0], b[1], c[1]), atol=1e-12)


def test_the_module_and_the_view_share_the_formulas():
    rbm = random_rbm(6, 4, seed=3)
    v = (torch.rand(10, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    h = (torch.rand(10, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    assert torch.equal(rbm.energy(v, h), rbm.params().energy(v, h))
    assert torch.equal(rbm.free_energy(v), rbm.params().free_energy(v))
    assert torch.equal(rbm.free_energy_hidden(h, 0.5), free_energy(h, rbm.W.t(), rbm.c, rbm.b, 0.5))


def test_log_partition_is_the_one_exact_log_z():
    rbms = [random_rbm(4, 3, seed=s, scale=1.5) for s in range(3)] + [random_rbm(3, 5, seed=9)]
    for rbm in rbms:
        assert exact_log_z(rbm) == pytest.approx(brute_log_z(rbm), abs=1e-9)
    W = torch.stack([r.W.detach() for r in rbms[:3]])
    b = torch.stack([r.b.detach() for r in rbms[:3]])
    c = torch.stack([r.c.detach() for r in rbms[:3]])
    many = log_partition(W, b, c)
    assert many.shape == (3,) and many.dtype == torch.float64
    for d in range(3):
        assert float(many[d]) == pytest.approx(brute_log_z(rbms[d]), abs=1e-9)
    with pytest.raises(ValueError, match="2\\^6 states"):
        log_partition(torch.zeros(6, 7), torch.zeros(7), torch.zeros(6), max_bits=5)


def test_as_params_accepts_anything_with_a_params_view():
    rbm = random_rbm(3, 2, seed=0)

    class Wrapper:
        def params(self) -> RBMParams:
            return rbm.params()

    assert torch.equal(as_params(Wrapper()).W, rbm.W)
    with pytest.raises(TypeError, match="physamp.RBM or RBMParams"):
        as_params(object())


def test_rbm_from_state_dict_round_trip_and_errors():
    rbm = random_rbm(6, 4, seed=1, mask=torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) < 0.5)
    back = physamp.RBM.from_state_dict(rbm.state_dict())
    assert torch.equal(back.W, rbm.W) and torch.equal(back.mask, rbm.mask)
    with pytest.raises(ValueError, match="no RBM parameters"):
        physamp.RBM.from_state_dict({"W": torch.zeros(2, 3)})
    bad = dict(rbm.state_dict(), b=torch.zeros(5))
    with pytest.raises(ValueError, match="inconsistent RBM parameters"):
        physamp.RBM.from_state_dict(bad)


# --- seeds --------------------------------------------------------------------------------------
def test_derive_seed_is_stable_distinct_and_the_same_in_another_process():
    a = derive_seed(0, "sampler")
    assert a == derive_seed(0, "sampler") and 0 <= a < 2**63
    others = {derive_seed(0, "binarize"), derive_seed(1, "sampler"), derive_seed(0, "data-order", 0),
              derive_seed(0, "data-order", 1)}  # fmt: skip
    assert a not in others and len(others) == 4
    code = "from physamp.seeding import derive_seed; print(derive_seed(0, 'sampler'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == a  # no hash randomisation between processes
    with pytest.raises(ValueError, match="seed must be an int"):
        derive_seed(1.5, "sampler")
    with pytest.raises(ValueError, match="purpose"):
        derive_seed(0, "")


# --- the 32-bit threshold Bernoulli draw (tests/test_bernoulli.py holds its exact checks) --------
def test_int32_bernoulli_frequencies_and_state_round_trip():
    bern = Int32Bernoulli("cpu", seed=5)
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(40_000, 1)
    x = bern.sample_from_probs_(p.clone())
    freq = x.mean(0)
    # 40,000 draws each: 5 σ of a binomial is at most 0.0125; p = 0 and 1 are exact
    assert freq[0] == 0 and freq[4] == 1
    assert torch.allclose(freq[1:4], torch.tensor([0.1, 0.5, 0.9]), atol=0.0125)
    state = bern.state_dict()
    first = bern.sample_from_logits_(torch.zeros(100, 7))
    bern.load_state_dict(state)
    assert torch.equal(bern.sample_from_logits_(torch.zeros(100, 7)), first)
    half = bern.random_half((1000, 8))
    assert 0.45 < float(half.mean()) < 0.55


def test_gibbs_and_ais_draw_through_the_same_bernoulli():
    from physamp.samplers import make_sampler

    s = make_sampler("gibbs", steps=2, seed=0)
    assert isinstance(s.word_generator(torch.device("cpu")), Int32Bernoulli)
    import physamp.models.rbm.ais as ais_module

    assert ais_module.Int32Bernoulli is Int32Bernoulli


# --- config flags ------------------------------------------------------------------------------
@dataclass
class ToyConfig:
    epochs: int = option(3, "passes over the data", type=positive_int)
    lr: float = option(0.1, "learning rate")
    schedule: str = option("cosine", "schedule", choices=("cosine", "constant"))
    clip: float | None = option(None, "gradient clip")
    amp: bool = option(False, "mixed precision")
    extra: dict = option(default_factory=dict, help="free-form")

    def validate(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        return self


def parse(argv):
    parser = argparse.ArgumentParser(prog="toy")
    add_config_arguments(parser, ToyConfig)
    return config_from_args(ToyConfig, parser.parse_args(argv)), parser


def test_flags_defaults_and_help_come_from_the_dataclass(capsys):
    cfg, parser = parse([])
    assert cfg == ToyConfig()
    cfg, _ = parse(["--epochs", "5", "--schedule", "constant", "--clip", "1.5", "--amp", "--set", "lr=0.5"])
    assert (cfg.epochs, cfg.schedule, cfg.clip, cfg.amp, cfg.lr) == (5, "constant", 1.5, True, 0.5)
    cfg, _ = parse(["--set", "extra={'a': 1}", "--set", "epochs=7"])
    assert cfg.extra == {"a": 1} and cfg.epochs == 7
    text = parser.format_help()
    assert "passes over the data (default: 3)" in text and "--clip" in text and "--set KEY=VALUE" in text
    with pytest.raises(SystemExit):
        parse(["--epochs", "0"])
    assert "must be a positive finite integer" in capsys.readouterr().err


def test_set_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown ToyConfig field.*nonsense.*the fields are: amp, clip"):
        parse(["--set", "nonsense=1"])
    with pytest.raises(ValueError, match="epochs must be an integer"):
        parse(["--set", "epochs=1.5"])
    with pytest.raises(ValueError, match="lr must be positive"):
        parse(["--set", "lr=-1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        apply_overrides(ToyConfig(), ["epochs"])
    assert apply_overrides(ToyConfig(), {"lr": 2}).lr == 2.0


def test_train_rbm_flags_are_generated_from_rbm_train_config():
    from physamp.cli import build_parser
    from physamp.models.rbm import RBMTrainConfig

    sub = build_parser()._subparsers._group_actions[0].choices["train-rbm"]
    text = sub.format_help()
    for flag in ("--hidden", "--chains", "-k", "--init-std", "--noise-space", "--set"):
        assert flag in text, flag
    args = sub.parse_args(["--hidden", "7", "-o", "steps=3", "--set", "init_std=0.02"])
    cfg = config_from_args(RBMTrainConfig, args)
    assert (cfg.n_hidden, cfg.sampler_options, cfg.init_std) == (7, {"steps": 3}, 0.02)


# --- train, then evaluate, in the library ------------------------------------------------------
def test_train_and_evaluate_is_resumable_and_its_data_is_part_of_the_run(tmp_path):
    from physamp.data import load_dataset
    from physamp.models.rbm import RBMTrainConfig, train_and_evaluate
    from physamp.training import RunDirectoryError

    data = load_dataset("mnist-bundled")
    cfg = RBMTrainConfig(n_hidden=6, epochs=1, batch_size=50, k=1, num_chains=20)
    kw = dict(ais_runs=4, ais_betas=40, max_train=200, max_test=50, progress=False)
    run = tmp_path / "run"
    first = train_and_evaluate(cfg, data, run_dir=run, **kw)
    nll = first.test_nll
    assert nll.nll_lower <= nll.nll <= nll.nll_upper and nll.num_examples == 50
    assert json.loads((run / "result.json").read_text())["test_nll"] == nll.nll
    assert json.loads((run / "config.json").read_text())["data"]["name"] == "mnist-bundled"
    again = train_and_evaluate(cfg, data, run_dir=run, **kw)  # finished: reloads, re-evaluates
    assert torch.equal(again.rbm.W, first.rbm.W) and again.test_nll.nll == nll.nll
    with pytest.raises(RunDirectoryError, match="data"):
        train_and_evaluate(cfg, data, run_dir=run, **{**kw, "max_train": 150})
    memory = train_and_evaluate(cfg, data, **kw)  # no run directory: the same numbers
    assert torch.equal(memory.rbm.W, first.rbm.W)


def test_paired_free_energy_reads_batched_biases_one_row_per_chain():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 5, generator=g, dtype=torch.float64)
    b, c = (
        torch.randn(4, 5, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    v = (torch.rand(4, 5, generator=g) < 0.5).double()
    f = RBMParams(W, b, c).free_energy(v)
    assert f.shape == (4,)
    for i in range(4):
        assert float(f[i]) == pytest.approx(float(free_energy(v[i : i + 1], W, b[i], c[i])[0]), abs=1e-12)


def test_set_is_held_to_the_flags_checks_and_none_has_one_spelling():
    from physamp.cli import build_parser
    from physamp.models.rbm import RBMTrainConfig

    sub = build_parser()._subparsers._group_actions[0].choices["train-rbm"]
    cfg = lambda argv: config_from_args(RBMTrainConfig, sub.parse_args(argv))  # noqa: E731
    with pytest.raises(ValueError, match="init_std must be a positive finite number"):
        cfg(["--set", "init_std=-1"])
    with pytest.raises(ValueError, match="noise_space must be one of rbm, ising"):
        cfg(["--set", "noise_space=foo"])
    with pytest.raises(ValueError, match="num_chains must be a positive finite integer"):
        cfg(["--set", "num_chains=0"])
    assert cfg(["--set", "topology=none"]) == cfg(["--topology", "none"]) == cfg(["--topology", "dense"])
    assert cfg(["--set", "max_weight=none"]).max_weight is None


def test_metric_sums_are_float64_like_python_floats():
    from physamp.training import TrainLoop

    ints = [2**40 + i for i in range(100)]
    floats = torch.linspace(1000.0, 1100.0, 100, dtype=torch.float32)

    def step(i):
        return {"count": torch.tensor(ints[i]), "loss": floats[i], "flag": torch.tensor(i % 2 == 0)}

    rec = TrainLoop(step, total_steps=100, state={}, log_every=100, progress=False).run()[-1]
    assert rec["count"] == sum(ints) / 100  # exact: no float32 rounding of a long window
    assert rec["loss"] == pytest.approx(sum(float(x) for x in floats) / 100, rel=1e-15)
    assert rec["flag"] == 0.5


def test_old_names_are_the_moved_modules_and_a_run_records_its_seed_derivation(tmp_path):
    import physamp.ais
    import physamp.models.rbm.ais
    import physamp.models.rbm.pcd
    import physamp.models.rbm_train
    from physamp.models.rbm import RBMTrainConfig, RBMTrainer
    from physamp.seeding import SEEDING_VERSION
    from physamp.training import RunDirectoryError

    assert physamp.ais is physamp.models.rbm.ais and physamp.models.rbm_train is physamp.models.rbm.pcd
    data = torch.rand(40, 6, generator=torch.Generator().manual_seed(0))
    cfg = RBMTrainConfig(n_hidden=3, epochs=1, batch_size=10, k=1, num_chains=5)
    tr = RBMTrainer(cfg, data)
    assert tr.config_dict()["seeding"] == SEEDING_VERSION
    tr.fit(run_dir=tmp_path / "r", progress=False)
    old = json.loads((tmp_path / "r" / "config.json").read_text())
    del old["seeding"]  # a run written under the earlier derivation
    (tmp_path / "r" / "config.json").write_text(json.dumps(old))
    with pytest.raises(RunDirectoryError, match="seeding"):
        RBMTrainer(cfg, data).fit(run_dir=tmp_path / "r", progress=False)
