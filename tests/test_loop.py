"""The one training loop and its utilities, for any model family: checkpoints (atomic, safe, one
layout), metrics, the resumable batch order, config identity, and the proof that a non-RBM model
(three networks with dropout, two optimizers, an LR scheduler, a shuffled DataLoader) killed and
resumed ends bit-identical to an uninterrupted run."""

import dataclasses
import json
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from physamp.seeding import derive_seed
from physamp.training import (
    BatchOrder,
    CheckpointError,
    MetricsLogger,
    ResumableLoader,
    RunDirectoryError,
    TrainLoop,
    canonical_config,
    checkpoint_components,
    checkpoint_config,
    checkpoint_payload,
    config_diff,
    load_checkpoint,
    load_component,
    read_metrics,
    resolve_device,
    save_checkpoint,
    save_components,
    seed_everything,
    set_threads,
    to_jsonable,
)


def test_resolve_device_and_threads():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert set_threads(1) == 1
    with pytest.raises(ValueError):
        set_threads(0)
    g = seed_everything(3)
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(3)))


def test_checkpoint_round_trip_and_refuses_pickled_code(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"x": torch.arange(3), "step": 4, "cfg": {"a": [1, 2]}})
    back = load_checkpoint(path)
    assert torch.equal(back["x"], torch.arange(3)) and back["step"] == 4 and back["cfg"] == {"a": [1, 2]}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"physamp_checkpoint": 1, "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable physamp checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"x": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"v": 1})
    before = path.read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"v": 2})
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]  # no temporary file left


