"""The command line and first-run hardening (issue 8, items 3, 13, 15, 17, 19 and 20).

- The data is part of a run's identity, and a ``--data-root`` / ``--download`` the dataset would
  not use is an error (item 3).
- Every option is checked before any work; negative seeds are valid (item 13).
- The default thread count is never many times slower than one thread (item 15).
- A script beside a clone folder named ``physamp/`` gets the installed package or a clear error
  (item 17).
- Subcommand help shows every option's default and text; ``experiment NAME --help`` the presets
  (item 19).
- README, .gitignore and the topology drawing (item 20).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physamp.cli import build_parser, main
from physamp.data import find_shared_datasets, load_dataset

from conftest import tiny_train_args

ROOT = Path(__file__).resolve().parents[1]

TINY = tiny_train_args(epochs=1)


def _rc(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own errors
        return exit_.code


# --- item 3: the data is part of the run ---------------------------------------------------------------
@pytest.mark.skipif(find_shared_datasets() is None, reason="needs the offline MNIST files")
def test_the_same_run_dir_with_other_data_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 0
    capsys.readouterr()
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "result.json", "metrics.jsonl")}
    args = list(TINY)
    args[args.index("mnist-bundled")] = "mnist-offline"
    assert main([*args, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "already holds a different run" in err and "data.name" in err
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing overwritten


def test_a_data_root_the_dataset_does_not_read_is_an_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert _rc([*TINY, "--data-root", str(tmp_path), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "mnist-bundled ships inside the package and reads no data root" in err
    assert not run.exists()  # nothing trained, nothing written
    # mnist-default with a root means the offline split in that folder: not silently the bundled slice
    args = list(TINY)
    args[args.index("mnist-bundled")] = "mnist-default"
    assert _rc([*args, "--data-root", str(tmp_path), "--run-dir", str(run)]) == 2
    assert f"were not found under {tmp_path}" in capsys.readouterr().err
    assert _rc([*TINY, "--download", "--run-dir", str(run)]) == 2
    assert "mnist-bundled is not downloaded" in capsys.readouterr().err
    with pytest.raises(ValueError, match="connect4 is not downloaded with a root"):
        load_dataset("connect4", root=tmp_path, download=True)
    assert not run.exists()


@pytest.mark.skipif(find_shared_datasets() is None, reason="needs the offline MNIST files")
def test_a_data_root_is_an_absolute_path_in_the_identity(tmp_path, monkeypatch):
    folder = find_shared_datasets()
    monkeypatch.chdir(folder.parent)
    rel = load_dataset("mnist-offline", root=folder.name)
    assert rel.identity()["root"] == str(folder.resolve())
    assert load_dataset("mnist-default", root=folder).name == "mnist-offline"


# --- item 13: options checked before any work ----------------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        ([*TINY, "--ais-betas", "0"], "must be a positive finite integer"),
        ([*TINY, "--seed", str(2**63)], "--seed: must be an integer from -2^63 to 2^63 - 1 (a seed)"),
        ([*TINY, "--binarize-seed", "1.5"], "is not an integer seed"),
        ([*TINY, "--set", "seed=99999999999999999999"], "seed must be an integer from -2^63"),
        (["check-sampler", "exact", "--visible", "20"], "visible + hidden is 24, keep it <= 16"),
        (["experiment", "removed-connections", "--set", "fractions=[]"], "needs at least one value"),
        (["experiment", "removed-connections", "--set", "seeds=[]"], "needs at least one value"),
        (["experiment", "removed-connections", "--preset", "huge"], "has presets"),
    ],
)
def test_bad_options_are_refused_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert _rc([*argv, "--run-dir", str(tmp_path / "run")] if argv[0] == "train-rbm" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 20  # no training, no sampling
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_train_and_evaluate_checks_the_ais_settings_before_training(tmp_path):
    from physamp.models.rbm import RBMTrainConfig, train_and_evaluate

    data = load_dataset("mnist-bundled")
    for bad, message in ((dict(ais_betas=0), "positive int"), (dict(ais_runs=0), "ais_runs must be")):
        with pytest.raises(ValueError, match=message):
            train_and_evaluate(RBMTrainConfig(n_hidden=2, epochs=1), data, run_dir=tmp_path / "r", **bad)
        assert not (tmp_path / "r").exists()


def test_a_negative_seed_works_end_to_end(tmp_path, capsys):
    """derive_seed maps any seed into [0, 2^63): -3 trains, evaluates, draws its figure, is its own run."""
    import json

    from physamp.seeding import derive_seed

    assert derive_seed(-3, "sampler") != derive_seed(3, "sampler")
    for seed in ("-3", "3"):
        run = tmp_path / seed
        assert main([*TINY, "--seed", seed, "--binarize-seed", seed, "--run-dir", str(run)]) == 0
        assert (run / "samples.png").stat().st_size > 1000
    neg, pos = (json.loads((tmp_path / s / "result.json").read_text()) for s in ("-3", "3"))
    assert neg["config"]["seed"] == -3 and neg["config"]["data"]["binarize_seed"] == -3
    assert neg["test_nll"] != pos["test_nll"]
    w_neg = torch.load(tmp_path / "-3" / "checkpoint.pt", weights_only=True)["state:model"]["W"]
    w_pos = torch.load(tmp_path / "3" / "checkpoint.pt", weights_only=True)["state:model"]["W"]
    assert not torch.equal(w_neg, w_pos)
    assert main(["check-sampler", "exact", "--seed", "-1", "--samples", "2000"]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


# --- item 15: threads ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cores, load, expected", [(2, 0.0, 1), (2, 1.5, 1), (1, 0.0, 1), (8, 0.0, 4), (8, 6.5, 1), (16, 3.0, 8)]
)
def test_default_threads_is_one_on_a_small_or_loaded_machine(monkeypatch, cores, load, expected):
    from physamp.training import device

    monkeypatch.setattr(device, "_usable_cores", lambda: cores)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (load, load, load))
    assert device.default_threads() == expected


def test_the_cli_uses_the_default_thread_count_unless_told(monkeypatch, capsys):
    from physamp.training import device

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device, "default_threads", lambda: 1)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert main(["samplers"]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert main(["--threads", "2", "samplers"]) == 0
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting is left alone
        assert main(["samplers"]) == 0
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(device, "default_threads", lambda: 1)
        assert device.set_threads("auto") == 1
        with pytest.raises(ValueError, match="positive int or 'auto'"):
            device.set_threads("many")
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()


# --- item 17: a script beside a clone folder named physamp/ --------------------------------------------
SCRIPT = "import physamp\nprint(physamp.RBM(3, 2).n_visible, physamp.__file__)\n"


def test_a_script_beside_a_clone_named_physamp_gets_the_installed_package(tmp_path):
    (tmp_path / "physamp").symlink_to(ROOT, target_is_directory=True)  # a clone folder named physamp
    (tmp_path / "script.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    n, path = out.stdout.split()
    # the package an import from a neutral folder finds: the installed one (this checkout under CI)
    installed = subprocess.run(
        [sys.executable, "-c", "import physamp; print(physamp.__file__)"],
        cwd=tmp_path.parent, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert n == "3" and Path(path).resolve() == Path(installed).resolve()


def test_without_an_install_the_clone_folder_is_a_clear_import_error(tmp_path):
    (tmp_path / "physamp").symlink_to(ROOT, target_is_directory=True)
    (tmp_path / "script.py").write_text(SCRIPT)
    # -S: no site-packages, so physamp is not installed (and nothing heavy can be imported)
    out = subprocess.run([sys.executable, "-S", "script.py"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: 'import physamp' found the folder")
    assert "which is a clone of the physamp repository, not the package" in last
    assert f"pip install -e {tmp_path / 'physamp'}" in last
    assert "has no attribute 'RBM'" not in out.stderr


def test_the_repository_root_file_is_inert_under_its_own_name():
    """pytest imports the repository root as a package named after its folder: nothing happens then."""
    code = "import importlib.util as u, sys; s = u.spec_from_file_location('main', sys.argv[1]); "
    code += "m = u.module_from_spec(s); s.loader.exec_module(m); print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "__init__.py")], capture_output=True, text=True
    )
    assert out.stdout.strip() == "ok", out.stderr


# --- item 19: help ---------------------------------------------------------------------------------------
def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["train-rbm", "ais", "sample", "experiment", "check-sampler", "topology"])
def test_every_option_of_every_subcommand_has_help_and_shows_its_default(command):
    sub = _subparsers()[command]
    formatter = sub._get_formatter()
    sub.format_help()  # renders
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[-1]
        assert action.help, f"{command} {flag} has no help text"
        shown = formatter._expand_help(action)  # the text --help prints for it
        default = action.default
        if not (default is None or default is False or default is argparse.SUPPRESS):
            assert f"default: {default}" in shown, f"{command} {flag}: no default shown ({shown!r})"
    if command == "train-rbm":  # the config flags (default SUPPRESS) state theirs in their text
        text = " ".join(sub.format_help().split())
        for flag in ("--hidden N_HIDDEN hidden units (default: 500)", "--epochs EPOCHS passes over the"):
            assert flag in text


def test_experiment_help_shows_the_presets_and_the_keys_set_accepts(capsys):
    assert _rc(["experiment", "removed-connections", "--help"]) == 0
    out = capsys.readouterr().out
    assert "presets of 'removed-connections'" in out
    for line in (
        "  quick:",
        "    fractions = [0.0, 0.5, 0.99]",
        "    n_hidden = 100",
        "    ais_betas = 2000",
    ):
        assert line in out, line
    assert "  full:" in out and "    seeds = [0, 1, 2, 3, 4]" in out
    assert _rc(["experiment", "--help"]) == 0
    assert "experiments: noise-at-sampling" in capsys.readouterr().out


# --- item 20: README, .gitignore, drawings ---------------------------------------------------------------
def test_readme_lists_config_json_and_no_stale_time_estimates():
    readme = (ROOT / "README.md").read_text()
    files = readme.split("writes to `runs/rbm-gibbs-784x500-seed0/`:", 1)[1].split("\n\n", 2)[1]
    assert "`config.json`" in files
    assert "a few minutes on 2 cores" not in readme
    assert "set_threads" in readme  # how to set the thread count from Python
    assert "quick" in readme and re.search(r"The `quick` preset is .*784×100", readme, re.S)


def test_gitignore_covers_the_venv_and_results():
    lines = (ROOT / ".gitignore").read_text().split()
    assert ".venv/" in lines and "results/" in lines and "runs/" in lines


@pytest.mark.parametrize("spec, size", [("chimera", 4), ("random:0.5", None)])
def test_topology_legend_sits_outside_the_nodes(spec, size, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from physamp.topology import draw_topology

    ax = draw_topology(spec, size=size) if size else draw_topology(spec, n_visible=20, n_hidden=10)
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    nodes = ax.collections[-1].get_offsets()
    xy = ax.transData.transform(nodes)
    inside = (
        (xy[:, 0] >= legend.x0) & (xy[:, 0] <= legend.x1) & (xy[:, 1] >= legend.y0) & (xy[:, 1] <= legend.y1)
    )
    assert not inside.any()  # no node under the legend
    assert legend.y1 <= ax.get_window_extent().y0 + 1  # below the axes
    figure_box = fig.bbox
    assert legend.y0 >= figure_box.y0 and legend.x0 >= figure_box.x0 and legend.x1 <= figure_box.x1
    plt.close(fig)
