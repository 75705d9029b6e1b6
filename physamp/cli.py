"""The ``physamp`` command line.

physamp samplers                      list the backends and their options
physamp check-sampler NAME [-o k=v]   sample a small random RBM, compare with the exact distribution
physamp train-rbm [options]           train an RBM and report its test NLL (resumable run directory)
physamp train-ali --dataset toy      train ALI (or --gan) on the toy or on images (ch. 5)
physamp train-style --styles DIR --content DIR   one network for N painting styles (ch. 7)
physamp stylize PHOTO --model RUN --style K      a pastiche (--mix W,W,... blends; --all-styles: a grid)
physamp add-style PAINTING --model RUN           train only a new style's γ/β (the rest frozen)
physamp export --model RUN --format onnx         TorchScript / ONNX export of a style network, checked
physamp fetch-vgg --source imagenet|hed          the style loss network's VGG-16 weights, into the cache
physamp ais CHECKPOINT                estimate the test NLL of a trained RBM again
physamp sample CHECKPOINT             sample a trained RBM with any backend (a PNG grid)
physamp experiment NAME               rerun a thesis experiment (physamp experiment list)
physamp topology chimera 14           summarise an RBM topology (--draw FILE.png to plot it)

Exit status: 0 success, 1 a failed check (check-sampler), 2 bad input or a file that cannot be
used (one line on stderr, no traceback; also a QPU budget that stops ``train-rbm``, after its
checkpoint and cost report), 130 stopped by Ctrl-C (with where it stopped and how to
resume). Unless ``--threads`` is given (or ``OMP_NUM_THREADS`` is set), torch runs on
:func:`physamp.training.default_threads` threads: 1 on a 2-core machine, where 2 threads can be
many times slower when another process is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import textwrap

from physamp.training.options import (
    add_config_arguments,
    config_from_args,
    nonnegative_float,  # noqa: F401  (kept importable: physamp.cli.nonnegative_float)
    parse_assignments,
    positive_float,  # noqa: F401
    positive_int,
    seed_int,
)

# one implementation of NAME=VALUE parsing and of the number types, shared with the config flags
parse_options = parse_assignments

#: check-sampler enumerates every state; more units than this would not fit in memory
CHECK_SAMPLER_MAX_UNITS = 16


class _Stopped(KeyboardInterrupt):
    """Ctrl-C, with a sentence saying where the command stopped."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where

    def __str__(self) -> str:
        return self.where


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
    n = args.visible + args.hidden
    if n > CHECK_SAMPLER_MAX_UNITS:  # bad input: checked before any work
        raise ValueError(
            f"check-sampler enumerates all 2^(visible+hidden) states; visible + hidden is {n}, keep it "
            f"<= {CHECK_SAMPLER_MAX_UNITS} (e.g. --visible 8 --hidden 8)"
        )
    import numpy as np
    import torch

    import physamp
    from physamp.samplers import make_sampler
    from physamp.samplers.exact import enumerate_states

    options = parse_options(args.option)
    g = torch.Generator().manual_seed(args.seed)
    rbm = physamp.RBM(args.visible, args.hidden)
    with torch.no_grad():
        rbm.W.copy_(torch.randn(args.hidden, args.visible, generator=g))
        rbm.b.copy_(torch.randn(args.visible, generator=g) * 0.5)
        rbm.c.copy_(torch.randn(args.hidden, generator=g) * 0.5)
    sampler = make_sampler(args.name, seed=args.seed, **options)
    # a backend with a transverse field Γ > 0 (quantum, openjij, exact with gamma) is compared with
    # the transverse-field distribution p_Γ at β = 1, and one with a Trotter number M also with the
    # exact Trotter-M distribution it targets; the others with the classical p ∝ exp(−E)
    gamma_attr = getattr(sampler, "gamma", None)
    quantum = isinstance(gamma_attr, (int, float)) and not isinstance(gamma_attr, bool) and gamma_attr > 0
    gamma = float(gamma_attr) if quantum and gamma_attr is not None else 0.0
    trotter = getattr(sampler, "trotter", None) if quantum else None
    trotter = trotter if isinstance(trotter, int) and not isinstance(trotter, bool) else None
    if quantum:
        from physamp.samplers.quantum_exact import (
            MAX_SPINS,
            rbm_transverse_field_log_probs,
            trotter_log_probs,
        )

        if n > MAX_SPINS:
            raise ValueError(
                f"check-sampler diagonalises the transverse-field model of all {n} units for a backend "
                f"with gamma > 0; keep visible + hidden <= {MAX_SPINS} (e.g. --visible 5 --hidden 4)"
            )
        p = rbm_transverse_field_log_probs(rbm, gamma, 1.0)[0].exp().numpy()
        p_m = None if trotter is None else trotter_log_probs(rbm, gamma, 1.0, trotter)[0].exp().numpy()
    else:
        states = enumerate_states(0, 1 << n, n, dtype=torch.float32)
        logp = -rbm.energy(states[:, : args.visible], states[:, args.visible :]).detach().double()
        p = torch.softmax(logp, 0).numpy()
        p_m = None
    print(f"sampling a random {args.visible}x{args.hidden} RBM with {sampler!r} ...")
    s = sampler.sample(rbm, args.samples)
    x = torch.cat([s.v, s.h], 1).to(torch.int64).numpy()
    idx = x @ (1 << np.arange(n))
    q = np.bincount(idx, minlength=p.size) / len(idx)
    target = p if p_m is None else p_m  # what the backend samples exactly, up to sampling noise
    tv = 0.5 * np.abs(q - target).sum()
    noise = 0.5 * np.sum(np.sqrt(2 * target * (1 - target) / (np.pi * args.samples)))
    if not quantum:
        print(
            f"total-variation distance to the exact distribution: {tv:.4f} "
            f"(sampling noise alone gives about {noise:.4f}); {s.info['time_s']:.2f} s"
        )
    else:
        print(
            f"reference: the exact transverse-field distribution p_Γ at Γ = {gamma:g}, β = 1 (diagonalised)"
        )
        tv_g = 0.5 * np.abs(q - p).sum()
        if p_m is None:
            print(
                f"total-variation distance to p_Γ: {tv_g:.4f} (sampling noise alone gives about "
                f"{noise:.4f}); {s.info['time_s']:.2f} s"
            )
        else:
            err = 0.5 * np.abs(p_m - p).sum()
            print(
                f"total-variation distance to the exact Trotter-{trotter} distribution p_M: {tv:.4f} "
                f"(sampling noise alone gives about {noise:.4f}); to p_Γ: {tv_g:.4f} (the exact Trotter "
                f"error TV(p_M, p_Γ) is {err:.5f}); {s.info['time_s']:.2f} s"
            )
    return 0 if tv < max(3 * noise, 0.02) else 1


