"""The one ``fit()``: a trainer says what a step is; :class:`Trainer` runs it on :class:`TrainLoop`.

A trainer defines four things and inherits ``fit``::

    class MyTrainer(Trainer):
        desc = "train-mine"                       # the progress bar's label

        def step(self, step): ...                 # one update; returns scalar metrics
        def state(self): ...                      # {name: object} saved in every checkpoint
        def config_dict(self): ...                # the run's identity (config.json)
        total_steps = 1000                        # an attribute or a property

``batches_per_epoch`` (optional) sets the default checkpoint and log intervals and lets a
Ctrl-C say where the run stopped in epochs. :meth:`Trainer.loop_options` and
:meth:`Trainer.prepare` are the two hooks a distributed trainer overrides (only process 0
writes the run directory; every process starts from process 0's checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physamp.training.loop import TrainingInterrupted, TrainLoop

__all__ = ["Trainer"]


class Trainer:
    """Base of every model family's trainer (RBM, ALI and its baselines): the one ``fit``."""

    desc = "train"
    batches_per_epoch: int | None = None
    loop: TrainLoop | None = None
    total_steps: int

    def step(self, step: int) -> dict[str, Any]:  # pragma: no cover - every trainer defines it
        raise NotImplementedError

    def state(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def intervals(self) -> tuple[int, int]:
        """Default ``(checkpoint_every, log_every)``: once an epoch (at most every 1,000 steps
        without epochs) and a record every epoch or 100 steps, whichever is sooner."""
        per = self.batches_per_epoch or min(self.total_steps, 1000) or 1
        return per, min(per, 100)

    def loop_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``run_dir`` / ``progress`` / ``callbacks`` this process's loop gets (all of them here)."""
        return options

    def prepare(self, loop: TrainLoop, run_dir: str | Path | None) -> bool:
        """Called before the loop runs; returns whether :meth:`TrainLoop.run` should resume itself."""
        return True

    def fit(
        self,
        run_dir: str | Path | None = None,
        *,
        progress: bool = True,
        checkpoint_every: int | None = None,
        stop_after: int | None = None,
        log_every: int | None = None,
        overwrite: bool = False,
        callbacks=(),
    ) -> list[dict]:
        """Train to ``total_steps``, resuming from ``run_dir``'s checkpoint if it holds this run;
        returns the logged records. ``stop_after`` stops after that many steps (with a checkpoint)."""
        every, log = self.intervals()
        options = self.loop_options({"run_dir": run_dir, "progress": progress, "callbacks": callbacks})
        loop = TrainLoop(
            self.step,
            total_steps=self.total_steps,
            state=self.state(),
            config=self.config_dict(),
            checkpoint_every=checkpoint_every or every,
            log_every=log_every or log,
            desc=self.desc,
            overwrite=overwrite,
            **options,
        )
        self.loop = loop
        resume = self.prepare(loop, run_dir)
        try:
            return loop.run(stop_after=stop_after, resume=resume)
        except TrainingInterrupted as stop:  # Ctrl-C: say where in epochs too
            stop.steps_per_epoch = self.batches_per_epoch
            raise
