"""Does training through a quantum sampler compensate for it? (issue 13, part 5)

A quantum annealer used as the negative-phase sampler of a classical RBM draws, to a good
approximation, from the diagonal of the transverse-field thermal state (DESIGN.md, "Transverse-field
(quantum) distribution"): over all visible and hidden spins, ``H = H_Ising − Γ Σᵢ σˣᵢ`` and
``p_Γ(v, h) = ⟨v, h| e^{−βH} |v, h⟩ / Tr e^{−βH}``, where ``H_Ising`` holds the RBM energy
``E(v, h) = −b·v − c·h − hᵀWv`` on its diagonal; Γ = 0 is the classical ``p_0 ∝ e^{−βE}``. Noise-aware
training (thesis §3.5) compensates for parameter noise by training through the noisy device; this
study asks the same of the transverse field: are the parameters learned through ``p_Γ`` ones whose
device distribution ``p_Γ(v)`` fits the data, and what is the classical model ``p_0(v)`` left behind?

What the training optimises. The positive phase is the classical one (data ``v`` and
``E[h|v] = σ(c + Wv)``), as when a QPU is the negative-phase sampler of a classical RBM; the
negative phase is ``β E_{p_Γ}[v, h, h vᵀ]``. For a parameter θ whose ``∂H/∂θ`` is diagonal,
``∂/∂θ log Tr e^{−βH} = −β Tr(∂H/∂θ e^{−βH}) / Tr e^{−βH}`` (cyclicity of the trace), which is the
expectation under the diagonal ``p_Γ``. So the exact negative phase is the gradient of the quantum
``log Z_Γ``, and training ascends

    L_Γ(θ) = mean_data[−β F_0(v)] − log Z_Γ(θ) = mean_data[log p_0(v)] − (log Z_Γ − log Z_0),

(``F_0`` the classical free energy). ``log Z_Γ ≥ log Z_0`` (Peierls: the diagonal of ``H`` is the
classical energy), so the second term is a penalty on quantum fluctuations, ``n log cosh βΓ`` at
θ = 0, that a unit escapes by freezing: a large field makes it classical. A hidden unit freezes at
little cost to the data term (it only loses its capacity), and its bias drifts without bound: the
classical positive phase saturates exponentially, ``σ(c) → 1``, the quantum diagonal only
polynomially, ``p_Γ(h = 1) ≈ 1 − O(Γ²/c²)``. The tables count these frozen hidden units. The
``clamped`` positive phase of the protocol puts the hidden units' quantum fluctuations into the
positive phase too, which removes that incentive for them (not for the visible units).

Protocol
--------
- Part 1, exact (``exact_models``, e.g. ``bas-2x2-h4``: an RBM with ``R·C`` visible and ``H`` hidden
  units on the ``R × C`` bars-and-stripes patterns: every image whose rows are all on or all off, or
  whose columns are; ``2^R + 2^C − 2`` distinct patterns, pixels row-major; the data distribution is
  uniform over them). Float64 RBM, ``W ~ N(0, init_std²)`` from the seed, biases 0 (the pixel
  marginals of bars and stripes are ½). ``steps`` full-batch gradient-ascent steps (learning rate
  ``lr``, momentum ``momentum``, no weight decay) with the negative phase computed EXACTLY from ``p_Γ``
  (:func:`physamp.samplers.quantum_exact.rbm_transverse_field_log_probs`, a dense diagonalisation
  of all ``R·C + H`` spins at every step; Γ = 0 by enumeration) for every Γ of ``gammas``, at
  ``beta``, with each positive phase of ``positive_phases``: ``classical`` (the question asked: data
  ``v`` and ``σ(c + Wv)``) and, as a control, ``clamped`` (the visible units clamped to the data, the
  transverse field on the hidden units only: ``E[h_j|v] = ½(1 + (a_j/2r) tanh βr)``, ``a = c + Wv``,
  ``r = √(a_j²/4 + Γ²)``, the gradient of ``mean_data[log Tr_h e^{−βH_v}] − log Z_Γ``, the bound of
  Amin et al., Phys. Rev. X 8, 021050, 2018; it needs the device's physics in the positive phase).
  Deterministic given the seed. For the learned parameters: KL(data ‖ p_0(v)) (the
  classical model), KL(data ‖ p_Γ(v)) (what the device then produces) and KL(data ‖ p_Γ'(v)) for every
  Γ' of ``eval_gammas`` (the train-Γ × eval-Γ matrix). "No compensation" is the Γ = 0-trained model
  run on the device at Γ: KL(data ‖ p_Γ(v)) of the classically trained parameters. A hidden unit is
  *frozen* when ``p(h_j = 1 | v)`` is below 0.01 on every pattern or above 0.99 on every pattern.
- Part 2, MNIST (``mnist-default``, training images re-binarised at every presentation, test images
  binarised once with seed 0): 784 × ``n_hidden`` RBMs, PCD-15 with 100 persistent chains, batch
  100, SGD lr 0.05 → 0.005 (linear), momentum 0.5, weight decay 1e-4 (the chapter-3 protocol,
  :func:`physamp.experiments.common.pcd15`), with the negative phase from the ``quantum`` backend
  (path-integral Monte Carlo with ``trotter`` slices, ``k = 15`` sweeps per update) at every Γ of
  ``mnist_gammas``, beside the same model trained with ``gibbs`` (Γ = 0; ``mnist_gibbs``: the same
  cached model as ``noise-at-sampling``'s at equal settings). Quantity: the classical test NLL of the
  learned parameters by AIS (base rate from the training data) and the fraction of frozen hidden
  units on the test images. The NLL of the device's distribution ``p_Γ(v)`` is out of reach at
  784 × 500 (no AIS for the quantum partition function); part 1 measures that gap where it is exact.

Thesis: noise-aware training (§3.5, Fig. 3.2b) reduces the NLL increase due to noise at sampling
time by 21.9 % (σ = 0.1). No thesis number exists for the transverse field; this study is new.

Presets (measured on a shared 2-core machine, one thread): ``tiny`` (``bas-2x2-h2``, 100 steps,
Γ ∈ {0, 1}, no MNIST: a few seconds, for the tests), ``quick`` and ``full``. ``quick``:
``bas-2x2-h4`` (8 spins: about 0.012 s per exact step), 300 steps, Γ ∈ {0, 0.5, 1, 2}, both positive
phases, 1 seed; MNIST 784 × 20, 2 epochs on the first 2,000 digits (40 updates), M = 4 slices,
Γ ∈ {0.5, 1, 2} and gibbs, AIS 2,000 × 20 on the first 500 test digits: about 40 CPU-seconds.
``full``: ``bas-2x2-h4`` and ``bas-2x3-h4`` (10 spins: about 0.4-0.57 s per exact step), 600 steps,
Γ_eval also 0.25, 5 seeds; MNIST 784 × 500, 20 epochs on every training digit (2,600 updates),
M = 8, Γ ∈ {0.5, 1, 2} and gibbs, S&M AIS 14,500 × 100 on every test digit; 90 cells, about
7 hours on one core (:data:`FULL_COST`), about 1 hour on 8 workers. What ``quick`` cuts: the
6-visible model, half the steps of ``full`` (with the same learning rate, 300 steps already reach
KL ≈ 0.01 classically on 2 × 2), 4 of the 5 seeds, Γ_eval = 0.25, and on MNIST 480 of the 500 hidden
units, 2,560 of the 2,600 updates (18 of 20 epochs on 2,000 of the 13,000 digits), half the Trotter
slices, the S&M schedule and three quarters of the test digits: its MNIST models are barely trained,
so read its NLLs as the direction of the effect only. Why not 3 × 3 bars and stripes (14 patterns,
9 visible): with 3 hidden units (12 spins, the most a dense eigh takes, about 22 s per step on one
core) the classical RBM itself stays at KL ≈ 1.7 nats after 2,000 steps, too little capacity for
the comparison to mean anything, and 4 hidden units on 2 × 4 bars and stripes (also 12 spins) stay
at KL ≈ 0.9; 2 × 3 with 4 hidden units reaches KL 0.01 classically.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from physamp.experiments import common

NAME = "quantum-negative-phase"
TITLE = "Training through a quantum (transverse-field) negative phase: does it compensate?"
PROTOCOL = common.protocol_section(__doc__, end="Thesis:")
RESULT_KEYS = ("part", "train_seconds")
THESIS_REDUCTION = 21.9  # % (Fig. 3.2b, σ = 0.1): what noise-aware training recovers, for comparison
POSITIVE_PHASES = ("classical", "clamped")
#: A hidden unit is frozen when p(h_j = 1 | v) < FROZEN on every input, or > 1 - FROZEN on every input.
FROZEN = 0.01
#: The full preset's cost, estimated from the measured seconds per step / update (shared 2-core machine,
#: one thread): see the module docstring and the report.
FULL_COST = (
    "exact part: bas-2x3-h4 at about 0.4-0.57 s per exact step x 600 steps x 30 cells with Γ > 0 (3 Γ x "
    "2 positive phases x 5 seeds) is about 2-3 core-hours (bas-2x2-h4 adds about 4 core-minutes); MNIST "
    "part: a PCD-15 update of 784 x 500 takes about 0.06 s with gibbs and about 0.37 s with quantum at "
    "M = 8, so about 2.6 min per gibbs model and about 16 min per quantum model (2,600 updates), plus "
    "about 1-1.5 min of S&M AIS per cell: 5 seeds x (3 quantum + 1 gibbs) is about 4.5 core-hours; "
    "about 7 hours on one core in all, about 1 hour on 8 workers (one quantum cell, about 17 min, is "
    "the longest)"
)

PRESETS = {
    "tiny": dict(
        exact_models=["bas-2x2-h2"],
        positive_phases=["classical", "clamped"],
        gammas=[0.0, 1.0],
        eval_gammas=[0.0, 1.0],
        steps=100,
        lr=2.0,
        momentum=0.9,
        init_std=0.1,
        beta=1.0,
        mnist_gammas=[],
        mnist_gibbs=False,
        trotter=4,
        n_hidden=4,
        epochs=1,
        max_train=200,
        max_test=100,
        seeds=[0],
        ais_runs=4,
        ais_betas=50,
    ),
    **common.presets(
        quick=dict(
            exact_models=["bas-2x2-h4"],
            positive_phases=["classical", "clamped"],
            gammas=[0.0, 0.5, 1.0, 2.0],
            eval_gammas=[0.0, 0.5, 1.0, 2.0],
            steps=300,
            lr=2.0,
            momentum=0.9,
            init_std=0.1,
            beta=1.0,
            mnist_gammas=[0.5, 1.0, 2.0],
            mnist_gibbs=True,
            trotter=4,
            n_hidden=20,
            epochs=2,
            max_train=2000,
            max_test=500,
        ),
        full=dict(
            exact_models=["bas-2x2-h4", "bas-2x3-h4"],
            positive_phases=["classical", "clamped"],
            gammas=[0.0, 0.5, 1.0, 2.0],
            eval_gammas=[0.0, 0.25, 0.5, 1.0, 2.0],
            steps=600,
            lr=2.0,
            momentum=0.9,
            init_std=0.1,
            beta=1.0,
            mnist_gammas=[0.5, 1.0, 2.0],
            mnist_gibbs=True,
            trotter=8,
            n_hidden=500,
            epochs=20,
            max_train=None,
            max_test=None,
        ),
    ),
}

_MODEL = re.compile(r"^bas-(\d+)x(\d+)-h(\d+)$")


# --- part 1: bars and stripes, exact -----------------------------------------------------------
def parse_model(spec: str) -> dict:
    """``"bas-2x3-h4"`` -> ``{"rows": 2, "cols": 3, "n_hidden": 4}``, refused past the exact limit."""
    from physamp.samplers.quantum_exact import MAX_SPINS

    m = _MODEL.match(str(spec))
    if m is None:
        raise ValueError(
            f"unknown exact model {spec!r}: write bas-RxC-hH (R x C bars and stripes, H hidden units), "
            "e.g. bas-2x3-h4"
        )
    rows, cols, nh = (int(x) for x in m.groups())
    if min(rows, cols, nh) < 1:
        raise ValueError(f"exact model {spec!r}: rows, columns and hidden units must be at least 1")
    if rows * cols + nh > MAX_SPINS:
        raise ValueError(
            f"exact model {spec!r} has {rows * cols + nh} spins ({rows * cols} visible + {nh} hidden); the "
            f"exact transverse-field distribution diagonalises at most {MAX_SPINS}: use a smaller model"
        )
    return {"rows": rows, "cols": cols, "n_hidden": nh}


def bars_and_stripes(rows: int, cols: int) -> torch.Tensor:
    """The ``2^rows + 2^cols − 2`` distinct ``rows × cols`` bars-and-stripes images, ``(K, rows·cols)``
    float64 in {0, 1}, pixels row-major (pixel ``r·cols + c``), sorted: every image whose rows are each
    all on or all off (bars), or whose columns are (stripes)."""
    pats = set()
    for bits in itertools.product((0, 1), repeat=rows):  # one value per row
        pats.add(tuple(bit for bit in bits for _ in range(cols)))
    for bits in itertools.product((0, 1), repeat=cols):  # one value per column
        pats.add(tuple(bits) * rows)
    return torch.tensor(sorted(pats), dtype=torch.float64)


def visible_index(v: torch.Tensor) -> torch.Tensor:
    """The basis index of each visible row ``v (N, n_visible)``: bit ``i`` is unit ``i`` (the order of
    :mod:`physamp.samplers.quantum_exact`)."""
    v = torch.as_tensor(v)
    weights = torch.tensor([1 << i for i in range(v.shape[1])], dtype=torch.int64)
    return (v.round().to(torch.int64) * weights).sum(1)


def visible_log_marginal(log_p_joint: torch.Tensor, n_visible: int, n_hidden: int) -> torch.Tensor:
    """``log p(v)`` over the ``2^n_visible`` visible states from a joint table over ``2^(nv + nh)``
    states whose low ``n_visible`` index bits are the visible units (index ``iv + 2^nv · ih``)."""
    if log_p_joint.numel() != 1 << (n_visible + n_hidden):
        raise ValueError(
            f"the joint table holds {log_p_joint.numel()} states; {n_visible} visible + {n_hidden} hidden "
            f"units need 2^{n_visible + n_hidden}"
        )
    return torch.logsumexp(log_p_joint.reshape(1 << n_hidden, 1 << n_visible), 0)


def kl_data(data: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(data ‖ q) in nats, the data distribution being the empirical one of the rows of ``data``
    (duplicates counted) and ``log_q`` the log of ``q`` over the ``2^n`` states (index by
    :func:`visible_index`). Infinite when q puts no mass on a data state."""
    idx = visible_index(data)
    states, counts = torch.unique(idx, return_counts=True)
    p = counts.to(torch.float64) / counts.sum()
    lq = log_q.to(torch.float64)[states]
    if torch.isneginf(lq).any():
        return math.inf
    return float((p * (p.log() - lq)).sum())


