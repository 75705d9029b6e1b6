"""How well does maximum pseudo-likelihood recover a known β? Bias, spread and interval coverage.

The ``dwave`` backend reports the device's effective inverse temperature β_eff, and
:func:`physamp.samplers.temperature.calibrate` steers the prefactor by it, so the
estimator must be right where the answer is known: samples drawn *exactly* at β.

Protocol
--------
- Models (``models``), parameters drawn once from ``model_seed``:
  ``rbm-NVxNH-wS``: a binary RBM, ``W``, ``b``, ``c`` ~ N(0, S²), written as its Ising BQM
  (Eq. 3.1, :func:`physamp.ising.rbm_to_bqm`); exact samples at β from the ``exact``
  backend (enumeration of the smaller layer, then the other layer's conditional).
  ``ising-N-wS``: a frustrated Ising model on N spins, ``h_i`` ~ N(0, S²), couplers on a
  random graph (each pair with probability 0.4) ~ N(0, S²); exact samples at β by
  enumerating its 2^N states.
- For every β of ``betas`` and read count of ``reads``: ``repeats`` independent sample
  sets (seeds derived from ``seed``, the cell and the repeat), each fitted by physamp's
  :func:`~physamp.samplers.dimod_io.fit_beta` (the estimate, its sandwich standard error
  over reads, the 95 % interval β̂ ± 1.96·std, and the naive inverse-Hessian std that
  treats every spin as independent) and by Ocean's
  ``dwave.system.temperatures.maximum_pseudolikelihood_temperature`` (β = 1/T). On the
  first ``bootstrap_repeats`` sample sets also a bootstrap over reads (``bootstrap``
  resamplings) by ``fit_beta`` and by Ocean's own ``num_bootstrap_samples``.
- Quantities: mean estimate, bias (mean − β, and relative), spread (std of the estimates
  over the repeats), mean sandwich std and its ratio to the spread, coverage of the 95 %
  intervals (sandwich and naive), bootstrap stds, and the largest relative difference
  between physamp's and Ocean's estimates. Sample sets without a finite estimate (every
  read a local minimum, likely at few reads and large β) are counted, not averaged.

Presets: ``tiny`` (2 models, β ∈ {0.3, 1, 3}, 200 reads, 12 repeats: a few seconds, for
the tests), ``quick`` (3 models, β ∈ {0.3, 1, 3}, 100 and 1,000 reads, 40 repeats: well
under a minute on one core) and ``full`` (5 models, β ∈ {0.3, 0.5, 1, 2, 3}, 100 to
10,000 reads, 200 repeats: about 30 core-minutes, most of it in the 10,000-read cells).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from physamp.experiments import common
from physamp.seeding import derive_seed

NAME = "beta-estimation"
TITLE = "β_eff estimator on exact samples: bias, spread, coverage"
PROTOCOL = common.protocol_section(__doc__)
RESULT_KEYS = ("beta_mean", "spread", "sandwich_std", "coverage", "ocean_max_rel_diff")
CONFIDENCE = 0.95

PRESETS = {
    "tiny": dict(
        models=["rbm-6x4-w1", "ising-8-w1"],
        betas=[0.3, 1.0, 3.0],
        reads=[200],
        repeats=12,
        bootstrap=50,
        bootstrap_repeats=2,
        seed=0,
        model_seed=0,
    ),
    "quick": dict(
        models=["rbm-6x4-w1", "rbm-10x8-w0.5", "ising-10-w1"],
        betas=[0.3, 1.0, 3.0],
        reads=[100, 1000],
        repeats=40,
        bootstrap=100,
        bootstrap_repeats=3,
        seed=0,
        model_seed=0,
    ),
    "full": dict(
        models=["rbm-6x4-w1", "rbm-10x8-w0.5", "rbm-12x10-w2", "ising-10-w1", "ising-14-w2"],
        betas=[0.3, 0.5, 1.0, 2.0, 3.0],
        reads=[100, 1000, 10000],
        repeats=200,
        bootstrap=200,
        bootstrap_repeats=10,
        seed=0,
        model_seed=0,
    ),
}

_MODEL = re.compile(r"^(rbm)-(\d+)x(\d+)-w([0-9.]+)$|^(ising)-(\d+)-w([0-9.]+)$")


def parse_model(spec: str) -> dict:
    """``"rbm-6x4-w1"`` -> ``{"kind": "rbm", "n_visible": 6, "n_hidden": 4, "scale": 1.0}``;
    ``"ising-10-w0.5"`` -> ``{"kind": "ising", "n": 10, "scale": 0.5}``."""
    m = _MODEL.match(str(spec))
    if m is None:
        raise ValueError(
            f"unknown model {spec!r}: write rbm-NVxNH-wSCALE (e.g. rbm-6x4-w1) or ising-N-wSCALE"
        )
    if m.group(1):
        nv, nh, scale = int(m.group(2)), int(m.group(3)), float(m.group(4))
        if min(nv, nh) > 16:
            raise ValueError(
                f"model {spec!r}: exact sampling enumerates the smaller layer; keep it <= 16 units"
            )
        return {"kind": "rbm", "n_visible": nv, "n_hidden": nh, "scale": scale}
    n, scale = int(m.group(6)), float(m.group(7))
    if n > 18:
        raise ValueError(f"model {spec!r}: exact sampling enumerates 2^N states; keep N <= 18")
    return {"kind": "ising", "n": n, "scale": scale}


def cells(p: dict) -> list[dict]:
    for spec in p["models"]:
        parse_model(spec)  # every bad name before any work
    return [
        {
            "experiment": NAME,
            "model": spec,
            "beta": float(beta),
            "reads": int(n),
            "repeats": int(p["repeats"]),
            "bootstrap": int(p["bootstrap"]),
            "bootstrap_repeats": int(p["bootstrap_repeats"]),
            "seed": int(p["seed"]),
            "model_seed": int(p["model_seed"]),
        }
        for spec in p["models"]
        for beta in p["betas"]
        for n in p["reads"]
    ]


# --- models and their exact samples -------------------------------------------------------
def make_model(spec: str, model_seed: int = 0):
    """``(bqm, draw)`` of model ``spec``: its SPIN BQM and ``draw(beta, n, seed) -> (n, N)`` ±1 spins
    drawn exactly from ``exp(-beta * bqm.energy)``, columns in ``bqm.variables`` order."""
    import dimod

    cfg = parse_model(spec)
    seed = derive_seed(model_seed, "beta-estimation-model", spec)
    if cfg["kind"] == "rbm":
        from physamp.ising import rbm_to_bqm
        from physamp.models.rbm import RBM
        from physamp.samplers.exact import ExactSampler

        g = torch.Generator().manual_seed(seed)
        nv, nh, s = cfg["n_visible"], cfg["n_hidden"], cfg["scale"]
        rbm = RBM(nv, nh, init_std=s, dtype=torch.float64, generator=g)
        with torch.no_grad():
            rbm.b.copy_(s * torch.randn(nv, generator=g, dtype=torch.float64))
            rbm.c.copy_(s * torch.randn(nh, generator=g, dtype=torch.float64))
        bqm = rbm_to_bqm(rbm)  # visible 0..nv-1 then hidden: bqm.energy(2x - 1) = E(v, h)

        def draw(beta: float, n: int, seed: int) -> np.ndarray:
            out = ExactSampler(seed=seed).sample(rbm, n, beta=beta)
            return 2.0 * torch.cat([out.v, out.h], 1).numpy() - 1.0

        return bqm, draw
    rng = np.random.default_rng(seed)
    n, s = cfg["n"], cfg["scale"]
    h = {i: s * rng.normal() for i in range(n)}
    J = {(i, j): s * rng.normal() for i in range(n) for j in range(i + 1, n) if rng.random() < 0.4}
    bqm = dimod.BQM.from_ising(h, J)
    states = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # every state, ±1
    energy = bqm.energies((states, list(bqm.variables)))  # columns: bqm.variables order

    def draw(beta: float, n_reads: int, seed: int) -> np.ndarray:
        logp = -beta * energy
        p = np.exp(logp - logp.max())
        idx = np.random.default_rng(seed).choice(p.size, size=n_reads, p=p / p.sum())
        return states[idx]

    return bqm, draw


def _ocean(bqm, spins: np.ndarray, labels: list, bootstrap: int = 0, seed: int = 0):
    """``(beta, bootstrap betas)`` from Ocean's maximum_pseudolikelihood_temperature (β = 1/T)."""
    from dwave.system.temperatures import maximum_pseudolikelihood_temperature

    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore")
        try:
            T, T_bs = maximum_pseudolikelihood_temperature(
                bqm, (spins, labels), num_bootstrap_samples=bootstrap, seed=seed
            )
        except Exception:  # Ocean's own failure modes (e.g. division by zero): no estimate
            return math.nan, np.empty(0)
    beta = math.inf if T == 0 else 1.0 / float(T)
    return beta, np.asarray([math.inf if t == 0 else 1.0 / t for t in np.atleast_1d(T_bs)], dtype=float)


