"""The L2-SVM semi-supervised protocol of the thesis's Table 5.1 (ALI spec §6.1), independent of any network.

The thesis (§5.4.3, following Radford et al., 2016): "A 10,000 example held-out validation set is
taken from the training set and is used for model selection. The SVM is trained on 1000 examples
taken at random from the remainder of the training set. The test error rate is measured for 100
different SVMs trained on different random 1000-example training sets, and the average error rate
is measured along with its standard deviation." The authors' script ([EXT]
``experiments/semi_supervised_svhn.py``) uses sklearn's ``LinearSVC`` (squared hinge, L2 penalty),
class-balanced label draws (100 per class), the last 10,000 training examples as validation set and
C chosen over ``exp(linspace(-20, 20, 50))`` by validation error.

:func:`svm_protocol` runs that protocol on any features (an encoder's, or synthetic ones). Its
choices, where the thesis is silent or where we depart from the authors' script:

* **Validation split.** ``val_split="random"`` (default): a seeded random permutation of the
  training set; its first ``n_val`` entries are the validation set, the rest is the *pool*.
  ``val_split="last"`` takes the last ``n_val`` examples, as the authors did (SVHN
  ``train[63257:73257]``); that is only sound if the training set is not ordered by class.
* **Label draws.** Every SVM is trained on ``n_labels`` examples drawn from the pool without
  replacement, exactly ``n_labels / K`` per class (:func:`balanced_label_draw`), as in the authors'
  script. Validation examples are never drawn.
* **Model selection, once.** C is chosen once and then fixed for all ``n_svms`` SVMs: for each C in
  ``c_grid`` the validation error is averaged over ``n_select`` (default 5) label draws of their own
  (not the evaluation draws) and the C with the lowest mean validation error wins; ties go to the
  smallest C (the most regularised, also the fastest to fit). The grid is scanned from the smallest
  C up and the scan stops once ``patience`` (3) C values in a row have not improved on the best: the
  larger C values only fit the 1,000 labels harder, and real features at large C are where liblinear
  runs to ``max_iter`` (minutes per fit on MNIST encoder features). ``val_curve`` holds the means
  of the C values scanned.
* **Default C grid.** ``DEFAULT_C_GRID = np.logspace(-6, 1, 15)`` (half-decade steps). With
  standardised features the useful C scales like ``1 / D``, so the grid reaches down to 1e-6 for
  D ~ 5,000; when ``D > n_labels`` every draw is linearly separable and beyond some C the solution
  (the hard-margin SVM) no longer changes, so larger C values only repeat it. The authors' grid is
  :data:`AUTHORS_C_GRID` (``c_grid="authors"``); fits that hit ``max_iter`` at any C are counted in
  ``not_converged_selection``.
* **Test error.** Each of the ``n_svms`` SVMs is evaluated on the whole test set; the result
  reports the mean and the **sample** standard deviation (``ddof=1``) of the per-SVM test errors,
  in percent (``error_std`` is NaN when ``n_svms == 1``).
* **Standardisation.** With ``standardize=True`` every feature is centred and scaled by the mean
  and (population) standard deviation over the pool (training set minus validation set: unlabelled
  data, no label is used); zero-variance features are only centred. The same affine map is applied
  to the label draws, the validation set and the test set (for the latter two it is folded into the
  SVM weights, so no standardised copy of the large arrays is ever made).
* **Classifier.** ``LinearSVC(C, loss="squared_hinge", penalty="l2", dual=D > n_labels,
  max_iter=max_iter, tol=1e-4, random_state=<from the seed>)``, one-vs-rest, intercept on (as the
  authors). ``ConvergenceWarning`` is silenced; the fits that raised it are counted in
  ``not_converged`` (evaluation SVMs) and ``not_converged_selection`` (model selection fits).
* **Gram reduction (exact, for speed).** When ``D > n_labels`` (``gram=None``, auto) each fit runs
  liblinear on ``n_labels``-dimensional coordinates ``Z`` with ``Z Zᵀ = X Xᵀ`` (Cholesky factor of the
  Gram matrix of the standardised draw; eigendecomposition if it is singular) instead of the
  D-dimensional draw ``X``, and maps the weights back with ``w = Xᵀ L⁻ᵀ v``. liblinear's dual
  coordinate descent touches the data only through inner products ``x_i·x_j`` (the intercept is a
  separate constant feature), so the iterates, the stopping point and the solution are the same up
  to rounding (relative weight differences ~1e-14 measured), while a fit is ~10x faster at D = 5,376
  and the Gram matrix is shared by all C values of a selection draw. ``gram=False`` fits on ``X``.
* **Seeds.** Every random choice comes from ``numpy.random.default_rng`` seeded by
  :func:`physamp.seeding.derive_seed`: ``(seed, "svm-val-split")`` for the split,
  ``(seed, "svm-select", i)`` for selection draw ``i`` and ``(seed, "svm-eval", i)`` for evaluation SVM
  ``i`` (its label draw, then liblinear's ``random_state``). A result is reproducible for a seed, and
  the first ``k`` errors of a run with ``n_svms=100`` are those of a run with ``n_svms=k``.

**Cost.** Measured on the 2-core development machine (OpenBLAS) with random float32 features of dim
5,376, a training set of 23,000 (``n_val=10,000``, pool 13,000), a test set of 26,032 (SVHN's size),
``n_labels=1000``, ``n_svms=100`` and the default grid (15 C values x 5 selection draws, i.e. 175
fits): **113 s wall (91 s CPU)**, and 101 s wall (74 s CPU) with ``blas_threads=1``, both while other
jobs kept the machine's load at ~5; the same result (90.02 ± 0.19 %, chance) either way. Memory
beyond the inputs: ~0.6 GB (the validation rows are copied once; the test set is scored in chunks,
all 100 SVMs in one pass). Without the Gram reduction (``gram=False``) a fit takes ~2-2.7 s instead
of ~0.2-0.3 s, i.e. ~6 min for the same run. The authors' 50-value grid makes 250 selection fits
instead of 75 (liblinear converged at every C up to e^20 on a 1000 x 5,376 test draw, in about the
time of a C = 1 fit).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from physamp.seeding import check_seed, derive_seed

__all__ = [
    "SVMResult",
    "svm_protocol",
    "balanced_label_draw",
    "split_validation",
    "feature_table",
    "TABLE_5_1",
    "ALI_NO_FEATURE_MATCHING_ICLR",
    "DEFAULT_C_GRID",
    "AUTHORS_C_GRID",
]

#: Default C grid of :func:`svm_protocol`: 1e-6 ... 10 in half-decade steps (15 values).
DEFAULT_C_GRID = np.logspace(-6, 1, 15)

#: The authors' C grid ([EXT] ``experiments/semi_supervised_svhn.py``): ``exp(linspace(-20, 20, 50))``.
AUTHORS_C_GRID = np.exp(np.linspace(-20, 20, 50))

#: Table 5.1 of the thesis, "SVHN test set misclassification rate" (L1180-1190), exactly as printed
#: (test error in percent; the bold of the last row dropped).
TABLE_5_1: dict[str, str] = {
    "VAE (M1 + M2) (Kingma et al., 2014)": "36.02",
    "SWWAE with dropout (Zhao et al., 2016)": "23.56",
    "DCGAN + L2-SVM (Radford et al., 2016)": "22.18",
    "SDGM (Maaløe et al., 2016)": "16.61",
    "GAN (feature matching) (Salimans et al., 2016)": "8.11 ± 1.3",
    "ALI (ours, L2-SVM)": "19.14 ± 0.50",
    "ALI (ours, no feature matching)": "7.3",
}

#: The ICLR camera-ready value of the last row of Table 5.1 ([EXT], commit ``e2cd7a8``);
#: the thesis prints 7.3.
ALI_NO_FEATURE_MATCHING_ICLR = "7.42 ± 0.65"

_CHUNK_ROWS = 2048  # rows of a feature chunk (statistics, finiteness checks, predictions)
_CONTROLLER = None  # threadpoolctl controller, made on first use (after numpy/scipy/sklearn are loaded)


def _blas_threads(limit: int | None):
    """A context limiting the BLAS/LAPACK thread pools to ``limit`` threads (``None``: unchanged)."""
    global _CONTROLLER
    if limit is None:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS before the controller looks for libraries)
        import sklearn.svm  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=limit, user_api="blas")


# --------------------------------------------------------------------------------------------- result


@dataclass
class SVMResult:
    """Outcome of :func:`svm_protocol`; errors are test misclassification rates in percent."""

    error_mean: float
    error_std: float  # sample std (ddof=1) over the n_svms SVMs; NaN if n_svms == 1
    errors: list[float]
    c: float
    val_error: float  # mean validation error (%) over the selection draws at the chosen C
    val_curve: list[tuple[float, float]]  # (C, mean validation error %) for every C of the grid
    n_labels: int
    n_val: int
    n_svms: int
    feature_dim: int
    not_converged: int  # evaluation fits that raised ConvergenceWarning
    not_converged_selection: int = 0  # model-selection fits that raised ConvergenceWarning
    n_select: int = 0
    n_classes: int = 0
    seed: int = 0
    val_split: str = "random"
    standardize: bool = True
    gram: bool = False
    elapsed_s: float = 0.0
    val_indices: np.ndarray | None = field(default=None, repr=False)  # into the training set
    train_indices: np.ndarray | None = field(default=None, repr=False)  # (n_svms, n_labels), into training
    select_indices: np.ndarray | None = field(default=None, repr=False)  # (n_select, n_labels) draws

    def format(self, digits: int = 2) -> str:
        """``"19.14 ± 0.50"``: mean ± sample std of the test error (%); the mean alone if n_svms == 1."""
        if not math.isfinite(self.error_std):
            return f"{self.error_mean:.{digits}f}"
        return f"{self.error_mean:.{digits}f} ± {self.error_std:.{digits}f}"

    def as_row(self, name: str, thesis: str | None = None, digits: int = 2) -> str:
        """One Markdown row of :func:`feature_table`: model | feature dim | C | test error | thesis."""
        cells = [
            _md_escape(name),
            str(self.feature_dim),
            f"{self.c:.3g}",
            f"{self.format(digits)} (n={self.n_svms})",
            _md_escape(thesis) if thesis else "—",
        ]
        return "| " + " | ".join(cells) + " |"

    def __str__(self) -> str:
        return (
            f"test error {self.format()} % over {self.n_svms} L2-SVMs ({self.n_labels} labels, "
            f"C={self.c:.3g}, val error {self.val_error:.2f} %, D={self.feature_dim}, "
            f"not converged {self.not_converged}/{self.n_svms})"
        )


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def feature_table(
    results: Mapping[str, SVMResult],
    thesis: Mapping[str, str] | None = None,
    *,
    thesis_only_rows: bool = False,
    digits: int = 2,
) -> str:
    """A Markdown table of ``results`` (name -> :class:`SVMResult`) next to the thesis's values.

    Columns: model | feature dim | C | test error % (mean ± std over n SVMs) | thesis value. ``thesis``
    maps names to printed values (default :data:`TABLE_5_1`); a name missing from it gets "—". With
    ``thesis_only_rows`` the thesis rows without a result are appended with "—" in our columns.
    """
    if thesis is None:
        thesis = TABLE_5_1
    lines = [
        "| Model | Feature dim | C | Test error % (mean ± std, n SVMs) | Thesis |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        if not isinstance(result, SVMResult):
            raise TypeError(f"results[{name!r}] is a {type(result).__name__}, not an SVMResult")
        lines.append(result.as_row(name, thesis.get(name), digits=digits))
    if thesis_only_rows:
        for name, value in thesis.items():
            if name not in results:
                lines.append(f"| {_md_escape(name)} | — | — | — | {_md_escape(value)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- the draws


def split_validation(n: int, n_val: int, rng: np.random.Generator | None = None, how: str = "random"):
    """``(pool_indices, val_indices)`` of a training set of ``n``: ``n_val`` held out for validation.

    ``how="random"``: the first ``n_val`` entries of ``rng.permutation(n)`` (both outputs sorted);
    ``how="last"``: the last ``n_val`` examples, as the authors did.
    """
    if how not in ("random", "last"):
        raise ValueError(f"val_split must be 'random' or 'last', got {how!r}")
    if not 0 <= n_val < n:
        raise ValueError(f"n_val={n_val} must be in [0, N) for a training set of N={n} examples")
    if how == "last":
        return np.arange(n - n_val), np.arange(n - n_val, n)
    if rng is None:
        raise ValueError("val_split='random' needs an rng")
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def balanced_label_draw(
    labels,
    n_labels: int,
    rng: np.random.Generator,
    *,
    pool=None,
    classes=None,
) -> np.ndarray:
    """Indices of ``n_labels`` examples, exactly ``n_labels / K`` of each of the ``K`` classes.

    Drawn uniformly without replacement from ``pool`` (indices into ``labels``; default: all of them).
    ``classes`` defaults to the distinct values of ``labels``. Returns the sorted indices into
    ``labels``. Raises ``ValueError`` if ``K`` does not divide ``n_labels`` or a class has too few
    examples in the pool.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    pool = np.arange(len(labels)) if pool is None else np.asarray(pool, dtype=np.int64)
    per_class = _per_class(n_labels, len(classes))
    pool_labels = labels[pool]
    picks = []
    for k in classes:
        members = pool[pool_labels == k]
        if len(members) < per_class:
            raise ValueError(_too_few_message(n_labels, per_class, len(classes), k, len(members)))
        picks.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def _per_class(n_labels: int, n_classes: int) -> int:
    if isinstance(n_labels, bool) or not isinstance(n_labels, (int, np.integer)) or n_labels <= 0:
        raise ValueError(f"n_labels must be a positive int, got {n_labels!r}")
    if n_classes < 2:
        raise ValueError(f"the labels need at least 2 classes, got {n_classes}")
    if n_labels % n_classes:
        raise ValueError(
            f"n_labels={n_labels} is not a multiple of the number of classes K={n_classes}: "
            "a class-balanced draw needs n_labels / K examples of each class"
        )
    return int(n_labels) // n_classes


