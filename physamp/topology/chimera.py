"""RBM on a Chimera graph: Chimera is bipartite.

A Chimera qubit has coordinates ``(i, j, u, k)`` (cell row, cell column,
orientation, index in the shore). Every coupler changes exactly one of ``i``,
``j`` or ``u`` by one, so the colour ``(i + j + u) mod 2`` is a proper
2-colouring: colour 0 qubits carry visible units, colour 1 hidden units. Each
cell thus has one visible shore and one hidden shore, alternating like a
checkerboard.

A square ``C_14`` (``t = 4``) gives 784 visible + 784 hidden units joined by
4,592 couplers (3,136 inside cells, 1,456 between cells): the thesis's
784×784 Chimera RBM, with over 99 % of a dense RBM's 614,656 connections
removed.

Example::

    >>> topo = chimera_rbm(14, pixel_mapping="pixel_blocks")
    >>> topo.n_visible, topo.n_hidden, topo.num_connections
    (784, 784, 4592)

:func:`chimera_topology` is the registry's ``"chimera"`` factory
(:mod:`physamp.topology.registry`): ``chimera[:pixel_blocks|:extended|:none]``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import dwave.graphs as dg

from physamp.topology.base import Topology, check_size
from physamp.topology.pixels import check_pixel_mapping, pixel_mapping_permutation
from physamp.topology.registry import TopologyRequest

__all__ = ["chimera_colour", "chimera_rbm", "chimera_topology"]

# the ARG of a "chimera:ARG" spec -> pixel mapping ("" is the default: see chimera_topology)
SPEC_MAPPINGS = {
    "pixel_blocks": "pixel_blocks",
    "extended": "extended_pixel_blocks",
    "extended_pixel_blocks": "extended_pixel_blocks",
    "none": None,
}


def chimera_colour(i: int, j: int, u: int, k: int = 0) -> int:
    """Colour ``(i + j + u) mod 2`` of Chimera qubit ``(i, j, u, k)``: 0 visible, 1 hidden."""
    return (i + j + u) % 2


def chimera_rbm(m: int, n: int | None = None, t: int = 4, *, pixel_mapping: str | None = None) -> Topology:
    """RBM on the full Chimera graph ``C(m, n, t)`` (``dwave.graphs.chimera_graph``, linear labels).

    Visible units: qubits of colour 0, hidden units: colour 1 (see
    :func:`chimera_colour`); ``n_visible = n_hidden = m·n·t``. Unit order is by
    linear qubit index, except that ``pixel_mapping`` (one of
    :data:`~physamp.topology.pixels.PIXEL_MAPPINGS`, square even ``m`` and
    ``t = 4`` only) orders the visible units so that visible unit ``p`` carries
    pixel ``p`` of the row-major ``2m × 2m`` image.

    Returns a :class:`Topology` with ``mask`` of shape ``(m·n·t, m·n·t)``.
    """
    m = check_size("m", m)
    n = m if n is None else check_size("n", n)
    t = check_size("t", t)
    if pixel_mapping is not None:
        check_pixel_mapping(pixel_mapping, m, n, t)
    graph = dg.chimera_graph(m, n, t)
    visible: list[Hashable] = []
    hidden: list[Hashable] = []
    for q in sorted(graph.nodes):
        (visible if chimera_colour(*graph.nodes[q]["chimera_index"]) == 0 else hidden).append(q)
    if pixel_mapping is not None:
        perm = pixel_mapping_permutation(pixel_mapping, m)
        visible = [visible[idx] for idx in perm]
    info = {
        "family": "chimera",
        "shape": (m, n, t),
        "pixel_mapping": pixel_mapping,
        "hardware_couplers": graph.number_of_edges(),
        "fraction_couplers_kept": 1.0,
    }
    name = f"chimera({m},{n},{t})" + (f"[{pixel_mapping}]" if pixel_mapping else "")
    return Topology.from_graph(graph, visible, hidden, name=name, info=info)


def chimera_topology(request: TopologyRequest) -> Topology:
    """Chimera C_m, bipartite by (i + j + u) mod 2 (chimera[:pixel_blocks|:extended|:none]).

    From a grid size ``m``: :func:`chimera_rbm` ``(m)``, visible units in qubit
    order unless a mapping is named. From an RBM shape: a square ``2m x 2m`` image
    on ``C_m`` with ``4m²`` visible and ``4m²`` hidden units, pixel blocks unless
    another mapping is named (784 x 784: the thesis's chimera RBM).
    """
    if request.arg not in ("", *SPEC_MAPPINGS):
        raise ValueError(
            f"unknown chimera mapping {request.arg!r}; use chimera, chimera:pixel_blocks, chimera:extended "
            "or chimera:none"
        )
    if request.size is not None:  # request.from_size
        return chimera_rbm(request.size, pixel_mapping=SPEC_MAPPINGS.get(request.arg))
    n_visible, n_hidden = request.rbm_shape()
    side = int(round(math.sqrt(n_visible)))
    if side * side != n_visible or side % 2 or n_hidden != n_visible:
        raise ValueError(
            f"the chimera topology lays a square image out as an m x m Chimera with 4m^2 visible and "
            f"4m^2 hidden units; {n_visible} visible x {n_hidden} hidden does not fit (use n_hidden = "
            f"{n_visible} for 28x28 MNIST: the thesis's 784x784 chimera RBM)"
        )
    mapping = SPEC_MAPPINGS[request.arg] if request.arg else "pixel_blocks"
    return chimera_rbm(side // 2, pixel_mapping=mapping)
