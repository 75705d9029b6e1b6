"""QPU access time, spent deliberately: estimate a call before it is sent, a budget, a ledger.

QPU access time is what Leap bills: the time the QPU is held for a problem
(programming, then per read anneal + readout + delay). It is known *before* a
call from the solver's ``problem_timing_data`` property and the number of
active qubits and reads (the timing model of D-Wave's "Estimating access time"
documentation, the one ``dwave.cloud``'s ``Solver.estimate_qpu_access_time``
implements), and reported *after* it as ``sampleset.info["timing"]["qpu_access_time"]``
(µs).

Estimate
--------
:func:`access_time_estimator` finds the estimate a sampler offers, in this order:
the cloud solver's own ``sampler.solver.estimate_qpu_access_time`` (a real
``DWaveSampler``), a sampler's ``estimate_qpu_access_time`` method (physamp's
``SimulatedQPU``), else :func:`access_time_model` on ``properties["problem_timing_data"]``.
A sampler with none of them (``MockDWaveSampler``: ``problem_timing_data`` is None)
has an *unknown* cost; a budget then refuses to run (:class:`UnknownQPUCostError`)
unless unknown-cost calls are allowed explicitly (``allow_unknown_cost=True``).

Budget and ledger
-----------------
``DWaveBackend(qpu_budget=SECONDS, ledger=PATH)``: before any call of a ``sample`` the
estimated access time of *all* its solver calls is compared with what is left
(``budget - ledger.spent_s``); :class:`QPUBudgetExceeded` is raised before anything
is sent. The :class:`QPULedger` is an append-only JSON-lines file, one object per
line, each written in one ``write`` and ``fsync``'d before the next step goes on.

- ``{"v": 1, "event": "submit", "call": 7, "time": "...Z", "label": "train", "solver": "...",
  "num_qubits": 1568, "num_reads": 100, "estimate_us": 42657.1}`` is
  written *before* the call is sent (write-ahead): if the process dies during the
  call, the call still counts, at its estimate.
- ``{"v": 1, "event": "done", "call": 7, "time": "...Z", "problem_id": "...",
  "qpu_access_time_us": 42640.0, "source": "reported"}`` is
  written as soon as the call returns. ``source`` is ``"reported"`` (the solver's
  timing), ``"estimate"`` (no timing came back: the estimate counts) or ``"unknown"``
  (neither: counted as 0, and listed in :meth:`QPULedger.summary` as ``uncounted_calls``).
- ``{"v": 1, "event": "failed", "call": 7, "time": "...Z", "error": "DWaveConnectionError"}``:
  the call raised; whether the QPU ran it is unknown, so its estimate counts.

What a call counts (:meth:`QPULedger.calls`): the reported time when there is one,
else its estimate, else 0. The ledger is read whole when it is opened; a run resumed
from an older checkpoint counts every call since, so QPU time spent after the last
checkpoint is never forgotten. A *last* line that is not valid JSON (a write torn by
a crash or a full disk) is dropped with a :class:`LedgerWarning` (and cut off the file
before the next record is appended); an invalid line anywhere else means the file was
edited, and is a :class:`LedgerError` naming the file and the line.

:func:`cost_report` / :func:`format_cost_report` summarise a ledger (total, per call,
per label, the calibration share) for the end of a run.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "TIMING_PARAMETERS",
    "LEDGER_VERSION",
    "QPUBudgetError",
    "QPUBudgetExceeded",
    "UnknownQPUCostError",
    "LedgerError",
    "LedgerWarning",
    "QPULedger",
    "access_time_model",
    "access_time_breakdown",
    "access_time_estimator",
    "check_budget",
    "cost_report",
    "format_cost_report",
]

#: the solver parameters the timing model reads (all optional); every other parameter is ignored
TIMING_PARAMETERS = (
    "annealing_time",
    "anneal_schedule",
    "initial_state",
    "reinitialize_state",
    "programming_thermalization",
    "readout_thermalization",
    "reduce_intersample_correlation",
)

LEDGER_VERSION = 1
_EVENTS = ("submit", "done", "failed")

#: how to raise a budget, said in every refusal
RAISE_HINT = (
    "raise the budget (physamp train-rbm --qpu-budget SECONDS, or DWaveBackend(qpu_budget=SECONDS)) to go on"
)


class QPUBudgetError(RuntimeError):
    """A QPU budget refused a call; nothing was sent."""


class QPUBudgetExceeded(QPUBudgetError):
    """The estimated access time of a ``sample`` exceeds what is left of the budget.

    Attributes (seconds): ``estimate_s`` (of the refused sample), ``spent_s`` (the ledger's
    total), ``budget_s``, ``left_s``; ``num_calls`` / ``num_reads`` of the refused sample.
    """

    def __init__(
        self, message: str, *, estimate_s: float, spent_s: float, budget_s: float, num_calls: int,
        num_reads: int,
    ):  # fmt: skip
        super().__init__(message)
        self.estimate_s, self.spent_s, self.budget_s = estimate_s, spent_s, budget_s
        self.left_s = max(budget_s - spent_s, 0.0)
        self.num_calls, self.num_reads = num_calls, num_reads


class UnknownQPUCostError(QPUBudgetError):
    """A budget is set but the sampler gives no way to estimate a call's access time."""


