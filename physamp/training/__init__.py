"""Device-agnostic training utilities shared by the RBM, ALI and style models.

One of each: :func:`resolve_device`, :func:`seed_everything`, :func:`set_threads`,
atomic :func:`save_checkpoint` / safe :func:`load_checkpoint`, :class:`MetricsLogger`,
:func:`progress_bar`, and the loop :class:`TrainLoop` with :class:`Callback` hooks and
exact resume.
"""

from physamp.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from physamp.training.device import resolve_device, seed_everything, set_threads
from physamp.training.loop import Callback, RunDirectoryError, TrainLoop, progress_bar
from physamp.training.metrics import MetricsLogger, read_metrics

__all__ = [
    "resolve_device",
    "seed_everything",
    "set_threads",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "MetricsLogger",
    "read_metrics",
    "progress_bar",
    "TrainLoop",
    "Callback",
    "RunDirectoryError",
]
