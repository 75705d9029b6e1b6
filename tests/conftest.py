"""Shared helpers: small random RBMs, their exact joint distribution, TV distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import physamp

# One thread: on a shared 2-core machine OpenMP with 2 threads can be many times
# slower than 1 when the other core is busy; the tests' results do not depend on it.
torch.set_num_threads(1)


def random_rbm(n_visible: int, n_hidden: int, seed: int, scale: float = 1.0, mask=None):
    g = torch.Generator().manual_seed(seed)
    rbm = physamp.RBM(n_visible, n_hidden, mask=mask)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(n_hidden, n_visible, generator=g) * scale)
        rbm.b.copy_(torch.randn(n_visible, generator=g) * scale * 0.5)
        rbm.c.copy_(torch.randn(n_hidden, generator=g) * scale * 0.5)
    rbm.apply_constraints_()
    return rbm


def all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)


def exact_joint(W, b, c) -> np.ndarray:
    """p(v, h) over all states, indexed by state_index(v, h); computed independently in numpy."""
    W, b, c = (
        np.asarray(x.detach() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in (W, b, c)
    )
    nh, nv = W.shape
    V, H = all_states(nv), all_states(nh)
    E = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W.T @ H.T  # (2^nv, 2^nh)
    logp = -E - np.logaddexp.reduce(-E.ravel())
    return np.exp(logp).ravel()  # index = iv * 2^nh + ih


def state_index(v: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    v = v.detach().cpu().numpy().astype(np.int64)
    h = h.detach().cpu().numpy().astype(np.int64)
    nv, nh = v.shape[1], h.shape[1]
    iv = v @ (1 << np.arange(nv - 1, -1, -1))
    ih = h @ (1 << np.arange(nh - 1, -1, -1))
    return iv * (1 << nh) + ih


def tv_distance(samples, p: np.ndarray) -> float:
    counts = np.bincount(state_index(samples.v, samples.h), minlength=p.size)
    return 0.5 * float(np.abs(counts / counts.sum() - p).sum())


def expected_tv(p: np.ndarray, n: int) -> float:
    """Approximate E[TV] of an n-sample empirical distribution of p (normal approximation)."""
    return 0.5 * float(np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * n))))


@pytest.fixture
def small_rbm():
    return random_rbm(4, 3, seed=0, scale=1.0)


def tiny_train_args(epochs: int = 1) -> list[str]:
    """``physamp train-rbm`` on the bundled digits in a few seconds (a 784x4 RBM, tiny AIS)."""
    return ["train-rbm", "--dataset", "mnist-bundled", "--hidden", "4", "--epochs", str(epochs), "-k", "1",
            "--ais-runs", "2", "--ais-betas", "10", "--figure-steps", "2", "--no-progress"]  # fmt: skip


def torchrun_two_processes(folder, scenarios: str, worker: str, *args: str, timeout: float = 240) -> None:
    """Write ``scenarios.py`` and ``worker.py`` to ``folder`` and run the worker in 2 CPU processes under
    ``torchrun --standalone`` (gloo, one thread each), with ``folder`` and the repository importable;
    ``pytest.fail`` with the output tails when it does not exit 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = Path(folder)
    repo = Path(__file__).resolve().parents[1]
    (folder / "scenarios.py").write_text(scenarios)
    (folder / "worker.py").write_text(worker)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(folder), str(repo)]))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(folder / "worker.py"), *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")


# --- TV tolerances of the dimod-sampler tests (SimulatedQPU, as_dimod) ---
def tv(p, q):
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def tv_within(q, p, bound, what):
    """Whether TV(q, p) < bound; prints both (``pytest -s -k NAME`` shows the figures)."""
    value = tv(q, p)
    print(f"{what}: TV {value:.4f} (a perfect sampler's 99th percentile {bound:.4f})")
    return value < bound


def tv_bound(p, n, draws=200, seed=0):
    """The TV to ``p`` that a perfect sampler's ``n`` draws exceed only 1 % of the time (99th percentile
    over ``draws`` seeded multinomial draws): the tolerance every TV test here uses."""
    rng = np.random.default_rng(seed)
    return float(np.quantile([tv(rng.multinomial(n, p) / n, p) for _ in range(draws)], 0.99))
