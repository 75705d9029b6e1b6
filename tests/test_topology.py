"""Tests for physamp.topology: graphs, bipartitions, masks, pixel mappings, solver intersection."""

from __future__ import annotations

import dwave.graphs as dg
import matplotlib
import networkx as nx
import numpy as np
import pytest
import torch

from physamp.topology import (
    PIXEL_MAPPINGS,
    Topology,
    bipartite_subgraph_colouring,
    chimera_rbm,
    dense_rbm,
    draw_topology,
    intersect_with_solver,
    pegasus_rbm,
    pixel_mapping_permutation,
    pixels_to_units,
    random_mask,
    units_to_pixels,
    zephyr_rbm,
)
from physamp.topology.pixels import pixel_cells

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def c14() -> Topology:
    return chimera_rbm(14)


def assert_mask_matches_graph(topo: Topology) -> None:
    """mask[j, i] is True exactly for the graph's (hidden[j], visible[i]) edges."""
    expected = torch.zeros(topo.n_hidden, topo.n_visible, dtype=torch.bool)
    vis = {q: i for i, q in enumerate(topo.visible)}
    hid = {q: j for j, q in enumerate(topo.hidden)}
    for a, b in topo.graph.edges():
        if a in hid:
            a, b = b, a
        assert a in vis and b in hid, f"edge ({a}, {b}) is not visible-hidden"
        expected[hid[b], vis[a]] = True
    assert torch.equal(topo.mask, expected)


# Chimera ------------------------------------------------------------------------------
def test_chimera_c14_is_the_thesis_rbm(c14):
    assert (c14.n_visible, c14.n_hidden) == (784, 784)
    assert c14.num_connections == 4592
    assert c14.mask.shape == (784, 784) and c14.mask.dtype == torch.bool
    assert c14.fraction_removed > 0.99
    assert c14.labels() == c14.visible + c14.hidden


def test_chimera_mask_consistent_with_graph(c14):
    assert_mask_matches_graph(c14)
    assert c14.graph.number_of_edges() == dg.chimera_graph(14).number_of_edges()


def test_chimera_colour_rule_and_default_order():
    topo = chimera_rbm(3, 2, 4)
    coords = dg.chimera_coordinates(3, 2, 4)
    for q in topo.visible:
        i, j, u, _ = coords.linear_to_chimera(q)
        assert (i + j + u) % 2 == 0
    for q in topo.hidden:
        i, j, u, _ = coords.linear_to_chimera(q)
        assert (i + j + u) % 2 == 1
    assert topo.visible == sorted(topo.visible) and topo.hidden == sorted(topo.hidden)
    assert len(topo.visible) == len(topo.hidden) == 3 * 2 * 4


def test_pixel_mapping_does_not_change_connections(c14):
    for name in PIXEL_MAPPINGS:
        mapped = chimera_rbm(14, pixel_mapping=name)
        assert sorted(mapped.visible) == sorted(c14.visible)
        assert mapped.hidden == c14.hidden
        assert mapped.num_connections == 4592
        assert_mask_matches_graph(mapped)


# Pixel mappings -----------------------------------------------------------------------
@pytest.mark.parametrize("name", PIXEL_MAPPINGS)
def test_pixel_mappings_are_bijections(name):
    perm = pixel_mapping_permutation(name, 14)
    assert perm.shape == (784,)
    assert np.array_equal(np.sort(perm), np.arange(784))
    topo = chimera_rbm(14, pixel_mapping=name)
    c14_visible = sorted(topo.visible)
    assert topo.visible == [c14_visible[idx] for idx in perm]


