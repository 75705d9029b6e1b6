"""Fig. 3.4b -- parameters clipped to a magnitude limit after every update.

Protocol
--------
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once (seed 0).
- Model: dense 784 x ``n_hidden`` binary RBM.
- Training: PCD-15 (``gibbs``), 100 persistent chains, batch 100, SGD lr 0.05 → 0.005
  (linear), momentum 0.5, weight decay 1e-4. After *every* update the weights and
  both bias vectors are clipped to ``[-t, t]`` (``max_weight = max_bias = t``),
  the range a device can program; ``t = none`` is the unconstrained reference.
  The limit acts on the RBM parameters directly (thesis §3.4), not on the Ising
  ``J, h``. The visible biases start at the base rate and are clipped by the
  first update like every other parameter.
- Seeds: ``seeds`` (initialisation, chains and batch order follow the seed).
- Quantity plotted: test NLL by AIS (base rate from the training data) of the
  clipped model vs the threshold ``t``, mean ± std over seeds; the
  unconstrained model is the dashed line.

Thesis (full MNIST, 784 x 500, Fig. 3.4b): thresholds ``t ≥ 1.0`` have little
effect on the NLL; smaller thresholds degrade it quickly. The thesis text used
here gives no per-threshold numbers (the paper's text could not be found in the
reference search), so the table quotes only this qualitative statement.

Presets: ``quick`` (784 x 100, 3 epochs, t ∈ {0.1, 0.25, 0.5, 1, 2, none},
1 seed, AIS 2,000 x 20: about 12 s per cell on one core, 6 cells, under 2 minutes
with one worker) and ``full`` (784 x 500, 20 epochs, the same 6 thresholds,
5 seeds, S&M AIS 14,500 x 100: about 7 s per epoch + 45 s of AIS ≈ 3.2 minutes
per cell on one core, 30 cells ≈ 95 core-minutes, ≈ 50 minutes with 2 workers).
"""

from __future__ import annotations

import math
from pathlib import Path

from physamp.experiments import common

NAME = "magnitude-limit"
TITLE = "Magnitude limit on the parameters (thesis Fig. 3.4b)"
PROTOCOL = common.protocol_section(__doc__)
THESIS = {
    "small": "degrades quickly (t < 1.0)",
    "large": "little effect (t ≥ 1.0)",
    None: "reference (no limit)",
}
THRESHOLDS = [0.1, 0.25, 0.5, 1.0, 2.0, None]
NOTES = """
The thesis column is qualitative: the thesis text available here gives no per-threshold numbers for
Fig. 3.4b. Compare the shape (flat for t ≥ 1, a steep rise below) and the relative increase, not
absolute values. 'max abs W' is the largest trained weight magnitude (≤ t by construction); where it
stays well below t the limit was never active.
"""

PRESETS = common.presets(
    quick=dict(n_hidden=100, epochs=3, thresholds=THRESHOLDS, max_train=None),
    full=dict(n_hidden=500, epochs=20, thresholds=THRESHOLDS, max_train=None),
)


def thesis_note(t: float | None) -> str:
    if t is None:
        return THESIS[None]
    return THESIS["large"] if t >= 1.0 else THESIS["small"]


def cells(p: dict) -> list[dict]:
    return [
        common.make_cell(NAME, p, seed, common.pcd15(p, seed, max_weight=t, max_bias=t), threshold=t)
        for seed, t in common.seed_grid(p, "thresholds")
    ]


def run_cell(cell: dict) -> dict:
    rbm, result = common.train_and_evaluate(cell)
    return {
        **result,
        "max_abs_w": float(rbm.W.detach().abs().max()),
        "max_abs_bias": float(max(rbm.b.detach().abs().max(), rbm.c.detach().abs().max())),
    }


def _label(t: float | None) -> str:
    return "none" if t is None else f"{t:g}"


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    key = lambda c: math.inf if c["threshold"] is None else c["threshold"]  # noqa: E731
    agg = common.aggregate(rows, key)
    base = next((m for t, m, _, _ in agg if t == math.inf), None)
    max_w: dict[float, float] = {}
    for r in rows:
        k = key(r["cell"])
        max_w[k] = max(max_w.get(k, 0.0), r["result"]["max_abs_w"])

    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    out.errorbar_plot(
        [row for row in agg if row[0] != math.inf],
        xlabel="magnitude limit t (|W|, |b|, |c| ≤ t)",
        xscale="log",
        reference=None if base is None else (base, "no limit"),
    )
    table_rows = []
    for t, m, s, n in agg:
        tt = None if t == math.inf else t
        rel = common.relative_change(m, base)
        table_rows.append([_label(tt), m, common.spread(s, n), n, rel, f"{max_w[t]:.3g}", thesis_note(tt)])
    header = ["limit t", "test NLL", "std", "seeds", "vs no limit", "max abs W", "thesis"]
    out.write(header, table_rows, NOTES)