def _load_data(name: str, root: str | None, seed: int, download: bool = False):
    """The dataset of ``--dataset`` (``default`` is ``mnist-default``); a ``--data-root`` or
    ``--download`` it would not use is an error (:func:`physamp.data.load_dataset`)."""
    from physamp.data import load_dataset

    return load_dataset("mnist-default" if name == "default" else name, root=root, binarize_seed=seed,
                        download=download)  # fmt: skip


def _sample_figure(rbm, sampler_name: str, options: dict, path, image_shape, num: int = 100, seed: int = 0):
    """Expected visibles E[v | h] given sampled hiddens (the thesis's figures) as a PNG grid."""
    import torch

    from physamp.plotting import save_image_grid
    from physamp.samplers import make_sampler

    sampler = make_sampler(sampler_name, seed=seed, **options)
    s = sampler.sample(rbm, num)
    with torch.no_grad():
        mean_v = rbm.p_v_given_h(s.h.to(rbm.W.dtype))
    # the whole sampler in the title, wrapped to the figure's width instead of cut off
    title = textwrap.fill(f"E[v | h] of {num} chains, h sampled by {sampler!r}", width=64)
    save_image_grid(mean_v, path, image_shape=image_shape, nrow=10, title=title)
    return s


def _load_rbm(path):
    from physamp.models.rbm import RBM
    from physamp.training import CheckpointError, checkpoint_config, load_checkpoint, load_component

    ckpt = load_checkpoint(path)  # checks the layout; errors name the file
    cfg = checkpoint_config(ckpt)
    if cfg.get("model") != "rbm":
        raise CheckpointError(f"{path} does not hold an RBM (model={cfg.get('model')!r})")
    try:
        return RBM.from_state_dict(load_component(ckpt, "model")), cfg
    except (ValueError, CheckpointError) as err:
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
    from physamp.models.rbm.evaluate import ais_settings
    from physamp.models.rbm.pcd import QPUBudgetStop
    from physamp.samplers.qpu_budget import format_cost_report
    from physamp.training import Callback, TrainingInterrupted, resolve_device

    # every option is checked before any work: the config, the AIS settings, the device, the data
    cfg = config_from_args(RBMTrainConfig, args)
    ais_settings(args.ais_runs, args.ais_betas, cfg.seed)
    device = resolve_device(args.device)
    data = _load_data(args.dataset, args.data_root, args.binarize_seed, args.download)
    sets = [str(kv).split("=", 1)[0].strip() for kv in (getattr(args, "config_set", None) or [])]
    if not hasattr(args, "n_hidden") and "n_hidden" not in sets and cfg.topology is not None:
        # no --hidden: the topology's own shape (784 for chimera/pegasus/zephyr on 28x28), else 500
        from dataclasses import replace

        from physamp.models.rbm.pcd import default_hidden

        cfg = replace(cfg, n_hidden=default_hidden(cfg.topology, data.n_features, seed=cfg.seed)).validate()
    run_dir = Path(args.run_dir or f"runs/rbm-{cfg.sampler}-{data.n_features}x{cfg.n_hidden}-seed{cfg.seed}")
    from physamp.samplers.registry import sampler_class

    # a backend of independent samples (dwave, exact, dimod) runs no k sweeps: say what a step draws
    chains = sampler_class(cfg.sampler).uses_chains is not False
    reads = cfg.num_chains if cfg.method == "pcd" else cfg.batch_size
    method = f"{cfg.method.upper()}-{cfg.k}" if chains else f"{reads} independent samples per step"
    print(
        f"physamp train-rbm: {data.name} ({data.train.shape[0]} train / {data.test.shape[0]} test), "
        f"{data.n_features}x{cfg.n_hidden} RBM, {method} with the {cfg.sampler!r} "
        f"backend, {cfg.epochs} epochs on {device}, {torch.get_num_threads()} thread(s) -> {run_dir}"
    )

    class Trained(Callback):
        done = False

        def on_end(self, loop) -> None:
            self.done = True

    trained = Trained()
    figure = run_dir / "samples.png"
    built: list = []  # the trainer, for the QPU estimate before training and the cost report after

    def on_trainer(trainer) -> None:
        built.append(trainer)
        _print_qpu_estimate(trainer, run_dir)

    try:
        result = train_and_evaluate(
            cfg,
            data,
            run_dir=run_dir,
            device=device,
            ais_runs=args.ais_runs,
            ais_betas=args.ais_betas,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            callbacks=[trained],
            on_trainer=on_trainer,
        )
        if not (result.reused and figure.exists()):
            shape = data.image_shape or (1, data.n_features)
            _sample_figure(result.rbm, "gibbs", {"steps": args.figure_steps}, figure, shape, seed=cfg.seed)
    except QPUBudgetStop as stop:  # a clean stop: the report on stdout, then one line on stderr (exit 2)
        print(format_cost_report(stop.report))
        raise
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        if trained.done:
            raise _Stopped(
                f"training had finished (the model is in {run_dir / 'checkpoint.pt'}); it stopped during the "
                "AIS evaluation or the sample figure, which a rerun does again without training"
            ) from None
        raise _Stopped("it stopped before training began; nothing was trained") from None
    _print_nll("test NLL", result.test_nll, result.log_z, data.protocol)
    if result.reused:
        print(
            f"  (stored result: {run_dir} already holds this finished run with these AIS settings, so "
            "nothing was recomputed; other --ais-runs / --ais-betas evaluate it again, --overwrite retrains)"
        )
    report = built[0].qpu_cost_report() if built else None
    if report is not None:
        print(format_cost_report(report))
    print(
        f"outputs in {run_dir}/: config.json, checkpoint.pt, metrics.jsonl, samples.png (E[v|h] after "
        f"{args.figure_steps} Gibbs steps), result.json"
        + (", qpu_ledger.jsonl, qpu_cost.json" if report is not None else "")
    )
    return 0


