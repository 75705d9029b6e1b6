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
    with pytest.raises(SystemExit, match="NAME=VALUE"):
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
