"""The chapter-7 experiments (style-n-vs-single, style-add, style-interpolation) at their tiny presets."""

from __future__ import annotations

import collections
import csv
import math
import re
from pathlib import Path

import pytest
import torch

from physamp.experiments import (
    EXPERIMENTS,
    style_add,
    style_common,
    style_interpolation,
    style_n_vs_single,
)
from physamp.experiments.runner import check_overrides, load_experiment, run_experiment
from physamp.models.style import StyleNetwork

MODULES = {
    "style-n-vs-single": style_n_vs_single,
    "style-add": style_add,
    "style-interpolation": style_interpolation,
}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three tiny presets run one after the other on one model cache: ``(root, trained per run)``."""
    root = tmp_path_factory.mktemp("style-experiments")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHYSAMP_MODEL_CACHE", str(root / "models"))
        trained = {}
        for name in MODULES:
            before = collections.Counter(style_common.TRAINING_RUNS)
            run_experiment(name, "tiny", root / name, workers=1, progress=False)
            trained[name] = dict(style_common.TRAINING_RUNS - before)
        yield root, trained


# ------------------------------------------------------------------------------------- registration
def test_registered_with_tiny_quick_and_full_presets():
    for name, module in MODULES.items():
        assert load_experiment(name) is module and EXPERIMENTS[name] == module.__name__
        assert set(module.PRESETS) == {"tiny", "quick", "full"}
        keys = {preset: set(values) for preset, values in module.PRESETS.items()}
        assert keys["tiny"] == keys["quick"] == keys["full"], name  # every value can be --set in every preset
        assert "Protocol" in module.__doc__ and module.PROTOCOL.strip()


def test_every_preset_value_can_be_overridden():
    p = style_n_vs_single.PRESETS["quick"]
    ok = check_overrides("style-n-vs-single", p, {"steps": 20, "content_root": "/data/coco", "num_styles": 3})
    cells = style_n_vs_single.cells({**p, **ok})
    assert [c["network"] for c in cells] == ["N-styles"] + ["single-style"] * 3
    assert all(c["steps"] == 20 and c["content_root"] == "/data/coco" for c in cells)
    with pytest.raises(ValueError, match="unknown preset keys"):
        check_overrides("style-add", style_add.PRESETS["quick"], {"stepz": 3})
    cells = style_add.cells({**style_add.PRESETS["quick"], "add_steps": 5, "scratch_factor": 4})
    assert sorted(c["run_steps"] for c in cells) == [5, 5, 20]


@pytest.mark.parametrize("name", list(MODULES))
def test_full_without_its_folders_is_a_clear_error(name, tmp_path):
    module = MODULES[name]
    with pytest.raises(ValueError, match=r"content_root and style_root are not set.*--set content_root=DIR"):
        module.cells(dict(module.PRESETS["full"]))
    with pytest.raises(ValueError, match="style_root is not set"):
        module.cells({**module.PRESETS["full"], "content_root": str(tmp_path)})
    with pytest.raises(ValueError, match="content_root and style_root"):
        run_experiment(name, "full", tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()  # refused before any work


# --------------------------------------------------------------------------------------- arithmetic
def test_percent_difference_and_sample_std_by_hand():
    assert style_common.percent_difference(1.087, 1.0) == pytest.approx(8.7)
    assert style_common.percent_difference(0.911, 1.0) == pytest.approx(-8.9)
    mean, std = style_common.mean_sample_std([10.0, 12.0, 14.0])
    assert mean == 12.0 and std == pytest.approx(2.0)  # ddof = 1: sqrt((4 + 0 + 4) / 2)
    assert math.isnan(style_common.mean_sample_std([3.0])[1])
    with pytest.raises(ValueError):
        style_common.percent_difference(1.0, 0.0)


def test_comparison_of_hand_made_rows():
    multi = {"content_loss/0": 2.2, "style_loss/0": 9.0, "content_loss/1": 3.0, "style_loss/1": 4.0}
    rows = [
        {"cell": {"network": "N-styles", "style": -1}, "result": multi},
        {
            "cell": {"network": "single-style", "style": 1},
            "result": {"content_loss/1": 2.5, "style_loss/1": 5.0},
        },
        {
            "cell": {"network": "single-style", "style": 0},
            "result": {"content_loss/0": 2.0, "style_loss/0": 10},
        },
    ]
    comp = style_n_vs_single.comparison(rows)
    assert [c["style"] for c in comp] == [0, 1]
    assert comp[0]["content_diff_pct"] == pytest.approx(10.0) and comp[0]["style_diff_pct"] == pytest.approx(
        -10.0
    )
    assert comp[1]["content_diff_pct"] == pytest.approx(20.0) and comp[1]["style_diff_pct"] == pytest.approx(
        -20.0
    )


def test_monotonicity_checker_on_hand_made_curves():
    check = style_common.monotonic_violations
    assert check([5.0, 4.0, 4.0, 1.0], increasing=False) == []  # ties are not violations
    assert check([5.0, 4.0, 4.5, 1.0, 1.2], increasing=False) == [1, 3]
    assert check([1.0, 2.0, 1.5, 3.0], increasing=True) == [1]
    assert check([3.0, 2.0, 1.0], increasing=True) == [0, 1]
    result = {"alphas": [0.0, 0.5, 1.0], "violations_a": [], "violations_b": [0]}
    text = style_interpolation.monotonicity_statement(result, "brick", "grass")
    assert "not both curves are monotonic" in text
    assert "brick (should fall as α grows) is monotonic: 0 violations in 2 steps" in text
    assert "grass (should rise as α grows) is **not** monotonic: 1 violation in 2 steps (at α = 0.00" in text


def test_alpha_weights_put_alpha_on_style_1():
    w = style_interpolation.alpha_weights(torch.linspace(0, 1, 5).numpy(), a=2, b=0, n=3)
    assert w.shape == (5, 3)
    torch.testing.assert_close(w[:, 2], torch.linspace(0, 1, 5))
    torch.testing.assert_close(w.sum(1), torch.ones(5))
    assert (w[:, 1] == 0).all()


def test_frozen_check_sees_any_change():
    g = torch.Generator().manual_seed(0)
    base = StyleNetwork(2, generator=g)
    tuned = StyleNetwork(2)
    tuned.load_state_dict(base.state_dict())
    tuned.add_styles(1)
    check = style_common.frozen_check(base, tuned)
    assert check["convs_identical"] and check["old_rows_identical"] and not check["new_rows_trained"]
    assert check["max_abs_change"] == 0.0 and check["conv_tensors"] == 16 and check["style_tensors"] == 32
    with torch.no_grad():
        tuned.conv3.norm.gamma[2] += 0.5  # the new row: allowed
    assert style_common.frozen_check(base, tuned)["new_rows_trained"]
    with torch.no_grad():
        tuned.res[2].conv1.norm.beta[1, 3] += 1e-7  # an old row
    check = style_common.frozen_check(base, tuned)
    assert check["convs_identical"] and not check["old_rows_identical"]
    with torch.no_grad():
        tuned.up1.conv.conv.weight[0, 0, 0, 0] += 1e-3
    assert not style_common.frozen_check(base, tuned)["convs_identical"]


# ------------------------------------------------------------------------------ the tiny runs, end to end
def test_n_vs_single_outputs(runs):
    root, _ = runs
    out = root / "style-n-vs-single"
    for f in ("style-n-vs-single.md", "style-n-vs-single.png", "losses.csv", "cells.csv", "summary.json"):
        assert (out / f).is_file(), f
    losses = _csv(out / "losses.csv")
    n = style_n_vs_single.PRESETS["tiny"]["num_styles"]
    assert len(losses) == n
    for col in ("style", "name", "content_multi", "content_single", "content_diff_pct", "style_diff_pct"):
        assert col in losses[0]
    for row in losses:
        expected = (
            100 * (float(row["content_multi"]) - float(row["content_single"])) / float(row["content_single"])
        )
        assert float(row["content_diff_pct"]) == pytest.approx(expected)
    md = (out / "style-n-vs-single.md").read_text()
    assert "**Data:**" in md and "8.7 ± 3.9" in md and "8.9 ± 16.5" in md and "sample std" in md
    assert "N times more parameter updates" in md and "core-days" in md
    mean, std = style_common.mean_sample_std([float(r["content_diff_pct"]) for r in losses])
    assert f"{mean:+.1f} ± {std:.1f} %" in md  # the summary row is the mean ± sample std of the CSV's column
    cells = _csv(out / "cells.csv")
    assert len(cells) == n + 1 and {"network", "style", "train_seconds", "content_loss/0"} <= set(cells[0])


def test_add_outputs_and_the_frozen_check(runs):
    root, _ = runs
    out = root / "style-add"
    assert (out / "style-add.png").is_file()
    losses = _csv(out / "losses.csv")
    p = style_add.PRESETS["tiny"]
    assert [(r["network"], int(r["steps"])) for r in losses] == [
        ("fine-tuned γ/β", p["add_steps"]),
        ("from scratch", p["add_steps"]),
        ("from scratch", p["add_steps"] * p["scratch_factor"]),
    ]
    assert all(float(r["content_loss"]) > 0 and float(r["style_loss"]) > 0 for r in losses)
    md = (out / "style-add.md").read_text()
    assert "**Frozen check: PASSED.**" in md and "bit-identical" in md and "NOT" not in md
    tuned = next(r for r in _csv(out / "cells.csv") if r["network"] == "fine-tuned γ/β")
    assert tuned["frozen_convs_identical"] == tuned["frozen_old_rows_identical"] == "True"
    assert "record for record" in md  # the S-step baseline is the 8S-step one stopped at S


def test_interpolation_outputs(runs):
    from PIL import Image

    root, _ = runs
    out = root / "style-interpolation"
    p = style_interpolation.PRESETS["tiny"]
    curve = _csv(out / "interpolation.csv")
    assert len(curve) == p["alpha_steps"] >= 11
    assert float(curve[0]["alpha"]) == 0.0 and float(curve[-1]["alpha"]) == 1.0
    md = (out / "style-interpolation.md").read_text()
    assert re.search(r"\*\*Monotonicity: (both|not both) curves are monotonic\*\*", md)
    assert re.search(r"\d+ violations? in 10 steps", md)
    assert "style-interpolation.png" in md and "style-interpolation-grid.png" in md
    side = p["grid_steps"] * (p["display_size"] + 2) + 2  # save_grid: 2-pixel padding
    assert Image.open(out / "style-interpolation-grid.png").size == (side, side)
    assert Image.open(out / "style-interpolation.png").size[0] > 0


def test_the_n_styles_network_is_shared_between_the_experiments(runs):
    _, trained = runs
    n = style_n_vs_single.PRESETS["tiny"]["num_styles"]
    assert trained["style-n-vs-single"] == {"multi": 1, "single": n}
    assert trained["style-add"] == {"add": 1, "single": 2}  # its base is style-n-vs-single's network
    assert trained["style-interpolation"] == {}


def test_a_rerun_loads_every_model_and_trains_nothing(runs, tmp_path, monkeypatch):
    root, _ = runs
    models = root / "models"
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(models))
    stamps = {f: f.stat().st_mtime_ns for f in models.glob("*.pt")}
    assert len(stamps) == 1 + 3 + 3  # the N-styles net, 3 single-style nets, the added style and 2 baselines
    before = collections.Counter(style_common.TRAINING_RUNS)
    for name in MODULES:  # new output folders: every cell is recomputed, every network loaded
        run_experiment(name, "tiny", tmp_path / name, workers=1, progress=False)
        assert (tmp_path / name / f"{name}.md").is_file()
    assert style_common.TRAINING_RUNS == before
    assert {f: f.stat().st_mtime_ns for f in models.glob("*.pt")} == stamps
    old = _csv(root / "style-n-vs-single" / "losses.csv")
    assert _csv(tmp_path / "style-n-vs-single" / "losses.csv") == old  # deterministic evaluation


def test_folders_of_content_and_style_images(tmp_path, monkeypatch):
    """The full presets' path: ContentImages with held-out files, style images in sorted order."""
    from physamp.models.style.data import bundled_content_images, bundled_style_images
    from physamp.plotting import save_image

    for i, image in enumerate(bundled_content_images(24, 10, seed=1)):
        save_image(image, tmp_path / "content" / f"{'ab'[i % 2]}" / f"photo{i:02d}.png")
    images, names = bundled_style_images(3, 32)
    for image, name in zip(images, names, strict=True):
        save_image(image, tmp_path / "styles" / f"{name}.png")
    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "models"))
    folders = {"content_root": str(tmp_path / "content"), "style_root": str(tmp_path / "styles")}
    overrides = {**folders, "heldout_images": 4}
    run_experiment(
        "style-interpolation", "tiny", tmp_path / "out", workers=1, progress=False, overrides=overrides
    )
    md = (tmp_path / "out" / "style-interpolation.md").read_text()
    assert "the 10 image files under" in md and "4 of them, drawn by a fixed seed, **held out**" in md
    assert "style image 'brick' of" in md and "Monotonicity" in md
    with pytest.raises(ValueError, match="needs 4.*or set new_style=FILE"):
        style_add.new_style({**style_add.PRESETS["tiny"], **folders})