def _params(W, b, c):
    from physamp.energy import RBMParams

    return RBMParams(W, b, c, None)


def _states(n_visible: int, n_hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every joint state's ``(v, h)`` as float64 rows, in the index order of the exact tables."""
    idx = torch.arange(1 << (n_visible + n_hidden), dtype=torch.int64)
    bits = ((idx[:, None] >> torch.arange(n_visible + n_hidden)) & 1).to(torch.float64)
    return bits[:, :n_visible], bits[:, n_visible:]


def exact_log_probs(W, b, c, gamma: float, beta: float = 1.0) -> tuple[torch.Tensor, float]:
    """``(log p_Γ over the joint states, log Z_Γ)`` of the RBM ``(W, b, c)``: see
    :func:`physamp.samplers.quantum_exact.rbm_transverse_field_log_probs` (Γ = 0: enumeration)."""
    from physamp.samplers.quantum_exact import rbm_transverse_field_log_probs

    return rbm_transverse_field_log_probs(_params(W, b, c), gamma, beta)


def hidden_means(W, c, data: torch.Tensor, beta: float = 1.0, gamma: float = 0.0) -> torch.Tensor:
    """``E[h_j | v]`` for every row of ``data``, shape ``(N, n_hidden)``: classically (Γ = 0)
    ``σ(β a_j)`` with ``a = c + Wv``; with the visible units clamped and a transverse field Γ on the
    hidden ones (each hidden unit is then one spin in a longitudinal field ``a_j / 2``),
    ``½ (1 + (a_j / 2r) tanh(β r))`` with ``r = √(a_j²/4 + Γ²)``."""
    a = c + data @ W.T
    if gamma == 0.0:
        return torch.sigmoid(beta * a)
    r = torch.sqrt(0.25 * a * a + gamma * gamma)
    return 0.5 * (1.0 + 0.5 * a / r * torch.tanh(beta * r))


def clamped_log_trace(W, b, c, data: torch.Tensor, beta: float = 1.0, gamma: float = 0.0) -> torch.Tensor:
    """``log Tr_h e^{−βH_v}`` for every row ``v`` of ``data``: the Hamiltonian with the visible units
    clamped to ``v`` and the transverse field Γ on the hidden units only,
    ``β b·v + Σ_j [β a_j/2 + log 2cosh(β r_j)]`` (``a``, ``r`` as in :func:`hidden_means`). At Γ = 0 it is
    ``−β F_0(v)``, the classical free energy; its gradient is the ``clamped`` positive phase."""
    a = c + data @ W.T
    r = torch.sqrt(0.25 * a * a + gamma * gamma)
    log_2cosh = torch.logaddexp(beta * r, -beta * r)
    return beta * (data @ b) + (0.5 * beta * a + log_2cosh).sum(1)


def positive_phase(
    W, b, c, data: torch.Tensor, beta: float = 1.0, positive: str = "classical", gamma: float = 0.0
) -> dict[str, torch.Tensor]:
    """The positive phase over ``data``: ``{"W": mean E[h|v] vᵀ, "b": mean v, "c": mean E[h|v]}``
    (shapes of W, b, c), ``E[h|v]`` from :func:`hidden_means`: classical for ``positive="classical"``
    (what one does with a QPU as the negative-phase sampler of a classical RBM), at the transverse
    field ``gamma`` on the clamped hidden units for ``positive="clamped"`` (the bound of Amin et al.,
    Phys. Rev. X 8, 021050, 2018)."""
    if positive not in POSITIVE_PHASES:
        raise ValueError(f"positive phase must be one of {POSITIVE_PHASES}, got {positive!r}")
    ph = hidden_means(W, c, data, beta, gamma if positive == "clamped" else 0.0)
    return {"W": ph.T @ data / data.shape[0], "b": data.mean(0), "c": ph.mean(0)}


def negative_phase(log_p: torch.Tensor, n_visible: int, n_hidden: int) -> dict[str, torch.Tensor]:
    """The expectations ``{"W": E[h vᵀ], "b": E[v], "c": E[h]}`` under the joint table ``exp(log_p)``."""
    v, h = _states(n_visible, n_hidden)
    p = log_p.exp()
    return {"W": (h * p[:, None]).T @ v, "b": p @ v, "c": p @ h}


def exact_gradient(
    W, b, c, data: torch.Tensor, gamma: float, beta: float = 1.0, positive: str = "classical"
) -> dict[str, torch.Tensor]:
    """The training direction ``β (positive − negative phase)`` with the exact negative phase at Γ:
    the gradient of :func:`objective` (at Γ = 0, of the mean log-likelihood)."""
    nh, nv = W.shape
    log_p, _ = exact_log_probs(W, b, c, gamma, beta)
    pos = positive_phase(W, b, c, data, beta, positive, gamma)
    neg = negative_phase(log_p, nv, nh)
    return {k: beta * (pos[k] - neg[k]) for k in pos}


def objective(
    W, b, c, data: torch.Tensor, gamma: float, beta: float = 1.0, positive: str = "classical"
) -> float:
    """What training with the exact negative phase at Γ ascends: ``mean_data[−β F_0(v)] − log Z_Γ``
    with the classical positive phase (the mean log-likelihood at Γ = 0), ``mean_data[log Tr_h e^{−βH_v}]
    − log Z_Γ`` with the clamped one (:func:`clamped_log_trace`)."""
    if positive not in POSITIVE_PHASES:
        raise ValueError(f"positive phase must be one of {POSITIVE_PHASES}, got {positive!r}")
    _, log_z = exact_log_probs(W, b, c, gamma, beta)
    g = gamma if positive == "clamped" else 0.0
    return float(clamped_log_trace(W, b, c, data, beta, g).mean()) - log_z


def frozen_fraction(W, c, v: torch.Tensor, beta: float = 1.0, tol: float = FROZEN) -> float:
    """The fraction of hidden units whose classical ``p(h_j = 1 | v)`` is below ``tol`` on every row
    of ``v`` or above ``1 − tol`` on every row: units that carry no information about ``v``."""
    ph = torch.sigmoid(beta * (c + v.to(W.dtype) @ W.T))
    frozen = (ph < tol).all(0) | (ph > 1 - tol).all(0)
    return float(frozen.to(torch.float64).mean())


def train_exact(
    data: torch.Tensor,
    n_hidden: int,
    gamma: float,
    *,
    steps: int,
    lr: float,
    momentum: float,
    init_std: float,
    seed: int,
    beta: float = 1.0,
    positive: str = "classical",
) -> dict:
    """Full-batch gradient ascent with the exact negative phase at Γ (:func:`exact_gradient`).

    Returns ``{"W", "b", "c"}`` (float64), ``"seconds"`` (all of it) and ``"seconds_exact"`` (the
    exact negative phases: the diagonalisations at Γ > 0). Deterministic given ``seed``.
    """
    n_visible = data.shape[1]
    g = torch.Generator().manual_seed(int(seed) % (2**63))
    W = torch.randn(n_hidden, n_visible, generator=g, dtype=torch.float64) * init_std
    b = torch.zeros(n_visible, dtype=torch.float64)
    c = torch.zeros(n_hidden, dtype=torch.float64)
    vel = {"W": torch.zeros_like(W), "b": torch.zeros_like(b), "c": torch.zeros_like(c)}
    params = {"W": W, "b": b, "c": c}
    t0 = time.perf_counter()
    exact_s = 0.0
    for _ in range(int(steps)):
        pos = positive_phase(W, b, c, data, beta, positive, gamma)
        t = time.perf_counter()
        log_p, _ = exact_log_probs(W, b, c, gamma, beta)
        exact_s += time.perf_counter() - t
        neg = negative_phase(log_p, n_visible, n_hidden)
        for k, x in params.items():
            vel[k].mul_(momentum).add_(beta * (pos[k] - neg[k]), alpha=lr)
            x.add_(vel[k])
    if not all(torch.isfinite(x).all() for x in params.values()):
        raise FloatingPointError(
            f"training diverged at Γ = {gamma:g} (lr {lr:g}, momentum {momentum:g}); lower lr"
        )
    return {**params, "seconds": time.perf_counter() - t0, "seconds_exact": exact_s}


def model_spins(spec: str) -> int:
    """The spins (visible + hidden units) of exact model ``spec``."""
    m = parse_model(spec)
    return m["rows"] * m["cols"] + m["n_hidden"]


def _gkey(gamma: float) -> str:
    return f"{float(gamma):g}"


def run_exact_cell(cell: dict) -> dict:
    """Train one bars-and-stripes RBM at the cell's Γ and measure its KLs at every evaluation Γ."""
    torch.set_num_threads(1)
    spec = parse_model(cell["model"])
    data = bars_and_stripes(spec["rows"], spec["cols"])
    nv, nh, beta = data.shape[1], spec["n_hidden"], float(cell["beta"])
    fit = train_exact(
        data,
        nh,
        cell["gamma"],
        steps=cell["steps"],
        lr=cell["lr"],
        momentum=cell["momentum"],
        init_std=cell["init_std"],
        seed=cell["seed"],
        beta=beta,
        positive=cell["positive"],
    )
    W, b, c = fit["W"], fit["b"], fit["c"]
    kl_eval, seconds_eval = {}, {}
    for g in cell["eval_gammas"]:
        t = time.perf_counter()
        log_p, _ = exact_log_probs(W, b, c, g, beta)
        seconds_eval[_gkey(g)] = time.perf_counter() - t
        kl_eval[_gkey(g)] = kl_data(data, visible_log_marginal(log_p, nv, nh))
    return {
        "part": "exact",
        "spins": nv + nh,
        "patterns": int(data.shape[0]),
        "kl_model": kl_eval[_gkey(0.0)],
        "kl_device": kl_eval[_gkey(cell["gamma"])],
        "kl_uniform": math.log((1 << nv) / data.shape[0]),
        "kl_eval": kl_eval,
        "objective": objective(W, b, c, data, cell["gamma"], beta, cell["positive"]),
        "frozen_hidden": frozen_fraction(W, c, data, beta),
        "max_abs_w": float(W.abs().max()),
        "max_abs_c": float(c.abs().max()),
        "max_abs_b": float(b.abs().max()),
        "train_seconds": fit["seconds"],
        "seconds_per_step": fit["seconds"] / max(1, int(cell["steps"])),
        "seconds_exact_per_step": fit["seconds_exact"] / max(1, int(cell["steps"])),
        "seconds_eigh": max(seconds_eval.values()),  # one diagonalisation of this size at Γ > 0
    }


# --- part 2: MNIST through the quantum backend ---------------------------------------------------
def mnist_train_config(p: dict, seed: int, gamma: float | None) -> dict:
    """:class:`RBMTrainConfig` fields of a part-2 model: the chapter's PCD-15 model (:func:`common.pcd15`)
    with ``gibbs`` (``gamma`` None: the same config, hence the same cached model, as
    ``noise-at-sampling``'s) or with ``quantum`` at Γ = ``gamma``, ``trotter`` slices of preset ``p``."""
    if gamma is None:
        return common.pcd15(p, seed)
    options = {"gamma": float(gamma), "trotter": int(p["trotter"])}
    if float(p["beta"]) != 1.0:
        options["beta"] = float(p["beta"])
    return common.pcd15(p, seed, sampler="quantum", sampler_options=options)


def updates_per_model(train: dict, num_train: int) -> int:
    """Parameter updates of a model trained with config fields ``train`` on ``num_train`` digits."""
    batch = int(train.get("batch_size", 100))
    per_epoch = max(1, num_train // batch) if num_train >= batch else 1
    return int(train["epochs"]) * per_epoch


def run_mnist_cell(cell: dict) -> dict:
    """Train (or load) the cell's MNIST RBM, its test NLL by AIS and its frozen hidden units."""
    try:  # torch.optim imports it on its first use: seconds that are not training, kept out of its time
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass
    rbm, result = common.train_and_evaluate(cell)
    data = common.dataset(cell["data"])
    n_train = (
        int(data.train.shape[0])
        if cell.get("max_train") is None
        else min(int(cell["max_train"]), int(data.train.shape[0]))
    )
    test = data.test if cell.get("max_test") is None else data.test[: int(cell["max_test"])]
    W, c = rbm.W.detach().double(), rbm.c.detach().double()
    updates = updates_per_model(cell["train"], n_train)
    return {
        **result,
        "part": "mnist",
        "frozen_hidden": frozen_fraction(W, c, test.double()),
        "max_abs_w": float(W.abs().max()),
        "max_abs_c": float(c.abs().max()),
        "updates": updates,
        "seconds_per_update": result["train_seconds"] / updates,
    }


# --- the experiment ------------------------------------------------------------------------------
def cells(p: dict) -> list[dict]:
    for spec in p["exact_models"]:
        parse_model(spec)  # every bad name before any work
    from physamp.samplers.quantum_exact import check_gamma

    bad = [x for x in p["positive_phases"] if x not in POSITIVE_PHASES]
    if bad:
        raise ValueError(f"unknown positive phases {bad}; use {list(POSITIVE_PHASES)}")
    for key in ("gammas", "eval_gammas", "mnist_gammas"):
        for g in p[key]:
            check_gamma(g, name=f"{key} entry")
    if p["mnist_gammas"]:
        from physamp.samplers.quantum import check_trotter

        check_trotter(p["trotter"])
    eval_gammas = sorted({0.0, *map(float, p["eval_gammas"]), *map(float, p["gammas"])})
    out = [
        {
            "experiment": NAME,
            "part": "exact",
            "model": spec,
            "positive": positive,
            "gamma": float(g),
            "seed": int(seed),
            "beta": float(p["beta"]),
            "steps": int(p["steps"]),
            "lr": float(p["lr"]),
            "momentum": float(p["momentum"]),
            "init_std": float(p["init_std"]),
            "eval_gammas": eval_gammas,
        }
        for seed, spec, positive, g in common.seed_grid(p, "exact_models", "positive_phases", "gammas")
        if positive == "classical" or g > 0  # at Γ = 0 the clamped positive phase is the classical one
    ]
    mnist: list[tuple[float | None, str]] = [(None, "gibbs")] if p["mnist_gibbs"] else []
    mnist += [(float(g), "quantum") for g in p["mnist_gammas"]]
    for seed, (g, sampler) in common.seed_grid(p, mnist):
        train = mnist_train_config(p, seed, g)
        out.append(
            common.make_cell(
                NAME,
                p,
                seed,
                train,
                part="mnist",
                sampler=sampler,
                gamma=0.0 if g is None else g,
                trotter=None if g is None else int(p["trotter"]),
            )
        )
    return out


def run_cell(cell: dict) -> dict:
    return run_exact_cell(cell) if cell["part"] == "exact" else run_mnist_cell(cell)


def _mean_text(values: list[float], digits: int = 3) -> str:
    m, s = common.mean_std(values)
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if len(values) > 1 else "")


def _exact_groups(rows: list[dict]) -> dict[tuple[str, str, float], list[dict]]:
    """Part-1 rows by ``(model, positive phase, Γ_train)``."""
    groups: dict[tuple[str, str, float], list[dict]] = {}
    for r in rows:
        if r["cell"]["part"] == "exact":
            c = r["cell"]
            groups.setdefault((c["model"], c["positive"], c["gamma"]), []).append(r)
    return groups


def _order(key: tuple[str, str, float]) -> tuple:
    model, positive, g = key
    return (model_spins(model), model, g > 0, POSITIVE_PHASES.index(positive), g)


def exact_tables(rows: list[dict]) -> tuple[str, list[str]]:
    """The Markdown tables of part 1 (summary and train-Γ × eval-Γ matrix) and findings lines."""
    groups = _exact_groups(rows)
    if not groups:
        return "", []
    exact = [r for rs in groups.values() for r in rs]
    models = sorted({k[0] for k in groups}, key=lambda m: (model_spins(m), m))
    header = [
        "model", "positive phase", "Γ_train", "KL(data ‖ p_0): the model", "KL(data ‖ p_Γ): the device",
        "no compensation: Γ=0-trained on the device", "frozen hidden", "max \\|c\\|", "max \\|W\\|", "seeds",
    ]  # fmt: skip
    table, findings = [], []

    def mean(rs, key):
        return float(np.mean([r["result"][key] for r in rs]))

    for key in sorted(groups, key=_order):
        model, positive, g = key
        rs = groups[key]
        base = groups.get((model, "classical", 0.0), [])
        no_comp = [r["result"]["kl_eval"][_gkey(g)] for r in base]
        table.append(
            [
                model, positive if g > 0 else "(Γ = 0: classical)", f"{g:g}",
                _mean_text([r["result"]["kl_model"] for r in rs]),
                _mean_text([r["result"]["kl_device"] for r in rs]),
                _mean_text(no_comp) if no_comp else "–",
                _mean_text([r["result"]["frozen_hidden"] for r in rs], 2),
                _mean_text([r["result"]["max_abs_c"] for r in rs], 1),
                _mean_text([r["result"]["max_abs_w"] for r in rs], 1),
                len(rs),
            ]
        )  # fmt: skip
        if g > 0 and no_comp:
            dev, ref = mean(rs, "kl_device"), float(np.mean(no_comp))
            verdict = "compensates (lower)" if dev < ref else "does not compensate (higher)"
            findings.append(
                f"{model}, {positive} positive phase, Γ = {g:g}: the device KL(data ‖ p_Γ) of the model "
                f"trained through p_Γ is {dev:.3f} nats, against {ref:.3f} for the classically trained model "
                f"run on the device: training through the device {verdict}. The classical model it leaves "
                f"has KL {mean(rs, 'kl_model'):.3f} (classically trained: {mean(base, 'kl_model'):.3f}); "
                f"{mean(rs, 'frozen_hidden'):.0%} of its hidden units are frozen."
            )
    parts = [common.markdown_table(header, table, fmt=str)]
    eval_g = sorted({float(k) for r in exact for k in r["result"]["kl_eval"]})
    for model in models:
        mheader = [f"{model}: positive, Γ_train \\ Γ_eval"] + [f"{g:g}" for g in eval_g]
        mrows = []
        for key in sorted((k for k in groups if k[0] == model), key=_order):
            rs = groups[key]
            label = f"{key[1]}, {key[2]:g}" if key[2] > 0 else "classical, 0"
            kls = [_mean_text([r["result"]["kl_eval"].get(_gkey(e), math.nan) for r in rs]) for e in eval_g]
            mrows.append([label, *kls])
        parts.append(common.markdown_table(mheader, mrows, fmt=str))
    cost = []
    for model in models:
        rs = [r for r in exact if r["cell"]["model"] == model]
        quantum = [r["result"]["seconds_exact_per_step"] for r in rs if r["cell"]["gamma"] > 0]
        eigh = [r["result"]["seconds_eigh"] for r in rs]
        first = rs[0]["result"]
        cost.append(
            f"{model} ({first['spins']} spins, {first['patterns']} patterns; the uniform distribution has KL "
            f"{first['kl_uniform']:.3f}): "
            + (f"{np.mean(quantum):.4f} s per exact negative phase at Γ > 0, " if quantum else "")
            + f"{max(eigh):.4f} s for one evaluation diagonalisation, {rs[0]['cell']['steps']} steps"
        )
    findings.append("Measured cost (one thread, shared machine): " + "; ".join(cost) + ".")
    return "\n\n".join(parts), findings


def mnist_table(rows: list[dict]) -> tuple[str, list[str]]:
    """The Markdown table of part 2 and findings lines."""
    mnist = [r for r in rows if r["cell"]["part"] == "mnist"]
    if not mnist:
        return "", []
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in mnist:
        groups.setdefault((r["cell"]["sampler"], r["cell"]["gamma"]), []).append(r)
    base = groups.get(("gibbs", 0.0))
    base_nll = float(np.mean([r["result"]["nll"] for r in base])) if base else None
    header = [
        "negative phase", "Γ", "Trotter M", "classical test NLL (AIS)", "std (seeds)", "seeds",
        "vs gibbs", "frozen hidden", "max \\|c\\|", "s / update",
    ]  # fmt: skip
    table = []
    for (sampler, g), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "gibbs", kv[0][1])):
        m, s = common.mean_std(r["result"]["nll"] for r in rs)
        vs = "reference" if sampler == "gibbs" else common.relative_change(m, base_nll, nats=True)
        table.append(
            [
                sampler, f"{g:g}", rs[0]["cell"]["trotter"] or "–", f"{m:.2f}", common.spread(s, len(rs)),
                len(rs), vs,
                _mean_text([r["result"]["frozen_hidden"] for r in rs], 2),
                _mean_text([r["result"]["max_abs_c"] for r in rs], 1),
                f"{np.mean([r['result']['seconds_per_update'] for r in rs]):.3f}",
            ]
        )  # fmt: skip
    table = [[f"{x:.2f}" if isinstance(x, float) else str(x) for x in row] for row in table]
    spu = {k: float(np.mean([r["result"]["seconds_per_update"] for r in rs])) for k, rs in groups.items()}
    findings = []
    gibbs_spu = spu.get(("gibbs", 0.0))
    q = [v for (s, _), v in spu.items() if s == "quantum"]
    trotter = next((r["cell"]["trotter"] for r in mnist if r["cell"]["sampler"] == "quantum"), None)
    if gibbs_spu and q:
        findings.append(
            f"Measured on MNIST (one thread, shared machine): {gibbs_spu:.3f} s per gibbs PCD-15 update and "
            f"{np.mean(q):.3f} s per quantum update (M = {trotter} at this size: "
            f"{np.mean(q) / gibbs_spu:.1f}x), 784 x {mnist[0]['cell']['train']['n_hidden']}."
        )
    updates = min(int(r["result"]["updates"]) for r in mnist)
    if updates < 1000:
        findings.append(
            f"These MNIST models had {updates} parameter updates (the full preset: 2,600): read the "
            "direction of the NLL change with Γ, not its size."
        )
    return common.markdown_table(header, table, fmt=str), findings


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    out_dir = Path(out_dir)
    exact_md, exact_findings = exact_tables(rows)
    mnist_md, mnist_findings = mnist_table(rows)
    _plot(rows, out_dir, preset)
    mnist_rows = [r for r in rows if r["cell"]["part"] == "mnist"]
    exact_models = sorted({r["cell"]["model"] for r in rows if r["cell"]["part"] == "exact"})
    data = []
    if exact_models:
        data.append(
            "part 1: bars and stripes ("
            + ", ".join(
                f"{m}: {2 ** parse_model(m)['rows'] + 2 ** parse_model(m)['cols'] - 2} patterns"
                for m in exact_models
            )
            + "), the data distribution uniform over the patterns"
        )
    if mnist_rows:
        data.append("part 2: " + common.data_description(mnist_rows))
    sections = [f"# {TITLE} [{preset}]", PROTOCOL.strip(), "**Data:** " + "; ".join(data).rstrip(".") + "."]
    if exact_md:
        sections += ["## Part 1: exact, bars and stripes", exact_md]
    if mnist_md:
        sections += ["## Part 2: MNIST through the quantum backend", mnist_md]
    findings = exact_findings + mnist_findings
    sections += ["**Findings**", "\n".join(f"- {line}" for line in findings)]
    sections.append(
        "Reading the tables: KL in nats; mean ± std over seeds where there are several. 'no compensation' "
        "is the Γ = 0-trained (classically trained) model run on the device at Γ_train, the row a trained-"
        "through-the-device model must beat. The MNIST NLL is that of the classical model p_0 the training "
        f"leaves behind. For comparison, noise-aware training recovers {THESIS_REDUCTION} % of the NLL "
        f"increase due to parameter noise (thesis §3.5, σ = 0.1). Full preset, estimated: {FULL_COST}."
    )
    (out_dir / f"{NAME}.md").write_text("\n\n".join(sections) + "\n")