def _print_qpu_estimate(trainer, run_dir) -> None:
    """Before a dwave run trains: its estimated QPU access time against the budget (the run
    directory's ledger, read first, says what was spent before)."""
    from physamp.models.rbm.pcd import setup_qpu_backend

    qpu = setup_qpu_backend(trainer.sampler, trainer.cfg, run_dir=run_dir)
    if qpu is None or (qpu.topology is None and qpu.qpu_budget is None):
        return  # chains and no budget: estimating would embed the RBM now; leave that to step 1
    est = trainer.qpu_estimate()
    if est is None:
        return
    if est["per_step_s"] is None:
        print("  QPU access time: the solver gives no estimate (no problem_timing_data)")
        return
    text = (
        f"  estimated QPU access time: {est['per_step_s'] * 1e3:.4g} ms per step x {est['steps']:,} steps = "
        f"{est['training_s']:.4g} s"
    )
    if est["calibrations"]:
        cal = est["calibration_max_s"]
        text += f" + {est['calibrations']:,} calibration(s) of at most " + (
            "unknown cost" if cal is None else f"{cal:.4g} s"
        )
    if est["budget_s"] is not None:
        text += f"; budget {est['budget_s']:.6g} s, {est['spent_s']:.6g} s already spent (ledger)"
    print(text)


