"""The ``physamp`` command line.

physamp samplers                      list the backends and their options
physamp check-sampler NAME [-o k=v]   sample a small random RBM, compare with the exact distribution
physamp topology chimera 14           summarise an RBM topology (--draw FILE.png to plot it)
"""

from __future__ import annotations

import argparse
import ast
import sys


def parse_options(pairs: list[str] | None) -> dict:
    """``["steps=100", "child=neal"]`` → ``{"steps": 100, "child": "neal"}``."""
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: option {pair!r} must look like NAME=VALUE (e.g. steps=100)")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def cmd_samplers(args) -> int:
    import inspect

    from physamp.samplers import available_samplers
    from physamp.samplers.registry import _resolve

    for name in available_samplers():
        try:
            cls = _resolve(name)
        except Exception as err:  # a broken third-party entry point should not hide the others
            print(f"{name:10s}  (cannot load: {err})")
            continue
        opts = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "child_options")]
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:10s}  {doc}\n{'':10s}  options: {', '.join(opts)}")
    return 0


def cmd_check_sampler(args) -> int:
    import numpy as np
    import torch

    import physamp
    from physamp.samplers import make_sampler
    from physamp.samplers.exact import enumerate_states

    g = torch.Generator().manual_seed(args.seed)
    rbm = physamp.RBM(args.visible, args.hidden)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(args.hidden, args.visible, generator=g))
        rbm.b.copy_(torch.randn(args.visible, generator=g) * 0.5)
        rbm.c.copy_(torch.randn(args.hidden, generator=g) * 0.5)
    n = args.visible + args.hidden
    if n > 16:
        raise SystemExit("error: check-sampler enumerates all 2^(visible+hidden) states; keep it <= 16")
    states = enumerate_states(0, 1 << n, n, dtype=torch.float32)
    logp = -rbm.energy(states[:, : args.visible], states[:, args.visible :]).detach().double()
    p = torch.softmax(logp, 0).numpy()
    sampler = make_sampler(args.name, seed=args.seed, **parse_options(args.option))
    print(f"sampling a random {args.visible}x{args.hidden} RBM with {sampler!r} ...")
    s = sampler.sample(rbm, args.samples)
    x = torch.cat([s.v, s.h], 1).to(torch.int64).numpy()
    idx = x @ (1 << np.arange(n))
    q = np.bincount(idx, minlength=p.size) / len(idx)
    tv = 0.5 * np.abs(q - p).sum()
    noise = 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * args.samples)))
    print(
        f"total-variation distance to the exact distribution: {tv:.4f} "
        f"(sampling noise alone gives about {noise:.4f}); {s.info['time_s']:.2f} s"
    )
    return 0 if tv < max(3 * noise, 0.02) else 1


def cmd_topology(args) -> int:
    from physamp import topology as T

    kind = args.kind
    if kind == "chimera":
        topo = T.chimera_rbm(args.size, pixel_mapping=args.pixel_mapping)
    elif kind == "pegasus":
        topo = T.pegasus_rbm(args.size)
    elif kind == "zephyr":
        topo = T.zephyr_rbm(args.size)
    else:
        raise SystemExit(f"error: unknown topology {kind!r}; choose chimera, pegasus or zephyr")
    dense = topo.n_visible * topo.n_hidden
    print(
        f"{topo.name}: {topo.n_visible} visible x {topo.n_hidden} hidden units, "
        f"{topo.num_connections} connections ({100 * (1 - topo.num_connections / dense):.2f} % of a "
        f"dense RBM's {dense} removed)"
    )
    for k, v in topo.info.items():
        print(f"  {k}: {v}")
    if args.draw:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = T.draw_topology(topo)
        ax.figure.savefig(args.draw, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        print(f"drawing written to {args.draw}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from physamp import __version__

    p = argparse.ArgumentParser(
        prog="physamp", description="Physical samplers and the models trained with them."
    )
    p.add_argument("--version", action="version", version=f"physamp {__version__}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("samplers", help="list the sampler backends and their options")
    s.set_defaults(func=cmd_samplers)

    s = sub.add_parser("check-sampler", help="compare a backend with the exact distribution of a small RBM")
    s.add_argument("name", help="backend name (see `physamp samplers`)")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="backend option, repeatable")
    s.add_argument("--visible", type=int, default=5)
    s.add_argument("--hidden", type=int, default=4)
    s.add_argument("--samples", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_check_sampler)

    s = sub.add_parser("topology", help="summarise (and draw) an RBM laid out on a hardware graph")
    s.add_argument("kind", choices=["chimera", "pegasus", "zephyr"])
    s.add_argument("size", type=int, help="grid size m (chimera_rbm(14) is the thesis's 784x784 RBM)")
    s.add_argument("--pixel-mapping", default=None, choices=["pixel_blocks", "extended_pixel_blocks"])
    s.add_argument("--draw", metavar="FILE.png", default=None)
    s.set_defaults(func=cmd_topology)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
