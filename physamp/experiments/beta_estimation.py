"""How well does maximum pseudo-likelihood recover a known β? Bias, spread and interval coverage.

The ``dwave`` backend reports the device's effective inverse temperature β_eff, and
:func:`physamp.samplers.temperature.calibrate` steers the prefactor by it, so the
estimator must be right where the answer is known: samples drawn *exactly* at β.
It assumes a classical Boltzmann distribution; a quantum annealer's reads follow the
transverse-field one (the freeze-out model, :mod:`physamp.samplers.simulated_qpu`), so the
Γ axis measures what it returns on those: its bias against Γ.

Protocol
--------
- Models (``models``), parameters drawn once from ``model_seed``:
  ``rbm-NVxNH-wS``: a binary RBM, ``W``, ``b``, ``c`` ~ N(0, S²), written as its Ising BQM
  (Eq. 3.1, :func:`physamp.ising.rbm_to_bqm`); exact samples at β from the ``exact``
  backend (enumeration of the smaller layer, then the other layer's conditional).
  ``ising-N-wS``: a frustrated Ising model on N spins, ``h_i`` ~ N(0, S²), couplers on a
  random graph (each pair with probability 0.4) ~ N(0, S²); exact samples at β by
  enumerating its 2^N states.
  ``chimera-C-wS``: an Ising model on the Chimera graph C(C, C, 4) (8·C² spins, the
  simulated QPU's labels), ``h_i`` ~ N(0, S²) clipped to [-2, 2] and ``J_ij`` ~ N(0, S²)
  clipped to [-1, 1] (the QPU's ``h_range`` and ``j_range``, programmed as given).
- The transverse field Γ (``gammas``): at Γ = 0 the samples are the classical ones above; at
  Γ > 0 they are exact draws from ``p_Γ(s) = ⟨s|e^{−βH}|s⟩ / Tr e^{−βH}``,
  ``H = E(σᶻ) − Γ Σ σˣ`` over all spins (DESIGN.md), by diagonalisation
  (:func:`physamp.samplers.quantum_exact.transverse_field_log_probs`), so only models of at
  most 12 spins get Γ > 0 cells (the others run at Γ = 0 only). ``qpu_models`` (Chimera
  models of any size) are also sampled by the simulated QPU itself at (β, Γ): its classical
  engine at Γ = 0, its path-integral engine with ``trotter`` slices at Γ > 0, ``num_sweeps``
  sweeps, no noise, for every β of ``qpu_betas`` and read count of ``qpu_reads``, with
  ``qpu_repeats`` repeats. Where the model is small enough, ``beta_limit`` is the estimator's
  infinite-read limit: the pseudo-likelihood root with the exact ``p_Γ`` as the weights.
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
  Against Γ: β̂/β (the mean estimate over β) with its spread over the repeats, and its
  infinite-read limit where it is computable.

Presets: ``tiny`` (2 models, β ∈ {0.3, 1, 3}, 200 reads, 12 repeats, Γ = 0 only: a few
seconds, for the tests), ``quick`` (3 models, β ∈ {0.3, 1, 3}, 100 and 1,000 reads, 40
repeats, Γ ∈ {0, 0.25, 0.5, 1, 2} on the two models of at most 12 spins, and the simulated
QPU on chimera-1-w1 at β = 1, 1,000 reads, 20 repeats: 71 cells, 7 minutes on one worker of
a shared 2-core machine) and ``full`` (5 models, β ∈ {0.3, 0.5, 1, 2, 3}, 100 to 10,000
reads, 200 repeats, the same Γ, and the simulated QPU on chimera-1-w1 and chimera-2-w0.5
with 40 repeats: about 1.5 core-hours, estimated from the quick preset's cells, not run).
The Γ = 0 cells of ``models`` are the classical study's, with its seeds: the Γ axis adds
cells and changes none.
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
GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0]  # the transverse fields of the quick and full presets
MAX_QPU_READS = 10_000  # the simulated QPU's num_reads_range maximum

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
        gammas=[0.0],
        qpu_models=[],
        qpu_betas=[1.0],
        qpu_reads=[1000],
        qpu_repeats=4,
        trotter=16,
        num_sweeps=100,
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
        gammas=GAMMAS,
        qpu_models=["chimera-1-w1"],
        qpu_betas=[1.0],
        qpu_reads=[1000],
        qpu_repeats=20,
        trotter=16,
        num_sweeps=100,
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
        gammas=GAMMAS,
        qpu_models=["chimera-1-w1", "chimera-2-w0.5"],
        qpu_betas=[1.0],
        qpu_reads=[1000],
        qpu_repeats=40,
        trotter=16,
        num_sweeps=200,
    ),
}

_MODEL = re.compile(r"^(rbm)-(\d+)x(\d+)-w([0-9.]+)$|^(ising)-(\d+)-w([0-9.]+)$")
_CHIMERA = re.compile(r"^chimera-([1-9]\d*)-w([0-9.]+)$")


def parse_model(spec: str, *, exact: bool = True) -> dict:
    """``"rbm-6x4-w1"`` -> ``{"kind": "rbm", "n_visible": 6, "n_hidden": 4, "scale": 1.0}``;
    ``"ising-10-w0.5"`` -> ``{"kind": "ising", "n": 10, "scale": 0.5}``; ``"chimera-1-w1"`` ->
    ``{"kind": "chimera", "cells": 1, "n": 8, "scale": 1.0}``; each with ``"spins"``, its number
    of spins. ``exact=False``: a model the simulated QPU samples (no enumeration limit)."""
    c = _CHIMERA.match(str(spec))
    if c is not None:
        cells_, scale = int(c.group(1)), float(c.group(2))
        n = 8 * cells_ * cells_
        if exact and n > 18:
            raise ValueError(
                f"model {spec!r}: exact sampling enumerates 2^{n} states; keep it to chimera-1 in models, "
                "or sample it with the simulated QPU (qpu_models)"
            )
        return {"kind": "chimera", "cells": cells_, "n": n, "scale": scale, "spins": n}
    m = _MODEL.match(str(spec))
    if m is None:
        raise ValueError(
            f"unknown model {spec!r}: write rbm-NVxNH-wSCALE (e.g. rbm-6x4-w1), ising-N-wSCALE or "
            "chimera-C-wSCALE"
        )
    if not exact:
        raise ValueError(
            f"qpu model {spec!r}: the simulated QPU samples models on its graph; write chimera-C-wSCALE "
            "(e.g. chimera-1-w1)"
        )
    if m.group(1):
        nv, nh, scale = int(m.group(2)), int(m.group(3)), float(m.group(4))
        if min(nv, nh) > 16:
            raise ValueError(
                f"model {spec!r}: exact sampling enumerates the smaller layer; keep it <= 16 units"
            )
        return {"kind": "rbm", "n_visible": nv, "n_hidden": nh, "scale": scale, "spins": nv + nh}
    n, scale = int(m.group(6)), float(m.group(7))
    if n > 18:
        raise ValueError(f"model {spec!r}: exact sampling enumerates 2^N states; keep N <= 18")
    return {"kind": "ising", "n": n, "scale": scale, "spins": n}


def cells(p: dict) -> list[dict]:
    """Exact cells (``models`` × ``betas`` × ``reads`` × ``gammas``; Γ > 0 only for models of at most
    :data:`~physamp.samplers.quantum_exact.MAX_SPINS` spins), then simulated-QPU cells
    (``qpu_models`` × ``qpu_betas`` × ``qpu_reads`` × ``gammas``)."""
    from physamp.samplers.quantum_exact import MAX_SPINS, check_gamma

    exact = [(spec, parse_model(spec)) for spec in p["models"]]  # every bad name before any work
    qpu = [(spec, parse_model(spec, exact=False)) for spec in p.get("qpu_models", [])]
    gammas = [check_gamma(g, "every value of gammas") for g in p.get("gammas", [0.0])]
    if qpu and max(int(n) for n in p["qpu_reads"]) > MAX_QPU_READS:
        raise ValueError(f"qpu_reads must be at most {MAX_QPU_READS} (the simulated QPU's num_reads_range)")
    common_keys = {
        "experiment": NAME,
        "bootstrap": int(p["bootstrap"]),
        "bootstrap_repeats": int(p["bootstrap_repeats"]),
        "seed": int(p["seed"]),
        "model_seed": int(p["model_seed"]),
    }
    out = [
        {
            **common_keys,
            "model": spec,
            "beta": float(beta),
            "reads": int(n),
            "repeats": int(p["repeats"]),
            "gamma": gamma,
            "source": "exact",
            "trotter": None,
            "num_sweeps": None,
        }
        for spec, cfg in exact
        for beta in p["betas"]
        for n in p["reads"]
        for gamma in gammas
        if gamma == 0 or cfg["spins"] <= MAX_SPINS
    ]
    out += [
        {
            **common_keys,
            "model": spec,
            "beta": float(beta),
            "reads": int(n),
            "repeats": int(p["qpu_repeats"]),
            "gamma": gamma,
            "source": "simulated-qpu",
            "trotter": int(p["trotter"]) if gamma > 0 else None,
            "num_sweeps": int(p["num_sweeps"]),
        }
        for spec, _ in qpu
        for beta in p["qpu_betas"]
        for n in p["qpu_reads"]
        for gamma in gammas
    ]
    return out


# --- models and their exact samples -------------------------------------------------------
def make_model(spec: str, model_seed: int = 0, *, exact: bool = True):
    """``(bqm, draw)`` of model ``spec``: its SPIN BQM and ``draw(beta, n, seed, gamma=0.0) -> (n, N)``
    ±1 spins drawn exactly from ``exp(-beta * bqm.energy)`` (Γ = 0) or from the transverse-field
    ``p_Γ`` (Γ > 0, by diagonalisation: at most 12 spins), columns in ``bqm.variables`` order.
    ``exact=False``: a Chimera model of any size for the simulated QPU, and ``draw`` is None."""
    bqm, classical = _classical_model(spec, model_seed, exact)
    if classical is None:
        return bqm, None
    tables: dict[tuple[float, float], np.ndarray] = {}

    def draw(beta: float, n: int, seed: int, gamma: float = 0.0) -> np.ndarray:
        if gamma == 0:
            return classical(beta, n, seed)
        if (beta, gamma) not in tables:  # one diagonalisation per (β, Γ), reused by every repeat
            tables[beta, gamma] = quantum_probs(bqm, beta, gamma)[1]
        states = quantum_states(len(bqm.variables))
        p = tables[beta, gamma]
        return states[np.random.default_rng(seed).choice(p.size, size=n, p=p)]

    return bqm, draw


def quantum_states(n: int) -> np.ndarray:
    """All ``2ⁿ`` ±1 states ``(2ⁿ, n)`` in quantum_exact's order: bit ``i`` of the row is spin ``i``
    (+1 for a bit of 1)."""
    return 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) - 1.0


def quantum_probs(bqm, beta: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(states, p_Γ)`` of ``bqm`` (columns in ``bqm.variables`` order): the diagonal of
    ``e^{−βH} / Tr e^{−βH}``, ``H = E(σᶻ) − Γ Σ σˣ``, by dense diagonalisation (at most 12 spins)."""
    from physamp.samplers.quantum_exact import transverse_field_log_probs

    states = quantum_states(len(bqm.variables))
    energy = bqm.energies((states, list(bqm.variables)))
    log_p, _ = transverse_field_log_probs(torch.as_tensor(energy), gamma, beta)
    p = np.exp(log_p.numpy())
    return states, p / p.sum()


