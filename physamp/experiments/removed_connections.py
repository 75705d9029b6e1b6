"""Fig. 3.7b -- a random fraction of the connections removed (forced to zero).

Protocol
--------
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once (seed 0).
- Model: 784 x ``n_hidden`` binary RBM; a seeded random mask removes a fraction
  of the connections (``topology="random:F"``); masked weights stay exactly zero.
- Training: PCD-15 (``gibbs``), 100 persistent chains, batch 100, SGD lr 0.05 → 0.005
  (linear), momentum 0.5, weight decay 1e-4.
- Seeds: ``seeds`` (mask, initialisation, chains and batch order all follow the seed).
- Quantity plotted: test NLL by AIS (base rate from the training data) vs the
  fraction of connections removed, mean ± std over seeds.

Thesis (full MNIST, 784 x 500): removing 50 % of the connections costs about
+4.3 % NLL; removing 99 % gives 200.3 ± 0.2.

Presets: ``quick`` (784 x 100, 2 epochs, 3 fractions, 1 seed, AIS 2,000 x 20;
a few minutes on 2 cores) and ``full`` (784 x 500, 20 epochs, 7 fractions,
5 seeds, S&M AIS 14,500 x 100; about 3 minutes per cell on one core, 35 cells).
"""

from __future__ import annotations

from pathlib import Path

from physamp.experiments import common

NAME = "removed-connections"
TITLE = "Removed connections (thesis Fig. 3.7b)"
PROTOCOL = common.protocol_section(__doc__)
# the thesis's numbers, one kind per column: an absolute NLL, and a change relative to the dense model
THESIS_NLL = {0.99: "200.3 ± 0.2"}
THESIS_VS_DENSE = {0.5: "+4.3 %"}
NOTES = """
Compare the ordering and the relative increase ('vs dense') with the thesis's, not absolute values.
"""

PRESETS = common.presets(
    quick=dict(n_hidden=100, epochs=2, fractions=[0.0, 0.5, 0.99]),
    full=dict(n_hidden=500, epochs=20, fractions=[0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]),
)


def _topology(fraction: float) -> str | None:
    return None if fraction == 0 else f"random:{fraction}"


def cells(p: dict) -> list[dict]:
    return [
        common.make_cell(NAME, p, seed, common.pcd15(p, seed, topology=_topology(f)), fraction_removed=f)
        for seed, f in common.seed_grid(p, "fractions")
    ]


def run_cell(cell: dict) -> dict:
    rbm, result = common.train_and_evaluate(cell)
    return {**result, "connections": rbm.num_connections()}


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    agg = common.aggregate(rows, lambda c: c["fraction_removed"])
    base = next((m for f, m, _, _ in agg if f == 0.0), None)
    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    out.errorbar_plot(agg, x=lambda f: 100 * f, xlabel="connections removed (%)")
    table_rows = [
        [
            f"{100 * f:g} %",
            m,
            common.spread(s, n),
            n,
            common.relative_change(m, base),
            THESIS_NLL.get(f, ""),
            THESIS_VS_DENSE.get(f, ""),
        ]
        for f, m, s, n in agg
    ]
    header = ["removed", "test NLL", "std", "seeds", "vs dense", "thesis NLL", "thesis vs dense"]
    out.write(header, table_rows, NOTES)
