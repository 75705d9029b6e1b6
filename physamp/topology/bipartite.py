"""RBMs on Pegasus and Zephyr: a bipartite subgraph of a non-bipartite graph.

Pegasus and Zephyr contain triangles (odd couplers join two parallel qubits
that share orthogonal neighbours), so no 2-colouring cuts every coupler. An
RBM uses the couplers of a large cut:

1. Start from a parity colouring of the coordinates. Candidates are the
   orientation ``u`` alone and ``u`` xor'ed with one other coordinate; the one
   cutting most couplers is kept (``u`` alone wins on both families: it cuts
   every internal coupler and no odd or external one).
2. Local search (the classic 1-flip max-cut heuristic): visit the nodes in a
   seeded random order and flip any node with more same-colour than
   opposite-colour neighbours; each flip strictly grows the cut, so the loop
   stops at a local optimum. Deterministic given ``seed``.

Colour 0 qubits carry visible units, colour 1 hidden units; unit order is by
linear qubit index. ``info["fraction_couplers_kept"]`` is cut couplers / all
couplers. Measured: ``pegasus_rbm(16)`` (Advantage size) keeps 0.8003 and
``zephyr_rbm(12)`` (Advantage2 size) keeps 0.8038 of the couplers; the local
search does not improve the ``u`` colouring there.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import dwave.graphs as dg
import networkx as nx
import numpy as np

from physamp.topology.base import Topology, check_size

__all__ = ["bipartite_subgraph_colouring", "cut_size", "pegasus_rbm", "zephyr_rbm"]


def cut_size(graph: nx.Graph, colour: dict) -> int:
    """Number of edges of ``graph`` whose ends have different colours."""
    return sum(colour[a] != colour[b] for a, b in graph.edges())


def bipartite_subgraph_colouring(
    graph: nx.Graph, initial: dict[Hashable, int], seed: int = 0
) -> dict[Hashable, int]:
    """Improve a 0/1 colouring of ``graph`` by single flips until no flip grows the cut.

    A node is flipped when its same-colour degree exceeds its opposite-colour
    degree. Nodes are visited in the order of ``numpy.random.default_rng(seed)``.
    Returns a new dict; ``initial`` is not modified.
    """
    colour = {q: int(initial[q]) for q in graph.nodes}
    nodes = list(graph.nodes)
    order = [nodes[idx] for idx in np.random.default_rng(seed).permutation(len(nodes))]
    adjacency = {q: list(graph.adj[q]) for q in nodes}
    changed = True
    while changed:
        changed = False
        for q in order:
            same = sum(colour[x] == colour[q] for x in adjacency[q])
            if 2 * same > len(adjacency[q]):
                colour[q] ^= 1
                changed = True
    return colour


def _bipartite_rbm(
    graph: nx.Graph, coord_key: str, coord_names: Sequence[str], name: str, seed: int
) -> Topology:
    coords = {q: graph.nodes[q][coord_key] for q in graph.nodes}
    u_pos = coord_names.index("u")
    candidates: dict[str, tuple[int, ...]] = {"u": (u_pos,)}
    for pos, other in enumerate(coord_names):
        if other != "u":
            candidates[f"u^{other}"] = (u_pos, pos)
    best_name, best_colour, best_cut = None, None, -1
    for cand, positions in candidates.items():  # dict order: "u" first, ties keep it
        colour = {q: sum(c[p] for p in positions) % 2 for q, c in coords.items()}
        cut = cut_size(graph, colour)
        if cut > best_cut:
            best_name, best_colour, best_cut = cand, colour, cut
    assert best_colour is not None  # any cut (>= 0) beats the start (-1)
    colour = bipartite_subgraph_colouring(graph, best_colour, seed=seed)
    kept_cut = cut_size(graph, colour)
    total = graph.number_of_edges()
    visible = sorted(q for q in graph.nodes if colour[q] == 0)
    hidden = sorted(q for q in graph.nodes if colour[q] == 1)
    info = {
        "family": graph.graph.get("family"),
        "hardware_couplers": total,
        "initial_colouring": best_name,
        "initial_fraction_kept": best_cut / total if total else 1.0,
        "fraction_couplers_kept": kept_cut / total if total else 1.0,
        "seed": seed,
    }
    return Topology.from_graph(graph, visible, hidden, name=name, info=info)


def pegasus_rbm(m: int, *, seed: int = 0) -> Topology:
    """RBM on a bipartite subgraph of ``dwave.graphs.pegasus_graph(m)`` (linear labels).

    ``m = 16`` is the size of an Advantage QPU (5,640 qubits, 40,484 couplers).
    Returns a :class:`Topology` with ``mask`` of shape ``(n_hidden, n_visible)``;
    ``info["fraction_couplers_kept"]`` is the share of couplers the RBM uses.
    """
    m = check_size("m", m, minimum=2)  # pegasus_graph needs m >= 2
    graph = dg.pegasus_graph(m)
    return _bipartite_rbm(graph, "pegasus_index", ("u", "w", "k", "z"), f"pegasus({m})", seed)


def zephyr_rbm(m: int, t: int = 4, *, seed: int = 0) -> Topology:
    """RBM on a bipartite subgraph of ``dwave.graphs.zephyr_graph(m, t)`` (linear labels).

    ``m = 12, t = 4`` is the size of an Advantage2 QPU (4,800 qubits).
    Returns a :class:`Topology` with ``mask`` of shape ``(n_hidden, n_visible)``;
    ``info["fraction_couplers_kept"]`` is the share of couplers the RBM uses.
    """
    m = check_size("m", m)
    t = check_size("t", t)
    graph = dg.zephyr_graph(m, t)
    return _bipartite_rbm(graph, "zephyr_index", ("u", "w", "k", "j", "z"), f"zephyr({m},{t})", seed)
