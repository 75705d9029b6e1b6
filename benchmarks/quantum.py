"""The path-integral sampler ``quantum``: its sweep against classical Gibbs, and against OpenJij's SQA.

Run from the repository root::

    python benchmarks/quantum.py               # ~2 min on one thread
    python benchmarks/quantum.py --quick       # ~40 s
    python benchmarks/quantum.py --threads 2 --json out.json --no-profile

1. A ``quantum`` sweep at ``M`` Trotter slices (two exact block updates of whole worldlines) against
   ``M`` classical ``gibbs`` sweeps (``GibbsSampler(diagnostics=False)``, its default int32 draw) of
   the same RBM, end to end through ``Sampler.sample``, 100 chains, M = 8 and 32, on

   (A) dense   784x500 RBM, W ~ N(0, 0.05²), biases ~ N(0, 0.1²)
   (B) chimera 784x784 RBM on the Chimera C(14) graph (4,592 connections; CSR products)

   target <= 1.3. Both run the same number of unit updates (``M`` slices x units x chains per
   sweep); ``quantum`` has no R̂ recording (``diagnostics=False``) and no bar (``progress=False``).
   A per-op profile of the quantum sweep follows (each op timed alone on the sampler's own
   buffers): the two products of every slice's fields and the two periodic-chain draws (FFBS,
   :func:`physamp.samplers.worldlines.sample_periodic_chains`; the header says whether they run in
   its compiled kernel), beside ``M`` Gibbs sweeps (``GibbsKernel.run``).

2. Samples per second of ``quantum`` against OpenJij's SQA (``make_sampler("openjij")``, physamp's
   OpenJij backend: its compiled ``cxxjij`` system at a fixed ``(β, Γ)``) at equal sweeps and
   Trotter number on a 64x64 RBM (W ~ N(0, 0.1²)), 100 chains / reads, target >= 10x. Skipped with
   a message where OpenJij (the ``openjij`` extra) or the backend is not installed. The sweeps are
   not equal in what they do: a ``quantum`` sweep redraws every worldline exactly given the other
   layer, an SQA sweep is one Metropolis attempt per spin and slice.

Ratios are from interleaved repeats (numerator and denominator alternate, so load changes hit both),
min over repeats -- the least-disturbed run -- with the median beside it, and the ratio of process
CPU times (min over repeats), the steadier figure on a shared machine. Timings are wall-clock on
a possibly shared machine: treat differences under ~10 % as noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # OpenJij's OpenMP slices: one thread, as torch below
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from _timing import environment, finish  # noqa: E402
from _timing import timeit as _timeit  # noqa: E402
from samplers import make_models  # noqa: E402  (the same 784x500 and Chimera RBMs as samplers.py)

import physamp  # noqa: E402
from physamp.samplers import make_sampler  # noqa: E402
from physamp.samplers.gibbs import GibbsKernel, GibbsSampler  # noqa: E402
from physamp.samplers.quantum import QuantumSampler, _PathIntegral  # noqa: E402
from physamp.samplers.worldlines import trotter_coupling  # noqa: E402

SEED = 1234
GAMMA = 1.0
CHAINS = 100
CONFIGS = {
    # quantum sweeps per timed call at each M (gibbs runs M times as many), repeats
    "full": dict(repeat=7, sweeps={8: 6, 32: 2}, openjij=(100, 20, (16, 32)), profile_repeat=5),
    "quick": dict(repeat=3, sweeps={8: 3, 32: 1}, openjij=(100, 10, (16,)), profile_repeat=2),
}


#: process CPU seconds of the last timeit_pair, (a, b): steadier than wall time on a shared machine
LAST_CPU: tuple[list[float], list[float]] = ([], [])


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def timeit_pair(fa, fb, repeat: int) -> tuple[list[float], list[float]]:
    """Interleaved wall timings of two functions, after one untimed call of each (their process
    CPU times go to :data:`LAST_CPU`)."""
    fa(), fb()
    ta, tb, ca, cb = [], [], [], []
    for _ in range(repeat):
        for fn, t, c in ((fa, ta, ca), (fb, tb, cb)):
            wall, cpu = _timed(fn)
            t.append(wall)
            c.append(cpu)
    LAST_CPU[0][:], LAST_CPU[1][:] = ca, cb
    return ta, tb


# --- 1. a quantum sweep against M classical gibbs sweeps ------------------------------------------
def measure_sweep_ratio(rbm, M: int, sweeps: int, repeat: int) -> dict:
    q = QuantumSampler(sweeps, gamma=GAMMA, trotter=M, diagnostics=False, progress=False, seed=SEED)
    g = GibbsSampler(sweeps * M, diagnostics=False, seed=SEED)
    t_q, t_g = timeit_pair(lambda: q.sample(rbm, CHAINS), lambda: g.sample(rbm, CHAINS), repeat)
    sparse = q.sample(rbm, CHAINS).info["sparse"]
    r = min(t_q) / min(t_g)
    cpu_q, cpu_g = LAST_CPU
    return {
        "trotter": M,
        "chains": CHAINS,
        "quantum_sweeps_timed": sweeps,
        "quantum_sweep_s": min(t_q) / sweeps,
        "gibbs_M_sweeps_s": min(t_g) / sweeps,
        "quantum_sweep_median_s": statistics.median(t_q) / sweeps,
        "gibbs_M_sweeps_median_s": statistics.median(t_g) / sweeps,
        "sparse": bool(sparse),
        "ratio": r,
        "ratio_median": statistics.median(t_q) / statistics.median(t_g),
        "ratio_cpu": min(cpu_q) / min(cpu_g),
        "target": "<= 1.3",
        "pass": r <= 1.3,
    }


def profile_quantum_sweep(rbm, M: int, repeat: int) -> dict:
    """Seconds of each op of one quantum sweep (both half-sweeps), each timed alone (min of repeats)
    on the sampler's own engine and buffers, beside ``M`` classical Gibbs sweeps of the same chains."""
    params = rbm.params()
    kernel = GibbsKernel(params, CHAINS, beta=1.0 / M)
    gen = torch.Generator().manual_seed(SEED)
    V0 = (torch.rand(rbm.n_visible, 1, CHAINS, generator=gen) < 0.5).float().expand(-1, M, -1).contiguous()
    engine = _PathIntegral(kernel, V0, trotter_coupling(GAMMA, 1.0, M), gen)
    engine.run(1)
    k = kernel
    lh = engine._fields(k.W_hv, k.c, engine.V, engine._lh).clone()
    lv = engine._fields(k.W_vh, k.b, engine.H, engine._lv).clone()

    def products():
        engine._fields(k.W_hv, k.c, engine.V, engine._lh)
        engine._fields(k.W_vh, k.b, engine.H, engine._lv)

    def draws():  # the two calls of sample_periodic_chains a sweep makes, on saved logits
        engine._draw(lh, engine.H)
        engine._draw(lv, engine.V)

    ops = {
        "sweep (engine.run(1))": lambda: engine.run(1),
        "products of the fields (2 addmm)": products,
        "periodic-chain draws (2 FFBS calls)": draws,
    }
    out = {name: min(_timeit(fn, repeat, warmup=1)) for name, fn in ops.items()}
    g = GibbsSampler(M, diagnostics=False, seed=SEED)
    gk, src = g.kernel(params, CHAINS), g.word_generator(params.device)
    vT = V0[:, 0, :].contiguous()
    out["reference: M gibbs sweeps (GibbsKernel.run)"] = min(_timeit(lambda: gk.run(vT, M, src), repeat, 1))
    return out


