"""The RBM's energy, free energy and parameter view: one home for each formula.

Energy and distribution (thesis Eq. 1.32)::

    E(v, h) = -b·v - c·h - hᵀ W v,        p(v, h) = exp(-E(v, h)) / Z

with ``v ∈ {0,1}^n_visible``, ``h ∈ {0,1}^n_hidden`` and ``W`` of shape
``(n_hidden, n_visible)``. Summing out the hiddens gives the free energy at
inverse temperature β (β multiplies the joint energy, so it sits inside the
softplus)::

    F(v; β) = -β b·v - Σ_j softplus(β (c_j + W_j·v)),     p_β(v) ∝ exp(-F(v; β))

and, by the symmetry of the two layers, ``F(h; β)`` is :func:`free_energy` with
``(h, Wᵀ, c, b)``. These are the only implementations in physamp: the
:class:`~physamp.RBM` module, the samplers, exact enumeration and AIS all call
them.

:class:`RBMParams` is the detached view of an RBM that samplers read. Its biases
may carry a leading batch dimension (one bias vector per chain), which is how
the per-sample bias noise of a physical device is represented. This module
imports nothing else from physamp, so the samplers, the Ising conversion and the
model families can all stand on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

import torch
from torch.nn import functional as F

__all__ = [
    "RBMParams",
    "RBMLike",
    "LayerSizes",
    "HasParams",
    "as_params",
    "check_finite",
    "check_mask",
    "energy",
    "free_energy",
]


class HasParams(Protocol):
    """A model that hands samplers its :class:`RBMParams` view (:class:`physamp.RBM` does)."""

    def params(self) -> RBMParams: ...


#: What samplers and the Ising conversion accept: an RBM module or its parameter view.
RBMLike = Union[HasParams, "RBMParams"]


def energy(v: torch.Tensor, h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """E(v, h) = -b·v - c·h - hᵀWv for rows ``v (N, n_visible)``, ``h (N, n_hidden)``: shape ``(N,)``.

    Biases may be ``(n,)`` or per-row ``(N, n)`` (chain ``i`` has bias row ``i``).
    """
    lin_v = v @ b if b.dim() == 1 else (v * b).sum(-1)
    lin_h = h @ c if c.dim() == 1 else (h * c).sum(-1)
    return -lin_v - lin_h - ((h @ W) * v).sum(-1)


def free_energy(
    v: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    beta: float = 1.0,
    *,
    paired: bool = False,
):
    """F(v; β) = -β b·v - Σ_j softplus(β (c_j + W_j·v)) for rows ``v (N, n_visible)``.

    One model (``W (n_hidden, n_visible)``, ``b (n_visible,)``, ``c (n_hidden,)``)
    gives shape ``(N,)``. A batch of ``D`` models -- ``W (D, n_hidden, n_visible)``,
    or biases ``b (D, n_visible)`` / ``c (D, n_hidden)`` with a shared ``W`` -- gives
    ``(D, N)``: every row of ``v`` under every model. The hidden-layer free energy
    ``F(h; β)`` is ``free_energy(h, W.mT, c, b, β)``. Gradients flow to every argument.

    ``paired=True`` reads batched biases ``(N, n)`` the way :class:`RBMParams` does (row
    ``i`` of ``v`` under bias row ``i``, one chain each) and gives ``(N,)``.
    """
    if paired and W.dim() == 2:
        pre = v @ W.t() + c
        lin = (v * b).sum(-1) if b.dim() == 2 else v @ b
    elif W.dim() == 2 and b.dim() == 1 and c.dim() == 1:
        pre = torch.addmm(c, v, W.t())
        lin = v @ b
    else:
        pre = torch.matmul(v, W.transpose(-1, -2))  # (N, nh) or (D, N, nh)
        pre = pre + (c[:, None, :] if c.dim() == 2 else c)
        lin = b @ v.t() if b.dim() == 2 else v @ b  # (D, N) or (N,)
    if beta != 1.0:
        return -beta * lin - F.softplus(beta * pre).sum(-1)
    return -lin - F.softplus(pre).sum(-1)


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``t`` holds NaN or ±inf.

    A finite sum proves every entry finite (NaN and inf propagate), so the full
    elementwise check runs only when the sum is not finite (or overflowed).
    """
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf): the model has diverged and cannot "
            "be sampled or evaluated; retrain with a lower learning rate, or reload a finite checkpoint"
        )


def check_mask(mask) -> torch.Tensor:
    """A connectivity mask as a bool tensor, or a one-line ``ValueError``.

    A mask is boolean, or numbers that are exactly 0 (no connection) or 1 (a
    connection); anything else -- NaN, -1, 0.5, complex values -- is refused instead of
    being read as a connection. A bool tensor is returned as it is (the same object,
    no copy, nothing scanned). The one check of a mask: :class:`RBMParams` and
    :meth:`physamp.RBM.set_mask` call it where a mask enters them.
    """
    if not isinstance(mask, torch.Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"a mask must be a boolean or 0/1 array of shape (n_hidden, n_visible); "
                f"got {type(mask).__name__} ({str(err).splitlines()[0]})"
            ) from None
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise ValueError(f"a mask must be boolean or hold only 0 and 1; got a {mask.dtype} tensor")
    bad = ~((mask == 0) | (mask == 1))
    if bool(bad.any()):
        n_bad = int(bad.sum())
        example = mask[bad].flatten()[0].item()
        raise ValueError(
            f"a mask must be boolean or hold only 0 and 1 (1 = connection); this one holds "
            f"{n_bad} other value(s), e.g. {example!r}: fix or threshold it (mask > 0.5) first"
        )
    return mask.to(torch.bool)


