"""Fig. 3.7a -- noise in the negative phase during training combined with a magnitude limit.

Protocol
--------
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once (seed 0).
- Model: dense 784 x ``n_hidden`` binary RBM.
- Training: PCD-15, 100 persistent chains, batch 100, SGD lr 0.05 → 0.005 (linear),
  momentum 0.5, weight decay 1e-4. Two device constraints at once, both on the
  RBM parameters (thesis §3.4, ``space="rbm"``):

  * **noise σ**: the negative phase runs on the ``simulated`` device around
    ``gibbs`` with Gaussian noise of σ on the weights (drawn once for each new
    requested weight value) and σ on the biases (redrawn for every sample);
  * **magnitude limit t**: weights and biases clipped to ``[-t, t]`` after every
    update (``t = none``: no limit).

- Our reading of the thesis grid: the noise is a *training* condition (the model
  is learned "on" a noisy, range-limited device) and the model is *evaluated*
  as the clipped, noise-free parameters it requested: test NLL by AIS of those
  parameters (base rate from the training data). Evaluating a noisy device
  itself would need an average over noise draws, which Fig. 3.7a does not show;
  ``noise-at-sampling`` covers noise at evaluation time.
- Seeds: ``seeds`` (initialisation, chains, noise and batch order follow the seed).
- Quantity plotted: heat map of the test NLL (mean over seeds) over the grid
  noise σ (rows) x limit t (columns).

Thesis (full MNIST, 784 x 500, Fig. 3.7a): the thesis text used here gives no
numbers for this grid (the paper's text could not be found in the reference
search); its conclusions for the separate constraints -- limits ``t ≥ 1`` cost
little (Fig. 3.4b), training noise degrades the NLL as σ grows -- are the
comparison, and the table gives NLL increases relative to the unconstrained cell.

Presets: ``quick`` (784 x 50, 3 epochs, σ ∈ {0, 0.1, 0.3} x t ∈ {0.5, 1, none},
1 seed, AIS 2,000 x 20: about 8 s per cell on one core, 9 cells, under 2 minutes
with one worker) and ``full`` (784 x 500, 20 epochs, σ ∈ {0, 0.05, 0.1, 0.2, 0.3}
x t ∈ {0.25, 0.5, 1, 2, none}, 5 seeds, S&M AIS 14,500 x 100: about 3.5 minutes
per cell on one core, 125 cells ≈ 7.3 core-hours, ≈ 3.7 hours with 2 workers).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from physamp.experiments import common

NAME = "noise-and-limit"
TITLE = "Training noise x magnitude limit (thesis Fig. 3.7a)"
PROTOCOL = common.protocol_section(__doc__)
NOTES = """
The thesis column is qualitative: the thesis text available here gives no numbers for the Fig. 3.7a
grid, so compare the pattern (which constraint dominates, whether the effects add) and the relative
increases, not absolute values. The heat map is noise-and-limit.png.
"""

PRESETS = common.presets(
    quick=dict(n_hidden=50, epochs=3, noise=[0.0, 0.1, 0.3], limits=[0.5, 1.0, None], max_train=None),
    full=dict(
        n_hidden=500,
        epochs=20,
        noise=[0.0, 0.05, 0.1, 0.2, 0.3],
        limits=[0.25, 0.5, 1.0, 2.0, None],
        max_train=None,
    ),
)


def thesis_note(sigma: float, t: float | None) -> str:
    if sigma == 0 and t is None:
        return "reference (no constraint)"
    parts = []
    if t is not None:
        parts.append("limit: little effect" if t >= 1.0 else "limit: degrades")
    if sigma > 0:
        parts.append("noise: degrades with σ")
    return "; ".join(parts)


def cells(p: dict) -> list[dict]:
    out = []
    for seed, sigma, t in common.seed_grid(p, "noise", "limits"):
        sigma = float(sigma)
        train = common.pcd15(p, seed, max_weight=t, max_bias=t, weight_noise=sigma, bias_noise=sigma)
        out.append(common.make_cell(NAME, p, seed, train, noise=sigma, limit=t))
    return out


def run_cell(cell: dict) -> dict:
    rbm, result = common.train_and_evaluate(cell)
    return {**result, "max_abs_w": float(rbm.W.detach().abs().max())}


def _limit_key(t):
    return math.inf if t is None else t


def _label(t: float) -> str:
    return "none" if t == math.inf else f"{t:g}"


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    agg = common.aggregate(rows, lambda c: (c["noise"], _limit_key(c["limit"])))
    sigmas = sorted({k[0] for k, *_ in agg})
    limits = sorted({k[1] for k, *_ in agg})
    grid = np.full((len(sigmas), len(limits)), np.nan)
    for (s, t), m, _, _ in agg:
        grid[sigmas.index(s), limits.index(t)] = m
    base = next((m for k, m, _, _ in agg if k == (0.0, math.inf)), None)

    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    fig, ax = out.figure(1.3 * len(limits) + 2.0, 0.8 * len(sigmas) + 1.8)
    im = ax.imshow(grid, cmap="viridis_r", aspect="auto", origin="lower")
    finite = grid[np.isfinite(grid)]
    mid = float(finite.mean()) if finite.size else 0.0
    for i in range(len(sigmas)):
        for j in range(len(limits)):
            if np.isfinite(grid[i, j]):
                color = "white" if grid[i, j] > mid else "black"
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(limits)), [_label(t) for t in limits])
    ax.set_yticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
    ax.set_xlabel("magnitude limit t")
    ax.set_ylabel("training noise σ (weights and biases)")
    fig.colorbar(im, ax=ax, label="test NLL (nats)")
    out.save(fig, ax)

    table_rows = []
    for (s, t), m, sd, n in agg:
        note = thesis_note(s, None if t == math.inf else t)
        table_rows.append(
            [f"{s:g}", _label(t), m, common.spread(sd, n), n, common.relative_change(m, base), note]
        )
    header = ["noise σ", "limit t", "test NLL", "std", "seeds", "vs unconstrained", "thesis"]
    out.write(header, table_rows, NOTES)
