"""One registry of RBM topologies, chosen by name everywhere (CLI, trainer, drawing, notebooks).

A topology is asked for by a *spec*: ``"NAME"`` or ``"NAME:ARG"`` (``"chimera"``,
``"chimera:extended"``, ``"random:0.5"``, ``"pegasus"``). The registry maps
``NAME`` to a *factory*, a callable that takes one :class:`TopologyRequest` and
returns a :class:`~physamp.topology.Topology`. A request asks for one of two
things:

- an **RBM shape** ``(n_visible, n_hidden)``: what the trainer needs
  (``RBMTrainConfig(topology=SPEC)``, :func:`physamp.models.rbm.pcd.parse_topology`);
  the registry checks that the topology built has exactly that shape;
- a **grid size** ``size``: what ``physamp topology NAME SIZE`` needs (the ``m``
  of ``chimera_rbm(m)``, ``pegasus_rbm(m)``, ...; a square ``size x size`` RBM for
  the mask topologies ``dense`` and ``random``).

A factory builds what it can and raises ``ValueError`` (with what it accepts)
otherwise. Built-in names, each factory living beside the topology it builds:

========== ================================================ ===========================
name       arg                                              module
========== ================================================ ===========================
chimera    ``pixel_blocks`` | ``extended`` | ``none``       :mod:`~physamp.topology.chimera`
pegasus    --                                               :mod:`~physamp.topology.modern_pixels`
zephyr     --                                               :mod:`~physamp.topology.modern_pixels`
dense      --                                               :mod:`~physamp.topology.masks`
random     the fraction of connections removed, ``0..1``    :mod:`~physamp.topology.masks`
========== ================================================ ===========================

A new hardware topology is one module with one factory and one registration,
either in code::

    from physamp.topology import register_topology

    @register_topology("king")
    def king_topology(request):  # its docstring's first line is its --list entry
        ...  # build from request.size, or request.n_visible / request.n_hidden

or, for a separate package, in its ``pyproject.toml``::

    [project.entry-points."physamp.topologies"]
    king = "mypkg.king:king_topology"

after which ``make_topology("king", ...)``, ``RBMTrainConfig(topology="king")``,
``physamp topology king 8`` / ``physamp topology --list`` and
``draw_topology("king", size=8)`` all find it. Built-in factories are named by
``"module:callable"`` strings and imported on first use.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from physamp.topology.base import Topology, check_size

__all__ = [
    "ENTRY_POINT_GROUP",
    "TopologyFactory",
    "TopologyRequest",
    "available_topologies",
    "describe_topologies",
    "make_topology",
    "register_topology",
    "unregister_topology",
]

ENTRY_POINT_GROUP = "physamp.topologies"

# name -> "module:callable" (imported on first use)
_BUILTIN: dict[str, str] = {
    "chimera": "physamp.topology.chimera:chimera_topology",
    "dense": "physamp.topology.masks:dense_topology",
    "pegasus": "physamp.topology.modern_pixels:pegasus_topology",
    "random": "physamp.topology.masks:random_topology",
    "zephyr": "physamp.topology.modern_pixels:zephyr_topology",
}
_REGISTERED: dict[str, Any] = {}


@dataclass(frozen=True)
class TopologyRequest:
    """What :func:`make_topology` asks a factory for: ``NAME[:ARG]`` and a shape or a grid size.

    Exactly one of the two is set: ``n_visible`` and ``n_hidden`` (an RBM shape),
    or ``size`` (a grid size). ``seed`` seeds any randomness of the topology.
    """

    name: str
    arg: str = ""
    n_visible: int | None = None
    n_hidden: int | None = None
    size: int | None = None
    seed: int = 0

    @property
    def spec(self) -> str:
        """The spec as written: ``"NAME"`` or ``"NAME:ARG"``."""
        return f"{self.name}:{self.arg}" if self.arg else self.name

    @property
    def from_size(self) -> bool:
        """True when a grid size was asked for, False for an RBM shape."""
        return self.size is not None

    def rbm_shape(self) -> tuple[int, int]:
        """``(n_visible, n_hidden)``; from a grid size, the square ``(size, size)``."""
        if self.size is not None:  # self.from_size
            return self.size, self.size
        assert self.n_visible is not None and self.n_hidden is not None  # exactly one of the two is set
        return self.n_visible, self.n_hidden

    def no_arg(self) -> None:
        """Raise ``ValueError`` if the spec has an ``:ARG`` (for factories that take none)."""
        if self.arg:
            raise ValueError(f"the {self.name!r} topology takes no argument; got spec {self.spec!r}")


TopologyFactory = Callable[[TopologyRequest], Topology]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ValueError(f"a topology name must be a non-empty string without ':' or spaces; got {name!r}")
    return name


def register_topology(name: str, factory: TopologyFactory | str | None = None, *, replace: bool = False):
    """Register ``factory`` (a callable ``TopologyRequest -> Topology``, or ``"module:callable"``).

    Without ``factory`` it returns a decorator: ``@register_topology("king")``.
    A name that is already taken (built-in, registered or from an entry point)
    is refused unless ``replace=True``. Returns the factory.
    """
    _check_name(name)

    def add(f: TopologyFactory | str) -> TopologyFactory | str:
        if not (callable(f) or (isinstance(f, str) and ":" in f)):
            raise TypeError(
                f"a topology factory must be a callable (TopologyRequest -> Topology) or a "
                f"'module:callable' string; got {f!r}"
            )
        if not replace and name in available_topologies():
            raise ValueError(f"topology {name!r} is already registered; pass replace=True to replace it")
        _REGISTERED[name] = f
        return f

    return add if factory is None else add(factory)


def unregister_topology(name: str) -> None:
    """Remove a topology added by :func:`register_topology` (built-ins stay)."""
    if name not in _REGISTERED:
        raise ValueError(
            f"topology {name!r} was not added by register_topology; registered: "
            f"{', '.join(sorted(_REGISTERED)) or 'none'}"
        )
    del _REGISTERED[name]


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_topologies() -> list[str]:
    """Names accepted by :func:`make_topology` (built-in, registered and entry points), sorted."""
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def _resolve(name: str) -> TopologyFactory:
    """The factory of ``name``: registered first, then built-in, then an entry point."""
    target = _REGISTERED.get(name) or _BUILTIN.get(name) or _entry_points().get(name)
    if target is None:
        raise ValueError(
            f"unknown topology {name!r}; available: {', '.join(available_topologies())} "
            f"(a spec is NAME or NAME:ARG, e.g. chimera:extended or random:0.5). New topologies "
            f"register with physamp.topology.register_topology or the entry-point group "
            f"{ENTRY_POINT_GROUP!r}."
        )
    if isinstance(target, str):  # "module:callable", imported on first use
        target = pkgutil.resolve_name(target)
    elif not callable(target):  # an entry point (registered factories are callables or strings)
        target = target.load()
    if not callable(target):
        raise TypeError(f"topology {name!r} resolves to {target!r}, which is not callable")
    return target


def describe_topologies() -> dict[str, str]:
    """``{name: first line of its factory's docstring}`` for every available topology."""
    out = {}
    for name in available_topologies():
        try:
            doc = (_resolve(name).__doc__ or "").strip()
        except Exception as err:  # a broken third-party entry point should not hide the others
            out[name] = f"(cannot load: {err})"
            continue
        out[name] = doc.splitlines()[0] if doc else ""
    return out


def make_topology(
    spec: str | Topology,
    n_visible: int | None = None,
    n_hidden: int | None = None,
    *,
    seed: int = 0,
    size: int | None = None,
) -> Topology:
    """Build topology ``spec`` (``"NAME"`` or ``"NAME:ARG"``) for an RBM shape or a grid size.

    ``make_topology("chimera", 784, 784)`` is the thesis's 784x784 chimera RBM;
    ``make_topology("chimera", size=14)`` the full ``C_14`` in qubit order;
    ``make_topology("random:0.5", 784, 500, seed=1)`` a seeded random mask.
    Give either ``n_visible`` and ``n_hidden`` or ``size``. A :class:`Topology`
    is returned as is (after the shape check). Unknown names raise ``ValueError``
    listing the available ones; see :func:`available_topologies`.
    """
    shape_given = n_visible is not None or n_hidden is not None
    if shape_given and (n_visible is None or n_hidden is None):
        raise ValueError(f"give both n_visible and n_hidden; got n_visible={n_visible}, n_hidden={n_hidden}")
    if shape_given and size is not None:
        raise ValueError("give either an RBM shape (n_visible, n_hidden) or a grid size (size=), not both")
    if shape_given:
        n_visible, n_hidden = check_size("n_visible", n_visible), check_size("n_hidden", n_hidden)
    if isinstance(spec, Topology):
        topo = spec
    else:
        if not isinstance(spec, str) or not spec:
            raise TypeError(f"a topology spec is a non-empty string NAME or NAME:ARG; got {spec!r}")
        if not shape_given and size is None:
            raise ValueError(
                f"make_topology({spec!r}) needs an RBM shape (n_visible, n_hidden) or a grid size (size=)"
            )
        name, _, arg = spec.partition(":")
        factory = _resolve(name)
        request = TopologyRequest(
            name=name,
            arg=arg,
            n_visible=n_visible,
            n_hidden=n_hidden,
            size=None if size is None else check_size("size", size),
            seed=int(seed),
        )
        topo = factory(request)
        if not isinstance(topo, Topology):
            raise TypeError(
                f"the factory of topology {name!r} returned {type(topo).__name__}, not a physamp Topology"
            )
    if shape_given and (topo.n_visible, topo.n_hidden) != (n_visible, n_hidden):
        raise ValueError(
            f"topology {topo.name!r} has {topo.n_visible} visible x {topo.n_hidden} hidden units; "
            f"the RBM has {n_visible} visible x {n_hidden} hidden"
        )
    return topo
