"""The :class:`Topology` dataclass: which hardware qubit carries which RBM unit.

A topology places an RBM with ``n_visible`` visible and ``n_hidden`` hidden
units on a graph of physical qubits and couplers:

- visible unit ``i`` lives on qubit ``visible[i]``, hidden unit ``j`` on
  qubit ``hidden[j]``;
- ``mask`` is a ``torch.bool`` tensor of shape ``(n_hidden, n_visible)``
  (the layout of ``RBM.W``) with ``mask[j, i]`` True iff the graph has the
  coupler ``(hidden[j], visible[i])``.

The RBM is bipartite, so ``graph`` only ever holds visible-hidden edges: a
hardware coupler joining two visible or two hidden qubits is not part of the
model and is dropped by :meth:`Topology.from_graph`.

``physamp.ising.rbm_to_bqm(rbm, labels=topology)`` reads ``.visible`` and
``.hidden`` to label the BQM variables with qubits.

:meth:`Topology.restrict_to` intersects a topology with a real solver's
working graph (a physical QPU never has the full ideal graph: a few qubits and
couplers are inactive). It keeps the unit indices, so an RBM's ``W`` keeps its
shape ``(n_hidden, n_visible)``, and only switches off what the hardware lacks:

- a missing coupler: its ``mask`` entry becomes False;
- a missing qubit: its unit keeps its index but loses all its connections (its
  whole ``mask`` row or column becomes False); it is listed in the
  :class:`IntersectionReport` and in ``info["missing_visible"]`` /
  ``info["missing_hidden"]``, and its qubit is dropped from ``graph``. Such a
  unit can still be sampled classically from its bias, but it must not be sent
  to the QPU.

:func:`physamp.topology.intersect_with_solver` is the same operation as a function.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch

__all__ = [
    "IntersectionReport",
    "MissingQubit",
    "Topology",
    "TopologyMismatchError",
    "check_size",
    "mask_from_graph",
]


def check_size(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` or raise ``ValueError`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def mask_from_graph(graph: nx.Graph, visible: Sequence[Hashable], hidden: Sequence[Hashable]) -> torch.Tensor:
    """``(n_hidden, n_visible)`` bool mask: True where ``graph`` has edge (hidden[j], visible[i]).

    Edges between two visible or two hidden qubits, and edges touching a qubit
    that carries no unit, are ignored.
    """
    vis_index = {q: i for i, q in enumerate(visible)}
    hid_index = {q: j for j, q in enumerate(hidden)}
    rows, cols = [], []
    for a, b in graph.edges():
        if a in hid_index and b in vis_index:
            rows.append(hid_index[a])
            cols.append(vis_index[b])
        elif b in hid_index and a in vis_index:
            rows.append(hid_index[b])
            cols.append(vis_index[a])
    mask = torch.zeros(len(hidden), len(visible), dtype=torch.bool)
    if rows:
        mask[torch.tensor(rows), torch.tensor(cols)] = True
    return mask


@dataclass(frozen=True)
class MissingQubit:
    """A unit whose qubit is absent from the solver: ``kind`` is ``"visible"`` or ``"hidden"``."""

    kind: str
    index: int
    qubit: Hashable
    lost_connections: int


@dataclass
class IntersectionReport:
    """What :meth:`Topology.restrict_to` removed.

    Attributes:
        missing_qubits: units whose qubit the solver lacks.
        missing_couplers: couplers of the topology absent from the solver although
            both their qubits work.
        connections_before / connections_after: ``mask.sum()`` before and after.
        units: the number of units (visible + hidden) of the topology.

    ``str(report)`` is a short summary: the counts, and the first
    :attr:`MAX_LISTED` missing qubits (``missing_qubits`` holds all of them).
    """

    missing_qubits: list[MissingQubit] = field(default_factory=list)
    missing_couplers: int = 0
    connections_before: int = 0
    connections_after: int = 0
    units: int = 0

    MAX_LISTED = 10

    @property
    def fraction_connections_kept(self) -> float:
        return self.connections_after / self.connections_before if self.connections_before else 1.0

    def summary(self) -> str:
        """One line: connections kept, qubits and couplers missing."""
        of_units = f" of {self.units} units" if self.units else ""
        return (
            f"kept {self.connections_after} of {self.connections_before} connections "
            f"({100 * self.fraction_connections_kept:.2f} %); missing qubits: {len(self.missing_qubits)}"
            f"{of_units}; missing couplers (both qubits working): {self.missing_couplers}"
        )

    def __str__(self) -> str:
        lines = [
            f"kept {self.connections_after} of {self.connections_before} connections "
            f"({100 * self.fraction_connections_kept:.2f} %)",
            f"missing couplers (both qubits working): {self.missing_couplers}",
            f"missing qubits: {len(self.missing_qubits)}",
        ]
        for mq in self.missing_qubits[: self.MAX_LISTED]:
            lines.append(
                f"  {mq.kind} unit {mq.index} on qubit {mq.qubit!r}: {mq.lost_connections} connection(s) lost"
            )
        extra = len(self.missing_qubits) - self.MAX_LISTED
        if extra > 0:
            lost = sum(mq.lost_connections for mq in self.missing_qubits[self.MAX_LISTED :])
            lines.append(f"  ... and {extra} more ({lost} connection(s) lost); see report.missing_qubits")
        return "\n".join(lines)


class TopologyMismatchError(ValueError):
    """A topology does not fit a solver's graph at all (another family or size, or nothing kept)."""


