"""§5.4.5 and Fig. 5.8 -- ALI against a GAN on the 25-Gaussian toy: mode coverage, then four ways to infer z.

Protocol
--------
- Data: q(x), the 2-D mixture of 25 Gaussians on the grid {-4, -2, 0, 2, 4}² with std 0.05 and equal
  weights (:func:`physamp.models.ali.toy.grid_mixture`; the authors' released parameters, the thesis
  states none). Training: ``n_train`` = 100,000 points drawn with seed ``data_seed`` (0), as in the
  thesis ("trained ALI and GAN on 100,000 q(x) samples"). Held-out: ``n_eval`` = 10,000 other points
  (seed ``data_seed + 1``) for the reconstructions and the codes q(z).
- Models: the toy ALI of :mod:`physamp.models.ali.networks` (the authors' released configuration:
  implicit encoder MLP [x, ε] 4 → 400 → 400 → 2, decoder 2 → 400 × 4 → 2, maxout discriminator on
  [x, z]) and the GAN baseline (the same decoder and discriminator, on x only), trained by Algorithm 1
  (:class:`~physamp.models.ali.train.ALITrainer`), Adam (β₂ = 0.999), batch 100.
- Random search (the thesis: "Each model was trained 10 times using Adam with random learning rate and
  β₁ values, and the weights were initialized by drawing from a gaussian distribution with a random
  standard deviation"; it gives no ranges). Ours, centred on the authors' released values (lr 1e-4,
  β₁ 0.8, std 0.02): learning rate **log-uniform in [3e-5, 1e-3]**, β₁ **uniform in [0.5, 0.9]**, initial
  weights' std **log-uniform in [0.005, 0.1]** (``lr_range``, ``beta1_range``, ``init_std_range``). Run
  ``i`` draws its three values from ``numpy.random.default_rng([hp_seed, i])`` (so run i's draw does not
  depend on how many runs there are), rounded to 4 significant digits, and **run i of ALI and run i of
  the GAN share them**, and their seed (``i``: initial weights, z and ε, data order).
- Mode coverage (the thesis's metric): 10,000 samples of each model's p(x) (``z ~ N(0, I)``, decoder in
  evaluation mode: batch-norm running statistics), each assigned to the mixture component of highest
  responsibility; a mode is covered when at least one sample is assigned to it (no quality filter).
  Also (ours): the fraction of samples within 3 std (0.15) of their mode's centre ("high quality"; 0.989
  for q(x) itself, 0.018 for uniform noise on [-5, 5]²) and the modes covered by such samples.
  Summary over the runs: mean ± **sample** std (ddof = 1), min and max. The thesis does not say which
  std its "±" is.
- Inference comparison on the best-covering ALI and GAN runs (most modes; ties: the lower run index):
  (a) **ALI** itself; (b) **GAN + learned inverse mapping**: a new encoder minimising
  E_z ‖z − G_z(G_x(z))‖² with the GAN's decoder frozen; (c) **GAN + post-hoc learned inference**: the
  GAN's decoder frozen, a new encoder and joint discriminator trained by the ALI objective; (d) a
  **VAE** with the same encoder / decoder MLPs (Gaussian q(z|x) from the last layer's (μ, log σ), fixed
  likelihood std ``vae_sigma_x`` = 0.1), trained from scratch. See :mod:`physamp.models.ali.baselines`
  for every training choice. (b) and (c) train with the GAN run's Adam settings and init std, (d) with
  the ALI run's, each for as many steps as the runs (``steps``). On the 10,000 held-out points, each
  column gets: modes covered by 10,000 samples (a, b, c: the GAN's samples for b and c), the
  high-quality fraction, the reconstruction error mean ‖x − G_x(G_z(x))‖², the fraction of
  reconstructions in the original's mode, and the unbiased MMD² between q(z) (codes of the held-out
  points, one ε each) and 10,000 prior draws (Gaussian kernel, median-heuristic bandwidth) with a
  permutation p-value (``mmd_permutations`` relabellings). The thesis compares these only by eye.
- Outputs: ``ali-toy.md`` (protocol, the per-run table, the summary beside the thesis, the inference
  table, observations), ``ali-toy.png`` (Fig. 5.8: one column per model of the comparison; rows data,
  q(z), reconstructions, prior, samples; points coloured by the mode of the data point they came from),
  ``ali-toy-modes.png`` (modes per run), ``inference.csv``, ``cells.csv``. Each run is a cell of the
  sweep (cached); its trained model is kept in the model cache (``$PHYSAMP_MODEL_CACHE``, by default
  ``OUT/../models``) and the comparison's models in ``OUT/models/``, so rerunning the report retrains
  nothing. A run whose loss stops being finite keeps its last finite state (the report says so).

Thesis (§5.4.5): "ALI models covered 13.4 ± 5.8 modes on average (min: 8, max: 25)"; "GAN models
covered 10.4 ± 9.2 modes on average (min: 1, max: 22)", 10 runs each; qualitatively (Fig. 5.8), ALI's
q(z) matches p(z) fairly well, the inverse mapping does poorly, post-hoc inference matches q(z) to p(z)
better than the inverse mapping but organises the latent space worse than ALI, and the VAE covers all
modes and reconstructs best but leaves holes in q(z).

Presets: every preset trains the authors' batch of 100 on 100,000 points; what differs is the length
(``steps``; the authors' 200 epochs are 200,000 steps) and the evaluation size. ``tiny`` (2 runs each,
20 steps, 1,000 evaluation points, 10 permutations: about 15 s; tests and the notebook's smoke run);
``quick`` (10 runs each, 1,000 steps = 1 epoch, 0.5 % of the authors' length; 10,000 evaluation points,
100 permutations); ``full`` (10 runs each, 200,000 steps = the authors' 200 epochs). Measured on this
machine (2 shared cores, one torch thread per process): with the machine otherwise idle an ALI step takes
40 ms and a GAN step 36 ms; with other jobs on the cores (load 4-5) ALI 65-85 ms, GAN 50-75 ms, a
post-hoc step 30-50 ms, an inverse-mapping step 8-10 ms and a VAE step 14-18 ms. The quick preset took
15 minutes on 2 workers under that load (892 s: the 20 runs about 13 minutes, the report's three
baselines and evaluations under 2 minutes); on idle cores it would take about 8. ``full`` costs
20 × 200,000 steps × 38 ms ≈ 42 core-hours for the runs (≈ 21 hours on 2 workers, twice that on loaded
cores), plus 200,000 × (8 + 32 + 14) ms ≈ 3 hours for the three baselines, which the report trains in
its own process after the runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.experiments import common
from physamp.experiments.sweep import cell_key
from physamp.models.ali.baselines import BaselineConfig, InverseMappingTrainer, PostHocTrainer, VAETrainer
from physamp.models.ali.model import ALI
from physamp.models.ali.toy import STD, evaluate_toy_model, grid_mixture, plot_toy_panels
from physamp.models.ali.train import ALITrainConfig, ALITrainer, NonFiniteLossError
from physamp.training import load_checkpoint, load_component, save_components

NAME = "ali-toy"
TITLE = "ALI vs GAN on the 25-Gaussian toy: mode coverage and inference (thesis §5.4.5, Fig. 5.8)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (§5.4.5)")
#: every cell's result has these (the other metrics are there too, where the model has them)
RESULT_KEYS = ("modes", "high_quality", "modes_high_quality")
MODELS = ("ali", "gan")
LABELS = {"ali": "ALI", "gan": "GAN"}
#: §5.4.5, over 10 runs of each model
THESIS = {
    "ali": {"mean": 13.4, "std": 5.8, "min": 8, "max": 25, "n": 10},
    "gan": {"mean": 10.4, "std": 9.2, "min": 1, "max": 22, "n": 10},
}
FULL_EPOCHS = 200  # the authors' released configuration
FULL_STEPS = FULL_EPOCHS * 100_000 // 100
COLUMNS = ("ALI", "GAN + inverse mapping", "GAN + post-hoc", "VAE")
#: what one cell's model training depends on (its cache key): not the evaluation settings
TRAIN_KEYS = ("model", "seed", "lr", "beta1", "init_std", "steps", "batch_size", "n_train", "data_seed")

_COMMON = dict(
    batch_size=100,
    n_train=100_000,
    data_seed=0,
    hp_seed=0,
    lr_range=[3e-5, 1e-3],
    beta1_range=[0.5, 0.9],
    init_std_range=[0.005, 0.1],
    vae_sigma_x=0.1,
)
PRESETS = {
    "tiny": dict(_COMMON, runs=2, steps=20, n_eval=1000, mmd_permutations=10),
    "quick": dict(_COMMON, runs=10, steps=1000, n_eval=10_000, mmd_permutations=100),
    "full": dict(_COMMON, runs=10, steps=FULL_STEPS, n_eval=10_000, mmd_permutations=100),
}


# ------------------------------------------------------------------------------- the random search
def _range(p: dict, key: str, log: bool) -> tuple[float, float]:
    r = p[key]
    if not isinstance(r, (list, tuple)) or len(r) != 2 or not all(isinstance(v, (int, float)) for v in r):
        raise ValueError(f"{key} must be a list [low, high] of two numbers, got {r!r}")
    lo, hi = float(r[0]), float(r[1])
    if not lo <= hi or (log and lo <= 0):
        raise ValueError(f"{key} must have 0 {'<' if log else '<='} low <= high, got {r!r}")
    return lo, hi


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def hyperparameters(p: dict) -> list[dict[str, float]]:
    """The ``runs`` draws of (``lr``, ``beta1``, ``init_std``) of preset ``p``: run ``i`` from
    ``numpy.random.default_rng([hp_seed, i])``; lr and init std log-uniform, β₁ uniform; 4 digits."""
    lr, b1, std = (
        _range(p, "lr_range", True),
        _range(p, "beta1_range", False),
        _range(p, "init_std_range", True),
    )
    runs = p["runs"]
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive int, got {runs!r}")
    out = []
    for i in range(runs):
        rng = np.random.default_rng([int(p["hp_seed"]), i])
        u = rng.random(3)
        out.append(
            {
                "lr": _round(math.exp(math.log(lr[0]) + u[0] * (math.log(lr[1]) - math.log(lr[0])))),
                "beta1": _round(b1[0] + u[1] * (b1[1] - b1[0])),
                "init_std": _round(math.exp(math.log(std[0]) + u[2] * (math.log(std[1]) - math.log(std[0])))),
            }
        )
    return out


def cells(p: dict) -> list[dict]:
    """One cell per (run, model): run i of ALI and run i of the GAN share their hyperparameters and seed."""
    for key in ("steps", "batch_size", "n_train", "n_eval"):
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive int, got {v!r}")
    if p["n_train"] < p["batch_size"]:
        raise ValueError(f"n_train ({p['n_train']}) is smaller than a batch ({p['batch_size']})")
    if p["n_eval"] < 2:
        raise ValueError("n_eval must be at least 2 (the MMD needs two points on each side)")
    out = []
    for i, hp in enumerate(hyperparameters(p)):
        for model in MODELS:
            out.append(
                {
                    "experiment": NAME,
                    "model": model,
                    "run": i,
                    "seed": i,
                    **hp,
                    "steps": p["steps"],
                    "batch_size": p["batch_size"],
                    "n_train": p["n_train"],
                    "data_seed": p["data_seed"],
                    "n_eval": p["n_eval"],
                    "mmd_permutations": p["mmd_permutations"],
                    "vae_sigma_x": p["vae_sigma_x"],
                    "search": {k: p[k] for k in ("hp_seed", "lr_range", "beta1_range", "init_std_range")},
                }
            )
    return out


# ---------------------------------------------------------------------------------------- the data
def training_data(cell: dict) -> torch.Tensor:
    return grid_mixture(cell["n_train"], seed=cell["data_seed"])[0]


def held_out(cell: dict) -> torch.Tensor:
    return grid_mixture(cell["n_eval"], seed=cell["data_seed"] + 1)[0]


def _data_identity(cell: dict) -> dict:
    return {"name": "grid-mixture-25", "n": cell["n_train"], "seed": cell["data_seed"], "std": STD}


# ------------------------------------------------------------------------------- training, cached
def _fit_or_load(trainer, modules: dict[str, torch.nn.Module], path: Path, config: dict) -> dict:
    """Load ``modules`` from ``path`` when it holds them; else ``trainer.fit()`` and save them there.

    Returns ``{"seconds", "steps", "diverged_at", "final", "cached"}``: the training time (as measured
    when it trained), the steps done, the step whose loss was not finite (None), the last record's
    metrics. A run whose loss stops being finite keeps its last finite state (that step is not applied).
    """

    def load() -> dict | None:
        if not path.exists():
            return None
        try:
            ckpt = load_checkpoint(path)
            for name, m in modules.items():
                m.load_state_dict(load_component(ckpt, name))
            return {
                "seconds": float(ckpt["seconds"]),
                "steps": int(ckpt["step"]),
                "diverged_at": ckpt["diverged_at"],
                "final": dict(ckpt["final"]),
                "cached": True,
            }
        except Exception:
            return None  # a damaged or old entry is retrained and rewritten atomically

    def make() -> dict:
        diverged = None
        t0 = time.perf_counter()
        try:
            history = trainer.fit(progress=False)
        except NonFiniteLossError as err:
            diverged, history = err.step, (trainer.loop.history if trainer.loop is not None else [])
        seconds = time.perf_counter() - t0
        steps = trainer.total_steps if diverged is None else diverged
        final = {
            k: float(v) for k, v in (history[-1] if history else {}).items() if k not in ("step", "time_s")
        }
        save_components(
            path,
            modules,
            config=config,
            step=steps,
            extra={"seconds": seconds, "diverged_at": diverged, "final": final},
        )
        return {"seconds": seconds, "steps": steps, "diverged_at": diverged, "final": final, "cached": False}

    return common.cached(path, load, make)


def _model_path(cell: dict) -> Path:
    key = cell_key({k: cell[k] for k in TRAIN_KEYS})
    return common.model_cache_dir() / f"ali-toy-{cell['model']}-{key}.pt"


def trained_run(cell: dict) -> tuple[ALI, dict]:
    """The cell's trained ALI (or GAN), from the model cache or trained now: ``(model, info)`` (eval mode)."""
    gan = cell["model"] == "gan"
    x = training_data(cell)
    cfg = ALITrainConfig(
        model="toy",
        gan=gan,
        steps=cell["steps"],
        batch_size=cell["batch_size"],
        lr=cell["lr"],
        beta1=cell["beta1"],
        init_std=cell["init_std"],
        seed=cell["seed"],
    )
    trainer = ALITrainer(cfg, x, data=_data_identity(cell))
    info = _fit_or_load(trainer, {"model": trainer.ali}, _model_path(cell), trainer.config_dict())
    return trainer.ali.eval(), info


