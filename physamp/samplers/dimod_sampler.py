"""Any physamp backend as a dimod sampler of bipartite BQMs: :func:`as_dimod`.

An RBM is a bipartite Ising model, so an Ocean user's BQM whose couplings join two
sets of variables (and none inside a set) *is* an RBM, and every physamp backend can
sample it -- the fast block Gibbs of ``gibbs``, exact enumeration of ``exact``, the
noisy device of ``simulated``, ``neal``, ``dwave``::

    from physamp.samplers import as_dimod

    sampler = as_dimod("gibbs", steps=200)          # make_sampler's names and options
    sampleset = sampler.sample(bqm, num_reads=1000, beta=2.0)

How a BQM becomes an RBM
------------------------
1. SPIN form (a BINARY BQM is converted; the answer comes back in its vartype).
2. The bipartition: a breadth-first 2-colouring of the graph of the BQM's nonzero
   couplings. A BQM that has none is refused with the odd cycle that prevents it
   (``ValueError``, before any sampling). In each connected component the larger
   colour class becomes the visible layer (ties: the class of the component's first
   variable in BQM order); isolated variables are visible.
3. Eq. 3.1 inverted (:func:`physamp.ising.ising_to_params`): ``W = -4J``,
   ``b = -2 h_v - Wᵀ1/2``, ``c = -2 h_h - W1/2`` with couplings absent from the BQM
   masked, so that ``E_rbm(x) = E_bqm(2x - 1) + const`` and both give the same
   ``p ∝ exp(-β E)``; the BQM's offset is such a constant.

``beta`` maps to the backend's ``beta`` when it takes one per call (every built-in
chain and exact backend); otherwise (``dwave``, ``dimod``, a third-party backend) the
problem itself is multiplied by ``beta``. ``num_reads`` becomes ``num_samples``; every
other keyword is one of the backend's per-call options (``backend.parameters``, e.g.
``steps`` for ``gibbs``). The returned ``SampleSet`` has one row per read, the BQM's
labels and vartype, energies of the BQM as given (offset included), and
``info["backend_info"]`` (the backend's :class:`~physamp.samplers.base.Samples` info),
``info["visible"]`` / ``info["hidden"]`` (the variables of each layer).
"""

from __future__ import annotations

import numbers
from collections import deque
from collections.abc import Hashable
from typing import Any

import dimod
import numpy as np

from physamp.ising import IsingRBM, ising_to_params
from physamp.samplers.base import Sampler, check_beta
from physamp.samplers.registry import make_sampler

__all__ = ["as_dimod", "PhysampDimodSampler", "bipartition", "NotBipartiteError"]


class NotBipartiteError(ValueError):
    """The BQM's couplings close an odd cycle: it is not an RBM."""


def _odd_cycle(parent: np.ndarray, depth: np.ndarray, a: int, b: int) -> list[int]:
    """The cycle closed by edge ``(a, b)`` between two nodes of one BFS tree at the same parity."""
    left, right = [a], [b]
    while left[-1] != right[-1]:
        if depth[left[-1]] >= depth[right[-1]]:
            left.append(int(parent[left[-1]]))
        else:
            right.append(int(parent[right[-1]]))
    return left + right[-2::-1]  # a ... common ancestor ... b


