"""Train an RBM, then estimate its test NLL by AIS: the one function behind ``physamp train-rbm``.

The CLI, the thesis experiments and the notebooks all call
:func:`train_and_evaluate`, so the same run gives the same number everywhere::

    from physamp.data import default_dataset
    from physamp.models.rbm import RBMTrainConfig, train_and_evaluate

    data = default_dataset()
    result = train_and_evaluate(RBMTrainConfig(n_hidden=100, epochs=2), data, ais_runs=20, ais_betas=2000)
    result.test_nll.nll, result.log_z          # nats per example; the AISResult
    result.to_dict()                           # what result.json holds

With ``run_dir`` the training is resumable (``TrainLoop``: checkpoint, metrics,
a refused directory when it holds another run, a lock against a second process)
and ``result.json`` is written there, with the run's config and AIS settings.
Rerunning a finished run with the same config and AIS settings reads that
result back (``result.reused``) instead of running AIS again; other AIS settings
re-evaluate the trained model.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physamp.models.rbm.ais import AISResult, NLLResult, estimate_log_z, schedule, test_nll
from physamp.models.rbm.model import RBM
from physamp.models.rbm.pcd import RBMTrainConfig, RBMTrainer
from physamp.seeding import check_seed
from physamp.training.config import canonical_config
from physamp.training.loop import run_dir_lock

__all__ = ["RBMRunResult", "train_and_evaluate", "evaluate_nll", "ais_settings"]


@dataclass
class RBMRunResult:
    """A trained RBM and its test NLL.

    Attributes:
        rbm: the trained model.
        test_nll: mean test NLL in nats with the AIS ±3σ bounds.
        log_z: the AIS estimate of log Z.
        history: the logged training records (empty when the run was already finished).
        train_seconds, eval_seconds: wall times of this call's training and evaluation.
        dataset, protocol: the data's name and its protocol sentence.
        run_dir: where the run's files are (None: trained in memory).
        config: the run's JSON config (what ``config.json`` holds).
        ais: the AIS settings of the estimate (runs, intermediate distributions, seed, data limits).
        reused: True when the result was read from ``result.json`` of a finished run with the
            same config and AIS settings (no AIS was run; ``log_z.log_weights`` is then empty).
    """

    rbm: RBM
    test_nll: NLLResult
    log_z: AISResult
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    dataset: str = ""
    protocol: str = ""
    run_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    ais: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what ``result.json`` holds)."""
        return {
            "test_nll": self.test_nll.nll,
            "test_nll_lower": self.test_nll.nll_lower,
            "test_nll_upper": self.test_nll.nll_upper,
            "log_z": self.log_z.log_z,
            "log_z_lower": self.log_z.log_z_lower,
            "log_z_upper": self.log_z.log_z_upper,
            "log_z_base": self.log_z.log_z_base,
            "ess": self.log_z.ess,
            "ais_runs": self.log_z.num_runs,
            "ais_betas": self.log_z.num_betas,
            "num_test": self.test_nll.num_examples,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "ais": self.ais,
            "config": self.config,
        }


def ais_settings(
    ais_runs: int = 100,
    ais_betas: int | None = None,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
) -> dict[str, Any]:
    """The AIS settings of an evaluation, checked (before any work) and in the form ``result.json``
    records: ``{"runs", "betas" (intermediate distributions; 14,500 is S&M's schedule), "seed",
    "max_train", "max_test"}``."""
    if isinstance(ais_runs, bool) or not isinstance(ais_runs, int) or ais_runs < 1:
        raise ValueError(f"ais_runs must be a positive int, got {ais_runs!r}")
    schedule(ais_betas)  # the one check of the schedule's size
    check_seed(seed, "ais_seed")
    for name, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be None or a positive int, got {value!r}")
    return {
        "runs": ais_runs,
        "betas": 14500 if ais_betas is None else ais_betas,
        "seed": seed,
        "max_train": max_train,
        "max_test": max_test,
    }