def _spread(values: np.ndarray) -> float:
    """The std of bootstrap estimates: inf when one of them is infinite, nan with fewer than two."""
    if values.size < 2:
        return math.nan
    return math.inf if np.isinf(values).any() else float(np.std(values, ddof=1))


def run_cell(cell: dict) -> dict:
    """Fit ``repeats`` exact sample sets of the cell's model at its β; aggregate the estimates."""
    from physamp.samplers.dimod_io import fit_beta, flip_energies

    torch.set_num_threads(1)
    beta, n = cell["beta"], cell["reads"]
    bqm, draw = make_model(cell["model"], cell["model_seed"])
    labels = list(bqm.variables)
    est, std, naive, cover, cover_naive, ocean, boot, ocean_boot = [], [], [], [], [], [], [], []
    undefined = 0
    max_rel = 0.0
    for r in range(cell["repeats"]):
        seed = derive_seed(cell["seed"], "beta-estimation", cell["model"], beta, n, r)
        spins = draw(beta, n, seed % (2**31))
        nb = cell["bootstrap"] if r < cell["bootstrap_repeats"] else 0
        fit = fit_beta(flip_energies(bqm, spins, labels), num_bootstrap=nb, seed=seed)
        b_ocean, b_ocean_bs = _ocean(bqm, spins, labels, nb, seed % (2**31))
        if fit.beta is None or fit.std is None:
            undefined += 1
            continue
        est.append(fit.beta)
        std.append(fit.std)
        naive.append(fit.naive_std)
        z = (fit.ci[1] - fit.beta) / fit.std  # the normal quantile of the interval
        cover.append(fit.ci[0] <= beta <= fit.ci[1])
        cover_naive.append(abs(fit.beta - beta) <= z * fit.naive_std)
        ocean.append(b_ocean)
        if math.isfinite(b_ocean):
            max_rel = max(max_rel, abs(b_ocean - fit.beta) / abs(fit.beta))
        else:
            max_rel = math.inf
        if nb:
            boot.append(fit.bootstrap_std)
            ocean_boot.append(_spread(b_ocean_bs))
    est_a = np.asarray(est)
    k = est_a.size

    def mean(xs):
        return float(np.mean(xs)) if len(xs) else math.nan

    spread = float(est_a.std(ddof=1)) if k > 1 else math.nan
    ocean_a = np.asarray(ocean)
    return {
        "estimates": k,
        "undefined": undefined,
        "beta_mean": mean(est),
        "bias": mean(est) - beta,
        "rel_bias": (mean(est) - beta) / beta,
        "bias_se": spread / math.sqrt(k) if k > 1 else math.nan,
        "spread": spread,
        "sandwich_std": mean(std),
        "naive_std": mean(naive),
        "std_ratio": mean(std) / spread if k > 1 and spread > 0 else math.nan,
        "coverage": mean(cover),
        "naive_coverage": mean(cover_naive),
        "bootstrap_std": mean(boot),
        "ocean_bootstrap_std": mean(ocean_boot),
        "ocean_beta_mean": float(ocean_a.mean()) if k else math.nan,
        "ocean_spread": float(ocean_a.std(ddof=1)) if k > 1 else math.nan,
        "ocean_max_rel_diff": max_rel,
    }