class LedgerError(ValueError):
    """A ledger file that cannot be used (not JSON lines, edited, from a newer physamp)."""


class LedgerWarning(UserWarning):
    """A ledger's torn last line was dropped."""


# --- the estimate ---------------------------------------------------------------------
def _field(data: Mapping[str, Any], name: str):
    try:
        return data[name]
    except KeyError:
        raise ValueError(f"problem_timing_data has no field {name!r}, which the timing model needs") from None


def _given(value) -> bool:
    """A parameter the caller set: not None and, for a sequence or mapping, not empty."""
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return True


def access_time_breakdown(
    timing_data: Mapping[str, Any],
    num_qubits: int,
    num_reads: int = 1,
    *,
    annealing_time: float | None = None,
    anneal_schedule: Any = None,
    initial_state: Any = None,
    reinitialize_state: bool = False,
    programming_thermalization: float | None = None,
    readout_thermalization: float | None = None,
    reduce_intersample_correlation: bool = False,
) -> dict[str, float]:
    """The QPU timing of one call (µs, in the QPU's ``info["timing"]`` key names), from a
    solver's ``problem_timing_data``: physamp's one copy of the timing model (versions 1.0.x).

    With ``n = num_qubits`` and ``R = num_reads``::

        qpu_anneal_time_per_sample  = annealing_time, else the last time of anneal_schedule,
                                      else default_annealing_time
        qpu_readout_time_per_sample = readout model at n: readout_time_model_parameters are
                                      qubit counts then times, interpolated linearly
                                      ("pwl_linear") or in log-log space ("pwl_log_log"),
                                      flat outside the points (n < 1 counts as 1)
        qpu_delay_time_per_sample   = qpu_delay_time_per_sample (+ a reverse-anneal delta)
                                      + max(readout_thermalization, decorrelation)
        qpu_sampling_time           = R * (anneal + readout + delay)
        qpu_programming_time        = typical_programming_time (+ a reverse-anneal delta)
                                      + programming_thermalization
        qpu_access_time             = qpu_sampling_time + qpu_programming_time

    ``decorrelation`` (only with ``reduce_intersample_correlation``) grows linearly with the
    anneal time over ``decorrelation_time_range`` up to ``decorrelation_max_nominal_anneal_time``.
    A reverse anneal is an ``anneal_schedule`` starting at s = 1; its deltas are the
    ``reverse_annealing_{with,without}_reinit_*`` fields (``reinitialize_state``).

    A thermalization that is ``None`` takes its ``default_*`` field; an explicit 0 is 0 µs,
    as the QPU runs it. (The cloud client's ``Solver.estimate_qpu_access_time`` reads a 0 as
    "use the default", so for ``programming_thermalization=0`` it is higher by
    ``default_programming_thermalization``; everywhere else the two agree to rounding.)
    Only the parameters above are read; the caller validates their ranges.

    Raises:
        ValueError: a field is missing, the model version or readout model is not supported,
            or the parameters conflict.
    """
    import numpy as np

    if not isinstance(timing_data, Mapping):
        raise ValueError(f"problem_timing_data must be a mapping, got {type(timing_data).__name__}")
    version = str(_field(timing_data, "version"))
    if not version.startswith("1.0."):
        raise ValueError(f"timing model version {version!r} is not supported (only 1.0.x)")
    if _given(anneal_schedule) and annealing_time is not None:
        raise ValueError("set only one of anneal_schedule or annealing_time, not both (as the QPU requires)")
    reverse = _given(anneal_schedule) and float(anneal_schedule[0][1]) == 1.0
    if reverse and not _given(initial_state):
        raise ValueError("a reverse anneal (anneal_schedule starting at s = 1) needs an initial_state")

    prog_delta = delay_delta = 0.0
    if reverse:
        which = "with" if reinitialize_state else "without"
        prog_delta = float(_field(timing_data, f"reverse_annealing_{which}_reinit_prog_time_delta"))
        delay_delta = float(_field(timing_data, f"reverse_annealing_{which}_reinit_delay_time_delta"))
    if programming_thermalization is None:
        programming_thermalization = _field(timing_data, "default_programming_thermalization")
    programming = float(_field(timing_data, "typical_programming_time")) + prog_delta
    programming += float(programming_thermalization)

    if annealing_time is not None:
        anneal = float(annealing_time)
    elif _given(anneal_schedule):
        anneal = float(anneal_schedule[-1][0])
    else:
        anneal = float(_field(timing_data, "default_annealing_time"))

    params = list(_field(timing_data, "readout_time_model_parameters"))
    if len(params) % 2:
        raise ValueError("readout_time_model_parameters must have an even length (qubit counts, then times)")
    counts, times = params[: len(params) // 2], params[len(params) // 2 :]
    kind = _field(timing_data, "readout_time_model")
    n = max(int(num_qubits), 1)
    if kind == "pwl_log_log":
        readout = 10.0 ** float(np.interp(math.log10(n), counts, times))
    elif kind == "pwl_linear":
        readout = float(np.interp(n, counts, times))
    else:
        raise ValueError(f"readout_time_model {kind!r} is not supported (pwl_log_log or pwl_linear)")

    if readout_thermalization is None:
        readout_thermalization = _field(timing_data, "default_readout_thermalization")
    decorrelation = 0.0
    if reduce_intersample_correlation:
        lo, hi = _field(timing_data, "decorrelation_time_range")
        top = float(_field(timing_data, "decorrelation_max_nominal_anneal_time"))
        decorrelation = anneal / top * (float(hi) - float(lo)) + float(lo)
    qpu_delay = float(_field(timing_data, "qpu_delay_time_per_sample"))
    wait = max(float(readout_thermalization), decorrelation)
    sampling = num_reads * (anneal + readout + qpu_delay + delay_delta + wait)  # the cloud client's order
    return {
        "qpu_access_time": sampling + programming,
        "qpu_programming_time": programming,
        "qpu_sampling_time": sampling,
        "qpu_anneal_time_per_sample": anneal,
        "qpu_readout_time_per_sample": readout,
        "qpu_delay_time_per_sample": qpu_delay + delay_delta + wait,
    }


def access_time_model(
    timing_data: Mapping[str, Any], num_qubits: int, num_reads: int = 1, **parameters: Any
) -> float:
    """Estimated QPU access time (µs) of one call, from a solver's ``problem_timing_data``:
    ``access_time_breakdown(...)["qpu_access_time"]`` after checking that ``num_qubits`` and
    ``num_reads`` are positive ints. ``parameters`` are the keyword-only parameters of
    :func:`access_time_breakdown` (which states the model).

    Raises:
        ValueError: a bad count, a missing field, an unsupported model version or readout
            model, or conflicting parameters.
        TypeError: a keyword the model does not read.
    """
    if isinstance(num_qubits, bool) or not isinstance(num_qubits, int) or num_qubits < 1:
        raise ValueError(f"num_qubits must be a positive int, got {num_qubits!r}")
    if isinstance(num_reads, bool) or not isinstance(num_reads, int) or num_reads < 1:
        raise ValueError(f"num_reads must be a positive int, got {num_reads!r}")
    return access_time_breakdown(timing_data, num_qubits, num_reads, **parameters)["qpu_access_time"]


#: ``estimate(num_qubits, num_reads, solver_parameters) -> µs``
Estimator = Callable[[int, int, Mapping[str, Any]], float]


def _timing_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in TIMING_PARAMETERS if k in kwargs and kwargs[k] is not None}


