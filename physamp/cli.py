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
            raise ValueError(f"option {pair!r} must look like NAME=VALUE (e.g. steps=100)")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _number_type(cast, *, strictly_positive: bool):
    """An argparse type: a finite ``cast`` number, > 0 or >= 0, with a clear message otherwise."""
    name, article = ("integer", "an") if cast is int else ("number", "a")
    bound = "positive" if strictly_positive else ">= 0"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {article} {name}") from None
        ok = value > 0 if strictly_positive else value >= 0
        if not ok or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a {bound} finite {name}, got {text}")
        return value

    parse.__name__ = f"{bound} {name}"
    return parse


positive_int = _number_type(int, strictly_positive=True)
positive_float = _number_type(float, strictly_positive=True)
nonnegative_float = _number_type(float, strictly_positive=False)


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
    import torch

    from physamp.models.rbm import RBM
    from physamp.training import CheckpointError, load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = ckpt.get("config", {})
    sd = ckpt.get("state:model")
    if cfg.get("model") != "rbm" or sd is None:
        raise CheckpointError(f"{path} does not hold an RBM (model={cfg.get('model')!r})")
    if not isinstance(sd, dict) or not all(isinstance(sd.get(k), torch.Tensor) for k in ("W", "b", "c")):
        raise CheckpointError(f"{path} holds no RBM parameters W, b, c")
    rbm = RBM(int(sd["W"].shape[1]), int(sd["W"].shape[0]), mask=sd.get("mask"))
    try:
        rbm.load_state_dict(sd)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: inconsistent RBM parameters ({str(err).splitlines()[0]})") from None
    return rbm, cfg


def _print_nll(label: str, nll, log_z, protocol: str) -> None:
    print(
        f"{label}: {nll.nll:.2f} nats  (AIS log Z = {log_z.log_z:.2f}, ±3σ NLL bounds "
        f"[{nll.nll_lower:.2f}, {nll.nll_upper:.2f}], {log_z.num_runs} runs x {log_z.num_betas - 1} "
        f"intermediate distributions)\n  data: {protocol}"
    )


def _ais_betas(n: int | None):
    if n is None:
        return None
    import numpy as np

    from physamp.ais import default_betas

    if n == 14500:
        return default_betas()
    return np.linspace(0.0, 1.0, n + 1)


def cmd_train_rbm(args) -> int:
    from pathlib import Path

    import torch

    from physamp.ais import estimate_log_z, test_nll
    from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer
    from physamp.training import resolve_device

    data = _load_data(args.dataset, args.data_root, args.binarize_seed, args.download)
    cfg = RBMTrainConfig(
        n_hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_final=args.lr_final,
        lr_schedule=args.lr_schedule,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        method=args.method,
        k=args.k,
        num_chains=args.chains,
        sampler=args.sampler,
        sampler_options=parse_options(args.option),
        topology=args.topology,
        max_weight=args.max_weight,
        max_bias=args.max_bias,
        weight_noise=args.weight_noise,
        bias_noise=args.bias_noise,
        noise_space=args.noise_space,
        seed=args.seed,
    )
    run_dir = Path(args.run_dir or f"runs/rbm-{args.sampler}-{data.n_features}x{args.hidden}-seed{args.seed}")
    device = resolve_device(args.device)
    print(
        f"physamp train-rbm: {data.name} ({data.train.shape[0]} train / {data.test.shape[0]} test), "
        f"{data.n_features}x{cfg.n_hidden} RBM, {cfg.method.upper()}-{cfg.k} with the {cfg.sampler!r} "
        f"backend, {cfg.epochs} epochs on {device}, {torch.get_num_threads()} thread(s) -> {run_dir}"
    )
    trainer = RBMTrainer(cfg, data.train, device=device)
    trainer.fit(run_dir=run_dir, progress=not args.no_progress, overwrite=args.overwrite)
    rbm = trainer.rbm
    shape = data.image_shape or (1, data.n_features)
    fig = run_dir / "samples.png"
    _sample_figure(rbm, "gibbs", {"steps": args.figure_steps}, fig, shape, seed=args.seed)
    log_z = estimate_log_z(
        rbm,
        data=data.train,
        num_runs=args.ais_runs,
        betas=_ais_betas(args.ais_betas),
        seed=args.seed,
        progress=not args.no_progress,
    )
    nll = test_nll(rbm, data.test.to(rbm.W.device), log_z)
    _print_nll("test NLL", nll, log_z, data.protocol)
    (run_dir / "result.json").write_text(
        __import__("json").dumps(
            {
                "test_nll": nll.nll,
                "test_nll_lower": nll.nll_lower,
                "test_nll_upper": nll.nll_upper,
                "log_z": log_z.log_z,
                "ais_runs": log_z.num_runs,
                "ais_betas": log_z.num_betas,
                "dataset": data.name,
                "protocol": data.protocol,
            },
            indent=2,
        )
    )
    print(
        f"outputs in {run_dir}/: checkpoint.pt, metrics.jsonl, samples.png (E[v|h] after "
        f"{args.figure_steps} Gibbs steps), result.json, config.json"
    )
    return 0


