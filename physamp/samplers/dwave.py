"""A D-Wave quantum annealer (or any structured dimod sampler) as a physamp backend.

What is programmed
------------------
The RBM becomes an Ising problem by Eq. 3.1 (:func:`physamp.ising.rbm_to_ising`,
dimod's SPIN convention) and is programmed as ``prefactor · (h, J)`` with
``auto_scale=False`` and ``answer_mode='raw'``: physamp, not the solver, fixes the
scale. A device that samples ``p ∝ exp(-β_eff · E_programmed)`` then samples the
RBM at ``β_model = β_eff · prefactor``. ``prefactor`` defaults to ``1 / beta_eff``
when a (believed) ``beta_eff`` is given, so that β_model ≈ 1, and to 1.0 otherwise.
Programmed values outside the solver's ``h_range`` / ``j_range``, and NaNs, raise
``ValueError`` before anything is submitted; the ``max_prefactor`` a
:meth:`DWaveBackend.dry_run` reports is the largest one ``sample`` accepts. With
``estimate_temperature`` the device's β_eff is measured on every call by maximum
pseudo-likelihood (:func:`physamp.samplers.dimod_io.fit_beta`: the estimator of
``dwave.system.temperatures.maximum_pseudolikelihood_temperature``, solved by a
bracketed root search that cannot run away or divide by zero) and reported as
``info["beta_eff"]`` with its standard error over reads ``info["beta_eff_std"]``, a 95 %
interval ``info["beta_eff_ci"]`` and ``info["beta_model"] = beta_eff · prefactor``; when the
samples cannot give one, ``info["beta_eff_error"]`` says why in one sentence. An infinite
estimate (every read a local minimum) is not a number: ``info["beta_eff"]`` is None and
``info["beta_eff_infinite"]`` True, with a warning. :func:`physamp.samplers.temperature.calibrate`
sets the prefactor from such estimates until β_model reaches a target. The estimate assumes a
classical Boltzmann distribution (``info["beta_eff_assumes"]``); a solver whose reads follow a
transverse-field one (the simulated QPU with ``gamma > 0``, the freeze-out model of a real QPU)
adds ``info["solver_gamma"]`` and ``info["beta_eff_note"]``, the bias measured on such reads.

QPU time
--------
With ``qpu_budget=SECONDS`` every ``sample`` is costed before anything is sent (the
solver's ``problem_timing_data``, :mod:`physamp.samplers.qpu_budget`) and refused with
``QPUBudgetExceeded`` if it would exceed what the ledger says is left; every solver call
is written to the ledger (``ledger=PATH``, append-only JSON lines) as it is sent and when
it returns, so time spent before a crash still counts on the next run.

A :class:`~physamp.samplers.dimod_io.NotBoltzmannWarning` is given when the sampler
is an optimiser by construction (a ``MockDWaveSampler`` with its default,
steepest-descent substitute), when β_eff comes out infinite (every read a local
minimum), and when the reads collapse to a handful of minima.

Placing the units
-----------------
- ``topology`` (an object with ``.visible`` / ``.hidden`` qubit labels and a
  ``(n_hidden, n_visible)`` ``.mask``, e.g. ``physamp.topology.chimera_rbm(m)``):
  one qubit per unit. Every qubit must exist; every connection the mask keeps,
  and every nonzero weight, needs a coupler (masked zero weights need none).
- otherwise: chains, through :class:`~physamp.samplers.embedding.ChainEmbeddingComposite`
  around the solver. ``embedding`` (``{unit index: [qubits]}``, visible units
  ``0..n_visible-1`` then hidden) or one found once by ``minorminer`` on the RBM's
  interaction graph and kept (``backend.embedding``). Chains are held by
  ``-chain_strength`` couplers (programmed units; default ``min(2 max|prefactor J|,
  |j_range[0]|)``), read back by majority vote, and ``info["chain_break_fraction"]``
  reports how often they broke. The range checks and :meth:`DWaveBackend.dry_run`
  look at the embedded problem, chain couplers included: what is programmed. The
  chain couplers are part of the physical problem, so the distribution is the
  RBM's only for strong, unbroken chains.

Reads above the solver's ``num_reads_range`` are split over several calls;
``info["qpu_timing"]`` lists each call's ``sampleset.info["timing"]`` and
``info["qpu_timing_total"]`` sums them. Hardware has no persistent chains:
``initial`` is ignored. One problem is programmed per call, so per-sample
(batched) biases are refused.

Without a sampler, ``dwave.system.DWaveSampler(solver=solver)`` is built at first
use; a Leap API token must then be configured (``export DWAVE_API_TOKEN=...`` or
``dwave config create``) or given (``token=...``). The token is never written,
printed or logged, nor put in a repr (``token=<redacted>``), a config, ``info``, a
report or an exception (:mod:`physamp.samplers.redact`). Check a job without
submitting it::

    backend = DWaveBackend(topology=chimera_rbm(16), prefactor=0.5)
    print(backend.dry_run(rbm, num_samples=10_000))

Offline, ``solver="simulated"`` (CLI: ``-o solver=simulated``) builds a
:class:`~physamp.samplers.simulated_qpu.SimulatedQPU` instead of a ``DWaveSampler``
and needs no token: a structured dimod sampler that draws Boltzmann samples
``p ∝ exp(-β_eff · E_programmed)`` at a hidden ``beta`` (default 1), with the QPU's
ranges, parameters, timing and the thesis's noise model. Its graph is the one the
``topology`` is laid out on (default: Pegasus P9). A spec chooses it:
``"simulated:FAMILY[:SHAPE][:KEY=VALUE...]"`` (``"simulated:chimera:16"``,
``"simulated:zephyr:7x4:beta=2.5:h_noise=0.05"``; keys ``beta``, ``gamma``, ``trotter``,
``j_noise``, ``h_noise``, ``num_sweeps``, ``num_replicas``, ``missing_fraction``,
``missing_seed``, ``seed``) or a dict ``{"name": "simulated", "topology": "chimera",
"shape": [2, 2, 4], "beta": 2.0, "missing_qubits": [...], ...}`` with any
``SimulatedQPU`` argument; an unreadable spec is refused with the syntax. Any other
structured dimod sampler can stand in too (``DWaveBackend(sampler=...)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import IsingRBM, default_labels, ising_to_bqm, rbm_to_ising, resolve_labels
from physamp.samplers.base import Chains, Sampler, check_positive
from physamp.samplers.dimod_io import (
    HANDFUL,
    NotBoltzmannWarning,  # noqa: F401  (importable from here)
    call_seed,
    check_sample_kwargs,
    check_structured,
    collapse_warning,
    fit_beta,
    flip_energies,
    optimiser_reason,
    sampleset_to_units,
    split_units,
    warn_not_boltzmann,
)

# the token helpers live in physamp.samplers.redact; imported here by their old names, and
# looked up here at call time (so monkeypatching physamp.samplers.dwave.token_available works)
from physamp.samplers.redact import (  # noqa: F401  (re-exported)
    _TOKEN_PATTERN,
    REDACTED,
    Secret,
    _config_token,
    _redact,
    install_log_redaction,
    redact,
    token_available,
)

__all__ = ["DWaveBackend", "DryRunReport", "MissingTokenError", "DWaveConnectionError"]

# before anything of Ocean runs: its cloud client logs its configuration, token included
install_log_redaction()

_TOKEN_HELP = (
    "No D-Wave Leap API token is configured, so DWaveSampler cannot be built. Set one with "
    "`export DWAVE_API_TOKEN=<your token>` or `dwave config create` (token from "
    "https://cloud.dwavesys.com/leap), or work offline on the simulated QPU: "
    "DWaveBackend(solver='simulated') (CLI: -o solver=simulated; 'simulated:pegasus:beta=2' "
    "chooses its graph and temperature), or pass any structured dimod sampler as "
    "DWaveBackend(sampler=...)."
)


class MissingTokenError(RuntimeError):
    """No D-Wave API token in ``DWAVE_API_TOKEN`` or the dwave config file."""


class DWaveConnectionError(RuntimeError):
    """Building or calling the D-Wave solver failed (message has any token redacted)."""


def _as_bool_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask has shape {mask.shape}; expected (n_hidden, n_visible) = {shape}")
    return mask


def _is_simulated_qpu(sampler) -> bool:
    from physamp.samplers.simulated_qpu import SimulatedQPU

    return isinstance(sampler, SimulatedQPU)


def _reads_within_duration(properties, kwargs: dict[str, Any]) -> int | None:
    """The most reads one call may hold under the solver's ``problem_run_duration_range``:
    a QPU refuses a problem whose ``(anneal + readout_thermalization) · num_reads +
    programming_thermalization`` (µs) exceeds it. None when the solver states no such range
    (or not the defaults the duration needs)."""
    rng, default = properties.get("problem_run_duration_range"), properties.get
    if rng is None:
        return None
    anneal = kwargs.get("annealing_time")
    if anneal is None and kwargs.get("anneal_schedule") is not None:
        try:
            anneal = float(kwargs["anneal_schedule"][-1][0])
        except (TypeError, ValueError, IndexError, KeyError):
            return None  # the solver's own check will say what is wrong with the schedule
    anneal = default("default_annealing_time") if anneal is None else anneal
    rt = kwargs.get("readout_thermalization", default("default_readout_thermalization"))
    pt = kwargs.get("programming_thermalization", default("default_programming_thermalization"))
    try:
        per_read, fixed, hi = float(anneal) + float(rt), float(pt), float(rng[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (per_read > 0 and math.isfinite(per_read) and math.isfinite(hi)):
        return None
    return max(0, math.floor((hi - fixed) / per_read))


def _max_scale(values: np.ndarray, lo: float, hi: float) -> float:
    """Largest s with ``lo <= s * values <= hi`` elementwise (inf for all-zero values)."""
    pos, neg = values[values > 0], values[values < 0]
    s = math.inf
    if pos.size:
        s = min(s, hi / pos.max())
    if neg.size:
        s = min(s, lo / neg.min())
    return s


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_range(name: str, value, where: str = "") -> tuple[float, float]:
    """``(low, high)`` as floats, or ``ValueError`` unless finite reals with ``low < 0 < high``."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        lo = hi = None
    if not (_is_real(lo) and _is_real(hi) and math.isfinite(lo) and math.isfinite(hi) and lo < 0 < hi):
        raise ValueError(
            f"{name}{where} must be a pair (low, high) of finite numbers with low < 0 < high, got "
            f"{value!r}; a NaN or reversed range would disable the range check"
        )
    return float(lo), float(hi)


