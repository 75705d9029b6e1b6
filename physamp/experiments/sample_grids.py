"""Figs. 3.3, 3.5, 3.6, 3.8 -- grids of samples after a long Gibbs run for each device constraint.

Protocol
--------
- Data and training: as the NLL experiments (``mnist-default``: the offline split
  where its files are found, else the bundled slice; the report's **Data** line names
  the data the cells used; PCD-15, 100 persistent chains, batch 100, SGD lr 0.05 → 0.005
  linear, momentum 0.5, weight decay 1e-4), 784 x ``n_hidden`` binary RBMs.
- Settings (one grid each):

  * **Fig. 3.3, noise at sampling**: the regular (unconstrained) model sampled on
    the ``simulated`` device with weight noise σ (drawn once: the couplers keep
    their error for the whole run) or bias noise σ (one draw per chain), for
    each σ in ``sampling_noise``; plus the noise-free reference grid;
  * **Fig. 3.5, trained with noise**: models trained with σ on weights and biases
    in the negative phase (``train_noise``), sampled on the same noisy device
    they were trained on;
  * **Fig. 3.6, magnitude limits**: models trained with ``max_weight = max_bias = t``
    (``limits``), sampled noise-free (the clipped parameters are the model);
  * **Fig. 3.8, removed connections**: ``removed`` topologies: ``random:F``
    (784 x ``n_hidden``, a fraction F removed) and ``chimera`` (the 784 x 784
    chimera RBM with pixel blocks, 4,592 connections).

- Sampling: 100 independent chains from Bernoulli(½) visibles, ``steps`` block
  Gibbs steps (sparse products for the chimera mask); the grid shows, for the
  hidden state ``h`` of each chain after the last step, the visible means
  ``E[v | h] = σ(b + Wᵀh)`` of the *requested* (noise-free, clipped where
  trained so) parameters, 10 x 10 images in [0, 1].
- Seeds: ``seeds`` (training, chains and device noise follow the seed).
- No NLL: each cell returns the path of its PNG (in the model cache,
  ``$PHYSAMP_MODEL_CACHE/sample-grids``) and its sampling time; the report copies
  the grids to ``OUT/grids/`` and writes a montage ``sample-grids.png`` and the
  index ``sample-grids.md``.

Thesis (full MNIST, 784 x 500, 100,000 Gibbs steps): the figures are grids of
samples, not numbers; compare visually (digit-like samples for mild constraints,
noise and small limits wash them out; the chimera RBM's samples lose
long-range structure).

Presets: ``quick`` (784 x 100 (chimera 784 x 784), 3 epochs, 1,000 Gibbs steps,
σ ∈ {0.1, 0.3}, t ∈ {0.5, 1}, removed ∈ {random:0.9, chimera}, 1 seed: 11 grids
from 7 trained models, about 10 s of training per model and 1-3 s of sampling
per grid on one core, a few minutes in all) and ``full`` (784 x 500 (chimera
784 x 784), 20 epochs, 100,000 Gibbs steps, the same settings plus
random:0.99, 1 seed: about 2.5 minutes of training per model (7 models). The
quick run measured 0.5-0.9 s per 1,000 steps for a 784 x 100 grid (1.9 s on the
noisy device) and 0.4 s for the chimera grid; x100 steps and x4-5 for 784 x 500
gives about 4-8 minutes per dense grid and under a minute per chimera grid on one
core: 12 grids ≈ 1.5 core-hours, ≈ 45 minutes with 2 workers).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from physamp.experiments import common

NAME = "sample-grids"
TITLE = "Sample grids after a long Gibbs run (thesis Figs. 3.3, 3.5, 3.6, 3.8)"
PROTOCOL = common.protocol_section(__doc__)
GRID = 10  # 10 x 10 images per grid
RESULT_KEYS = ("png", "npy")  # what every cell's result holds (no NLL here)
NOTES = """
No NLL here: the thesis figures are sample grids, compared by eye. The models trained on the data
named above and the quick preset trains for a few epochs and runs {steps:,} Gibbs
steps instead of the thesis's 100,000, so the quick grids are blurrier than the thesis's. The montage of
every grid is sample-grids.png.
"""

QUICK = dict(
    n_hidden=100,
    epochs=3,
    steps=1000,
    sampling_noise=[0.1, 0.3],
    train_noise=[0.1, 0.3],
    limits=[0.5, 1.0],
    removed=["random:0.9", "chimera"],
    seeds=[0],
    max_train=None,
)
PRESETS = {
    "quick": QUICK,
    "full": dict(
        QUICK, n_hidden=500, epochs=20, steps=100_000, removed=["random:0.9", "random:0.99", "chimera"]
    ),
}


def cells(p: dict) -> list[dict]:
    out = []

    def add(figure: str, setting: str, train: dict, wn: float = 0.0, bn: float = 0.0, seed: int = 0):
        out.append(
            {
                "experiment": NAME,
                "figure": figure,
                "setting": setting,
                "seed": seed,
                "data": "mnist-default",
                "max_train": p.get("max_train"),
                "train": train,
                "sampling": {"steps": p["steps"], "weight_noise": float(wn), "bias_noise": float(bn)},
            }
        )

    for seed in p["seeds"]:
        regular = common.pcd15(p, seed)
        add("3.3", "regular, no noise", regular, seed=seed)
        for s in p["sampling_noise"]:
            add("3.3", f"regular, weight noise {s:g} at sampling", regular, wn=s, seed=seed)
            add("3.3", f"regular, bias noise {s:g} at sampling", regular, bn=s, seed=seed)
        for s in p["train_noise"]:
            add(
                "3.5",
                f"trained with noise {s:g}",
                common.pcd15(p, seed, weight_noise=s, bias_noise=s),
                s,
                s,
                seed,
            )
        for t in p["limits"]:
            add("3.6", f"magnitude limit {t:g}", common.pcd15(p, seed, max_weight=t, max_bias=t), seed=seed)
        for topo in p["removed"]:
            if topo.startswith("chimera"):
                train = common.pcd15(p, seed, n_hidden=784, topology=topo)
                add("3.8", f"{topo} 784x784", train, seed=seed)
            elif topo.startswith("random:"):
                frac = float(topo.split(":")[1])
                add("3.8", f"{100 * frac:g} % removed", common.pcd15(p, seed, topology=topo), seed=seed)
            else:
                raise ValueError(f"removed topologies are 'random:F' or 'chimera[...]', got {topo!r}")
    return out


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch == "." else "-" for ch in text.lower())
    return "-".join(filter(None, keep.split("-")))


def run_cell(cell: dict) -> dict:
    from physamp.experiments.sweep import cell_key
    from physamp.plotting import save_image_grid
    from physamp.samplers import make_sampler

    rbm, train_s = common.trained_rbm(cell["train"], cell["data"], max_train=cell.get("max_train"))
    smp = cell["sampling"]
    seed = 1000 + cell["seed"]
    if smp["weight_noise"] > 0 or smp["bias_noise"] > 0:
        sampler = make_sampler(
            "simulated",
            steps=smp["steps"],
            weight_noise=smp["weight_noise"],
            bias_noise=smp["bias_noise"],
            seed=seed,
        )
    else:
        sampler = make_sampler("gibbs", steps=smp["steps"], seed=seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        s = sampler.sample(rbm, GRID * GRID)
        means = rbm.p_v_given_h(s.h.to(rbm.W.dtype))
    seconds = time.perf_counter() - t0
    arr = means.detach().cpu().numpy().astype(np.float32)
    root = common.model_cache_dir() / NAME
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(cell['setting'])}-{cell_key(cell)[:12]}"
    np.save(root / f"{stem}.npy", arr)
    title = f"Fig. {cell['figure']}: {cell['setting']} ({smp['steps']:,} Gibbs steps)"
    png = save_image_grid(arr, root / f"{stem}.png", nrow=GRID, title=title)
    return {
        "png": str(png),
        "npy": str(root / f"{stem}.npy"),
        "sample_seconds": seconds,
        "train_seconds": train_s,
        "images": int(arr.shape[0]),
        "mean_min": float(arr.min()),
        "mean_max": float(arr.max()),
        "connections": rbm.num_connections(),
    }


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    from physamp.plotting import image_grid

    out_dir = Path(out_dir)
    grid_dir = out_dir / "grids"
    grid_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, r in enumerate(rows):
        cell, res = r["cell"], r["result"]
        if not (Path(res["png"]).exists() and Path(res["npy"]).exists()):
            res = run_cell(cell)  # the model cache was cleared since: regenerate the grid
        name = f"{i:02d}-fig{cell['figure']}-{_slug(cell['setting'])}-seed{cell['seed']}.png"
        shutil.copyfile(res["png"], grid_dir / name)
        entries.append((cell, res, name, np.load(res["npy"])))

    n = len(entries)
    ncol = min(4, n)
    nrow = -(-n // ncol)
    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    fig, axes = out.figure(3.0 * ncol, 3.3 * nrow, nrows=nrow, ncols=ncol, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (cell, _, _, arr) in zip(axes.flat, entries, strict=False):
        ax.imshow(image_grid(arr, (28, 28), GRID), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"Fig. {cell['figure']}: {cell['setting']}", fontsize=7)
    steps = entries[0][0]["sampling"]["steps"] if entries else 0
    fig.suptitle(f"{TITLE} [{preset}], E[v|h] after {steps:,} Gibbs steps", fontsize=9)
    out.save(fig, dpi=110)

    table_rows = []
    for cell, res, name, _ in entries:
        smp = cell["sampling"]
        sampled = "noise-free"
        if smp["weight_noise"] or smp["bias_noise"]:
            sampled = f"σ_W = {smp['weight_noise']:g}, σ_b = {smp['bias_noise']:g}"
        table_rows.append(
            [
                f"Fig. {cell['figure']}",
                cell["setting"],
                f"784x{cell['train']['n_hidden']}",
                f"{res['connections']:,}",
                sampled,
                f"{smp['steps']:,}",
                f"{res['sample_seconds']:.1f}",
                f"[{name}](grids/{name})",
            ]
        )
    header = ["thesis", "setting", "model", "connections", "sampled with", "Gibbs steps", "sampling s"]
    out.write(header + ["grid"], table_rows, NOTES.format(steps=steps))