def test_metrics_logger_csv_and_truncate(tmp_path):
    log = MetricsLogger(tmp_path / "m.csv")
    for s in range(1, 5):
        log.log(s, loss=1.0 / s)
    log.log(5, other=1.0)  # a new key adds a column; the earlier rows stay, empty there
    rows = read_metrics(tmp_path / "m.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and rows[0]["other"] == "" and rows[4]["other"] == 1.0
    log.truncate_after(2)
    rows = read_metrics(tmp_path / "m.csv")
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["loss"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        MetricsLogger(tmp_path / "m.txt")


# --- config identity --------------------------------------------------------------------------
class Thing:
    """An object in a config: its repr holds a memory address that changes in every process."""


@dataclasses.dataclass
class Hyper:
    lr: float = 0.1
    betas: tuple = (0.5, 0.999)


def test_to_jsonable_is_stable_and_never_a_memory_address():
    cfg = {
        "obj": Thing(),
        "cls": Thing,
        "hyper": Hyper(),
        "path": os.path.join("a", "b"),
        "nan": float("nan"),
    }
    cfg["t_small"], cfg["t_big"] = torch.arange(3), torch.arange(100.0)
    out = to_jsonable(cfg)
    assert out["obj"] == out["cls"] == "test_loop.Thing"
    assert out["hyper"] == {"lr": 0.1, "betas": [0.5, 0.999]} and out["nan"] == "nan"
    assert out["t_small"] == [0, 1, 2] and out["t_big"].startswith("torch.Tensor[float32 (100,) sha256:")
    assert to_jsonable(torch.arange(100.0)) == out["t_big"] != to_jsonable(torch.arange(1.0, 101.0))
    text = json.dumps(out)
    assert "0x" not in text and json.loads(text) == out
    assert canonical_config({**cfg, "obj": Thing()}) == canonical_config(cfg)
    assert canonical_config({"a": 1, "b": [1, 2]}) == canonical_config({"b": (1, 2), "a": 1})
    assert config_diff({"a": 1, "d": {"x": 1, "y": 2}}, {"a": 1, "d": {"x": 1, "y": 3}, "z": 0}) == [
        "d.y",
        "z",
    ]


def test_a_run_whose_config_holds_objects_resumes_in_a_new_process(tmp_path):
    def loop(**kw):
        params = nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([params], lr=0.1)

        def step_fn(step):
            opt.zero_grad()
            (params - 1).pow(2).sum().backward()
            opt.step()
            return {"loss": (params - 1).pow(2).sum().detach()}

        holder = nn.Module()
        holder.p = params
        config = {"sampler": Thing(), "hyper": Hyper(), "device": torch.device("cpu"), **kw}
        return TrainLoop(
            step_fn,
            total_steps=6,
            state={"model": holder, "opt": opt},
            run_dir=tmp_path / "r",
            config=config,
            checkpoint_every=2,
            progress=False,
        ), holder

    first, _ = loop()
    first.run(stop_after=3)
    text = (tmp_path / "r" / "config.json").read_text()
    assert "0x" not in text and json.loads(text)["sampler"] == "test_loop.Thing"
    assert checkpoint_config(tmp_path / "r" / "checkpoint.pt") == json.loads(text)
    second, holder = loop()  # new objects, new addresses: the same run
    second.run()
    assert second.step == 6 and [r["step"] for r in read_metrics(tmp_path / "r" / "metrics.jsonl")] == list(
        range(1, 7)
    )
    with pytest.raises(RunDirectoryError, match=r"different run.*\['hyper.lr'\]"):
        loop(hyper=Hyper(lr=0.2))


# --- metrics as tensors ---------------------------------------------------------------------------
def test_tensor_metrics_are_logged_as_float_means(tmp_path):
    values = [0.5, 1.25, 2.0, 4.75, 3.0, 1.0, -2.5]
    syncs = []

    def step_fn(step):
        t = torch.tensor(values[step])
        return {
            "loss": t * 2,
            "raw": t.clone().requires_grad_(True),
            "n": torch.tensor(step),
            "lr": 0.1 * step,
        }

    loop = TrainLoop(
        step_fn,
        total_steps=7,
        state={},
        run_dir=tmp_path / "r",
        log_every=3,
        progress=False,
        callbacks=[lambda lp, s, m: syncs.append(type(m["loss"]))],
    )
    hist = loop.run()
    assert syncs == [torch.Tensor] * 7  # callbacks see the step's tensors as they are
    assert [r["step"] for r in hist] == [3, 6, 7]
    for rec, chunk, steps in zip(
        hist, (values[:3], values[3:6], values[6:]), ([0, 1, 2], [3, 4, 5], [6]), strict=True
    ):
        assert all(type(rec[k]) is float for k in ("loss", "raw", "n", "lr"))
        assert rec["raw"] == sum(chunk) / len(chunk)  # exact: the values are binary fractions
        assert rec["loss"] == 2 * sum(chunk) / len(chunk)
        assert rec["n"] == sum(steps) / len(steps)
        assert rec["lr"] == pytest.approx(sum(0.1 * s for s in steps) / len(steps))
    assert read_metrics(tmp_path / "r" / "metrics.jsonl")[0]["raw"] == hist[0]["raw"]
    bad = TrainLoop(lambda s: {"v": torch.ones(3)}, total_steps=1, state={}, progress=False)
    with pytest.raises(ValueError, match=r"metric 'v' is a tensor of shape \(3,\)"):
        bad.run()
    bad = TrainLoop(lambda s: {"v": "x"}, total_steps=1, state={}, progress=False)
    with pytest.raises(TypeError, match="metric 'v' is a str"):
        bad.run()


def test_partial_metric_sums_survive_a_resume(tmp_path):
    """checkpoint_every=2, log_every=3: the record at step 3 averages steps 1-3 even across a resume."""
    vals = torch.rand(9, generator=torch.Generator().manual_seed(0))

    def run(run_dir, **kw):
        loop = TrainLoop(
            lambda s: {"v": vals[s].clone(), "w": float(vals[s]) / 3},
            total_steps=9,
            state={},
            run_dir=run_dir,
            checkpoint_every=2,
            log_every=3,
            progress=False,
        )
        loop.run(**kw)

    run(tmp_path / "full")
    run(tmp_path / "cut", stop_after=2)
    run(tmp_path / "cut", stop_after=3)
    run(tmp_path / "cut")
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    a, b = (drop_time(read_metrics(tmp_path / d / "metrics.jsonl")) for d in ("full", "cut"))
    assert a == b and [r["step"] for r in a] == [3, 6, 9]


# --- the one checkpoint layout --------------------------------------------------------------------
def test_checkpoint_layout_and_component_reader(tmp_path):
    net = nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    g = torch.Generator().manual_seed(4)
    payload = checkpoint_payload(
        {"model": net, "optimizer": opt, "noise": g, "raw": {"x": torch.ones(2)}},
        config={"lr": 1e-3, "obj": Thing()},
        step=7,
        extra={"seconds": 1.5},
    )
    assert payload["physamp_checkpoint"] == 1 and payload["step"] == 7
    assert payload["config"] == {"lr": 1e-3, "obj": "test_loop.Thing"} and payload["seconds"] == 1.5
    assert set(payload) == {"physamp_checkpoint", "step", "config", "rng", "seconds", "state:model",
                            "state:optimizer", "state:raw"}  # fmt: skip
    assert torch.equal(payload["rng"]["gen:noise"], g.get_state())
    path = save_components(tmp_path / "m.pt", {"model": net, "raw": {"x": torch.ones(2)}}, config={"a": 1},
                           extra={"seconds": 2.0})  # fmt: skip
    other = nn.Linear(3, 2)
    other.load_state_dict(load_component(path))
    assert torch.equal(other.weight, net.weight)
    assert torch.equal(load_component(load_checkpoint(path), "raw")["x"], torch.ones(2))
    assert checkpoint_components(path) == ["model", "raw"] and checkpoint_config(path) == {"a": 1}
    assert load_checkpoint(path)["seconds"] == 2.0 and load_checkpoint(path)["step"] == 0
    with pytest.raises(
        CheckpointError, match=r"no component 'critic': its components are \['model', 'raw'\]"
    ):
        load_component(path, "critic")
    legacy = save_checkpoint(tmp_path / "old.pt", {"model": net.state_dict(), "seconds": 1.0})
    with pytest.raises(CheckpointError, match="holds no components at all.*'model'"):
        load_component(legacy)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_component(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="clashes with the checkpoint layout"):
        checkpoint_payload({"model": net}, extra={"step": 3})
    with pytest.raises(TypeError, match=r"extra\['obj'\] is a Thing"):
        checkpoint_payload({"model": net}, extra={"obj": Thing()})
    with pytest.raises(TypeError, match="component 'x' is a Thing"):
        checkpoint_payload({"x": Thing()})


def test_train_loop_refuses_state_without_state_dict():
    with pytest.raises(TypeError, match=r"state\['cfg'\] is a dict"):
        TrainLoop(lambda s: {}, total_steps=1, state={"cfg": {"a": 1}}, progress=False)


# --- the resumable batch order --------------------------------------------------------------------
def test_batch_order_is_a_pure_function_of_seed_and_epoch():
    order = BatchOrder(10, 4, seed=3)
    assert len(order) == 3 and [len(b) for b in order] == [4, 4, 2]
    g = torch.Generator().manual_seed(derive_seed(3, "data-order", 2))
    assert torch.equal(order.permutation(2), torch.randperm(10, generator=g))
    order.set_epoch(2)
    assert sum(list(order), []) == order.permutation(2).tolist()
    order.set_epoch(2, start=1)
    assert list(order) == [order.indices(2, 1).tolist(), order.indices(2, 2).tolist()]
    assert not torch.equal(order.permutation(0), order.permutation(1))
    assert len(BatchOrder(10, 4, drop_last=True)) == 2 and order.position(7) == (2, 1)
    plain = BatchOrder(5, 2, shuffle=False)
    assert list(plain) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="leaves no batch"):
        BatchOrder(3, 4, drop_last=True)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        BatchOrder(3, 0)
    # as a DataLoader batch_sampler
    loader = DataLoader(TensorDataset(torch.arange(10)), batch_sampler=order)
    order.set_epoch(1)
    assert torch.cat([x for (x,) in loader]).tolist() == order.permutation(1).tolist()


class CountingDataset(Dataset):
    """A dataset that records which examples were loaded."""

    def __init__(self, n):
        self.x = torch.arange(n)
        self.loaded = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.loaded.append(int(i))
        return self.x[i]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_resumes_mid_epoch_exactly(num_workers):
    kw = dict(batch_size=3, seed=11, num_workers=num_workers)
    full = ResumableLoader(TensorDataset(torch.arange(10)), **kw)
    seq = [next(full)[0].tolist() for _ in range(9)]  # 4 batches per epoch (the last of 1): over 2 epochs
    assert sorted(sum(seq[:4], [])) == list(range(10)) and sorted(sum(seq[4:8], [])) == list(range(10))
    assert seq[:4] != seq[4:8]  # each epoch its own order
    assert (full.epoch, full.batch) == (2, 1)

    first = ResumableLoader(TensorDataset(torch.arange(10)), **kw)
    head = [next(first)[0].tolist() for _ in range(6)]
    state = first.state_dict()  # counted at consumption: workers prefetch, the position does not run ahead
    assert state["epoch"] == 1 and state["batch"] == 2 and head == seq[:6]
    ds = CountingDataset(10)
    resumed = ResumableLoader(ds, **{**kw, "num_workers": 0})
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert next(resumed).tolist() == seq[6]
    assert ds.loaded == seq[6]  # the skipped batches were not loaded
    assert [next(resumed).tolist() for _ in range(2)] == seq[7:9]
    with pytest.raises(ValueError, match="saved batch order differs.*seed: saved 11, now 12"):
        ResumableLoader(TensorDataset(torch.arange(10)), batch_size=3, seed=12).load_state_dict(state)
    with pytest.raises(ValueError, match=r"sets the DataLoader's \['generator', 'sampler'\]"):
        ResumableLoader(
            TensorDataset(torch.arange(10)), batch_size=3, sampler=[0], generator=torch.Generator()
        )


def test_resumable_loader_from_tensors_and_the_global_generator():
    x, y = torch.arange(12.0), torch.arange(12) * 10
    a = ResumableLoader.from_tensors(x, y, batch_size=5, seed=1, drop_last=True)
    seq = [next(a) for _ in range(5)]
    assert len(a) == 2 and all(len(bx) == 5 and torch.equal(by, bx.long() * 10) for bx, by in seq)
    b = ResumableLoader.from_tensors(x, y, batch_size=5, seed=1, drop_last=True)
    next(b)
    state = b.state_dict()
    c = ResumableLoader.from_tensors(x, y, batch_size=5, seed=1, drop_last=True)
    c.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(next(c), seq[1], strict=True))
    only = ResumableLoader.from_tensors(x, batch_size=4, shuffle=False)
    assert next(only).tolist() == [0.0, 1.0, 2.0, 3.0]
    # starting a DataLoader iterator must not draw from torch's global generator
    torch.manual_seed(0)
    before = torch.get_rng_state()
    loader = ResumableLoader(TensorDataset(x), batch_size=5)
    for _ in range(7):
        next(loader)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(ValueError, match="share their first dimension"):
        ResumableLoader.from_tensors(x, torch.arange(3), batch_size=2)


