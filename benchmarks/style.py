"""Style-network benchmark: ``StyleNetwork.forward`` and a training step against minimal plain-torch versions.

Run from the repository root::

    python benchmarks/style.py                 # ~2 min on 1 thread (a first-ever torch.compile: ~1 min more)
    python benchmarks/style.py --no-compile    # without the torch.compile variant
    python benchmarks/style.py --vgg           # also the step with the VGG-16 loss network (~1 min more)
    python benchmarks/style.py --threads 2 --repeats 5 --train-repeats 3 --size 512 --json out.json

The network is ``StyleNetwork(10)`` (Table 7.1, the thesis's 10-style Monet model; the number of
styles does not change the work) with random weights and random, distinct ``γ, β`` per style.

(a) **Stylizing one image** ``(1, 3, S, S)`` (``--size``, default 512, the thesis's evaluation
    size) on the CPU, in ``torch.inference_mode()``, style id 0:

    - ``library``: ``net(x, torch.tensor([0]))`` (input checks, then ``net.transform``);
    - ``plain``: :func:`plain_forward`, the same network written here as one function of the
      raw parameter tensors (``F.pad(reflect)``, ``F.conv2d``, ``F.instance_norm``, ``γ[ids]``,
      ``F.interpolate(nearest)``, ``F.relu``, ``torch.sigmoid``), given the same tensors;
    - ``channels_last``: the library forward on ``net.to(memory_format=torch.channels_last)``
      and a channels-last image;
    - ``compiled``: ``torch.compile(net)`` (default mode), compiled during the warm-up, which is
      timed separately: the compile time is what one stylize call would pay.

    Every variant's output is checked against ``library``'s before timing. The ratio is
    variant time / plain time (target for the library: <= 1.05).
(b) **A training step** at ``--train-size`` (256) with batch ``--batch`` (4), style ids
    ``0, 1, 2, 3``: forward, ``F.mse_loss`` against a fixed random target image, backward and
    ``torch.optim.Adam(lr=1e-3)``; the library's (``net(x, ids)``) against the same step through
    :func:`plain_forward` on a copy of the network's parameters. Images per second. The real
    loss network is not part of the network's own speed; ``--vgg`` adds the step with
    ``StyleLoss`` on a random-weight full-width VGG-16 (:func:`~physamp.models.style.vgg.random_vgg`
    with ``VGG16_WIDTHS``: the cost of the real one), content ``relu3_3``, style ``relu1_2 ..
    relu4_3``, ``loss = (content + style).mean()``.
(c) The same on CUDA (``torch.cuda.synchronize()`` around each timed block) when
    ``torch.cuda.is_available()``; skipped, saying so, otherwise.

Every timed item runs interleaved with the others of its group (a, b, c, a, b, c, ...) after
warm-up, so load from other processes hits them alike. It prints, per item, the fastest repeat
(the least disturbed) and the median, and the process CPU time of the fastest repeat
(``time.process_time``, all threads: it leaves out time the OS gave other processes, so on a
shared machine its ratio is the steadier one). Timings are wall-clock; the torch thread count
is printed.
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

from physamp.models.style.network import StyleNetwork  # noqa: E402

SEED = 0
NUM_STYLES = 10
TARGET = 1.05  # library forward time / plain forward time
EPS = 1e-5  # CIN's ε (Table 7.1's network, network.py)


# --- the plain-torch network ---------------------------------------------------------------------
def plain_forward(p: dict[str, torch.Tensor], x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Table 7.1 as one function of the raw tensors ``p = dict(net.named_parameters())``.

    ``x``: ``(B, 3, H, W)`` in [0, 1]; ``ids``: ``LongTensor (B,)``. Returns ``(B, 3, H, W)``.
    """

    def conv_cin(h: torch.Tensor, name: str, stride: int = 1) -> torch.Tensor:
        weight = p[f"{name}.conv.weight"]  # (C_out, C_in, k, k), no bias
        k = weight.shape[-1] // 2
        h = F.conv2d(F.pad(h, (k, k, k, k), mode="reflect"), weight, stride=stride)
        gamma, beta = p[f"{name}.norm.gamma"][ids], p[f"{name}.norm.beta"][ids]  # (B, C)
        return F.instance_norm(h, eps=EPS) * gamma[:, :, None, None] + beta[:, :, None, None]

    h = F.relu(conv_cin(x, "conv1"))
    h = F.relu(conv_cin(h, "conv2", 2))
    h = F.relu(conv_cin(h, "conv3", 2))
    for i in range(5):
        h = h + conv_cin(F.relu(conv_cin(h, f"res.{i}.conv1")), f"res.{i}.conv2")
    h = F.relu(conv_cin(F.interpolate(h, scale_factor=2, mode="nearest"), "up1.conv"))
    h = F.relu(conv_cin(F.interpolate(h, scale_factor=2, mode="nearest"), "up2.conv"))
    return torch.sigmoid(conv_cin(h, "out"))


