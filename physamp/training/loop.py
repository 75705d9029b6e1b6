"""One training loop for every model: steps, logging, checkpoints, exact resume, callbacks.

The model code supplies a ``step_fn(step) -> dict of metrics`` and the objects
whose state must survive a restart; :class:`TrainLoop` does the rest::

    batches = ResumableLoader(dataset, batch_size=64, seed=cfg["seed"])   # physamp.training.data
    state = {"encoder": enc, "decoder": dec, "opt": opt, "sched": sched, "data": batches}
    loop = TrainLoop(step_fn, total_steps=1000, run_dir="runs/ali", state=state,
                     config=cfg, checkpoint_every=100, log_every=10)
    loop.run()          # resumes from runs/ali/checkpoint.pt if it holds this run

State:
    Every entry of ``state`` is an object with ``state_dict()`` / ``load_state_dict()``
    (modules, optimizers, LR schedulers, samplers, a
    :class:`~physamp.training.data.ResumableLoader`) or a ``torch.Generator``. The
    global CPU generator (and CUDA's) is saved too, so dropout and any other draw from
    the global stream resume exactly. All randomness of a step must come from those
    generators, and the batches from a resumable order, for a run killed and resumed to
    end bit-identical (on CPU) to an uninterrupted one.

Metrics:
    ``step_fn`` returns scalar metrics as Python numbers or 0-d / one-element tensors.
    Tensors are detached and summed on their device; they are turned into floats only
    when a record is written (every ``log_every`` steps, the mean over those steps), so
    a step does not wait for the device. A partial sum is part of the checkpoint, so
    records are the same whether or not the run was interrupted in between.
    A metric may also be a pair ``(total, count)`` (e.g. the summed loss of the batch's
    examples of one style, and how many there were): its record is ``Σ total / Σ count``
    over the window, the mean per example, and it is left out of a record whose window
    had no example. Metrics whose name holds a ``/`` (per-group ones) are logged but kept
    off the progress bar.

Run directory:
    It holds ``config.json``, ``checkpoint.pt`` and ``metrics.jsonl`` (or ``.csv``).
    The config is stored as :func:`~physamp.training.config.to_jsonable` of it, which is
    the same in every process (objects by class name, never by a ``repr`` with a memory
    address); starting a run whose config differs from the one already in the directory
    is an error that names the differing keys, and nothing on disk is overwritten.
    The checkpoint has the one layout of :mod:`physamp.training.checkpoint`
    (``"state:<name>"`` per entry of ``state``); read a component with
    :func:`~physamp.training.checkpoint.load_component`. Files that are not what they
    should be (``config.json`` that is not an object, a checkpoint without generator
    states, metrics records without ``step``) are a :class:`RunDirectoryError` or
    :class:`~physamp.training.CheckpointError` that names the file.

    While a loop works on it, the directory is locked (``.lock``, see
    :mod:`physamp.training.lock`): a second process that starts a run there is refused
    with an error naming the process that holds it. The lock is taken when the loop is
    made and given back when :meth:`TrainLoop.run` returns (or :meth:`TrainLoop.close`).

Ctrl-C:
    With a run directory, the first Ctrl-C lets the current step finish, writes a
    checkpoint and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) that
    says where the run stopped; running the same code again resumes exactly there. A
    second Ctrl-C stops at once (the last checkpoint is then the one before).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from physamp.training.checkpoint import (
    CheckpointError,
    checkpoint_payload,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from physamp.training.config import canonical_config, config_diff, to_jsonable
from physamp.training.lock import FileLock, LockHeldError
from physamp.training.metrics import MetricsLogger

__all__ = [
    "TrainLoop",
    "Callback",
    "RunDirectoryError",
    "TrainingInterrupted",
    "progress_bar",
    "read_run_config",
    "run_dir_lock",
]


class RunDirectoryError(ValueError):
    """The run directory holds a different run, is in use by another process, or holds a bad file."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :meth:`TrainLoop.run`; it says where, and what the checkpoint holds.

    Attributes:
        step, total_steps: steps done when it stopped, and of the whole run.
        checkpoint: the run directory's checkpoint (None: no run directory, or none written yet).
        checkpoint_step: the step that checkpoint holds (where a rerun resumes).
        steps_per_epoch: set by trainers that count epochs (None otherwise).
    """

    def __init__(
        self,
        step: int,
        total_steps: int,
        checkpoint: Path | None,
        checkpoint_step: int | None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(step, total_steps)
        self.step, self.total_steps = step, total_steps
        self.checkpoint, self.checkpoint_step = checkpoint, checkpoint_step
        self.steps_per_epoch = steps_per_epoch

    def _at(self, step: int) -> str:
        text = f"step {step:,} of {self.total_steps:,}"
        if self.steps_per_epoch:
            epochs = -(-self.total_steps // self.steps_per_epoch)
            text += f" (epoch {step // self.steps_per_epoch} of {epochs} done)"
        return text

    def __str__(self) -> str:
        text = f"training stopped at {self._at(self.step)}"
        if self.checkpoint is None or self.checkpoint_step is None:
            return text + "; no checkpoint was written, so a rerun starts from the beginning"
        if self.checkpoint_step == self.step:
            return text + f"; the checkpoint {self.checkpoint} holds it"
        return text + f"; the checkpoint {self.checkpoint} holds {self._at(self.checkpoint_step)}"


def run_dir_lock(run_dir: str | Path) -> FileLock:
    """The lock of a run directory (``RUN_DIR/.lock``); take it with ``with run_dir_lock(d):``.

    A held lock is a :class:`RunDirectoryError` naming the process that holds it.
    """
    return _RunDirLock(Path(run_dir) / ".lock", what=f"run directory {run_dir}")


class _RunDirLock(FileLock):
    def acquire(self, *, blocking: bool = False) -> FileLock:
        try:
            return super().acquire(blocking=blocking)
        except LockHeldError as err:
            raise RunDirectoryError(str(err)) from None


def read_run_config(path: str | Path) -> dict[str, Any]:
    """A run directory's ``config.json``, checked to be a JSON object; a :class:`RunDirectoryError`
    that names the file otherwise."""
    path = Path(path)
    fix = "fix or remove it, or start over with overwrite=True (--overwrite)"
    try:
        text = path.read_text()
    except OSError as err:
        raise RunDirectoryError(f"{path} cannot be read ({err.strerror or err}); {fix}") from None
    try:
        config = json.loads(text)
    except ValueError:
        raise RunDirectoryError(f"{path} is not valid JSON; {fix}") from None
    if not isinstance(config, dict):
        raise RunDirectoryError(
            f"{path} holds a JSON {type(config).__name__}, not the object a run's config is; {fix}"
        )
    return config


class Callback:
    """Hooks called by :class:`TrainLoop`; override what you need."""

    def on_start(self, loop: TrainLoop) -> None: ...

    def on_step_end(self, loop: TrainLoop, step: int, metrics: dict) -> None: ...

    def on_checkpoint(self, loop: TrainLoop, path: Path) -> None: ...

    def on_end(self, loop: TrainLoop) -> None: ...


def progress_bar(total: int, *, initial: int = 0, desc: str = "", enabled: bool = True):
    """A tqdm bar with ETA (a no-op object when disabled or when tqdm is missing)."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=True)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            pass

    class _Null:
        def update(self, n=1): ...

        def set_postfix(self, *a, **k): ...

        def close(self): ...

    return _Null()


