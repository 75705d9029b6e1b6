"""Beyond the thesis -- the chimera study (Fig. 3.9) repeated on Pegasus and Zephyr RBMs.

Protocol
--------
- Question: the thesis's sparse 784 x 784 Chimera RBM (4,592 connections, pixel
  blocks) is far behind a dense RBM. How much of that gap do today's hardware
  graphs -- Pegasus (D-Wave Advantage) and Zephyr (Advantage2) -- close?
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once
  (seed 0). NLLs are higher than the thesis's full-MNIST values: compare orderings
  and ratios, not absolute values.
- Models: 784 visible x 784 hidden binary RBMs with topology
  ``chimera:pixel_blocks`` (the thesis's C_14 RBM, 4,592 connections),
  ``pegasus`` (8,832 connections), ``zephyr`` (11,657) and dense (614,656).
  Pegasus / Zephyr (see :mod:`physamp.topology.modern_pixels`): the bipartite
  RBM (vertical qubits visible, horizontal hidden, ~80 % of couplers kept) of
  the smallest sub-lattice with >= 784 + 784 units (``pegasus_rbm(9)``,
  ``zephyr_rbm(7)``); the 784 visible and 784 hidden qubits whose layout centres
  lie closest to the lattice centre; pixels laid out by sorting the visible
  qubits' layout centres into 28 bands of 28 (y, then x), refined by pairwise
  swaps that shorten the hop distance between neighbouring pixels' qubits
  (mean 2.06 hops on Pegasus, 2.66 on Zephyr, 2.0 for Chimera pixel blocks;
  a shuffled mapping gives about 12). Masked weights stay exactly zero.
- Training: PCD-15 (``gibbs``; sparse products are used automatically for the
  three hardware masks, which keep < 10 % of the connections), 100 persistent
  chains, batch 100, SGD lr 0.05 -> 0.005 (linear), momentum 0.5, weight decay 1e-4.
- Seeds: ``seeds`` (initialisation, chains and batch order follow the seed; the
  hardware topologies are fixed).
- Quantity: test NLL by AIS (base rate from the training data), mean +- std over
  seeds, against the number of connections (log axis), and the share of the
  chimera-to-dense gap a topology closes:
  ``gap closed = (NLL_chimera - NLL_topo) / (NLL_chimera - NLL_dense)``.

Thesis (full MNIST, Fig. 3.9): the 784 x 784 chimera RBM reaches 138.2 test NLL
with pixel blocks and 160.9 with extended pixel blocks.

Presets: ``quick`` (1 epoch, 1 seed, AIS 1,000 x 20; 4 cells, measured 37 s
on 2 cores with one worker: 6-9 s of training and 1-2.5 s of AIS per cell) and
``full`` (20 epochs, 5 seeds, S&M AIS 14,500 x 100; 20 cells; extrapolated from
the quick run, about 4-5 minutes per cell on one core -- 2-3 min of training,
1.5-3 min of AIS -- so about 1.5 hours with one worker, 45 minutes with two).
"""

from __future__ import annotations

from pathlib import Path

from physamp.experiments import common

NAME = "modern-topologies"
TITLE = "Modern topologies: chimera vs Pegasus vs Zephyr vs dense 784x784 RBMs"
PROTOCOL = common.protocol_section(__doc__)
THESIS = {"chimera": "138.2 (pixel blocks); 160.9 (extended)"}
DENSE_CONNECTIONS = 784 * 784
NOTES = """
Gap closed = (NLL_chimera - NLL_topo) / (NLL_chimera - NLL_dense): 0 % is the thesis's chimera RBM,
100 % a dense 784x784 RBM. Compare the ordering and the gap-closed ratios with the thesis, not absolute
values. The quick preset (1 epoch, short AIS) only shows trends; the full preset follows the thesis's
training length.
"""

# label -> RBMTrainConfig.topology spec
TOPOLOGIES = {
    "chimera": "chimera:pixel_blocks",
    "pegasus": "pegasus",
    "zephyr": "zephyr",
    "dense": None,
}
ORDER = list(TOPOLOGIES)

PRESETS = common.presets(
    quick=dict(topologies=ORDER, epochs=1, ais_betas=1000, max_train=None, max_test=None),
    full=dict(topologies=ORDER, epochs=20, max_train=None, max_test=None),
)


def cells(p: dict) -> list[dict]:
    return common.topology_cells(NAME, p, TOPOLOGIES)


def run_cell(cell: dict) -> dict:
    import time

    t0 = time.perf_counter()
    rbm, result = common.train_and_evaluate(cell)
    return {**result, "cell_seconds": time.perf_counter() - t0, "connections": rbm.num_connections()}


def gap_closed(nll_chimera: float | None, nll_topo: float, nll_dense: float | None) -> float | None:
    """``(NLL_chimera - NLL_topo) / (NLL_chimera - NLL_dense)`` in %, or None without both ends."""
    if nll_chimera is None or nll_dense is None or nll_chimera == nll_dense:
        return None
    return 100.0 * (nll_chimera - nll_topo) / (nll_chimera - nll_dense)


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    agg = {k: (m, s, n) for k, m, s, n in common.aggregate(rows, lambda c: c["topology"])}
    conns = {r["cell"]["topology"]: int(r["result"]["connections"]) for r in rows}
    names = [t for t in ORDER if t in agg]
    chim = agg.get("chimera", (None,))[0]
    dense = agg.get("dense", (None,))[0]

    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    out.errorbar_plot(
        [(t, *agg[t]) for t in names],
        x=lambda t: conns[t],
        annotate=True,
        xscale="log",
        xlabel="visible-hidden connections (log)",
        title_size=8,
    )
    table_rows = []
    for t in names:
        m, s, n = agg[t]
        g = gap_closed(chim, m, dense)
        share = f"{100 * conns[t] / DENSE_CONNECTIONS:.2f} %"
        gap = "" if g is None else f"{g:.1f} %"
        table_rows.append([t, f"{conns[t]:,}", share, m, common.spread(s, n), n, gap, THESIS.get(t, "")])
    header = ["topology", "connections", "of dense", "test NLL", "std", "seeds", "gap closed"]
    out.write(header + ["thesis (full MNIST)"], table_rows, NOTES)