class LayerSizes:
    """``n_visible`` / ``n_hidden`` read off ``W (n_hidden, n_visible)``, for the module and its view."""

    W: torch.Tensor

    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[0]


@dataclass(frozen=True)
class RBMParams(LayerSizes):
    """Detached RBM parameters as samplers see them.

    W: ``(n_hidden, n_visible)``; b: ``(n_visible,)`` or ``(N, n_visible)``;
    c: ``(n_hidden,)`` or ``(N, n_hidden)``; mask: ``(n_hidden, n_visible)`` or None,
    given as bool or exactly 0/1 (:func:`check_mask`; stored as bool).
    A batched bias gives chain ``i`` its own bias vector ``b[i]`` (``N`` must then
    equal the number of samples requested).
    """

    W: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mask is not None:
            object.__setattr__(self, "mask", check_mask(self.mask))

    @property
    def device(self) -> torch.device:
        return self.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def batched(self) -> bool:
        return self.b.dim() == 2 or self.c.dim() == 2

    @property
    def batch_size(self) -> int | None:
        for t in (self.b, self.c):
            if t.dim() == 2:
                return t.shape[0]
        return None

    def validate(self) -> RBMParams:
        nh, nv = self.W.shape if self.W.dim() == 2 else (None, None)
        if self.W.dim() != 2:
            raise ValueError(f"W must be 2-D (n_hidden, n_visible); got shape {tuple(self.W.shape)}")
        if self.b.shape[-1] != nv or self.b.dim() > 2:
            raise ValueError(
                f"visible bias b has shape {tuple(self.b.shape)}; expected ({nv},) or (N, {nv}) "
                f"for W of shape {tuple(self.W.shape)}"
            )
        if self.c.shape[-1] != nh or self.c.dim() > 2:
            raise ValueError(
                f"hidden bias c has shape {tuple(self.c.shape)}; expected ({nh},) or (N, {nh}) "
                f"for W of shape {tuple(self.W.shape)}"
            )
        if self.b.dim() == 2 and self.c.dim() == 2 and self.b.shape[0] != self.c.shape[0]:
            raise ValueError(
                f"batched biases disagree on the batch size: b {tuple(self.b.shape)}, c {tuple(self.c.shape)}"
            )
        if self.mask is not None and tuple(self.mask.shape) != (nh, nv):
            raise ValueError(f"mask has shape {tuple(self.mask.shape)}; expected ({nh}, {nv})")
        check_finite("W", self.W)
        check_finite("b", self.b)
        check_finite("c", self.c)
        return self

    def with_batched_biases(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Biases broadcast to ``(n, n_visible)`` and ``(n, n_hidden)`` (views, no copy)."""
        bs = self.batch_size
        if bs is not None and bs != n:
            raise ValueError(f"the parameters carry {bs} bias vectors but {n} samples were requested")
        return self.b.expand(n, self.n_visible), self.c.expand(n, self.n_hidden)

    # conditionals shared by every torch-based sampler ---------------------------------
    def hidden_logits(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """β (c + v Wᵀ): ``(N, n_hidden)`` logits of p(h=1 | v)."""
        out = torch.addmm(self.c, v, self.W.t()) if self.c.dim() == 1 else self.c + v @ self.W.t()
        return out if beta == 1.0 else out * beta

    def visible_logits(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """β (b + h W): ``(N, n_visible)`` logits of p(v=1 | h)."""
        out = torch.addmm(self.b, h, self.W) if self.b.dim() == 1 else self.b + h @ self.W
        return out if beta == 1.0 else out * beta

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) of Eq. 1.32, shape ``(N,)`` (see :func:`energy`)."""
        return energy(v, h, self.W, self.b, self.c)

    def free_energy(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F(v) at inverse temperature β, shape ``(N,)``: row ``i`` of ``v`` under its own bias
        row when the biases are batched (one per chain), as in :meth:`energy`."""
        return free_energy(v, self.W, self.b, self.c, beta, paired=self.batched)


def as_params(model) -> RBMParams:
    """The :class:`RBMParams` view of a model: RBMParams pass through, an RBM (anything with
    a ``params()`` method returning RBMParams, such as :class:`physamp.RBM`) gives its view."""
    if isinstance(model, RBMParams):
        return model
    params = getattr(model, "params", None)
    if callable(params):
        out = params()
        if isinstance(out, RBMParams):
            return out
    raise TypeError(
        f"expected a physamp.RBM or RBMParams, got {type(model).__name__}; build one with "
        "physamp.RBM(n_visible, n_hidden)"
    )
