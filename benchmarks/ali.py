"""ALI training-step benchmark: physamp's ``ALITrainer.step`` against a minimal hand-written torch step.

Run from the repository root::

    python benchmarks/ali.py              # repeats x steps: toy 15 x 10, SVHN 7 x 3 (~2.5 min; ~5 min loaded)
    python benchmarks/ali.py --quick      # repeats x steps: toy 5 x 10, SVHN 3 x 3 (~1 min; ~1.5 min loaded)
    python benchmarks/ali.py --threads 2 --json out.json

Models (``build_ali(name)``, the table's hyper-parameters, batch 100):

- ``toy``: points ``(N, 2)`` from the 25-Gaussian grid mixture (§5.4.5), 10,000 of them;
  implicit encoder MLP, decoder MLP, maxout discriminator.
- ``svhn``: Table 5.4 on 3x32x32 images, 1,000 random uint8 images (0..255, scaled to
  [0, 1] per batch, as the library keeps SVHN). The contents do not change the work.

For each model, one ``build_ali`` model is made; the library trainer
(``ALITrainer(ALITrainConfig(model=name), x, ali=model)``) trains it and the reference
trains a ``copy.deepcopy`` of it. The reference is the skeleton of the spec
(``shared/specs/ALI.md`` §9) with the discriminator pass concatenated as the library does::

    x = data[perm[batch]] (.float() / 255 for uint8)
    z = randn(B, *latent);  ε = randn(...)
    ẑ = mu + exp(log_sigma) * ε   (SVHN: slices of encoder.head(encoder.body(x)))
    ẑ = encoder(x, eps=ε)          (toy: the implicit encoder)
    x̃ = decoder(z)
    l = discriminator(cat[x, x̃], cat[ẑ, z]);  l_q, l_p = l[:B], l[B:]
    L_d = softplus(-l_q).mean() + softplus(l_p).mean();  L_g = softplus(l_q).mean() + softplus(-l_p).mean()
    .grad = autograd.grad(L_d, θ_d, retain_graph=True), autograd.grad(L_g, θ_g);  Adam.step() x 2

Both are timed in the same run, interleaved (library, reference, library, reference, ...)
after warm-up steps, each repeat timing a block of consecutive steps (``_timing.timeit``).
It prints steps/s of both from the fastest repeat (the least-disturbed one) and the median
repeat, the spread between repeats, and the ratio library time / reference time (target
<= 1.1, judged on the fastest repeats) from the fastest repeats, from the medians, and per
adjacent pair of repeats. The same blocks' process CPU time (``time.process_time``) is shown
too: it leaves out the time the OS gave other processes, so on a loaded machine its ratio
is the steadier one.

With a CUDA device it also measures images/s of the library's SVHN step in float32 and with
``ALITrainConfig(amp=True)`` (bfloat16 autocast), interleaved, ``torch.cuda.synchronize()``
around each timed block. Without one that part is skipped (and says so).

Timings are wall-clock on a possibly shared machine; the torch thread count is printed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _timing import environment, finish, timeit  # noqa: E402

from physamp.models.ali import ALITrainConfig, ALITrainer, build_ali  # noqa: E402
from physamp.models.ali.toy import grid_mixture  # noqa: E402

SEED = 0
BATCH = 100
TARGET = 1.1  # library step time / reference step time

# per model: (warm-up steps of each, steps per timed block, repeats); cuda: the same for the AMP part
CONFIGS = {
    "full": dict(toy=(10, 10, 15), svhn=(2, 3, 7), cuda=(10, 20, 5)),
    "quick": dict(toy=(5, 10, 5), svhn=(1, 3, 3), cuda=(5, 10, 3)),
}


# --- data and the two steps ---------------------------------------------------------------
def training_data(name: str, device: str | torch.device = "cpu") -> torch.Tensor:
    if name == "toy":
        return grid_mixture(10_000, seed=SEED)[0].to(device)
    g = torch.Generator().manual_seed(SEED)
    return torch.randint(0, 256, (1000, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)


def make_model(name: str, x_train: torch.Tensor):
    ali = build_ali(name, seed=SEED)
    if ali.spec.is_image:  # as ALITrainer does for the model it builds itself
        ali.decoder.init_output_bias(x_train[:500].float().div(255.0))
    return ali


class ReferenceStep:
    """The minimal ALI step of the spec's §9 skeleton, on (a copy of) the same networks."""

    def __init__(self, ali, x_train: torch.Tensor, hp: dict):
        self.enc, self.dec, self.disc = ali.encoder, ali.decoder, ali.discriminator
        self.spec = ali.spec
        self.x_train = x_train
        self.perm = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(SEED))
        self.perm = self.perm.to(x_train.device)
        self.n_batches = x_train.shape[0] // BATCH
        self.g_params = list(self.enc.parameters()) + list(self.dec.parameters())
        self.d_params = list(self.disc.parameters())
        betas = (hp["beta1"], hp["beta2"])
        self.opt_g = torch.optim.Adam(self.g_params, lr=hp["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=hp["lr"], betas=betas)

    def __call__(self, step: int) -> None:
        i = step % self.n_batches
        x = self.x_train[self.perm[i * BATCH : (i + 1) * BATCH]]
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        dev, spec = x.device, self.spec
        z = torch.randn(BATCH, *spec.latent_shape, device=dev)
        if spec.implicit:
            z_hat = self.enc(x, eps=torch.randn(BATCH, spec.noise_dim, device=dev))
        else:
            h = self.enc.head(self.enc.body(x))
            mu, log_sigma = h[:, : spec.latent], h[:, spec.latent :]
            z_hat = mu + log_sigma.exp() * torch.randn_like(mu)  # Eq. 5.2
        x_tilde = self.dec(z)
        logits = self.disc(torch.cat([x, x_tilde]), torch.cat([z_hat, z]))
        l_q, l_p = logits[:BATCH], logits[BATCH:]
        loss_d = F.softplus(-l_q).mean() + F.softplus(l_p).mean()
        loss_g = F.softplus(l_q).mean() + F.softplus(-l_p).mean()
        gd = torch.autograd.grad(loss_d, self.d_params, retain_graph=True)
        gg = torch.autograd.grad(loss_g, self.g_params)
        for p, g in zip(self.d_params, gd, strict=True):
            p.grad = g
        for p, g in zip(self.g_params, gg, strict=True):
            p.grad = g
        self.opt_d.step()
        self.opt_g.step()


class Stepper:
    """``fn(step)`` called on consecutive steps, ``block`` of them per call (the unit that is timed).

    Each call also records the process CPU seconds it used in ``cpu`` (``time.process_time``,
    all threads): unlike wall time it does not count the time the OS gave to other processes.
    """

    def __init__(self, fn: Callable[[int], object], block: int, sync: Callable[[], None] | None = None):
        self.fn, self.block, self.sync, self.next = fn, block, sync, 0
        self.cpu: list[float] = []

    def __call__(self) -> None:
        c0 = time.process_time()
        if self.sync:
            self.sync()
        for _ in range(self.block):
            self.fn(self.next)
            self.next += 1
        if self.sync:
            self.sync()
        self.cpu.append(time.process_time() - c0)

    def warm(self, steps: int) -> None:
        for _ in range(steps):
            self.fn(self.next)
            self.next += 1
        if self.sync:
            self.sync()


def interleaved(a: Stepper, b: Stepper, repeat: int) -> tuple[list[float], list[float]]:
    """Per-step wall seconds of ``repeat`` timed blocks of each, alternating a, b, a, b, ...
    (the per-step CPU seconds of the same blocks are then in ``a.cpu`` and ``b.cpu``)."""
    ta, tb = [], []
    a.cpu.clear(), b.cpu.clear()
    for _ in range(repeat):
        ta += [t / a.block for t in timeit(a, 1)]
        tb += [t / b.block for t in timeit(b, 1)]
    a.cpu[:] = [c / a.block for c in a.cpu]
    b.cpu[:] = [c / b.block for c in b.cpu]
    return ta, tb


def spread(times: list[float]) -> float:
    """(slowest - fastest) / fastest."""
    return max(times) / min(times) - 1.0


# --- the measurements ------------------------------------------------------------------------
def times_summary(per_step: list[float]) -> dict:
    return {
        "per_repeat_s": per_step,
        "best_s": min(per_step),
        "median_s": statistics.median(per_step),
        "steps_per_s": 1 / min(per_step),
        "steps_per_s_median": 1 / statistics.median(per_step),
        "spread": spread(per_step),
    }


def measure_cpu(name: str, warmup: int, block: int, repeat: int) -> dict:
    x_train = training_data(name)
    ali = make_model(name, x_train)
    ref_ali = copy.deepcopy(ali)
    trainer = ALITrainer(ALITrainConfig(model=name, seed=SEED), x_train, ali=ali)
    ref = ReferenceStep(ref_ali, x_train, trainer.hp)
    torch.manual_seed(SEED)  # dropout (SVHN's discriminator)
    lib_s, ref_s = Stepper(trainer.step, block), Stepper(ref, block)
    lib_s.warm(warmup)
    ref_s.warm(warmup)
    t_lib, t_ref = interleaved(lib_s, ref_s, repeat)
    paired = [a / b for a, b in zip(t_lib, t_ref, strict=True)]
    ratio = min(t_lib) / min(t_ref)
    return {
        "model": name,
        "batch": BATCH,
        "warmup_steps": warmup,
        "steps_per_repeat": block,
        "repeats": repeat,
        "library": times_summary(t_lib),
        "reference": times_summary(t_ref),
        "library_cpu": times_summary(lib_s.cpu),
        "reference_cpu": times_summary(ref_s.cpu),
        "ratio": ratio,
        "ratio_median": statistics.median(t_lib) / statistics.median(t_ref),
        "ratio_paired": paired,
        "ratio_paired_median": statistics.median(paired),
        "ratio_cpu": min(lib_s.cpu) / min(ref_s.cpu),
        "ratio_cpu_median": statistics.median(lib_s.cpu) / statistics.median(ref_s.cpu),
        "target": TARGET,
        "pass": ratio <= TARGET,
    }


def measure_cuda_amp(warmup: int, block: int, repeat: int, device: str = "cuda") -> dict:
    dev = torch.device(device)
    x_train = training_data("svhn", dev)
    ali = make_model("svhn", x_train)
    trainers = {
        amp: ALITrainer(
            ALITrainConfig(model="svhn", seed=SEED, amp=amp), x_train, ali=copy.deepcopy(ali), device=dev
        )
        for amp in (False, True)
    }
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    f32, bf16 = (Stepper(trainers[amp].step, block, sync) for amp in (False, True))
    f32.warm(warmup)
    bf16.warm(warmup)
    t32, t16 = interleaved(f32, bf16, repeat)
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev),
        "warmup_steps": warmup,
        "steps_per_repeat": block,
        "repeats": repeat,
        "float32_step_s": t32,
        "amp_step_s": t16,
        "float32_images_per_s": BATCH / min(t32),
        "float32_images_per_s_median": BATCH / statistics.median(t32),
        "amp_images_per_s": BATCH / min(t16),
        "amp_images_per_s_median": BATCH / statistics.median(t16),
        "amp_speedup": min(t32) / min(t16),
        "amp_speedup_median": statistics.median(t32) / statistics.median(t16),
    }


