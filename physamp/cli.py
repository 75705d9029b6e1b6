"""The ``physamp`` command line.

physamp samplers                      list the backends and their options
physamp check-sampler NAME [-o k=v]   sample a small random RBM, compare with the exact distribution
physamp topology chimera 14           summarise an RBM topology (--draw FILE.png to plot it)
"""

from __future__ import annotations

import argparse
import sys

from physamp.training.options import (
    add_config_arguments,
    config_from_args,
    nonnegative_float,  # noqa: F401  (kept importable: physamp.cli.nonnegative_float)
    parse_assignments,
    positive_float,  # noqa: F401
    positive_int,
)

# one implementation of NAME=VALUE parsing and of the number types, shared with the config flags
parse_options = parse_assignments


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


def _load_data(name: str, root: str | None, seed: int, download: bool = False):
    from physamp.data import default_dataset, load_dataset

    if name in ("default", "mnist-default"):
        return default_dataset(binarize_seed=seed)
    return load_dataset(name, root=root, binarize_seed=seed, download=download)


def _sample_figure(rbm, sampler_name: str, options: dict, path, image_shape, num: int = 100, seed: int = 0):
    """Expected visibles E[v | h] given sampled hiddens (the thesis's figures) as a PNG grid."""
    import torch

    from physamp.plotting import save_image_grid
    from physamp.samplers import make_sampler

    sampler = make_sampler(sampler_name, seed=seed, **options)
    s = sampler.sample(rbm, num)
    with torch.no_grad():
        mean_v = rbm.p_v_given_h(s.h.to(rbm.W.dtype))
    save_image_grid(
        mean_v, path, image_shape=image_shape, nrow=10, title=f"E[v | h], h sampled by {sampler!r}"[:90]
    )
    return s


def _load_rbm(path):
    from physamp.models.rbm import RBM
    from physamp.training import CheckpointError, checkpoint_config, load_checkpoint, load_component

    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    if cfg.get("model") != "rbm":
        raise CheckpointError(f"{path} does not hold an RBM (model={cfg.get('model')!r})")
    try:
        return RBM.from_state_dict(load_component(ckpt, "model")), cfg
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None


def _print_nll(label: str, nll, log_z, protocol: str) -> None:
    print(
        f"{label}: {nll.nll:.2f} nats  (AIS log Z = {log_z.log_z:.2f}, ±3σ NLL bounds "
        f"[{nll.nll_lower:.2f}, {nll.nll_upper:.2f}], {log_z.num_runs} runs x {log_z.num_betas - 1} "
        f"intermediate distributions)\n  data: {protocol}"
    )