def _classical_model(spec: str, model_seed: int, exact: bool):
    """``(bqm, draw(beta, n, seed))`` of the classical distribution (``draw`` None for a model that
    only the simulated QPU samples)."""
    import dimod

    cfg = parse_model(spec, exact=exact)
    seed = derive_seed(model_seed, "beta-estimation-model", spec)
    if cfg["kind"] == "chimera":
        import dwave.graphs as dg

        rng = np.random.default_rng(seed)
        graph, s = dg.chimera_graph(cfg["cells"]), cfg["scale"]
        h = {int(v): float(np.clip(s * rng.normal(), -2.0, 2.0)) for v in sorted(graph.nodes)}
        edges = sorted((min(u, v), max(u, v)) for u, v in graph.edges)
        J = {(int(u), int(v)): float(np.clip(s * rng.normal(), -1.0, 1.0)) for u, v in edges}
        bqm = dimod.BQM.from_ising(h, J)
        if cfg["n"] > 18:
            return bqm, None
    elif cfg["kind"] == "rbm":
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

        def draw_rbm(beta: float, n: int, seed: int) -> np.ndarray:
            out = ExactSampler(seed=seed).sample(rbm, n, beta=beta)
            return 2.0 * torch.cat([out.v, out.h], 1).numpy() - 1.0

        return bqm, draw_rbm
    else:
        rng = np.random.default_rng(seed)
        n, s = cfg["n"], cfg["scale"]
        h = {i: s * rng.normal() for i in range(n)}
        J = {(i, j): s * rng.normal() for i in range(n) for j in range(i + 1, n) if rng.random() < 0.4}
        bqm = dimod.BQM.from_ising(h, J)
    n = cfg["n"]
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
    """Fit ``repeats`` sample sets of the cell's model at its (β, Γ) (exact draws, or the simulated
    QPU's reads); aggregate the estimates."""
    from physamp.samplers.dimod_io import estimate_beta, fit_beta, flip_energies
    from physamp.samplers.quantum_exact import MAX_SPINS

    torch.set_num_threads(1)
    beta, n = cell["beta"], cell["reads"]
    gamma, source = float(cell.get("gamma", 0.0)), cell.get("source", "exact")
    bqm, draw = make_model(cell["model"], cell["model_seed"], exact=source == "exact")
    labels = list(bqm.variables)
    if source == "simulated-qpu":
        draw = _qpu_draw(bqm, cell)
    beta_limit = math.nan  # the estimator's infinite-read limit on the exact p_Γ
    if len(labels) <= MAX_SPINS:
        states, p = quantum_probs(bqm, beta, gamma)
        limit, _ = estimate_beta(flip_energies(bqm, states, labels), p)
        beta_limit = math.nan if limit is None else float(limit)
    est, std, naive, cover, cover_naive, ocean, boot, ocean_boot = [], [], [], [], [], [], [], []
    undefined = 0
    max_rel = 0.0
    for r in range(cell["repeats"]):
        if gamma == 0 and source == "exact":  # the seeds of the classical study, unchanged
            seed = derive_seed(cell["seed"], "beta-estimation", cell["model"], beta, n, r)
        else:
            seed = derive_seed(cell["seed"], "beta-estimation", cell["model"], beta, n, r, source, str(gamma))
        spins = draw(beta, n, seed % (2**31), gamma)
        nb = cell["bootstrap"] if r < cell["bootstrap_repeats"] else 0
        fit = fit_beta(flip_energies(bqm, spins, labels), num_bootstrap=nb, seed=seed)
        b_ocean, b_ocean_bs = _ocean(bqm, spins, labels, nb, seed % (2**31))
        if fit.beta is None or fit.std is None:
            undefined += 1
            continue
        assert fit.ci is not None and fit.naive_std is not None  # fit_beta sets them with std
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
        "beta_ratio": mean(est) / beta,
        "ratio_spread": spread / beta,
        "beta_limit": beta_limit,
        "limit_ratio": beta_limit / beta,
    }


