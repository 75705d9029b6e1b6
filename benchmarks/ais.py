"""Benchmark: AIS of a 784x500 RBM with S&M's full schedule (14,501 βs) and 100 runs, 1 thread.

    python benchmarks/ais.py [--runs 100] [--steps-ref 14500]

The benchmark uses ``torch.set_num_threads(1)``. The weights are N(0, 0.05²),
a realistic scale for a trained MNIST RBM. The visible biases are the logit of
the smoothed MNIST base rate, read from ``shared/datasets/mnist/mnist_5k.csv.gz``
when that file exists and otherwise from a synthetic stand-in. The hidden
biases are -1. The base-rate model comes from the same data.

It prints the AIS wall time, the ratio to the 60 s target, and the time of the
bare products that one AIS step needs ((nh+1)x784 @ 784x100 and 784x500 @ 500x100,
both baddbmm as in the AIS loop), repeated 14,500 times in the same process.
That time is a roofline-style reference.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch

import physamp
from physamp.ais import default_betas, estimate_log_z

TARGET_S = 60.0


def mnist_binary() -> np.ndarray | None:
    path = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist" / "mnist_5k.csv.gz"
    if not path.exists():
        return None
    a = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.uint8)
    return (a[:, :784] > 127).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    nv, nh, R = 784, args.hidden, args.runs
    data = mnist_binary()
    if data is None:
        print("MNIST csv not found: using a synthetic base rate")
        rate = np.clip(np.random.default_rng(0).beta(0.3, 2.0, nv), 0.01, 0.99)
        data = (np.random.default_rng(1).random((1000, nv)) < rate).astype(np.float32)
    data_t = torch.from_numpy(data)
    g = torch.Generator().manual_seed(0)
    rbm = physamp.RBM(nv, nh)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(nh, nv, generator=g) * 0.05)
        p = (data_t.mean(0) + 0.05) / 1.1
        rbm.b.copy_(torch.log(p) - torch.log1p(-p))
        rbm.c.fill_(-1.0)
    betas = default_betas()
    K = len(betas) - 1

    t0 = time.perf_counter()
    res = estimate_log_z(rbm, data=data_t, num_runs=R, betas=betas, seed=0)
    t_ais = time.perf_counter() - t0

    # the bare products of K steps, with the same shapes and calls as the AIS loop
    W_aug = torch.randn(1, nh + 1, nv, generator=g)
    W_vh = torch.randn(1, nv, nh, generator=g)
    c = torch.zeros(1, nh + 1, 1)
    bcol = torch.zeros(1, nv, 1)
    v = (torch.rand(1, nv, R, generator=g) < 0.2).float()
    h = (torch.rand(1, nh, R, generator=g) < 0.5).float()
    A = torch.empty(1, nh + 1, R)
    V = torch.empty(1, nv, R)
    t0 = time.perf_counter()
    for _ in range(K):
        torch.baddbmm(c, W_aug, v, out=A)
        torch.baddbmm(bcol, W_vh, h, alpha=0.5, out=V)
    t_mm = time.perf_counter() - t0
    flops = K * 2 * R * ((nh + 1) * nv + nv * nh)

    print(f"torch {torch.__version__}, threads = {torch.get_num_threads()}")
    print(f"RBM {nv}x{nh}, {len(betas)} betas ({K} steps), {R} runs")
    print(res)
    print(f"AIS:         {t_ais:7.2f} s   ratio to the {TARGET_S:.0f} s target: {t_ais / TARGET_S:.2f}")
    print(
        f"bare matmul: {t_mm:7.2f} s   ({flops / t_mm / 1e9:.1f} GFLOP/s); AIS / matmul = {t_ais / t_mm:.2f}"
    )
    print(f"per step:    AIS {t_ais / K * 1e6:.0f} us, matmuls {t_mm / K * 1e6:.0f} us")


if __name__ == "__main__":
    main()
