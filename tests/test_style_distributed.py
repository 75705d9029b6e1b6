"""Data-parallel style training: 2 CPU processes (gloo, under torchrun) against 1 on the same global batch."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import torchrun_two_processes

REPO = Path(__file__).resolve().parents[1]

SCENARIOS = textwrap.dedent(
    """
    import torch

    from physamp.models.style.loss import StyleLoss
    from physamp.models.style.train import StyleTrainConfig, StyleTrainer
    from physamp.models.style.vgg import random_vgg

    STEPS = 3


    def trainer(dist, train_styles=None, net=None, steps=STEPS):
        g = torch.Generator().manual_seed(0)
        content = torch.rand(12, 3, 16, 16, generator=g)
        styles = [torch.rand(3, 20, 24, generator=g) for _ in range(3)]
        vgg, pre = random_vgg(seed=0)
        cfg = StyleTrainConfig(image_size=16, batch_size=4, steps=steps, style_size=None, seed=1)
        return StyleTrainer(cfg, content, styles, loss=StyleLoss(vgg, pre, style_weight=1.0), dist=dist,
                            train_styles=train_styles, net=net)


    def run(dist, run_dir=None, stop_after=None, steps=STEPS):
        t = trainer(dist, steps=steps)
        records = t.fit(run_dir=run_dir, progress=False, log_every=1, stop_after=stop_after)
        grads = {n: p.grad.clone() for n, p in t.net.named_parameters() if p.grad is not None}
        state = {k: v.clone() for k, v in t.net.state_dict().items()}
        return {"state": state, "records": records, "grads": grads}
    """
)

WORKER = textwrap.dedent(
    """
    import sys

    import torch

    torch.set_num_threads(1)
    from physamp.training.distributed import Distributed
    from scenarios import STEPS, run

    out = sys.argv[1]
    with Distributed.from_env(device="cpu") as dist:
        res = {"plain": run(dist), "one": run(dist, steps=1)}
        run(dist, run_dir=sys.argv[2], stop_after=1)        # killed after 1 step ...
        res["resumed"] = run(dist, run_dir=sys.argv[2])    # ... and resumed to the end
        torch.save(res, f"{out}/rank{dist.rank}.pt")
    """
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    d = tmp_path_factory.mktemp("style-ddp")
    torchrun_two_processes(d, SCENARIOS, WORKER, str(d), str(d / "run"))
    sys.path.insert(0, str(d))
    try:
        import scenarios

        single = {"plain": scenarios.run(None), "one": scenarios.run(None, steps=1)}
    finally:
        sys.path.remove(str(d))
        sys.modules.pop("scenarios", None)
    return [torch.load(d / f"rank{r}.pt", weights_only=False) for r in (0, 1)], single


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_two_processes_train_what_one_process_trains(results):
    (rank0, rank1), single = results
    # DDP's averaged gradient of the first step is the one-process gradient of the global batch
    g2, g1 = rank0["one"]["grads"], single["one"]["grads"]
    assert g2.keys() == g1.keys() and len(g1) == 48  # 16 convolutions, 16 γ and 16 β
    scale = max(v.abs().max().item() for v in g1.values())
    assert _max_diff(g2, g1) < 1e-5 * scale
    # both processes hold the same weights. (Adam turns float rounding of a gradient near zero into a
    # step of up to lr, so the weights are compared with one process's through the gradients and losses)
    assert _max_diff(rank0["plain"]["state"], rank1["plain"]["state"]) == 0
    # the logged means are the global batch's, per style too: exact at the first step, close after
    for scenario, rel in (("one", 1e-5), ("plain", 1e-2)):
        for got, want in zip(rank0[scenario]["records"], single[scenario]["records"], strict=True):
            assert got.keys() == want.keys()
            for k in got:
                if k not in ("step", "time_s"):
                    assert got[k] == pytest.approx(want[k], rel=rel, abs=1e-9), (scenario, k)


def test_a_killed_two_process_run_resumes_to_the_same_weights(results):
    (rank0, rank1), _ = results
    assert _max_diff(rank0["resumed"]["state"], rank0["plain"]["state"]) == 0
    assert _max_diff(rank1["resumed"]["state"], rank0["plain"]["state"]) == 0