def _stored_result(run_dir: Path, rbm: RBM, config: dict, ais: dict, data) -> RBMRunResult | None:
    """The result of ``run_dir/result.json`` if it was written for this config and these AIS settings."""
    path = run_dir / "result.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # none, or unreadable: evaluate again (and rewrite it)
    if not isinstance(stored, dict) or canonical_config(stored.get("ais")) != canonical_config(ais):
        return None
    if canonical_config(stored.get("config")) != canonical_config(config):
        return None
    try:
        log_z = AISResult(
            log_z=float(stored["log_z"]),
            log_z_lower=float(stored["log_z_lower"]),
            log_z_upper=float(stored["log_z_upper"]),
            log_weights=torch.empty(0, dtype=torch.float64),
            num_betas=int(stored["ais_betas"]),
            log_z_base=float(stored["log_z_base"]),
            num_runs=int(stored["ais_runs"]),
            ess=float(stored["ess"]),
            info={"from": str(path)},
        )
        nll = NLLResult(
            float(stored["test_nll"]),
            float(stored["test_nll_lower"]),
            float(stored["test_nll_upper"]),
            int(stored["num_test"]),
        )
        seconds = float(stored.get("train_seconds", 0.0)), float(stored.get("eval_seconds", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    return RBMRunResult(
        rbm=rbm,
        test_nll=nll,
        log_z=log_z,
        train_seconds=seconds[0],
        eval_seconds=seconds[1],
        dataset=getattr(data, "name", ""),
        protocol=getattr(data, "protocol", ""),
        run_dir=run_dir,
        config=config,
        ais=ais,
        reused=True,
    )


def evaluate_nll(
    rbm: RBM,
    data,
    *,
    ais_runs: int = 100,
    ais_betas: int | None = None,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
    progress: bool = False,
) -> tuple[NLLResult, AISResult]:
    """Test NLL of ``rbm`` on ``data`` (a :class:`~physamp.data.BinaryDataset`) by AIS.

    The base-rate model comes from the training data the model saw (``data.train``, or
    its first ``max_train`` rows); ``ais_betas`` is the number of intermediate
    distributions (None or 14,500: S&M's schedule). Returns ``(nll, log_z)``.
    """
    train = data.train if max_train is None else data.train[:max_train]
    log_z = estimate_log_z(
        rbm, data=train, num_runs=ais_runs, betas=schedule(ais_betas), seed=seed, progress=progress
    )
    test = data.test if max_test is None else data.test[:max_test]
    return test_nll(rbm, test.to(rbm.W.device), log_z), log_z


def train_and_evaluate(
    cfg: RBMTrainConfig,
    data,
    *,
    run_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    ais_runs: int = 100,
    ais_betas: int | None = None,
    ais_seed: int | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    log_every: int | None = None,
    callbacks=(),
    rbm: RBM | None = None,
    on_trainer=None,
) -> RBMRunResult:
    """Train an RBM by ``cfg`` on ``data``, then estimate its test NLL by AIS.

    Args:
        cfg: the training hyper-parameters.
        data: a :class:`~physamp.data.BinaryDataset` (``train`` grey levels, ``test`` binary).
        run_dir: resumable run directory (None: train in memory, write nothing).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        ais_runs, ais_betas: AIS runs and number of intermediate distributions
            (None or 14,500: S&M's schedule).
        ais_seed: seed of the AIS draws (default ``cfg.seed``).
        max_train, max_test: use only the first examples (quick presets and tests);
            they are part of the run's data identity.
        progress: progress bars for training and AIS.
        overwrite: start over in a run directory that holds another run.
        log_every: steps between metric records (default: one per epoch).
        callbacks: :class:`~physamp.training.Callback` objects or ``f(loop, step, metrics)``
            callables, run by the training loop (e.g. an NLL estimate after every epoch).
        rbm: start from this model instead of a fresh one.
        on_trainer: called with the :class:`~physamp.models.rbm.RBMTrainer` once it is built,
            before training (the CLI prints the QPU-time estimate of a dwave run there).

    Every setting is checked before any work. A finished run in ``run_dir`` whose
    ``result.json`` has the same config and AIS settings is not evaluated again: its
    stored result comes back with ``reused=True``.
    """
    ais = ais_settings(ais_runs, ais_betas, cfg.seed if ais_seed is None else ais_seed, max_train, max_test)
    train = data.train if max_train is None else data.train[:max_train]
    identity = data.identity() if hasattr(data, "identity") else {"name": getattr(data, "name", "?")}
    identity = {**identity, "num_train": int(train.shape[0])}
    if max_test is not None:
        identity["max_test"] = int(max_test)
    t0 = time.perf_counter()
    trainer = RBMTrainer(cfg, train, device=device, rbm=rbm, data=identity)
    if on_trainer is not None:
        on_trainer(trainer)
    run_dir = None if run_dir is None else Path(run_dir)
    # the run directory stays locked through the evaluation and result.json, not only the training
    with contextlib.nullcontext() if run_dir is None else run_dir_lock(run_dir):
        history = trainer.fit(
            run_dir=run_dir, progress=progress, overwrite=overwrite, log_every=log_every, callbacks=callbacks
        )
        train_s = time.perf_counter() - t0
        loop = trainer.loop
        assert loop is not None  # fit() made it
        if run_dir is not None and not overwrite:
            stored = _stored_result(run_dir, trainer.rbm, loop.config_json, ais, data)
            if stored is not None:
                return stored
        t1 = time.perf_counter()
        nll, log_z = evaluate_nll(
            trainer.rbm,
            data,
            ais_runs=ais["runs"],
            ais_betas=ais["betas"],
            seed=ais["seed"],
            max_train=ais["max_train"],
            max_test=ais["max_test"],
            progress=progress,
        )
        result = RBMRunResult(
            rbm=trainer.rbm,
            test_nll=nll,
            log_z=log_z,
            history=history,
            train_seconds=train_s,
            eval_seconds=time.perf_counter() - t1,
            dataset=getattr(data, "name", ""),
            protocol=getattr(data, "protocol", ""),
            run_dir=run_dir,
            config=loop.config_json,
            ais=ais,
        )
        if run_dir is not None:
            path = run_dir / "result.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(result.to_dict(), indent=2))
            tmp.replace(path)
        return result