class _MetricSums:
    """Sums of the step metrics since the last record: tensors stay on their device until :meth:`means`."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.weights: dict[str, Any] = {}  # the summed counts of the weighted metrics
        self.count = 0

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            if isinstance(v, tuple):  # (total, count): a mean over the window's examples, not its steps
                if len(v) != 2:
                    raise ValueError(f"metric {k!r} is a tuple of {len(v)}; a weighted one is (total, count)")
                total, n = (self._scalar(k, x) for x in v)
                self.sums[k] = self.sums.get(k, 0.0) + total
                self.weights[k] = self.weights.get(k, 0.0) + n
                continue
            self.sums[k] = self.sums.get(k, 0.0) + self._scalar(k, v)
        self.count += 1

    @staticmethod
    def _scalar(k: str, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise ValueError(
                    f"metric {k!r} is a tensor of shape {tuple(v.shape)}; a step's metrics must be "
                    "scalars (return e.g. loss.mean() or loss.detach())"
                )
            # summed in float64 on the device (float32 on MPS, which has no float64), as
            # Python floats would be: no sync, and no float32 rounding of long windows
            wide = torch.float32 if v.device.type == "mps" else torch.float64
            v = v.detach().reshape(()).to(wide)
        else:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise TypeError(
                    f"metric {k!r} is a {type(v).__qualname__}; a step's metrics must be numbers or "
                    "scalar tensors"
                ) from None
        return v

    def means(self) -> dict[str, float]:
        """The mean of every metric as a Python float: one device sync per device and dtype."""
        values: dict[Any, Any] = dict(self.sums)
        values.update({("n", k): v for k, v in self.weights.items()})
        plain: dict[Any, float] = {}
        groups: dict[tuple, list[Any]] = {}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                groups.setdefault((v.device, v.dtype), []).append(k)
            else:
                plain[k] = float(v)
        for keys in groups.values():  # the sums come over in one transfer; the mean is taken in float64
            sums = torch.stack([values[k] for k in keys]).tolist()
            plain.update(zip(keys, (float(x) for x in sums), strict=True))
        out: dict[str, float] = {}
        for k in self.sums:
            if k in self.weights:  # a weighted metric with no example in the window is left out
                n = plain[("n", k)]
                if n > 0:
                    out[k] = plain[k] / n
            else:
                out[k] = plain[k] / self.count
        return out

    def reset(self) -> None:
        self.sums, self.weights, self.count = {}, {}, 0

    def state_dict(self) -> dict[str, Any]:
        # a tensor sum is stored as the Python number it holds (exact); adding the next step's
        # tensor to it gives the same bits as adding to the tensor would
        def plain(d):
            return {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in d.items()}

        return {"sums": plain(self.sums), "weights": plain(self.weights), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state.get("sums", {})), int(state.get("count", 0))
        self.weights = dict(state.get("weights", {}))


class TrainLoop:
    """Run ``step_fn`` for ``total_steps`` steps with logging, checkpoints and resume.

    Args:
        step_fn: ``step_fn(step) -> dict`` of scalar metrics for that step (numbers or
            scalar tensors; see the module docstring).
        total_steps: number of steps of the whole run.
        state: ``{name: object}`` saved in checkpoints (see the module docstring).
        run_dir: directory of the run; None runs without files.
        config: description of the run (made JSON by
            :func:`~physamp.training.config.to_jsonable`); a directory whose config
            differs is refused (pass ``overwrite=True`` to start over explicitly).
        checkpoint_every: steps between checkpoints (and one at the end).
        log_every: steps between metric records (metrics are averaged over them).
        callbacks: :class:`Callback` objects, or plain callables ``f(loop, step, metrics)``;
            ``metrics`` is the dict ``step_fn`` returned (its tensors not yet synced).
        metrics_file: ``"metrics.jsonl"`` (default) or ``"metrics.csv"``.
        progress: show a progress bar with ETA.
    """

    def __init__(
        self,
        step_fn: Callable[[int], dict],
        *,
        total_steps: int,
        state: dict[str, Any],
        run_dir: str | Path | None = None,
        config: dict | None = None,
        checkpoint_every: int | None = None,
        log_every: int = 1,
        callbacks: Iterable[Callback | Callable] = (),
        metrics_file: str = "metrics.jsonl",
        progress: bool = True,
        desc: str = "train",
        overwrite: bool = False,
        tensorboard: bool = False,
    ) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be a non-negative int, got {total_steps!r}")
        if log_every < 1:
            raise ValueError("log_every must be >= 1")
        for name, obj in state.items():
            if not isinstance(obj, torch.Generator) and not (
                hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")
            ):
                raise TypeError(
                    f"state[{name!r}] is a {type(obj).__qualname__}, which has no state_dict() / "
                    "load_state_dict(); state holds modules, optimizers, schedulers, samplers, "
                    "ResumableLoaders and torch.Generators"
                )
        self.step_fn, self.total_steps, self.state = step_fn, total_steps, state
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.config = dict(config or {})
        self.config_json: dict[str, Any] = to_jsonable(self.config)
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self.callbacks = [c if isinstance(c, Callback) else _FnCallback(c) for c in callbacks]
        self.progress, self.desc = progress, desc
        self.step = 0
        self.history: list[dict] = []
        self._sums = _MetricSums()
        self.logger: MetricsLogger | None = None
        self._lock: FileLock | None = None
        self._stop_requested = False
        self._saved_step: int | None = None
        if self.run_dir is not None:
            self._claim_run_dir(overwrite)
            self.logger = MetricsLogger(self.run_dir / metrics_file, tensorboard=tensorboard)

    # --- run directory --------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoint.pt"

    def _claim_run_dir(self, overwrite: bool) -> None:
        assert self.run_dir is not None  # called only for a loop with a run directory
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = run_dir_lock(self.run_dir).acquire()  # a RunDirectoryError if another process has it
        try:
            self._check_run_dir(overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the run directory's lock back (:meth:`run` does it when it returns)."""
        if self._lock is not None:
            self._lock.release()

    def _check_run_dir(self, overwrite: bool) -> None:
        assert self.run_dir is not None  # called only for a loop with a run directory
        cfg_path = self.run_dir / "config.json"
        if cfg_path.exists() and not overwrite:
            old = read_run_config(cfg_path)
            if canonical_config(old) != canonical_config(self.config_json):
                diff = config_diff(old, self.config_json)
                raise RunDirectoryError(
                    f"{self.run_dir} already holds a different run (config differs in {diff}). "
                    "Choose another --run-dir, or delete that directory to start over."
                )
        elif overwrite:
            for name in ("checkpoint.pt", "metrics.jsonl", "metrics.csv"):
                (self.run_dir / name).unlink(missing_ok=True)
        tmp = cfg_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.config_json, indent=2, sort_keys=True) + "\n")
        tmp.replace(cfg_path)

    # --- state ----------------------------------------------------------------------
    def _generators(self) -> dict[str, torch.Generator]:
        return {k: v for k, v in self.state.items() if isinstance(v, torch.Generator)}

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: :func:`~physamp.training.checkpoint.checkpoint_payload` of the state."""
        components = {k: v for k, v in self.state.items() if not isinstance(v, torch.Generator)}
        return checkpoint_payload(
            components,
            config=self.config_json,
            step=self.step,
            rng=rng_state(self._generators()),
            extra={"loop": {"metrics": self._sums.state_dict()}},
        )

    def load_state_dict(self, ckpt: dict[str, Any], *, where: str = "the checkpoint") -> None:
        """Restore the state of a checkpoint (from :func:`~physamp.training.load_checkpoint`).

        Anything missing or unusable is a :class:`~physamp.training.CheckpointError` that
        names ``where`` (the file) and the entry.
        """
        rng = ckpt.get("rng")
        if not isinstance(rng, dict) or "torch" not in rng:
            raise CheckpointError(
                f"{where} has no generator states ('rng'), so this run cannot resume from it exactly "
                "(it was not written by a TrainLoop, or was edited); start over with overwrite=True "
                "(--overwrite) or remove the file"
            )
        for name, obj in self.state.items():
            if isinstance(obj, torch.Generator):
                if f"gen:{name}" not in rng:
                    raise CheckpointError(f"{where} has no state for generator {name!r}")
                continue
            key = f"state:{name}"
            if key not in ckpt:
                raise CheckpointError(f"{where} has no state for {name!r}")
            try:
                obj.load_state_dict(ckpt[key])
            except Exception as err:  # a bad entry of any kind is one line naming the file
                msg = f"{where}: its {name!r} does not fit this run ({_first_line(err)})"
                raise CheckpointError(msg) from None
        try:
            set_rng_state(rng, self._generators())
        except Exception as err:
            msg = f"{where}: its generator states ('rng') are unusable ({_first_line(err)})"
            raise CheckpointError(msg) from None
        step = ckpt.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.total_steps:
            raise CheckpointError(f"{where} is at step {step!r}, but this run has {self.total_steps} steps")
        self.step = step
        try:
            self._sums.load_state_dict(ckpt.get("loop", {}).get("metrics", {}))
        except Exception as err:
            msg = f"{where}: its partial metric sums are unusable ({_first_line(err)})"
            raise CheckpointError(msg) from None

    def save(self) -> Path | None:
        if self.checkpoint_path is None:
            return None
        path = save_checkpoint(self.checkpoint_path, self.state_dict())
        self._saved_step = self.step
        for cb in self.callbacks:
            cb.on_checkpoint(self, path)
        return path

    def resume(self) -> bool:
        """Load the run directory's checkpoint if there is one; returns whether it did."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            if self.logger is not None:  # a run killed before its first checkpoint starts over
                self.logger.truncate_after(0)
            return False
        ckpt = load_checkpoint(path)
        saved = ckpt.get("config", {})
        if canonical_config(saved) != canonical_config(self.config_json):
            raise RunDirectoryError(
                f"{path} belongs to a different run "
                f"(its config differs in {config_diff(saved, self.config_json)})"
            )
        self.load_state_dict(ckpt, where=str(path))
        self._saved_step = self.step
        if self.logger is not None:
            self.logger.truncate_after(self.step)
        return True

    def _install_sigint(self):
        """In the main thread of a run with a directory: the first Ctrl-C asks the loop to stop after
        the current step (with a checkpoint), a second one stops at once. Returns the old handler."""
        if self.run_dir is None or threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None  # someone else handles Ctrl-C (or ignores it, as sweep workers do)

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            print(
                "\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again stops at once)",
                file=sys.stderr,
                flush=True,
            )

        return signal.signal(signal.SIGINT, handler)

    def _interrupted(self) -> TrainingInterrupted:
        return TrainingInterrupted(self.step, self.total_steps, self.checkpoint_path, self._saved_step)

    # --- the loop ---------------------------------------------------------------------
    def run(self, *, resume: bool = True, stop_after: int | None = None) -> list[dict]:
        """Train to ``total_steps`` (from the checkpoint if ``resume``); returns the logged records.

        ``stop_after`` stops after that many steps of this call (with a checkpoint),
        as an interruption would: tests and time-boxed jobs use it.
        """
        if self.run_dir is not None:
            assert self._lock is not None  # taken when the loop claimed its run directory
            if not self._lock.held:  # a second run() of this loop
                self._lock.acquire()
        try:
            return self._run(resume, stop_after)
        finally:
            self.close()

    def _run(self, resume: bool, stop_after: int | None) -> list[dict]:
        if resume:
            self.resume()
        for cb in self.callbacks:
            cb.on_start(self)
        bar = progress_bar(self.total_steps, initial=self.step, desc=self.desc, enabled=self.progress)
        done_here = 0
        t0 = time.perf_counter()
        self._stop_requested = False
        previous = self._install_sigint()
        try:
            while self.step < self.total_steps:
                metrics = self.step_fn(self.step) or {}
                self.step += 1
                done_here += 1
                self._sums.add(metrics)
                for cb in self.callbacks:
                    cb.on_step_end(self, self.step, metrics)
                if self.step % self.log_every == 0 or self.step == self.total_steps:
                    record: dict[str, Any] = self._sums.means()
                    record["time_s"] = time.perf_counter() - t0
                    if self.logger is not None:
                        record = self.logger.log(self.step, **record)
                    else:
                        record = {"step": self.step, **record}
                    self.history.append(record)
                    bar.set_postfix(
                        {
                            k: f"{v:.4g}"
                            for k, v in record.items()
                            if k not in ("step", "time_s")
                            and "/" not in k  # per-group metrics (e.g. per style) stay in the file
                            and isinstance(v, float)
                            and math.isfinite(v)
                        },
                        refresh=False,
                    )
                    self._sums.reset()
                bar.update(1)
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save()
                if self._stop_requested:
                    if self._saved_step != self.step:
                        self.save()
                    raise self._interrupted()
                if stop_after is not None and done_here >= stop_after:
                    break
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            raise self._interrupted() from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            bar.close()
        if self.step == self.total_steps or stop_after is not None:
            self.save()
        if self.step == self.total_steps:
            for cb in self.callbacks:
                cb.on_end(self)
        return self.history


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


class _FnCallback(Callback):
    def __init__(self, fn: Callable):
        self.fn = fn

    def on_step_end(self, loop: TrainLoop, step: int, metrics: dict) -> None:
        self.fn(loop, step, metrics)
