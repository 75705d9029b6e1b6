"""What every physamp backend built on a dimod sampler shares (``dimod``, ``dwave``, ``neal``).

- :func:`check_sample_kwargs`: keyword arguments for ``sampler.sample`` must be
  among the sampler's ``parameters`` and not among those the backend sets itself.
- :func:`call_seed`: the per-call seed a backend passes to a sampler that takes one.
- :func:`sampleset_columns`, :func:`sampleset_to_array`, :func:`sampleset_to_units`:
  a ``SampleSet``'s columns in *our* order (dimod orders them by
  ``sampleset.variables``, never promising the order the BQM was built with), as
  raw values or as {0, 1} units, one row per read.
- :func:`split_units`: ``(N, n_visible + n_hidden)`` units into the ``(v, h)`` tensors
  a backend's ``_sample`` returns.
- :func:`resolve_labels` (from :mod:`physamp.ising`, its one home): the BQM variable
  of each unit, from a label sequence, a topology or the defaults.

dimod itself is imported only inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from physamp.ising import resolve_labels
from physamp.samplers.base import Sampler, UnknownOptionError

__all__ = [
    "check_structured",
    "check_sample_kwargs",
    "call_seed",
    "sampleset_columns",
    "sampleset_to_array",
    "sampleset_to_units",
    "split_units",
    "resolve_labels",
]


STRUCTURED = ("sample", "nodelist", "edgelist", "properties", "parameters")


def check_structured(sampler, what: str, hint: str) -> None:
    """Raise ``TypeError`` unless ``sampler`` is a structured dimod sampler (a graph to place on).

    ``what`` names the argument in the message; ``hint`` says how to fix it.
    """
    for attr in STRUCTURED:
        if not hasattr(sampler, attr):
            raise TypeError(
                f"{what} must be a structured dimod sampler (with .{attr}); got "
                f"{type(sampler).__name__}. {hint}"
            )


def check_sample_kwargs(
    sampler,
    kwargs: Mapping[str, Any],
    managed: Sequence[str],
    who: str,
    why: str = "; do not pass them",
) -> None:
    """Raise unless every key of ``kwargs`` is a parameter of ``sampler`` that the backend
    ``who`` leaves to the user.

    Raises:
        ValueError: a key is in ``managed`` (set by the backend itself; ``why`` says how).
        UnknownOptionError: a key is not in ``sampler.parameters`` (the message lists
            the valid ones).
    """
    taken = sorted(set(kwargs) & set(managed))
    if taken:
        raise ValueError(f"{who} sets {taken} itself{why}")
    unknown = sorted(set(kwargs) - set(sampler.parameters))
    if unknown:
        valid = ", ".join(sorted(set(sampler.parameters) - set(managed))) or "(none)"
        raise UnknownOptionError(
            f"{type(sampler).__name__} has no parameter(s) {unknown}; its parameters are: {valid}"
        )


def call_seed(backend: Sampler, sampler) -> dict[str, int]:
    """``{"seed": backend.numpy_seed()}`` when ``backend`` is seeded and ``sampler`` has a
    ``seed`` parameter, else ``{}``: one fresh, reproducible seed per call."""
    if backend.seed is not None and "seed" in sampler.parameters:
        return {"seed": backend.numpy_seed()}
    return {}


def sampleset_columns(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """Column index in ``sampleset.record.sample`` of each of ``labels``.

    Raises:
        ValueError: a label is not a variable of the sampleset.
    """
    variables = sampleset.variables
    missing = [lab for lab in labels if lab not in variables]
    if missing:
        raise ValueError(
            f"the sampleset has no variable(s) {missing[:10]}; it holds {len(variables)} variables"
        )
    return np.fromiter((variables.index(lab) for lab in labels), dtype=np.int64, count=len(labels))


def sampleset_to_array(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """The raw values of ``sampleset`` (one row per record row, ``num_occurrences`` not
    expanded, vartype kept), columns in ``labels`` order.

    The record itself is returned, not copied, when its columns are already in order.
    """
    labels = list(labels)
    record = sampleset.record.sample
    variables = sampleset.variables
    if len(variables) == len(labels) and all(a == b for a, b in zip(variables, labels, strict=True)):
        return record
    return record[:, sampleset_columns(sampleset, labels)]


def sampleset_to_units(sampleset, labels: Sequence[Hashable]) -> np.ndarray:
    """``(N, len(labels))`` {0,1} float64 rows of ``sampleset``, columns in ``labels`` order.

    Columns are looked up in ``sampleset.variables`` (never assumed to be in the
    order the BQM was built with); rows are repeated by ``num_occurrences`` so an
    aggregated (histogram) answer gives one row per read. SPIN values ``s`` become
    ``(s + 1) / 2``; BINARY values are kept.
    """
    import dimod

    cols = sampleset_columns(sampleset, list(labels))
    record = sampleset.record
    x = np.asarray(record.sample)[:, cols].astype(np.float64)
    occ = np.asarray(record.num_occurrences)
    if (occ != 1).any():
        x = np.repeat(x, occ, axis=0)
    if sampleset.vartype is dimod.SPIN:
        x = (x + 1.0) / 2.0
    return x


def split_units(x: np.ndarray, n_visible: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, n_visible + n_hidden)`` units (visible first) as contiguous ``(v, h)`` tensors."""
    return (
        torch.from_numpy(np.ascontiguousarray(x[:, :n_visible])),
        torch.from_numpy(np.ascontiguousarray(x[:, n_visible:])),
    )
