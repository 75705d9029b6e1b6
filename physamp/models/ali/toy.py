"""The 25-Gaussian toy experiment of ALI (thesis §5.4.5, Fig. 5.8): the data, its metrics, its figure.

Data (spec ``ALI.md`` §5.3, the released code; the thesis does not state the parameters)
    q(x) = (1/25) Σ_k N(x; μ_k, σ² I) with μ_k on the grid {-4, -2, 0, 2, 4}², σ = 0.05 (:data:`STD`).
    Component k is row-major over (x, y): ``MEANS[k] = (GRID[k // 5], GRID[k % 5])``, so k = 0 is
    (-4, -4), k = 4 is (-4, 4), k = 22 is (4, 0) and k = 24 is (4, 4).

Protocol (thesis §5.4.5 as the spec, §5.1, gives it)
    - ALI and GAN are trained on 100,000 samples of q(x), 10 runs each with random Adam learning rate, β₁
      and init std (the ranges are not stated).
    - Mode coverage: draw 10,000 samples from each model's p(x), assign each to a mixture component by
      the responsibilities, count the components that got at least one sample (a dropped mode is one
      that got none). Reported: ALI 13.4 ± 5.8 (min 8, max 25), GAN 10.4 ± 9.2 (min 1, max 22).
    - The best-covering ALI and GAN are kept; the GAN gets an encoder by the learned inverse mapping and
      by post-hoc learned inference; a VAE with the same encoder/decoder is trained; each model
      reconstructs 10,000 held-out samples of q(x). The thesis compares these only qualitatively
      (Fig. 5.8: rows data, q(z), reconstructions, p(z), samples; one column per model).

Metrics. Thesis: only ``modes``. Ours (the issue asks for numbers per model): all the others.
    ``log_responsibilities(x)``
        log r_k(x) = log π_k + log N(x; μ_k, σ² I) − logsumexp_j(log π_j + log N(x; μ_j, σ² I)), in float64.
        Because all π_k and all covariances are equal, the terms −‖x‖²/(2σ²), log π_k and the Gaussian
        normaliser are common to every k and cancel in the normalisation; they are dropped *before* the
        logsumexp, leaving the logits (x·μ_k − ‖μ_k‖²/2)/σ². That is the same quantity, but linear in x,
        so a sample far from every mode (x = (1e4, 0), (50, 50), anything finite below ~1e300) still gets
        finite log responsibilities and a well-defined argmax.
    ``assign_modes(x)``
        argmax_k r_k(x). With equal weights and covariances this is the nearest mean (ties: lowest k).
    ``count_modes(x)`` [thesis]
        #{k : at least one sample is assigned to k}, out of 25. No threshold and no quality filter: far
        samples count, for the mode nearest to them.
    ``high_quality_fraction(x, n_std=3)`` [ours]
        fraction of samples with ‖x − μ_nearest‖ ≤ n_std·σ. For samples of q(x) itself it is the χ²₂
        probability 1 − exp(−n_std²/2) (0.98889 at 3σ; the grid spacing 2 = 40σ makes the other modes'
        contributions negligible); for uniform noise on [-5, 5]² it is 25·π·(3σ)²/100 ≈ 0.0177.
    ``modes_with_quality(x, n_std=3)`` [ours]
        #{k : at least one sample within n_std·σ of μ_k}.
    ``reconstruction_error(x, x_rec)`` [ours]
        (1/n) Σ_i ‖x_i − x_rec,i‖² (mean squared Euclidean distance, summed over the 2 coordinates).
    ``mode_agreement(x, x_rec)`` [ours]
        (1/n) Σ_i [assign(x_i) = assign(x_rec,i)].
    ``two_sample_statistic(a, b)`` [ours], for q(z) (encoded data) against p(z) (prior samples)
        The unbiased squared MMD with a Gaussian kernel k(u, v) = exp(−‖u − v‖² / (2h²)) (Gretton et al.,
        2012, Eq. 3):  MMD²_u = Σ_{i≠j} k(a_i, a_j)/(m(m−1)) + Σ_{i≠j} k(b_i, b_j)/(n(n−1))
        − 2 Σ_{i,j} k(a_i, b_j)/(mn). It can be slightly negative when the samples agree. The bandwidth h
        is, unless given, the median heuristic: the median of the pairwise Euclidean distances (i < j)
        of the pooled sample a ∪ b, on a seeded random subset of at most ``median_points`` (2,000)
        points when the pool is larger. Optionally a permutation p-value: the pooled sample is
        relabelled ``n_permutations`` times at random (same m, n, same h) and
        p = (1 + #{permuted MMD²_u ≥ observed}) / (1 + n_permutations).
        The (m+n)² kernel matrix is never stored: it is built in row blocks (float32 on the centred,
        h-scaled pool, summed in float64; an error on MMD² < 1e-8 against float64 in our checks), and all
        permutations are evaluated in the same pass (one (1+P, m+n) @ (m+n, block) product per block).
        On one CPU core, m = n = 5,000: ~0.4 s; with 100 permutations ~0.8 s.

    ``toy_metrics(...)`` collects the applicable ones under the keys ``modes``, ``high_quality``,
    ``modes_high_quality`` (from model samples), ``recon_mse``, ``recon_same_mode`` (from data and its
    reconstructions), ``qz_pz_mmd`` (and ``qz_pz_mmd_p`` if permutations are asked for).

Inputs: every ``x`` may be a torch tensor (any device, grad is ignored) or a numpy array / array-like of
shape (n, 2); results are Python numbers, or int64 tensors for per-sample assignments. Wrong shapes and
non-finite rows (a diverged generator gives NaN) raise ``ValueError`` naming the count; no metric drops
them silently (only :func:`plot_toy_panels` drops them, and says so in the panel).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "evaluate_toy_model",
    "GRID",
    "MEANS",
    "STD",
    "N_COMPONENTS",
    "grid_mixture",
    "log_responsibilities",
    "assign_modes",
    "count_modes",
    "high_quality_fraction",
    "modes_with_quality",
    "reconstruction_error",
    "mode_agreement",
    "MMDResult",
    "two_sample_statistic",
    "toy_metrics",
    "plot_toy_panels",
]

GRID: tuple[int, ...] = (-4, -2, 0, 2, 4)
MEANS: torch.Tensor = torch.tensor([[gx, gy] for gx in GRID for gy in GRID], dtype=torch.float32)
STD: float = 0.05
N_COMPONENTS: int = len(GRID) ** 2

_MEANS64 = MEANS.double()
_HALF_SQ_NORM = 0.5 * (_MEANS64**2).sum(1)  # |μ_k|² / 2


# --------------------------------------------------------------------------------------------- inputs
def _as_points(x, name: str = "x", dim: int | None = 2, allow_empty: bool = True) -> torch.Tensor:
    """``x`` as a float64 CPU tensor of shape (n, dim), checked: 2-D, right width, all finite."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu", torch.float64)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be a tensor or an array of numbers; got {type(x).__name__}") from e
        t = torch.from_numpy(arr)
    if t.dim() != 2 or (dim is not None and t.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}")
    if t.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; the metric needs at least one sample")
    bad = int((~torch.isfinite(t)).any(1).sum())
    if bad:
        raise ValueError(
            f"{name} has {bad} non-finite row(s) (NaN or inf) out of {t.shape[0]}; a diverged model? "
            "They are not dropped silently: filter them yourself if that is what you mean"
        )
    return t