def _check_reads_cap(value) -> int | None:
    """``num_reads_per_call``: None or a positive integer (a bool is not a number of reads)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"num_reads_per_call must be a positive integer (reads per solver call) or None, got {value!r}"
        )
    return int(value)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _floor_sig(x: float, digits: int = 4) -> float:
    """``x > 0`` rounded *down* to ``digits`` significant digits (a bound that stays a bound)."""
    if not (math.isfinite(x) and x > 0):
        return x
    e = math.floor(math.log10(x)) - digits + 1
    y = math.floor(x / 10.0**e) * 10.0**e
    return y if y <= x else math.nextafter(y, 0.0)


def _out_of_range(values: np.ndarray, lo: float, hi: float) -> bool:
    """Whether any value lies outside ``[lo, hi]`` (NaN counts as outside)."""
    return bool(values.size) and not bool(((values >= lo) & (values <= hi)).all())


@dataclass
class DryRunReport:
    """Everything :meth:`DWaveBackend.dry_run` checked; nothing was submitted."""

    sampler: str
    solver: str | None
    placement: str  # "topology" (one qubit per unit) or "chains"
    num_samples: int
    num_qubits: int
    num_couplers: int
    max_chain_length: int
    prefactor: float
    chain_strength: float | None
    max_abs_h: float
    max_abs_J: float
    h_range: tuple[float, float] | None
    j_range: tuple[float, float] | None
    max_prefactor: float | None
    reads_per_call: list[int] = field(default_factory=list)
    sample_kwargs: dict[str, Any] = field(default_factory=dict)
    beta_eff_assumed: float | None = None
    beta_model_assumed: float | None = None
    # QPU access time (physamp.samplers.qpu_budget): the estimate of these calls, and the budget
    estimated_qpu_access_time_s: float | None = None  # None: the sampler gives no estimate
    estimate_source: str = ""  # where the estimate comes from, or why there is none
    qpu_budget_s: float | None = None
    qpu_spent_s: float = 0.0  # what the backend's ledger already holds
    qpu_budget_left_s: float | None = None
    within_budget: bool | None = None  # would sample() pass the budget? None: no budget

    @property
    def num_calls(self) -> int:
        return len(self.reads_per_call)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_calls": self.num_calls}

    def __str__(self) -> str:
        lines = [f"DWaveBackend dry run: nothing submitted ({self.sampler}, solver {self.solver})"]
        for k, v in self.to_dict().items():
            if k not in ("sampler", "solver"):
                lines.append(f"  {k:27s} {v}")
        return redact("\n".join(lines))


@dataclass
class _Plan:
    sampler: Any
    bqm: Any  # the programmed (target) BQM
    labels: list | None  # topology placement: qubit of each unit
    embedding: dict | None  # chain placement
    source_bqm: Any
    chain_strength: float | None
    prefactor: float
    kwargs: dict[str, Any]
    reads: list[int]
    h_range: tuple[float, float] | None
    j_range: tuple[float, float] | None
    max_prefactor: float | None
    estimate_temperature: bool


class DWaveBackend(Sampler):
    """A D-Wave QPU (``DWaveSampler``) or any structured dimod sampler; see the module docstring.

    Args:
        sampler: a structured dimod sampler (``.nodelist``, ``.edgelist``,
            ``.properties``); None builds ``DWaveSampler(solver=solver)`` at first use.
        topology: one qubit per unit (``.visible``, ``.hidden``, ``.mask``); else chains.
        embedding: ``{unit index: [qubits]}`` for chains (found by minorminer if None).
        chain_strength: chain coupler magnitude in programmed units (default above).
        prefactor: programmed problem = ``prefactor · (h, J)``; default ``1/beta_eff`` or 1.0.
        beta_eff: the device's believed inverse temperature (sets the default prefactor).
        h_range, j_range: override the solver's ``h_range`` / ``j_range`` properties.
        num_reads_per_call: cap on reads per call (default: ``num_reads_range`` max).
        estimate_temperature: measure β_eff by maximum pseudo-likelihood on each call.
        qpu_budget: seconds of QPU access time this backend may spend, counting what its
            ledger already holds (None: no limit). A ``sample`` whose estimated access time
            (all its solver calls) exceeds what is left raises
            :class:`~physamp.samplers.qpu_budget.QPUBudgetExceeded` before anything is sent.
        ledger: where the QPU time spent is recorded: a path (an append-only JSON-lines
            file, read on construction so earlier runs count) or a
            :class:`~physamp.samplers.qpu_budget.QPULedger`; None keeps one in memory.
        allow_unknown_cost: with a budget, submit to a sampler whose access time cannot be
            estimated (no ``problem_timing_data``, e.g. ``MockDWaveSampler``); refused otherwise.
        solver: solver name or filter for the lazily built ``DWaveSampler``.
        token: a Leap API token for the lazily built ``DWaveSampler`` (default: the one
            in ``DWAVE_API_TOKEN`` or the dwave config file). It is accepted but never
            shown: reprs, configs, checkpoints, logs and errors hold ``<redacted>``.
        seed: seeds minorminer (and the sampler, if it has a ``seed`` parameter).
        **sample_kwargs: solver parameters for every call (``annealing_time``, ...).

    Per-call overrides: ``prefactor``, ``chain_strength``, ``estimate_temperature``,
    ``num_reads_per_call`` and the solver's parameters.
    """

    name = "dwave"
    uses_chains = False
    steps_option = None  # independent anneals: PCD-k does not apply k
    _OWN = {
        "prefactor": "programmed problem = prefactor * (h, J)",
        "chain_strength": "chain coupler magnitude (programmed units)",
        "estimate_temperature": "estimate beta_eff by maximum pseudo-likelihood",
        "num_reads_per_call": "cap on reads per solver call",
    }
    _MANAGED = ("num_reads", "auto_scale", "answer_mode", "seed")

    def __init__(
        self,
        sampler=None,
        *,
        topology=None,
        embedding: dict | None = None,
        chain_strength: float | None = None,
        prefactor: float | None = None,
        beta_eff: float | None = None,
        h_range: tuple[float, float] | None = None,
        j_range: tuple[float, float] | None = None,
        num_reads_per_call: int | None = None,
        estimate_temperature: bool = True,
        qpu_budget: float | None = None,
        ledger=None,
        allow_unknown_cost: bool = False,
        solver: str | dict | None = None,
        token: str | None = None,
        seed: int | None = None,
        **sample_kwargs: Any,
    ) -> None:
        super().__init__(seed=seed)
        # the token first: whatever fails below, no message can hold it
        self._token = None if token is None else Secret(token)
        if self._token is not None and sampler is not None:
            raise ValueError(
                "token is used only to build DWaveSampler; a sampler was given, so drop the token "
                "(or drop the sampler to connect with the token)"
            )
        if topology is not None and embedding is not None:
            raise ValueError("give either a topology (one qubit per unit) or an embedding (chains)")
        self.prefactor = None if prefactor is None else check_positive(prefactor, "prefactor")
        self.beta_eff = None if beta_eff is None else check_positive(beta_eff, "beta_eff")
        self.chain_strength = (
            None if chain_strength is None else check_positive(chain_strength, "chain_strength")
        )
        self.h_range = None if h_range is None else _check_range("h_range", h_range)
        self.j_range = None if j_range is None else _check_range("j_range", j_range)
        self.num_reads_per_call = _check_reads_cap(num_reads_per_call)
        self.estimate_temperature = _check_flag("estimate_temperature", estimate_temperature)
        self.qpu_budget = None if qpu_budget is None else check_positive(qpu_budget, "qpu_budget", "seconds")
        self.ledger = ledger  # a QPULedger (the setter opens a path)
        self.allow_unknown_cost = _check_flag("allow_unknown_cost", allow_unknown_cost)
        self.ledger_label = "sample"  # what the ledger says a call was for (see ledger_label_as)
        if sampler is None and solver is not None:
            from physamp.samplers.simulated_qpu import is_simulated_spec, spec_options

            if is_simulated_spec(solver):  # read now (built at first use, on the topology's graph)
                if self._token is not None:
                    raise ValueError(
                        f"solver={solver!r} is the simulated QPU, which needs no token; drop the token "
                        "(or name a real solver)"
                    )
                spec_options(solver)
        if sampler is not None:
            check_structured(sampler, "sampler", "Wrap unstructured samplers with the 'dimod' backend.")
            self._check_sampler_kwargs(sampler, sample_kwargs)
        self._sampler = sampler
        self._owns_sampler = False
        self._embedder: Any = None  # ChainEmbeddingComposite around the solver, built on first use
        self.topology = topology
        self.embedding = embedding
        self.solver = solver
        self.sample_kwargs = dict(sample_kwargs)
        if sampler is not None:
            self._warn_if_optimiser(sampler, self.sample_kwargs)

    def _warn_if_optimiser(self, sampler, kwargs: dict[str, Any]) -> None:
        why = optimiser_reason(sampler, kwargs)
        if why is not None:
            warn_not_boltzmann(f"the 'dwave' backend will not return Boltzmann samples: {why}.")

    # --- the solver -------------------------------------------------------------------
    @property
    def sampler(self):
        """The dimod sampler (builds ``DWaveSampler`` on first access when none was given)."""
        if self._sampler is None:
            self._sampler = self._connect()
            # errors of a DWaveSampler physamp built are redacted and wrapped; a SimulatedQPU's are
            # its own (range refusals, bad parameters) and pass through as they are
            self._owns_sampler = not _is_simulated_qpu(self._sampler)
            self._check_sampler_kwargs(self._sampler, self.sample_kwargs)
        return self._sampler

    def _connect(self):
        from physamp.samplers.simulated_qpu import from_spec, is_simulated_spec

        if is_simulated_spec(self.solver):  # offline: no token, nothing leaves the machine
            if self._token is not None:
                raise ValueError(
                    f"solver={self.solver!r} is the simulated QPU, which needs no token; drop the token "
                    "(or name a real solver)"
                )
            return from_spec(self.solver, topology=self.topology, seed=self.seed)
        install_log_redaction()  # before the token check: reading the config can log
        if self._token is None and not token_available():
            raise MissingTokenError(_TOKEN_HELP)
        import dwave.system

        message = None
        try:
            kw = {} if self.solver is None else {"solver": self.solver}
            if self._token is not None:
                kw["token"] = self._token.reveal()
            return dwave.system.DWaveSampler(**kw)
        except Exception as err:  # connection, auth, no such solver: re-raised redacted below
            message = redact(
                f"could not build DWaveSampler(solver={redact(repr(self.solver))}): "
                f"{type(err).__name__}: {err}. "
                "Check the network, the token's validity (`dwave ping`) and the solver name."
            )
        raise DWaveConnectionError(message)  # raised outside `except`: no chained original

    def _check_sampler_kwargs(self, sampler, kwargs: dict[str, Any]) -> None:
        check_sample_kwargs(
            sampler, kwargs, self._MANAGED, "DWaveBackend",
            why=" (num_reads from num_samples, auto_scale=False, answer_mode='raw'); scale the "
            "problem with prefactor instead",
        )  # fmt: skip

    # --- chains: an embedding composite around the solver ------------------------------
    @property
    def embedding(self) -> dict | None:
        """``{unit index: [qubits]}`` of the chain placement (None until given or found).

        Assign None to find a new one on the next call."""
        return self._embedding if self._embedder is None else self._embedder.embedding

    @embedding.setter
    def embedding(self, embedding: dict | None) -> None:
        self._embedding = None if embedding is None else {k: list(v) for k, v in embedding.items()}
        if self._embedder is not None:
            self._embedder.embedding = self._embedding

    def _chain_embedding(self, sampler):
        """The :class:`~physamp.samplers.embedding.ChainEmbeddingComposite` around ``sampler``."""
        from physamp.samplers.embedding import ChainEmbeddingComposite

        if self._embedder is None or self._embedder.child is not sampler:
            self._embedder = ChainEmbeddingComposite(sampler, self.embedding, seed=self.seed)
        return self._embedder

    @property
    def parameters(self) -> dict[str, str]:  # type: ignore[override]
        out = dict(self._OWN)
        if self._sampler is not None:
            out.update({k: "solver parameter" for k in self._sampler.parameters if k not in self._MANAGED})
        return out

    def _check_overrides(self, overrides: dict[str, Any]) -> None:
        """Per-call options: physamp's own by type and sign, the solver's against its parameters."""
        if overrides.get("prefactor") is not None:
            check_positive(overrides["prefactor"], "prefactor")
        if overrides.get("chain_strength") is not None:
            check_positive(overrides["chain_strength"], "chain_strength")
        if "estimate_temperature" in overrides:
            _check_flag("estimate_temperature", overrides["estimate_temperature"])
        if "num_reads_per_call" in overrides:
            _check_reads_cap(overrides["num_reads_per_call"])
        solver_kwargs = {k: v for k, v in overrides.items() if k not in self._OWN}
        if solver_kwargs:
            self._check_sampler_kwargs(self.sampler, solver_kwargs)

    # --- self-description (never the token) -----------------------------------------
    def _sampler_name(self) -> str:
        if self._sampler is None:
            return "DWaveSampler (not yet connected)"
        return type(self._sampler).__name__

    def _repr_options(self) -> dict[str, Any]:
        return {
            "sampler": self._sampler_name(),
            "solver": self.solver,
            "topology": None if self.topology is None else type(self.topology).__name__,
            "prefactor": self.prefactor,
            "beta_eff": self.beta_eff,
            "chain_strength": self.chain_strength,
            **({} if self._token is None else {"token": self._token}),  # shown as <redacted>
            **self.sample_kwargs,
        }

    def __repr__(self) -> str:
        return redact(super().__repr__())  # a secret passed among the solver kwargs stays hidden

    @property
    def properties(self) -> dict[str, Any]:
        out = {**super().properties, "sampler": self._sampler_name(), "solver": self.solver}
        out["placement"] = "topology" if self.topology is not None else "chains"
        if self._sampler is not None:
            p = self._sampler.properties
            out.update(
                chip_id=p.get("chip_id"),
                topology=p.get("topology"),
                h_range=self.h_range or p.get("h_range"),
                j_range=self.j_range or p.get("j_range"),
                num_reads_range=p.get("num_reads_range"),
            )
        return out

    # --- planning: every check, nothing submitted ---------------------------------
    def _prefactor(self, overrides: dict[str, Any]) -> float:
        pf = overrides.get("prefactor", self.prefactor)
        if pf is None:
            pf = 1.0 / self.beta_eff if self.beta_eff is not None else 1.0
        return check_positive(pf, "prefactor")

    def _ranges(self, sampler):
        """``(h_range, j_range)``: the backend's overrides, else the solver's properties (checked)."""
        p = sampler.properties
        hr, jr = self.h_range, self.j_range
        if hr is None and "h_range" in p:
            hr = _check_range("h_range", p["h_range"], f" (the {type(sampler).__name__}'s property)")
        if jr is None and "j_range" in p:
            jr = _check_range("j_range", p["j_range"], f" (the {type(sampler).__name__}'s property)")
        return hr, jr

    def _plan(self, params: RBMParams, num_samples: int, overrides: dict[str, Any]) -> _Plan:
        if params.batched:
            raise ValueError(
                "the D-Wave backend programs one problem per call, so it cannot give every sample "
                "its own bias vector (batched biases); sample with shared biases, or use the "
                "'dimod' backend (one call per sample) or the 'simulated' backend"
            )
        sampler = self.sampler
        kwargs = {
            **self.sample_kwargs,
            **{k: v for k, v in overrides.items() if k not in self._OWN},
        }
        pf = self._prefactor(overrides)
        nv, nh = params.n_visible, params.n_hidden
        ising = rbm_to_ising(params)
        W = params.W.detach().cpu().numpy()
        scaled = IsingRBM(pf * ising.h_visible, pf * ising.h_hidden, pf * ising.J, pf * ising.offset)
        nodes = set(sampler.nodelist)
        edges = {frozenset(e) for e in sampler.edgelist}
        hr, jr = self._ranges(sampler)

        labels = embedding = None
        chain_strength = None
        if self.topology is not None:
            topo = self.topology
            if len(topo.visible) != nv or len(topo.hidden) != nh:
                raise ValueError(
                    f"the RBM has {nv} visible x {nh} hidden units but the topology places "
                    f"{len(topo.visible)} x {len(topo.hidden)}"
                )
            labels = resolve_labels(topo, nv, nh)
            missing = [q for q in labels if q not in nodes]
            if missing:
                raise ValueError(
                    f"qubit(s) {missing[:20]} of the topology are not in the solver's graph "
                    f"({len(missing)} missing; broken or absent qubits)"
                )
            topo_mask = _as_bool_mask(getattr(topo, "mask", None), (nh, nv))
            program = topo_mask | (W != 0)
            rows, cols = np.nonzero(program)
            vis, hid = list(topo.visible), list(topo.hidden)
            absent = [
                (int(j), int(i), hid[j], vis[i])
                for j, i in zip(rows, cols, strict=True)
                if frozenset((hid[j], vis[i])) not in edges
            ]
            if absent:
                weights = [(j, i, q1, q2) for j, i, q1, q2 in absent if W[j, i] != 0]
                kind = (
                    f"nonzero weights W[j, i] on connections without a coupler: {weights[:20]}"
                    if weights
                    else f"connections the topology's mask keeps have no coupler: {absent[:20]}"
                )
                raise ValueError(
                    f"{kind} (as (hidden j, visible i, qubit, qubit); {len(absent)} in all). Mask "
                    "those weights (RBM mask = topology.mask) or build the topology from this "
                    "solver's graph."
                )
            bqm = ising_to_bqm(scaled, labels, mask=program)
            source_bqm = None
        else:
            from physamp.samplers.embedding import EmbeddingError, default_chain_strength

            prog_mask = (
                np.ones((nh, nv), dtype=bool)
                if params.mask is None
                else params.mask.detach().cpu().numpy().astype(bool)
            ) | (W != 0)
            source_bqm = ising_to_bqm(scaled, None, mask=prog_mask)
            embedder = self._chain_embedding(sampler)
            cs = overrides.get("chain_strength", self.chain_strength)
            chain_strength = default_chain_strength(source_bqm, jr) if cs is None else float(cs)
            if jr is not None and cs is not None and -chain_strength < jr[0]:
                raise ValueError(
                    f"chain_strength {chain_strength:.6g} is out of the solver's j_range {list(jr)}: chains "
                    f"are held by couplers of -chain_strength, so it must be <= {abs(jr[0]):.6g}. Lower "
                    "it (or leave it unset for the default). Nothing was submitted."
                )
            try:
                bqm = embedder.embed_bqm(source_bqm, chain_strength)
            except EmbeddingError as err:
                raise EmbeddingError(
                    f"{err} (RBM unit i is BQM variable i, visible units first; a smaller or sparser "
                    "RBM, topology=... with one qubit per unit, or another embedding=... may fit)"
                ) from err
            embedding = embedder.embedding

        h_vals = np.fromiter(bqm.linear.values(), dtype=np.float64, count=bqm.num_variables)
        j_vals = np.fromiter(bqm.quadratic.values(), dtype=np.float64, count=bqm.num_interactions)
        if not (np.isfinite(h_vals).all() and np.isfinite(j_vals).all()):
            raise ValueError(
                "the programmed problem has non-finite (NaN or infinite) biases or couplings, which no "
                "solver can program; check the RBM's parameters and the chain_strength. Nothing was "
                "submitted."
            )
        max_pf = None
        if hr is not None and jr is not None:
            # the chain couplers do not scale with the prefactor: only the problem's own values do
            j_scaled = j_vals if embedding is None else j_vals[~self._chain_coupler_mask(bqm, embedding)]
            scale = min(_max_scale(h_vals, *hr), _max_scale(j_scaled, *jr))
            max_pf = pf * scale * (1.0 - 4 * np.finfo(float).eps) if math.isfinite(scale) else math.inf
            if _out_of_range(h_vals, *hr) or _out_of_range(j_vals, *jr):
                mh = float(np.abs(h_vals).max(initial=0.0))
                mj = float(np.abs(j_vals).max(initial=0.0))
                raise ValueError(
                    f"programmed parameters are out of the solver's range: max |h| = {mh:.4g} "
                    f"(h_range {list(hr)}), max |J| = {mj:.4g} (j_range {list(jr)}) at prefactor "
                    f"{pf:.4g}. Lower the prefactor to <= {_floor_sig(max_pf):.4g}"
                    ", or keep the RBM's weights and biases within limits during training "
                    "(RBM.apply_constraints_(max_weight, max_bias)). Nothing was submitted."
                )

        reads = self._reads(sampler, num_samples, overrides)
        est = overrides.get("estimate_temperature", self.estimate_temperature)
        est = _check_flag("estimate_temperature", est)
        return _Plan(sampler, bqm, labels, embedding, source_bqm, chain_strength, pf, kwargs,
                     reads, hr, jr, max_pf, est)  # fmt: skip

    @staticmethod
    def _chain_coupler_mask(bqm, embedding: dict) -> np.ndarray:
        """Which of ``bqm.quadratic`` (in its order) are chain couplers (both qubits in one chain)."""
        owner = {q: v for v, chain in embedding.items() for q in chain}
        return np.fromiter(
            (owner.get(p) == owner.get(q) for p, q in bqm.quadratic),
            dtype=bool,
            count=bqm.num_interactions,
        )

    def _reads(self, sampler, num_samples: int, overrides: dict[str, Any]) -> list[int]:
        lo, hi = sampler.properties.get("num_reads_range", (1, num_samples))
        cap = _check_reads_cap(overrides.get("num_reads_per_call", self.num_reads_per_call))
        if cap is not None:
            if cap < max(1, lo) or cap > hi:
                raise ValueError(
                    f"num_reads_per_call={cap!r} is outside the solver's num_reads_range [{lo}, {hi}]"
                )
            hi = cap
        kwargs = {**self.sample_kwargs, **{k: v for k, v in overrides.items() if k not in self._OWN}}
        fit = _reads_within_duration(sampler.properties, kwargs)
        if fit is not None and fit < hi:
            if fit < max(1, lo):
                raise ValueError(
                    f"even {max(1, lo)} read(s) per call would run longer than the solver's "
                    f"problem_run_duration_range {list(sampler.properties['problem_run_duration_range'])} us "
                    "with these annealing_time / readout_thermalization / programming_thermalization; "
                    "shorten them. Nothing was submitted."
                )
            hi = fit  # reads split so that every call's run duration is accepted
        reads, left = [], num_samples
        while left > 0:
            n = min(left, hi)
            reads.append(max(n, lo))  # a remainder below the minimum is read and truncated
            left -= n
        return reads

    def _accepted_max_prefactor(self, params: RBMParams, num_samples: int, overrides, plan: _Plan):
        """The largest prefactor, as :meth:`sample` checks it: ``plan.max_prefactor`` lowered by
        ulps until planning at it passes the range check (values scale monotonically with it)."""
        m = plan.max_prefactor
        if m is None or not math.isfinite(m):
            return m
        for k in range(60):
            try:
                self._plan(params, num_samples, {**overrides, "prefactor": m})
                return m
            except ValueError:
                if k == 59:
                    raise
                m = m * (1.0 - 2.0 ** (k + 2) * np.finfo(float).eps)
        return m

    def dry_run(self, rbm, num_samples: int = 1000, **overrides: Any) -> DryRunReport:
        """Run every check :meth:`sample` runs (token if a DWaveSampler must be built, graph
        fit, ranges, read batching) and return a :class:`DryRunReport`; submits nothing.

        Raises exactly what ``sample`` would raise before submitting, except for the QPU
        budget, which it reports instead: ``estimated_qpu_access_time_s`` (all the calls),
        ``qpu_budget_left_s`` and ``within_budget``. ``max_prefactor`` is the largest
        prefactor ``sample`` accepts for this problem (checked by planning at it).
        """
        from physamp.energy import as_params
        from physamp.samplers.base import _check_num_samples

        num_samples = _check_num_samples(num_samples)
        self._check_overrides(overrides)
        params = as_params(rbm).validate()
        plan = self._plan(params, num_samples, overrides)
        self._precheck(plan)  # what the solver would refuse at submission
        max_pf = self._accepted_max_prefactor(params, num_samples, overrides, plan)
        h_vals = np.abs(np.fromiter(plan.bqm.linear.values(), dtype=np.float64))
        j_vals = np.abs(np.fromiter(plan.bqm.quadratic.values(), dtype=np.float64))
        chains = 1 if plan.embedding is None else max(len(c) for c in plan.embedding.values())
        assumed = self.beta_eff
        estimates, source = self._estimate_calls(plan)
        estimate = None if estimates is None else sum(estimates) * 1e-6
        left = self.qpu_budget_left
        budget = dict(
            estimated_qpu_access_time_s=estimate,
            estimate_source=source,
            qpu_budget_s=self.qpu_budget,
            qpu_spent_s=self.ledger.spent_s,
            qpu_budget_left_s=left,
            within_budget=None if left is None or estimate is None else estimate <= left,
        )
        return DryRunReport(
            **budget,
            sampler=self._sampler_name(),
            solver=plan.sampler.properties.get("chip_id"),
            placement="topology" if plan.labels is not None else "chains",
            num_samples=num_samples,
            num_qubits=plan.bqm.num_variables,
            num_couplers=plan.bqm.num_interactions,
            max_chain_length=chains,
            prefactor=plan.prefactor,
            chain_strength=plan.chain_strength,
            max_abs_h=float(h_vals.max(initial=0.0)),
            max_abs_J=float(j_vals.max(initial=0.0)),
            h_range=plan.h_range,
            j_range=plan.j_range,
            max_prefactor=max_pf,
            reads_per_call=plan.reads,
            sample_kwargs=dict(plan.kwargs),
            beta_eff_assumed=assumed,
            beta_model_assumed=None if assumed is None else assumed * plan.prefactor,
        )

    # --- QPU time: estimate, budget, ledger (physamp.samplers.qpu_budget) -----------------
    @property
    def ledger(self):
        """The :class:`~physamp.samplers.qpu_budget.QPULedger` every solver call is recorded in.

        Assign a path, a ``QPULedger`` or None (a fresh in-memory one)."""
        return self._ledger

    @ledger.setter
    def ledger(self, ledger) -> None:
        import os

        from physamp.samplers.qpu_budget import QPULedger

        if ledger is None:
            ledger = QPULedger()
        elif isinstance(ledger, (str, os.PathLike)):
            ledger = QPULedger(ledger)
        elif not isinstance(ledger, QPULedger):
            raise TypeError(
                f"ledger must be a path, a physamp.samplers.qpu_budget.QPULedger or None, got "
                f"{type(ledger).__name__}"
            )
        self._ledger = ledger

    @property
    def qpu_budget_left(self) -> float | None:
        """Seconds of QPU access time left (``qpu_budget`` minus the ledger's total); None: no budget."""
        if self.qpu_budget is None:
            return None
        return max(self.qpu_budget - self.ledger.spent_s, 0.0)

    def ledger_label_as(self, label: str):
        """``with backend.ledger_label_as("calibration"): ...``: the ledger labels the calls made
        inside with ``label`` (what they were for), then goes back to the previous label."""
        import contextlib

        @contextlib.contextmanager
        def labelled():
            old, self.ledger_label = self.ledger_label, str(label)
            try:
                yield self
            finally:
                self.ledger_label = old

        return labelled()

    def _estimate_calls(self, plan: _Plan) -> tuple[list[float] | None, str]:
        """``(µs per solver call, source)``: the access-time estimate of each call of ``plan``,
        or ``(None, why)`` when the sampler gives no estimate."""
        from physamp.samplers.qpu_budget import access_time_estimator

        estimate, source = access_time_estimator(plan.sampler)
        if estimate is None:
            return None, source
        try:
            return [estimate(plan.bqm.num_variables, n, plan.kwargs) for n in plan.reads], source
        except (KeyError, ValueError, TypeError) as err:
            return None, f"{source} failed: {redact(str(err))}"

    @staticmethod
    def _call_kwargs(plan: _Plan, num_reads: int) -> dict[str, Any]:
        """The solver parameters of one call (its seed aside): physamp fixes the scale."""
        call = dict(plan.kwargs, num_reads=num_reads)
        if "auto_scale" in plan.sampler.parameters:
            call["auto_scale"] = False
        if "answer_mode" in plan.sampler.parameters:
            call["answer_mode"] = "raw"
        return call

    def _precheck(self, plan: _Plan) -> None:
        """What the solver would refuse at submission, refused before anything is sent or charged:
        a :class:`~physamp.samplers.simulated_qpu.SimulatedQPU` runs every check of its ``sample``
        (a real QPU's own checks run on the server, after the ledger's ``submit`` record)."""
        if _is_simulated_qpu(plan.sampler):
            for n in sorted(set(plan.reads)):
                plan.sampler.check(plan.bqm, **self._call_kwargs(plan, n))

    def _submit_all(self, plan: _Plan) -> tuple[list, list[float] | None]:
        """Every solver call of ``plan``, after the budget check of all of them (nothing is sent
        when it fails); returns the samplesets and the estimates (µs per call, or None)."""
        from physamp.samplers.qpu_budget import check_budget

        self._precheck(plan)
        estimates, source = self._estimate_calls(plan)
        check_budget(
            self.qpu_budget,
            self.ledger,
            estimates,
            num_reads=sum(plan.reads),
            num_qubits=plan.bqm.num_variables,
            why_unknown=source,
            allow_unknown_cost=self.allow_unknown_cost,
        )
        calls = [None] * len(plan.reads) if estimates is None else estimates
        return [self._submit(plan, n, est) for n, est in zip(plan.reads, calls, strict=True)], estimates

    def _submit(self, plan: _Plan, num_reads: int, estimate_us: float | None = None):
        """One solver call. The ledger records it before it is sent (at its estimate) and again
        as soon as it returns (its reported ``qpu_access_time``), each record fsync'd."""
        sampler = plan.sampler
        call = self._call_kwargs(plan, num_reads)
        call.update(call_seed(self, sampler))
        entry = self.ledger.open_call(
            num_qubits=plan.bqm.num_variables,
            num_reads=num_reads,
            estimate_us=estimate_us,
            label=self.ledger_label,
            solver=sampler.properties.get("chip_id") or type(sampler).__name__,
        )
        message = None
        try:
            ss = sampler.sample(plan.bqm, **call)
            if self._owns_sampler:
                ss.resolve()
            info = ss.info  # a lazy (future) sampleset resolves here: the call is over
        except Exception as err:  # re-raised below (redacted when physamp built the sampler)
            self.ledger.fail_call(entry, err)
            if not self._owns_sampler:
                raise
            message = redact(f"D-Wave problem submission failed: {type(err).__name__}: {err}")
        else:
            self.ledger.close_call(entry, timing=info.get("timing"), problem_id=info.get("problem_id"))
            return ss
        raise DWaveConnectionError(message)

    def _sample(
        self, params: RBMParams, num_samples: int, initial: Chains | None, **overrides: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        import dimod

        plan = self._plan(params, num_samples, overrides)
        samplesets, estimates = self._submit_all(plan)  # the QPU budget is checked before any call
        raw = dimod.concatenate(samplesets) if len(samplesets) > 1 else samplesets[0]
        info: dict[str, Any] = {
            "sampler": self._sampler_name(),
            "solver": plan.sampler.properties.get("chip_id"),
            "prefactor": plan.prefactor,
            "num_calls": len(samplesets),
            "reads_per_call": plan.reads,
            "h_range": plan.h_range,
            "j_range": plan.j_range,
            "placement": "topology" if plan.labels is not None else "chains",
        }
        if plan.labels is not None:
            x = sampleset_to_units(raw, plan.labels)
        else:
            embedder = self._chain_embedding(plan.sampler)
            logical = embedder.unembed_sampleset(raw, plan.source_bqm)
            x = sampleset_to_units(logical, default_labels(params.n_visible, params.n_hidden))
            context = embedder.embedding_context(plan.chain_strength, logical, num_samples)
            info.update(
                chain_strength=context["chain_strength"],
                chain_break_fraction=context["chain_break_fraction"],
                max_chain_length=context["max_chain_length"],
            )
        x = x[:num_samples]

        timings = [dict(ss.info.get("timing", {})) for ss in samplesets]
        total: dict[str, float] = {}
        for t in timings:
            for k, v in t.items():
                if isinstance(v, (int, float)) and not k.endswith("per_sample"):
                    total[k] = total.get(k, 0.0) + float(v)
        info["qpu_timing"] = timings
        info["qpu_timing_total"] = total
        info["problem_ids"] = [ss.info["problem_id"] for ss in samplesets if "problem_id" in ss.info]
        info["qpu_access_time_estimate"] = estimates  # µs per call, before it was sent (None: unknown)
        info["qpu_budget_left_s"] = self.qpu_budget_left  # None: no budget
        info["qpu_spent_s"] = self.ledger.spent_s  # the ledger's total, this call included

        beta_eff, source = self.beta_eff, "assumed" if self.beta_eff is not None else None
        beta_std = beta_ci = None
        qubits = list(plan.bqm.variables)
        spins = 2.0 * sampleset_to_units(raw, qubits) - 1.0  # one row per read, as programmed
        few = np.unique(spins, axis=0).shape[0] <= HANDFUL
        flips = flip_energies(plan.bqm, spins, qubits) if plan.estimate_temperature or few else None
        infinite = False
        if plan.estimate_temperature:
            assert flips is not None  # computed whenever the temperature is estimated
            fit = fit_beta(flips)  # never raises on the samples: it says why when it cannot
            if fit.beta is None:  # an infinite estimate too: a warning, not a number
                infinite = fit.infinite
                info["beta_eff_error"] = f"beta_eff cannot be estimated from these samples: {fit.reason}"
            else:
                beta_eff, source = fit.beta, "pseudolikelihood"
                beta_std, beta_ci = fit.std, fit.ci
        info["beta_eff"] = beta_eff
        info["beta_eff_std"] = beta_std  # standard error over reads (None unless estimated)
        info["beta_eff_ci"] = beta_ci  # 95 % interval, beta_eff ± 1.96 std
        info["beta_eff_source"] = source
        info["beta_model"] = None if beta_eff is None else beta_eff * plan.prefactor
        info["beta_model_std"] = None if beta_std is None else beta_std * plan.prefactor
        info["beta_eff_assumed"] = self.beta_eff
        info["beta_eff_infinite"] = infinite
        # fit_beta models p ∝ exp(-beta_eff E): a solver whose reads follow a transverse-field
        # distribution (the simulated QPU with gamma > 0 reports its gamma) gets the measured bias
        info["beta_eff_assumes"] = "classical Boltzmann distribution"
        gamma = next((ss.info["gamma"] for ss in samplesets if ss.info.get("gamma")), None)
        if gamma is not None:
            from physamp.samplers.simulated_qpu import beta_eff_note

            info["solver_gamma"] = float(gamma)
            info["beta_eff_note"] = beta_eff_note(float(gamma))
        self._warn_if_not_boltzmann(plan, info, spins, flips, beta_eff, infinite)
        v, h = split_units(x, params.n_visible)
        return v, h, info

    def _warn_if_not_boltzmann(
        self, plan: _Plan, info, spins, flips, beta_eff, infinite: bool = False
    ) -> None:
        """Warn when β_eff came out infinite (every read a local minimum: ``info["beta_eff"]`` is then
        None or the assumed value, ``info["beta_eff_error"]`` says why), or the reads collapsed to a
        handful of minima."""
        if infinite:
            known = optimiser_reason(plan.sampler, plan.kwargs)
            warn_not_boltzmann(
                "the estimated beta_eff is infinite (every read is a local minimum: no single-spin flip "
                f"lowers its energy), so it is not reported (info['beta_eff'] is "
                f"{'the assumed ' + format(beta_eff, '.4g') if beta_eff is not None else 'None'}). "
                "These are not Boltzmann samples of the RBM: "
                + (
                    f"{known}."
                    if known
                    else "on a QPU the programmed energies are too large for the device's temperature "
                    "(lower the prefactor until excitations appear, e.g. with "
                    "physamp.samplers.temperature.calibrate); offline, the stand-in sampler is an "
                    "optimiser (give it a fixed-beta Boltzmann substitute)."
                )
            )
            return
        if flips is None:
            return
        # the device's β as the run assumes it: the estimate, else the believed beta_eff, else
        # the one that makes beta_model = 1 (what the default prefactor aims at)
        beta = beta_eff if beta_eff is not None and beta_eff > 0 else 1.0 / plan.prefactor
        why = collapse_warning(spins, flips, beta)
        if why is not None:
            info["collapse_warning"] = why
            warn_not_boltzmann(f"'dwave' backend: {why}.")
