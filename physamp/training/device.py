"""Device choice, seeding and thread count: the same three calls for every model.

:func:`seed_everything` lives in :mod:`physamp.seeding`, beside the one derivation of
every per-purpose seed (:func:`~physamp.seeding.derive_seed`); it is re-exported here.
"""

from __future__ import annotations

import os

import torch

from physamp.seeding import seed_everything

__all__ = ["resolve_device", "seed_everything", "set_threads"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, then MPS, then CPU; otherwise ``torch.device(device)``.

    Asking for a device that is not there is an error that says what is available.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was asked for but MPS is not available; use 'cpu' or 'auto'")
    return dev


def set_threads(num_threads: int | None) -> int:
    """Set torch's CPU thread count (and OMP_NUM_THREADS for new workers); returns the count in force.

    On a shared machine one thread is often faster than two: OpenMP threads
    spin-wait on a busy core.
    """
    if num_threads is not None:
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        torch.set_num_threads(num_threads)
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
    return torch.get_num_threads()
