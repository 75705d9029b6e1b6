"""Fig. 3.2a -- a regularly trained RBM sampled with Gaussian noise on its weights or its biases.

Protocol
--------
- Data: MNIST, ``mnist-default`` (the offline split where its files are found, else
  the bundled slice; the report's **Data** line names the data the cells used),
  training images re-binarised at every presentation, test images binarised once (seed 0).
- Model: 784 x ``n_hidden`` binary RBM trained without noise: PCD-15 (``gibbs``),
  100 persistent chains, batch 100, SGD lr 0.05 → 0.005 (linear), momentum 0.5,
  weight decay 1e-4. One model per seed, shared by every (noise kind, σ) cell
  through the model cache.
- Noise at sampling time (thesis §3.3-3.4, applied to the RBM parameters, not to
  the Ising form): Gaussian noise of std σ on the weights only (``weights``) or on
  both bias vectors only (``biases``). Each noise draw is one fixed noisy model.
- Quantity plotted: the *expected* test NLL over the noise, E_ε[NLL(θ + ε)],
  estimated by Monte Carlo over ``draws`` noise draws
  (:func:`physamp.ais.expected_nll_under_noise`, log Z of every draw by AIS with
  the base rate of the training data, all draws in one batched AIS run), vs σ,
  mean ± std over seeds. σ = 0 is one draw (the model itself).
- Note: the thesis's device redraws bias noise for every sample; the sampled
  distribution is then a mixture over bias draws. Like the thesis (§3.4) we
  report the expected NLL of the noisy models, which upper-bounds the NLL of that
  mixture (Jensen).

Thesis (full MNIST, 784 x 500, Fig. 3.2a): the expected NLL grows with σ, and
noise on the weights is far more harmful than the same σ on the biases. No
per-point values are given in the text we have; we compare orderings only.

Presets: ``quick`` (784 x 100, 2 epochs, σ ∈ {0, 0.05, 0.1}, 1 seed, 4 draws,
AIS 1,000 x 20; about 1 min on one core) and ``full`` (784 x 500, 20 epochs,
σ ∈ {0, 0.02, 0.05, 0.1, 0.15, 0.2}, 5 seeds, 10 draws, S&M AIS 14,500 x 100;
60 cells). Measured on one loaded core: a PCD-15 epoch of 784 x 500 takes about
9.5 s (about 3 min per model, 5 models), and AIS of 10 batched draws takes about
100 s per 1,450 βs, so a noisy cell takes about 15-17 min (a σ = 0 cell about
1.5 min): about 14 hours on one core in all, about 2 hours on 8 workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from physamp.experiments import common

NAME = "noise-at-sampling"
TITLE = "Noise at sampling time, on the weights or on the biases (thesis Fig. 3.2a)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (full")
THESIS = {
    "weights": "NLL grows fast with σ (the harmful kind)",
    "biases": "NLL grows much more slowly than with weight noise",
}
KINDS = ("weights", "biases")

PRESETS = common.presets(
    quick=dict(n_hidden=100, epochs=2, sigmas=[0.0, 0.05, 0.1], draws=4, ais_betas=1000),
    full=dict(n_hidden=500, epochs=20, sigmas=[0.0, 0.02, 0.05, 0.1, 0.15, 0.2], draws=10),
)


def train_config(p: dict, seed: int, sigma_train: float = 0.0) -> dict:
    """The :class:`RBMTrainConfig` fields of the chapter's PCD-15 models (shared by the noise experiments)."""
    sigma = float(sigma_train)
    noise: dict[str, Any] = dict(weight_noise=sigma, bias_noise=sigma) if sigma > 0 else {}
    return common.pcd15(p, seed, **noise)


