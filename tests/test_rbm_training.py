"""RBM training through the one loop: exact resume of PCD / CD on every backend, run-directory
protection, the data identity, constraints, and the batch order of :class:`RBMTrainer`."""

import json

import pytest
import torch

import physamp
from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer, build_training_sampler, parse_topology
from physamp.seeding import derive_seed
from physamp.training import (
    CheckpointError,
    RunDirectoryError,
    TrainLoop,
    load_checkpoint,
    load_component,
    read_metrics,
)


def toy_data(n=64, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g)


def small_cfg(**kw):
    base = dict(n_hidden=8, epochs=3, batch_size=16, k=2, num_chains=10, lr=0.05)
    base.update(kw)
    return RBMTrainConfig(**base)


class Kill(Exception):
    """Stands for the process being killed."""


def kill_at(trainer: RBMTrainer, run_dir, step: int, checkpoint_every: int) -> None:
    """Train until a hard kill after ``step`` steps: no final checkpoint is written."""

    def killer(loop, s, metrics):
        if s == step:
            raise Kill

    with pytest.raises(Kill):
        trainer.fit(run_dir=run_dir, progress=False, checkpoint_every=checkpoint_every, callbacks=[killer])


def run_trainer(run_dir, stop_after=None, cfg=None):
    data = toy_data()
    tr = RBMTrainer(cfg or small_cfg(), data)
    tr.fit(run_dir=run_dir, progress=False, checkpoint_every=2, log_every=1, stop_after=stop_after)
    return tr


@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_kill_and_resume_is_bit_identical(tmp_path, method):
    cfg = small_cfg(method=method)
    full = run_trainer(tmp_path / "full", cfg=cfg)
    # interrupted after 5 steps (checkpoint at 4 and at the stop), resumed in a fresh process-like object
    run_trainer(tmp_path / "cut", stop_after=5, cfg=cfg)
    resumed = run_trainer(tmp_path / "cut", cfg=cfg)
    for name in ("W", "b", "c"):
        assert torch.equal(getattr(full.rbm, name), getattr(resumed.rbm, name)), name
    a = read_metrics(tmp_path / "full" / "metrics.jsonl")
    b = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert drop_time(a) == drop_time(b)


def test_resume_from_mid_run_checkpoint_without_final_save(tmp_path):
    """A hard kill leaves only the periodic checkpoint; resuming from it still matches."""
    cfg = small_cfg()
    full = run_trainer(tmp_path / "full", cfg=cfg)
    data = toy_data()
    kill_at(RBMTrainer(cfg, data), tmp_path / "kill", step=7, checkpoint_every=4)
    assert load_checkpoint(tmp_path / "kill" / "checkpoint.pt")["step"] == 4
    resumed = RBMTrainer(cfg, data)
    resumed.fit(run_dir=tmp_path / "kill", progress=False, checkpoint_every=4)
    assert torch.equal(full.rbm.W, resumed.rbm.W)


def test_run_directory_with_another_run_is_refused(tmp_path):
    run_trainer(tmp_path / "r", cfg=small_cfg(epochs=1))
    ckpt_before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(RunDirectoryError, match="already holds a different run.*n_hidden"):
        run_trainer(tmp_path / "r", cfg=small_cfg(epochs=1, n_hidden=9))
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == ckpt_before
    assert json.loads((tmp_path / "r" / "config.json").read_text())["n_hidden"] == 8


def test_checkpoint_from_another_model_shape(tmp_path):
    run_trainer(tmp_path / "r", cfg=small_cfg(epochs=1))
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    tr = RBMTrainer(small_cfg(n_hidden=9), toy_data())
    loop = TrainLoop(tr.step, total_steps=1, state=tr.state(), progress=False)
    with pytest.raises(CheckpointError, match="'model' does not fit"):
        loop.load_state_dict(ckpt)