def access_time_estimator(sampler) -> tuple[Estimator | None, str]:
    """``(estimate, source)``: how to estimate a call to ``sampler``, and in words where it comes from.

    ``estimate(num_qubits, num_reads, solver_parameters)`` returns µs; only the
    :data:`TIMING_PARAMETERS` of ``solver_parameters`` reach it. ``estimate`` is None when
    the sampler (or, through ``.child``, a sampler it wraps) offers none; ``source`` then
    says why.
    """
    seen = 0
    s = sampler
    while s is not None and seen < 16:
        solver = getattr(s, "solver", None)
        method = getattr(solver, "estimate_qpu_access_time", None)
        if callable(method):  # a real DWaveSampler: the cloud client's model on the live properties
            return _calling(method), f"{type(s).__name__}.solver.estimate_qpu_access_time"
        method = getattr(s, "estimate_qpu_access_time", None)
        if callable(method):
            return _calling(method), f"{type(s).__name__}.estimate_qpu_access_time"
        props = getattr(s, "properties", None)
        data = props.get("problem_timing_data") if isinstance(props, Mapping) else None
        if isinstance(data, Mapping):
            return (
                lambda nq, nr, kw, _d=data: access_time_model(_d, nq, nr, **_timing_kwargs(kw)),
                f"the problem_timing_data of {type(s).__name__}",
            )
        s, seen = getattr(s, "child", None), seen + 1
    return None, (
        f"{type(sampler).__name__} has no problem_timing_data property (it is "
        f"{_describe_timing(sampler)}) and no estimate_qpu_access_time method"
    )


