"""The topology registry: one name finds a topology in make_topology, the trainer, the CLI and drawing."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib
import networkx as nx
import pytest
import torch

import physamp.topology as T
from physamp.cli import main
from physamp.models.rbm.pcd import parse_topology as pcd_parse_topology
from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer, parse_topology
from physamp.topology import registry

matplotlib.use("Agg")


def grid_topology(request: T.TopologyRequest) -> T.Topology:
    """Square lattice n x n, bipartite by (row + column) mod 2 (a toy hardware graph)."""
    request.no_arg()
    if request.from_size:
        n = request.size
    else:
        n = round((2 * request.n_visible) ** 0.5)
        if request.n_visible != request.n_hidden or n * n != 2 * request.n_visible:
            raise ValueError(f"the grid topology needs n_visible = n_hidden = n^2/2; got {request.n_visible}")
    graph = nx.grid_2d_graph(n, n)
    visible = [q for q in sorted(graph) if sum(q) % 2 == 0]
    hidden = [q for q in sorted(graph) if sum(q) % 2 == 1]
    return T.Topology.from_graph(graph, visible, hidden, name=f"grid({n})", info={"family": "grid"})


@pytest.fixture
def grid():
    """``grid`` registered for one test only."""
    T.register_topology("grid", grid_topology)
    yield "grid"
    T.unregister_topology("grid")


def test_builtins_are_listed_and_built_by_name():
    assert {"chimera", "dense", "pegasus", "random", "zephyr"} <= set(T.available_topologies())
    assert T.make_topology("chimera", 784, 784).num_connections == 4592
    assert T.make_topology("chimera", size=2).name == "chimera(2,2,4)"  # a grid size: qubit order
    assert T.make_topology("chimera:extended", size=14).info["pixel_mapping"] == "extended_pixel_blocks"
    assert T.make_topology("pegasus", size=2).name == "pegasus(2)"
    assert T.make_topology("zephyr", size=1).name == "zephyr(1,4)"
    assert T.make_topology("dense", 5, 3).num_connections == 15
    assert T.make_topology("dense", size=4).num_connections == 16
    r1, r2 = (T.make_topology("random:0.5", 10, 6, seed=s) for s in (1, 1))
    assert torch.equal(r1.mask, r2.mask) and r1.num_connections == 30
    assert not torch.equal(r1.mask, T.make_topology("random:0.5", 10, 6, seed=2).mask)
    # the trainer's names are the registry's (dense / None stay "no mask")
    assert parse_topology("random:0.25", 8, 4, seed=3).num_connections == 24
    assert parse_topology("dense", 8, 4) is None and pcd_parse_topology(None, 8, 4) is None
    docs = T.describe_topologies()
    assert docs["chimera"].startswith("Chimera") and docs["random"]


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("king", 784, 784), {}, ValueError, "unknown topology 'king'; available: chimera, dense"),
        (("chimera",), {}, ValueError, "needs an RBM shape"),
        (("chimera", 784, 784), {"size": 14}, ValueError, "not both"),
        (("chimera", 784), {}, ValueError, "give both n_visible and n_hidden"),
        (("dense", 4, 0), {}, ValueError, "n_hidden must be >= 1"),
        (("", 4, 4), {}, TypeError, "non-empty string"),
        (("chimera:diagonal", 784, 784), {}, ValueError, "unknown chimera mapping 'diagonal'"),
        (("dense:3", 4, 4), {}, ValueError, "takes no argument"),
        (("random", 4, 4), {}, ValueError, "random topology needs a fraction"),
        (("pegasus", 16, 16), {}, ValueError, "784 visible x 784 hidden"),
        (("zephyr:x",), {"size": 2}, ValueError, "takes no argument"),
    ],
)
def test_make_topology_errors_are_clear(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        T.make_topology(*args, **kwargs)


def test_a_topology_passes_through_shape_checked():
    topo = T.dense_rbm(3, 2)
    assert T.make_topology(topo, 3, 2) is topo
    with pytest.raises(ValueError, match="has 3 visible x 2 hidden units; the RBM has 2 visible x 3 hidden"):
        T.make_topology(topo, 2, 3)


def test_registering_a_topology_makes_it_usable_everywhere(grid, capsys, tmp_path):
    assert grid in T.available_topologies()
    # make_topology, from a grid size and from an RBM shape
    topo = T.make_topology(grid, size=4)
    assert (topo.n_visible, topo.n_hidden, topo.num_connections) == (8, 8, 24)
    assert torch.equal(T.make_topology(grid, 8, 8).mask, topo.mask)
    # the trainer: parse_topology (both import paths) and RBMTrainConfig(topology=...)
    assert torch.equal(parse_topology(grid, 8, 8).mask, topo.mask)
    assert torch.equal(pcd_parse_topology(grid, 8, 8).mask, topo.mask)
    cfg = RBMTrainConfig(n_hidden=8, epochs=1, batch_size=16, k=1, num_chains=4, topology=grid)
    trainer = RBMTrainer(cfg, torch.rand(32, 8, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(trainer.rbm.mask.cpu(), topo.mask)
    trainer.fit(run_dir=None, progress=False)
    assert bool((trainer.rbm.W.detach()[~topo.mask] == 0).all())  # masked weights stayed zero
    # a shape the factory cannot build: its own message
    with pytest.raises(ValueError, match="n_visible = n_hidden = n\\^2/2"):
        RBMTrainer(RBMTrainConfig(n_hidden=5, topology=grid), torch.rand(4, 8))
    # unknown names list it
    with pytest.raises(ValueError, match="unknown topology 'king'; available: .*grid"):
        parse_topology("king", 8, 8)
    # the CLI lists it and builds it
    assert main(["topology", "--list"]) == 0
    assert "grid        Square lattice n x n" in capsys.readouterr().out
    png = tmp_path / "grid.png"
    assert main(["topology", grid, "4", "--draw", str(png)]) == 0
    assert "grid(4): 8 visible x 8 hidden units, 24 connections" in capsys.readouterr().out
    assert png.stat().st_size > 1000
    assert main(["topology", grid, "8x8"]) == 0
    assert main(["topology", "king", "4"]) == 2
    assert "unknown topology 'king'" in capsys.readouterr().err
    # the drawing code takes the name too
    ax = T.draw_topology(grid, size=4)
    assert ax.get_title() == "grid(4): 24 connections"
    with pytest.raises(ValueError, match="from a spec; got a Topology"):
        T.draw_topology(topo, size=4)


def test_register_rules():
    @T.register_topology("tiny")
    def tiny(request):
        """Two units, one connection."""
        return T.dense_rbm(1, 1)

    try:
        assert T.make_topology("tiny", 1, 1).num_connections == 1
        assert T.describe_topologies()["tiny"] == "Two units, one connection."
        with pytest.raises(ValueError, match="already registered; pass replace=True"):
            T.register_topology("tiny", tiny)
        with pytest.raises(ValueError, match="already registered"):
            T.register_topology("chimera", tiny)
        T.register_topology("tiny", lambda request: T.dense_rbm(2, 2), replace=True)
        with pytest.raises(ValueError, match="has 2 visible x 2 hidden units; the RBM has 1 visible x 1"):
            T.make_topology("tiny", 1, 1)
        T.register_topology("tiny", lambda request: "not a topology", replace=True)
        with pytest.raises(TypeError, match="returned str, not a physamp Topology"):
            T.make_topology("tiny", size=1)
    finally:
        T.unregister_topology("tiny")
    assert "tiny" not in T.available_topologies()
    with pytest.raises(ValueError, match="without ':'"):
        T.register_topology("a:b", tiny)
    with pytest.raises(TypeError, match="must be a callable"):
        T.register_topology("nothing", 42)
    with pytest.raises(ValueError, match="was not added by register_topology"):
        T.unregister_topology("chimera")


def test_entry_point_topologies(monkeypatch):
    class FakeEntryPoint:
        name = "grid"

        def load(self):
            return grid_topology

    monkeypatch.setattr(registry, "_entry_points", lambda: {"grid": FakeEntryPoint()})
    assert "grid" in T.available_topologies()
    assert T.make_topology("grid", size=2).num_connections == 4
    assert T.describe_topologies()["grid"].startswith("Square lattice")


def _topology_imports(path: Path) -> set[str]:
    """``physamp.topology`` modules that ``path`` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("physamp.topology."):
            out.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "physamp.topology":
            out.add("__init__")
    return out


def test_topology_modules_import_one_way():
    """No import circle inside physamp.topology (base.py and hardware.py used to import each other)."""
    root = Path(T.__file__).parent
    graph = nx.DiGraph()
    for path in root.glob("*.py"):
        if path.stem != "__init__":
            graph.add_node(path.stem)
            graph.add_edges_from((path.stem, dep) for dep in _topology_imports(path))
    assert "__init__" not in graph, "a submodule imports the package: it would import every module"
    assert list(nx.simple_cycles(graph)) == []
    assert not _topology_imports(root / "base.py")  # the Topology (and its solver restriction) is the root
    assert ("hardware", "base") in graph.edges
