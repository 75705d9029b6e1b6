"""RBM ↔ Ising conversion (thesis Eq. 3.1) and dimod export.

The only place in physamp where the two forms meet. With ``s = 2x - 1`` the RBM
energy (Eq. 1.32) ``E(v,h) = -b·v - c·h - hᵀWv`` equals, up to a constant, the
Ising energy in dimod's convention ``E(s) = Σ h_i s_i + Σ J_ij s_i s_j``
(``p ∝ exp(-β E)``). Writing ``W' = W/4`` (Eq. 3.1)::

    h_visible = -(b/2 + Wᵀ1/4)       (n_visible,)
    h_hidden  = -(c/2 + W 1/4)       (n_hidden,)
    J         = -W/4                 (n_hidden, n_visible): coupler (hidden j, visible i)
    offset    = -(Σb/2 + Σc/2 + ΣW/4)

so ``E_ising(2v-1, 2h-1) = E_rbm(v, h)`` exactly, and both define the same
distribution at β = 1. The inverse is ``W = -4J``, ``b = -2 h_visible - Wᵀ1/2``,
``c = -2 h_hidden - W1/2``. Every function here works on float64 and accepts
biases with a leading batch dimension (one bias vector per chain).

Default BQM labels: visible unit ``i`` is variable ``i``, hidden unit ``j`` is
variable ``n_visible + j``; a topology supplies qubit labels instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from physamp.energy import RBMLike, RBMParams, as_params

if TYPE_CHECKING:  # ising_to_rbm builds the model module; everything else needs only the view
    from physamp.models.rbm.model import RBM

__all__ = [
    "IsingRBM",
    "rbm_to_ising",
    "ising_to_rbm",
    "ising_to_params",
    "rbm_to_bqm",
    "ising_to_bqm",
    "default_labels",
    "resolve_labels",
    "to_ising_arrays",
    "from_ising_arrays",
]


def to_ising_arrays(W, b, c):
    """Eq. 3.1 on raw arrays (numpy or torch): returns ``(h_visible, h_hidden, J, offset)``."""
    h_v = -(b / 2 + W.sum(axis=0) / 4)
    h_h = -(c / 2 + W.sum(axis=1) / 4)
    J = -W / 4
    offset = -(b.sum(axis=-1) / 2 + c.sum(axis=-1) / 2 + W.sum() / 4)
    return h_v, h_h, J, offset


def from_ising_arrays(h_v, h_h, J):
    """Inverse of Eq. 3.1 on raw arrays: returns ``(W, b, c)``."""
    W = -4 * J
    b = -2 * h_v - W.sum(axis=0) / 2
    c = -2 * h_h - W.sum(axis=1) / 2
    return W, b, c


@dataclass
class IsingRBM:
    """An RBM written in Ising form (float64 numpy arrays, dimod's sign convention).

    ``E(s_v, s_h) = h_visible·s_v + h_hidden·s_h + s_hᵀ J s_v + offset`` with
    ``s ∈ {-1, +1}``; ``J`` has shape ``(n_hidden, n_visible)``. ``mask`` (bool,
    same shape as ``J``) lists the couplers that exist; None means all of them.
    """

    h_visible: np.ndarray
    h_hidden: np.ndarray
    J: np.ndarray
    offset: float | np.ndarray = 0.0
    mask: np.ndarray | None = None

    @property
    def n_visible(self) -> int:
        return self.J.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.J.shape[0]

    def __iter__(self):
        """Unpacks as ``h_visible, h_hidden, J, offset = rbm_to_ising(rbm)``."""
        return iter((self.h_visible, self.h_hidden, self.J, self.offset))

    def energy(self, s_v: np.ndarray, s_h: np.ndarray) -> np.ndarray:
        """Ising energy of spin configurations ``s_v: (N, n_visible)``, ``s_h: (N, n_hidden)``."""
        s_v = np.asarray(s_v, dtype=np.float64)
        s_h = np.asarray(s_h, dtype=np.float64)
        return (
            (s_v * self.h_visible).sum(-1)
            + (s_h * self.h_hidden).sum(-1)
            + ((s_h @ self.J) * s_v).sum(-1)
            + self.offset
        )


def _numpy64(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def rbm_to_ising(rbm: RBMLike) -> IsingRBM:
    """Eq. 3.1: the Ising form of an RBM, in float64."""
    p = as_params(rbm).validate()
    W, b, c = _numpy64(p.W), _numpy64(p.b), _numpy64(p.c)
    h_v, h_h, J, offset = to_ising_arrays(W, b, c)
    mask = None if p.mask is None else p.mask.detach().cpu().numpy().astype(bool)
    return IsingRBM(h_v, h_h, J, offset, mask)


def _as_ising(ising, more: tuple) -> IsingRBM:
    if isinstance(ising, IsingRBM):
        if more:
            raise TypeError("pass an IsingRBM alone, or the arrays h_visible, h_hidden, J")
        return ising
    if len(more) not in (2, 3):
        raise TypeError("ising_to_rbm takes an IsingRBM or the arrays (h_visible, h_hidden, J[, offset])")
    arrays = [_numpy64(a) for a in (ising, *more[:2])]
    return IsingRBM(arrays[0], arrays[1], arrays[2], float(more[2]) if len(more) == 3 else 0.0)


def ising_to_params(ising: IsingRBM, dtype=torch.float64, device=None) -> RBMParams:
    """Inverse of Eq. 3.1 as a sampler-ready :class:`RBMParams` (biases may be batched)."""
    h_v, h_h, J = (np.asarray(a, dtype=np.float64) for a in (ising.h_visible, ising.h_hidden, ising.J))
    W, b, c = from_ising_arrays(h_v, h_h, J)
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    mask = None if ising.mask is None else torch.as_tensor(ising.mask, device=device)  # RBMParams checks it
    return RBMParams(as_t(W), as_t(b), as_t(c), mask).validate()


def ising_to_rbm(ising, *arrays, dtype=torch.float64, device=None) -> RBM:
    """Inverse of Eq. 3.1: an :class:`RBM` (float64 by default) with the same distribution.

    ``ising_to_rbm(ising_rbm)`` or ``ising_to_rbm(h_visible, h_hidden, J)`` with
    ``J`` of shape ``(n_hidden, n_visible)`` in dimod's signs.
    """
    ising = _as_ising(ising, arrays)
    for name, a in (("h_visible", ising.h_visible), ("h_hidden", ising.h_hidden), ("J", ising.J)):
        if not np.isfinite(np.asarray(a, dtype=np.float64)).all():
            raise ValueError(f"{name} holds NaN or inf")
    if np.shape(ising.J) != (np.shape(ising.h_hidden)[-1], np.shape(ising.h_visible)[-1]):
        raise ValueError(
            f"J has shape {np.shape(ising.J)}; expected (n_hidden, n_visible) = "
            f"({np.shape(ising.h_hidden)[-1]}, {np.shape(ising.h_visible)[-1]})"
        )
    from physamp.models.rbm.model import RBM  # the module; ising itself stands below the models

    p = ising_to_params(ising, dtype=dtype, device=device)
    if p.batched:
        raise ValueError("ising_to_rbm needs unbatched biases; use ising_to_params for batches")
    rbm = RBM(p.n_visible, p.n_hidden, mask=None, dtype=dtype, device=device)
    with torch.no_grad():
        rbm.W.copy_(p.W)
        rbm.b.copy_(p.b)
        rbm.c.copy_(p.c)
    if p.mask is not None:
        rbm.set_mask(p.mask)
    return rbm


def default_labels(n_visible: int, n_hidden: int) -> list[int]:
    """Visible unit ``i`` → variable ``i``; hidden unit ``j`` → variable ``n_visible + j``."""
    return list(range(n_visible + n_hidden))


def resolve_labels(labels, n_visible: int, n_hidden: int) -> list[Hashable]:
    """The BQM variable of each unit, visible units first.

    ``labels`` is a sequence of ``n_visible + n_hidden`` distinct labels, a topology
    with ``.visible`` / ``.hidden`` (qubit labels), or None for :func:`default_labels`.
    The one place labels are resolved: the BQM export here and the dimod backends
    (:mod:`physamp.samplers.dimod_io`) both call it.
    """
    if labels is None:
        return list(default_labels(n_visible, n_hidden))
    if hasattr(labels, "visible") and hasattr(labels, "hidden"):  # a topology
        labels = list(labels.visible) + list(labels.hidden)
    labels = list(labels)
    if len(labels) != n_visible + n_hidden:
        raise ValueError(
            f"got {len(labels)} labels for an RBM with {n_visible} visible + {n_hidden} hidden "
            "units; the labels (or topology) must name one variable per unit"
        )
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct: two units cannot share a variable/qubit")
    return labels


def _resolve_labels(labels, n_visible: int, n_hidden: int) -> list | None:
    """:func:`resolve_labels`, keeping None (dimod then numbers the variables ``0..n-1``,
    which are the default labels)."""
    return None if labels is None else resolve_labels(labels, n_visible, n_hidden)


def ising_to_bqm(ising: IsingRBM, labels: Sequence | None = None, *, mask: np.ndarray | None = None):
    """Build a SPIN ``dimod.BinaryQuadraticModel`` from an :class:`IsingRBM` (vectorised).

    Couplers are the entries of ``mask`` (or of ``ising.mask``; all of them when
    both are None). Variable order: the visible units then the hidden units.
    """
    import dimod

    if np.ndim(ising.h_visible) != 1 or np.ndim(ising.h_hidden) != 1:
        raise ValueError("a BQM needs one bias vector; this Ising model has batched biases")
    nv, nh = ising.n_visible, ising.n_hidden
    labels = _resolve_labels(labels, nv, nh)
    mask = ising.mask if mask is None else mask
    if mask is None:
        rows, cols = np.divmod(np.arange(nh * nv), nv)
    else:
        rows, cols = np.nonzero(mask)
    linear = np.concatenate([ising.h_visible, ising.h_hidden])
    quadratic = (rows + nv, cols, ising.J[rows, cols])  # (hidden var, visible var, J)
    # (dimod's annotation of variable_order omits None, its default: variables numbered 0..n-1)
    return dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear,
        quadratic,
        float(ising.offset),
        dimod.SPIN,
        variable_order=labels,  # type: ignore[arg-type]
    )


def rbm_to_bqm(rbm: RBMLike, labels: Sequence | None = None):
    """The RBM as a SPIN ``dimod.BinaryQuadraticModel`` whose energies equal the RBM's.

    ``bqm.energy(s) == rbm.energy(v, h)`` for ``s = 2(v, h) - 1``, so both define
    the same Boltzmann distribution at β = 1. ``labels`` is a sequence of
    ``n_visible + n_hidden`` variable labels (visible first) or a topology with
    ``.visible`` / ``.hidden``; by default visible ``i`` → ``i``, hidden ``j`` →
    ``n_visible + j``. Masked connections become absent couplers.
    """
    return ising_to_bqm(rbm_to_ising(rbm), labels)