def test_pixel_blocks_puts_2x2_block_in_one_cell():
    cells = pixel_cells("pixel_blocks", 14)
    side = 28
    for r0, c0 in [(0, 0), (2, 4), (26, 26)]:
        block = [(r0 + a) * side + (c0 + b) for a in (0, 1) for b in (0, 1)]
        ij = {tuple(cells[p, :2]) for p in block}
        assert ij == {(r0 // 2, c0 // 2)}
        assert sorted(cells[block, 3]) == [0, 1, 2, 3]
    # unit k = 2a + b of cell (0, 0) (visible shore u = 0) carries pixel (a, b)
    assert [tuple(cells[p]) for p in (0, 1, side, side + 1)] == [(0, 0, 0, k) for k in range(4)]
    # the qubit of pixel 0 is visible unit 0 of the mapped topology
    topo = chimera_rbm(14, pixel_mapping="pixel_blocks")
    coords = dg.chimera_coordinates(14)
    assert coords.linear_to_chimera(topo.visible[1])[:2] == (0, 0)
    assert coords.linear_to_chimera(topo.visible[side])[:2] == (0, 0)
    assert coords.linear_to_chimera(topo.visible[2])[:2] == (0, 1)


def test_extended_pixel_blocks_spread_over_a_larger_window():
    cells = pixel_cells("extended_pixel_blocks", 14)
    rows, cols = np.divmod(np.arange(784), 28)
    spans = []
    for i in range(14):
        for j in range(14):
            pix = np.flatnonzero((cells[:, 0] == i) & (cells[:, 1] == j))
            assert len(pix) == 4
            spans.append((np.ptp(rows[pix]), np.ptp(cols[pix])))
    assert set(spans) == {(2, 2)}  # a 3x3 window, never a 2x2 block
    assert not np.array_equal(
        pixel_mapping_permutation("extended_pixel_blocks", 14),
        pixel_mapping_permutation("pixel_blocks", 14),
    )


def test_pixels_units_round_trip():
    perm = pixel_mapping_permutation("pixel_blocks", 4)
    images = torch.arange(2 * 64).reshape(2, 64)
    units = pixels_to_units(images, perm)
    assert torch.equal(units[:, perm[5]], images[:, 5])
    assert torch.equal(units_to_pixels(units, perm), images)
    assert np.array_equal(units_to_pixels(pixels_to_units(images.numpy(), perm), perm), images.numpy())


# Random / dense masks -----------------------------------------------------------------
def test_random_mask_removes_exact_count_and_is_reproducible():
    nv, nh, fraction = 30, 20, 0.371  # 222.6 connections: round, not truncate
    topo = random_mask(nv, nh, fraction, seed=3)
    assert topo.mask.shape == (nh, nv)
    assert nv * nh - topo.num_connections == 223
    assert torch.equal(topo.mask, random_mask(nv, nh, fraction, seed=3).mask)
    assert not torch.equal(topo.mask, random_mask(nv, nh, fraction, seed=4).mask)
    assert_mask_matches_graph(topo)
    assert topo.visible == list(range(nv)) and topo.hidden == list(range(nv, nv + nh))


@pytest.mark.parametrize("fraction, kept", [(0.0, 600), (1.0, 0)])
def test_random_mask_extremes(fraction, kept):
    assert random_mask(30, 20, fraction, seed=0).num_connections == kept


def test_dense_rbm():
    topo = dense_rbm(5, 3)
    assert topo.mask.all() and topo.mask.shape == (3, 5)
    assert nx.is_isomorphic(topo.graph, nx.complete_bipartite_graph(5, 3))


# Pegasus / Zephyr ---------------------------------------------------------------------
@pytest.mark.parametrize("build, size", [(pegasus_rbm, 4), (zephyr_rbm, 3)])
def test_bipartite_subgraph(build, size):
    topo = build(size)
    visible, hidden = set(topo.visible), set(topo.hidden)
    assert nx.is_bipartite(topo.graph)
    for a, b in topo.graph.edges():
        assert (a in visible) != (b in visible), f"edge ({a}, {b}) joins units of one side"
        assert (a in hidden) != (b in hidden)
    assert topo.info["fraction_couplers_kept"] >= 0.8  # measured 0.808 (P4), 0.821 (Z3)
    assert topo.num_connections == round(topo.info["fraction_couplers_kept"] * topo.info["hardware_couplers"])
    assert_mask_matches_graph(topo)
    full = dg.pegasus_graph(size) if build is pegasus_rbm else dg.zephyr_graph(size)
    assert visible | hidden == set(full.nodes)
    # a 1-flip local optimum of max-cut on the full hardware graph
    colour = {q: int(q in hidden) for q in full.nodes}
    for q in full.nodes:
        same = sum(colour[x] == colour[q] for x in full.adj[q])
        assert 2 * same <= full.degree(q)
    # the starting point is the orientation colouring u
    key = "pegasus_index" if build is pegasus_rbm else "zephyr_index"
    u_cut = sum(full.nodes[a][key][0] != full.nodes[b][key][0] for a, b in full.edges())
    assert topo.info["initial_colouring"] == "u"
    assert topo.info["initial_fraction_kept"] == pytest.approx(u_cut / full.number_of_edges())
    assert build(size, seed=1).num_connections >= topo.num_connections * 0.99
    assert build(size).visible == topo.visible  # deterministic


def test_local_search_reaches_half_the_edges():
    graph = nx.gnp_random_graph(40, 0.2, seed=1)
    colour = bipartite_subgraph_colouring(graph, dict.fromkeys(graph.nodes, 0), seed=2)
    cut = sum(colour[a] != colour[b] for a, b in graph.edges())
    assert 2 * cut >= graph.number_of_edges()  # every 1-flip local optimum cuts >= half
    assert colour == bipartite_subgraph_colouring(graph, dict.fromkeys(graph.nodes, 0), seed=2)


# Solver intersection ------------------------------------------------------------------
def test_intersect_with_solver_missing_qubit_and_coupler():
    topo = chimera_rbm(2)
    solver = dg.chimera_graph(2)
    dead_qubit = topo.hidden[3]
    dead_coupler = next((a, b) for a, b in topo.graph.edges() if dead_qubit not in (a, b))
    solver.remove_node(dead_qubit)
    solver.remove_edge(*dead_coupler)

    restricted, report = intersect_with_solver(topo, list(solver.nodes), list(solver.edges))
    lost = topo.graph.degree(dead_qubit)
    assert restricted.visible == topo.visible and restricted.hidden == topo.hidden
    assert restricted.mask.shape == topo.mask.shape
    assert not restricted.mask[3].any() and topo.mask[3].any()
    assert restricted.num_connections == topo.num_connections - lost - 1
    assert report.missing_couplers == 1
    assert [(m.kind, m.index, m.qubit) for m in report.missing_qubits] == [("hidden", 3, dead_qubit)]
    assert report.fraction_connections_kept == pytest.approx(
        restricted.num_connections / topo.num_connections
    )
    assert restricted.info["missing_hidden"] == [3]
    assert dead_qubit not in restricted.graph
    assert_mask_matches_graph(restricted)
    text = str(report)
    assert "hidden unit 3" in text and "missing couplers (both qubits working): 1" in text

    # a networkx graph and a structured-sampler-like object give the same answer
    same, _ = intersect_with_solver(topo, solver)

    class FakeSampler:
        nodelist = list(solver.nodes)
        edgelist = list(solver.edges)

    also, also_report = topo.restrict_to(FakeSampler())
    assert torch.equal(same.mask, restricted.mask) and torch.equal(also.mask, restricted.mask)
    assert also_report.missing_couplers == 1


def test_intersect_with_full_graph_keeps_everything():
    topo = chimera_rbm(2)
    restricted, report = intersect_with_solver(topo, dg.chimera_graph(2))
    assert torch.equal(restricted.mask, topo.mask)
    assert report.missing_qubits == [] and report.missing_couplers == 0
    assert report.fraction_connections_kept == 1.0


# Drawing ------------------------------------------------------------------------------
@pytest.mark.parametrize("topo", [chimera_rbm(2), pegasus_rbm(2), random_mask(6, 4, 0.5, seed=0)])
def test_draw_topology_headless(tmp_path, topo):
    import matplotlib.pyplot as plt

    ax = draw_topology(topo)
    path = tmp_path / "topo.png"
    ax.figure.savefig(path)
    plt.close(ax.figure)
    assert path.stat().st_size > 1000


# Errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: chimera_rbm(0), "m must be >= 1"),
        (lambda: chimera_rbm(2.5), "m must be an integer"),
        (lambda: chimera_rbm(True), "m must be an integer"),
        (lambda: pegasus_rbm(1), "m must be >= 2"),
        (lambda: zephyr_rbm("3"), "m must be an integer"),
        (lambda: chimera_rbm(4, 6, pixel_mapping="pixel_blocks"), "square"),
        (lambda: chimera_rbm(3, pixel_mapping="pixel_blocks"), "even m"),
        (lambda: chimera_rbm(4, t=3, pixel_mapping="pixel_blocks"), "t=4"),
        (lambda: chimera_rbm(4, pixel_mapping="spiral"), "pixel_blocks, extended_pixel_blocks"),
        (lambda: pixel_mapping_permutation("spiral", 4), "unknown pixel mapping 'spiral'"),
        (lambda: random_mask(4, 4, 1.5), r"\[0, 1\]"),
        (lambda: random_mask(4, 4, -0.1), r"\[0, 1\]"),
        (lambda: random_mask(4, 4, float("nan")), r"\[0, 1\]"),
        (lambda: random_mask(0, 4, 0.5), "n_visible must be >= 1"),
        (lambda: intersect_with_solver(chimera_rbm(1), [0, 1]), "edgelist"),
    ],
)
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_topology_rejects_inconsistent_mask():
    topo = chimera_rbm(1)
    with pytest.raises(ValueError, match="expected \\(n_hidden, n_visible\\)"):
        Topology(topo.graph, topo.visible, topo.hidden, topo.mask.t()[:3])
    with pytest.raises(ValueError, match="distinct"):
        Topology.from_mask(torch.ones(2, 2, dtype=torch.bool), visible=[0, 1], hidden=[1, 2])


def test_bqm_of_masked_rbm_lives_on_the_hardware_graph():
    from physamp.ising import rbm_to_bqm
    from physamp.models.rbm import RBM

    topo = chimera_rbm(2)
    rbm = RBM(topo.n_visible, topo.n_hidden, mask=topo.mask)
    bqm = rbm_to_bqm(rbm, labels=topo)
    assert set(bqm.variables) == set(topo.graph.nodes)
    assert bqm.num_interactions == topo.num_connections
    assert all(topo.graph.has_edge(a, b) for a, b in bqm.quadratic)
