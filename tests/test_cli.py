import subprocess
import sys

import pytest

from physamp.cli import main, parse_options


def test_import_is_light():
    code = (
        "import sys, physamp; rbm = physamp.RBM(3, 2); from physamp.samplers import make_sampler; "
        "make_sampler('gibbs', steps=1).sample(rbm, 2); "
        "mods = ('dimod', 'dwave.system', 'dwave.samplers', 'dwave.cloud'); "
        "heavy = [m for m in mods if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parse_options():
    assert parse_options(["steps=100", "child=neal", "beta=0.5", "sparse=True"]) == {
        "steps": 100,
        "child": "neal",
        "beta": 0.5,
        "sparse": True,
    }
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_options(["steps"])


def test_check_sampler_passes_for_a_correct_backend(capsys):
    assert main(["check-sampler", "exact", "--samples", "20000"]) == 0
    assert "total-variation distance" in capsys.readouterr().out


def test_check_sampler_fails_for_a_wrong_one(capsys):
    # Gibbs at the wrong temperature is detected
    assert main(["check-sampler", "gibbs", "-o", "beta=0.3", "-o", "steps=50"]) == 1


def test_unknown_backend_is_a_clear_error(capsys):
    assert main(["check-sampler", "gibs"]) == 2
    assert "unknown sampler 'gibs'" in capsys.readouterr().err


def test_topology_command(capsys, tmp_path):
    png = tmp_path / "c.png"
    assert main(["topology", "chimera", "14", "--draw", str(png)]) == 0
    out = capsys.readouterr().out
    assert "784 visible x 784 hidden units, 4592 connections" in out
    assert png.stat().st_size > 1000


def test_train_rbm_ais_and_sample_commands(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train-rbm",
        "--dataset",
        "mnist-bundled",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "-k",
        "1",
        "--ais-runs",
        "4",
        "--ais-betas",
        "50",
        "--figure-steps",
        "5",
        "--run-dir",
        str(run),
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test NLL:" in out and "AIS log Z" in out and "mnist-bundled" in out
    for name in ("checkpoint.pt", "metrics.jsonl", "samples.png", "result.json", "config.json"):
        assert (run / name).exists(), name
    import json

    result = json.loads((run / "result.json").read_text())
    assert result["test_nll_lower"] <= result["test_nll"] <= result["test_nll_upper"]
    # a second run with other settings in the same directory is refused, nothing lost
    before = (run / "checkpoint.pt").read_bytes()
    assert main([*args[:4], "9", *args[5:]]) == 2
    assert "already holds a different run" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert (
        main(
            [
                "ais",
                str(run / "checkpoint.pt"),
                "--dataset",
                "mnist-bundled",
                "--ais-runs",
                "4",
                "--ais-betas",
                "50",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "test NLL:" in capsys.readouterr().out
    png = tmp_path / "s.png"
    assert (
        main(
            [
                "sample",
                str(run / "checkpoint.pt"),
                "--sampler",
                "neal",
                "-o",
                "num_sweeps=5",
                "--num",
                "16",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    assert png.stat().st_size > 1000


def test_corrupt_checkpoint_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "c.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["ais", str(bad), "--dataset", "mnist-bundled"]) == 2
    assert "not a readable physamp checkpoint" in capsys.readouterr().err


def test_experiment_list(capsys):
    assert main(["experiment", "list"]) == 0
    assert "removed-connections" in capsys.readouterr().out
    assert main(["experiment", "no-such-figure"]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--threads", "0", "samplers"], "must be a positive finite integer"),
        (["train-rbm", "--ais-runs", "0"], "must be a positive finite integer"),
        (["train-rbm", "--weight-noise", "-0.1"], "must be a >= 0 finite number"),
        (["experiment", "removed-connections", "--set", "seeds=3"], "takes a list"),
        (["experiment", "removed-connections", "--set", "epochs=-1"], "must be positive"),
        (["experiment", "removed-connections", "--set", "nonsense=1"], "unknown preset keys"),
        (["experiment", "removed-connections", "--set", "epochs"], "NAME=VALUE"),
    ],
)
def test_bad_cli_input_is_one_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        rc = exit_.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
