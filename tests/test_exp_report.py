"""The experiments' shared outputs: error-bar plots, Markdown reports, presets and cell grids."""

from __future__ import annotations

import matplotlib
import pytest

from physamp.experiments import common

matplotlib.use("Agg")

AGG = [((kind, s), 100.0 + i, 1.0, 2) for i, (kind, s) in enumerate([("a", 0.0), ("a", 0.1), ("b", 0.0)])]


def test_relative_change():
    assert common.relative_change(110.0, 100.0) == "+10.0 %"
    assert common.relative_change(99.0, 100.0, nats=True) == "-1.00 (-1.0 %)"
    assert common.relative_change(99.0, None) == ""


def test_errorbar_plot_series_legend_and_reference():
    fig, ax = common.new_figure()
    common.errorbar_plot(
        ax,
        AGG,
        x=lambda key: key[1],
        group=lambda key: key[0],
        groups=["b", "missing", "a"],
        label=lambda series: f"series {series}",
        markers="os^",
        reference=(99.0, "reference"),
        xlabel="σ",
    )
    assert len(ax.containers) == 2  # one error-bar series per group with points
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["reference", "series b", "series a"]  # matplotlib lists lines before error bars
    markers = [c.lines[0].get_marker() for c in ax.containers]
    assert markers == ["o", "^"]  # an empty group keeps its marker
    assert ax.get_xlabel() == "σ" and ax.get_ylabel() == common.NLL_AXIS
    fig2, ax2 = common.new_figure()
    common.errorbar_plot(ax2, [(k, m, s, n) for (_, k), m, s, n in AGG[:2]], annotate=True, xlabel="x")
    assert ax2.get_legend() is None and [t.get_text() for t in ax2.texts] == ["0.0", "0.1"]
    for f in (fig, fig2):
        matplotlib.pyplot.close(f)


def test_report_writes_png_and_markdown(tmp_path):
    out = common.Report(tmp_path, "demo", "Demo [quick]", "\n- Data: x.\n")
    png = out.errorbar_plot([(0.0, 1.0, 0.1, 1), (1.0, 2.0, 0.1, 1)], xlabel="x", title_size=8)
    assert png == tmp_path / "demo.png" and png.stat().st_size > 1000
    md = out.write(["key", "test NLL"], [["a", 1.234]], "one\nparagraph\n\n  second   one ")
    text = md.read_text()
    assert text.startswith("# Demo [quick]\n\n- Data: x.\n\n**Data:** ")
    assert "| key | test NLL |\n|---|---|\n| a | 1.23 |" in text
    assert text.endswith("one paragraph\n\nsecond one\n")


def test_presets_seed_grid_and_protocol():
    p = common.presets(quick=dict(epochs=1, ais_betas=1000), full=dict(epochs=20))
    assert p["quick"] == {"seeds": [0], "ais_runs": 20, "ais_betas": 1000, "epochs": 1}
    assert p["full"]["seeds"] == [0, 1, 2, 3, 4] and p["full"]["ais_betas"] == 14500
    p["quick"]["seeds"].append(1)
    assert common.QUICK_EVALUATION["seeds"] == [0]  # each preset owns its lists
    grid = list(common.seed_grid({"seeds": [0, 1], "a": [5, 6]}, "a", ("x",)))
    assert grid == [(0, 5, "x"), (0, 6, "x"), (1, 5, "x"), (1, 6, "x")]
    assert common.pcd15({"n_hidden": 8, "epochs": 2}, 3, topology="chimera") == dict(
        n_hidden=8, epochs=2, k=15, seed=3, topology="chimera"
    )
    doc = "Title\n\nProtocol\n--------\n- one\n\nPresets: quick"
    assert common.protocol_section(doc) == "\n- one\n\n"
    with pytest.raises(ValueError, match="Protocol"):
        common.protocol_section("no heading")
    with pytest.raises(ValueError, match="unknown topologies \\['king'\\]"):
        common.topology_cells("x", {"seeds": [0], "epochs": 1, "topologies": ["king"]}, {"dense": None})
