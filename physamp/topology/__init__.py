"""Hardware topologies for RBMs: which qubit carries which unit, and which couplers exist.

- :class:`Topology`: graph + visible/hidden qubit lists + ``(n_hidden, n_visible)`` mask.
- :func:`chimera_rbm`: Chimera is bipartite, colour ``(i + j + u) mod 2``; ``chimera_rbm(14)``
  is the thesis's 784×784 RBM with 4,592 connections.
- :func:`pegasus_rbm`, :func:`zephyr_rbm`: RBMs on a large bipartite subgraph.
- :func:`dense_rbm`, :func:`random_mask`: dense and randomly thinned controls.
- :mod:`~physamp.topology.pixels`: pixel-to-unit mappings (thesis Fig. 3.1).
- :func:`intersect_with_solver`: drop the qubits and couplers a real QPU lacks.
- :func:`draw_topology`: matplotlib picture, headless-safe.
- :func:`make_topology`: any of the above by name, ``"NAME"`` or ``"NAME:ARG"``, for an
  RBM shape or a grid size; :func:`register_topology` adds a name (see
  :mod:`~physamp.topology.registry`), :func:`available_topologies` lists them.

Example::

    >>> from physamp.topology import chimera_rbm
    >>> topo = chimera_rbm(14, pixel_mapping="pixel_blocks")
    >>> topo.mask.shape, topo.num_connections
    (torch.Size([784, 784]), 4592)
    >>> make_topology("chimera", 784, 784).num_connections  # the same RBM, by name
    4592
"""

from physamp.topology.base import Topology
from physamp.topology.bipartite import bipartite_subgraph_colouring, pegasus_rbm, zephyr_rbm
from physamp.topology.chimera import chimera_colour, chimera_rbm
from physamp.topology.draw import draw_topology
from physamp.topology.hardware import IntersectionReport, MissingQubit, intersect_with_solver
from physamp.topology.masks import dense_rbm, random_mask
from physamp.topology.pixels import (
    PIXEL_MAPPINGS,
    pixel_mapping_permutation,
    pixel_to_qubit,
    pixels_to_units,
    units_to_pixels,
)
from physamp.topology.registry import (
    TopologyRequest,
    available_topologies,
    describe_topologies,
    make_topology,
    register_topology,
    unregister_topology,
)

__all__ = [
    "PIXEL_MAPPINGS",
    "IntersectionReport",
    "MissingQubit",
    "Topology",
    "TopologyRequest",
    "available_topologies",
    "bipartite_subgraph_colouring",
    "chimera_colour",
    "chimera_rbm",
    "dense_rbm",
    "describe_topologies",
    "draw_topology",
    "intersect_with_solver",
    "make_topology",
    "pegasus_rbm",
    "pixel_mapping_permutation",
    "pixel_to_qubit",
    "pixels_to_units",
    "random_mask",
    "register_topology",
    "units_to_pixels",
    "unregister_topology",
    "zephyr_rbm",
]