def expected_nll(
    rbm, data_name: str, weight_noise: float, bias_noise: float, draws: int, ais: dict, seed: int
) -> dict:
    """Expected test NLL over ``draws`` noisy copies of ``rbm`` (AIS log Z per draw); one draw at zero noise.

    Returns ``nll`` (mean over draws), ``nll_lower``/``nll_upper`` (the mean of the
    per-draw AIS ±3σ bounds), ``nll_draw_std`` (spread over draws) and ``draws``.
    """
    from physamp.models.rbm.ais import expected_nll_under_noise  # physamp.ais is this module

    data = common.dataset(data_name)
    draws = 1 if weight_noise == 0 and bias_noise == 0 else int(draws)
    r = expected_nll_under_noise(
        rbm,
        data.test,
        weight_noise=float(weight_noise),
        bias_noise=float(bias_noise),
        num_draws=draws,
        seed=seed,
        log_z_method="ais",
        ais_kwargs=dict(num_runs=ais["runs"], betas=common.ais_betas(ais["betas"]), data=data.train),
    )
    nll = r.nll_per_draw.numpy()
    assert r.ais is not None  # log_z_method="ais" keeps the AIS results
    lo = np.array([a.log_z_lower - a.log_z for a in r.ais])
    hi = np.array([a.log_z_upper - a.log_z for a in r.ais])
    return {
        "nll": float(r.mean),
        "nll_lower": float(np.mean(nll + lo)),
        "nll_upper": float(np.mean(nll + hi)),
        "nll_draw_std": float(r.std),
        "log_z": float(r.log_z_per_draw.mean()),
        "draws": draws,
    }


def noise_plot(
    out: common.Report, agg: list, label, xlabel: str, *, markers: str = "os", groups=None
) -> None:
    """``NAME.png``: expected test NLL against the sampling noise σ, one line per series, from
    :func:`~physamp.experiments.common.aggregate` rows keyed ``(series, σ)`` (shared with
    ``trained-with-noise``)."""
    out.errorbar_plot(
        agg,
        x=lambda key: key[1],
        group=lambda key: key[0],
        groups=groups,
        label=label,
        markers=markers,
        xlabel=xlabel,
        ylabel="expected test NLL (nats)",
        title_size=8,
    )


def cells(p: dict) -> list[dict]:
    return [
        {
            **common.make_cell(NAME, p, seed, train_config(p, seed), noise_kind=kind, sigma=float(s)),
            "draws": p["draws"],
        }
        for seed, kind, s in common.seed_grid(p, KINDS, "sigmas")
    ]


def run_cell(cell: dict) -> dict:
    rbm, train_s = common.trained_rbm(cell["train"], cell["data"])
    s = cell["sigma"]
    wn, bn = (s, 0.0) if cell["noise_kind"] == "weights" else (0.0, s)
    result = expected_nll(rbm, cell["data"], wn, bn, cell["draws"], cell["ais"], seed=cell["seed"])
    return {**result, "train_seconds": train_s}


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    agg = common.aggregate(rows, lambda c: (c["noise_kind"], c["sigma"]))
    base = {k: m for (k, s), m, _, _ in agg if s == 0.0}
    out = common.Report(out_dir, NAME, f"{TITLE} [{preset}]", PROTOCOL, rows)
    noise_plot(out, agg, lambda kind: f"noise on the {kind}", "noise σ at sampling time", groups=list(KINDS))
    table_rows = []
    for (kind, s), m, sd, n in agg:
        thesis = THESIS[kind] if s > 0 else "σ = 0: the noiseless model"
        table_rows.append(
            [
                kind,
                f"{s:g}",
                m,
                common.spread(sd, n),
                n,
                common.relative_change(m, base.get(kind), nats=True),
                thesis,
            ]
        )
    header = ["noise on", "σ", "expected test NLL", "std (seeds)", "seeds", "vs σ = 0", "thesis (Fig. 3.2a)"]
    ratio = []
    for (kind, s), m, *_ in agg:
        if kind == "weights" and s > 0 and ("biases", s) in {k for k, *_ in agg}:
            mb = next(mm for kk, mm, *_ in agg if kk == ("biases", s))
            dw, db = m - base.get("weights", m), mb - base.get("biases", mb)
            ratio.append(f"σ = {s:g}: weights +{dw:.2f} vs biases +{db:.2f} nats")
    notes = (
        "Expected NLL = Monte Carlo mean over noise draws of each noisy model's AIS test NLL; "
        "std is over seeds. The thesis states no per-point values for Fig. 3.2a in the text "
        "available to us (the paper's text was not found by search), so we compare the ordering: "
        "the expected NLL should grow with σ, and faster for noise on the weights than on the biases.\n\n"
        + ("Increase over σ = 0, weights vs biases: " + "; ".join(ratio) + "." if ratio else "")
    )
    out.write(header, table_rows, notes)
