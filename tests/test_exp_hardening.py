"""Experiment reports say what the cells actually did (issue 8, item 19; items 11 and 13 for sweeps).

- The **Data** line names the data the cells used (recorded where each cell ran), never the
  offline split when the bundled slice was used, and how that compares with the thesis's 60,000.
- One seed shows "– (n=1)" instead of "std 0.00".
- The thesis's absolute NLLs and relative changes are separate columns.
- An experiment without cells (``--set fractions=[]``) is an error, not "0 cells".
"""

from __future__ import annotations

import json

import pytest

from physamp.experiments import common
from physamp.experiments.runner import check_overrides, run_experiment
from physamp.experiments.sweep import run_sweep

TINY = dict(n_hidden=2, epochs=1, ais_runs=2, ais_betas=5)


@pytest.fixture
def bundled_default(monkeypatch, tmp_path):
    """``mnist-default`` resolves to the bundled slice (as on a machine without the offline files)."""
    import physamp.data.mnist as mnist

    monkeypatch.setattr(mnist, "find_shared_datasets", lambda root=None: None)
    common.dataset.cache_clear()
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    yield
    common.dataset.cache_clear()


def test_the_report_names_the_data_the_cells_used(bundled_default, tmp_path):
    summary = run_experiment(
        "removed-connections",
        "quick",
        tmp_path / "out",
        workers=1,
        progress=False,
        overrides={**TINY, "fractions": [0.0, 0.5, 0.99]},
    )
    text = open(summary["markdown"]).read()
    data = text.split("**Data:**", 1)[1].split("\n\n", 1)[0]
    assert data.lstrip().startswith("mnist-bundled (train: 2,000 MNIST training digits")
    assert "These models trained on 2,000 digits, the thesis's on full MNIST (60,000);" in data
    assert "13,000" not in text and "offline split (" not in text  # no claim about data it did not use
    # one seed: no "std 0.00"
    rows = [line for line in text.splitlines() if line.startswith("| 50 %")]
    assert rows and "| – (n=1) | 1 |" in rows[0] and "0.00 | 1 |" not in rows[0]
    # the thesis's absolute NLL and its relative change are separate columns
    assert "| removed | test NLL | std | seeds | vs dense | thesis NLL | thesis vs dense |" in text
    assert rows[0].endswith("|  | +4.3 % |")
    row99 = next(line for line in text.splitlines() if line.startswith("| 99 %"))
    assert row99.endswith("| 200.3 ± 0.2 |  |")
    # the CSV records the data each cell used
    cells = open(summary["csv"]).read().splitlines()
    header = cells[0].split(",")
    assert "dataset" in header and "num_train" in header
    assert all(",mnist-bundled," in line for line in cells[1:])


def test_a_report_without_recorded_data_resolves_the_cells_data(bundled_default):
    rows = [{"cell": {"data": "mnist-default"}, "result": {"nll": 1.0}}]
    assert common.data_description(rows).startswith("mnist-bundled (train: 2,000")
    recorded = [
        {
            "cell": {"data": "mnist-default"},
            "result": {"nll": 1.0, "dataset": "mnist-bundled", "num_train": 9},
        }
    ]
    assert "first 9 training digits" in common.data_description(recorded)


def test_std_of_one_seed_is_not_zero():
    assert common.spread(0.0, 1) == "– (n=1)"
    assert common.spread(0.25, 3) == 0.25
    table = common.markdown_table(["std"], [[common.spread(0.0, 1)], [common.spread(0.5, 2)]])
    assert table.splitlines()[2:] == ["| – (n=1) |", "| 0.50 |"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fractions": []}, "needs at least one value"),
        ({"seeds": []}, "needs at least one value"),
        ({"epochs": 0}, "must be positive"),
        ({"fractions": 0.5}, "takes a list"),
    ],
)
def test_an_experiment_without_cells_is_an_error(overrides, message, tmp_path):
    from physamp.experiments import removed_connections

    with pytest.raises(ValueError, match=message):
        check_overrides("removed-connections", removed_connections.PRESETS["quick"], overrides)
    with pytest.raises(ValueError, match=message):
        run_experiment("removed-connections", "quick", tmp_path / "out", overrides=overrides, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_sweep_without_cells_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="the sweep has no cells"):
        run_sweep(json.dumps, [], tmp_path / "cache", progress=False)


def test_a_model_several_cells_need_is_trained_once_across_workers(bundled_default, tmp_path):
    """Two workers start two cells of one model at once: one trains it, the other waits and loads it."""
    import csv

    overrides = dict(n_hidden=8, epochs=2, sigmas=[0.05], draws=1, ais_runs=2, ais_betas=5)
    summary = run_experiment(
        "noise-at-sampling", "quick", tmp_path / "out", workers=2, progress=False, overrides=overrides
    )
    with open(summary["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2  # weights and biases, one model
    assert len({r["train_seconds"] for r in rows}) == 1  # the same training, not two
    assert len(list((tmp_path / "models").glob("rbm-*.pt"))) == 1