def _qpu_draw(bqm, cell: dict):
    """``draw(beta, n, seed, gamma)`` by the simulated QPU at the cell's (β, Γ): its classical engine
    at Γ = 0, its path-integral engine with the cell's Trotter slices at Γ > 0; no noise, the model
    programmed as given (it is in range)."""
    from physamp.samplers.dimod_io import sampleset_to_array
    from physamp.samplers.simulated_qpu import SimulatedQPU

    cfg = parse_model(cell["model"], exact=False)
    options = {"trotter": cell["trotter"]} if cell["gamma"] > 0 else {}
    qpu = SimulatedQPU(
        "chimera", cfg["cells"], beta=cell["beta"], gamma=cell["gamma"], num_sweeps=cell["num_sweeps"],
        seed=cell["seed"], **options,
    )  # fmt: skip
    labels = list(bqm.variables)

    def draw(beta: float, n: int, seed: int, gamma: float) -> np.ndarray:
        ss = qpu.sample(bqm, num_reads=n, auto_scale=False, answer_mode="raw", seed=seed)
        return sampleset_to_array(ss, labels).astype(np.float64)

    return draw


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
Γ is the transverse field of the sampled distribution (0: classical) and 'source' says where the samples
came from ('exact': enumeration or diagonalisation; 'simulated-qpu': the simulated QPU's reads, a Markov
chain). At Γ > 0 'bias' is measured against the β of the transverse-field distribution, which the
classical estimator does not model: it is the estimator's bias on quantum reads, not a sampling error.
In the table against Γ each entry is the mean of β̂/β ± its spread over the repeats, and in brackets
the estimator's infinite-read limit (the pseudo-likelihood root weighted by the exact p_Γ) where the
model is small enough to diagonalise.
"""


def _classical(row: dict) -> bool:
    """An exact Γ = 0 cell: what the estimator's validity statements are about."""
    c = row["cell"]
    return c.get("gamma", 0.0) == 0 and c.get("source", "exact") == "exact"


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
    range, the coverage range (on exact classical samples), the agreement with Ocean, and
    β̂/β against Γ."""
    res = [r["result"] for r in rows if r["result"]["estimates"] > 1 and _classical(r)]
    if not res:
        return ["No exact Γ = 0 cell gave two finite estimates."] + gamma_lines(rows)
    z = [abs(r["bias"]) / r["bias_se"] for r in res if r["bias_se"] > 0]
    rel = [abs(r["rel_bias"]) for r in res]
    ratio = [r["std_ratio"] for r in res if math.isfinite(r["std_ratio"])]
    cov = [r["coverage"] for r in res]
    ncov = [r["naive_coverage"] for r in res]
    agree = max(r["result"]["ocean_max_rel_diff"] for r in rows if r["result"]["estimates"] > 1)
    lines = [
        f"Across {len(res)} exact Γ = 0 cells: the largest |relative bias| is {max(rel):.3%}, and the "
        f"largest |bias| is {max(z):.2f} of its own standard error (spread/sqrt(repeats)).",
        f"The sandwich std is {min(ratio):.2f} to {max(ratio):.2f} times the empirical spread; the 95 % "
        f"intervals cover the true β in {min(cov):.0%} to {max(cov):.0%} of the repeats per cell (naive std: "
        f"{min(ncov):.0%} to {max(ncov):.0%}).",
        f"physamp's estimate and Ocean's maximum_pseudolikelihood_temperature agree to {agree:.1e} "
        "(relative) on every sample set, so their bias and spread are the same."
        if agree < 1e-6
        else f"physamp's estimate and Ocean's maximum_pseudolikelihood_temperature differ by up to "
        f"{agree:.1e} (relative) on some sample set: see the 'Ocean Δ' column for where.",
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
    return lines + gamma_lines(rows)


def _ratio(x: dict, limit: bool = True) -> str:
    """``β̂/β ± spread [limit]`` of one cell's result."""
    text = f"{x['beta_ratio']:.3f} ± {x['ratio_spread']:.3f}" if x["estimates"] > 1 else "–"
    if limit and math.isfinite(x.get("limit_ratio", math.nan)):
        text += f" [{x['limit_ratio']:.3f}]"
    return text