def _plot(rows: list[dict], out_dir: Path, preset: str) -> None:
    fig, (ax1, ax2) = common.new_figure(10.0, 3.8, ncols=2)
    groups = _exact_groups(rows)
    markers = "os^v"
    styles = {("classical", "kl_model"): "-", ("classical", "kl_device"): "--",
              ("clamped", "kl_model"): (0, (1, 1)), ("clamped", "kl_device"): "-."}  # fmt: skip
    what = {"kl_model": "model KL(data‖p_0)", "kl_device": "device KL(data‖p_Γ)"}
    models = sorted({k[0] for k in groups}, key=lambda m: (model_spins(m), m))
    for i, model in enumerate(models):
        mk = markers[i % len(markers)]
        base = groups.get((model, "classical", 0.0), [])
        for positive in POSITIVE_PHASES:
            keys = sorted(k for k in groups if k[0] == model and k[1] == positive)
            if base and positive != "classical":
                keys = [(model, "classical", 0.0), *keys]  # every curve starts at the classical model
            if not keys or all(k[2] == 0 for k in keys) and positive != "classical":
                continue
            for quantity in ("kl_model", "kl_device"):
                pts = [common.mean_std(r["result"][quantity] for r in groups[k]) for k in keys]
                ax1.errorbar([k[2] for k in keys], [m for m, _ in pts], yerr=[sd for _, sd in pts], marker=mk,
                             linestyle=styles[(positive, quantity)], capsize=3, markersize=4,
                             label=f"{model}, {positive} +: {what[quantity]}")  # fmt: skip
        if base:
            gammas = sorted({k[2] for k in groups if k[0] == model})
            ref = [common.mean_std(r["result"]["kl_eval"][_gkey(g)] for r in base) for g in gammas]
            label = f"{model}: Γ=0-trained on the device"
            ax1.errorbar(gammas, [m for m, _ in ref], yerr=[sd for _, sd in ref], marker=mk, linestyle=":",
                         color="black", capsize=3, markersize=4, label=label)  # fmt: skip
        first = next(iter(groups[next(k for k in groups if k[0] == model)]))
        ax1.axhline(first["result"]["kl_uniform"], color="gray", linewidth=0.8, linestyle="-.")
    ax1.set_xlabel("Γ of the training negative phase (β = 1)")
    ax1.set_ylabel("KL (nats)")
    ax1.set_title("exact, bars and stripes (grey: uniform)", fontsize=8)
    if groups:
        ax1.legend(fontsize=5)
    mnist = [r for r in rows if r["cell"]["part"] == "mnist"]
    q = common.aggregate([r for r in mnist if r["cell"]["sampler"] == "quantum"], lambda c: c["gamma"])
    g = common.aggregate([r for r in mnist if r["cell"]["sampler"] == "gibbs"], lambda c: c["gamma"])
    if q:
        common.errorbar_plot(
            ax2,
            q,
            xlabel="Γ of the quantum negative phase",
            ylabel="classical test NLL (nats)",
            reference=(g[0][1], "gibbs (Γ = 0)") if g else None,
        )
    elif g:
        ax2.axhline(g[0][1], color="gray", linestyle="--", label="gibbs (Γ = 0)")
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no MNIST cells in this preset", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_title("MNIST, PCD-15", fontsize=8)
    common.save_figure(fig, out_dir, NAME, title=f"{TITLE} [{preset}]")