_SHAPE_KEYS = {"chimera": ("rows", "columns", "tile"), "pegasus": ("rows",), "zephyr": ("rows", "tile")}


def _graph_family(graph_meta: dict) -> tuple[str | None, tuple | None]:
    """``(family, shape)`` of a dwave.graphs graph's metadata, in ``properties["topology"]`` form."""
    family = graph_meta.get("family")
    keys = None if family is None else _SHAPE_KEYS.get(family)
    if keys is None or not all(k in graph_meta for k in keys):
        return family, None
    return family, tuple(int(graph_meta[k]) for k in keys)


def _solver_family(solver) -> tuple[str | None, tuple | None]:
    """``(family, shape)`` of a solver: ``properties["topology"]`` of a dimod structured sampler,
    or the metadata of a dwave.graphs networkx graph; ``(None, None)`` when unknown."""
    if isinstance(solver, nx.Graph):
        return _graph_family(solver.graph)
    props = getattr(solver, "properties", None)
    topo = props.get("topology") if isinstance(props, dict) else None
    if not isinstance(topo, dict) or "type" not in topo:
        return None, None
    shape = topo.get("shape")
    try:
        shape = None if shape is None else tuple(int(x) for x in shape)
    except (TypeError, ValueError):
        shape = None
    return str(topo["type"]), shape


def _suggest(family_shape: tuple[str | None, tuple | None]) -> str:
    family, shape = family_shape
    if family == "chimera" and shape:
        return f"physamp.topology.chimera_rbm({shape[0]}, {shape[1]}, {shape[2]})"
    if family == "pegasus" and shape:
        return f"physamp.topology.pegasus_rbm({shape[0]})"
    if family == "zephyr" and shape:
        return f"physamp.topology.zephyr_rbm({shape[0]}, {shape[1]})"
    return f"a {family} topology of the solver's shape"


def _check_same_graph(topology: Topology, theirs: tuple[str | None, tuple | None], solver) -> None:
    """Raise :class:`TopologyMismatchError` when ``topology`` was made for another graph family or
    size than the solver's (both known): its linear qubit labels would name other qubits."""
    ours = _graph_family(topology.graph.graph)
    if ours[0] is None or theirs[0] is None:
        return
    same_shape = ours[1] is None or theirs[1] is None or ours[1] == theirs[1]
    if ours[0] == theirs[0] and same_shape:
        return
    raise TopologyMismatchError(
        f"the topology {topology.name!r} is laid out on a {ours[0]} graph of shape "
        f"{list(ours[1] or [])}, but the solver {_solver_name(solver)} has a {theirs[0]} graph of "
        f"shape {list(theirs[1] or [])}: its qubit labels would name other qubits. Build the "
        f"topology for this solver (e.g. {_suggest(theirs)}), or give the sampler the graph the "
        "topology was made for."
    )


def _solver_name(solver) -> str:
    props = getattr(solver, "properties", None)
    chip = props.get("chip_id") if isinstance(props, dict) else None
    return f"{type(solver).__name__}" + (f" ({chip})" if chip and chip != type(solver).__name__ else "")