def gamma_table(rows: list[dict]) -> tuple[list[str], list[list]] | None:
    """The table of β̂/β against Γ: one row per (model, source, β, reads), one column per Γ; None
    when every cell is at Γ = 0."""
    gammas = sorted({float(r["cell"].get("gamma", 0.0)) for r in rows})
    if gammas == [0.0]:
        return None
    groups: dict[tuple, dict[float, dict]] = {}
    for r in rows:
        c = r["cell"]
        key = (c["model"], c.get("source", "exact"), c["beta"], c["reads"])
        groups.setdefault(key, {})[float(c.get("gamma", 0.0))] = r["result"]
    header = ["model", "source", "β", "reads"] + [f"Γ = {g:g}" for g in gammas]
    table = [
        [model, source, _fmt(beta), reads] + [_ratio(by[g]) if g in by else "" for g in gammas]
        for (model, source, beta, reads), by in sorted(groups.items())
        if any(g > 0 for g in by)
    ]
    return header, table


def gamma_lines(rows: list[dict]) -> list[str]:
    """Findings against Γ: at each Γ > 0 the range over the exact cells' models of the estimator's
    infinite-read limit β̂/β per β, how far the means over repeats lie from it, the bias direction,
    and the simulated QPU's reads beside the exact limit."""
    gammas = sorted({float(r["cell"].get("gamma", 0.0)) for r in rows} - {0.0})
    lines = []
    for g in gammas:
        at = [
            r
            for r in rows
            if r["cell"].get("gamma", 0.0) == g
            and r["cell"].get("source", "exact") == "exact"
            and r["result"]["estimates"] > 1
        ]
        if not at:
            continue
        parts = []
        for beta in sorted({r["cell"]["beta"] for r in at}):
            lim = [r["result"]["limit_ratio"] for r in at if r["cell"]["beta"] == beta]
            lim = [x for x in lim if math.isfinite(x)]
            if lim:
                parts.append(f"{min(lim):.3f}-{max(lim):.3f} at β = {beta:g}")
        z = [
            abs(x["beta_ratio"] - x["limit_ratio"]) / (x["ratio_spread"] / math.sqrt(x["estimates"]))
            for x in (r["result"] for r in at)
            if math.isfinite(x["limit_ratio"]) and x["ratio_spread"] > 0
        ]
        models = len({r["cell"]["model"] for r in at})
        line = f"At Γ = {g:g}, exact transverse-field samples ({models} model(s)): the infinite-read limit "
        line += "of β̂/β is " + ("; ".join(parts) if parts else "not computable")
        if z:
            line += (
                f". The means over repeats lie within {max(z):.2f} standard errors of it (median "
                f"{np.median(z):.2f}, over {len(z)} cells)"
            )
        lines.append(line + ".")
    direction = [
        r["result"]["limit_ratio"]
        for r in rows
        if r["cell"].get("gamma", 0.0) > 0 and math.isfinite(r["result"]["limit_ratio"])
    ]
    if direction:
        below = sum(x < 1 for x in direction)
        lines.append(
            f"The infinite-read limit lies below β in {below} of {len(direction)} Γ > 0 cells: the classical "
            "estimator reads transverse-field samples as "
            + ("hotter (β̂ < β)" if below == len(direction) else "neither uniformly hotter nor colder")
            + " than the β they were drawn at."
        )
    exact_by = {
        (r["cell"]["model"], r["cell"]["beta"], r["cell"]["reads"], r["cell"].get("gamma", 0.0)): r["result"]
        for r in rows
        if r["cell"].get("source", "exact") == "exact"
    }
    for r in rows:
        c, x = r["cell"], r["result"]
        if c.get("source") != "simulated-qpu" or x["estimates"] < 2:
            continue
        twin = exact_by.get((c["model"], c["beta"], c["reads"], c.get("gamma", 0.0)))
        engine = f"{c['trotter']} Trotter slices" if c.get("gamma", 0.0) > 0 else "classical engine"
        line = (
            f"Simulated QPU ({engine}, {c['num_sweeps']} sweeps), {c['model']}, β = {c['beta']:g}, "
            f"Γ = {c.get('gamma', 0.0):g}: β̂/β = {_ratio(x, limit=False)}"
        )
        if twin is not None and twin["estimates"] > 1:
            line += f", exact samples {_ratio(twin, limit=False)}"
        if math.isfinite(x["limit_ratio"]):
            se = x["ratio_spread"] / math.sqrt(x["estimates"])
            line += f", the exact p_Γ's limit {x['limit_ratio']:.3f}"
            if se > 0:
                line += f" ({abs(x['beta_ratio'] - x['limit_ratio']) / se:.1f} standard errors away)"
        lines.append(line + ".")
    return lines


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    out_dir = Path(out_dir)
    rows = sorted(
        rows,
        key=lambda r: (
            r["cell"]["model"], r["cell"].get("source", "exact"), r["cell"]["beta"], r["cell"]["reads"],
            r["cell"].get("gamma", 0.0),
        ),
    )  # fmt: skip
    header = [
        "model", "β", "reads", "Γ", "source", "repeats", "mean β̂", "bias (rel.)", "spread", "sandwich",
        "ratio", "coverage", "naive cov.", "bootstrap", "Ocean bootstrap", "Ocean Δ", "undefined",
    ]  # fmt: skip
    table = []
    for r in rows:
        c, x = r["cell"], r["result"]
        bias = f"{_fmt(x['bias'])} ± {_fmt(x['bias_se'])} ({100 * x['rel_bias']:+.1f} %)"
        if not math.isfinite(x["rel_bias"]):
            bias = "–"
        table.append(
            [
                c["model"], _fmt(c["beta"]), c["reads"], _fmt(float(c.get("gamma", 0.0))),
                c.get("source", "exact"), x["estimates"], _fmt(x["beta_mean"]), bias,
                _fmt(x["spread"]), _fmt(x["sandwich_std"]), _fmt(x["std_ratio"]), _fmt(x["coverage"]),
                _fmt(x["naive_coverage"]), _fmt(x["bootstrap_std"]), _fmt(x["ocean_bootstrap_std"]),
                _fmt(x["ocean_max_rel_diff"]), x["undefined"],
            ]
        )  # fmt: skip
    _plot(rows, out_dir, preset)
    findings = "\n".join(f"- {line}" for line in summary_lines(rows))
    notes = " ".join(NOTES.split())
    against = gamma_table(rows)
    by_gamma = (
        ""
        if against is None
        else "**β̂/β against the transverse field Γ** (mean ± spread over the repeats [infinite-read limit])"
        f"\n\n{common.markdown_table(*against, fmt=str)}\n\n"
    )
    qpu = any(r["cell"].get("source") == "simulated-qpu" for r in rows)
    data = "exact samples of the models above" + (" and the simulated QPU's reads" if qpu else "")
    text = (
        f"# {TITLE} [{preset}]\n\n{PROTOCOL.strip()}\n\n"
        f"**Data:** synthetic: {data} (no dataset).\n\n"
        f"{common.markdown_table(header, table, fmt=str)}\n\n{by_gamma}"
        f"**Findings**\n\n{findings}\n\n{notes}\n"
    )
    (out_dir / f"{NAME}.md").write_text(text)


