"""Draw a topology: visible and hidden qubits in two colours.

Chimera, Pegasus and Zephyr topologies are placed with the ``dwave.graphs``
hardware layouts (``chimera_layout``, ``pegasus_layout``, ``zephyr_layout``,
the ones behind ``draw_chimera`` & co.); anything else (dense or random
masks) with ``networkx.bipartite_layout``. matplotlib is imported only when
drawing, and nothing here selects a GUI backend, so it works headless (Agg).
:func:`draw_topology` also takes a registry spec (``draw_topology("chimera", size=2)``).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from physamp.topology.base import Topology
from physamp.topology.registry import make_topology

__all__ = ["VISIBLE_COLOUR", "HIDDEN_COLOUR", "draw_topology", "topology_layout"]

VISIBLE_COLOUR = "tab:blue"
HIDDEN_COLOUR = "tab:orange"


def topology_layout(topology: Topology) -> dict:
    """Positions ``{qubit: (x, y)}`` for every qubit in ``topology.graph``."""
    import dwave.graphs as dg

    graph = topology.graph
    family = graph.graph.get("family")
    layouts = {
        "chimera": dg.chimera_layout,
        "pegasus": dg.pegasus_layout,
        "zephyr": dg.zephyr_layout,
    }
    if family in layouts and graph.graph.get("labels") == "int":
        return layouts[family](graph)
    visible = [q for q in topology.visible if q in graph]
    return nx.bipartite_layout(graph, visible)


def draw_topology(
    topology: Topology | str,
    ax: Any = None,
    *,
    node_size: float | None = None,
    edge_alpha: float = 0.4,
    title: str | None = None,
    size: int | None = None,
    n_visible: int | None = None,
    n_hidden: int | None = None,
    seed: int = 0,
) -> Any:
    """Draw ``topology`` on matplotlib axes ``ax`` (a new figure if None) and return the axes.

    ``topology`` is a :class:`Topology` or a registry spec (``"NAME"`` /
    ``"NAME:ARG"``) built by :func:`~physamp.topology.make_topology` with ``size``
    or ``n_visible``/``n_hidden`` and ``seed``. Visible qubits are drawn in
    :data:`VISIBLE_COLOUR`, hidden ones in :data:`HIDDEN_COLOUR`; edges are the
    RBM's connections. The legend sits below the axes, outside the drawing.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if isinstance(topology, Topology):
        if size is not None or n_visible is not None or n_hidden is not None:
            raise ValueError("size / n_visible / n_hidden build a topology from a spec; got a Topology")
    else:
        topology = make_topology(topology, n_visible, n_hidden, seed=seed, size=size)

    new_figure = ax is None
    if new_figure:
        _, ax = plt.subplots(figsize=(6, 6.4))
    graph = topology.graph
    pos = topology_layout(topology)
    n = max(graph.number_of_nodes(), 1)
    px = node_size if node_size is not None else max(2.0, min(60.0, 6000.0 / n))
    hidden_set = set(topology.hidden)
    nodes = list(graph.nodes)
    colours = [HIDDEN_COLOUR if q in hidden_set else VISIBLE_COLOUR for q in nodes]
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=edge_alpha, width=0.5)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=colours, node_size=px, ax=ax)
    handles = [
        Line2D([], [], marker="o", ls="", color=VISIBLE_COLOUR, label=f"visible ({topology.n_visible})"),
        Line2D([], [], marker="o", ls="", color=HIDDEN_COLOUR, label=f"hidden ({topology.n_hidden})"),
    ]
    # below the axes, never over the nodes
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=2,
        fontsize="small",
        frameon=False,
        borderaxespad=0.3,
    )
    ax.set_title(title if title is not None else f"{topology.name}: {topology.num_connections} connections")
    ax.set_axis_off()
    if new_figure:
        ax.figure.tight_layout()  # room for the legend inside the figure, however it is saved
    return ax
