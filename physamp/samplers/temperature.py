"""Closed-loop temperature control: find the prefactor at which a device samples the RBM at a target β.

A device that samples ``p ∝ exp(-β_eff · E_programmed)`` and is programmed with
``prefactor · (h, J)`` samples the RBM at ``β_model = β_eff · prefactor``
(:mod:`physamp.samplers.dwave`). β_eff is unknown: it depends on the device, the
anneal and the problem, and on real hardware on the programmed scale itself
(Benedetti et al., Phys. Rev. A 94, 022308, 2016, estimate it during training and
rescale). :func:`calibrate` closes the loop::

    from physamp.samplers.temperature import calibrate

    result = calibrate(backend, rbm, target_beta=1.0, num_samples=1000)
    print(result)                 # the fit report: every iteration, the final prefactor
    backend.prefactor             # set to result.prefactor (apply=True)

Each iteration samples the RBM at the current prefactor through the backend's own
``sample`` (so every check a call runs, QPU-time budgets included, applies),
estimates β_eff with its standard error over reads
(:func:`physamp.samplers.dimod_io.fit_beta`), and stops when
``|β_model / target_beta - 1| <= rtol``. Otherwise the next prefactor solves
``log β_model(p) = log target_beta`` by a secant step in ``log p`` (the first step,
with one point, is the fixed point ``p = target_beta / β_eff``, exact for a device
whose β_eff does not depend on the scale), its slope kept within [0.2, 5] so that
estimation noise cannot throw it far, and the prefactor clamped to
``(0, max_prefactor]``, the largest the solver's ``h_range`` / ``j_range`` allow
(:meth:`DWaveBackend.dry_run`). A target that needs more is reported
(``converged=False``, ``prefactor = max_prefactor``, ``reason``) after one check at the
maximum. Reads that are all local minima (an infinite β_eff estimate: the device is
too cold for the programmed scale) divide the prefactor by 8.

The estimate assumes a classical Boltzmann distribution. A QPU's reads follow, in the
freeze-out model, a transverse-field one, on which the estimator reads the device as hotter
than it is (the ``beta-estimation`` experiment's Γ axis; β̂/β ≈ 0.6 at Γ = 1, β = 1 on small
models): calibration then matches the estimator's β_model, not the transverse-field model's
β, and a solver that reports its Γ (the simulated QPU with ``gamma > 0``) adds that to the
result's ``notes``.

The reads calibration spends are real QPU time on hardware: the result counts them
(``num_reads``), keeps each call's ``info`` (``qpu_timing`` and the rest) in
``infos`` and sums the access time in ``qpu_access_time_us``.

Which backends calibrate: those with a programmed scale, i.e. a per-call ``prefactor``
option, a ``prefactor`` attribute, ``dry_run(rbm, n).max_prefactor`` and
``info["beta_eff"]`` / ``info["beta_eff_std"]``: the ``dwave`` backend
(:class:`~physamp.samplers.dwave.DWaveBackend`, around a QPU or any structured dimod
sampler). The others (``exact``, ``gibbs``, ``neal``, ``simulated``, ``dimod``) sample
at the β you give them and have nothing to calibrate.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from physamp.samplers.base import Sampler, check_beta, check_positive

__all__ = ["calibrate", "CalibrationResult", "CalibrationStep", "CALIBRATING_BACKENDS"]

#: the registered backends :func:`calibrate` accepts (any backend with the same interface works too)
CALIBRATING_BACKENDS = ("dwave",)

SLOPE_RANGE = (0.2, 5.0)  # d log β_model / d log prefactor the secant step may use
COLD_FACTOR = 8.0  # prefactor divisor when every read is a local minimum


@dataclass
class CalibrationStep:
    """One calibration call: the prefactor sampled at and what the samples said."""

    prefactor: float
    beta_eff: float | None
    beta_eff_std: float | None
    beta_model: float | None
    num_samples: int  # reads this call spent
    note: str | None = None  # why there is no estimate (an infinite one: every read a local minimum)


@dataclass
class CalibrationResult:
    """What :func:`calibrate` found; ``str(result)`` is the fit report.

    - ``prefactor``: the calibrated prefactor (the converged one; the maximum when the target
      is beyond the range; else the point closest to the target). ``applied``: whether it was
      set on the sampler.
    - ``beta_eff``, ``beta_eff_std``: the device's β and its standard error over reads,
      measured at ``prefactor``; ``beta_model = beta_eff * prefactor`` and ``beta_model_std``.
    - ``converged``: ``|beta_model / target_beta - 1| <= rtol``; ``reason`` says why not.
    - ``history``: one :class:`CalibrationStep` per call; ``iterations = len(history)``.
    - ``max_prefactor``: the largest prefactor the solver's ranges allow (inf without ranges).
    - ``num_reads``: reads spent (QPU time on hardware), ``infos``: each call's ``info``
      (``qpu_timing``, ``problem_ids``, ...), ``qpu_access_time_us``: their summed
      ``qpu_access_time`` (0 where the solver reports none).
    - ``notes``: remarks that do not stop the calibration (e.g. a noisy estimate).
    """

    prefactor: float
    beta_eff: float | None
    beta_eff_std: float | None
    beta_model: float | None
    beta_model_std: float | None
    target_beta: float
    rtol: float
    converged: bool
    history: list[CalibrationStep]
    max_prefactor: float
    reason: str | None = None
    num_reads: int = 0
    infos: list[dict] = field(default_factory=list, repr=False)
    applied: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return len(self.history)

    @property
    def qpu_access_time_us(self) -> float:
        """Summed ``qpu_access_time`` (microseconds, as Ocean reports it) of every call."""
        return float(
            sum(float((i.get("qpu_timing_total") or {}).get("qpu_access_time", 0.0)) for i in self.infos)
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the raw ``infos`` (JSON-able: for logs, checkpoints, ledgers)."""
        return {
            "prefactor": self.prefactor,
            "beta_eff": self.beta_eff,
            "beta_eff_std": self.beta_eff_std,
            "beta_model": self.beta_model,
            "beta_model_std": self.beta_model_std,
            "target_beta": self.target_beta,
            "rtol": self.rtol,
            "converged": self.converged,
            "iterations": self.iterations,
            "history": [vars(s).copy() for s in self.history],
            "max_prefactor": self.max_prefactor,
            "reason": self.reason,
            "num_reads": self.num_reads,
            "qpu_access_time_us": self.qpu_access_time_us,
            "applied": self.applied,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        def num(x, fmt=".4g"):
            return "-" if x is None else format(x, fmt)

        state = "converged" if self.converged else "NOT converged"
        lines = [
            f"temperature calibration: {state} in {self.iterations} iteration(s), target beta_model = "
            f"{self.target_beta:.4g} within rtol {self.rtol:g}",
            f"  prefactor   {self.prefactor:.6g}  (max_prefactor {num(self.max_prefactor, '.6g')}; "
            f"{'set on the sampler' if self.applied else 'not applied'})",
            f"  beta_eff    {num(self.beta_eff)} ± {num(self.beta_eff_std, '.2g')}"
            "  (the device's, per programmed unit)",
            f"  beta_model  {num(self.beta_model)} ± {num(self.beta_model_std, '.2g')}"
            "  (= beta_eff * prefactor)",
            f"  reads       {self.num_reads}  (QPU access time {self.qpu_access_time_us:.0f} us)",
            "  iter  prefactor     beta_eff     std        beta_model   beta_model/target",
        ]
        for k, s in enumerate(self.history):
            ratio = None if s.beta_model is None else s.beta_model / self.target_beta
            row = (
                f"  {k:>4}  {s.prefactor:<12.6g}  {num(s.beta_eff):<11}  {num(s.beta_eff_std, '.2g'):<9}  "
                f"{num(s.beta_model):<11}  {num(ratio)}"
            )
            lines.append(row + (f"  ({s.note})" if s.note else ""))
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_int(value, name: str, minimum: int, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, e.g. {example}; got {value!r}")
    return int(value)


def _check_calibratable(sampler) -> None:
    name = getattr(sampler, "name", type(sampler).__name__)
    backends = ", ".join(repr(b) for b in CALIBRATING_BACKENDS)
    if not isinstance(sampler, Sampler):
        raise TypeError(
            f"calibrate needs a physamp sampler backend, got {type(sampler).__name__}; wrap a D-Wave "
            f"solver (or any structured dimod sampler) as physamp.samplers.dwave.DWaveBackend(sampler)"
        )
    params = getattr(sampler, "parameters", {}) or {}
    if not (
        "prefactor" in params
        and hasattr(sampler, "prefactor")
        and callable(getattr(sampler, "dry_run", None))
    ):
        raise TypeError(
            f"calibrate adjusts a programmed scale (prefactor), and the {name!r} backend "
            f"({type(sampler).__name__}) has none: it samples at the beta it is given (set beta "
            f"instead). Backends that calibrate: {backends} (DWaveBackend, around a QPU or any "
            "structured dimod sampler)"
        )
    if "estimate_temperature" not in params:
        raise TypeError(
            f"calibrate needs the {name!r} backend to estimate beta_eff from its samples "
            "(an 'estimate_temperature' option and info['beta_eff']); "
            f"backends that calibrate: {backends}"
        )


def _max_prefactor(sampler, rbm, num_samples: int, start: float, options: dict) -> float:
    """The largest prefactor the sampler accepts for ``rbm`` (inf without ranges), from a dry run.

    The dry run plans at ``start / 1024`` (an exact power-of-two scaling, inside the range for
    any start that is not absurdly large): it must not fail merely because ``start`` itself is
    out of range. Nothing is submitted."""
    report = sampler.dry_run(rbm, num_samples, prefactor=start / 1024.0, **options)
    m = getattr(report, "max_prefactor", None)
    return math.inf if m is None else float(m)


def calibrate(
    sampler,
    rbm,
    target_beta: float = 1.0,
    *,
    num_samples: int = 1000,
    max_iter: int = 8,
    rtol: float = 0.05,
    apply: bool = True,
    prefactor: float | None = None,
    sample_options: dict[str, Any] | None = None,
) -> CalibrationResult:
    """Adjust ``sampler``'s prefactor until the estimated ``β_eff · prefactor`` matches ``target_beta``.

    See the module docstring for the iteration.

    Args:
        sampler: a backend with a programmed scale (``dwave``; others are refused with the list).
        rbm: the model to calibrate on (β_eff can depend on the problem: calibrate on the one
            you will sample).
        target_beta: the β at which the RBM should be sampled (1: the model itself).
        num_samples: reads per iteration (the estimate's relative error falls as
            ``1/sqrt(num_samples)``; it must be well below ``rtol``).
        max_iter: the most calls (each of ``num_samples`` reads).
        rtol: the relative tolerance on ``β_model / target_beta``.
        apply: set ``sampler.prefactor`` (and ``sampler.beta_eff``, the device's β measured
            there) to the result, unless no finite estimate was found.
        prefactor: where to start (default: the sampler's prefactor, else ``1 / beta_eff`` of
            a sampler that believes one, else 1), clamped to the range.
        sample_options: per-call options passed to every ``sampler.sample`` call (solver
            parameters such as ``annealing_time``; not ``prefactor``).

    Returns:
        :class:`CalibrationResult` (``str()`` of it is the fit report).

    Raises:
        TypeError: the sampler has no prefactor to calibrate.
        ValueError: a bad argument (before any read), or what the sampler's dry run raises
            for ``rbm`` (a problem that does not fit, a QPU budget that is spent, ...).
    """
    _check_calibratable(sampler)
    target = check_beta(target_beta, "target_beta")
    num_samples = _check_int(num_samples, "num_samples", 2, 1000)
    max_iter = _check_int(max_iter, "max_iter", 1, 8)
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), e.g. 0.05; got {rtol!r}")
    rtol = float(rtol)
    if not isinstance(apply, bool):
        raise ValueError(f"apply must be True or False, got {apply!r}")
    options = dict(sample_options or {})
    taken = sorted({"prefactor", "estimate_temperature"} & set(options))
    if taken:
        raise ValueError(f"sample_options may not set {taken}: calibrate sets them itself")
    if prefactor is None:
        prefactor = sampler.prefactor
        if prefactor is None:
            believed = getattr(sampler, "beta_eff", None)
            prefactor = 1.0 / believed if believed else 1.0
    start = check_positive(prefactor, "prefactor", "the starting prefactor")
    max_pf = _max_prefactor(sampler, rbm, num_samples, start, options)
    if not max_pf > 0:
        raise ValueError(
            f"the solver's ranges allow no positive prefactor for this RBM (max_prefactor {max_pf!r}): "
            "check the RBM's parameters"
        )

    history: list[CalibrationStep] = []
    infos: list[dict] = []
    notes: list[str] = []
    points: list[tuple[float, float]] = []  # (log prefactor, log beta_model / target) of finite estimates
    p = min(start, max_pf)
    reason = None
    converged = False
    for _ in range(max_iter):
        s = sampler.sample(rbm, num_samples, prefactor=p, estimate_temperature=True, **options)
        info = s.info
        infos.append(info)
        spent = int(sum(info.get("reads_per_call") or [num_samples]))  # what the solver read
        beta_eff, std = info.get("beta_eff"), info.get("beta_eff_std")
        if info.get("beta_eff_source") != "pseudolikelihood":
            beta_eff = std = None  # an assumed value is no measurement
        if beta_eff is None:
            note = info.get("beta_eff_error", "no beta_eff estimate")
            history.append(CalibrationStep(p, None, None, None, spent, note))
            if info.get("beta_eff_infinite"):  # too cold at this scale: excitations need a smaller one
                p = p / COLD_FACTOR
                continue
            reason = f"stopped: {note}"
            break
        beta_model = beta_eff * p
        history.append(CalibrationStep(p, beta_eff, std, beta_model, spent))
        if beta_model <= 0:
            if p >= max_pf:
                reason = (
                    f"stopped: at the largest prefactor {max_pf:.6g} the estimated beta_eff is "
                    f"{beta_eff:.3g} <= 0 (the samples favour low energies no more than random states)"
                )
                break
            p = min(p * COLD_FACTOR, max_pf)
            continue
        f = math.log(beta_model / target)
        if abs(beta_model / target - 1.0) <= rtol:
            converged = True
            break
        x = math.log(p)
        slope = 1.0
        if points:
            x0, f0 = points[-1]
            if abs(x - x0) > 1e-12:
                secant = (f - f0) / (x - x0)
                slope = min(max(secant, SLOPE_RANGE[0]), SLOPE_RANGE[1]) if secant > 0 else 1.0
        points.append((x, f))
        if f < 0 and p >= max_pf:
            reason = (
                f"the target beta_model = {target:.4g} needs a prefactor above the largest the solver's "
                f"h_range / j_range allow for this RBM (max_prefactor {max_pf:.6g}): there the device "
                f"gives beta_model = {beta_model:.4g} ± {std or 0:.2g}. Lower target_beta, use a warmer "
                "device setting, or keep the RBM's parameters smaller (the range binds on the largest)"
            )
            break
        p = min(math.exp(x - f / slope), max_pf)
    else:
        reason = (
            f"did not reach |beta_model / target - 1| <= {rtol:g} in max_iter = {max_iter} iterations; "
            "raise max_iter, or num_samples if the estimates are noisy"
        )
        if all(step.beta_eff is None for step in history):
            reason = (
                "every read was a local minimum at every prefactor tried (down to "
                f"{history[-1].prefactor:.3g}): "
                "the sampler behaves as an optimiser (offline: give the stand-in a fixed-beta Boltzmann "
                "substitute), or the device is far colder than the problem's energy scale"
            )

    measured = [
        s for s in history if s.beta_eff is not None and s.beta_model is not None and s.beta_model > 0
    ]
    if converged:
        best = history[-1]
    elif measured and reason is not None and "needs a prefactor above" in reason:
        best = history[-1]
    elif measured:
        best = min(measured, key=lambda s: abs(math.log(s.beta_model / target)))
    else:
        best = None
    if best is not None and best.beta_eff_std is not None and best.beta_eff > 0:
        rel = best.beta_eff_std / best.beta_eff
        if rel > rtol / 2:
            notes.append(
                f"the estimate's relative standard error ({rel:.3f}) is not small against rtol ({rtol:g}): "
                "the match is uncertain at this number of reads; raise num_samples"
            )
    quantum = next((i["beta_eff_note"] for i in infos if i.get("beta_eff_note")), None)
    if quantum is not None:  # a solver that says its reads are transverse-field ones
        notes.append(f"beta_model is matched as the classical estimator reads it, and {quantum}")
    applied = False
    if best is not None:
        if apply:
            sampler.prefactor = best.prefactor
            if best.beta_eff > 0 and hasattr(sampler, "beta_eff"):
                sampler.beta_eff = best.beta_eff
            applied = True
        result_pf, beta_eff, std = best.prefactor, best.beta_eff, best.beta_eff_std
    else:
        result_pf, beta_eff, std = history[-1].prefactor, None, None
    return CalibrationResult(
        prefactor=result_pf,
        beta_eff=beta_eff,
        beta_eff_std=std,
        beta_model=None if beta_eff is None else beta_eff * result_pf,
        beta_model_std=None if std is None else std * result_pf,
        target_beta=target,
        rtol=rtol,
        converged=converged,
        history=history,
        max_prefactor=max_pf,
        reason=reason,
        num_reads=sum(step.num_samples for step in history),
        infos=infos,
        applied=applied,
        notes=notes,
    )
