"""784×784 RBMs on Pegasus (Advantage) and Zephyr (Advantage2) with a 28×28 pixel mapping.

The thesis's chimera RBM puts a 28×28 MNIST digit on the 784 visible units of
a square Chimera ``C_14``. :func:`modern_rbm` builds the same 784 visible ×
784 hidden RBM on today's graphs:

1. **Sub-lattice.** The bipartite RBM of :func:`~physamp.topology.pegasus_rbm`
   / :func:`~physamp.topology.zephyr_rbm` (orientation colouring ``u``:
   vertical qubits visible, horizontal qubits hidden; it keeps about 80 % of
   the couplers) for the smallest ``m`` with at least 784 visible and 784
   hidden units: ``pegasus_rbm(9)`` (832 + 832) and ``zephyr_rbm(7, 4)``
   (840 + 840).
2. **Compact region.** Each qubit is placed at its *centre*: the mean
   ``dwave.graphs`` layout position (``pegasus_layout`` / ``zephyr_layout``)
   of its hardware neighbours. The layout gives a qubit one end point; its
   neighbours cover its whole length, so the mean is the middle of the
   qubit's line. The 784 visible and the 784 hidden qubits whose centres are
   closest to the centre of the lattice (Chebyshev distance, the square of
   the image; ties by qubit index) are kept.
3. **Pixel mapping.** Visible qubits are sorted by centre ``y`` and cut into
   28 bands of 28; each band is sorted by centre ``x``: pixel ``(r, c)``
   (row-major ``p = 28 r + c``) goes to the ``c``-th qubit of band ``r``.
   This grid is then refined by a seeded pairwise-swap local search that
   lowers the total hop distance (in the RBM graph) between 4-neighbouring
   pixels, accepting only swaps that strictly lower it (deterministic).

Visible unit ``p`` of the returned :class:`~physamp.topology.Topology` *is*
pixel ``p`` (no reordering of flattened images). ``info`` holds
``connections``, ``fraction_couplers_kept`` (connections / hardware couplers
among the 1,568 chosen qubits, visible-visible and hidden-hidden couplers
included), ``sub_lattice``, ``mean_neighbour_hops`` (mean graph distance
between the qubits of 4-neighbouring pixels) and the same for the sorted grid
before refinement (seed 0: Pegasus 2.36 → 2.06, Zephyr 5.32 → 2.66; a shuffled
mapping gives about 12). Measured (seed 0): Pegasus 784×784 keeps 8,832 connections,
Zephyr 11,657 -- against Chimera's 4,592 and a dense RBM's 614,656.

:func:`pegasus_topology` and :func:`zephyr_topology` are the registry's
``"pegasus"`` and ``"zephyr"`` factories (:mod:`physamp.topology.registry`): from
an RBM shape (784 x 784 only) they build :func:`modern_rbm`, from a grid size
``m`` the whole bipartite :func:`~physamp.topology.pegasus_rbm` /
:func:`~physamp.topology.zephyr_rbm`.
"""

from __future__ import annotations

from functools import lru_cache

import dwave.graphs as dg
import networkx as nx
import numpy as np

from physamp.topology.base import Topology
from physamp.topology.bipartite import pegasus_rbm, zephyr_rbm
from physamp.topology.registry import TopologyRequest

__all__ = [
    "MODERN_FAMILIES",
    "grid_neighbour_pairs",
    "mean_neighbour_hops",
    "modern_rbm",
    "pegasus_topology",
    "zephyr_topology",
]

MODERN_FAMILIES = ("pegasus", "zephyr")
SIDE = 28


def grid_neighbour_pairs(side: int = SIDE) -> np.ndarray:
    """``(E, 2)`` pixel indices of horizontally and vertically adjacent pixels (row-major)."""
    idx = np.arange(side * side).reshape(side, side)
    horiz = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1)
    vert = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], axis=1)
    return np.concatenate([horiz, vert])


