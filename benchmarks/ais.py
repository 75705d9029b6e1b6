"""Benchmark: AIS of a 784x500 RBM with S&M's full schedule (14,501 βs) and 100 runs, 1 thread.

    python benchmarks/ais.py [--runs 100] [--hidden 500] [--repeat 2] [--profile] [--json PATH]

The benchmark uses ``torch.set_num_threads(1)``. The weights are N(0, 0.05²),
a realistic scale for a trained MNIST RBM. The visible biases are the logit of
the smoothed MNIST base rate, read from ``shared/datasets/mnist/mnist_5k.csv.gz``
when that file exists and otherwise from a synthetic stand-in. The hidden
biases are -1. The base-rate model comes from the same data.

It prints the AIS wall time, the ratio to the 60 s target, and the ratio to the
*floor*: the bare products that one AIS step needs ((nh+1)x784 @ 784x100 and
784x500 @ 500x100, both baddbmm as in the AIS loop), repeated 14,500 times in the
same process, a roofline-style reference (target: AIS <= 1.3x the floor). The
floor is timed before and after every AIS run (``--repeat`` runs), so that a
change of load on a shared machine hits both; the ratio uses the fastest of each,
in wall time and in process CPU time (CPU time leaves out the time the OS gives
to other processes, so it is the steadier figure there). ``--profile`` adds the
time of each operation of one AIS step, each timed alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch

import physamp
from physamp.ais import default_betas, estimate_log_z

TARGET_S = 60.0
TARGET_FLOOR_RATIO = 1.3


def mnist_binary() -> np.ndarray | None:
    path = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist" / "mnist_5k.csv.gz"
    if not path.exists():
        return None
    a = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.uint8)
    return (a[:, :784] > 127).astype(np.float32)


def timed(fn) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def floor_fn(nv: int, nh: int, R: int, K: int, g: torch.Generator):
    """The bare products of K AIS steps, with the same shapes and calls as the AIS loop."""
    W_aug = torch.randn(1, nh + 1, nv, generator=g)
    W_vh = torch.randn(1, nv, nh, generator=g)
    c = torch.zeros(1, nh + 1, 1)
    bcol = torch.zeros(1, nv, 1)
    v = (torch.rand(1, nv, R, generator=g) < 0.2).float()
    h = (torch.rand(1, nh, R, generator=g) < 0.5).float()
    A = torch.empty(1, nh + 1, R)
    V = torch.empty(1, nv, R)

    def run():
        for _ in range(K):
            torch.baddbmm(c, W_aug, v, out=A)
            torch.baddbmm(bcol, W_vh, h, alpha=0.5, out=V)

    return run


def profile_step(rbm, R: int, repeat: int = 300) -> dict[str, float]:
    """Microseconds of each operation of one AIS step (k near the end of the schedule), each timed alone:
    the fused compiled pass of the hidden side where there is a kernel, and the torch path's operations."""
    from physamp.models.rbm.ais import _neg_softplus_step_
    from physamp.samplers.bernoulli import Int32Bernoulli

    nh, nv = rbm.n_hidden, rbm.n_visible
    W = rbm.W.detach()[None]
    W_aug = torch.cat([W, torch.zeros(1, 1, nv)], 1).contiguous()
    W_vh = W.transpose(1, 2).contiguous()
    c_aug = torch.zeros(1, nh + 1, 1)
    vbias = torch.zeros(1, nv, 1)
    v = (torch.rand(1, nv, R) < 0.2).float()
    A, s, t = torch.empty(1, nh + 1, R), torch.empty(1, nh, R), torch.empty(1, nh, R)
    V, row = torch.empty(1, nv, R), torch.empty(1, R)
    bern = Int32Bernoulli("cpu", seed=0)
    torch.baddbmm(c_aug, W_aug, v, out=A)
    A_h = A[:, :nh]
    h = (torch.rand(1, nh, R) < 0.5).float()
    torch.mul(A_h, 0.99, out=s).sigmoid_()
    s0, V0 = s.clone(), torch.baddbmm(vbias, W_vh, h)
    z = torch.empty(1, nh, R)
    ops = {}
    if getattr(bern, "compiled", False):  # what a step of the default schedule runs on the hidden side
        ops["fused: weight factor + draw h (compiled)"] = lambda: bern.ais_hidden_(A, 0.99, 1e-5, z, row)
    ops |= {
        "baddbmm hidden (+ (b - b_A)·v row)": lambda: torch.baddbmm(c_aug, W_aug, v, out=A),
        "(torch path) σ(β a)": lambda: torch.mul(A_h, 0.99, out=s).sigmoid_(),
        "(torch path) softplus difference": lambda: _neg_softplus_step_(t, A_h, s, 0.99, 0.98999, False),
        "(torch path) sum over hidden": lambda: torch.sum(t, 1, out=row),
        "(torch path) draw h (copy subtracted)": lambda: bern.sample_from_logits_(s.copy_(s0)),
        "baddbmm visible": lambda: torch.baddbmm(vbias, W_vh, h, alpha=0.99, out=V),
        "draw v from logits (copy subtracted)": lambda: bern.sample_from_logits_(V.copy_(V0)),
        "(copy h)": lambda: s.copy_(s0),
        "(copy v)": lambda: V.copy_(V0),
    }
    out = {}
    for name, fn in ops.items():
        for _ in range(10):
            fn()
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = best * 1e6
    out["(torch path) draw h (copy subtracted)"] -= out.pop("(copy h)")
    out["draw v from logits (copy subtracted)"] -= out.pop("(copy v)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=1, help="AIS runs, each between two floor timings")
    ap.add_argument("--profile", action="store_true", help="time each operation of one AIS step")
    ap.add_argument("--json", metavar="PATH", help="write the figures to PATH")
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
    try:
        from physamp.samplers.bernoulli import compiled_status

        draw = compiled_status()
    except ImportError:
        draw = "no compiled kernel in this version"

    floor = floor_fn(nv, nh, R, K, g)
    floors = [timed(floor)[:2]]
    runs = []
    for _ in range(max(1, args.repeat)):
        wall, cpu, res = timed(lambda: estimate_log_z(rbm, data=data_t, num_runs=R, betas=betas, seed=0))
        runs.append((wall, cpu))
        floors.append(timed(floor)[:2])
    t_ais, c_ais = min(w for w, _ in runs), min(c for _, c in runs)
    t_mm, c_mm = min(w for w, _ in floors), min(c for _, c in floors)
    flops = K * 2 * R * ((nh + 1) * nv + nv * nh)

    print(f"torch {torch.__version__}, threads = {torch.get_num_threads()}; Bernoulli draw: {draw}")
    print(f"RBM {nv}x{nh}, {len(betas)} betas ({K} steps), {R} runs")
    print(res)
    print(f"AIS:         {t_ais:7.2f} s   ratio to the {TARGET_S:.0f} s target: {t_ais / TARGET_S:.2f}")
    gflops = flops / t_mm / 1e9
    print(f"bare matmul: {t_mm:7.2f} s   ({gflops:.1f} GFLOP/s), the fastest of {len(floors)} timings")
    print(
        f"AIS / matmul = {t_ais / t_mm:.2f} wall, {c_ais / c_mm:.2f} CPU time "
        f"(target <= {TARGET_FLOOR_RATIO}: {'PASS' if t_ais / t_mm <= TARGET_FLOOR_RATIO else 'MISS'} wall, "
        f"{'PASS' if c_ais / c_mm <= TARGET_FLOOR_RATIO else 'MISS'} CPU)"
    )
    print(f"  each AIS run (wall / CPU s): {', '.join(f'{w:.2f} / {c:.2f}' for w, c in runs)}")
    print(f"  each floor   (wall / CPU s): {', '.join(f'{w:.2f} / {c:.2f}' for w, c in floors)}")
    print(f"per step:    AIS {t_ais / K * 1e6:.0f} us, matmuls {t_mm / K * 1e6:.0f} us")
    out = {
        "draw": draw,
        "ais_s": t_ais,
        "ais_cpu_s": c_ais,
        "floor_s": t_mm,
        "floor_cpu_s": c_mm,
        "ratio": t_ais / t_mm,
        "ratio_cpu": c_ais / c_mm,
        "runs": runs,
        "floors": floors,
        "log_z": res.log_z,
    }
    if args.profile:
        prof = profile_step(rbm, R)
        out["profile_us"] = prof
        print("one AIS step, each operation timed alone (fastest of 300), us:")
        for name, us in prof.items():
            print(f"    {name:42s} {us:8.1f}")
        print("    (a step runs the fused pass where Δβ max|a| <= 1/16, else the torch path)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
