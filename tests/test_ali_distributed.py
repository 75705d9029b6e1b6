"""Data-parallel ALI (physamp.training.distributed): 2 CPU processes (gloo) against 1, one global batch.

One ``torchrun --standalone --nproc_per_node 2`` launch (module fixture) runs every
multi-process scenario of :data:`WORKER` and saves each process's results; the tests
run the same scenarios in this process and compare.
"""

from __future__ import annotations

import copy
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from physamp.models.ali.train import ALITrainConfig, ALITrainer
from physamp.training.distributed import Distributed, GlobalBatchNorm, convert_global_batchnorm

from conftest import torchrun_two_processes

REPO = Path(__file__).resolve().parents[1]
TOY_STEPS = 5

multiprocess = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

# every scenario, as a function of `dist` (None: one process); run by the worker and by the tests
SCENARIOS = textwrap.dedent(
    """
    import torch
    from torch import nn

    from physamp.models.ali.train import ALITrainConfig, ALITrainer
    from physamp.training.distributed import convert_global_batchnorm

    TOY_STEPS = 5


    def toy_data():
        return torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))


    def train(dist, cfg, x, steps, *, run_dir=None, no_dropout=False):
        trainer = ALITrainer(cfg, x, device="cpu", dist=dist)
        if no_dropout:
            for m in trainer.ali.modules():
                if isinstance(m, nn.Dropout):
                    m.p = 0.0
        trainer.fit(run_dir=run_dir, progress=False, stop_after=steps)
        return trainer


    def snapshot(trainer):
        return {k: v.detach().clone() for k, v in trainer.ali.state_dict().items()}


    def grads(trainer):
        return {n: p.grad.detach().clone() for n, p in trainer.ali.named_parameters() if p.grad is not None}


    def toy(dist, **kw):
        cfg = ALITrainConfig(model="toy", epochs=1, batch_size=100, **kw)
        return snapshot(train(dist, cfg, toy_data(), TOY_STEPS))


    def toy_resumed(dist, run_dir):
        cfg = ALITrainConfig(model="toy", epochs=1, batch_size=100)
        train(dist, cfg, toy_data(), 3, run_dir=run_dir)
        trainer = train(dist, cfg, toy_data(), TOY_STEPS - 3, run_dir=run_dir)
        assert trainer.loop.step == TOY_STEPS
        return snapshot(trainer)


    def mnist(dist):
        x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(2))
        cfg = ALITrainConfig(model="mnist", epochs=1, batch_size=32)
        trainer = train(dist, cfg, x, 1, no_dropout=True)
        return {"state": snapshot(trainer), "grads": grads(trainer)}


    def bn_input():
        g = torch.Generator().manual_seed(3)
        x2 = torch.randn(8, 3, 5, 4, generator=g) * 2 + 1
        w2 = torch.randn(8, 3, 5, 4, generator=g)
        x1 = torch.randn(6, 4, generator=g) * 3 - 2
        w1 = torch.randn(6, 4, generator=g)
        return x2, w2, x1, w1


    def bn_reference_modules():
        torch.manual_seed(4)
        bn2, bn1 = nn.BatchNorm2d(3, momentum=0.05), nn.BatchNorm1d(4, momentum=None)
        with torch.no_grad():
            for bn in (bn2, bn1):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
        return bn2, bn1


    def bn(rank, world):
        # two training steps and an eval pass of each layer on this process's shard of the batch
        x2, w2, x1, w1 = bn_input()
        bn2, bn1 = bn_reference_modules()
        if world > 1:
            bn2, bn1 = convert_global_batchnorm(bn2), convert_global_batchnorm(bn1)
        out = {}
        for name, layer, x, w in (("2d", bn2, x2, w2), ("1d", bn1, x1, w1)):
            per = len(x) // world
            sl = slice(rank * per, (rank + 1) * per)
            for step in range(2):
                xi = x[sl].clone().requires_grad_(True)
                y = layer(xi * (step + 1))
                (y * w[sl]).sum().backward()
                out[f"{name}.y{step}"] = y.detach()
                out[f"{name}.dx{step}"] = xi.grad
            out[f"{name}.dweight"] = layer.weight.grad.clone()  # summed over both steps (and processes)
            out[f"{name}.dbias"] = layer.bias.grad.clone()
            if world > 1:
                torch.distributed.all_reduce(out[f"{name}.dweight"])
                torch.distributed.all_reduce(out[f"{name}.dbias"])
            out[f"{name}.running_mean"] = layer.running_mean.clone()
            out[f"{name}.running_var"] = layer.running_var.clone()
            out[f"{name}.tracked"] = layer.num_batches_tracked.clone()
            layer.eval()
            with torch.no_grad():
                out[f"{name}.eval"] = layer(x[sl])
        return out
    """
)

