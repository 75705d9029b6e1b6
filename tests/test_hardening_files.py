"""Malformed files are one clear line naming the file, never a traceback (issue 8, item 11).

One reader per file kind validates what it reads: checkpoints (:func:`load_checkpoint`), a run
directory's ``config.json`` (:func:`read_run_config`), ``metrics.jsonl`` (:func:`read_metrics`),
the resume of a checkpoint into a run (:meth:`TrainLoop.load_state_dict`) and the sweep cache
(:func:`load_cached`). Every case is also driven through the CLI: exit status 2, one line.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from physamp.cli import main
from physamp.experiments.sweep import _store, cell_key, load_cached, run_sweep
from physamp.training import (
    CheckpointError,
    RunDirectoryError,
    load_checkpoint,
    read_metrics,
    read_run_config,
)

from conftest import tiny_train_args

TRAIN = tiny_train_args(epochs=2)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny train-rbm run directory (copied by each test before it is damaged)."""
    run = tmp_path_factory.mktemp("base") / "run"
    assert main([*TRAIN, "--run-dir", str(run)]) == 0
    return run


def _copy(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def _edit_checkpoint(run, edit, unfinished=True):
    path = run / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    if unfinished:  # so that a rerun resumes from it (and reads every entry)
        ckpt["step"] = 20
        (run / "result.json").unlink(missing_ok=True)
    torch.save(ckpt, path)


def _cli(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def _one_clear_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --- checkpoints read by `physamp ais` / `physamp sample` ----------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["state:model"].__setitem__("W", c["state:model"]["W"].reshape(-1)),
            "its W has shape (3136,)",
        ),
        (lambda c: c.__setitem__("config", [1, 2]), "its 'config' entry is a list, not a dict"),
        (lambda c: c.__setitem__("step", -3), "its 'step' is -3"),
        (lambda c: c.__setitem__("state:model", [1]), "its component 'model' is a list"),
        (lambda c: c.__setitem__("rng", "x"), "its 'rng' entry is a str"),
    ],
)
@pytest.mark.parametrize("command", ["ais", "sample"])
def test_a_malformed_checkpoint_is_one_line_naming_the_file(
    finished_run, tmp_path, capsys, edit, message, command
):
    run = _copy(finished_run, tmp_path)
    _edit_checkpoint(run, edit, unfinished=False)
    ckpt = str(run / "checkpoint.pt")
    if command == "ais":
        argv = [
            "ais",
            ckpt,
            "--dataset",
            "mnist-bundled",
            "--ais-runs",
            "2",
            "--ais-betas",
            "5",
            "--no-progress",
        ]
    else:
        argv = ["sample", ckpt, "--num", "4", "--out", str(tmp_path / "s.png")]
    rc, err = _cli(argv, capsys)
    assert rc == 2
    _one_clear_line(err, ckpt, message)


def test_load_checkpoint_checks_the_layout(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"physamp_checkpoint": 1, "step": 0, "config": [1]}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: its 'config' entry is a list"):
        load_checkpoint(path)
    torch.save({"physamp_checkpoint": "1", "step": 0}, path)
    with pytest.raises(CheckpointError, match="format version is '1'"):
        load_checkpoint(path)


# --- a run directory read by a rerun of `physamp train-rbm` --------------------------------------------
def _no_rng(c):
    c.pop("rng")


def _short_sfc64_state(c):
    c["state:sampler"]["sfc64_state"] = torch.zeros(2, dtype=torch.int64)


def _sfc64_state_not_a_tensor(c):
    c["state:sampler"]["sfc64_state"] = "abc"


def _bad_torch_rng(c):
    c["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_no_rng, "has no generator states ('rng')"),
        (_short_sfc64_state, "its 'sampler' does not fit this run"),
        (_sfc64_state_not_a_tensor, "its 'sampler' does not fit this run"),
        (_bad_torch_rng, "its generator states ('rng') are unusable"),
    ],
)
def test_a_run_directory_checkpoint_that_cannot_resume_is_one_line(
    finished_run, tmp_path, capsys, edit, message
):
    run = _copy(finished_run, tmp_path)
    _edit_checkpoint(run, edit)
    rc, err = _cli([*TRAIN, "--run-dir", str(run)], capsys)
    assert rc == 2
    _one_clear_line(err, str(run / "checkpoint.pt"), message)