def _working_graph(nodelist, edgelist) -> tuple[set, set]:
    """``(working qubits, working couplers in both directions)`` of a solver description."""
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


@dataclass(eq=False)
class Topology:
    """An RBM placed on hardware qubits.

    Attributes:
        graph: ``networkx.Graph`` of the qubits and couplers used; only
            visible-hidden edges (the RBM is bipartite). ``graph.graph`` keeps
            the generator's metadata (``family``, ``rows``, ...) for drawing.
        visible: qubit label of each visible unit, in unit order (length ``n_visible``).
        hidden: qubit label of each hidden unit, in unit order (length ``n_hidden``).
        mask: ``(n_hidden, n_visible)`` bool tensor, ``mask[j, i]`` iff the
            coupler ``(hidden[j], visible[i])`` is in ``graph``.
        name: short description, e.g. ``"chimera(14,14,4)"``.
        info: free-form facts (fraction of hardware couplers kept, mapping, ...).

    Build one with :meth:`from_graph` (mask derived from the graph) or
    :meth:`from_mask` (graph derived from the mask) rather than by hand.
    """

    graph: nx.Graph
    visible: list
    hidden: list
    mask: torch.Tensor
    name: str = "topology"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.visible = list(self.visible)
        self.hidden = list(self.hidden)
        units = self.visible + self.hidden
        if len(set(units)) != len(units):
            raise ValueError("qubit labels must be distinct: two units cannot share a qubit")
        if not isinstance(self.mask, torch.Tensor) or self.mask.dtype != torch.bool:
            raise ValueError("mask must be a torch.bool tensor of shape (n_hidden, n_visible)")
        if tuple(self.mask.shape) != (len(self.hidden), len(self.visible)):
            raise ValueError(
                f"mask has shape {tuple(self.mask.shape)}; expected (n_hidden, n_visible) = "
                f"({len(self.hidden)}, {len(self.visible)})"
            )
        if self.graph.number_of_edges() != self.num_connections:
            raise ValueError(
                f"graph has {self.graph.number_of_edges()} edges but the mask has "
                f"{self.num_connections} connections; build with Topology.from_graph, which "
                "drops visible-visible and hidden-hidden edges"
            )

    # constructors ---------------------------------------------------------------------
    @classmethod
    def from_graph(
        cls,
        graph: nx.Graph,
        visible: Sequence[Hashable],
        hidden: Sequence[Hashable],
        name: str = "topology",
        info: dict | None = None,
    ) -> Topology:
        """Topology on ``graph``, keeping only its visible-hidden edges.

        Nodes of ``graph`` that carry no unit are dropped; ``graph`` itself is not modified.
        """
        visible, hidden = list(visible), list(hidden)
        mask = mask_from_graph(graph, visible, hidden)
        kept = nx.Graph()
        kept.graph.update(graph.graph)
        kept.add_nodes_from((q, graph.nodes[q]) for q in visible + hidden if q in graph)
        j_idx, i_idx = torch.nonzero(mask, as_tuple=True)
        kept.add_edges_from(
            (hidden[j], visible[i]) for j, i in zip(j_idx.tolist(), i_idx.tolist(), strict=True)
        )
        return cls(kept, visible, hidden, mask, name, dict(info or {}))

    @classmethod
    def from_mask(
        cls,
        mask: torch.Tensor,
        visible: Sequence[Hashable] | None = None,
        hidden: Sequence[Hashable] | None = None,
        name: str = "topology",
        info: dict | None = None,
    ) -> Topology:
        """Topology whose graph is read off a ``(n_hidden, n_visible)`` bool ``mask``.

        Default labels follow :func:`physamp.ising.default_labels`: visible unit
        ``i`` is ``i``, hidden unit ``j`` is ``n_visible + j``.
        """
        mask = torch.as_tensor(mask).to(torch.bool).cpu()
        if mask.dim() != 2:
            raise ValueError(f"mask must be 2-D (n_hidden, n_visible); got shape {tuple(mask.shape)}")
        nh, nv = mask.shape
        visible = list(range(nv)) if visible is None else list(visible)
        hidden = list(range(nv, nv + nh)) if hidden is None else list(hidden)
        if len(visible) != nv or len(hidden) != nh:
            raise ValueError(
                f"mask of shape ({nh}, {nv}) needs {nv} visible and {nh} hidden labels; "
                f"got {len(visible)} and {len(hidden)}"
            )
        graph = nx.Graph()
        graph.add_nodes_from(visible + hidden)
        j_idx, i_idx = np.nonzero(mask.numpy())
        graph.add_edges_from(zip([hidden[j] for j in j_idx], [visible[i] for i in i_idx], strict=True))
        return cls(graph, visible, hidden, mask.clone(), name, dict(info or {}))

    # views ------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return len(self.visible)

    @property
    def n_hidden(self) -> int:
        return len(self.hidden)

    @property
    def num_connections(self) -> int:
        """Number of visible-hidden connections (True entries of ``mask``)."""
        return int(self.mask.sum())

    @property
    def fraction_removed(self) -> float:
        """Fraction of a dense ``n_hidden × n_visible`` RBM's connections absent here."""
        total = self.n_visible * self.n_hidden
        return 1.0 - self.num_connections / total if total else 0.0

    def labels(self) -> list:
        """Qubit labels of all units, visible first: ``visible + hidden``."""
        return self.visible + self.hidden

    def restrict_to(
        self,
        nodelist: Iterable[Hashable] | nx.Graph | object,
        edgelist: Iterable[tuple[Hashable, Hashable]] | None = None,
    ) -> tuple[Topology, IntersectionReport]:
        """Restrict this topology to the working qubits and couplers of a solver (see module doc).

        ``nodelist`` is a list of working qubits (then ``edgelist`` lists the
        working couplers), a ``networkx.Graph``, or a dimod structured sampler such
        as ``DWaveSampler`` (its ``.nodelist`` / ``.edgelist`` are read).

        Returns ``(restricted, report)``: ``restricted`` has the same ``visible`` /
        ``hidden`` lists (unit indices unchanged, ``mask`` still
        ``(n_hidden, n_visible)``) with missing couplers and every connection of a
        missing qubit removed; ``report`` is an :class:`IntersectionReport`.

        Raises:
            TopologyMismatchError: (a ``ValueError``) the topology was made for another graph
                family or size than the solver's (``properties["topology"]`` of a sampler, the
                metadata of a ``dwave.graphs`` graph), or none of its connections survives.
        """
        nodes, edges = _working_graph(nodelist, edgelist)
        theirs = _solver_family(nodelist) if edgelist is None else (None, None)
        _check_same_graph(self, theirs, nodelist)
        report = IntersectionReport(connections_before=self.num_connections, units=len(self.labels()))
        for kind, labels in (("visible", self.visible), ("hidden", self.hidden)):
            for idx, q in enumerate(labels):
                if q not in nodes:
                    lost = self.graph.degree(q) if q in self.graph else 0
                    report.missing_qubits.append(MissingQubit(kind, idx, q, int(lost)))
        kept = nx.Graph()
        kept.graph.update(self.graph.graph)
        kept.add_nodes_from(
            (q, self.graph.nodes[q] if q in self.graph else {}) for q in self.labels() if q in nodes
        )
        for a, b in self.graph.edges():
            if a not in nodes or b not in nodes:
                continue
            if (a, b) in edges:
                kept.add_edge(a, b)
            else:
                report.missing_couplers += 1
        restricted = Topology.from_graph(kept, self.visible, self.hidden, self.name, self.info)
        report.connections_after = restricted.num_connections
        if report.connections_before > 0 and report.connections_after == 0:
            raise TopologyMismatchError(
                f"the topology {self.name!r} does not fit this solver at all: {report.summary()}. Its "
                "qubit labels are not the solver's qubits (another graph family or size?); build the "
                "topology from the solver's graph"
                + (f" (e.g. {_suggest(theirs)})" if theirs[0] is not None else "")
                + "."
            )
        restricted.info.update(
            missing_visible=[mq.index for mq in report.missing_qubits if mq.kind == "visible"],
            missing_hidden=[mq.index for mq in report.missing_qubits if mq.kind == "hidden"],
            missing_couplers=report.missing_couplers,
            fraction_connections_kept_by_solver=report.fraction_connections_kept,
        )
        restricted.name = f"{self.name}∩solver"
        return restricted, report

    def __repr__(self) -> str:
        return (
            f"Topology(name={self.name!r}, n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"num_connections={self.num_connections})"
        )