def _describe_timing(sampler) -> str:
    props = getattr(sampler, "properties", None)
    if not isinstance(props, Mapping) or "problem_timing_data" not in props:
        return "absent"
    return repr(props["problem_timing_data"])[:40]


def _calling(method) -> Estimator:
    def estimate(num_qubits: int, num_reads: int, kwargs: Mapping[str, Any]) -> float:
        return float(method(num_qubits, num_reads=num_reads, **_timing_kwargs(kwargs)))

    return estimate


# --- the ledger -----------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite_or_none(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x >= 0 else None


class QPULedger:
    """The QPU access time a run has spent: an append-only JSON-lines file (see the module doc).

    ``QPULedger(path)`` reads the file if it is there (creating it, and its folder, at the
    first record); ``QPULedger()`` keeps the records in memory only. One process writes a
    ledger at a time (a run directory is locked by its training loop).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path is None else Path(path)
        self._records: list[dict[str, Any]] = []
        self._calls: dict[int, dict[str, Any]] = {}  # call id -> its records merged (kept up to date)
        self._spent_us = 0.0
        self._truncate_to: int | None = None  # where a torn last record starts (cut before appending)
        self._needs_newline = False
        self.dropped_tail: str | None = None
        if self.path is not None and self.path.exists():
            self._load()

    def __repr__(self) -> str:
        where = "in memory" if self.path is None else str(self.path)
        return f"QPULedger({where}: {len(self._calls)} calls, {self.spent_s:.6g} s)"

    # reading ---------------------------------------------------------------------------
    @staticmethod
    def _valid(rec: Any) -> bool:
        return (
            isinstance(rec, dict)
            and rec.get("event") in _EVENTS
            and isinstance(rec.get("call"), int)
            and not isinstance(rec.get("call"), bool)
        )

    def _load(self) -> None:
        assert self.path is not None  # called only for a ledger kept in a file
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise LedgerError(f"the QPU ledger {self.path} cannot be read ({err.strerror or err})") from None
        lines = data.split(b"\n")
        ends_clean = data.endswith(b"\n") or not data
        if ends_clean:
            lines = lines[:-1]
        offset = 0
        for n, raw in enumerate(lines, start=1):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rec = None
            if self._valid(rec) and isinstance(rec.get("v", 1), int) and rec.get("v", 1) > LEDGER_VERSION:
                raise LedgerError(
                    f"the QPU ledger {self.path} line {n} is of format {rec['v']}, newer than this physamp's "
                    f"({LEDGER_VERSION}); use a newer physamp"
                )
            if not self._valid(rec):
                if n < len(lines):
                    raise LedgerError(
                        f"the QPU ledger {self.path} line {n} is not a ledger record (an append-only file "
                        "was edited?); restore it, or move it away to start a new ledger (its QPU time is "
                        "then no longer counted against the budget)"
                    )
                self.dropped_tail = raw.decode("utf-8", "replace")[:200]
                self._truncate_to = offset
                warnings.warn(
                    f"the QPU ledger {self.path} ends in a torn record ({len(raw)} bytes, a write cut off by "
                    "a crash); it is dropped (a call it belonged to still counts by its 'submit' record)",
                    LedgerWarning,
                    stacklevel=3,
                )
                break
            self._apply(rec)
            offset += len(raw) + 1
        self._needs_newline = not ends_clean and self._truncate_to is None

    def _apply(self, rec: dict[str, Any]) -> None:
        """Add a record to the in-memory view (the merged call and the running total)."""
        self._records.append(rec)
        call = rec["call"]
        entry = self._calls.get(call)
        if entry is None:
            entry = self._calls[call] = {
                "call": call,
                "status": "pending",
                "counted_us": 0.0,
                "counted": False,
            }
        self._spent_us -= entry["counted_us"]
        if rec["event"] == "submit":
            entry.update({k: v for k, v in rec.items() if k not in ("event", "v")})
        else:  # done / failed
            entry.update({k: v for k, v in rec.items() if k not in ("event", "v", "time")})
            entry["status"] = rec["event"]
            entry["done_time"] = rec.get("time")
        reported = _finite_or_none(entry.get("qpu_access_time_us")) if entry["status"] == "done" else None
        estimate = _finite_or_none(entry.get("estimate_us"))
        entry["counted_us"] = reported if reported is not None else (estimate or 0.0)
        entry["counted"] = reported is not None or estimate is not None
        self._spent_us += entry["counted_us"]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The raw records, in file order (a copy)."""
        return [dict(r) for r in self._records]

    def calls(self) -> list[dict[str, Any]]:
        """One dict per call, by call id: its submit record merged with its outcome, plus ``status``
        (``"done"``, ``"failed"``, or ``"pending"``: no outcome was recorded), ``counted_us`` (what it
        counts: the reported time, else the estimate, else 0) and ``counted`` (whether it is known)."""
        return [dict(self._calls[k]) for k in sorted(self._calls)]

    def __len__(self) -> int:
        """The number of calls."""
        return len(self._calls)

    @property
    def spent_us(self) -> float:
        """QPU access time counted so far (µs): reported times, else estimates."""
        return max(self._spent_us, 0.0)

    @property
    def spent_s(self) -> float:
        return self.spent_us * 1e-6

    def summary(self, calibration_labels: Iterable[str] = ("calibration",)) -> dict[str, Any]:
        """Totals: ``calls``, ``reads``, ``spent_s``, ``estimated_s`` (the estimates of the same calls),
        ``pending_calls``, ``failed_calls``, ``uncounted_calls`` (neither time nor estimate), and
        ``by_label`` (``{label: {"calls", "reads", "spent_s"}}``), ``calibration_s``."""
        calls = self.calls()
        by_label: dict[str, dict[str, Any]] = {}
        for c in calls:
            lab = str(c.get("label", "sample"))
            d = by_label.setdefault(lab, {"calls": 0, "reads": 0, "spent_s": 0.0})
            d["calls"] += 1
            d["reads"] += int(c.get("num_reads") or 0)
            d["spent_s"] += c["counted_us"] * 1e-6
        cal = set(calibration_labels)
        return {
            "calls": len(calls),
            "reads": sum(int(c.get("num_reads") or 0) for c in calls),
            "spent_s": sum(c["counted_us"] for c in calls) * 1e-6,
            "estimated_s": sum(_finite_or_none(c.get("estimate_us")) or 0.0 for c in calls) * 1e-6,
            "reported_calls": sum(c["status"] == "done" and c.get("source") == "reported" for c in calls),
            "pending_calls": sum(c["status"] == "pending" for c in calls),
            "failed_calls": sum(c["status"] == "failed" for c in calls),
            "uncounted_calls": sum(not c["counted"] for c in calls),
            "by_label": by_label,
            "calibration_s": sum(d["spent_s"] for lab, d in by_label.items() if lab in cal),
        }

    # writing ---------------------------------------------------------------------------
    def _append(self, rec: dict[str, Any]) -> None:
        rec = {"v": LEDGER_VERSION, **rec}
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False)
        if self.path is not None:
            new = not self.path.exists()
            if new:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                prefix = b""
                if self._truncate_to is not None:  # cut a torn last record off before appending
                    os.ftruncate(fd, self._truncate_to)
                    self._truncate_to = None
                elif self._needs_newline:  # a valid last record that lost its newline
                    prefix = b"\n"
                self._needs_newline = False
                data = memoryview(prefix + line.encode() + b"\n")
                while data:  # one record per write; a short write (full disk) is finished or raises
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:  # the new file's name must survive a crash too
                try:
                    dfd = os.open(self.path.parent, os.O_RDONLY)
                except OSError:
                    dfd = None
                if dfd is not None:
                    try:
                        os.fsync(dfd)
                    except OSError:
                        pass
                    finally:
                        os.close(dfd)
        self._apply(rec)

    def extend(self, other: QPULedger) -> None:
        """Append ``other``'s records (its calls renumbered to follow this ledger's): e.g. the calls
        an in-memory ledger recorded before a run directory was chosen."""
        first = self._next_call()
        ids = {call: first + i for i, call in enumerate(sorted(other._calls))}
        for rec in other._records:
            self._append({k: v for k, v in rec.items() if k != "v"} | {"call": ids[rec["call"]]})

    def _next_call(self) -> int:
        return 1 + max(self._calls, default=0)

    def open_call(
        self,
        *,
        num_qubits: int,
        num_reads: int,
        estimate_us: float | None,
        label: str = "sample",
        solver: str | None = None,
    ) -> int:
        """Write the ``submit`` record of a call about to be sent; returns its call id."""
        call = self._next_call()
        est = _finite_or_none(estimate_us)
        self._append(
            {"event": "submit", "call": call, "time": _now(), "label": str(label), "solver": solver,
             "num_qubits": int(num_qubits), "num_reads": int(num_reads), "estimate_us": est}
        )  # fmt: skip
        return call

    def close_call(
        self, call: int, *, timing: Mapping[str, Any] | None, problem_id: str | None = None
    ) -> float:
        """Write the ``done`` record of ``call`` from the timing the solver returned; returns the µs
        it counts (the reported ``qpu_access_time``, else the estimate, else 0)."""
        reported = _finite_or_none((timing or {}).get("qpu_access_time"))
        estimate = _finite_or_none(self._calls.get(call, {}).get("estimate_us"))
        source = "reported" if reported is not None else ("estimate" if estimate is not None else "unknown")
        self._append(
            {"event": "done", "call": int(call), "time": _now(),
             "problem_id": None if problem_id is None else str(problem_id),
             "qpu_access_time_us": reported, "source": source}
        )  # fmt: skip
        return reported if reported is not None else (estimate or 0.0)

    def fail_call(self, call: int, error: BaseException | str) -> None:
        """Write the ``failed`` record of ``call`` (its estimate keeps counting)."""
        name = error if isinstance(error, str) else type(error).__name__
        self._append({"event": "failed", "call": int(call), "time": _now(), "error": name})


