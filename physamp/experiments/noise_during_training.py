"""Fig. 3.4a -- RBMs trained with noise in the negative phase, evaluated without noise.

Protocol
--------
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once (seed 0).
- Models: 784 x ``n_hidden`` binary RBMs, PCD-15, 100 persistent chains, batch
  100, SGD lr 0.05 → 0.005 (linear), momentum 0.5, weight decay 1e-4. The negative
  phase runs on the simulated device with Gaussian noise of std σ on the weights
  and on the biases (``RBMTrainConfig(weight_noise=σ, bias_noise=σ)``, RBM space:
  weight noise drawn once per parameter update, bias noise redrawn for every
  sample); the positive phase is exact (mean field). σ = 0 is the regular model
  (the same cached model as ``noise-at-sampling``).
- Quantity plotted: the test NLL of the learned (noiseless) parameters by AIS
  (base rate from the training data), i.e. evaluated WITHOUT noise, vs σ, mean ±
  std over seeds.

Thesis (full MNIST, 784 x 500, Fig. 3.4a): the NLL of the learned model grows
with the noise present during training. No per-point values are used: the
paper's text was not found by search, so we compare the ordering only.

Presets: ``quick`` (784 x 100, 2 epochs, σ ∈ {0, 0.1, 0.2}, 1 seed, AIS 2,000 x
20; well under a minute on one core) and ``full`` (784 x 500, 20 epochs, σ ∈ {0,
0.05, 0.1, 0.2, 0.3, 0.5}, 5 seeds, S&M AIS 14,500 x 100; 30 cells). Measured on
one loaded core: a PCD-15 epoch of 784 x 500 takes about 9.5 s with or without
noise (about 3 min per model) and one AIS run about 1-1.5 min, so about 4.5 min
per cell: about 2-2.5 hours on one core, about 20 min on 8 workers.
"""

from __future__ import annotations

from pathlib import Path

from physamp.experiments import common
from physamp.experiments.noise_at_sampling import train_config

NAME = "noise-during-training"
TITLE = "Noise during training, evaluated without noise (thesis Fig. 3.4a)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (full")
THESIS = "NLL grows with the training noise σ"

PRESETS = common.presets(
    quick=dict(n_hidden=100, epochs=2, sigmas=[0.0, 0.1, 0.2]),
    full=dict(n_hidden=500, epochs=20, sigmas=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5]),
)


def cells(p: dict) -> list[dict]:
    return [
        common.make_cell(NAME, p, seed, train_config(p, seed, s), sigma_train=float(s))
        for seed, s in common.seed_grid(p, "sigmas")
    ]


def run_cell(cell: dict) -> dict:
    rbm, result = common.train_and_evaluate(cell)
    return {**result, "weight_abs_max": float(rbm.W.detach().abs().max())}


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    agg = common.aggregate(rows, lambda c: c["sigma_train"])
    base = next((m for s, m, _, _ in agg if s == 0.0), None)
    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    out.errorbar_plot(
        agg,
        xlabel="noise σ during training (negative phase)",
        ylabel="test NLL without noise (nats)",
        title_size=8,
    )
    table_rows = []
    for s, m, sd, n in agg:
        thesis = THESIS if s > 0 else "σ = 0: the regular model"
        table_rows.append(
            [f"{s:g}", m, common.spread(sd, n), n, common.relative_change(m, base, nats=True), thesis]
        )
    header = ["σ_train", "test NLL (no noise)", "std (seeds)", "seeds", "vs σ = 0", "thesis (Fig. 3.4a)"]
    means = [m for _, m, _, _ in agg]
    monotone = all(b >= a for a, b in zip(means, means[1:], strict=False))
    notes = (
        f"Ordering: the NLL {'does' if monotone else 'does not'} grow monotonically with σ_train here. "
        "The thesis gives no per-point values for Fig. 3.4a in the text available to us (the "
        "paper's text was not found by search); compare the ordering and the relative increase."
    )
    out.write(header, table_rows, notes)