def _same_length(x: torch.Tensor, y: torch.Tensor, names: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{names} must hold the same number of samples; got {x.shape[0]} and {y.shape[0]}")


# ----------------------------------------------------------------------------------------------- data
def grid_mixture(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of q(x): ``(x float32 (n, 2), component int64 (n,))``.

    Components are drawn i.i.d. uniformly (equal weights), then x = MEANS[k] + STD·ε, ε ~ N(0, I).
    Deterministic for a seed; uses its own ``torch.Generator`` and leaves the global RNG alone.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    n = int(n)
    g = torch.Generator().manual_seed(int(seed))
    comp = torch.randint(0, N_COMPONENTS, (n,), generator=g, dtype=torch.int64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = (_MEANS64[comp] + STD * eps).to(torch.float32)
    return x, comp


# ------------------------------------------------------------------------------------ responsibilities
def _logits(t: torch.Tensor) -> torch.Tensor:
    """(x·μ_k − |μ_k|²/2)/σ²: log π_k + log N(x; μ_k, σ²I) up to terms common to every k."""
    return (t @ _MEANS64.T - _HALF_SQ_NORM) / STD**2


def log_responsibilities(x) -> torch.Tensor:
    """log r_k(x), float64 tensor (n, 25); each row's logsumexp is 0. Finite for any finite x."""
    t = _as_points(x)
    logits = _logits(t)
    return logits - torch.logsumexp(logits, dim=1, keepdim=True)


def _assign(t: torch.Tensor) -> torch.Tensor:
    return _logits(t).argmax(1) if t.shape[0] else torch.zeros(0, dtype=torch.int64)


def assign_modes(x) -> torch.Tensor:
    """argmax_k r_k(x) as an int64 tensor (n,) (the nearest mean; the same as ``log_responsibilities``)."""
    return _assign(_as_points(x))


def count_modes(x) -> int:
    """The thesis's metric: the number of components (of 25) with at least one assigned sample."""
    return int(torch.unique(_assign(_as_points(x))).numel())


def _distance_to_nearest(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = _assign(t)
    return (t - _MEANS64[k]).norm(dim=1), k


def high_quality_fraction(x, n_std: float = 3.0) -> float:
    """Fraction of samples within ``n_std·STD`` (Euclidean) of their nearest mean."""
    d, _ = _distance_to_nearest(_as_points(x, allow_empty=False))
    return float((d <= n_std * STD).double().mean())


def modes_with_quality(x, n_std: float = 3.0) -> int:
    """The number of components with at least one sample within ``n_std·STD`` of their mean."""
    d, k = _distance_to_nearest(_as_points(x))
    return int(torch.unique(k[d <= n_std * STD]).numel())


def reconstruction_error(x, x_rec) -> float:
    """Mean over samples of the squared Euclidean distance ‖x_i − x_rec,i‖²."""
    t, r = _as_points(x, allow_empty=False), _as_points(x_rec, "x_rec", allow_empty=False)
    _same_length(t, r, "x and x_rec")
    return float(((t - r) ** 2).sum(1).mean())


def mode_agreement(x, x_rec) -> float:
    """Fraction of reconstructions assigned to the same mixture component as their original."""
    t, r = _as_points(x, allow_empty=False), _as_points(x_rec, "x_rec", allow_empty=False)
    _same_length(t, r, "x and x_rec")
    return float((_assign(t) == _assign(r)).double().mean())


# ------------------------------------------------------------------------------------- two-sample MMD
class MMDResult(NamedTuple):
    """Result of :func:`two_sample_statistic`."""

    mmd2: float  # the unbiased squared MMD (may be slightly negative)
    bandwidth: float  # the kernel bandwidth h used
    p_value: float | None  # permutation p-value; None without permutations


def _median_bandwidth(pool: torch.Tensor, max_points: int, g: torch.Generator) -> float:
    if pool.shape[0] > max_points:
        pool = pool[torch.randperm(pool.shape[0], generator=g)[:max_points]]
    d = torch.cdist(pool, pool)
    iu = torch.triu_indices(pool.shape[0], pool.shape[0], offset=1)
    h = float(d[iu[0], iu[1]].median())
    if not h > 0:
        raise ValueError("the median pairwise distance of the pooled sample is 0; give a bandwidth")
    return h


def two_sample_statistic(
    a,
    b,
    bandwidth: float | None = None,
    n_permutations: int = 0,
    seed: int = 0,
    median_points: int = 2000,
    block_entries: int = 2**22,
    dtype: torch.dtype = torch.float32,
) -> MMDResult:
    """Unbiased squared MMD between samples ``a (m, d)`` and ``b (n, d)`` with a Gaussian kernel.

    ``k(u, v) = exp(-|u - v|² / (2 h²))``; ``h = bandwidth``, or by default the median pairwise distance
    of the pooled sample (on a seeded subset of ``median_points`` points if larger). With
    ``n_permutations > 0`` also a permutation p-value, ``(1 + #{permuted ≥ observed}) / (1 + P)``, all
    permutations computed in one blocked pass over the kernel matrix (never stored whole). Deterministic
    for a seed. The kernel blocks are evaluated in ``dtype`` (float32 by default: about 2x faster than
    float64, with an error on MMD² below 1e-8 in our checks, far below its sampling noise) and summed
    in float64. See the module docstring for the exact formula.
    """
    ta, tb = _as_points(a, "a", dim=None), _as_points(b, "b", dim=None)
    if ta.shape[1] != tb.shape[1]:
        raise ValueError(f"a and b must have the same dimension; got {ta.shape[1]} and {tb.shape[1]}")
    m, n = ta.shape[0], tb.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side; got {m} and {n}")
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0; got {n_permutations}")
    g = torch.Generator().manual_seed(int(seed))
    pool = torch.cat([ta, tb])
    N = m + n
    if bandwidth is None:
        h = _median_bandwidth(pool, median_points, g)
    else:
        h = float(bandwidth)
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"bandwidth must be a positive number; got {bandwidth!r}")

    # Row 0: the observed labelling (the first m points are a); rows 1..P: random relabellings.
    labels = torch.zeros(1 + n_permutations, N, dtype=dtype)
    labels[0, :m] = 1.0
    for p in range(n_permutations):
        labels[p + 1, torch.randperm(N, generator=g)[:m]] = 1.0

    # Centred (MMD is translation invariant) and scaled by h, so that k = exp(-|u - v|²/2) on ``u``; this
    # keeps float32 accurate wherever the samples sit. log k = u·v - |u|²/2 - |v|²/2, clamped at 0.
    u = ((pool - pool.mean(0)) / h).to(dtype)
    half_sq = -0.5 * (u * u).sum(1)
    s_aa = torch.zeros(1 + n_permutations, dtype=torch.float64)  # Σ_{i,j∈A} k, diagonal included
    s_ab = torch.zeros_like(s_aa)
    total = 0.0
    rows = max(1, block_entries // N)
    for start in range(0, N, rows):
        stop = min(start + rows, N)
        k = (half_sq[start:stop, None] + half_sq[None, :]).addmm_(u[start:stop], u.T)
        k.clamp_(max=0.0).exp_()  # (rows, N) kernel block
        k_a = torch.mm(labels, k.T).double()  # (1+P, rows): Σ_{j∈A} k(j, i) for each block row i
        lab = labels[:, start:stop].double()
        s_aa += (lab * k_a).sum(1)
        s_ab += ((1.0 - lab) * k_a).sum(1)
        total += float(k.sum(1).double().sum())
    s_bb = total - s_aa - 2.0 * s_ab
    # The Gaussian kernel has k(u, u) = 1: subtract the m (resp. n) diagonal terms.
    mmd2 = (s_aa - m) / (m * (m - 1)) + (s_bb - n) / (n * (n - 1)) - 2.0 * s_ab / (m * n)
    observed = float(mmd2[0])
    p_value = None
    if n_permutations:
        p_value = float((1 + int((mmd2[1:] >= observed).sum())) / (1 + n_permutations))
    return MMDResult(observed, h, p_value)


# ------------------------------------------------------------------------------------------- summary
def toy_metrics(
    x_samples=None,
    x_data=None,
    x_rec=None,
    z_data=None,
    z_prior=None,
    n_std: float = 3.0,
    mmd_permutations: int = 0,
    seed: int = 0,
) -> dict[str, float | int]:
    """The applicable metrics as a dict of Python numbers.

    - from ``x_samples`` (samples of p(x)): ``modes``, ``high_quality``, ``modes_high_quality``;
    - from ``x_data`` and its reconstructions ``x_rec``: ``recon_mse``, ``recon_same_mode``;
    - from ``z_data`` (q(z): codes of data) and ``z_prior`` (samples of p(z)): ``qz_pz_mmd`` (unbiased
      MMD², median-heuristic bandwidth), plus ``qz_pz_mmd_p`` if ``mmd_permutations > 0``.

    Giving only one of a pair raises ``ValueError``.
    """
    out: dict[str, float | int] = {}
    if x_samples is not None:
        out["modes"] = count_modes(x_samples)
        out["high_quality"] = high_quality_fraction(x_samples, n_std)
        out["modes_high_quality"] = modes_with_quality(x_samples, n_std)
    if (x_data is None) != (x_rec is None):
        raise ValueError("give both x_data and x_rec (its reconstructions), or neither")
    if x_data is not None:
        out["recon_mse"] = reconstruction_error(x_data, x_rec)
        out["recon_same_mode"] = mode_agreement(x_data, x_rec)
    if (z_data is None) != (z_prior is None):
        raise ValueError("give both z_data (q(z)) and z_prior (p(z)), or neither")
    if z_data is not None:
        res = two_sample_statistic(z_data, z_prior, n_permutations=mmd_permutations, seed=seed)
        out["qz_pz_mmd"] = res.mmd2
        if res.p_value is not None:
            out["qz_pz_mmd_p"] = res.p_value
    return out


# -------------------------------------------------------------------------------------------- figure
_ROWS = (
    ("x", r"data $x \sim q(x)$", "x"),
    ("qz", r"latent codes $q(z)$", "z"),
    ("x_rec", "reconstructions", "x"),
    ("pz", r"prior $z \sim p(z)$", "z"),
    ("x_samples", r"samples from $p(x)$", "x"),
)


def _mode_colours(mode: np.ndarray) -> np.ndarray:
    """RGBA per point. Modes 0..24 by grid position (red along x, blue along y), so that neighbouring
    modes get neighbouring colours; other integer labels cycle through tab20."""
    mode = np.asarray(mode, dtype=np.int64)
    if mode.size and mode.min() >= 0 and mode.max() < N_COMPONENTS:
        i, j = np.divmod(mode, len(GRID))
        span = len(GRID) - 1
        return np.stack(
            [
                0.1 + 0.85 * i / span,
                0.55 - 0.35 * np.abs(i - j) / span,
                0.1 + 0.85 * j / span,
                np.ones_like(i, dtype=float),
            ],
            axis=1,
        )
    from matplotlib import colormaps

    return colormaps["tab20"](mode % 20)


def plot_toy_panels(
    panels: dict[str, dict],
    path: str | Path,
    x_lim: float = 6.0,
    z_lim: float = 4.0,
    marker_size: float = 1.0,
    panel_size: float = 2.4,
    dpi: int = 100,
) -> Path:
    """The Fig. 5.8 layout: one column per model (in dict order), five rows.

    Rows: data x ~ q(x), latent codes q(z), reconstructions, prior z ~ p(z), samples of p(x). Each value
    of ``panels`` is a dict with arrays (n, 2) under ``x``, ``qz``, ``x_rec``, ``pz``, ``x_samples`` and
    optionally ``mode`` (n,) ints colouring rows 1–3 (default: ``assign_modes(x)``); ``qz`` and
    ``x_rec`` must then be aligned with ``x``. A missing or ``None`` entry leaves its panel empty;
    non-finite points are dropped (with a note in the panel) so that a diverged model still plots.
    Axes are fixed to [-x_lim, x_lim]² (x space) and [-z_lim, z_lim]² (z space). Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("panels is empty; give at least one model")
    cols = list(panels)
    fig = Figure(figsize=(panel_size * len(cols), panel_size * len(_ROWS)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(_ROWS), len(cols), squeeze=False)
    for c, name in enumerate(cols):
        panel = panels[name]
        x = panel.get("x")
        mode = panel.get("mode")
        colours = None
        if mode is not None:
            mode = mode.detach().cpu().numpy() if isinstance(mode, torch.Tensor) else np.asarray(mode)
            colours = _mode_colours(mode.reshape(-1))
        elif x is not None:
            xt = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
            fin = np.isfinite(xt).all(1)
            colours = np.zeros((len(xt), 4))
            colours[~fin] = (0.5, 0.5, 0.5, 1.0)
            colours[fin] = _mode_colours(assign_modes(xt[fin]).numpy())
        for r, (key, title, space) in enumerate(_ROWS):
            ax = axes[r, c]
            lim = x_lim if space == "x" else z_lim
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ticks = [-4, 0, 4] if space == "x" else [-3, 0, 3]
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(labelsize=6, length=2, pad=1)
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
            pts = panel.get(key)
            if pts is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                continue
            t = pts.detach().cpu().numpy() if isinstance(pts, torch.Tensor) else np.asarray(pts)
            t = t.astype(np.float64)
            if t.ndim != 2 or t.shape[1] != 2:
                raise ValueError(f"panels[{name!r}][{key!r}] must have shape (n, 2); got {t.shape}")
            col: str | np.ndarray = "0.2"
            if key in ("x", "qz", "x_rec") and colours is not None:
                if len(colours) != len(t):
                    raise ValueError(
                        f"panels[{name!r}][{key!r}] has {len(t)} points but the mode colours {len(colours)}; "
                        "x, qz, x_rec and mode must be aligned"
                    )
                col = colours
            # A diverged model should still get its figure: drop non-finite points, and say so.
            ok = np.isfinite(t).all(1)
            if not ok.all():
                ax.text(
                    0.02, 0.02, f"{int((~ok).sum())} non-finite dropped", transform=ax.transAxes, fontsize=6
                )
                t = t[ok]
                col = col if isinstance(col, str) else col[ok]
            ax.scatter(t[:, 0], t[:, 1], s=marker_size, c=col, linewidths=0, rasterized=True)
    # Fixed margins in inches (tight_layout costs more than the drawing).
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.5 / w, right=1 - 0.1 / w, bottom=0.3 / h, top=1 - 0.3 / h, wspace=0.15, hspace=0.15
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


@torch.no_grad()
def evaluate_toy_model(
    decode,
    encode,
    x_held_out,
    *,
    seed: int = 0,
    mmd_permutations: int = 0,
    mmd_seed: int = 0,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """The toy metrics of one model and the points of its Fig. 5.8 column (for :func:`plot_toy_panels`).

    ``decode(z)`` gives x for ``z`` of shape ``(n, 2)``; ``encode(x, eps)`` gives one
    ``z ~ q(z | x)`` per point (None for a GAN). The ``n = len(x_held_out)`` prior draws and the
    encoder's ε come from a generator seeded by ``seed`` (first z, then ε). Samples: ``decode(z)``;
    codes and reconstructions: of the held-out points. Non-finite points (a diverged model) are
    counted (``nonfinite``) and left out of the metrics. Put the model in eval mode first.
    """
    x = _as_points(x_held_out, "x_held_out").to(torch.float32)
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    z_prior = torch.randn(n, 2, generator=g)
    eps = torch.randn(n, 2, generator=g)
    samples = decode(z_prior).float().cpu()
    points: dict[str, torch.Tensor] = {"x": x, "pz": z_prior, "x_samples": samples}
    ok = torch.isfinite(samples).all(1)
    out: dict = {}
    if ok.any():
        out.update(toy_metrics(samples[ok]))
    else:
        out.update(modes=0, high_quality=0.0, modes_high_quality=0)
    nonfinite = int((~ok).sum())
    if encode is not None:
        qz = encode(x, eps).float().cpu()
        x_rec = decode(qz).float().cpu()
        points.update(qz=qz, x_rec=x_rec)
        pair = torch.isfinite(qz).all(1) & torch.isfinite(x_rec).all(1)
        nonfinite += int((~pair).sum())
        if int(pair.sum()) >= 2:
            out.update(
                toy_metrics(
                    x_data=x[pair],
                    x_rec=x_rec[pair],
                    z_data=qz[pair],
                    z_prior=z_prior,
                    mmd_permutations=mmd_permutations,
                    seed=mmd_seed,
                )
            )
    out["nonfinite"] = nonfinite
    return out, points
