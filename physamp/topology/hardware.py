"""Intersect a topology with a real solver's working graph.

A physical QPU never has the full ideal graph: a few qubits and couplers are
inactive (``sampler.nodelist`` / ``sampler.edgelist`` list the working ones).
:func:`intersect_with_solver` keeps the unit indices of a topology (so an RBM's
``W`` keeps its shape ``(n_hidden, n_visible)``) and only switches off what the
hardware lacks; the rules, :class:`MissingQubit` and :class:`IntersectionReport`
live with :meth:`Topology.restrict_to` in :mod:`physamp.topology.base` (this
module only imports from there, so the two never import each other).

Example::

    >>> topo, report = intersect_with_solver(chimera_rbm(16), DWaveSampler())  # doctest: +SKIP
    >>> print(report)                                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import networkx as nx

from physamp.topology.base import IntersectionReport, MissingQubit, Topology, TopologyMismatchError

__all__ = ["IntersectionReport", "MissingQubit", "TopologyMismatchError", "intersect_with_solver"]


def intersect_with_solver(
    topology: Topology,
    nodelist: Iterable[Hashable] | nx.Graph | object,
    edgelist: Iterable[tuple[Hashable, Hashable]] | None = None,
) -> tuple[Topology, IntersectionReport]:
    """Restrict ``topology`` to the working qubits and couplers of a solver: ``(restricted, report)``.

    The same as ``topology.restrict_to(nodelist, edgelist)``; see :meth:`Topology.restrict_to`
    for what ``nodelist`` / ``edgelist`` may be and what is removed.

    Raises:
        TopologyMismatchError: (a ``ValueError``) the topology does not fit the solver at all:
            it was made for another graph family or size than the solver's
            ``properties["topology"]``, or not one of its connections survives.
    """
    if not isinstance(topology, Topology):
        raise TypeError(f"intersect_with_solver needs a physamp Topology, got {type(topology).__name__}")
    return topology.restrict_to(nodelist, edgelist)