# --- report --------------------------------------------------------------------------------
NOTES = """
Reading the table: 'bias' is the mean estimate minus β (relative in parentheses) with its own standard
error (spread / sqrt(repeats)) after '±'; 'spread' is the std of the estimates over the repeats, the
estimator's real sampling error; 'sandwich' is the mean standard error fit_beta reports (per-read
sandwich) and 'ratio' sandwich / spread (1 is right); 'coverage' is the fraction of 95 % intervals
β̂ ± 1.96 std that hold the true β, for the sandwich std and for the naive inverse-Hessian std that
treats every spin as an independent observation. 'bootstrap' is fit_beta's bootstrap over reads,
'Ocean bootstrap' the spread of Ocean's own num_bootstrap_samples estimates (both on the first few
repeats only). 'Ocean Δ' is the largest relative difference between physamp's and Ocean's estimates
over the repeats. 'undefined' counts sample sets without a finite estimate (every read a local minimum).
"""


def _fmt(x) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "inf"
        return f"{x:.3g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.4f}".rstrip("0").rstrip(".")
    return str(x)


def summary_lines(rows: list[dict]) -> list[str]:
    """The findings, computed from the cells: the worst bias against its noise, the std ratio
    range, the coverage range, and the agreement with Ocean."""
    res = [r["result"] for r in rows if r["result"]["estimates"] > 1]
    if not res:
        return ["No cell gave two finite estimates."]
    z = [abs(r["bias"]) / r["bias_se"] for r in res if r["bias_se"] > 0]
    rel = [abs(r["rel_bias"]) for r in res]
    ratio = [r["std_ratio"] for r in res if math.isfinite(r["std_ratio"])]
    cov = [r["coverage"] for r in res]
    ncov = [r["naive_coverage"] for r in res]
    agree = max(r["ocean_max_rel_diff"] for r in res)
    lines = [
        f"Across {len(res)} cells: the largest |relative bias| is {max(rel):.3%}, and the largest |bias| is "
        f"{max(z):.2f} of its own standard error (spread/sqrt(repeats)).",
        f"The sandwich std is {min(ratio):.2f} to {max(ratio):.2f} times the empirical spread; the 95 % "
        f"intervals cover the true β in {min(cov):.0%} to {max(cov):.0%} of the repeats per cell (naive std: "
        f"{min(ncov):.0%} to {max(ncov):.0%}).",
        f"physamp's estimate and Ocean's maximum_pseudolikelihood_temperature agree to {agree:.1e} "
        "(relative) on every sample set, so their bias and spread are the same.",
    ]
    by_reads: dict[int, list[float]] = {}
    for row in rows:
        x, c = row["result"], row["cell"]
        o, b = x["ocean_bootstrap_std"], x["bootstrap_std"]
        if x["estimates"] > 1 and math.isfinite(o) and math.isfinite(b) and b > 0:
            by_reads.setdefault(c["reads"], []).append(o / b)
    if by_reads:
        boot = rows[0]["cell"]["bootstrap"]
        parts = [
            f"{np.median(v):.2f} at {n} reads (sqrt({n}/{boot}) = {math.sqrt(n / boot):.2f})"
            for n, v in sorted(by_reads.items())
        ]
        lines.append(
            "Ocean's own bootstrap (num_bootstrap_samples = "
            f"{boot}) gives a spread of, relative to fit_beta's bootstrap over reads (median over cells): "
            + "; ".join(parts)
            + ". In dwave-system 1.36 each of its replicates resamples num_bootstrap_samples reads instead "
            "of as many as the sample set holds, so its spread is that of sample sets of "
            "num_bootstrap_samples reads: too wide by sqrt(reads / num_bootstrap_samples)."
        )
    return lines


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    out_dir = Path(out_dir)
    rows = sorted(rows, key=lambda r: (r["cell"]["model"], r["cell"]["beta"], r["cell"]["reads"]))
    header = [
        "model", "β", "reads", "repeats", "mean β̂", "bias (rel.)", "spread", "sandwich", "ratio",
        "coverage", "naive cov.", "bootstrap", "Ocean bootstrap", "Ocean Δ", "undefined",
    ]  # fmt: skip
    table = []
    for r in rows:
        c, x = r["cell"], r["result"]
        bias = f"{_fmt(x['bias'])} ± {_fmt(x['bias_se'])} ({100 * x['rel_bias']:+.1f} %)"
        if not math.isfinite(x["rel_bias"]):
            bias = "–"
        table.append(
            [
                c["model"], _fmt(c["beta"]), c["reads"], x["estimates"], _fmt(x["beta_mean"]), bias,
                _fmt(x["spread"]), _fmt(x["sandwich_std"]), _fmt(x["std_ratio"]), _fmt(x["coverage"]),
                _fmt(x["naive_coverage"]), _fmt(x["bootstrap_std"]), _fmt(x["ocean_bootstrap_std"]),
                _fmt(x["ocean_max_rel_diff"]), x["undefined"],
            ]
        )  # fmt: skip
    _plot(rows, out_dir, preset)
    findings = "\n".join(f"- {line}" for line in summary_lines(rows))
    notes = " ".join(NOTES.split())
    text = (
        f"# {TITLE} [{preset}]\n\n{PROTOCOL.strip()}\n\n"
        "**Data:** synthetic: exact samples of the models above (no dataset).\n\n"
        f"{common.markdown_table(header, table, fmt=str)}\n\n**Findings**\n\n{findings}\n\n{notes}\n"
    )
    (out_dir / f"{NAME}.md").write_text(text)