def cmd_ais(args) -> int:
    from physamp.ais import estimate_log_z, test_nll

    rbm, cfg = _load_rbm(args.checkpoint)
    data = _load_data(args.dataset, args.data_root, args.binarize_seed, args.download)
    if data.n_features != rbm.n_visible:
        raise ValueError(
            f"the checkpoint's RBM has {rbm.n_visible} visible units but {data.name} has "
            f"{data.n_features} features"
        )
    log_z = estimate_log_z(
        rbm,
        data=data.train,
        num_runs=args.ais_runs,
        betas=_ais_betas(args.ais_betas),
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(repr(log_z))
    _print_nll("test NLL", test_nll(rbm, data.test, log_z), log_z, data.protocol)
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
    from physamp.models.rbm_train import RBMTrainConfig as RBMDefaults

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
    d = RBMDefaults()
    s.add_argument(
        "--dataset",
        default="mnist-default",
        help="mnist-default (offline split if ../shared is there, else the bundled slice), "
        "mnist-offline, mnist-bundled, mnist, connect4",
    )
    s.add_argument("--data-root", default=None, help="directory with the dataset's files")
    s.add_argument("--download", action="store_true", help="download the dataset (checksummed, cached)")
    s.add_argument("--binarize-seed", type=int, default=0, help="seed of the test set's one-off binarisation")
    s.add_argument("--hidden", type=positive_int, default=d.n_hidden)
    s.add_argument("--epochs", type=positive_int, default=d.epochs)
    s.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    s.add_argument("--lr", type=positive_float, default=d.lr)
    s.add_argument("--lr-final", type=positive_float, default=d.lr_final)
    s.add_argument("--lr-schedule", default=d.lr_schedule, choices=["constant", "linear", "exponential"])
    s.add_argument("--momentum", type=float, default=d.momentum)
    s.add_argument("--weight-decay", type=nonnegative_float, default=d.weight_decay)
    s.add_argument("--method", default=d.method, choices=["pcd", "cd"])
    s.add_argument("-k", type=positive_int, default=d.k, help="Gibbs steps (or sweeps) per update")
    s.add_argument("--chains", type=positive_int, default=d.num_chains, help="PCD fantasy particles")
    s.add_argument("--sampler", default=d.sampler, help="negative-phase backend (see `physamp samplers`)")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="backend option, repeatable")
    s.add_argument("--topology", default=None, help="dense (default), chimera, chimera:extended, random:0.5")
    s.add_argument("--max-weight", type=positive_float, default=None)
    s.add_argument("--max-bias", type=positive_float, default=None)
    s.add_argument(
        "--weight-noise", type=nonnegative_float, default=0.0, help="σ of weight noise in the negative phase"
    )
    s.add_argument(
        "--bias-noise", type=nonnegative_float, default=0.0, help="σ of bias noise in the negative phase"
    )
    s.add_argument("--noise-space", default="rbm", choices=["rbm", "ising"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    s.add_argument("--run-dir", default=None, help="output directory (default runs/rbm-SAMPLER-VxH-seedS)")
    s.add_argument(
        "--overwrite", action="store_true", help="start over in a run directory that holds another run"
    )
    s.add_argument("--ais-runs", type=positive_int, default=100)
    s.add_argument(
        "--ais-betas", type=int, default=14500, help="intermediate distributions (14500: S&M schedule)"
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
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
