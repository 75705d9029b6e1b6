"""The sweep engine (local, Dask, cache/resume) and the experiments' quick presets."""

import csv
import json
import os

import pytest

from physamp.experiments.sweep import SweepError, cell_key, load_cached, run_sweep


def square(cell):  # module-level: picklable for worker processes and Dask
    return {"nll": float(cell["x"] ** 2), "seconds": 0.0}


CALLS_FILE = "calls.txt"


def counting_square(cell):
    with open(os.path.join(cell["dir"], CALLS_FILE), "a") as f:
        f.write(f"{cell['x']}\n")
    if cell["x"] == cell.get("fail_at"):
        raise RuntimeError("boom")
    return {"nll": float(cell["x"] ** 2), "seconds": 0.0}


def test_cell_key_is_canonical():
    assert cell_key({"a": 1, "b": [1, 2]}) == cell_key({"b": [1, 2], "a": 1})
    assert cell_key({"a": 1}) != cell_key({"a": 2})


def test_local_workers_and_cache(tmp_path):
    cells = [{"x": i} for i in range(4)]
    out = run_sweep(square, cells, tmp_path / "cache", workers=2, progress=False)
    assert [r["nll"] for r in out] == [0.0, 1.0, 4.0, 9.0]
    assert load_cached(tmp_path / "cache", {"x": 3})["nll"] == 9.0
    with pytest.raises(ValueError, match="identical"):
        run_sweep(square, [{"x": 1}, {"x": 1}], tmp_path / "c2", progress=False)


def test_interrupted_sweep_resumes_from_its_cache(tmp_path):
    cells = [{"x": i, "dir": str(tmp_path), "fail_at": 2} for i in range(4)]
    with pytest.raises(SweepError, match="failed"):
        run_sweep(counting_square, cells, tmp_path / "cache", workers=1, progress=False)
    assert (tmp_path / CALLS_FILE).read_text().split() == ["0", "1", "2"]
    # rerun the same cells once the bug is fixed: only the unfinished ones are computed
    (tmp_path / CALLS_FILE).write_text("")
    out = run_sweep(square_logging, cells, tmp_path / "cache", workers=1, progress=False)
    assert [r["nll"] for r in out] == [0.0, 1.0, 4.0, 9.0]
    assert (tmp_path / CALLS_FILE).read_text().split() == ["2", "3"]  # 0 and 1 came from the cache


def square_logging(cell):
    with open(os.path.join(cell["dir"], CALLS_FILE), "a") as f:
        f.write(f"{cell['x']}\n")
    return {"nll": float(cell["x"] ** 2), "seconds": 0.0}


def test_damaged_cache_entry_is_recomputed(tmp_path):
    run_sweep(square, [{"x": 5}], tmp_path / "cache", progress=False)
    (tmp_path / "cache" / f"{cell_key({'x': 5})}.json").write_text("{not json")
    assert run_sweep(square, [{"x": 5}], tmp_path / "cache", progress=False)[0]["nll"] == 25.0


def test_dask_local_cluster_gives_the_same_csv(tmp_path):
    pytest.importorskip("distributed")
    from physamp.experiments.runner import run_experiment

    overrides = dict(n_hidden=4, epochs=1, fractions=[0.0, 0.5], seeds=[0], ais_runs=4, ais_betas=50)
    os.environ["PHYSAMP_MODEL_CACHE"] = str(tmp_path / "models_local")
    local = run_experiment(
        "removed-connections", "quick", tmp_path / "local", workers=2, progress=False, overrides=overrides
    )
    os.environ["PHYSAMP_MODEL_CACHE"] = str(tmp_path / "models_dask")
    dask = run_experiment(
        "removed-connections", "quick", tmp_path / "dask", dask=True, progress=False, overrides=overrides
    )
    del os.environ["PHYSAMP_MODEL_CACHE"]

    def table(path):
        with open(path) as f:
            return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(f)]

    a, b = table(local["csv"]), table(dask["csv"])
    assert len(a) == 2 and a == b
    assert json.loads((tmp_path / "dask" / "summary.json").read_text())["cells"] == 2