# --- the proof: a non-RBM model through TrainLoop, killed and resumed --------------------------------
class Kill(Exception):
    """Stands for the process being killed."""


class ToyALI:
    """Encoder, decoder and discriminator with dropout; Adam for the first two, SGD+momentum for the third,
    an LR scheduler for each optimizer, and a shuffled DataLoader through the resumable batch order."""

    def __init__(self, seed=0, num_workers=0, order_seed=None, **loader_kw):
        torch.manual_seed(1234 + seed)  # a fresh process: initial weights then come from the global stream
        d, z = 6, 2
        self.enc = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, z))
        self.dec = nn.Sequential(nn.Linear(z, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, d))
        self.disc = nn.Sequential(nn.Linear(d + z, 16), nn.LeakyReLU(0.2), nn.Dropout(0.5), nn.Linear(16, 1))
        self.opt_g = torch.optim.Adam(
            [*self.enc.parameters(), *self.dec.parameters()], lr=2e-3, betas=(0.5, 0.99)
        )
        self.opt_d = torch.optim.SGD(self.disc.parameters(), lr=0.05, momentum=0.9)
        self.sched_g = torch.optim.lr_scheduler.StepLR(self.opt_g, step_size=4, gamma=0.5)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda s: 1.0 / (1 + 0.1 * s))
        data = torch.randn(40, d, generator=torch.Generator().manual_seed(99))
        self.order_seed = seed if order_seed is None else order_seed
        self.batches = ResumableLoader(
            TensorDataset(data), batch_size=8, seed=self.order_seed, num_workers=num_workers, **loader_kw
        )
        self.latent = torch.Generator().manual_seed(derive_seed(seed, "latent"))
        self.config = {"model": "toy-ali", "seed": seed, "data": {"name": "gauss40"}, "net": self.enc}
        self.bce = nn.BCEWithLogitsLoss()

    def step(self, step):
        (x,) = next(self.batches)
        for net in (self.enc, self.dec, self.disc):
            net.train()  # dropout masks come from torch's global CPU generator (saved by TrainLoop)
        z = torch.randn(x.shape[0], 2, generator=self.latent)
        z_hat, x_tilde = self.enc(x), self.dec(z)
        real, fake = torch.cat([x, z_hat], 1), torch.cat([x_tilde, z], 1)
        ones, zeros = torch.ones(x.shape[0], 1), torch.zeros(x.shape[0], 1)
        d_loss = self.bce(self.disc(real.detach()), ones) + self.bce(self.disc(fake.detach()), zeros)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = self.bce(self.disc(real), zeros) + self.bce(self.disc(fake), ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        self.sched_g.step()
        self.sched_d.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "lr_g": self.sched_g.get_last_lr()[0]}

    def state(self):
        return {
            "encoder": self.enc, "decoder": self.dec, "discriminator": self.disc,
            "opt_g": self.opt_g, "opt_d": self.opt_d, "sched_g": self.sched_g, "sched_d": self.sched_d,
            "data": self.batches, "latent": self.latent,
        }  # fmt: skip

    def loop(self, run_dir, callbacks=(), total_steps=17):
        return TrainLoop(
            self.step, total_steps=total_steps, state=self.state(), run_dir=run_dir, config=self.config,
            checkpoint_every=3, log_every=4, progress=False, callbacks=callbacks,
        )  # fmt: skip