def cmd_train_ali(args) -> int:
    from pathlib import Path

    import torch

    from physamp.models.ali import ALITrainConfig, ALITrainer, NonFiniteLossError
    from physamp.models.ali.data import load_ali_data
    from physamp.models.ali.figures import ALIFigures
    from physamp.models.ali.train import DATASET_MODELS, check_amp
    from physamp.training import resolve_device
    from physamp.training.distributed import Distributed

    FIGURE_IMAGES = 1000  # held-out images loaded for the figures (they use 50 and 16 pairs)

    dataset = args.dataset.lower()
    if dataset not in DATASET_MODELS:
        raise ValueError(f"unknown ALI dataset {args.dataset!r}; choose one of {', '.join(DATASET_MODELS)}")
    # every option is checked before any work: the config, the device, then the data
    cfg = config_from_args(ALITrainConfig, args, model=args.model or DATASET_MODELS[dataset])
    dist = Distributed.from_env(args.device)
    device = dist.device if dist is not None else resolve_device(args.device)
    check_amp(cfg.amp, device)
    try:
        data = load_ali_data(dataset, args.data_root, download=args.download, max_train=args.max_train,
                             max_held_out=FIGURE_IMAGES, seed=cfg.seed)  # fmt: skip
        kind = "GAN" if cfg.gan else ("conditional ALI" if cfg.conditional else "ALI")
        family = "gan" if cfg.gan else ("cali" if cfg.conditional else "ali")
        run_dir = Path(args.run_dir or f"runs/{family}-{cfg.model}-{dataset}-seed{cfg.seed}")
        y_train = data.conditioning("train") if cfg.conditional else None
        trainer = ALITrainer(cfg, data.x_train, y_train, device=device, data=data.identity, dist=dist)
        main_process = dist is None or dist.is_main
        if main_process:
            procs = f", {dist.world_size} processes" if dist is not None else ""
            if cfg.steps:
                length = f"{trainer.total_steps:,} steps ({trainer.batches_per_epoch:,} per epoch)"
            else:
                length = f"{trainer.hp['epochs']} epochs of {trainer.batches_per_epoch:,} steps"
            print(
                f"physamp train-ali: {kind} ({cfg.model} model, {cfg.spec.table}) on {data.describe()}; "
                f"{length}, batch {trainer.hp['batch_size']}, Adam lr {trainer.hp['lr']:g} betas "
                f"({trainer.hp['beta1']}, {trainer.hp['beta2']}) on {device}{procs}, "
                f"{torch.get_num_threads()} thread(s) -> {run_dir}"
            )
        callbacks = []
        if cfg.spec.is_image and main_process:
            n_classes = data.n_classes if cfg.conditional else None
            y_val = data.conditioning("val").to(device) if cfg.conditional else None
            callbacks.append(
                ALIFigures(
                    trainer.ali,
                    run_dir,
                    data.x_val,
                    y_val,
                    every=args.figure_every,
                    seed=cfg.seed,
                    n_classes=n_classes,
                )  # fmt: skip
            )
        try:
            trainer.fit(run_dir=run_dir, progress=not args.no_progress, overwrite=args.overwrite,
                        callbacks=callbacks)  # fmt: skip
        except NonFiniteLossError as err:
            raise ValueError(str(err)) from None
        if main_process:
            _ali_summary(trainer, data, run_dir, callbacks)
    finally:
        if dist is not None:
            dist.close()
    return 0