def bipartition(bqm: dimod.BinaryQuadraticModel) -> tuple[list[Hashable], list[Hashable]]:
    """``(visible, hidden)`` variables of a bipartite BQM (see the module docstring).

    Raises:
        NotBipartiteError: the nonzero couplings close an odd cycle (named in the message).
    """
    variables = list(bqm.variables)
    n = len(variables)
    row, col, q = bqm.to_numpy_vectors(variable_order=variables).quadratic
    keep = np.asarray(q) != 0
    row, col = np.asarray(row)[keep], np.asarray(col)[keep]
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(row.tolist(), col.tolist(), strict=True):
        adjacency[a].append(b)
        adjacency[b].append(a)
    colour = np.full(n, -1, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    visible: list[int] = []
    for root in range(n):
        if colour[root] >= 0:
            continue
        colour[root] = 0
        component, queue = [root], deque([root])
        while queue:
            u = queue.popleft()
            for w in adjacency[u]:
                if colour[w] < 0:
                    colour[w], parent[w], depth[w] = 1 - colour[u], u, depth[u] + 1
                    component.append(w)
                    queue.append(w)
                elif colour[w] == colour[u]:
                    cycle = [variables[i] for i in _odd_cycle(parent, depth, u, w)]
                    shown = " - ".join(repr(v) for v in cycle[:12]) + (" - ..." if len(cycle) > 12 else "")
                    raise NotBipartiteError(
                        f"the BQM is not bipartite, so it is no RBM: its couplings close an odd cycle "
                        f"{shown} - {cycle[0]!r} ({len(cycle)} variables). An RBM couples two layers "
                        "and nothing inside a layer; sample this BQM with a general sampler (e.g. "
                        "dwave.samplers.SimulatedAnnealingSampler at a fixed beta, or SimulatedQPU)"
                    )
        ones = sum(int(colour[i]) for i in component)
        side = 1 if ones > len(component) - ones else 0
        visible.extend(i for i in component if colour[i] == side)
    vis = set(visible)
    return [variables[i] for i in sorted(vis)], [variables[i] for i in range(n) if i not in vis]


class PhysampDimodSampler(dimod.Sampler):
    """A physamp backend as a ``dimod.Sampler`` of bipartite BQMs; build it with :func:`as_dimod`."""

    def __init__(self, backend: Sampler) -> None:
        if not isinstance(backend, Sampler):
            raise TypeError(f"backend must be a physamp Sampler, got {type(backend).__name__}")
        self.backend = backend

    @property
    def parameters(self) -> dict[str, list]:
        return {"num_reads": [], "beta": [], **{k: [] for k in self.backend.parameters if k != "beta"}}

    @property
    def properties(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "backend_properties": self.backend.properties}

    def __repr__(self) -> str:
        return f"as_dimod({self.backend!r})"

    def sample(
        self, bqm: dimod.BinaryQuadraticModel, num_reads: int = 1, beta: float | None = None, **options: Any
    ) -> dimod.SampleSet:
        """``num_reads`` samples of ``p ∝ exp(-beta · E_bqm)`` from the backend (module docstring)."""
        if not isinstance(bqm, dimod.BinaryQuadraticModel):
            raise TypeError(f"sample needs a dimod.BinaryQuadraticModel, got {type(bqm).__name__}")
        if isinstance(num_reads, bool) or not isinstance(num_reads, numbers.Integral) or num_reads < 1:
            raise ValueError(f"num_reads must be a positive integer, got {num_reads!r}")
        if beta is not None:
            beta = check_beta(beta)
        own = set(self.backend.parameters) - {"beta"}
        unknown = sorted(set(options) - own)
        if unknown:
            valid = ", ".join(sorted(self.parameters))
            raise ValueError(
                f"{self!r} has no parameter(s) {unknown}; its parameters are: {valid} (the backend's "
                "per-call options; constructor options go to as_dimod)"
            )
        variables = list(bqm.variables)
        if not variables:
            empty = np.zeros((int(num_reads), 0), dtype=np.int8)
            energies = np.full(int(num_reads), float(bqm.offset))
            return dimod.SampleSet.from_samples((empty, []), bqm.vartype, energies)
        lin, (_, _, quad), _ = bqm.to_numpy_vectors()
        if not (np.isfinite(lin).all() and np.isfinite(quad).all() and np.isfinite(bqm.offset)):
            bad = [v for v, b in bqm.linear.items() if not np.isfinite(b)][:5]
            bad += [uv for uv, b in bqm.quadratic.items() if not np.isfinite(b)][: 5 - len(bad)]
            raise ValueError(
                f"the BQM has non-finite (NaN or infinite) biases, e.g. at {bad or 'its offset'}; a "
                "Boltzmann distribution needs finite energies. Fix those biases before sampling."
            )
        spin = bqm if bqm.vartype is dimod.SPIN else bqm.change_vartype(dimod.SPIN, inplace=False)
        visible, hidden = bipartition(spin)
        params = self._rbm(spin, visible, hidden, 1.0 if beta is None or self._takes_beta else beta)
        if beta is not None and self._takes_beta:
            options["beta"] = beta
        samples = self.backend.sample(params, int(num_reads), **options)
        x = np.empty((int(num_reads), len(variables)), dtype=np.int8)
        position = {v: i for i, v in enumerate(variables)}
        x[:, [position[v] for v in visible]] = samples.v.detach().cpu().numpy()
        if hidden:
            x[:, [position[v] for v in hidden]] = samples.h.detach().cpu().numpy()[:, : len(hidden)]
        values = 2 * x - 1 if bqm.vartype is dimod.SPIN else x
        energies = bqm.energies((values, variables))
        info = {
            "backend": self.backend.name,
            "backend_info": samples.info,
            "visible": visible,
            "hidden": hidden,
        }
        return dimod.SampleSet.from_samples((values, variables), bqm.vartype, energies, info=info)

    @property
    def _takes_beta(self) -> bool:
        return "beta" in self.backend.parameters

    @staticmethod
    def _rbm(spin: dimod.BinaryQuadraticModel, visible: list, hidden: list, scale: float):
        """The RBM of Eq. 3.1 inverted, ``scale`` times the BQM's (h, J); one idle hidden unit
        (no bias, no coupling) when the BQM has no hidden layer."""
        n_hidden = max(len(hidden), 1)
        vis = {v: i for i, v in enumerate(visible)}
        hid = {v: j for j, v in enumerate(hidden)}
        h_v = np.array([spin.linear[v] for v in visible], dtype=np.float64)
        h_h = np.zeros(n_hidden)
        h_h[: len(hidden)] = [spin.linear[v] for v in hidden]
        J = np.zeros((n_hidden, len(visible)))
        mask = np.zeros((n_hidden, len(visible)), dtype=bool)
        for (a, b), bias in spin.quadratic.items():
            if bias == 0:
                continue
            if a in hid:
                a, b = b, a
            J[hid[b], vis[a]] = bias
            mask[hid[b], vis[a]] = True
        ising = IsingRBM(scale * h_v, scale * h_h, scale * J, 0.0, None if mask.all() else mask)
        return ising_to_params(ising)


def as_dimod(sampler: str | Sampler = "gibbs", **options: Any) -> PhysampDimodSampler:
    """A physamp backend as a ``dimod.Sampler`` for bipartite (RBM-shaped) BQMs.

    ``sampler``: a name :func:`~physamp.samplers.make_sampler` accepts (``"gibbs"``,
    ``"exact"``, ``"simulated"``, ...) built with ``options``, or a built
    :class:`~physamp.samplers.base.Sampler` (then no options). See the module docstring
    for the conversion and the per-call parameters.
    """
    if isinstance(sampler, Sampler) and options:
        raise TypeError("options cannot be applied to an already-built Sampler; pass its name instead")
    return PhysampDimodSampler(make_sampler(sampler, **options))