# --- 2. against OpenJij's SQA ------------------------------------------------------------------------
def measure_openjij(chains: int, sweeps: int, trotters, repeat: int) -> dict:
    """Samples/s of quantum and of OpenJij's SQA at equal sweeps and Trotter number (64x64 RBM)."""
    g = torch.Generator().manual_seed(SEED)
    rbm = physamp.RBM(64, 64, init_std=0.1, generator=g)
    rows = {}
    for M in trotters:
        options = dict(gamma=GAMMA, beta=1.0, trotter=M, steps=sweeps, seed=SEED)
        try:
            oj = make_sampler("openjij", **options)
        except (ImportError, ValueError) as err:  # the extra (or the backend) is not installed
            return {"skipped": str(err).splitlines()[0]}
        q = make_sampler("quantum", diagnostics=False, progress=False, **options)
        t_q, t_oj = timeit_pair(
            lambda q=q: q.sample(rbm, chains), lambda oj=oj: oj.sample(rbm, chains), repeat
        )
        rate_q, rate_oj = chains / min(t_q), chains / min(t_oj)
        cpu_q, cpu_oj = LAST_CPU
        rows[M] = {
            "trotter": M,
            "chains": chains,
            "sweeps": sweeps,
            "quantum_s": min(t_q),
            "openjij_s": min(t_oj),
            "quantum_samples_per_s": rate_q,
            "openjij_samples_per_s": rate_oj,
            "speedup": rate_q / rate_oj,
            "speedup_median": statistics.median(t_oj) / statistics.median(t_q),
            "speedup_cpu": min(cpu_oj) / min(cpu_q),
            "target": ">= 10",
            "pass": rate_q / rate_oj >= 10,
        }
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sweeps (~40 s)")
    ap.add_argument("--json", metavar="PATH", help="write all numbers to PATH")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-op profile of the quantum sweep")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = CONFIGS["quick" if args.quick else "full"]
    t_start = time.perf_counter()
    from physamp.samplers.worldlines import compiled_status

    env = environment(
        mode="quick" if args.quick else "full", repeat=cfg["repeat"], worldline_draw=compiled_status()
    )
    print(
        f"physamp quantum-sampler benchmark ({env['mode']}): torch {env['torch']}, threads={env['threads']} "
        f"(of {env['cpu_count']} CPUs), python {env['python']}, repeat={cfg['repeat']}; wall-clock, "
        "possibly on a shared machine"
    )
    print(f"periodic-chain draw: {env['worldline_draw']}")
    out: dict = {"env": env, "sweep_ratio": {}, "profile": {}, "openjij": {}}
    models = make_models()

    print(f"\n1. a quantum sweep at M slices / M gibbs sweeps, {CHAINS} chains, Γ = {GAMMA:g}, β = 1 "
          "(min over interleaved repeats [median])")  # fmt: skip
    for model, rbm in models.items():
        for M, sweeps in cfg["sweeps"].items():
            r = measure_sweep_ratio(rbm, M, sweeps, cfg["repeat"])
            out["sweep_ratio"][f"{model}_M{M}"] = r
            q_ms, g_ms = r["quantum_sweep_s"] * 1e3, r["gibbs_M_sweeps_s"] * 1e3
            print(
                f"   {model:8s} M={M:<3d} sparse={r['sparse']!s:5s} quantum {q_ms:8.2f} ms / gibbs x{M} "
                f"{g_ms:8.2f} ms = {r['ratio']:.2f} [{r['ratio_median']:.2f}] (CPU time "
                f"{r['ratio_cpu']:.2f})  target {r['target']}  {'PASS' if r['pass'] else 'MISS'}"
            )
    if not args.no_profile:
        print("\n   profile of one quantum sweep (each op timed alone, both half-sweeps, ms):")
        for model, rbm in models.items():
            for M in cfg["sweeps"]:
                prof = profile_quantum_sweep(rbm, M, cfg["profile_repeat"])
                out["profile"][f"{model}_M{M}"] = prof
                print(f"   {model}, M={M}:")
                for name, s in prof.items():
                    print(f"      {name:46s} {s * 1e3:8.2f}")

    chains, sweeps, trotters = cfg["openjij"]
    print(
        f"\n2. samples/s, quantum / OpenJij SQA (physamp's openjij backend), 64x64 RBM, {chains} chains, "
        f"{sweeps} sweeps, equal Trotter number"
    )
    oj = measure_openjij(chains, sweeps, trotters, cfg["repeat"])
    out["openjij"] = oj
    if "skipped" in oj:
        print(f"   skipped: {oj['skipped']}")
    else:
        for M, r in oj.items():
            q_rate, oj_rate = r["quantum_samples_per_s"], r["openjij_samples_per_s"]
            print(
                f"   M={M:<3d} quantum {q_rate:10,.0f} /s ({r['quantum_s'] * 1e3:.1f} ms), "
                f"openjij {oj_rate:10,.0f} /s ({r['openjij_s'] * 1e3:.1f} ms) = "
                f"{r['speedup']:.1f}x [{r['speedup_median']:.1f}x] (CPU time {r['speedup_cpu']:.1f}x)  "
                f"target {r['target']}x  "
                f"{'PASS' if r['pass'] else 'MISS'}"
            )
    return finish(out, t_start, args.threads, args.json)


if __name__ == "__main__":
    main()
