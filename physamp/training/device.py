"""Device choice, seeding and thread count: the same three calls for every model.

:func:`seed_everything` lives in :mod:`physamp.seeding`, beside the one derivation of
every per-purpose seed (:func:`~physamp.seeding.derive_seed`); it is re-exported here.
"""

from __future__ import annotations

import os

import torch

from physamp.seeding import seed_everything

__all__ = ["resolve_device", "seed_everything", "set_threads", "default_threads", "check_amp"]


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


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count physamp uses unless told otherwise: never many times slower than 1 thread.

    ``max(1, min(cores // 2, cores - load))``, with ``cores`` the CPUs this process may run
    on and ``load`` the 1-minute load average (0 where the system does not report one).
    So it is 1 on a 2-core machine, and at most half the cores of a bigger idle one.

    Why: torch's CPU kernels use OpenMP, whose threads spin while they wait for each other.
    When another process keeps a core busy, a thread that loses its core makes the others
    spin for its whole time slice: on a 2-core machine with one core busy, measured AIS and
    PCD epochs ran 8-19x slower with 2 threads than with 1 (README, "Threads"), while
    on an idle one 2 threads gain only about 1.5x.
    """
    cores = _usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores // 2, int(cores - load)))


def set_threads(num_threads: int | str | None) -> int:
    """Set torch's CPU thread count (and OMP_NUM_THREADS for new workers); returns the count in force.

    ``"auto"`` is :func:`default_threads` (what the ``physamp`` command uses unless given
    ``--threads``); None leaves the count as it is. On a shared machine one thread is often
    much faster than two: OpenMP threads spin-wait on a busy core. From Python::

        from physamp.training import set_threads
        set_threads(1)          # or set_threads("auto")
    """
    if isinstance(num_threads, str) and num_threads == "auto":
        num_threads = default_threads()
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int or 'auto', got {num_threads!r}")
        torch.set_num_threads(num_threads)
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
    return torch.get_num_threads()


def check_amp(amp: bool, device: str | torch.device) -> None:
    """``--amp`` (bfloat16 autocast) is for CUDA: a clear error elsewhere, before any work."""
    if amp and torch.device(device).type != "cuda":
        raise ValueError(f"--amp (bfloat16 autocast) is for CUDA; this run is on {device}")