def _hop_matrix(graph: nx.Graph, nodes: list) -> np.ndarray:
    """All-pairs hop distances between ``nodes`` in ``graph`` (unreachable: 2 × #nodes).

    Breadth-first search from every source at once: one sparse product per hop.
    """
    import torch

    labels = list(graph.nodes)
    index = {q: i for i, q in enumerate(labels)}
    n = len(labels)
    edges = [(index[a], index[b]) for a, b in graph.edges()]
    ij = torch.tensor(edges + [(b, a) for a, b in edges], dtype=torch.long).T.reshape(2, -1)
    adj = torch.sparse_coo_tensor(ij, torch.ones(ij.shape[1]), (n, n), check_invariants=False)
    adj = adj.coalesce()
    src = torch.tensor([index[q] for q in nodes], dtype=torch.long)
    far = 2 * n
    dist = torch.full((len(nodes), n), far, dtype=torch.int32)
    frontier = torch.zeros(len(nodes), n)
    frontier[torch.arange(len(nodes)), src] = 1.0
    seen = frontier > 0
    dist[seen] = 0
    hop = 0
    while bool(frontier.any()):
        hop += 1
        reach = torch.sparse.mm(adj, frontier.T).T > 0
        new = reach & ~seen
        dist[new] = hop
        seen |= new
        frontier = new.float()
    return dist[:, src].numpy()


def mean_neighbour_hops(topology: Topology, side: int = SIDE) -> float:
    """Mean hop distance, in ``topology.graph``, between the qubits of 4-neighbouring pixels.

    Assumes visible unit ``p`` carries pixel ``p`` of a row-major ``side × side`` image.
    """
    dist = _hop_matrix(topology.graph, topology.visible)
    pairs = grid_neighbour_pairs(side)
    return float(dist[pairs[:, 0], pairs[:, 1]].mean())


def _centres(graph: nx.Graph, family: str) -> dict:
    pos = dg.pegasus_layout(graph) if family == "pegasus" else dg.zephyr_layout(graph)
    out = {}
    for q in graph.nodes:
        nbrs = list(graph.adj[q])
        pts = np.array([pos[x] for x in nbrs] if nbrs else [pos[q]], dtype=float)
        out[q] = pts.mean(axis=0)
    return out


def _closest(qubits: list, centres: dict, centre: np.ndarray, n: int) -> list:
    key = [(float(np.abs(centres[q] - centre).max()), q) for q in qubits]
    return sorted(q for _, q in sorted(key)[:n])


def _refine(order: np.ndarray, dist: np.ndarray, side: int, steps: int, seed: int) -> np.ndarray:
    """Pairwise swaps of pixel assignments that strictly lower the neighbour hop total."""
    n = side * side
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in grid_neighbour_pairs(side):
        nbrs[a].append(b)
        nbrs[b].append(a)
    order = order.copy()  # order[p] = index (into the qubit list) of the qubit carrying pixel p
    rng = np.random.default_rng(seed)
    props = rng.integers(0, n, size=(steps, 2))
    # half of the proposals swap a pixel with a nearby pixel (within 3 rows/columns)
    near = rng.integers(-3, 4, size=(steps, 2))
    for s in range(steps):
        a = int(props[s, 0])
        if s % 2:
            r, c = divmod(a, side)
            r2 = min(max(r + int(near[s, 0]), 0), side - 1)
            c2 = min(max(c + int(near[s, 1]), 0), side - 1)
            b = r2 * side + c2
        else:
            b = int(props[s, 1])
        if a == b:
            continue
        qa, qb = order[a], order[b]
        before = sum(dist[qa, order[x]] for x in nbrs[a]) + sum(dist[qb, order[x]] for x in nbrs[b])
        order[a], order[b] = qb, qa
        after = sum(dist[qb, order[x]] for x in nbrs[a]) + sum(dist[qa, order[x]] for x in nbrs[b])
        if after >= before:
            order[a], order[b] = qa, qb
    return order


def _sub_lattice(family: str, n_visible: int, n_hidden: int) -> Topology:
    build = pegasus_rbm if family == "pegasus" else zephyr_rbm
    for m in range(2, 64):
        topo = build(m)
        if topo.n_visible >= n_visible and topo.n_hidden >= n_hidden:
            return topo
    raise ValueError(f"no {family} sub-lattice with {n_visible} visible and {n_hidden} hidden units")