# --- the budget -----------------------------------------------------------------------
def _fmt_s(x: float) -> str:
    return f"{x:.4g} s" if abs(x) < 1000 else f"{x:,.0f} s"


def check_budget(
    budget_s: float | None,
    ledger: QPULedger,
    estimates_us: list[float] | None,
    *,
    num_reads: int,
    num_qubits: int,
    why_unknown: str = "",
    allow_unknown_cost: bool = False,
) -> None:
    """Refuse a sample whose calls would not fit in what is left of ``budget_s`` (None: no budget).

    ``estimates_us`` lists the estimate of each of its solver calls (None: unknown).

    Raises:
        QPUBudgetExceeded: the estimate exceeds ``budget_s - ledger.spent_s``.
        UnknownQPUCostError: a budget is set, the estimate is unknown and
            ``allow_unknown_cost`` is False.
    """
    if budget_s is None:
        return
    spent = ledger.spent_s
    if estimates_us is None:
        if allow_unknown_cost:
            return
        raise UnknownQPUCostError(
            f"a QPU budget of {_fmt_s(budget_s)} is set, but the access time of this call cannot be "
            f"estimated: {why_unknown}. Nothing was submitted. Allow calls of unknown cost explicitly "
            "(DWaveBackend(allow_unknown_cost=True), or -o allow_unknown_cost=True; their reported "
            "time, if any, is still recorded and counted), or drop the budget"
        )
    estimate = sum(estimates_us) * 1e-6
    left = budget_s - spent
    if estimate > left:
        where = "" if ledger.path is None else f", ledger {ledger.path}"
        raise QPUBudgetExceeded(
            f"QPU budget exceeded: this sample would use an estimated {_fmt_s(estimate)} of QPU access "
            f"time ({len(estimates_us)} call(s), {num_reads:,} reads on {num_qubits:,} qubits), but only "
            f"{_fmt_s(max(left, 0.0))} of the {_fmt_s(budget_s)} budget is left ({_fmt_s(spent)} spent"
            f"{where}). Nothing was submitted; {RAISE_HINT}",
            estimate_s=estimate,
            spent_s=spent,
            budget_s=budget_s,
            num_calls=len(estimates_us),
            num_reads=num_reads,
        )