def _ali_summary(trainer, data, run_dir, callbacks) -> None:
    """The end of ``train-ali``: the last losses, and for the toy the mode count and Fig. 5.8's panels."""
    last = trainer.loop.history[-1] if trainer.loop is not None and trainer.loop.history else {}
    if last:
        print(
            "final record: "
            + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "time_s"))
        )
    written = [p.name for cb in callbacks for p in getattr(cb, "written", [])]
    if trainer.cfg.model == "toy":
        from physamp.models.ali.toy import evaluate_toy_model, plot_toy_panels

        ali = trainer.ali.cpu().eval()
        encode = None if ali.encoder is None else (lambda x, eps: ali.encoder(x, eps=eps))
        metrics, panel = evaluate_toy_model(ali.decoder, encode, data.x_val, seed=trainer.cfg.seed)
        label = "GAN" if trainer.cfg.gan else "ALI"
        plot_toy_panels({label: panel}, run_dir / "toy.png")
        written.append("toy.png")
        print(
            f"modes covered by 10,000 samples of p(x): {metrics['modes']} of 25 (thesis, over 10 runs: ALI "
            f"13.4 ± 5.8, GAN 10.4 ± 9.2); high-quality samples {metrics['high_quality']:.1%}"
        )
        (run_dir / "toy_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        written.append("toy_metrics.json")
    print(
        f"outputs in {run_dir}/: config.json, checkpoint.pt, metrics.jsonl"
        + "".join(", " + w for w in written)
    )


def cmd_ais(args) -> int:
    from physamp.models.rbm.evaluate import ais_settings, evaluate_nll

    ais_settings(args.ais_runs, args.ais_betas, args.seed)
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
    from pathlib import Path

    options = parse_options(args.option)
    rbm, cfg = _load_rbm(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"samples-{args.sampler}.png"
    side = int(round(rbm.n_visible**0.5))
    shape = (side, side) if side * side == rbm.n_visible else (1, rbm.n_visible)
    s = _sample_figure(rbm, args.sampler, options, out, shape, num=args.num, seed=args.seed)
    print(
        f"{args.num} samples from {args.sampler!r} in {s.info['time_s']:.2f} s; "
        f"grid of E[v|h] written to {out}"
    )
    return 0


def cmd_experiment(args) -> int:
    from physamp.experiments.runner import (
        available_experiments,
        check_overrides,
        load_experiment,
        run_experiment,
    )

    if args.name in (None, "list"):
        for name in available_experiments():
            exp = load_experiment(name)
            print(f"{name:24s} {exp.TITLE}  (presets: {', '.join(exp.PRESETS)})")
        return 0
    exp = load_experiment(args.name)  # checked before any work: the name, the preset, the overrides
    if args.preset not in exp.PRESETS:
        raise ValueError(f"experiment {args.name!r} has presets {sorted(exp.PRESETS)}, not {args.preset!r}")
    overrides = parse_options(args.set)
    out = args.out
    for key, value in (("dataset", args.dataset), ("data_root", args.data_root)):
        if value is not None:
            if key not in exp.PRESETS[args.preset]:
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"experiment {args.name!r} takes no {flag} (it has no {key!r} setting)")
            overrides[key] = value
    if args.dataset is not None and out is None:  # one output folder per dataset
        out = os.path.join("results", args.name, f"{args.preset}-{args.dataset}")
    overrides = check_overrides(args.name, exp.PRESETS[args.preset], overrides)
    dask = True if args.dask == "local" else args.dask
    summary = run_experiment(
        args.name,
        args.preset,
        out,
        workers=args.workers,
        dask=dask,
        progress=not args.no_progress,
        overrides=overrides,
    )
    print(f"{summary['cells']} cells in {summary['seconds']:.0f} s")
    print(f"  table:  {summary['markdown']}\n  plot:   {summary['png']}\n  cells:  {summary['csv']}")
    print()
    with open(summary["markdown"]) as f:
        print("**Data:**" + f.read().split("**Data:**", 1)[1].rstrip())
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


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default (unless its text already says it, or there is none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS
        if not action.option_strings or "(default" in text or nothing:
            return text
        return f"{text} (default: %(default)s)"


class _ExperimentHelp(argparse.Action):
    """``physamp experiment NAME --help``: the options, then NAME's presets and the keys ``--set`` takes."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        name = getattr(namespace, "name", None)
        print()
        try:
            if name in (None, "list"):
                from physamp.experiments.runner import available_experiments

                print("experiments: " + ", ".join(available_experiments()))
                print("`physamp experiment NAME --help` shows NAME's presets and the keys --set accepts.")
            else:
                from physamp.experiments.runner import describe_presets

                print(describe_presets(name))
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            parser.exit(2)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from physamp import __version__
    from physamp.models.ali.networks import MODEL_NAMES as ALI_MODELS
    from physamp.models.ali.train import ALITrainConfig
    from physamp.models.rbm.pcd import RBMTrainConfig

    p = argparse.ArgumentParser(
        prog="physamp", description="Physical samplers and the models trained with them."
    )
    p.add_argument("--version", action="version", version=f"physamp {__version__}")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default: $OMP_NUM_THREADS if set, else physamp.training.default_threads(): "
        "1 on a 2-core machine, at most half the cores of an idle bigger one)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, helptext: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=helptext, description=helptext, formatter_class=_HelpFormatter, **kwargs
        )

    def data_options(s: argparse.ArgumentParser) -> None:
        s.add_argument(
            "--dataset",
            default="mnist-default",
            help="mnist-default (the offline split if ../shared/datasets is there, else the bundled "
            "slice), mnist-offline, mnist-bundled, mnist (full, IDX files), connect4",
        )
        s.add_argument(
            "--data-root",
            default=None,
            metavar="DIR",
            help="folder of the dataset's files (mnist: the IDX files; mnist-offline / mnist-default: the "
            "shared datasets folder; connect4: connect-4.data); mnist-bundled takes none",
        )
        s.add_argument(
            "--download", action="store_true", help="download mnist or connect4 (checksummed, cached)"
        )
        s.add_argument(
            "--binarize-seed", type=seed_int, default=0, help="seed of the test set's one-off binarisation"
        )

    def run_options(s: argparse.ArgumentParser, default_dir: str) -> None:
        """--device, --run-dir and --overwrite: what every training command takes."""
        s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
        s.add_argument(
            "--run-dir",
            default=None,
            help=f"output directory (default {default_dir}); rerunning a command resumes its run",
        )
        s.add_argument(
            "--overwrite", action="store_true", help="start over in a run directory that holds another run"
        )

    s = command("train-rbm", "train an RBM with any negative-phase backend and report its test NLL")
    data_options(s)
    # every training hyper-parameter: flags, defaults and help from RBMTrainConfig's fields
    add_config_arguments(s, RBMTrainConfig)
    run_options(s, "runs/rbm-SAMPLER-VxH-seedS")
    s.add_argument("--ais-runs", type=positive_int, default=100, help="AIS runs (importance samples)")
    s.add_argument(
        "--ais-betas",
        type=positive_int,
        default=14500,
        help="intermediate distributions of AIS (14500: S&M's schedule)",
    )
    s.add_argument(
        "--figure-steps", type=positive_int, default=1000, help="Gibbs steps before the sample figure"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_train_rbm)

    s = command("train-ali", "train ALI (thesis ch. 5) or its GAN baseline on the toy mixture or images")
    s.add_argument(
        "--dataset",
        default="mnist",
        help="toy (the 25-Gaussian mixture), mnist (offline), svhn, cifar10, celeba, imagenet64",
    )
    s.add_argument(
        "--model", default=None, choices=list(ALI_MODELS), help="network (default: the dataset's own model)"
    )
    s.add_argument("--data-root", default=None, metavar="DIR", help="folder of the dataset's files")
    s.add_argument("--download", action="store_true", help="download svhn or cifar10 (checksummed)")
    s.add_argument("--max-train", type=positive_int, default=None, help="train on the first N examples only")
    add_config_arguments(s, ALITrainConfig, exclude=("model",))
    run_options(s, "runs/ali-MODEL-DATASET-seedS; gan- or cali- for --gan or --conditional")
    s.add_argument(
        "--figure-every", type=positive_int, default=None, metavar="STEPS",
        help="also write the PNGs every STEPS steps (always at the end)",
    )  # fmt: skip
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_train_ali)

    from physamp.cli_style import add_style_commands

    add_style_commands(command, run_options)

    s = command("ais", "AIS log Z and test NLL of a trained RBM checkpoint")
    s.add_argument("checkpoint", help="a checkpoint.pt of train-rbm (or any RBM checkpoint)")
    data_options(s)
    s.add_argument("--ais-runs", type=positive_int, default=100, help="AIS runs (importance samples)")
    s.add_argument(
        "--ais-betas",
        type=positive_int,
        default=14500,
        help="intermediate distributions of AIS (14500: S&M's schedule)",
    )
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the AIS draws")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ais)

    s = command("sample", "sample a trained RBM checkpoint with any backend; writes a PNG grid")
    s.add_argument("checkpoint", help="a checkpoint.pt of train-rbm (or any RBM checkpoint)")
    s.add_argument("--sampler", default="gibbs", help="backend name (see `physamp samplers`)")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="backend option, repeatable")
    s.add_argument("--num", type=positive_int, default=100, help="number of samples (chains)")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the sampler")
    s.add_argument(
        "--out",
        default=None,
        metavar="FILE.png",
        help="where to write the grid (default: samples-SAMPLER.png beside the checkpoint, in its run dir)",
    )
    s.set_defaults(func=cmd_sample)

    s = command(
        "experiment",
        "run a thesis experiment (`physamp experiment list` shows them; "
        "`physamp experiment NAME --help` shows NAME's presets)",
        add_help=False,
    )
    s.add_argument(
        "-h", "--help", action=_ExperimentHelp, help="show this help, with NAME's presets, and exit"
    )
    s.add_argument("name", nargs="?", default=None, help="experiment name, or 'list'")
    s.add_argument(
        "--preset",
        default="quick",
        help="quick (a small grid: seconds to a few minutes on 2 cores) or full (the thesis's grid: hours)",
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
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a preset value, e.g. epochs=5 or seeds=[0,1,2] (repeatable; "
        "`physamp experiment NAME --help` lists the keys)",
    )
    s.add_argument(
        "--dataset", default=None, help="the experiment's dataset, where it has one (= --set dataset=NAME)"
    )
    s.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="folder of that dataset's files (= --set data_root=DIR)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_experiment)

    s = command("samplers", "list the sampler backends and their options")
    s.set_defaults(func=cmd_samplers)

    s = command(
        "check-sampler",
        "compare a backend with the exact distribution of a small RBM (the transverse-field one, and "
        "its Trotter-M form, for a backend with gamma > 0)",
    )
    s.add_argument("name", help="backend name (see `physamp samplers`)")
    s.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="backend option, repeatable")
    s.add_argument(
        "--visible",
        type=positive_int,
        default=5,
        help=f"visible units (visible + hidden <= {CHECK_SAMPLER_MAX_UNITS})",
    )
    s.add_argument("--hidden", type=positive_int, default=4, help="hidden units")
    s.add_argument("--samples", type=positive_int, default=20_000, help="samples drawn")
    s.add_argument("--seed", type=seed_int, default=0, help="seed of the random RBM and of the backend")
    s.set_defaults(func=cmd_check_sampler)

    s = command("topology", "summarise (and draw) an RBM laid out on a hardware graph")
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
    s.add_argument(
        "--pixel-mapping",
        default=None,
        choices=["pixel_blocks", "extended_pixel_blocks"],
        help="how pixels map to the visible units (chimera RBM shapes)",
    )
    s.add_argument("--draw", metavar="FILE.png", default=None, help="draw the topology to a PNG")
    s.set_defaults(func=cmd_topology)
    return p


def _interrupted(argv: list[str], stop: KeyboardInterrupt) -> int:
    """Ctrl-C: one message saying where the command stopped and how to resume it; exit status 130.

    Training and sweeps say where they stopped (:class:`~physamp.training.TrainingInterrupted`,
    :class:`~physamp.experiments.sweep.SweepInterrupted`); other commands keep no state."""
    command = shlex.join(["physamp", *argv])
    if str(stop):
        print(
            f"\ninterrupted (Ctrl-C): {stop}.\nTo resume, run the same command again:\n  {command}",
            file=sys.stderr,
        )
    else:
        print(
            f"\ninterrupted (Ctrl-C); this command keeps no partial state. To run it again:\n  {command}",
            file=sys.stderr,
        )
    return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        from physamp.training import set_threads

        if args.threads is not None:
            set_threads(args.threads)
        elif "OMP_NUM_THREADS" not in os.environ:
            set_threads("auto")
        return int(args.func(args) or 0)
    except KeyboardInterrupt as stop:
        return _interrupted(argv, stop)
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
