"""Device-agnostic training utilities shared by the RBM, ALI and style models.

One of each, so that no model family carries its own copy:

- :class:`Trainer` (:mod:`~physamp.training.trainer`): the one ``fit()``; a model family's
  trainer defines ``step``, ``state``, ``config_dict`` and ``total_steps`` and inherits it.
- :class:`TrainLoop` (:mod:`~physamp.training.loop`): the one training loop, with
  :class:`Callback` hooks, :func:`progress_bar`, metrics that stay on the device
  until a record is written, checkpoints and exact resume of every object in its
  ``state`` (modules, optimizers, schedulers, samplers, generators, the data order).
- :class:`BatchOrder` and :class:`ResumableLoader` (:mod:`~physamp.training.data`):
  a batch order that is a pure function of ``(seed, epoch)`` (a DataLoader
  ``batch_sampler``), and batches forever whose position is resumable state.
- :func:`to_jsonable`, :func:`canonical_config`, :func:`config_diff`
  (:mod:`~physamp.training.config`): a run's config as JSON that is the same in
  every process, by which a run directory and a checkpoint are matched to a run.
- The one checkpoint layout (:mod:`~physamp.training.checkpoint`): atomic
  :func:`save_checkpoint` / safe :func:`load_checkpoint`, :func:`checkpoint_payload`
  and :func:`save_components` to write it, :func:`load_component`,
  :func:`checkpoint_components` and :func:`checkpoint_config` to read it.
- :class:`MetricsLogger` / :func:`read_metrics` (:mod:`~physamp.training.metrics`).
- :func:`resolve_device`, :func:`seed_everything`, :func:`set_threads`,
  :func:`default_threads` (:mod:`~physamp.training.device`).
- :class:`FileLock` and :func:`run_dir_lock` (:mod:`~physamp.training.lock`): one process
  at a time in a run directory or a sweep cell; a second one is told which process holds it.
- :func:`option`, :func:`add_config_arguments`, :func:`config_from_args`,
  :func:`apply_overrides` (:mod:`~physamp.training.options`): a config dataclass as
  the one source of a run's hyperparameters and of its command-line flags.
- :class:`Distributed`, :class:`GlobalBatchNorm`, :func:`convert_global_batchnorm`
  (:mod:`~physamp.training.distributed`): data-parallel training under ``torchrun``
  (DDP, batch norm over the global batch, resume from process 0's checkpoint).
"""

from physamp.training.checkpoint import (
    CheckpointError,
    checkpoint_components,
    checkpoint_config,
    checkpoint_payload,
    load_checkpoint,
    load_component,
    save_checkpoint,
    save_components,
)
from physamp.training.config import canonical_config, config_diff, to_jsonable
from physamp.training.data import BatchOrder, ResumableLoader
from physamp.training.device import default_threads, resolve_device, seed_everything, set_threads
from physamp.training.distributed import Distributed, GlobalBatchNorm, convert_global_batchnorm
from physamp.training.lock import FileLock, LockHeldError
from physamp.training.loop import (
    Callback,
    RunDirectoryError,
    TrainingInterrupted,
    TrainLoop,
    progress_bar,
    read_run_config,
    run_dir_lock,
)
from physamp.training.metrics import MetricsLogger, read_metrics
from physamp.training.options import add_config_arguments, apply_overrides, config_from_args, option
from physamp.training.trainer import Trainer

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "save_components",
    "load_component",
    "checkpoint_payload",
    "checkpoint_config",
    "checkpoint_components",
    "to_jsonable",
    "canonical_config",
    "config_diff",
    "BatchOrder",
    "ResumableLoader",
    "resolve_device",
    "seed_everything",
    "set_threads",
    "default_threads",
    "FileLock",
    "LockHeldError",
    "TrainLoop",
    "Trainer",
    "Callback",
    "RunDirectoryError",
    "TrainingInterrupted",
    "read_run_config",
    "run_dir_lock",
    "progress_bar",
    "MetricsLogger",
    "read_metrics",
    "option",
    "add_config_arguments",
    "config_from_args",
    "apply_overrides",
    "Distributed",
    "GlobalBatchNorm",
    "convert_global_batchnorm",
]
