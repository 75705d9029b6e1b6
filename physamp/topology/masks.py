"""Dense and randomly thinned RBM topologies (no hardware graph behind them).

Labels follow :func:`physamp.ising.default_labels`: visible unit ``i`` is
variable ``i``, hidden unit ``j`` is ``n_visible + j``. ``dense_rbm(784, 784)``
has 614,656 connections; the Chimera RBM of the thesis keeps 4,592 of them,
and ``random_mask(784, 784, 1 - 4592 / 614656)`` is the matched random control.

:func:`dense_topology` and :func:`random_topology` are the registry's ``"dense"``
and ``"random:F"`` factories (:mod:`physamp.topology.registry`).
"""

from __future__ import annotations

import numpy as np
import torch

from physamp.topology.base import Topology, check_size
from physamp.topology.registry import TopologyRequest

__all__ = ["dense_rbm", "dense_topology", "random_mask", "random_topology"]


def dense_rbm(n_visible: int, n_hidden: int) -> Topology:
    """Complete bipartite topology: ``mask`` is all True, shape ``(n_hidden, n_visible)``."""
    nv = check_size("n_visible", n_visible)
    nh = check_size("n_hidden", n_hidden)
    mask = torch.ones(nh, nv, dtype=torch.bool)
    return Topology.from_mask(mask, name=f"dense({nv}x{nh})", info={"fraction_removed": 0.0})


def random_mask(n_visible: int, n_hidden: int, fraction_removed: float, seed: int = 0) -> Topology:
    """Dense RBM minus exactly ``round(fraction_removed · n_visible · n_hidden)`` connections.

    The removed connections are a uniformly random subset drawn with
    ``numpy.random.default_rng(seed)``: the same arguments give the same mask.
    Returns a :class:`Topology`; its ``mask`` has shape ``(n_hidden, n_visible)``
    and its graph is the complete bipartite graph minus the removed edges.
    """
    nv = check_size("n_visible", n_visible)
    nh = check_size("n_hidden", n_hidden)
    if isinstance(fraction_removed, bool) or not isinstance(fraction_removed, (int, float, np.floating)):
        raise ValueError(f"fraction_removed must be a number in [0, 1]; got {fraction_removed!r}")
    fraction = float(fraction_removed)
    if not 0.0 <= fraction <= 1.0:  # also refuses NaN
        raise ValueError(f"fraction_removed must lie in [0, 1]; got {fraction_removed}")
    total = nv * nh
    n_removed = round(fraction * total)
    flat = np.ones(total, dtype=bool)
    flat[np.random.default_rng(seed).permutation(total)[:n_removed]] = False
    mask = torch.from_numpy(flat.reshape(nh, nv))
    info = {"fraction_removed": n_removed / total, "n_removed": n_removed, "seed": seed}
    return Topology.from_mask(mask, name=f"random({nv}x{nh}, removed={fraction:g})", info=info)


def dense_topology(request: TopologyRequest) -> Topology:
    """Complete bipartite RBM (dense): every visible unit joined to every hidden unit.

    From a grid size ``n``: the square ``n x n`` RBM.
    """
    request.no_arg()
    return dense_rbm(*request.rbm_shape())


def random_topology(request: TopologyRequest) -> Topology:
    """Dense RBM minus a seeded random fraction F of its connections (random:F).

    From a grid size ``n``: the square ``n x n`` RBM. The mask follows ``request.seed``.
    """
    try:
        fraction = float(request.arg)
    except ValueError:
        raise ValueError(f"random topology needs a fraction, e.g. random:0.5; got {request.spec!r}") from None
    return random_mask(*request.rbm_shape(), fraction, seed=request.seed)