def _plot(rows: list[dict], out_dir: Path, preset: str) -> None:
    fig, ax = common.new_figure(5.5, 3.6)
    keys = sorted({(r["cell"]["model"], r["cell"]["reads"]) for r in rows})
    for i, (model, reads) in enumerate(keys):
        pts = sorted(
            (r["cell"]["beta"], r["result"])
            for r in rows
            if (r["cell"]["model"], r["cell"]["reads"]) == (model, reads)
        )
        b = np.array([p[0] for p in pts])
        rel = np.array([p[1]["rel_bias"] for p in pts])
        err = np.array([p[1]["spread"] / p[0] for p in pts])
        sw = np.array([p[1]["sandwich_std"] / p[0] for p in pts])
        shift = 1.0 + 0.03 * (i - (len(keys) - 1) / 2)
        line = ax.errorbar(b * shift, rel, yerr=err, marker="o", capsize=3, label=f"{model}, {reads} reads")
        ax.plot(b * shift, sw, linestyle=":", color=line[0].get_color())
    ax.axhline(0.0, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    betas = sorted({r["cell"]["beta"] for r in rows})
    ax.set_xticks(betas, [f"{b:g}" for b in betas], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_xlabel("true β")
    ax.set_ylabel("relative bias ± spread (dotted: sandwich std)")
    ax.legend(fontsize=6)
    ax.set_title(f"{TITLE} [{preset}]", fontsize=8)
    common.save_figure(fig, out_dir, NAME)