@pytest.mark.parametrize(
    "sampler, options",
    [
        ("gibbs", {}),
        ("exact", {}),
        ("neal", {}),
        ("simulated", {"weight_noise": 0.05, "bias_noise": 0.05}),
        ("dimod", "sa"),
        ("dwave", "mock"),
    ],
)
def test_every_backend_trains_through_the_same_code_path(sampler, options):
    data = toy_data(n=32, d=8)
    sampler_options = {}
    if options == "sa":
        from dwave.samplers import SimulatedAnnealingSampler

        sampler_options = {"sampler": SimulatedAnnealingSampler()}
    elif options == "mock":
        pytest.importorskip("dwave.system")
        import numpy as np
        from dwave.samplers import SimulatedAnnealingSampler
        from dwave.system.testing import MockDWaveSampler

        from physamp.topology import chimera_rbm

        topo = chimera_rbm(1, 2)  # 8 visible, 8 hidden
        sa_kwargs = dict(
            beta_schedule_type="custom",
            beta_schedule=np.ones(50),
            proposal_acceptance_criteria="Gibbs",
            randomize_order=True,
        )
        mock = MockDWaveSampler(
            topology_type="chimera",
            topology_shape=[1, 2, 4],
            substitute_sampler=SimulatedAnnealingSampler(),
            substitute_kwargs=sa_kwargs,
        )
        sampler_options = {"sampler": mock, "topology": topo, "estimate_temperature": False}
    elif options:
        sampler_options = dict(options)
    n_hidden = 8
    cfg = small_cfg(
        n_hidden=n_hidden,
        epochs=1,
        batch_size=8,
        num_chains=8,
        sampler=sampler,
        sampler_options=sampler_options if options not in ("sa", "mock") else {},
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = RBMTrainer(
            cfg,
            data,
            sampler=build_training_sampler(
                RBMTrainConfig(**{**cfg.__dict__, "sampler_options": sampler_options})
            ),
        )
        if options == "mock":
            tr.rbm.set_mask(topo.mask)
        W0 = tr.rbm.W.detach().clone()
        hist = tr.fit(run_dir=None, progress=False, log_every=1)
    assert len(hist) == tr.total_steps == 4
    assert not torch.equal(W0, tr.rbm.W)
    assert torch.isfinite(tr.rbm.W).all()


def test_constraints_during_training():
    cfg = small_cfg(max_weight=0.05, max_bias=0.1, lr=0.5, topology="random:0.5", n_hidden=16)
    tr = RBMTrainer(cfg, toy_data(d=16))
    mask = tr.rbm.mask.clone()
    tr.fit(progress=False)
    assert tr.rbm.W.abs().max() <= 0.05 and tr.rbm.b.abs().max() <= 0.1
    assert (tr.rbm.W[~mask] == 0).all() and (~mask).sum() == 128


def test_training_learns_a_simple_distribution():
    """Two prototype patterns: PCD must raise their exact log-likelihood far above chance."""
    from physamp.samplers.exact import exact_log_z

    protos = torch.tensor([[1.0] * 6 + [0.0] * 6, [0.0] * 6 + [1.0] * 6])
    data = protos.repeat(50, 1) * 0.95 + 0.025
    cfg = small_cfg(n_hidden=4, epochs=60, batch_size=20, k=5, num_chains=20, lr=0.1, lr_final=0.02)
    tr = RBMTrainer(cfg, data)
    tr.fit(progress=False)
    ll = -tr.rbm.free_energy(protos).detach() - exact_log_z(tr.rbm.params())
    # Mass on the two prototypes: the data distribution puts 2 x 0.5 x 0.975^12 = 0.74 there,
    # a uniform model 2/4096. (PCD with few chains may favour one mode for a while, so the
    # test bounds the total, not each prototype.)
    mass = torch.exp(ll).sum()
    assert mass > 0.3, ll


def test_bad_training_input():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        RBMTrainer(small_cfg(), toy_data() * 3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        RBMTrainer(small_cfg(k=0), toy_data())
    with pytest.raises(ValueError, match="unknown topology"):
        parse_topology("hexagon", 16, 8)
    with pytest.raises(ValueError, match="does not fit"):
        parse_topology("chimera", 784, 500)
    assert parse_topology("chimera", 784, 784).num_connections == 4592
    with pytest.raises(ValueError, match="unknown sampler"):
        RBMTrainer(small_cfg(sampler="nope"), toy_data())


def test_rbm_masked_chimera_trainer_uses_mask():
    topo = parse_topology("chimera:extended", 784, 784)
    assert topo.name.endswith("[extended_pixel_blocks]")
    assert isinstance(physamp.RBM(784, 784, mask=topo.mask), torch.nn.Module)


def test_metrics_of_a_run_killed_before_its_first_checkpoint_are_not_duplicated(tmp_path):
    cfg = small_cfg()
    data = toy_data()
    tr = RBMTrainer(cfg, data)
    kill_at(tr, tmp_path / "r", step=3, checkpoint_every=100)
    # a record half-written by the crash
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "rec')
    RBMTrainer(cfg, data).fit(run_dir=tmp_path / "r", progress=False, log_every=1)
    steps = [r["step"] for r in read_metrics(tmp_path / "r" / "metrics.jsonl")]
    assert steps == list(range(1, tr.total_steps + 1))


@pytest.mark.parametrize(
    "sampler, extra",
    [("simulated", {}), ("gibbs", {"weight_noise": 0.1, "bias_noise": 0.1}), ("neal", {}), ("exact", {})],
)
def test_resume_is_bit_identical_for_other_backends(tmp_path, sampler, extra):
    cfg = small_cfg(sampler=sampler, epochs=2, **extra)
    full = run_trainer(tmp_path / "full", cfg=cfg)
    run_trainer(tmp_path / "cut", stop_after=3, cfg=cfg)
    resumed = run_trainer(tmp_path / "cut", cfg=cfg)
    assert torch.equal(full.rbm.W, resumed.rbm.W) and torch.equal(full.rbm.b, resumed.rbm.b)


def test_simulated_training_sampler_runs_k_persistent_steps():
    s = build_training_sampler(small_cfg(sampler="simulated", weight_noise=0.1, k=3))
    assert s.weight_noise == 0.1 and s.child.steps == 3 and s.child.persistent
    s = build_training_sampler(small_cfg(sampler="simulated", k=4, sampler_options={"child": "neal"}))
    assert type(s.child).__name__ == "NealSampler" and s.child.num_sweeps == 4 and s.child.persistent
    s = build_training_sampler(small_cfg(sampler="neal", bias_noise=0.2, k=5, method="cd"))
    assert s.bias_noise == 0.2 and s.child.num_sweeps == 5 and not s.child.persistent


def test_run_with_a_sampler_object_resumes(tmp_path):
    from dwave.samplers import SimulatedAnnealingSampler

    def make():
        at_beta_1 = dict(beta_schedule_type="custom", beta_schedule=[1.0] * 10,
                         proposal_acceptance_criteria="Gibbs", randomize_order=True)  # fmt: skip
        options = {"sampler": SimulatedAnnealingSampler(), **at_beta_1}
        cfg = small_cfg(sampler="dimod", epochs=1, sampler_options=options)
        return RBMTrainer(cfg, toy_data(d=6))

    a = make()
    a.fit(run_dir=tmp_path / "r", progress=False, stop_after=2)
    assert (
        "SimulatedAnnealingSampler"
        in json.loads((tmp_path / "r" / "config.json").read_text())["sampler_options"]["sampler"]
    )
    make().fit(run_dir=tmp_path / "r", progress=False)  # a new object, the same run: no error


def test_batch_order_is_unchanged_by_the_move_to_batch_order():
    """The permutation of epoch e is still randperm(N) seeded by derive_seed(seed, "data-order", e)."""
    data = toy_data(n=70)  # 4 batches of 16 per epoch, 6 examples never seen in an epoch
    tr = RBMTrainer(small_cfg(seed=5), data)
    assert tr.batches_per_epoch == 4
    for step in (0, 3, 4, 9):
        epoch, i = divmod(step, 4)
        g = torch.Generator().manual_seed(derive_seed(5, "data-order", epoch))
        idx = torch.randperm(70, generator=g)[i * 16 : (i + 1) * 16]
        assert torch.equal(tr.order.indices(epoch, i), idx)
    # fewer examples than a batch: one batch of all of them per epoch, as before
    small = RBMTrainer(small_cfg(batch_size=100), toy_data(n=10))
    assert small.batches_per_epoch == 1 and small.order.indices(0, 0).numel() == 10


def test_step_returns_tensors_and_records_are_floats(tmp_path):
    tr = RBMTrainer(small_cfg(epochs=1), toy_data())
    metrics = tr.step(0)
    assert isinstance(metrics["recon"], torch.Tensor) and isinstance(metrics["fe_gap"], torch.Tensor)
    assert not metrics["fe_gap"].requires_grad
    hist = RBMTrainer(small_cfg(epochs=1), toy_data()).fit(run_dir=tmp_path / "r", progress=False)
    assert all(isinstance(r[k], float) for r in hist for k in ("recon", "fe_gap", "lr"))


def test_data_identity_is_part_of_the_run(tmp_path):
    cfg = small_cfg(epochs=1)
    ident = {"name": "toy", "root": tmp_path / "data", "binarize_seed": 0}
    tr = RBMTrainer(cfg, toy_data(), data=ident)
    assert tr.config_dict()["data"] == {"name": "toy", "root": str(tmp_path / "data"), "binarize_seed": 0}
    assert "data" not in RBMTrainer(cfg, toy_data()).config_dict()
    tr.fit(run_dir=tmp_path / "r", progress=False, stop_after=2)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["name"] == "toy"
    # the same data (a new but equal identity) resumes; other data is refused
    RBMTrainer(cfg, toy_data(), data=dict(ident)).fit(run_dir=tmp_path / "r", progress=False)
    other = RBMTrainer(cfg, toy_data(), data={**ident, "name": "other"})
    with pytest.raises(RunDirectoryError, match=r"different run.*data\.name"):
        other.fit(run_dir=tmp_path / "r", progress=False)
    with pytest.raises(TypeError, match="data must be a dict"):
        RBMTrainer(cfg, toy_data(), data="toy")


def test_rbm_checkpoint_component_reader(tmp_path):
    tr = run_trainer(tmp_path / "r", cfg=small_cfg(epochs=1))
    sd = load_component(tmp_path / "r" / "checkpoint.pt")  # name="model"
    rbm = physamp.RBM(16, 8)
    rbm.load_state_dict(sd)
    assert torch.equal(rbm.W, tr.rbm.W)
    with pytest.raises(CheckpointError, match=r"no component 'critic'.*\['model', 'optimizer', 'sampler'\]"):
        load_component(tmp_path / "r" / "checkpoint.pt", "critic")
