"""The L2-SVM protocol of Table 5.1 (physamp.models.ali.semi_supervised) on synthetic features."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from physamp.models.ali.semi_supervised import (
    AUTHORS_C_GRID,
    DEFAULT_C_GRID,
    TABLE_5_1,
    SVMResult,
    balanced_label_draw,
    feature_table,
    split_validation,
    svm_protocol,
)

K = 10
SMALL = dict(n_labels=100, n_val=300, n_svms=4, n_select=2, c_grid=[1e-3, 1e-2, 1e-1, 1.0])


def blobs(n, dim=20, seed=0, sep=3.0, offset=0):
    """Gaussian blobs: K well separated class means (fixed by ``seed``) plus unit noise."""
    means = np.random.default_rng(seed).standard_normal((K, dim)) * sep
    rng = np.random.default_rng(seed + 1000 + offset)
    y = rng.integers(0, K, n)
    return means[y] + rng.standard_normal((n, dim)), y


@pytest.fixture(scope="module")
def blob_data():
    xtr, ytr = blobs(2000)
    xte, yte = blobs(800, offset=1)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="module")
def blob_result(blob_data):
    return svm_protocol(*blob_data, **SMALL, seed=3)


# ------------------------------------------------------------------------------------------ accuracy


def test_blobs_are_learned(blob_result):
    r = blob_result
    assert isinstance(r, SVMResult)
    assert r.error_mean < 5.0
    assert r.val_error < 5.0
    assert len(r.errors) == r.n_svms == 4
    assert r.feature_dim == 20 and r.n_labels == 100 and r.n_val == 300 and r.n_classes == K
    assert r.c in SMALL["c_grid"]
    assert [c for c, _ in r.val_curve] == SMALL["c_grid"]
    assert dict(r.val_curve)[r.c] == pytest.approx(r.val_error)
    assert r.val_error == min(e for _, e in r.val_curve)
    assert r.error_mean == pytest.approx(np.mean(r.errors))
    assert r.error_std == pytest.approx(np.std(r.errors, ddof=1))
    assert r.not_converged == 0


def test_pure_noise_is_at_chance():
    rng = np.random.default_rng(5)
    xtr, xte = rng.standard_normal((1500, 30)), rng.standard_normal((3000, 30))
    ytr, yte = np.tile(np.arange(K), 150), np.tile(np.arange(K), 300)
    r = svm_protocol(xtr, ytr, xte, yte, **SMALL, seed=0)
    # labels independent of the features and balanced: the expected error is exactly 90 %;
    # the mean of 4 SVMs on 3000 test points has a std well under 1 %
    assert abs(r.error_mean - 90.0) < 4.0
    assert all(80.0 < e < 100.0 for e in r.errors)


def test_gram_reduction_is_exact():
    """D > n_labels: the Gram-reduced fit gives the same classifiers as the plain LinearSVC fit."""
    rng = np.random.default_rng(2)
    xtr, ytr = blobs(1200, dim=20, sep=1.0)
    xte, yte = blobs(600, dim=20, sep=1.0, offset=1)
    xtr = np.hstack([xtr, rng.standard_normal((1200, 180))])
    xte = np.hstack([xte, rng.standard_normal((600, 180))])
    kw = dict(SMALL, n_svms=2, c_grid=[1e-3, 1e-1])
    fast = svm_protocol(xtr, ytr, xte, yte, **kw, gram=True)
    slow = svm_protocol(xtr, ytr, xte, yte, **kw, gram=False)
    assert fast.gram and not slow.gram
    one_point = 100.0 / len(yte)
    assert np.allclose(fast.errors, slow.errors, atol=one_point + 1e-9)
    assert fast.c == slow.c
    assert 5.0 < fast.error_mean < 60.0  # a non-trivial problem, so the comparison means something


def test_gram_reduction_handles_duplicate_rows():
    """A singular Gram matrix (repeated examples) falls back to the eigendecomposition."""
    xtr, ytr = blobs(400, dim=200, sep=0.5)
    xtr[1::2], ytr[1::2] = xtr[::2], ytr[::2]  # every example twice
    xte, yte = blobs(300, dim=200, sep=0.5, offset=1)
    kw = dict(n_labels=100, n_val=50, n_svms=2, n_select=1, c_grid=[1e-2])
    fast = svm_protocol(xtr, ytr, xte, yte, **kw, gram=True)
    slow = svm_protocol(xtr, ytr, xte, yte, **kw, gram=False)
    assert np.allclose(fast.errors, slow.errors, atol=100.0 / len(yte) + 1e-9)


def test_two_classes():
    xtr, ytr = blobs(600)
    xte, yte = blobs(300, offset=1)
    keep_tr, keep_te = ytr < 2, yte < 2
    r = svm_protocol(
        xtr[keep_tr], ytr[keep_tr] + 5, xte[keep_te], yte[keep_te] + 5, **dict(SMALL, n_labels=20, n_val=50)
    )
    assert r.n_classes == 2 and r.error_mean < 5.0


# ------------------------------------------------------------------------------------------- draws


def test_balanced_label_draw():
    labels = np.repeat(np.arange(K), [30 + 5 * k for k in range(K)])
    rng = np.random.default_rng(0)
    idx = balanced_label_draw(labels, 100, rng)
    assert len(idx) == 100 and len(np.unique(idx)) == 100
    assert np.array_equal(np.bincount(labels[idx], minlength=K), np.full(K, 10))
    pool = np.flatnonzero(np.arange(len(labels)) % 3 != 0)
    idx = balanced_label_draw(labels, 50, rng, pool=pool)
    assert set(idx) <= set(pool)
    assert np.array_equal(np.bincount(labels[idx], minlength=K), np.full(K, 5))
    # uses the draws' randomness: two draws differ
    assert not np.array_equal(balanced_label_draw(labels, 100, rng), balanced_label_draw(labels, 100, rng))


def test_balanced_label_draw_errors():
    labels = np.repeat(np.arange(K), 20)
    labels[labels == 3] = 4
    labels[:4] = 3  # class 3 has 4 examples
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError, match="needs 10 examples of each of 10 classes in the pool; class 3 has 4"
    ):
        balanced_label_draw(labels, 100, rng)
    with pytest.raises(ValueError, match="not a multiple of the number of classes K=10"):
        balanced_label_draw(labels, 95, rng)


def test_split_validation():
    pool, val = split_validation(50, 10, np.random.default_rng(0))
    assert len(val) == 10 and len(pool) == 40
    assert set(pool) | set(val) == set(range(50)) and not set(pool) & set(val)
    assert not np.array_equal(val, np.arange(40, 50))
    pool, val = split_validation(50, 10, how="last")
    assert np.array_equal(val, np.arange(40, 50)) and np.array_equal(pool, np.arange(40))


def test_draws_are_balanced_and_never_use_validation(blob_result, blob_data):
    r, ytr = blob_result, blob_data[1]
    assert r.train_indices.shape == (4, 100) and r.select_indices.shape == (2, 100)
    assert len(r.val_indices) == 300
    val = set(r.val_indices.tolist())
    for draw in np.concatenate([r.train_indices, r.select_indices]):
        assert len(np.unique(draw)) == 100
        assert not val & set(draw.tolist())
        assert np.array_equal(np.bincount(ytr[draw], minlength=K), np.full(K, 10))
    # the evaluation draws differ from each other
    assert len({tuple(d) for d in r.train_indices}) == 4


def test_last_validation_split(blob_data):
    r = svm_protocol(*blob_data, **dict(SMALL, n_svms=2), val_split="last")
    assert np.array_equal(r.val_indices, np.arange(2000 - 300, 2000))
    assert r.train_indices.max() < 2000 - 300


# ------------------------------------------------------------------------------------------- seeds


def test_reproducible_for_a_seed(blob_data, blob_result):
    again = svm_protocol(*blob_data, **SMALL, seed=3)
    assert again.errors == blob_result.errors and again.val_curve == blob_result.val_curve
    assert np.array_equal(again.train_indices, blob_result.train_indices)
    assert np.array_equal(again.val_indices, blob_result.val_indices)
    other = svm_protocol(*blob_data, **SMALL, seed=4)
    assert not np.array_equal(other.val_indices, blob_result.val_indices)
    assert not np.array_equal(other.train_indices, blob_result.train_indices)


def test_fewer_svms_are_a_prefix(blob_data, blob_result):
    r = svm_protocol(*blob_data, **dict(SMALL, n_svms=2), seed=3)
    assert r.errors == blob_result.errors[:2]
    assert np.array_equal(r.train_indices, blob_result.train_indices[:2])


def test_torch_inputs_match_numpy(blob_data, blob_result):
    xtr, ytr, xte, yte = blob_data
    r = svm_protocol(
        torch.from_numpy(xtr),
        torch.from_numpy(ytr),
        torch.from_numpy(xte),
        torch.from_numpy(yte),
        **SMALL,
        seed=3,
    )
    assert r.errors == blob_result.errors


def test_float32_and_unstandardized(blob_data):
    xtr, ytr, xte, yte = blob_data
    r = svm_protocol(xtr.astype(np.float32), ytr, xte.astype(np.float32), yte, **SMALL)
    assert r.error_mean < 5.0
    r = svm_protocol(xtr * 100 + 7, ytr, xte * 100 + 7, yte, **SMALL, standardize=False)
    assert not r.standardize and r.feature_dim == 20


def test_standardization_is_invariant_to_affine_feature_maps(blob_data, blob_result):
    xtr, ytr, xte, yte = blob_data
    scale = np.linspace(0.01, 100, xtr.shape[1])
    r = svm_protocol(xtr * scale - 3.0, ytr, xte * scale - 3.0, yte, **SMALL, seed=3)
    assert np.allclose(r.errors, blob_result.errors, atol=100.0 / len(yte) + 1e-9)


def test_constant_feature_is_harmless(blob_data):
    xtr, ytr, xte, yte = blob_data
    xtr = np.hstack([xtr, np.full((len(xtr), 1), 4.2)])
    xte = np.hstack([xte, np.full((len(xte), 1), 4.2)])
    assert svm_protocol(xtr, ytr, xte, yte, **SMALL).error_mean < 5.0


def test_non_convergence_is_counted_not_warned(blob_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = svm_protocol(*blob_data, **dict(SMALL, c_grid=[10.0]), max_iter=1)
    assert r.not_converged == r.n_svms
    assert r.not_converged_selection == r.n_select


def test_single_c_without_validation(blob_data):
    r = svm_protocol(*blob_data, **dict(SMALL, n_val=0, c_grid=[0.1]))
    assert r.c == 0.1 and np.isnan(r.val_error) and r.val_curve == [] and len(r.val_indices) == 0


def test_default_and_authors_grids():
    assert len(DEFAULT_C_GRID) == 15 and DEFAULT_C_GRID[0] == pytest.approx(1e-6)
    assert DEFAULT_C_GRID[-1] == pytest.approx(10.0)
    assert len(AUTHORS_C_GRID) == 50
    assert AUTHORS_C_GRID[0] == pytest.approx(np.exp(-20)) and AUTHORS_C_GRID[-1] == pytest.approx(np.exp(20))


# ------------------------------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def small_data():
    xtr, ytr = blobs(400)
    xte, yte = blobs(100, offset=1)
    return xtr, ytr, xte, yte


KW = dict(n_labels=50, n_val=100, n_svms=2, n_select=1, c_grid=[0.1])


def test_shape_mismatch_errors(small_data):
    xtr, ytr, xte, yte = small_data
    with pytest.raises(ValueError, match="train_labels has 399 entries but train_features has 400 rows"):
        svm_protocol(xtr, ytr[:-1], xte, yte, **KW)
    with pytest.raises(
        ValueError, match="test_features has 19 features per example but train_features has 20"
    ):
        svm_protocol(xtr, ytr, xte[:, 1:], yte, **KW)
    with pytest.raises(ValueError, match="test_labels has 100 entries but test_features has 99 rows"):
        svm_protocol(xtr, ytr, xte[:-1], yte, **KW)
    with pytest.raises(ValueError, match=r"train_features must be 2-D \(N, D\)"):
        svm_protocol(xtr[:, 0], ytr, xte, yte, **KW)
    with pytest.raises(ValueError, match=r"train_labels must be 1-D"):
        svm_protocol(xtr, ytr[:, None], xte, yte, **KW)
    with pytest.raises(ValueError, match="must hold integer class labels"):
        svm_protocol(xtr, ytr + 0.5, xte, yte, **KW)


def test_non_finite_features(small_data):
    xtr, ytr, xte, yte = small_data
    bad = xtr.copy()
    bad[7, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"train_features contains non-finite values \(NaN or inf\), first in row 7"
    ):
        svm_protocol(bad, ytr, xte, yte, **KW)
    bad = xte.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match="test_features contains non-finite values"):
        svm_protocol(xtr, ytr, bad, yte, **KW)


def test_too_few_examples_of_a_class(small_data):
    xtr, ytr, xte, yte = small_data
    ytr = ytr.copy()
    threes = np.flatnonzero(ytr == 3)
    ytr[threes[2:]] = 4  # class 3 keeps 2 examples
    with pytest.raises(
        ValueError, match=r"n_labels=50 needs 5 examples of each of 10 classes in the pool; class 3 has [0-2]"
    ):
        svm_protocol(xtr, ytr, xte, yte, **KW)
    with pytest.raises(ValueError, match="not a multiple of the number of classes"):
        svm_protocol(*small_data, **dict(KW, n_labels=55))


def test_bad_n_val_and_parameters(small_data):
    with pytest.raises(
        ValueError, match="n_val=400 must be smaller than the number of training examples N=400"
    ):
        svm_protocol(*small_data, **dict(KW, n_val=400))
    with pytest.raises(ValueError, match="n_val=500 must be smaller"):
        svm_protocol(*small_data, **dict(KW, n_val=500))
    with pytest.raises(ValueError, match="needs a validation set"):
        svm_protocol(*small_data, **dict(KW, n_val=0, c_grid=[0.1, 1.0]))
    with pytest.raises(ValueError, match="c_grid values must be positive"):
        svm_protocol(*small_data, **dict(KW, c_grid=[0.1, -1.0]))
    with pytest.raises(ValueError, match="n_svms must be an int >= 1"):
        svm_protocol(*small_data, **dict(KW, n_svms=0))
    with pytest.raises(ValueError, match="val_split must be 'random' or 'last'"):
        svm_protocol(*small_data, **KW, val_split="first")
    with pytest.raises(ValueError, match="seed must be an int"):
        svm_protocol(*small_data, **KW, seed=1.5)
    xtr, ytr, xte, yte = small_data
    with pytest.raises(ValueError, match=r"test_labels has classes absent from train_labels: \[11\]"):
        svm_protocol(xtr, ytr, xte, np.where(yte == 0, 11, yte), **KW)


# ------------------------------------------------------------------------------------------- table


def _result(mean, std, c=1e-3, n=100, dim=5376):
    return SVMResult(
        error_mean=mean,
        error_std=std,
        errors=[mean] * n,
        c=c,
        val_error=mean,
        val_curve=[(c, mean)],
        n_labels=1000,
        n_val=10000,
        n_svms=n,
        feature_dim=dim,
        not_converged=0,
    )


def test_format_and_rows():
    r = _result(19.1412, 0.5012)
    assert r.format() == "19.14 ± 0.50"
    assert r.format(1) == "19.1 ± 0.5"
    assert _result(19.1412, float("nan"), n=1).format() == "19.14"
    assert r.as_row("ALI (ours, L2-SVM)", "19.14 ± 0.50") == (
        "| ALI (ours, L2-SVM) | 5376 | 0.001 | 19.14 ± 0.50 (n=100) | 19.14 ± 0.50 |"
    )
    assert r.as_row("a|b") == "| a\\|b | 5376 | 0.001 | 19.14 ± 0.50 (n=100) | — |"


def test_feature_table():
    results = {"ALI (ours, L2-SVM)": _result(20.5, 0.61, c=3.16e-4), "mine": _result(30.0, 1.0, n=10, dim=64)}
    table = feature_table(results)
    lines = table.strip().split("\n")
    assert lines[0] == "| Model | Feature dim | C | Test error % (mean ± std, n SVMs) | Thesis |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| ALI (ours, L2-SVM) | 5376 | 0.000316 | 20.50 ± 0.61 (n=100) | 19.14 ± 0.50 |"
    assert lines[3] == "| mine | 64 | 0.001 | 30.00 ± 1.00 (n=10) | — |"
    assert len(lines) == 4
    custom = feature_table(results, {"mine": "29.9"})
    assert custom.strip().split("\n")[3].endswith("| 29.9 |")
    full = feature_table(results, thesis_only_rows=True).strip().split("\n")
    assert len(full) == 4 + len(TABLE_5_1) - 1
    assert "| DCGAN + L2-SVM (Radford et al., 2016) | — | — | — | 22.18 |" in full


def test_table_5_1_as_printed():
    assert TABLE_5_1 == {
        "VAE (M1 + M2) (Kingma et al., 2014)": "36.02",
        "SWWAE with dropout (Zhao et al., 2016)": "23.56",
        "DCGAN + L2-SVM (Radford et al., 2016)": "22.18",
        "SDGM (Maaløe et al., 2016)": "16.61",
        "GAN (feature matching) (Salimans et al., 2016)": "8.11 ± 1.3",
        "ALI (ours, L2-SVM)": "19.14 ± 0.50",
        "ALI (ours, no feature matching)": "7.3",
    }


def test_blas_threads_do_not_change_the_result(blob_data, blob_result):
    r = svm_protocol(*blob_data, **SMALL, seed=3, blas_threads=1)
    assert r.errors == blob_result.errors
    with pytest.raises(ValueError, match="blas_threads must be an int >= 1"):
        svm_protocol(*blob_data, **SMALL, blas_threads=0)


def test_the_c_scan_stops_after_patience_values_without_improvement(blob_data):
    """With patience 1 the scan (smallest C first, whatever the grid's order) stops at the first C
    that does not improve on the best so far; it sees the same validation errors as a full scan
    up to there and picks the best of them."""
    grid = list(np.logspace(-5, 1, 7))
    full = svm_protocol(*blob_data, **{**SMALL, "c_grid": grid}, seed=3, patience=None)
    short = svm_protocol(*blob_data, **{**SMALL, "c_grid": grid[::-1]}, seed=3, patience=1)  # any order
    curve = [e for _, e in full.val_curve]
    assert len(full.val_curve) == 7
    first_stall = next(i for i in range(1, 7) if curve[i] >= min(curve[:i]))
    assert [c for c, _ in short.val_curve] == pytest.approx(grid[: first_stall + 1])
    assert [e for _, e in short.val_curve] == pytest.approx(curve[: first_stall + 1])
    assert short.c == pytest.approx(grid[int(np.argmin(curve[: first_stall + 1]))])