def make_network(device: torch.device | str = "cpu") -> StyleNetwork:
    """``StyleNetwork(NUM_STYLES)``: random init, per-style ``γ ~ 1 + 0.3 N(0, 1)``, ``β ~ 0.3 N(0, 1)``."""
    g = torch.Generator().manual_seed(SEED)
    net = StyleNetwork(NUM_STYLES, generator=g)
    with torch.no_grad():
        for m in net.norms():
            m.gamma.copy_(1.0 + 0.3 * torch.randn(m.gamma.shape, generator=g))
            m.beta.copy_(0.3 * torch.randn(m.beta.shape, generator=g))
    return net.to(device)


# --- timing --------------------------------------------------------------------------------------
class Timed:
    """``fn()`` as one timed unit; records each call's process CPU seconds in ``cpu`` (all threads)."""

    def __init__(self, fn: Callable[[], object], sync: Callable[[], None] | None = None):
        self.fn, self.sync = fn, sync
        self.cpu: list[float] = []

    def __call__(self) -> None:
        c0 = time.process_time()
        if self.sync:
            self.sync()
        self.fn()
        if self.sync:
            self.sync()
        self.cpu.append(time.process_time() - c0)


def interleaved(items: dict[str, Timed], repeat: int, warmup: int) -> dict[str, dict]:
    """``warmup`` untimed calls of each, then ``repeat`` rounds of one timed call of each in turn."""
    for t in items.values():
        for _ in range(warmup):
            t()
        t.cpu.clear()
    wall: dict[str, list[float]] = {k: [] for k in items}
    for _ in range(repeat):
        for k, t in items.items():
            wall[k] += timeit(t, 1)
    return {
        k: {
            "wall_s": wall[k],
            "best_s": min(wall[k]),
            "median_s": statistics.median(wall[k]),
            "cpu_s": items[k].cpu,
            "best_cpu_s": min(items[k].cpu),
        }
        for k in items
    }


def _tolerance(device: torch.device) -> float:
    """How far the plain and library results may differ (CUDA: TF32 convolutions, algorithm choice)."""
    return 1e-5 if device.type == "cpu" else 1e-3


def _extra_warmup(device: torch.device) -> int:
    return 0 if device.type == "cpu" else 3


def syncer(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


# --- (a) stylizing one image ---------------------------------------------------------------------
def measure_forward(device: torch.device, size: int, repeat: int, compile_: bool) -> dict:
    net = make_network(device).eval()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(SEED)).to(device)
    ids = torch.tensor([0], device=device)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "library": lambda: net(x, ids),
        "plain": lambda: plain_forward(params, x, ids),
        "channels_last": lambda: net_cl(x_cl, ids),
    }
    compile_s = None
    if compile_:
        compiled = torch.compile(copy.deepcopy(net))
        fns["compiled"] = lambda: compiled(x, ids)
    with torch.inference_mode():
        reference = fns["library"]()
        diffs = {}
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            if syncer(device):
                torch.cuda.synchronize()
            if name == "compiled":
                compile_s = time.perf_counter() - t0
            diffs[name] = float((out.float() - reference.float()).abs().max())
        if diffs["plain"] > _tolerance(device):
            raise AssertionError(f"plain_forward differs from the library by {diffs['plain']:.3g}")
        sync = syncer(device)
        # the calls above (checks, compilation) were the warm-up on the CPU; CUDA gets a few more
        times = interleaved({k: Timed(fn, sync) for k, fn in fns.items()}, repeat, _extra_warmup(device))
    for k in times:
        times[k]["max_abs_diff_vs_library"] = diffs[k]
        times[k]["ratio"] = times[k]["best_s"] / times["plain"]["best_s"]
        times[k]["ratio_median"] = times[k]["median_s"] / times["plain"]["median_s"]
        times[k]["ratio_cpu"] = times[k]["best_cpu_s"] / times["plain"]["best_cpu_s"]
    return {"size": size, "repeats": repeat, "compile_s": compile_s, "variants": times}