def _too_few_message(n_labels, per_class, n_classes, k, have) -> str:
    k = k.item() if isinstance(k, np.generic) else k
    return (
        f"n_labels={n_labels} needs {per_class} examples of each of {n_classes} classes in the pool; "
        f"class {k} has {have}"
    )


# ------------------------------------------------------------------------------------------- inputs


def _as_array(x, name: str) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_features(x, name: str) -> np.ndarray:
    x = _as_array(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        ok = np.isfinite(x[start : start + _CHUNK_ROWS]).all(axis=1)
        if not ok.all():
            row = start + int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{name} contains non-finite values (NaN or inf), first in row {row}")
    return x


def _check_labels(y, name: str, n: int, features_name: str) -> np.ndarray:
    y = _as_array(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} entries but {features_name} has {n} rows")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    return y


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_c_grid(c_grid) -> np.ndarray:
    if c_grid is None:
        return DEFAULT_C_GRID.copy()
    if isinstance(c_grid, str):
        if c_grid == "authors":
            return AUTHORS_C_GRID.copy()
        raise ValueError(f"c_grid must be a sequence of positive floats or 'authors', got {c_grid!r}")
    grid = np.atleast_1d(np.asarray(c_grid, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"c_grid must be a non-empty 1-D sequence, got shape {grid.shape}")
    if not (np.isfinite(grid).all() and (grid > 0).all()):
        raise ValueError(f"c_grid values must be positive and finite, got {grid.tolist()}")
    return grid


# ---------------------------------------------------------------------------------------- numerics


def _pool_stats(x: np.ndarray, pool: np.ndarray, standardize: bool):
    """Per-feature mean and scale over the pool (scale 1 where the variance is 0); identity if off."""
    d = x.shape[1]
    if not standardize:
        return np.zeros(d), np.ones(d)
    total = np.zeros(d)
    for start in range(0, len(pool), _CHUNK_ROWS):
        total += x[pool[start : start + _CHUNK_ROWS]].sum(axis=0, dtype=np.float64)
    mean = total / len(pool)
    sq = np.zeros(d)
    for start in range(0, len(pool), _CHUNK_ROWS):
        chunk = x[pool[start : start + _CHUNK_ROWS]].astype(np.float64) - mean
        sq += np.einsum("ij,ij->j", chunk, chunk)
    std = np.sqrt(sq / len(pool))
    # a constant feature has std 0, or ~1e-16 |mean| from rounding: only centre it
    scale = np.where((std > 0) & (std > 1e-10 * np.abs(mean)), std, 1.0)
    return mean, scale


class _Reduced:
    """Coordinates ``Z`` (n, r) with ``Z Zᵀ = X Xᵀ`` and the map of their weights back to feature space."""

    def __init__(self, xs: np.ndarray):
        self.xs = xs
        g = xs @ xs.T
        self.chol = None
        try:
            with _blas_threads(1):  # a 1000 x 1000 factorisation gains nothing from threads, and
                chol = np.linalg.cholesky(g)  # can lose 10x to spinning threads on a busy machine
            diag = np.diag(chol)
            if diag.min() > 1e-6 * math.sqrt(max(float(np.diag(g).max()), 1e-300)):
                self.chol = chol
        except np.linalg.LinAlgError:
            pass
        if self.chol is not None:
            self.z = self.chol
        else:
            with _blas_threads(1):
                lam, u = np.linalg.eigh(g)
            keep = lam > 1e-10 * max(float(lam.max()), 1e-300)
            self.u, self.root = u[:, keep], np.sqrt(lam[keep])
            self.z = self.u * self.root

    def weights(self, v: np.ndarray) -> np.ndarray:
        """Feature-space weights (K, D) of coordinate-space weights ``v`` (K, r)."""
        if self.chol is not None:
            from scipy.linalg import solve_triangular

            with _blas_threads(1):
                a = solve_triangular(self.chol, v.T, lower=True, trans="T")  # L⁻ᵀ vᵀ, (n, K)
        else:
            a = self.u @ (v / self.root).T
        return (self.xs.T @ a).T


def _fit(x_train, y_train, c, *, dual, max_iter, random_state, reduced: _Reduced | None):
    """Fit one LinearSVC; returns (coef (K', D), intercept (K',), classes, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    svm = LinearSVC(
        C=float(c),
        loss="squared_hinge",
        penalty="l2",
        dual=True if reduced is not None else dual,
        max_iter=max_iter,
        tol=1e-4,
        random_state=random_state,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(reduced.z if reduced is not None else x_train, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # re-emit anything that is not a convergence warning
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    coef = svm.coef_ if reduced is None else reduced.weights(svm.coef_)
    return coef, svm.intercept_.copy(), svm.classes_, converged


def _raw_model(coef, intercept, classes, mean, scale):
    """(W (D, K), b (K,)) acting on raw features: scores = x W + b, with one column per class.

    Folds the standardisation in; expands a binary decision function to two columns.
    """
    w = (coef / scale).T  # (D, K')
    b = intercept - mean @ w
    if len(classes) == 2:  # LinearSVC returns one decision function for two classes
        w = np.stack([-w[:, 0], w[:, 0]], axis=1)
        b = np.array([-b[0], b[0]])
    return w, b


def _errors(x, y, models, class_index) -> list[float]:
    """Misclassification rate (%) on (x, y) of every (W, b) in ``models``, in one pass over ``x``."""
    if not models:
        return []
    k = models[0][0].shape[1]
    w_all = np.concatenate([w for w, _ in models], axis=1)
    b_all = np.concatenate([b for _, b in models])
    wrong = np.zeros(len(models), dtype=np.int64)
    for start in range(0, len(x), _CHUNK_ROWS):
        chunk = x[start : start + _CHUNK_ROWS]
        scores = (chunk.astype(np.float64, copy=False) @ w_all + b_all).reshape(len(chunk), len(models), k)
        pred = scores.argmax(axis=2)  # class positions
        wrong += (pred != class_index[start : start + _CHUNK_ROWS, None]).sum(axis=0)
    return [100.0 * float(n) / len(x) for n in wrong]


# ---------------------------------------------------------------------------------------- protocol


def svm_protocol(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    n_labels: int = 1000,
    n_val: int = 10000,
    n_svms: int = 100,
    c_grid=None,
    seed: int = 0,
    standardize: bool = True,
    progress: bool = False,
    max_iter: int = 10000,
    n_select: int = 5,
    val_split: str = "random",
    gram: bool | None = None,
    blas_threads: int | None = None,
    patience: int | None = 3,
) -> SVMResult:
    """The L2-SVM protocol of Table 5.1 on fixed features; see the module docstring for every choice.

    Args:
        train_features, train_labels: (N, D) real features and (N,) integer labels (numpy or torch),
            the training set: the validation set and the label pool come from it.
        test_features, test_labels: (M, D) and (M,), the test set; its classes must occur in training.
        n_labels: labelled examples per SVM, ``n_labels / K`` of each of the K classes.
        n_val: validation examples held out of the training set (``0 <= n_val < N``; 0 only with a
            single C, when there is nothing to select).
        n_svms: SVMs (independent label draws) whose test errors are averaged.
        c_grid: C values to select from; default :data:`DEFAULT_C_GRID`, ``"authors"`` for
            :data:`AUTHORS_C_GRID`.
        seed: the run's seed (int); see "Seeds" in the module docstring.
        standardize: standardise features with the pool's mean/std.
        progress: show a tqdm progress bar over the fits.
        max_iter: liblinear's iteration limit per fit.
        n_select: label draws averaged for the validation error of each C.
        val_split: ``"random"`` (seeded permutation) or ``"last"`` (the authors' choice).
        gram: fit in the exact Gram-reduced coordinates; ``None``: when ``D > n_labels``.
        blas_threads: limit numpy/scipy's BLAS thread pools to this many threads for the run
            (``None``: leave them as they are). 1 is faster on a machine whose cores are busy.
        patience: the C scan (smallest first) stops after this many C values in a row that do not
            improve on the best mean validation error (None: every C of the grid).

    Returns:
        An :class:`SVMResult` (test errors in percent).
    """
    if blas_threads is not None:
        blas_threads = _check_int(blas_threads, "blas_threads", 1)
    with _blas_threads(blas_threads):
        return _svm_protocol(
            train_features,
            train_labels,
            test_features,
            test_labels,
            n_labels=n_labels,
            n_val=n_val,
            n_svms=n_svms,
            c_grid=c_grid,
            seed=seed,
            standardize=standardize,
            progress=progress,
            max_iter=max_iter,
            n_select=n_select,
            val_split=val_split,
            gram=gram,
            patience=patience,
        )


def _svm_protocol(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    n_labels,
    n_val,
    n_svms,
    c_grid,
    seed,
    standardize,
    progress,
    max_iter,
    n_select,
    val_split,
    gram,
    patience,
) -> SVMResult:
    t0 = time.perf_counter()
    seed = check_seed(seed)
    x_train = _check_features(train_features, "train_features")
    x_test = _check_features(test_features, "test_features")
    n, d = x_train.shape
    if x_test.shape[1] != d:
        raise ValueError(
            f"test_features has {x_test.shape[1]} features per example but train_features has {d}"
        )
    y_train = _check_labels(train_labels, "train_labels", n, "train_features")
    y_test = _check_labels(test_labels, "test_labels", len(x_test), "test_features")
    n_svms = _check_int(n_svms, "n_svms", 1)
    n_select = _check_int(n_select, "n_select", 1)
    max_iter = _check_int(max_iter, "max_iter", 1)
    n_val = _check_int(n_val, "n_val", 0)
    if n_val >= n:
        raise ValueError(f"n_val={n_val} must be smaller than the number of training examples N={n}")
    grid = np.sort(_check_c_grid(c_grid))  # scanned from the smallest C up
    if patience is not None:
        patience = _check_int(patience, "patience", 1)
    if n_val == 0 and len(grid) > 1:
        raise ValueError(f"choosing C among {len(grid)} values needs a validation set (n_val > 0)")
    classes = np.unique(y_train)
    per_class = _per_class(n_labels, len(classes))
    unknown = np.setdiff1d(np.unique(y_test), classes)
    if unknown.size:
        raise ValueError(f"test_labels has classes absent from train_labels: {unknown.tolist()}")
    use_gram = d > n_labels if gram is None else bool(gram)
    dual = d > n_labels

    split_rng = np.random.default_rng(derive_seed(seed, "svm-val-split"))
    pool, val = split_validation(n, n_val, split_rng, val_split)
    pool_labels = y_train[pool]
    for k in classes:
        have = int(np.count_nonzero(pool_labels == k))
        if have < per_class:
            raise ValueError(
                _too_few_message(n_labels, per_class, len(classes), k, have)
                + f" (the pool is the {len(pool)} training examples outside the validation set)"
            )
    mean, scale = _pool_stats(x_train, pool, standardize)
    x_val = x_train[val]
    val_index = np.searchsorted(classes, y_train[val])
    test_index = np.searchsorted(classes, y_test)

    from tqdm.auto import tqdm

    bar = tqdm(total=(n_select * len(grid) if n_val else 0) + n_svms, disable=not progress, desc="L2-SVM")

    def prepared(rng):
        idx = balanced_label_draw(y_train, n_labels, rng, pool=pool, classes=classes)
        xs = (x_train[idx].astype(np.float64) - mean) / scale
        return idx, xs, (_Reduced(xs) if use_gram else None)

    def fit(xs, ys, reduced, c, rng):
        random_state = int(rng.integers(2**31 - 1))
        coef, intercept, cls, ok = _fit(
            xs, ys, c, dual=dual, max_iter=max_iter, random_state=random_state, reduced=reduced
        )
        bar.update()
        return _raw_model(coef, intercept, cls, mean, scale), ok

    # Model selection: the mean validation error of each C over n_select draws of their own, C from the
    # smallest up, until `patience` C values in a row have not improved on the best (larger C only fits
    # the labels harder, and is where liblinear takes longest).
    not_conv_sel = 0
    select_idx = []
    if n_val:
        draws = []
        for i in range(n_select):
            rng = np.random.default_rng(derive_seed(seed, "svm-select", i))
            idx, xs, reduced = prepared(rng)
            select_idx.append(idx)
            draws.append((idx, xs, reduced, rng))
        val_mean, since_best = [], 0
        for c in grid:
            models = []
            for idx, xs, reduced, rng in draws:
                model, ok = fit(xs, y_train[idx], reduced, c, rng)
                models.append(model)
                not_conv_sel += not ok
            val_mean.append(float(np.mean(_errors(x_val, y_train[val], models, val_index))))
            since_best = 0 if val_mean[-1] < min(val_mean[:-1], default=np.inf) else since_best + 1
            if patience is not None and since_best >= patience:
                break
        val_errors = np.asarray(val_mean)
        scanned = grid[: len(val_errors)]
        tied = np.flatnonzero(val_errors == val_errors.min())
        best = int(tied[np.argmin(scanned[tied])])  # ties: the smallest C
        val_curve = [(float(c), float(e)) for c, e in zip(scanned, val_errors, strict=True)]
        c_best, val_error = float(scanned[best]), float(val_errors[best])
    else:
        val_curve, c_best, val_error = [], float(grid[0]), float("nan")

    # Evaluation: n_svms SVMs at the chosen C, each on its own draw, all scored in one pass over the test set.
    not_conv = 0
    train_idx, models = [], []
    for i in range(n_svms):
        rng = np.random.default_rng(derive_seed(seed, "svm-eval", i))
        idx, xs, reduced = prepared(rng)
        train_idx.append(idx)
        model, ok = fit(xs, y_train[idx], reduced, c_best, rng)
        models.append(model)
        not_conv += not ok
    bar.close()
    errors = _errors(x_test, y_test, models, test_index)

    return SVMResult(
        error_mean=float(np.mean(errors)),
        error_std=float(np.std(errors, ddof=1)) if n_svms > 1 else float("nan"),
        errors=errors,
        c=c_best,
        val_error=val_error,
        val_curve=val_curve,
        n_labels=int(n_labels),
        n_val=n_val,
        n_svms=n_svms,
        feature_dim=d,
        not_converged=not_conv,
        not_converged_selection=not_conv_sel,
        n_select=n_select if n_val else 0,
        n_classes=len(classes),
        seed=seed,
        val_split=val_split,
        standardize=bool(standardize),
        gram=use_gram,
        elapsed_s=time.perf_counter() - t0,
        val_indices=val,
        train_indices=np.stack(train_idx),
        select_indices=np.stack(select_idx) if select_idx else np.zeros((0, n_labels), dtype=np.int64),
    )