def _plot(rows: list[dict], out_dir: Path, preset: str) -> None:
    quantum = [r for r in rows if r["cell"].get("gamma", 0.0) > 0]
    if quantum:
        fig, (ax, ax_g) = common.new_figure(11.0, 3.8, ncols=2)
        _plot_gamma(ax_g, rows)
    else:
        fig, ax = common.new_figure(5.5, 3.6)
    rows = [r for r in rows if _classical(r)] or rows  # the left panel: exact classical samples
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


def _plot_gamma(ax, rows: list[dict]) -> None:
    """β̂/β against Γ, one line per (model, source, β) at its largest read count; dotted: the limit."""
    groups: dict[tuple, list[tuple[float, dict]]] = {}
    top: dict[tuple, int] = {}
    for r in rows:
        c = r["cell"]
        key = (c["model"], c.get("source", "exact"), c["beta"])
        top[key] = max(top.get(key, 0), c["reads"])
    for r in rows:
        c = r["cell"]
        key = (c["model"], c.get("source", "exact"), c["beta"])
        if c["reads"] == top[key]:
            groups.setdefault(key, []).append((float(c.get("gamma", 0.0)), r["result"]))
    for (model, source, beta), pts in sorted(groups.items()):
        if len(pts) < 2:
            continue
        pts.sort(key=lambda p: p[0])
        g = np.array([p[0] for p in pts])
        ratio = np.array([p[1]["beta_ratio"] for p in pts])
        err = np.array([p[1]["ratio_spread"] for p in pts])
        style = "s" if source == "simulated-qpu" else "o"
        label = f"{model}, β = {beta:g}" + (", simulated QPU" if source == "simulated-qpu" else "")
        line = ax.errorbar(g, ratio, yerr=err, marker=style, capsize=3, label=label)
        limit = np.array([p[1].get("limit_ratio", math.nan) for p in pts])
        if np.isfinite(limit).any():
            ax.plot(g, limit, linestyle=":", color=line[0].get_color())
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_xlabel("transverse field Γ of the samples")
    ax.set_ylabel("β̂ / β ± spread (dotted: infinite-read limit)")
    ax.legend(fontsize=5)
    ax.set_title("classical β_eff estimator on transverse-field samples", fontsize=8)