# --- (b) a training step ------------------------------------------------------------------------
def measure_train(device: torch.device, size: int, batch: int, repeat: int, vgg: bool) -> dict:
    gen = torch.Generator().manual_seed(SEED)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    target = torch.rand(batch, 3, size, size, generator=gen).to(device)
    ids = (torch.arange(batch) % NUM_STYLES).to(device)

    lib_net = make_network(device)
    lib_opt = torch.optim.Adam(lib_net.parameters(), lr=1e-3)
    ref_net = make_network(device)
    ref_params = {k: v.detach().clone().requires_grad_(True) for k, v in ref_net.named_parameters()}
    ref_opt = torch.optim.Adam(ref_params.values(), lr=1e-3)

    def lib_step() -> torch.Tensor:
        loss = F.mse_loss(lib_net(x, ids), target)
        lib_opt.zero_grad(set_to_none=True)
        loss.backward()
        lib_opt.step()
        return loss.detach()

    def ref_step() -> torch.Tensor:
        loss = F.mse_loss(plain_forward(ref_params, x, ids), target)
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()
        return loss.detach()

    first = float(lib_step()), float(ref_step())  # the same loss from the same weights, and a warm-up
    if abs(first[0] - first[1]) > _tolerance(device) * max(1.0, abs(first[0])):
        raise AssertionError(f"the library and plain steps give different losses: {first}")
    items = {"library": Timed(lib_step, syncer(device)), "plain": Timed(ref_step, syncer(device))}
    note = None
    if vgg:
        vgg_step, note = _vgg_step(device, x, ids, size)
        if vgg_step is not None:
            vgg_step()  # warm-up (and the style targets are already computed)
            items["library + VGG-16 loss"] = Timed(vgg_step, syncer(device))
    times = interleaved(items, repeat, _extra_warmup(device))  # after the steps above
    for k in times:
        times[k]["images_per_s"] = batch / times[k]["best_s"]
        times[k]["images_per_s_median"] = batch / times[k]["median_s"]
        times[k]["ratio"] = times[k]["best_s"] / times["plain"]["best_s"]
        times[k]["ratio_cpu"] = times[k]["best_cpu_s"] / times["plain"]["best_cpu_s"]
    return {"size": size, "batch": batch, "repeats": repeat, "variants": times, "vgg_note": note}