# --- the cost report ------------------------------------------------------------------
def cost_report(
    ledger: QPULedger,
    *,
    budget_s: float | None = None,
    steps: int | None = None,
    stopped_by_budget: bool = False,
    calibration_labels: Iterable[str] = ("calibration",),
) -> dict[str, Any]:
    """What a run spent: the ledger's :meth:`~QPULedger.summary` plus ``budget_s``, ``left_s``,
    ``steps`` (gradient steps done), ``per_step_s`` (training calls' time per step),
    ``calibration_share`` and ``stopped_by_budget``; JSON-able."""
    s = ledger.summary(calibration_labels)
    train = s["spent_s"] - s["calibration_s"]
    return {
        **s,
        "ledger": None if ledger.path is None else str(ledger.path),
        "budget_s": budget_s,
        "left_s": None if budget_s is None else max(budget_s - s["spent_s"], 0.0),
        "steps": steps,
        "per_step_s": None if not steps else train / steps,
        "per_call_s": None if not s["calls"] else s["spent_s"] / s["calls"],
        "calibration_share": None if s["spent_s"] <= 0 else s["calibration_s"] / s["spent_s"],
        "stopped_by_budget": stopped_by_budget,
    }


def format_cost_report(report: Mapping[str, Any]) -> str:
    """The cost report as a few lines of text (what ``physamp train-rbm`` prints)."""

    def ms(x):
        return "n/a" if x is None else f"{x * 1e3:.4g} ms"

    budget = report.get("budget_s")
    lines = [
        "QPU cost report" + (" (stopped by the budget)" if report.get("stopped_by_budget") else ""),
        f"  total QPU access time  {report['spent_s']:.6g} s"
        + ("" if budget is None else f" of a {budget:.6g} s budget ({report['left_s']:.6g} s left)"),
        f"  calls / reads          {report['calls']:,} / {report['reads']:,}"
        f"  (mean {ms(report.get('per_call_s'))} per call)",
    ]
    if report.get("steps"):
        lines.append(f"  per gradient step      {ms(report.get('per_step_s'))} ({report['steps']:,} steps)")
    share = report.get("calibration_share")
    lines.append(
        f"  calibration            {report['calibration_s']:.6g} s"
        + ("" if share is None else f" ({100 * share:.1f} % of the total)")
    )
    for lab, d in sorted(report.get("by_label", {}).items()):
        lines.append(f"    {lab:20s} {d['calls']:,} calls, {d['reads']:,} reads, {d['spent_s']:.6g} s")
    notes = []
    if report.get("pending_calls"):
        n = report["pending_calls"]
        notes.append(f"{n} call(s) without a recorded outcome counted at their estimate")
    if report.get("failed_calls"):
        notes.append(f"{report['failed_calls']} failed call(s) counted at their estimate")
    if report.get("uncounted_calls"):
        notes.append(f"{report['uncounted_calls']} call(s) of unknown cost counted as 0")
    lines += [f"  note: {n}" for n in notes]
    if report.get("ledger"):
        lines.append(f"  ledger                 {report['ledger']}")
    return "\n".join(lines)
