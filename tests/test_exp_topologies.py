"""784x784 Pegasus / Zephyr RBMs with a pixel mapping, and the modern-topologies experiment."""

from __future__ import annotations

import csv

import dwave.graphs as dg
import numpy as np
import pytest

from physamp.models.rbm_train import parse_topology
from physamp.topology.modern_pixels import modern_rbm

FAMILIES = ("pegasus", "zephyr")


@pytest.fixture(scope="module", params=FAMILIES)
def topo(request):
    return parse_topology(request.param, 784, 784)


def _hardware(topo):
    sub = topo.info["sub_lattice"]
    m = int(sub.split("(")[1].split(",")[0].rstrip(")"))
    return dg.pegasus_graph(m) if topo.info["family"] == "pegasus" else dg.zephyr_graph(m, 4)


def test_shape_and_info(topo):
    assert topo.n_visible == 784 and topo.n_hidden == 784
    assert tuple(topo.mask.shape) == (784, 784)
    assert topo.info["connections"] == topo.num_connections
    # sparser than dense, richer than chimera's 4,592
    assert 4592 < topo.num_connections < 0.05 * 784 * 784
    assert 0.7 < topo.info["fraction_couplers_kept"] <= 1.0
    # every unit takes part
    assert bool((topo.mask.sum(0) > 0).all()) and bool((topo.mask.sum(1) > 0).all())


def test_bipartite_and_hardware_couplers(topo):
    vis, hid = set(topo.visible), set(topo.hidden)
    assert not vis & hid
    hw = _hardware(topo)
    for a, b in topo.graph.edges():
        assert (a in vis) != (b in vis), "visible-visible or hidden-hidden edge"
        assert hw.has_edge(a, b), f"({a}, {b}) is not a hardware coupler"
    j, i = np.nonzero(topo.mask.numpy())
    for jj, ii in zip(j[:500], i[:500], strict=True):
        assert hw.has_edge(topo.hidden[jj], topo.visible[ii])


def test_visible_order_is_pixel_bijection(topo):
    assert len(topo.visible) == 784 and len(set(topo.visible)) == 784
    # the pixel mapping is recorded in the visible order: unit p carries pixel p
    assert topo.info["pixel_mapping"].startswith("layout-sorted 28x28")


def test_neighbouring_pixels_are_close(topo):
    from physamp.topology.modern_pixels import mean_neighbour_hops

    ours = mean_neighbour_hops(topo)
    assert ours == pytest.approx(topo.info["mean_neighbour_hops"])
    shuffled = modern_rbm(topo.info["family"])
    perm = np.random.default_rng(0).permutation(784)
    shuffled.visible = [shuffled.visible[k] for k in perm]
    random_hops = mean_neighbour_hops(shuffled)
    assert ours < 3.0  # two visible qubits sharing a hidden neighbour are 2 hops apart
    assert ours < 0.4 * random_hops


def test_parse_topology_errors_and_old_specs():
    with pytest.raises(ValueError, match="784 visible x 784 hidden"):
        parse_topology("pegasus", 784, 500)
    with pytest.raises(ValueError, match="784 visible x 784 hidden"):
        parse_topology("zephyr:foo", 784, 784)
    with pytest.raises(ValueError, match="unknown topology"):
        parse_topology("king", 784, 784)
    assert parse_topology("chimera", 784, 784).num_connections == 4592
    assert parse_topology(None, 784, 784) is None


def test_gap_closed():
    from physamp.experiments.modern_topologies import gap_closed

    assert gap_closed(200.0, 150.0, 100.0) == pytest.approx(50.0)
    assert gap_closed(None, 150.0, 100.0) is None


def test_experiment_end_to_end(tmp_path, monkeypatch):
    from physamp.experiments.runner import run_experiment

    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "m"))
    out = tmp_path / "out"
    summary = run_experiment(
        "modern-topologies",
        "quick",
        out,
        workers=1,
        progress=False,
        overrides=dict(max_train=300, max_test=100, ais_runs=4, ais_betas=50),
    )
    assert summary["cells"] == 4
    with open(out / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    conns = {r["topology"]: int(r["connections"]) for r in rows}
    assert conns["chimera"] == 4592 and conns["dense"] == 784 * 784
    assert conns["chimera"] < conns["pegasus"] < conns["zephyr"] < conns["dense"]
    assert all(np.isfinite(float(r["nll"])) for r in rows)
    assert (out / "modern-topologies.png").stat().st_size > 0
    md = (out / "modern-topologies.md").read_text()
    assert "gap closed" in md and "138.2" in md and "4,592" in md


@pytest.mark.slow
def test_quick_preset(tmp_path, monkeypatch):
    from physamp.experiments.runner import run_experiment

    monkeypatch.setenv("PHYSAMP_MODEL_CACHE", str(tmp_path / "m"))
    summary = run_experiment("modern-topologies", "quick", tmp_path / "q", workers=1, progress=False)
    assert summary["cells"] == 4
    md = (tmp_path / "q" / "modern-topologies.md").read_text()
    assert "zephyr" in md and "pegasus" in md