WORKER = textwrap.dedent(
    """
    import sys
    import hashlib

    import torch

    torch.set_num_threads(1)
    from physamp.training.distributed import Distributed
    from scenarios import bn, mnist, toy, toy_resumed

    out = sys.argv[1]
    with Distributed.from_env(device="cpu") as dist:
        assert dist is not None and dist.world_size == 2 and not torch.cuda.is_available()
        res = {"rank": dist.rank, "is_main": dist.is_main, "backend": dist.backend}
        res["mean"] = dist.mean({"a": torch.tensor(float(dist.rank)), "b": 2.0 * dist.rank})
        res["bn"] = bn(dist.rank, dist.world_size)
        res["toy"] = toy(dist)
        res["gan"] = toy(dist, gan=True)
        res["posthoc"] = toy(dist, train_decoder=False)
        res["resumed"] = toy_resumed(dist, sys.argv[2])
        res["rng_after_resume"] = hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()
        res["mnist"] = mnist(dist)
        torch.save(res, f"{out}/rank{dist.rank}.pt")
    """
)


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory):
    """The results of the two processes of one torchrun launch: ``[rank0, rank1]``."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    d = tmp_path_factory.mktemp("ddp")
    torchrun_two_processes(d, SCENARIOS, WORKER, str(d), str(d / "run"))
    return [torch.load(d / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    (d / "scenarios.py").write_text(SCENARIOS)
    sys.path.insert(0, str(d))
    try:
        import scenarios as mod

        yield mod
    finally:
        sys.path.remove(str(d))
        sys.modules.pop("scenarios", None)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def _assert_same_ints(a: dict, b: dict) -> None:
    for k in a:
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k


# --- without processes ------------------------------------------------------------------------
def test_from_env_is_none_without_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert Distributed.from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert Distributed.from_env(device="cpu") is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK")
    with pytest.raises(RuntimeError, match="RANK"):
        Distributed.from_env(device="cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        Distributed.from_env()


def test_distributed_attributes():
    d = Distributed(1, 4, 1, "cpu")
    assert (d.rank, d.world_size, d.local_rank, d.is_main, d.backend) == (1, 4, 1, False, "gloo")
    assert Distributed(0, 2).is_main
    with pytest.raises(ValueError):
        Distributed(2, 2)


def test_convert_keeps_parameters_buffers_and_names():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, momentum=0.05), nn.Sequential(nn.BatchNorm1d(5))
    )
    net[2].eval()
    keys = list(net.state_dict())
    params = [id(p) for p in net.parameters()]
    buffers = [id(b) for b in net.buffers()]
    convert_global_batchnorm(net)
    assert isinstance(net[1], GlobalBatchNorm) and isinstance(net[2][0], GlobalBatchNorm)
    assert net[1].momentum == 0.05 and not net[2][0].training and net[1].training
    assert list(net.state_dict()) == keys
    assert [id(p) for p in net.parameters()] == params and [id(b) for b in net.buffers()] == buffers
    # without a process group it is ordinary batch norm
    ref = nn.BatchNorm2d(3, momentum=0.05)
    x = torch.randn(4, 3, 2, 2)
    bn = convert_global_batchnorm(copy.deepcopy(ref))
    assert torch.allclose(bn(x), ref(x)) and torch.allclose(bn.running_var, ref.running_var)


# --- two processes ----------------------------------------------------------------------------
@multiprocess
def test_ranks_and_mean(two_procs):
    r0, r1 = two_procs
    assert (r0["rank"], r0["is_main"], r1["rank"], r1["is_main"]) == (0, True, 1, False)
    assert r0["backend"] == "gloo"
    for r in (r0, r1):
        assert float(r["mean"]["a"]) == 0.5 and r["mean"]["b"] == 1.0


@multiprocess
def test_global_batchnorm_matches_batchnorm_on_the_full_batch(two_procs, scenarios):
    ref = scenarios.bn(0, 1)
    r0, r1 = (r["bn"] for r in two_procs)
    for key, want in ref.items():
        if key.endswith((".y0", ".y1", ".dx0", ".dx1", ".eval")):  # per example: the two shards, in order
            got = torch.cat([r0[key], r1[key]])
        else:  # per channel: the same on both processes
            assert torch.equal(r0[key], r1[key]), key
            got = r0[key]
        if want.is_floating_point():
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=key)
        else:
            assert torch.equal(got, want), key


@multiprocess
@pytest.mark.parametrize("case", ["toy", "gan", "posthoc"])
def test_two_processes_match_one(two_procs, scenarios, case):
    kw = {"toy": {}, "gan": {"gan": True}, "posthoc": {"train_decoder": False}}[case]
    one = scenarios.toy(None, **kw)
    r0, r1 = (r[case] for r in two_procs)
    assert _max_diff(r0, r1) == 0.0  # the processes hold the very same weights
    _assert_same_ints(one, r0)
    assert _max_diff(one, r0) < 1e-5
    if case == "posthoc":  # the frozen decoder (in eval mode) did not change at all
        cfg = ALITrainConfig(model="toy", epochs=1, batch_size=100, train_decoder=False)
        start = ALITrainer(cfg, scenarios.toy_data()).ali.state_dict()
        decoder = [k for k in r0 if k.startswith("decoder.")]
        assert decoder and all(torch.equal(start[k], r0[k]) for k in decoder)


@multiprocess
def test_resume_in_two_processes_is_exact(two_procs):
    r0, r1 = two_procs
    for r in (r0, r1):
        assert _max_diff(r["resumed"], r0["toy"]) == 0.0  # 3 + 2 steps == 5 steps, on both processes
        _assert_same_ints(r["resumed"], r0["toy"])
    # the global generators (dropout) stay distinct per process after a resume
    assert r0["rng_after_resume"] != r1["rng_after_resume"]


@multiprocess
def test_image_model_two_processes_match_one(two_procs, scenarios):
    """MNIST, dropout off: one step. Its gradients pass through many batch-norm layers whose
    backward cancels heavily in float32 (the float32 gradients of one process differ from the
    float64 ones by up to ~1%), so they are compared relative to their size; Adam's first step
    (about lr · sign(g)) turns gradients that are nearly 0 into moves of ±lr, so after the step the
    weights could only be held to 2·lr, which any two runs meet: the gradients are the test."""
    one = scenarios.mnist(None)
    r0, r1 = (r["mnist"] for r in two_procs)
    assert _max_diff(r0["state"], r1["state"]) == 0.0
    assert one["grads"].keys() == r0["grads"].keys()
    for k, g in one["grads"].items():
        err = (r0["grads"][k] - g).norm() / g.norm()
        assert err < 2e-3, (k, float(err))
    state = {k: v for k, v in one["state"].items() if "running" in k}  # a forward quantity: tight
    assert _max_diff(state, {k: r0["state"][k] for k in state}) < 1e-5
    _assert_same_ints(one["state"], r0["state"])