def cmd_train_rbm(args) -> int:
    from pathlib import Path

    import torch

    from physamp.models.rbm import RBMTrainConfig, train_and_evaluate
    from physamp.training import resolve_device

    data = _load_data(args.dataset, args.data_root, args.binarize_seed, args.download)
    cfg = config_from_args(RBMTrainConfig, args)
    run_dir = Path(args.run_dir or f"runs/rbm-{cfg.sampler}-{data.n_features}x{cfg.n_hidden}-seed{cfg.seed}")
    device = resolve_device(args.device)
    print(
        f"physamp train-rbm: {data.name} ({data.train.shape[0]} train / {data.test.shape[0]} test), "
        f"{data.n_features}x{cfg.n_hidden} RBM, {cfg.method.upper()}-{cfg.k} with the {cfg.sampler!r} "
        f"backend, {cfg.epochs} epochs on {device}, {torch.get_num_threads()} thread(s) -> {run_dir}"
    )
    result = train_and_evaluate(
        cfg,
        data,
        run_dir=run_dir,
        device=device,
        ais_runs=args.ais_runs,
        ais_betas=args.ais_betas,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    shape = data.image_shape or (1, data.n_features)
    _sample_figure(
        result.rbm, "gibbs", {"steps": args.figure_steps}, run_dir / "samples.png", shape, seed=cfg.seed
    )
    _print_nll("test NLL", result.test_nll, result.log_z, data.protocol)
    print(
        f"outputs in {run_dir}/: checkpoint.pt, metrics.jsonl, samples.png (E[v|h] after "
        f"{args.figure_steps} Gibbs steps), result.json, config.json"
    )
    return 0


def cmd_ais(args) -> int:
    from physamp.models.rbm.evaluate import evaluate_nll

    rbm, cfg = _load_rbm(args.checkpoint)
    data = _load_data(args.dataset, args.data_root, args.binarize_seed, args.download)
    if data.n_features != rbm.n_visible:
        raise ValueError(
            f"the checkpoint's RBM has {rbm.n_visible} visible units but {data.name} has "
            f"{data.n_features} features"
        )
    nll, log_z = evaluate_nll(
        rbm,
        data,
        ais_runs=args.ais_runs,
        ais_betas=args.ais_betas,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(repr(log_z))
    _print_nll("test NLL", nll, log_z, data.protocol)
    return 0


def cmd_sample(args) -> int:
    rbm, cfg = _load_rbm(args.checkpoint)
    side = int(round(rbm.n_visible**0.5))
    shape = (side, side) if side * side == rbm.n_visible else (1, rbm.n_visible)
    s = _sample_figure(
        rbm, args.sampler, parse_options(args.option), args.out, shape, num=args.num, seed=args.seed
    )
    print(
        f"{args.num} samples from {args.sampler!r} in {s.info['time_s']:.2f} s; "
        f"grid of E[v|h] written to {args.out}"
    )
    return 0


def cmd_experiment(args) -> int:
    from physamp.experiments.runner import available_experiments, load_experiment, run_experiment

    if args.name in (None, "list"):
        for name in available_experiments():
            exp = load_experiment(name)
            print(f"{name:24s} {exp.TITLE}  (presets: {', '.join(exp.PRESETS)})")
        return 0
    dask = args.dask if args.dask is not None else None
    if dask == "local":
        dask = True
    summary = run_experiment(
        args.name,
        args.preset,
        args.out,
        workers=args.workers,
        dask=dask,
        progress=not args.no_progress,
        overrides=parse_options(args.set),
    )
    print(f"{summary['cells']} cells in {summary['seconds']:.0f} s")
    print(f"  table:  {summary['markdown']}\n  plot:   {summary['png']}\n  cells:  {summary['csv']}")
    print()
    print(open(summary["markdown"]).read().split("**Data:**")[1].split("\n", 1)[1].strip())
    return 0


def cmd_topology(args) -> int:
    """``physamp topology KIND[:ARG] SIZE|NVxNH``: a registered topology from a grid size or an RBM shape."""
    from physamp import topology as T

    if args.list:
        for name, doc in T.describe_topologies().items():
            print(f"{name:10s}  {doc}")
        return 0
    if args.kind is None or args.size is None:
        raise ValueError(
            "physamp topology needs KIND and SIZE (e.g. 'physamp topology chimera 14' or "
            "'physamp topology pegasus 784x784'); 'physamp topology --list' shows the kinds"
        )
    spec = args.kind
    if args.pixel_mapping:
        if ":" in spec:
            raise ValueError(f"give the pixel mapping once: --pixel-mapping or {spec!r}, not both")
        spec = f"{spec}:{args.pixel_mapping}"
    nv, sep, nh = args.size.lower().partition("x")
    try:
        shape = (int(nv), int(nh)) if sep else None
        size = None if sep else int(nv)
    except ValueError:
        raise ValueError(f"SIZE is a grid size (14) or an RBM shape (784x784); got {args.size!r}") from None
    topo = T.make_topology(spec, *(shape or ()), size=size)
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
    from physamp.models.rbm.pcd import RBMTrainConfig

    p = argparse.ArgumentParser(
        prog="physamp", description="Physical samplers and the models trained with them."
    )
    p.add_argument("--version", action="version", version=f"physamp {__version__}")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "train-rbm", help="train an RBM with any negative-phase backend and report its test NLL"
    )
    s.add_argument(
        "--dataset",
        default="mnist-default",
        help="mnist-default (offline split if ../shared is there, else the bundled slice), "
        "mnist-offline, mnist-bundled, mnist, connect4",
    )
    s.add_argument("--data-root", default=None, help="directory with the dataset's files")
    s.add_argument("--download", action="store_true", help="download the dataset (checksummed, cached)")
    s.add_argument("--binarize-seed", type=int, default=0, help="seed of the test set's one-off binarisation")
    # every training hyper-parameter: flags, defaults and help from RBMTrainConfig's fields
    add_config_arguments(s, RBMTrainConfig)
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    s.add_argument("--run-dir", default=None, help="output directory (default runs/rbm-SAMPLER-VxH-seedS)")
    s.add_argument(
        "--overwrite", action="store_true", help="start over in a run directory that holds another run"
    )
    s.add_argument("--ais-runs", type=positive_int, default=100)
    s.add_argument(
        "--ais-betas",
        type=positive_int,
        default=14500,
        help="intermediate distributions (14500: S&M schedule)",
    )
    s.add_argument(
        "--figure-steps", type=positive_int, default=1000, help="Gibbs steps before the sample figure"
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_train_rbm)

    for name, helptext in (("ais", "AIS log Z and test NLL of a trained RBM checkpoint"),):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("checkpoint")
        s.add_argument("--dataset", default="mnist-default")
        s.add_argument("--data-root", default=None)
        s.add_argument("--download", action="store_true")
        s.add_argument("--binarize-seed", type=int, default=0)
        s.add_argument("--ais-runs", type=positive_int, default=100)
        s.add_argument("--ais-betas", type=positive_int, default=14500)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--no-progress", action="store_true")
        s.set_defaults(func=cmd_ais)

    s = sub.add_parser("sample", help="sample a trained RBM checkpoint with any backend; writes a PNG grid")
    s.add_argument("checkpoint")
    s.add_argument("--sampler", default="gibbs")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE")
    s.add_argument("--num", type=positive_int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.png")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("experiment", help="run a thesis experiment (`physamp experiment list` shows them)")
    s.add_argument("name", nargs="?", default=None, help="experiment name, or 'list'")
    s.add_argument(
        "--preset", default="quick", help="quick (minutes on a laptop) or full (the thesis's grid)"
    )
    s.add_argument("--out", default=None, help="output directory (default results/NAME/PRESET)")
    s.add_argument(
        "--workers", type=positive_int, default=None, help="local worker processes (default: one per core)"
    )
    s.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run cells on a Dask cluster (a LocalCluster without ADDRESS)",
    )
    s.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a preset value, e.g. epochs=5"
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_experiment)

    s = sub.add_parser("samplers", help="list the sampler backends and their options")
    s.set_defaults(func=cmd_samplers)

    s = sub.add_parser("check-sampler", help="compare a backend with the exact distribution of a small RBM")
    s.add_argument("name", help="backend name (see `physamp samplers`)")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="backend option, repeatable")
    s.add_argument("--visible", type=positive_int, default=5)
    s.add_argument("--hidden", type=positive_int, default=4)
    s.add_argument("--samples", type=positive_int, default=20_000)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_check_sampler)

    s = sub.add_parser("topology", help="summarise (and draw) an RBM laid out on a hardware graph")
    s.add_argument(
        "kind",
        nargs="?",
        metavar="KIND[:ARG]",
        help="a registered topology (physamp.topology.available_topologies(); --list shows them), e.g. "
        "chimera, chimera:extended, pegasus, zephyr, dense, random:0.5",
    )
    s.add_argument(
        "size",
        nargs="?",
        metavar="SIZE|NVxNH",
        help="grid size m (chimera 14: C_14 in qubit order) or an RBM shape (chimera 784x784: the "
        "thesis's pixel-block chimera RBM, as the trainer builds it)",
    )
    s.add_argument("--list", action="store_true", help="list the registered topologies and exit")
    s.add_argument("--pixel-mapping", default=None, choices=["pixel_blocks", "extended_pixel_blocks"])
    s.add_argument("--draw", metavar="FILE.png", default=None)
    s.set_defaults(func=cmd_topology)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        from physamp.training import set_threads

        set_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