# --- report ----------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer timed steps and repeats (~1 min)")
    ap.add_argument("--json", metavar="PATH", help="write all numbers to PATH")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    cfg = CONFIGS[mode]
    t_start = time.perf_counter()
    env = environment(mode=mode)
    print(
        f"physamp ALI step benchmark ({mode}): torch {env['torch']}, threads={env['threads']} "
        f"(of {env['cpu_count']} CPUs), python {env['python']}, batch {BATCH}"
    )
    print(
        "library = ALITrainer(...).step(i); reference = the spec's minimal torch step on a deepcopy of the "
        "same build_ali model.\nWall-clock steps/s of the fastest and of the median repeat; ratio = library "
        f"time / reference time, target <= {TARGET}."
    )
    out: dict = {"env": env, "cpu": {}}
    shapes = {"toy": "points (N, 2)", "svhn": "images 3x32x32"}
    for name in ("toy", "svhn"):
        warmup, block, repeat = cfg[name]
        r = measure_cpu(name, warmup, block, repeat)
        out["cpu"][name] = r
        print(
            f"\n{name}: batch {BATCH}, {shapes[name]}; {warmup} warm-up step(s) each, then {repeat} "
            f"interleaved repeats (library, reference, ...) of {block} steps"
        )
        head = f"{'steps/s: best':>14s} {'median':>8s} {'spread':>7s}   {'CPU-time steps/s: best':>22s}"
        print(f"  {'':10s} {head} {'median':>8s}")
        for who in ("library", "reference"):
            w, c = r[who], r[f"{who}_cpu"]
            print(
                f"  {who:10s} {w['steps_per_s']:14.3f} {w['steps_per_s_median']:8.3f} "
                f"{100 * w['spread']:6.0f}%   {c['steps_per_s']:22.3f} {c['steps_per_s_median']:8.3f}"
            )
        pr = r["ratio_paired"]
        print(
            f"  ratio library/reference time: {r['ratio']:.3f} (best repeats), {r['ratio_median']:.3f} "
            f"(medians); pairs: median {r['ratio_paired_median']:.3f}, range {min(pr):.3f}-{max(pr):.3f}; "
            f"CPU time: {r['ratio_cpu']:.3f} / {r['ratio_cpu_median']:.3f}"
        )
        print(f"  target <= {TARGET} on the best-repeat ratio: {'PASS' if r['pass'] else 'MISS'}")
    print(
        "\n(spread: slowest repeat vs fastest; pairs: library/reference of each adjacent pair of repeats;\n"
        " CPU time: process_time of the same blocks, best / median; it leaves out the time the OS gave to\n"
        " other processes, so it is the steadier figure on a loaded machine)"
    )

    print()
    if torch.cuda.is_available():
        warmup, block, repeat = cfg["cuda"]
        c = measure_cuda_amp(warmup, block, repeat)
        out["cuda_amp"] = c
        print(
            f"CUDA ({c['device']}), library SVHN step, batch {BATCH}, {warmup} warm-up + {repeat} "
            f"interleaved repeats of {block} steps, synchronize() around each; fastest [median]:"
        )
        for label, key in (("float32", "float32"), ("amp (bf16 autocast)", "amp")):
            best, med = c[f"{key}_images_per_s"], c[f"{key}_images_per_s_median"]
            print(f"  {label:20s} {best:8.0f} [{med:.0f}] images/s")
        print(f"  amp speedup {c['amp_speedup']:.2f}x [{c['amp_speedup_median']:.2f}x]")
    else:
        out["cuda_amp"] = None
        print("CUDA: skipped (no CUDA device present): the SVHN images/s with and without --amp need one.")

    return finish(out, t_start, env["threads"], args.json)


if __name__ == "__main__":
    main()