def kill_after(model: ToyALI, run_dir, step: int) -> None:
    def killer(loop, s, metrics):
        if s == step:
            raise Kill

    with pytest.raises(Kill):
        model.loop(run_dir, callbacks=[killer]).run()


def assert_same_state(a: dict, b: dict, where: str = "") -> None:
    """Two state dicts are equal: tensors bit for bit, everything else by ==."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("num_workers, loader_kw", [(0, {}), (2, {"persistent_workers": True})])
def test_non_rbm_model_killed_and_resumed_is_bit_identical(tmp_path, num_workers, loader_kw):
    full = ToyALI(num_workers=num_workers, **loader_kw)
    full.loop(tmp_path / "full").run()
    # killed after step 8 (checkpoints at 3 and 6, mid-epoch: 5 batches per epoch), no final checkpoint
    kill_after(ToyALI(num_workers=num_workers, **loader_kw), tmp_path / "cut", step=8)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 6
    assert load_component(tmp_path / "cut" / "checkpoint.pt", "data")["batch"] == 1
    resumed = ToyALI(num_workers=num_workers, **loader_kw)  # fresh objects, as a new process would build
    assert not torch.equal(resumed.enc[0].weight, full.enc[0].weight)
    resumed.loop(tmp_path / "cut").run()
    for name, obj in full.state().items():
        other = resumed.state()[name]
        if isinstance(obj, torch.Generator):
            assert torch.equal(obj.get_state(), other.get_state()), name
        else:
            assert_same_state(obj.state_dict(), other.state_dict(), name)
    assert (
        full.opt_g.state_dict()["state"]
        and full.opt_d.state_dict()["state"][0]["momentum_buffer"] is not None
    )
    assert full.sched_g.state_dict()["last_epoch"] == 17
    assert (full.batches.epoch, full.batches.batch) == (3, 2)
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    a, b = (drop_time(read_metrics(tmp_path / d / "metrics.jsonl")) for d in ("full", "cut"))
    assert a == b and [r["step"] for r in a] == [4, 8, 12, 16, 17]
    assert len({r["d_loss"] for r in a}) == 5


def test_non_rbm_resume_with_another_data_order_is_refused(tmp_path):
    kill_after(ToyALI(), tmp_path / "r", step=4)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    # a different seed in the config: the run directory is refused
    with pytest.raises(RunDirectoryError, match=r"different run.*\['seed'\]"):
        ToyALI(seed=1).loop(tmp_path / "r")
    # the same config, but the loader shuffles with another seed: the checkpoint does not fit
    with pytest.raises(CheckpointError, match="'data' does not fit.*seed: saved 0, now 5"):
        ToyALI(order_seed=5).loop(tmp_path / "r").run()
    other = ToyALI()
    other.config = {**other.config, "data": {"name": "gauss41"}}
    with pytest.raises(RunDirectoryError, match=r"different run.*\['data.name'\]"):
        other.loop(tmp_path / "r")
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    assert (
        checkpoint_config(tmp_path / "r" / "checkpoint.pt")["net"] == "torch.nn.modules.container.Sequential"
    )


def test_weighted_metrics_are_per_example_means_and_a_csv_grows_a_column(tmp_path):
    import csv as _csv

    from physamp.training import TrainLoop

    # step s: group a has examples with total 2s over s+1 of them; group b appears at step 3 only
    def step(s):
        out = {"loss": float(s), "a/x": (2.0 * s, s + 1)}
        if s == 3:
            out["b/x"] = (torch.tensor(6.0), torch.tensor(2.0))
        return out

    loop = TrainLoop(step, total_steps=4, state={}, run_dir=tmp_path, log_every=2, metrics_file="metrics.csv",
                     progress=False)  # fmt: skip
    records = loop.run()
    assert records[0]["a/x"] == pytest.approx((0 + 2) / (1 + 2)) and "b/x" not in records[0]
    assert records[1]["a/x"] == pytest.approx((4 + 6) / (3 + 4)) and records[1]["b/x"] == pytest.approx(3.0)
    rows = list(_csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["b/x"] for r in rows] == ["", "3.0"]