# -------------------------------------------------------------------------------------- evaluation
def evaluate(
    decode: Callable[[torch.Tensor], torch.Tensor],
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    cell: dict,
    *,
    mmd_permutations: int = 0,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """:func:`~physamp.models.ali.toy.evaluate_toy_model` on the cell's held-out points (prior draws
    and ε seeded by ``data_seed + 2``)."""
    return evaluate_toy_model(
        decode,
        encode,
        held_out(cell),
        seed=cell["data_seed"] + 2,
        mmd_permutations=mmd_permutations,
        mmd_seed=cell["data_seed"],
    )


def _ali_coders(ali: ALI):
    ali.eval()
    encoder = ali.encoder
    encode = None if encoder is None else (lambda x, eps: encoder(x, eps=eps))
    return ali.decoder, encode


def run_cell(cell: dict) -> dict:
    ali, info = trained_run(cell)
    decode, encode = _ali_coders(ali)
    metrics, _ = evaluate(decode, encode, cell)
    return {
        **metrics,
        "train_seconds": info["seconds"],
        "seconds_per_step": info["seconds"] / max(1, info["steps"]),
        "steps_done": info["steps"],
        "diverged_at": info["diverged_at"],
        **{f"final_{k}": v for k, v in info["final"].items()},
    }


# ------------------------------------------------------------------------------ summary statistics
def summarise(values) -> dict[str, float]:
    """``{"n", "mean", "std", "min", "max"}`` of ``values``; ``std`` is the sample std (ddof = 1),
    NaN for a single value."""
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        raise ValueError("no values to summarise")
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else float("nan"),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def summary(rows: list[dict], metric: str = "modes") -> dict[str, dict[str, float]]:
    """:func:`summarise` of ``metric`` over the runs of each model: ``{"ali": {...}, "gan": {...}}``."""
    return {
        m: summarise(r["result"][metric] for r in rows if r["cell"]["model"] == m)
        for m in MODELS
        if any(r["cell"]["model"] == m for r in rows)
    }


def best_run(rows: list[dict], model: str) -> dict:
    """The row of ``model`` with the most modes covered; ties: the lower run index."""
    mine = [r for r in rows if r["cell"]["model"] == model]
    if not mine:
        raise ValueError(f"no runs of {model!r}")
    return min(mine, key=lambda r: (-r["result"]["modes"], r["cell"]["run"]))


def _std_text(std: float, digits: int = 1) -> str:
    return "–" if math.isnan(std) else f"{std:.{digits}f}"


def _pm(s: dict, digits: int = 1) -> str:
    return f"{s['mean']:.{digits}f} ± {_std_text(s['std'], digits)} (min {s['min']:g}, max {s['max']:g})"


# ---------------------------------------------------------------------------- inference comparison
def _baseline_cfg(cell: dict, **extra) -> BaselineConfig:
    return BaselineConfig(
        steps=cell["steps"],
        batch_size=cell["batch_size"],
        lr=cell["lr"],
        beta1=cell["beta1"],
        init_std=cell["init_std"],
        seed=cell["seed"],
        **extra,
    )


def _baseline_path(out_dir: Path, kind: str, source: dict, cfg: BaselineConfig) -> Path:
    from dataclasses import asdict

    key = cell_key({"kind": kind, "source": {k: source[k] for k in TRAIN_KEYS}, "cfg": asdict(cfg)})
    return Path(out_dir) / "models" / f"{kind}-{key}.pt"


def inference_comparison(rows: list[dict], out_dir: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Train (or load) the comparison's models on the best-covering runs; returns ``(metrics, panels)``,
    each keyed by :data:`COLUMNS`. ``metrics[col]`` has the toy metrics, ``source`` (the run),
    ``seconds_per_step`` (training), ``steps``, ``diverged_at``, ``final`` (last training record)."""
    best_ali, best_gan = best_run(rows, "ali")["cell"], best_run(rows, "gan")["cell"]
    perm = best_ali["mmd_permutations"]
    ali, ali_info = trained_run(best_ali)
    gan, gan_info = trained_run(best_gan)
    x_train = training_data(best_ali)
    data = _data_identity(best_ali)

    models: dict[str, tuple] = {"ALI": (ali.decoder, _ali_coders(ali)[1], best_ali, ali_info)}

    cfg = _baseline_cfg(best_gan)
    inv = InverseMappingTrainer(gan.decoder, cfg)
    info = _fit_or_load(
        inv,
        {"encoder": inv.encoder, "decoder": inv.decoder},
        _baseline_path(out_dir, "inverse-mapping", best_gan, cfg),
        inv.config_dict(),
    )
    inv.encoder.eval()
    models["GAN + inverse mapping"] = (inv.decoder, lambda x, eps: inv.encoder(x, eps=eps), best_gan, info)

    post = PostHocTrainer(gan.decoder, x_train, cfg, data=data)
    info = _fit_or_load(
        post, {"model": post.ali}, _baseline_path(out_dir, "post-hoc", best_gan, cfg), post.config_dict()
    )
    decode, encode = _ali_coders(post.ali)
    models["GAN + post-hoc"] = (decode, encode, best_gan, info)

    vcfg = _baseline_cfg(best_ali, sigma_x=best_ali["vae_sigma_x"])
    vae = VAETrainer(x_train, vcfg, data=data)
    info = _fit_or_load(
        vae, {"model": vae.vae}, _baseline_path(out_dir, "vae", best_ali, vcfg), vae.config_dict()
    )
    vae.vae.eval()
    models["VAE"] = (vae.vae.decode, lambda x, eps: vae.vae.encode(x, eps=eps), best_ali, info)

    metrics, panels = {}, {}
    for col, (decode, encode, source, info) in models.items():
        m, pts = evaluate(decode, encode, best_ali, mmd_permutations=perm)
        metrics[col] = {
            **m,
            "source": f"{LABELS[source['model']]} run {source['run']}",
            "steps": info["steps"],
            "seconds_per_step": info["seconds"] / max(1, info["steps"]),
            "diverged_at": info["diverged_at"],
            "final": info["final"],
        }
        panels[col] = pts
    return metrics, panels


# -------------------------------------------------------------------------------------------- report
def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}g}" if abs(v) < 1e-2 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def _percent(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(x) if not isinstance(x, str) else x for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _length_note(steps: int, batch: int, n_train: int) -> str:
    epochs = steps * batch / n_train
    unit = "epoch" if epochs == 1 else "epochs"
    return (
        f"Each run trained **{steps:,} steps** of batch {batch} ({epochs:.3g} {unit} of the {n_train:,} "
        f"points), **{100 * steps / FULL_STEPS:.3g} %** of the authors' 200 epochs ({FULL_STEPS:,} steps "
        "at batch 100; the `full` preset)."
    )


def _modes_figure(out_dir: Path, rows: list[dict], preset: str) -> Path:
    """``ali-toy-modes.png``: each run's modes (filled: the thesis's count; open: reached within 3 std),
    the runs of one model side by side, the thesis's mean ± std and its min and max beside them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0))  # no pyplot: the caller's matplotlib backend is left alone
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for j, m in enumerate(MODELS):
        mine = sorted((r for r in rows if r["cell"]["model"] == m), key=lambda r: r["cell"]["run"])
        if not mine:
            continue
        jitter = np.linspace(-0.08, 0.08, len(mine)) if len(mine) > 1 else np.zeros(1)
        ax.scatter(
            j - 0.25 + jitter,
            [r["result"]["modes"] for r in mine],
            color=f"C{j}",
            s=20,
            label=f"{LABELS[m]}: modes (the thesis's count)",
        )
        ax.scatter(
            j + jitter,
            [r["result"]["modes_high_quality"] for r in mine],
            facecolors="none",
            edgecolors=f"C{j}",
            s=20,
            label=f"{LABELS[m]}: modes reached within 3 std",
        )
        t = THESIS[m]
        ax.errorbar(
            j + 0.25,
            t["mean"],
            yerr=t["std"],
            fmt="D",
            color="0.3",
            capsize=3,
            label="thesis: mean ± std, min and max" if j == 0 else None,
        )
        ax.scatter([j + 0.25] * 2, [t["min"], t["max"]], marker="_", color="0.3", s=80)
    ax.set_xticks(range(len(MODELS)), [LABELS[m] for m in MODELS])
    ax.set_xlim(-0.6, len(MODELS) - 0.4)
    ax.set_ylim(-0.5, 26)
    ax.set_ylabel("modes covered (of 25)")
    steps = rows[0]["cell"]["steps"]
    ax.set_title(
        f"modes per run, {len(rows) // len(MODELS)} runs each, {steps:,} steps [{preset}]", fontsize=9
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    path = out_dir / f"{NAME}-modes.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _observations(rows: list[dict], stats: dict, hq: dict, comp: dict[str, dict]) -> str:
    c0 = rows[0]["cell"]
    paras = [_length_note(c0["steps"], c0["batch_size"], c0["n_train"])]
    a, g = stats.get("ali"), stats.get("gan")
    assert a is not None and g is not None, "the study has ALI and GAN cells"
    pairs: dict[Any, dict[str, Any]] = {}
    for r in rows:
        pairs.setdefault(r["cell"]["run"], {})[r["cell"]["model"]] = r["result"]["modes"]
    paired = [(p["ali"], p["gan"]) for p in pairs.values() if "ali" in p and "gan" in p]
    more = sum(x > y for x, y in paired)
    fewer = sum(x < y for x, y in paired)
    text = (
        f"**Mode coverage.** ALI covered {_pm(a)} modes and the GAN {_pm(g)} over {a['n']} runs each "
        "(mean ± sample std); the thesis reports ALI 13.4 ± 5.8 (min 8, max 25) and GAN 10.4 ± 9.2 "
        f"(min 1, max 22). With the same hyperparameters and seed, ALI covered more modes than the GAN in "
        f"{more} of {len(paired)} runs, fewer in {fewer}, as many in {len(paired) - more - fewer}."
    )
    if a["mean"] > g["mean"]:
        text += " The means are in the thesis's order (ALI above the GAN)."
    elif a["mean"] < g["mean"]:
        text += " The means are in the opposite order to the thesis's (the GAN above ALI)."
    else:
        text += " The means are equal."
    if len(paired) > 1:
        d = np.array([x - y for x, y in paired], dtype=float)
        se = d.std(ddof=1) / math.sqrt(len(d))
        ratio = abs(d.mean()) / se if se > 0 else (math.inf if d.mean() != 0 else 0.0)
        text += (
            f" The paired difference (ALI − GAN) is {d.mean():+.1f} modes with a standard error of {se:.1f}"
            + (" (more than 2 standard errors)." if ratio > 2 else ", within 2 standard errors of 0.")
        )
    paras.append(text)
    ha, hg = hq["ali"]["mean"], hq["gan"]["mean"]
    text = (
        f"**What the count measures here.** On average {100 * ha:.1f} % of ALI's samples and "
        f"{100 * hg:.1f} % of the GAN's lie within 3 std of a mode's centre, against 98.9 % for samples "
        "of q(x) itself (and 1.8 % for uniform noise on [-5, 5]²). "
    )
    if max(ha, hg) < 0.5:
        text += (
            "Most samples are therefore far from every mode: the generators are still spreading their mass "
            "over the plane, and the thesis's count, which has no quality filter, credits such a generator "
            "with every mode its diffuse samples happen to fall closest to. Counting only modes reached by a "
            f"sample within 3 std gives ALI {_pm(stats['ali_hq'])} and the GAN {_pm(stats['gan_hq'])}. These "
            "short runs do not test the thesis's claim, which is about trained models; they show where "
            "training starts from."
        )
    else:
        text += (
            "Most samples lie near some mode's centre (which a generator collapsed onto one or a few modes "
            "also achieves), so the modes reached by a sample within 3 std say how many modes the models "
            f"have actually learned: ALI {_pm(stats['ali_hq'])} and the GAN {_pm(stats['gan_hq'])}."
        )
    paras.append(text)

    v = {col: comp[col] for col in COLUMNS if col in comp}
    if len(v) == len(COLUMNS):
        mse = {c: v[c].get("recon_mse", float("nan")) for c in v}
        same = {c: v[c].get("recon_same_mode", float("nan")) for c in v}
        mmd = {c: v[c].get("qz_pz_mmd", float("nan")) for c in v}
        best_rec = max(same, key=lambda c: (same[c], -mse[c]))
        best_mmd = min(mmd, key=lambda c: mmd[c])
        vae_best = best_rec == "VAE"
        text = (
            "**Inference.** Reconstructions in the original's mode: "
            + ", ".join(f"{c} {100 * same[c]:.1f} %" for c in v)
            + "; reconstruction error "
            + ", ".join(f"{c} {mse[c]:.3g}" for c in v)
            + f". {best_rec} reconstructs best"
            + (
                ' (the thesis: the VAE "excels at reconstructing").'
                if vae_best
                else ', unlike the thesis, where the VAE "excels at reconstructing".'
            )
            + " MMD² between q(z) and p(z): "
            + ", ".join(f"{c} {mmd[c]:.3g}" for c in v)
            + f"; {best_mmd} matches the prior best."
        )
        ph, im = mmd["GAN + post-hoc"], mmd["GAN + inverse mapping"]
        text += (
            " Post-hoc inference matches q(z) to p(z) "
            + ("better" if ph < im else "worse")
            + " than the inverse mapping ("
            + ("as" if ph < im else "unlike")
            + " the thesis)"
        )
        text += (
            ", and ALI's q(z) is "
            + ("closer to" if mmd["ALI"] < ph else "farther from")
            + " p(z) than post-hoc inference's ("
            + ("as" if mmd["ALI"] < ph else "unlike")
            + " the thesis's picture, where joint training organises the latent space better)."
        )
        text += (
            " These are single runs (the best-covering of each search), and at this length the decoders "
            "themselves are far from the data distribution, so the differences say how each procedure "
            "starts, not where it converges."
            if max(ha, hg) < 0.5
            else " These are single runs (the best-covering of each search): differences between columns "
            "are one draw each, not averages."
        )
        paras.append(text)
    return "\n\n".join(paras)


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest on a shared machine (as the cells)
    try:
        _report(rows, out_dir, preset)
    finally:
        torch.set_num_threads(threads)


def _report(rows: list[dict], out_dir: Path, preset: str) -> None:
    title = f"{TITLE} [{preset}]"
    c0 = rows[0]["cell"]
    stats = summary(rows, "modes")
    hq = summary(rows, "high_quality")
    stats["ali_hq"], stats["gan_hq"] = (summary(rows, "modes_high_quality")[m] for m in MODELS)
    comp, panels = inference_comparison(rows, out_dir)

    # Fig. 5.8 and the modes strip plot
    plot_toy_panels(panels, out_dir / f"{NAME}.png")
    _modes_figure(out_dir, rows, preset)
    common.write_csv(
        [
            {
                "column": col,
                **{k: v for k, v in m.items() if k != "final"},
                **{f"final_{k}": x for k, x in m["final"].items()},
            }
            for col, m in comp.items()
        ],
        out_dir / "inference.csv",
    )

    # the per-run table
    by_run: dict[int, dict] = {}
    for r in rows:
        by_run.setdefault(r["cell"]["run"], {"cell": r["cell"]})[r["cell"]["model"]] = r["result"]
    run_rows = []
    for i in sorted(by_run):
        d = by_run[i]
        a, g = d.get("ali", {}), d.get("gan", {})
        flags = [
            f"{LABELS[m]} diverged at step {d[m]['diverged_at']}"
            for m in MODELS
            if d.get(m, {}).get("diverged_at") is not None
        ]
        run_rows.append(
            [
                i,
                f"{d['cell']['lr']:.3g}",
                f"{d['cell']['beta1']:.3f}",
                f"{d['cell']['init_std']:.3g}",
                a.get("modes"),
                a.get("modes_high_quality"),
                _percent(a.get("high_quality")),
                _percent(a.get("recon_same_mode")),
                a.get("qz_pz_mmd"),
                g.get("modes"),
                g.get("modes_high_quality"),
                _percent(g.get("high_quality")),
                "; ".join(flags) or "",
            ]
        )
    run_header = [
        "run",
        "lr",
        "β₁",
        "init std",
        "ALI modes",
        "ALI modes ≤3σ",
        "ALI high-quality",
        "ALI recon same mode",
        "ALI MMD²",
        "GAN modes",
        "GAN modes ≤3σ",
        "GAN high-quality",
        "note",
    ]

    sum_rows = []
    for m in MODELS:
        s, t, sq = stats[m], THESIS[m], stats[f"{m}_hq"]
        sum_rows.append(
            [
                LABELS[m],
                s["n"],
                f"{s['mean']:.1f}",
                _std_text(s["std"]),
                f"{s['min']:g}",
                f"{s['max']:g}",
                f"{t['mean']} ± {t['std']} (min {t['min']}, max {t['max']})",
                f"{sq['mean']:.1f} ± {_std_text(sq['std'])}",
                f"{100 * hq[m]['mean']:.1f} %",
            ]
        )
    sum_header = [
        "model",
        "runs",
        "modes mean",
        "sample std",
        "min",
        "max",
        "thesis (10 runs)",
        "modes ≤3σ mean ± std",
        "high-quality samples",
    ]

    inf_rows = []
    for col in COLUMNS:
        metrics = comp[col]
        p_val = metrics.get("qz_pz_mmd_p")
        inf_rows.append(
            [
                col,
                metrics["source"],
                metrics["modes"],
                metrics["modes_high_quality"],
                _percent(metrics["high_quality"]),
                metrics.get("recon_mse"),
                _percent(metrics.get("recon_same_mode")),
                metrics.get("qz_pz_mmd"),
                "–" if p_val is None else f"{p_val:.3g}",
                f"{1000 * metrics['seconds_per_step']:.1f}",
                metrics["steps"],
            ]
        )
    perm = c0["mmd_permutations"]
    inf_header = [
        "model",
        "trained on",
        "modes",
        "modes ≤3σ",
        "high-quality",
        "recon MSE",
        "recon same mode",
        "MMD²(q(z), p(z))",
        f"p ({perm} perm.)",
        "ms / step",
        "steps",
    ]

    hp_text = (
        f"**Random search (this run):** {len(by_run)} runs per model (seed {c0['search']['hp_seed']}); "
        f"lr log-uniform in {_range_text(rows, 'lr')}, β₁ uniform in {_range_text(rows, 'beta1')}, "
        f"init std log-uniform in {_range_text(rows, 'init_std')} (the drawn values are in the table; "
        "run i of ALI and of the GAN share them and their seed i)."
    )
    data_text = (
        f"**Data:** the 25-Gaussian grid mixture ({{-4, -2, 0, 2, 4}}², std {STD}, equal weights): "
        f"{c0['n_train']:,} training points (seed {c0['data_seed']}) and {c0['n_eval']:,} held-out points "
        f"(seed {c0['data_seed'] + 1}); every model's samples are {c0['n_eval']:,} decodings of prior draws."
    )
    best = {m: best_run(rows, m)["cell"]["run"] for m in MODELS}
    length = _length_note(c0["steps"], c0["batch_size"], c0["n_train"])
    text = "\n\n".join(
        [
            f"# {title}",
            PROTOCOL.strip(),
            data_text,
            "**Preset:** " + length,
            hp_text,
            "## Mode coverage per run\n\n"
            f"Modes: the thesis's count ({c0['n_eval']:,} samples, each assigned to its most responsible "
            "component). "
            "Modes ≤3σ: modes reached by a sample within 3 std of the centre; high-quality: the fraction of "
            "such samples. Recon same mode and MMD²: on the held-out points (ALI only; a GAN has no "
            "encoder).\n\n" + _table(run_header, run_rows),
            "## Summary beside the thesis\n\n"
            + _table(sum_header, sum_rows)
            + "\n\nStd: the sample standard deviation over the runs (ddof = 1); the thesis does not say "
            "which std its ± is.",
            "## Inference on the best-covering runs (Fig. 5.8)\n\n"
            "Best-covering runs (most modes, ties to the lower index): "
            f"ALI run {best['ali']}, GAN run {best['gan']}. The two GAN columns use the GAN's samples; "
            "the VAE's samples are decoder means. Recon: ‖x − G_x(z)‖², z ~ q(z | x), averaged over the "
            "held-out points. MMD²: unbiased, Gaussian kernel, median-heuristic bandwidth (may be slightly "
            "negative when q(z) and p(z) agree); p: permutation p-value. ms / step: training time per step "
            "(one thread; on a shared machine).\n\n"
            + _table(inf_header, inf_rows)
            + f"\n\n![Fig. 5.8]({NAME}.png)\n\n![modes per run]({NAME}-modes.png)",
            "## Observations\n\n" + _observations(rows, stats, hq, comp),
        ]
    )
    (out_dir / f"{NAME}.md").write_text(text.rstrip() + "\n")


def _range_text(rows: list[dict], key: str) -> str:
    vals = [r["cell"][key] for r in rows]
    lo, hi = rows[0]["cell"]["search"][f"{key}_range"]
    return f"[{lo:g}, {hi:g}] (drawn: {min(vals):.3g} to {max(vals):.3g})"
