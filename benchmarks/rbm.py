"""RBM benchmark: AIS wall time, PCD-15 epoch time, and physamp vs scikit-learn's BernoulliRBM.

Run from the repository root::

    python benchmarks/rbm.py              # full: 784x500, 10 epochs each, AIS 14,501 βs x 100 runs (~2.5 min)
    python benchmarks/rbm.py --quick      # 784x100, 1 epoch, AIS 1,000 βs x 20 runs for the NLLs (~1 min)
    python benchmarks/rbm.py --threads 2 --json out.json

Data: ``load_dataset("mnist-offline")`` (13,000 grey-level training digits, 2,000 test
digits binarised once with seed 0); it falls back to nothing -- the script needs the
shared MNIST files.

It prints

1. AIS wall time for a 784x500 RBM with the full default schedule (14,501 βs, i.e.
   14,500 intermediate distributions) and 100 runs, against the target < 60 s.
   Full mode: the model is physamp's 784x500 RBM trained in (2) (PCD-15, all epochs),
   so this AIS run also gives its log Z for (3). ``--quick``: a 784x500 RBM with
   W ~ N(0, 0.05²), visible biases at the data's smoothed base rate, hidden biases -1.
   When it misses the target, the script profiles one AIS step (matmul vs
   Bernoulli draws vs elementwise/overhead).
2. Seconds per PCD-15 epoch (13,000 digits, batch 100 = 130 updates, 100 persistent
   chains, ``gibbs`` backend, RBMTrainConfig defaults otherwise), through ``trainer.fit``.
3. physamp (PCD-15, SGD momentum 0.5, weight decay 1e-4, lr 0.05 -> 0.005 linear)
   vs ``sklearn.neural_network.BernoulliRBM`` (PCD-1, plain SGD), same hidden units,
   same number of updates (batch 100, same epochs), *exactly the same binary
   minibatches* (the same stochastic re-binarisation per presentation, same order:
   they come from ``RBMTrainer.batch``, fed to ``partial_fit`` one at a time).
   sklearn's ``learning_rate`` multiplies the batch-mean gradient (it divides the
   summed update by the batch size), like physamp's ``lr``; since physamp's SGD has
   momentum 0.5 (effective step lr / (1 - 0.5)), sklearn gets the same linear schedule
   at the effective step, 0.1 -> 0.01 (0.1 is also sklearn's default), set before each
   ``partial_fit``. sklearn keeps its own initialisation (W ~ N(0, 0.01²), zero biases;
   physamp starts its visible biases at the data's base rate) and has no weight decay.
   Both models are evaluated with physamp's AIS (same schedule, runs, seed and
   base-rate model) after checking that sklearn's energy convention equals physamp's
   E = -b·v - c·h - hᵀWv (its ``_free_energy`` and ``score_samples`` against physamp's
   ``free_energy``: asserted). Expected outcome: physamp's test NLL clearly lower
   (its upper bound, from log Z + 3σ, below sklearn's NLL estimate by > 1 nat; AIS
   under-estimates log Z on average, so sklearn's estimate errs low, not high).
   Training times of both are printed (sklearn's loop excludes making the batches).

Timings are wall-clock on a possibly shared machine; the thread count (torch and the
numpy BLAS that sklearn uses, via threadpoolctl) is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _timing import environment, timeit  # noqa: E402

import physamp  # noqa: E402
from physamp.ais import base_rate_biases, default_betas, estimate_log_z, test_nll  # noqa: E402
from physamp.data import load_dataset  # noqa: E402
from physamp.models.rbm import RBMTrainConfig, RBMTrainer  # noqa
from physamp.samplers.bernoulli import Int32Bernoulli  # noqa: E402

SEED = 0
AIS_TARGET_S = 60.0
# "clearly lower": physamp's NLL upper bound (+3σ of its log Z) below sklearn's NLL estimate by this many
# nats. AIS under-estimates log Z on average (Jensen), so sklearn's estimated NLL is, if anything, too low;
# its -3σ lower bound is often -inf with few runs, hence the point estimate.
NLL_MARGIN = 1.0

CONFIGS = {
    "full": dict(hidden=500, epochs=10, ais_betas=None, ais_runs=100),
    "quick": dict(hidden=100, epochs=1, ais_betas=1000, ais_runs=20),
}


# --- helpers ------------------------------------------------------------------------


def betas_of(n: int | None) -> np.ndarray:
    """The default S&M schedule (None) or ``n`` βs: the same three-segment shape, scaled down."""
    if n is None:
        return default_betas()
    a, b = max(2, n * 500 // 14501), max(2, n * 4000 // 14501)
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, a, endpoint=False),
            np.linspace(0.5, 0.9, b, endpoint=False),
            np.linspace(0.9, 1.0, n - a - b),
        ]
    )


def fmt_nll(r) -> str:
    return f"{r.nll:8.2f} nats  [{r.nll_lower:.2f}, {r.nll_upper:.2f}]"


# --- 1. AIS wall time -----------------------------------------------------------------
def random_rbm(nv: int, nh: int, train: torch.Tensor) -> physamp.RBM:
    g = torch.Generator().manual_seed(SEED)
    rbm = physamp.RBM(nv, nh)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(nh, nv, generator=g) * 0.05)
        rbm.b.copy_(base_rate_biases(nv, data=train).float())
        rbm.c.fill_(-1.0)
    return rbm


def measure_ais(rbm, train: torch.Tensor, betas: np.ndarray, runs: int) -> tuple[dict, object]:
    t0 = time.perf_counter()
    res = estimate_log_z(rbm, data=train, num_runs=runs, betas=betas, seed=SEED)
    sec = time.perf_counter() - t0
    return {
        "shape": [rbm.n_visible, rbm.n_hidden],
        "num_betas": len(betas),
        "runs": runs,
        "seconds": sec,
        "log_z": res.log_z,
        "log_z_lower": res.log_z_lower,
        "log_z_upper": res.log_z_upper,
        "ess": res.ess,
    }, res


def profile_ais_step(rbm, runs: int, K: int, steps: int = 300) -> dict:
    """Per-op time of the AIS loop (same shapes and calls as ``physamp.ais._run_ais``),
    each op timed alone over ``steps`` steps and scaled to ``K`` steps."""
    nh, nv, R = rbm.n_hidden, rbm.n_visible, runs
    g = torch.Generator().manual_seed(SEED)
    W = rbm.W.detach().float()[None]
    W_aug = torch.cat([W, torch.randn(1, 1, nv, generator=g)], 1).contiguous()
    c_aug = torch.zeros(1, nh + 1, 1)
    W_vh = W.transpose(1, 2).contiguous()
    bcol = torch.zeros(1, nv, 1)
    vT = (torch.rand(1, nv, R, generator=g) < 0.2).float()
    A = torch.empty(1, nh + 1, R)
    s, t = torch.empty(1, nh, R), torch.empty(1, nh, R)
    V = torch.empty(1, nv, R)
    row = torch.empty(1, R)
    bern = Int32Bernoulli(torch.device("cpu"), seed=SEED)
    torch.baddbmm(c_aug, W_aug, vT, out=A)
    A_h, A_d = A[:, :nh], A[:, nh]
    h = (torch.rand(1, nh, R, generator=g) < 0.5).float()

    def rep(fn):
        def run():
            for _ in range(steps):
                fn()

        return run

    def weights():
        torch.mul(A_h, 0.95, out=s).sigmoid_()
        torch.mul(A_h, -1e-5, out=t).expm1_().mul_(s).log1p_()
        torch.sum(t, 1, out=row)
        row.neg_().add_(A_d, alpha=1e-5)

    ops = {
        "matmul  hidden: baddbmm (nh+1)x nv @ nv x R": lambda: torch.baddbmm(c_aug, W_aug, vT, out=A),
        "matmul  visible: baddbmm nv x nh @ nh x R": lambda: torch.baddbmm(bcol, W_vh, h, alpha=0.95, out=V),
        "elementwise  weight factor (sigmoid, expm1, log1p, sum)": weights,
        "elementwise  visible sigmoid": lambda: V.sigmoid_(),
        "Bernoulli  random words only (h + v)": lambda: (bern.int32(nh * R), bern.int32(nv * R)),
        "Bernoulli  draw h + v (words + abs + sub + gt)": lambda: (
            bern.sample_from_probs_(t.copy_(s)),
            bern.sample_from_probs_(V),
        ),
        "  (refill copy in the line above, subtracted)": lambda: t.copy_(s),
    }
    out = {name: min(timeit(rep(fn), repeat=3, warmup=1)) * K / steps for name, fn in ops.items()}
    refill = out.pop("  (refill copy in the line above, subtracted)")
    key = "Bernoulli  draw h + v (words + abs + sub + gt)"
    out[key] = max(out[key] - refill, 0.0)
    return out


# --- 2 + 3. training ------------------------------------------------------------------
def train_physamp(ds, cfg: RBMTrainConfig) -> tuple[physamp.RBM, dict]:
    trainer = RBMTrainer(cfg, ds.train)
    marks: list[float] = []

    def on_step(loop, step, metrics):
        if step % trainer.batches_per_epoch == 0:
            marks.append(time.perf_counter())

    t0 = time.perf_counter()
    hist = trainer.fit(progress=False, callbacks=[on_step])
    total = time.perf_counter() - t0
    epoch_s = np.diff([t0] + marks).tolist()
    return trainer.rbm, {
        "seconds": total,
        "epoch_seconds": epoch_s,
        "updates": trainer.total_steps,
        "final_recon": hist[-1].get("recon"),
    }


def train_sklearn(ds, cfg: RBMTrainConfig, momentum: float) -> tuple[object, dict]:
    from sklearn.neural_network import BernoulliRBM

    # exactly physamp's minibatches: same order, same stochastic binarisation per presentation
    feeder = RBMTrainer(cfg, ds.train)
    batches = [feeder.batch(s).numpy().astype(np.float64) for s in range(feeder.total_steps)]
    lr_eff = [feeder.learning_rate(s) / (1 - momentum) for s in range(feeder.total_steps)]
    sk = BernoulliRBM(
        n_components=cfg.n_hidden,
        batch_size=cfg.batch_size,
        learning_rate=lr_eff[0],
        n_iter=cfg.epochs,
        random_state=cfg.seed,
    )
    t0 = time.perf_counter()
    for x, lr in zip(batches, lr_eff, strict=True):
        sk.learning_rate = lr
        sk.partial_fit(x)
    total = time.perf_counter() - t0
    return sk, {"seconds": total, "updates": len(batches), "lr_first": lr_eff[0], "lr_last": lr_eff[-1]}


def sklearn_to_physamp(sk) -> physamp.RBM:
    nh, nv = sk.components_.shape
    rbm = physamp.RBM(nv, nh)
    with torch.no_grad():
        rbm.W.copy_(torch.from_numpy(sk.components_).float())
        rbm.b.copy_(torch.from_numpy(sk.intercept_visible_).float())
        rbm.c.copy_(torch.from_numpy(sk.intercept_hidden_).float())
    return rbm


def check_sklearn_convention(sk, rbm: physamp.RBM, test: torch.Tensor) -> dict:
    """sklearn's F(v) and pseudo-likelihood vs physamp's free_energy (float64): asserted."""
    from sklearn.utils import check_random_state

    v = test[:16].double()
    r64 = physamp.RBM(rbm.n_visible, rbm.n_hidden).double()
    with torch.no_grad():
        r64.W.copy_(torch.from_numpy(sk.components_))
        r64.b.copy_(torch.from_numpy(sk.intercept_visible_))
        r64.c.copy_(torch.from_numpy(sk.intercept_hidden_))
        f_phys = r64.free_energy(v).numpy()
        f_phys32 = rbm.free_energy(v.float()).double().numpy()
    f_sk = sk._free_energy(v.numpy())
    err_fe = float(np.abs(f_sk - f_phys).max())
    # score_samples flips one random bit per row with RandomState(random_state): redo it with physamp
    vn = v.numpy()
    ind = (np.arange(vn.shape[0]), check_random_state(sk.random_state).randint(0, vn.shape[1], vn.shape[0]))
    v_ = vn.copy()
    v_[ind] = 1 - v_[ind]
    with torch.no_grad():
        fe_, fe = r64.free_energy(torch.from_numpy(v_)).numpy(), f_phys
    pl_phys = -vn.shape[1] * np.logaddexp(0, -(fe_ - fe))
    err_pl = float(np.abs(sk.score_samples(vn) - pl_phys).max())
    assert err_fe < 1e-8 * max(1.0, float(np.abs(f_phys).max())), f"free energy mismatch {err_fe}"
    assert err_pl < 1e-6 * max(1.0, float(np.abs(pl_phys).max())), f"pseudo-likelihood mismatch {err_pl}"
    return {
        "max_abs_err_free_energy": err_fe,
        "max_abs_err_pseudo_likelihood": err_pl,
        "max_abs_err_float32_model": float(np.abs(f_sk - f_phys32).max()),
    }


# --- report -------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    ap.add_argument(
        "--quick", action="store_true", help="784x100, 1 epoch, AIS 1,000 βs x 20 runs for the NLLs"
    )
    ap.add_argument("--epochs", type=int, help="override the number of epochs (both models)")
    ap.add_argument("--json", metavar="PATH", help="write all numbers to PATH")
    ap.add_argument("--profile", action="store_true", help="profile the AIS step even if it meets the target")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    cfgm = dict(CONFIGS[mode])
    if args.epochs:
        cfgm["epochs"] = args.epochs
    t_start = time.perf_counter()
    import sklearn

    env = environment(numpy=np.__version__, sklearn=sklearn.__version__, mode=mode)
    print(
        f"physamp RBM benchmark ({mode}): torch {env['torch']}, threads={env['threads']} "
        f"(torch and BLAS; of {env['cpu_count']} CPUs), numpy {env['numpy']}, sklearn {env['sklearn']}"
    )
    ds = load_dataset("mnist-offline")
    print(f"data: {ds.protocol}")
    nv, nh, E = ds.n_features, cfgm["hidden"], cfgm["epochs"]
    out: dict = {"env": env}

    # 2. physamp PCD-15 training (its model is item 1's in full mode)
    cfg = RBMTrainConfig(
        n_hidden=nh, epochs=E, batch_size=100, num_chains=100, k=15, sampler="gibbs", seed=SEED
    )
    rbm_p, tp = train_physamp(ds, cfg)
    out["pcd_epoch"] = {"shape": [nv, nh], **tp, "seconds_per_epoch": tp["seconds"] / E}

    # 1. AIS wall time at 784x500, full schedule, 100 runs
    full_betas = default_betas()
    if mode == "full":
        ais_model, ais_label = rbm_p, f"physamp PCD-15 model after {E} epochs"
    else:
        ais_model, ais_label = random_rbm(nv, 500, ds.train), "W ~ N(0, 0.05²), b = base rate, c = -1"
    a1, res_p_full = measure_ais(ais_model, ds.train, full_betas, 100)
    a1["model"] = ais_label
    a1["target_s"] = AIS_TARGET_S
    a1["pass"] = a1["seconds"] < AIS_TARGET_S
    out["ais"] = a1
    if not a1["pass"] or args.profile:
        out["ais_profile"] = profile_ais_step(ais_model, 100, len(full_betas) - 1)

    # 3. sklearn, same batches; both evaluated with the same AIS
    sk, ts = train_sklearn(ds, cfg, momentum=cfg.momentum)
    rbm_s = sklearn_to_physamp(sk)
    conv = check_sklearn_convention(sk, rbm_s, ds.test)
    betas3 = betas_of(cfgm["ais_betas"])
    if mode == "full":
        res_p = res_p_full
    else:
        res_p = estimate_log_z(rbm_p, data=ds.train, num_runs=cfgm["ais_runs"], betas=betas3, seed=SEED)
    t0 = time.perf_counter()
    res_s = estimate_log_z(rbm_s, data=ds.train, num_runs=cfgm["ais_runs"], betas=betas3, seed=SEED)
    t_ais_s = time.perf_counter() - t0
    nll_p, nll_s = test_nll(rbm_p, ds.test, res_p), test_nll(rbm_s, ds.test, res_s)
    passed = nll_p.nll_upper + NLL_MARGIN < nll_s.nll
    out["compare"] = {
        "shape": [nv, nh],
        "epochs": E,
        "updates": tp["updates"],
        "batch_size": 100,
        "ais_betas": len(betas3),
        "ais_runs": cfgm["ais_runs"],
        "convention_check": conv,
        "physamp": {
            "method": "PCD-15",
            "train_s": tp["seconds"],
            "nll": nll_p.nll,
            "nll_lower": nll_p.nll_lower,
            "nll_upper": nll_p.nll_upper,
            "log_z": res_p.log_z,
            "ess": res_p.ess,
        },
        "sklearn": {
            "method": "PCD-1",
            "train_s": ts["seconds"],
            "nll": nll_s.nll,
            "nll_lower": nll_s.nll_lower,
            "nll_upper": nll_s.nll_upper,
            "log_z": res_s.log_z,
            "ess": res_s.ess,
            "lr_first": ts["lr_first"],
            "lr_last": ts["lr_last"],
            "ais_s": t_ais_s,
        },
        "expected": "physamp's test NLL should be clearly lower",
        "margin_nats": NLL_MARGIN,
        "pass": passed,
    }
    total = time.perf_counter() - t_start
    out["total_s"] = total

    # --- print
    pe = out["pcd_epoch"]
    print()
    print(
        f"1. AIS {nv}x500, {a1['num_betas']:,} betas ({a1['num_betas'] - 1:,} intermediate "
        f"distributions), {a1['runs']} runs, {env['threads']} thread(s); model: {ais_label}"
    )
    lz = f"{a1['log_z']:.2f} [{a1['log_z_lower']:.2f}, {a1['log_z_upper']:.2f}]"
    print(f"   log Z = {lz}, ESS {a1['ess']:.1f}")
    verdict = "PASS" if a1["pass"] else "MISS"
    print(
        f"   AIS: {a1['seconds']:7.2f} s   ratio to the {AIS_TARGET_S:.0f} s target: "
        f"{a1['seconds'] / AIS_TARGET_S:.2f}  target < {AIS_TARGET_S:.0f} s  {verdict}"
    )
    if "ais_profile" in out:
        prof = out["ais_profile"]
        ssum = sum(prof.values())
        print(
            f"   profile (ops timed alone, scaled to {a1['num_betas'] - 1:,} steps; sum {ssum:.1f} s "
            f"vs AIS {a1['seconds']:.1f} s):"
        )
        for name, sec in prof.items():
            print(f"     {name:<58s} {sec:7.2f} s  {100 * sec / a1['seconds']:5.1f} % of AIS")
        rest = a1["seconds"] - ssum
        print(
            f"     {'rest (python loop, dispatch, unlisted ops)':<58s} {rest:7.2f} s  "
            f"{100 * rest / a1['seconds']:5.1f} % of AIS"
        )
    print()
    print(
        f"2. PCD-15 epoch, {nv}x{nh}, 13,000 digits, batch 100 ({pe['updates'] // E} updates/epoch), "
        f"100 chains, gibbs: {pe['seconds_per_epoch']:.2f} s/epoch (mean of {E}; per epoch: "
        + ", ".join(f"{x:.2f}" for x in pe["epoch_seconds"])
        + ")"
    )
    c = out["compare"]
    print()
    print(
        f"3. physamp vs sklearn BernoulliRBM, {nv}x{nh}, {E} epoch(s) = {c['updates']} updates "
        f"of batch 100 each, identical stochastically binarised minibatches"
    )
    print(
        f"   sklearn F(v) and score_samples match physamp's E = -b.v - c.h - h'Wv: "
        f"max |dF| {conv['max_abs_err_free_energy']:.1e}, "
        f"max |dPL| {conv['max_abs_err_pseudo_likelihood']:.1e} (asserted)"
    )
    print(
        f"   test NLL on {nll_p.num_examples} test digits, AIS {c['ais_betas']:,} betas x "
        f"{c['ais_runs']} runs (bounds from log Z ± 3σ):"
    )
    lab_p = "physamp PCD-15 (lr 0.05->0.005, mom 0.5, wd 1e-4)"
    lab_s = f"sklearn PCD-1  (lr {ts['lr_first']:.2g}->{ts['lr_last']:.2g}, no mom/wd)"
    print(f"   {lab_p:<52s} {fmt_nll(nll_p)}   train {tp['seconds']:7.2f} s")
    print(f"   {lab_s:<52s} {fmt_nll(nll_s)}   train {ts['seconds']:7.2f} s")
    print(
        f"   difference sklearn - physamp: {nll_s.nll - nll_p.nll:.2f} nats; "
        f"train time ratio physamp/sklearn {tp['seconds'] / ts['seconds']:.2f}"
    )
    print(
        f"   expected: physamp's test NLL should be clearly lower (its upper bound < sklearn's "
        f"estimate - {NLL_MARGIN:.0f} nat)  {'PASS' if passed else 'MISS'}"
    )
    print()
    print(f"total: {total:.1f} s ({total / 60:.1f} min), threads={env['threads']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