@pytest.mark.parametrize(
    "text, message",
    [("[1, 2]", "holds a JSON list, not the object a run's config is"), ("{nope", "is not valid JSON")],
)
def test_config_json_that_is_not_an_object_is_one_line(finished_run, tmp_path, capsys, text, message):
    run = _copy(finished_run, tmp_path)
    (run / "config.json").write_text(text)
    rc, err = _cli([*TRAIN, "--run-dir", str(run)], capsys)
    assert rc == 2
    _one_clear_line(err, str(run / "config.json"), message, "--overwrite")
    with pytest.raises(RunDirectoryError, match="config.json"):
        read_run_config(run / "config.json")


@pytest.mark.parametrize(
    "text", ['{"recon": 1.0}\n', '{"step": "3", "recon": 1.0}\n', '[1, 2]\n{"step": 1}\n', '{"step": true}\n']
)
def test_metrics_records_without_a_step_are_one_line(finished_run, tmp_path, capsys, text):
    run = _copy(finished_run, tmp_path)
    _edit_checkpoint(run, lambda c: None)  # unfinished: the rerun resumes and truncates the metrics
    (run / "metrics.jsonl").write_text(text)
    rc, err = _cli([*TRAIN, "--run-dir", str(run)], capsys)
    assert rc == 2
    _one_clear_line(err, str(run / "metrics.jsonl"), "line 1 is not a metrics record")


def test_read_metrics_checks_every_record(tmp_path):
    good = tmp_path / "m.jsonl"
    good.write_text('{"step": 1, "a": 0.5}\n{"step": 2, "a": 0.25}\n{"step": 3, "a"')  # last line cut short
    assert [r["step"] for r in read_metrics(good)] == [1, 2]
    csv = tmp_path / "m.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no 'step' column"):
        read_metrics(csv)
    csv.write_text("step,a\n1,2\nx,3\n")
    with pytest.raises(ValueError, match=r"m.csv: line 3 has step 'x'"):
        read_metrics(csv)


# --- sweep cache entries --------------------------------------------------------------------------------
def square(cell):
    return {"nll": float(cell["x"] ** 2)}


@pytest.mark.parametrize(
    "record, message",
    [
        ({"cell": {"x": 2}}, "a sweep cache entry without a result"),
        ({"cell": {"x": 2}, "result": 3}, "a sweep cache entry without a result"),
        ([1, 2], "without a cell and a result"),
        ({"cell": {"x": 2}, "result": {"seconds": 1.0}}, "the cached result has no 'nll'"),
    ],
)
def test_a_malformed_sweep_cache_entry_is_one_line_naming_the_file(tmp_path, record, message):
    cache = tmp_path / "cache"
    path = cache / f"{cell_key({'x': 2})}.json"
    cache.mkdir()
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message) as err:
        run_sweep(square, [{"x": 1}, {"x": 2}], cache, progress=False, required=("nll",))
    assert str(path) in str(err.value) and "delete it to recompute the cell" in str(err.value)
    # the entry is valid without required keys, as for an experiment that has no NLL
    if isinstance(record, dict) and isinstance(record.get("result"), dict):
        assert load_cached(cache, {"x": 2}) == {"seconds": 1.0}


def test_a_result_without_the_required_keys_fails_its_cell(tmp_path):
    from physamp.experiments.sweep import SweepError

    with pytest.raises(SweepError, match="the cell's result has no 'nll'"):
        run_sweep(lambda_free_result, [{"x": 1}], tmp_path / "cache", progress=False, required=("nll",))
    assert load_cached(tmp_path / "cache", {"x": 1}) is None  # nothing wrong was cached


def lambda_free_result(cell):
    return {"loss": 1.0}


def test_experiment_cli_reports_a_malformed_cache_entry_in_one_line(tmp_path, capsys, monkeypatch):
    """The same through ``physamp experiment``: the runner requires the experiment's result keys."""
    from physamp.experiments import removed_connections as rc_exp

    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "out"
    argv = ["experiment", "removed-connections", "--out", str(out), "--workers", "1", "--no-progress"]
    argv += ["--set", "fractions=[0.5]", "--set", "n_hidden=2", "--set", "epochs=1", "--set", "ais_betas=5"]
    argv += ["--set", "ais_runs=2"]
    p = dict(rc_exp.PRESETS["quick"], fractions=[0.5], n_hidden=2, epochs=1, ais_betas=5, ais_runs=2)
    (cell,) = rc_exp.cells(p)
    cell = json.loads(json.dumps(cell, sort_keys=True, default=str))
    _store(out / "cache", cell, {"seconds": 1.0})  # a result without "nll"
    rc, err = _cli(argv, capsys)
    assert rc == 2
    _one_clear_line(err, str(out / "cache" / f"{cell_key(cell)}.json"), "the cached result has no 'nll'")
