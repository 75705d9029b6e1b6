"""Intersect a topology with a real solver's working graph.

A physical QPU never has the full ideal graph: a few qubits and couplers are
inactive (``sampler.nodelist`` / ``sampler.edgelist`` list the working ones).
:func:`intersect_with_solver` keeps the unit indices of a topology (so an RBM's
``W`` keeps its shape ``(n_hidden, n_visible)``) and only switches off what the
hardware lacks:

- a missing coupler: its ``mask`` entry becomes False;
- a missing qubit: its unit keeps its index but loses all its connections
  (its whole ``mask`` row or column becomes False); it is listed in the report
  and in ``info["missing_visible"]`` / ``info["missing_hidden"]``, and its qubit
  is dropped from ``graph``. Such a unit can still be sampled classically from
  its bias, but it must not be sent to the QPU.

Example::

    >>> topo, report = intersect_with_solver(chimera_rbm(16), DWaveSampler())  # doctest: +SKIP
    >>> print(report)                                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import networkx as nx

from physamp.topology.base import Topology

__all__ = ["IntersectionReport", "MissingQubit", "intersect_with_solver"]


@dataclass(frozen=True)
class MissingQubit:
    """A unit whose qubit is absent from the solver: ``kind`` is ``"visible"`` or ``"hidden"``."""

    kind: str
    index: int
    qubit: Hashable
    lost_connections: int


@dataclass
class IntersectionReport:
    """What :func:`intersect_with_solver` removed.

    Attributes:
        missing_qubits: units whose qubit the solver lacks.
        missing_couplers: couplers of the topology absent from the solver although
            both their qubits work.
        connections_before / connections_after: ``mask.sum()`` before and after.
    """

    missing_qubits: list[MissingQubit] = field(default_factory=list)
    missing_couplers: int = 0
    connections_before: int = 0
    connections_after: int = 0

    @property
    def fraction_connections_kept(self) -> float:
        return self.connections_after / self.connections_before if self.connections_before else 1.0

    def __str__(self) -> str:
        lines = [
            f"kept {self.connections_after} of {self.connections_before} connections "
            f"({100 * self.fraction_connections_kept:.2f} %)",
            f"missing couplers (both qubits working): {self.missing_couplers}",
            f"missing qubits: {len(self.missing_qubits)}",
        ]
        for mq in self.missing_qubits:
            lines.append(
                f"  {mq.kind} unit {mq.index} on qubit {mq.qubit!r}: {mq.lost_connections} connection(s) lost"
            )
        return "\n".join(lines)


def _working_graph(nodelist, edgelist) -> tuple[set, set]:
    if isinstance(nodelist, nx.Graph):
        if edgelist is not None:
            raise ValueError("pass either a networkx graph or (nodelist, edgelist), not both")
        nodes, edges = nodelist.nodes, nodelist.edges()
    elif hasattr(nodelist, "nodelist") and hasattr(nodelist, "edgelist"):  # dimod Structured
        if edgelist is not None:
            raise ValueError("pass either a structured sampler or (nodelist, edgelist), not both")
        nodes, edges = nodelist.nodelist, nodelist.edgelist
    else:
        if edgelist is None:
            raise ValueError(
                "intersect_with_solver needs a structured sampler (with .nodelist/.edgelist), "
                "a networkx graph, or both nodelist and edgelist"
            )
        nodes, edges = nodelist, edgelist
    node_set = set(nodes)
    edge_set = set()
    for a, b in edges:
        edge_set.add((a, b))
        edge_set.add((b, a))
    return node_set, edge_set


def intersect_with_solver(
    topology: Topology,
    nodelist: Iterable[Hashable] | nx.Graph | object,
    edgelist: Iterable[tuple[Hashable, Hashable]] | None = None,
) -> tuple[Topology, IntersectionReport]:
    """Restrict ``topology`` to the working qubits and couplers of a solver.

    ``nodelist`` is a list of working qubits (then ``edgelist`` lists the
    working couplers), a ``networkx.Graph``, or a dimod structured sampler such
    as ``DWaveSampler`` (its ``.nodelist`` / ``.edgelist`` are read).

    Returns ``(restricted, report)``: ``restricted`` has the same ``visible`` /
    ``hidden`` lists (unit indices unchanged, ``mask`` still
    ``(n_hidden, n_visible)``) with missing couplers and every connection of a
    missing qubit removed; ``report`` is an :class:`IntersectionReport`.
    """
    nodes, edges = _working_graph(nodelist, edgelist)
    report = IntersectionReport(connections_before=topology.num_connections)
    for kind, labels in (("visible", topology.visible), ("hidden", topology.hidden)):
        for idx, q in enumerate(labels):
            if q not in nodes:
                lost = topology.graph.degree(q) if q in topology.graph else 0
                report.missing_qubits.append(MissingQubit(kind, idx, q, int(lost)))
    kept = nx.Graph()
    kept.graph.update(topology.graph.graph)
    kept.add_nodes_from(
        (q, topology.graph.nodes[q] if q in topology.graph else {}) for q in topology.labels() if q in nodes
    )
    for a, b in topology.graph.edges():
        if a not in nodes or b not in nodes:
            continue
        if (a, b) in edges:
            kept.add_edge(a, b)
        else:
            report.missing_couplers += 1
    restricted = Topology.from_graph(kept, topology.visible, topology.hidden, topology.name, topology.info)
    report.connections_after = restricted.num_connections
    restricted.info.update(
        missing_visible=[mq.index for mq in report.missing_qubits if mq.kind == "visible"],
        missing_hidden=[mq.index for mq in report.missing_qubits if mq.kind == "hidden"],
        missing_couplers=report.missing_couplers,
        fraction_connections_kept_by_solver=report.fraction_connections_kept,
    )
    restricted.name = f"{topology.name}∩solver"
    return restricted, report