@lru_cache(maxsize=8)
def _modern_rbm_cached(family: str, seed: int, refine_steps: int) -> Topology:
    n = SIDE * SIDE
    base = _sub_lattice(family, n, n)
    m = int(base.name.split("(")[1].split(",")[0].rstrip(")"))
    hardware = dg.pegasus_graph(m) if family == "pegasus" else dg.zephyr_graph(m, 4)
    centres = _centres(hardware, family)
    lattice_centre = np.mean([centres[q] for q in hardware.nodes], axis=0)
    visible = _closest(base.visible, centres, lattice_centre, n)
    hidden = _closest(base.hidden, centres, lattice_centre, n)
    region = Topology.from_graph(base.graph, visible, hidden)
    # the sorted grid: 28 bands by centre y (layout y grows downwards as -y), then x in each band
    ys = np.array([-centres[q][1] for q in visible])
    xs = np.array([centres[q][0] for q in visible])
    by_y = np.lexsort((xs, ys))
    bands = by_y.reshape(SIDE, SIDE)
    order0 = np.concatenate([band[np.argsort(xs[band], kind="stable")] for band in bands])
    dist = _hop_matrix(region.graph, visible)
    pairs = grid_neighbour_pairs(SIDE)
    hops0 = float(dist[order0[pairs[:, 0]], order0[pairs[:, 1]]].mean())
    order = _refine(order0, dist, SIDE, refine_steps, seed) if refine_steps else order0
    hops = float(dist[order[pairs[:, 0]], order[pairs[:, 1]]].mean())
    pixel_visible = [visible[i] for i in order]
    chosen = hardware.subgraph(pixel_visible + hidden)
    topo = Topology.from_graph(base.graph, pixel_visible, hidden, name=f"{family}-784x784[{base.name}]")
    topo.info = {
        "family": family,
        "sub_lattice": base.name,
        "connections": topo.num_connections,
        "hardware_couplers": chosen.number_of_edges(),
        "fraction_couplers_kept": topo.num_connections / chosen.number_of_edges(),
        "pixel_mapping": "layout-sorted 28x28 grid + swap refinement",
        "mean_neighbour_hops": hops,
        "mean_neighbour_hops_sorted_grid": hops0,
        "refine_steps": refine_steps,
        "seed": seed,
    }
    return topo


def modern_rbm(family: str, *, seed: int = 0, refine_steps: int = 100_000) -> Topology:
    """The 784 visible × 784 hidden RBM on ``family`` ("pegasus" or "zephyr"); see module doc.

    Visible unit ``p`` carries pixel ``p`` of a row-major 28×28 image. Cached per
    arguments; the returned object is a fresh copy, safe to modify.
    """
    if family not in MODERN_FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(MODERN_FAMILIES)}")
    t = _modern_rbm_cached(family, int(seed), int(refine_steps))
    return Topology(t.graph.copy(), t.visible, t.hidden, t.mask.clone(), t.name, dict(t.info))


def _family_topology(family: str, request: TopologyRequest) -> Topology:
    if request.size is not None:  # request.from_size
        request.no_arg()
        build = pegasus_rbm if family == "pegasus" else zephyr_rbm
        return build(request.size, seed=request.seed)
    n = SIDE * SIDE
    if request.arg or request.rbm_shape() != (n, n):
        raise ValueError(
            f"the {family} topology is a 784 visible x 784 hidden RBM with a 28x28 pixel mapping "
            f"(spec {family!r}, no options); got spec {request.spec!r} with {request.n_visible} visible x "
            f"{request.n_hidden} hidden (from a grid size m it is {family}_rbm(m))"
        )
    return modern_rbm(family)  # one fixed layout (seed 0) for every training seed


def pegasus_topology(request: TopologyRequest) -> Topology:
    """Pegasus (D-Wave Advantage): 784x784 pixel-mapped RBM, or pegasus_rbm(m) from a grid size."""
    return _family_topology("pegasus", request)


def zephyr_topology(request: TopologyRequest) -> Topology:
    """Zephyr (D-Wave Advantage2): 784x784 pixel-mapped RBM, or zephyr_rbm(m) from a grid size."""
    return _family_topology("zephyr", request)