def _vgg_step(device: torch.device, x: torch.Tensor, ids: torch.Tensor, size: int):
    """The library step with the StyleLoss of a random full-width VGG-16, or ``(None, why)``."""
    try:
        from physamp.models.style.loss import StyleLoss
        from physamp.models.style.vgg import VGG16_WIDTHS, random_vgg
    except ImportError as e:
        return None, f"skipped: {e}"
    vgg, preprocess = random_vgg(VGG16_WIDTHS, seed=SEED)
    criterion = StyleLoss(vgg.to(device), preprocess)
    gen = torch.Generator().manual_seed(SEED + 1)
    criterion.set_styles([torch.rand(3, size, size, generator=gen).to(device) for _ in range(NUM_STYLES)])
    net = make_network(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> torch.Tensor:
        content_loss, style_loss = criterion(net(x, ids), x, ids)
        loss = (content_loss + style_loss).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, "StyleLoss(random_vgg(VGG16_WIDTHS)): content relu3_3, style relu1_2..relu4_3"


# --- report --------------------------------------------------------------------------------------
def print_forward(r: dict, where: str) -> None:
    s = r["size"]
    print(
        f"\n(a) {where}: stylize one {s}x{s} image (batch 1, style id 0, inference_mode); "
        f"{r['repeats']} interleaved repeats after a warm-up call"
    )
    head = f"{'ms: best':>9s} {'median':>8s} {'CPU ms':>8s}   {'ratio/plain':>11s} {'median':>7s} {'CPU':>6s}"
    print(f"  {'':14s} {head}")
    for name, v in r["variants"].items():
        print(
            f"  {name:14s} {1e3 * v['best_s']:9.1f} {1e3 * v['median_s']:8.1f} {1e3 * v['best_cpu_s']:8.1f}"
            f"   "
            f"{v['ratio']:11.3f} {v['ratio_median']:7.3f} {v['ratio_cpu']:6.3f}"
            + (f"   (max |diff| vs library {v['max_abs_diff_vs_library']:.1e})" if name != "library" else "")
        )
    lib = r["variants"]["library"]["ratio"]
    verdict = "PASS" if lib <= TARGET else "MISS"
    print(f"  library / plain = {lib:.3f} (best repeats); target <= {TARGET}: {verdict}")
    if r["compile_s"] is not None:
        c = r["variants"]["compiled"]
        saved = r["variants"]["library"]["best_s"] - c["best_s"]
        pays = f"pays off after ~{r['compile_s'] / saved:.0f} images of this size" if saved > 0 else "no gain"
        print(f"  torch.compile: first call (compilation) {r['compile_s']:.1f} s; {pays}")


def print_train(r: dict, where: str) -> None:
    s = r["size"]
    print(
        f"\n(b) {where}: training step, batch {r['batch']} at {s}x{s} (forward, MSE, backward, Adam); "
        f"{r['repeats']} interleaved repeats after a warm-up step"
    )
    head = f"{'images/s: best':>14s} {'median':>7s} {'step ms':>8s} {'CPU ms':>8s} {'ratio/plain':>11s}"
    print(f"  {'':22s} {head}")
    for name, v in r["variants"].items():
        print(
            f"  {name:22s} {v['images_per_s']:14.2f} {v['images_per_s_median']:7.2f} "
            f"{1e3 * v['best_s']:8.0f} {1e3 * v['best_cpu_s']:8.0f} {v['ratio']:11.3f}"
        )
    if r["vgg_note"]:
        print(f"  VGG loss: {r['vgg_note']}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--repeats", type=int, default=3, help="timed repeats of each forward (default 3; CUDA: x5)"
    )
    ap.add_argument(
        "--train-repeats",
        type=int,
        default=2,
        help="timed repeats of each training step (default 2; CUDA: x5)",
    )
    ap.add_argument("--size", type=int, default=512, help="side of the stylized image (default 512)")
    ap.add_argument("--train-size", type=int, default=256, help="side of the training images (default 256)")
    ap.add_argument("--batch", type=int, default=4, help="training batch (default 4)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument("--vgg", action="store_true", help="also time the step with the VGG-16 loss network")
    ap.add_argument("--json", metavar="PATH", help="write all numbers to PATH")
    args = ap.parse_args(argv)
    for name in ("threads", "repeats", "train_repeats", "size", "train_size", "batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.size % 4 or args.train_size % 4 or min(args.size, args.train_size) < 8:
        ap.error("--size and --train-size must be multiples of 4, at least 8")

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    env = environment()
    print(
        f"physamp style-network benchmark: torch {env['torch']}, threads={env['threads']} "
        f"(of {env['cpu_count']} CPUs), python {env['python']}, StyleNetwork({NUM_STYLES})"
    )
    print("ratio = time / plain-torch time (best repeats; 'median': of the medians; 'CPU': process CPU time)")
    out: dict = {"env": env}
    cpu = torch.device("cpu")
    out["cpu_forward"] = measure_forward(cpu, args.size, args.repeats, not args.no_compile)
    print_forward(out["cpu_forward"], "CPU")
    out["cpu_train"] = measure_train(cpu, args.train_size, args.batch, args.train_repeats, args.vgg)
    print_train(out["cpu_train"], "CPU")
    if not args.vgg:
        print("  (the step with the VGG-16 loss network: pass --vgg)")

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
        out["cuda_forward"] = measure_forward(dev, args.size, 5 * args.repeats, not args.no_compile)
        print_forward(out["cuda_forward"], f"CUDA ({name})")
        out["cuda_train"] = measure_train(dev, args.train_size, args.batch, 5 * args.train_repeats, args.vgg)
        print_train(out["cuda_train"], f"CUDA ({name})")
    else:
        out["cuda_forward"] = out["cuda_train"] = None
        print("\n(c) CUDA: skipped (no CUDA device present)")

    return finish(out, t_start, env["threads"], args.json)


if __name__ == "__main__":
    main()
