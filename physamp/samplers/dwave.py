"""A D-Wave quantum annealer (or any structured dimod sampler) as a physamp backend.

What is programmed
------------------
The RBM becomes an Ising problem by Eq. 3.1 (:func:`physamp.ising.rbm_to_ising`,
dimod's SPIN convention) and is programmed as ``prefactor · (h, J)`` with
``auto_scale=False`` and ``answer_mode='raw'``: physamp, not the solver, fixes the
scale. A device that samples ``p ∝ exp(-β_eff · E_programmed)`` then samples the
RBM at ``β_model = β_eff · prefactor``. ``prefactor`` defaults to ``1 / beta_eff``
when a (believed) ``beta_eff`` is given, so that β_model ≈ 1, and to 1.0 otherwise.
Programmed values outside the solver's ``h_range`` / ``j_range`` raise
``ValueError`` before anything is submitted. With ``estimate_temperature`` the
device's β_eff is measured on every call by maximum pseudo-likelihood
(``dwave.system.temperatures.maximum_pseudolikelihood_temperature``) and reported
as ``info["beta_eff"]`` with ``info["beta_model"] = beta_eff · prefactor``.

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
``dwave config create``). The token is never stored, printed, logged, put in a
repr, ``info``, a report or an exception. Check a job without submitting it::

    backend = DWaveBackend(topology=chimera_rbm(16), prefactor=0.5)
    print(backend.dry_run(rbm, num_samples=10_000))

Offline, any structured dimod sampler stands in for the QPU, e.g. a
``MockDWaveSampler`` whose substitute is simulated annealing held at β = 1 with
Gibbs acceptance (it then samples ``exp(-E_programmed)`` exactly, β_eff = 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import IsingRBM, default_labels, ising_to_bqm, rbm_to_ising, resolve_labels
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.dimod_io import (
    call_seed,
    check_sample_kwargs,
    check_structured,
    sampleset_to_units,
    split_units,
)

# the token helpers live in physamp.samplers.redact; imported here by their old names, and
# looked up here at call time (so monkeypatching physamp.samplers.dwave.token_available works)
from physamp.samplers.redact import (  # noqa: F401  (re-exported)
    _TOKEN_PATTERN,
    _config_token,
    _redact,
    install_log_redaction,
    redact,
    token_available,
)

__all__ = ["DWaveBackend", "DryRunReport", "MissingTokenError", "DWaveConnectionError"]

_TOKEN_HELP = (
    "No D-Wave Leap API token is configured, so DWaveSampler cannot be built. Set one with "
    "`export DWAVE_API_TOKEN=<your token>` or `dwave config create` (token from "
    "https://cloud.dwavesys.com/leap), or pass any dimod sampler as DWaveBackend(sampler=...) "
    "(e.g. dwave.system.testing.MockDWaveSampler) to work offline."
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


def _max_scale(values: np.ndarray, lo: float, hi: float) -> float:
    """Largest s with ``lo <= s * values <= hi`` elementwise (inf for all-zero values)."""
    pos, neg = values[values > 0], values[values < 0]
    s = math.inf
    if pos.size:
        s = min(s, hi / pos.max())
    if neg.size:
        s = min(s, lo / neg.min())
    return s


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

    @property
    def num_calls(self) -> int:
        return len(self.reads_per_call)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_calls": self.num_calls}

    def __str__(self) -> str:
        lines = [f"DWaveBackend dry run: nothing submitted ({self.sampler}, solver {self.solver})"]
        for k, v in self.to_dict().items():
            if k not in ("sampler", "solver"):
                lines.append(f"  {k:20s} {v}")
        return "\n".join(lines)


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
        solver: solver name or filter for the lazily built ``DWaveSampler``.
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
        solver: str | dict | None = None,
        seed: int | None = None,
        **sample_kwargs: Any,
    ) -> None:
        super().__init__(seed=seed)
        if topology is not None and embedding is not None:
            raise ValueError("give either a topology (one qubit per unit) or an embedding (chains)")
        for nm, val in (("prefactor", prefactor), ("beta_eff", beta_eff)):
            if val is not None and not (np.isfinite(val) and val > 0):
                raise ValueError(f"{nm} must be a positive finite number, got {val!r}")
        if sampler is not None:
            check_structured(sampler, "sampler", "Wrap unstructured samplers with the 'dimod' backend.")
            self._check_sampler_kwargs(sampler, sample_kwargs)
        self._sampler = sampler
        self._owns_sampler = False
        self._embedder = None  # ChainEmbeddingComposite around the solver, built on first use
        self.topology = topology
        self.embedding = embedding
        self.chain_strength = chain_strength
        self.prefactor = prefactor
        self.beta_eff = beta_eff
        self.h_range = None if h_range is None else tuple(float(x) for x in h_range)
        self.j_range = None if j_range is None else tuple(float(x) for x in j_range)
        self.num_reads_per_call = num_reads_per_call
        self.estimate_temperature = bool(estimate_temperature)
        self.solver = solver
        self.sample_kwargs = dict(sample_kwargs)

    # --- the solver -------------------------------------------------------------------
    @property
    def sampler(self):
        """The dimod sampler (builds ``DWaveSampler`` on first access when none was given)."""
        if self._sampler is None:
            self._sampler = self._connect()
            self._owns_sampler = True
            self._check_sampler_kwargs(self._sampler, self.sample_kwargs)
        return self._sampler

    def _connect(self):
        if not token_available():
            raise MissingTokenError(_TOKEN_HELP)
        install_log_redaction()
        import dwave.system

        message = None
        try:
            kw = {} if self.solver is None else {"solver": self.solver}
            return dwave.system.DWaveSampler(**kw)
        except Exception as err:  # connection, auth, no such solver: re-raised redacted below
            message = redact(
                f"could not build DWaveSampler(solver={self.solver!r}): "
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
            **self.sample_kwargs,
        }

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
        if not (np.isfinite(pf) and pf > 0):
            raise ValueError(f"prefactor must be a positive finite number, got {pf!r}")
        return float(pf)

    def _ranges(self, sampler):
        p = sampler.properties
        hr = self.h_range or (tuple(p["h_range"]) if "h_range" in p else None)
        jr = self.j_range or (tuple(p["j_range"]) if "j_range" in p else None)
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
        max_pf = None
        if hr is not None and jr is not None:
            scale = min(_max_scale(h_vals, *hr), _max_scale(j_vals, *jr))
            max_pf = pf * scale
            if scale < 1.0:
                mh = float(np.abs(h_vals).max(initial=0.0))
                mj = float(np.abs(j_vals).max(initial=0.0))
                raise ValueError(
                    f"programmed parameters are out of the solver's range: max |h| = {mh:.4g} "
                    f"(h_range {list(hr)}), max |J| = {mj:.4g} (j_range {list(jr)}) at prefactor "
                    f"{pf:.4g}. Lower the prefactor to <= {max_pf:.4g}"
                    + (" (and the chain_strength)" if embedding is not None else "")
                    + ", or keep the RBM's weights and biases within limits during training "
                    "(RBM.apply_constraints_(max_weight, max_bias)). Nothing was submitted."
                )

        reads = self._reads(sampler, num_samples, overrides)
        est = bool(overrides.get("estimate_temperature", self.estimate_temperature))
        return _Plan(sampler, bqm, labels, embedding, source_bqm, chain_strength, pf, kwargs,
                     reads, hr, jr, max_pf, est)  # fmt: skip

    def _reads(self, sampler, num_samples: int, overrides: dict[str, Any]) -> list[int]:
        lo, hi = sampler.properties.get("num_reads_range", (1, num_samples))
        cap = overrides.get("num_reads_per_call", self.num_reads_per_call)
        if cap is not None:
            if not isinstance(cap, int) or cap < max(1, lo) or cap > hi:
                raise ValueError(
                    f"num_reads_per_call={cap!r} is outside the solver's num_reads_range [{lo}, {hi}]"
                )
            hi = cap
        reads, left = [], num_samples
        while left > 0:
            n = min(left, hi)
            reads.append(max(n, lo))  # a remainder below the minimum is read and truncated
            left -= n
        return reads

    def dry_run(self, rbm, num_samples: int = 1000, **overrides: Any) -> DryRunReport:
        """Run every check :meth:`sample` runs (token if a DWaveSampler must be built, graph
        fit, ranges, read batching) and return a :class:`DryRunReport`; submits nothing.

        Raises exactly what ``sample`` would raise before submitting.
        """
        from physamp.energy import as_params
        from physamp.samplers.base import _check_num_samples

        num_samples = _check_num_samples(num_samples)
        self._check_overrides(overrides)
        plan = self._plan(as_params(rbm).validate(), num_samples, overrides)
        h_vals = np.abs(np.fromiter(plan.bqm.linear.values(), dtype=np.float64))
        j_vals = np.abs(np.fromiter(plan.bqm.quadratic.values(), dtype=np.float64))
        chains = 1 if plan.embedding is None else max(len(c) for c in plan.embedding.values())
        assumed = self.beta_eff
        return DryRunReport(
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
            max_prefactor=plan.max_prefactor,
            reads_per_call=plan.reads,
            sample_kwargs=dict(plan.kwargs),
            beta_eff_assumed=assumed,
            beta_model_assumed=None if assumed is None else assumed * plan.prefactor,
        )

    # --- the call ---------------------------------------------------------------------
    def _submit(self, plan: _Plan, num_reads: int):
        sampler = plan.sampler
        call = dict(plan.kwargs, num_reads=num_reads)
        if "auto_scale" in sampler.parameters:
            call["auto_scale"] = False
        if "answer_mode" in sampler.parameters:
            call["answer_mode"] = "raw"
        call.update(call_seed(self, sampler))
        if not self._owns_sampler:
            return sampler.sample(plan.bqm, **call)
        message = None
        try:
            ss = sampler.sample(plan.bqm, **call)
            ss.resolve()
            return ss
        except Exception as err:  # re-raised redacted below
            message = redact(f"D-Wave problem submission failed: {type(err).__name__}: {err}")
        raise DWaveConnectionError(message)

    def _sample(
        self, params: RBMParams, num_samples: int, initial: Chains | None, **overrides: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        import dimod

        plan = self._plan(params, num_samples, overrides)
        samplesets = [self._submit(plan, n) for n in plan.reads]
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

        beta_eff, source = self.beta_eff, "assumed" if self.beta_eff is not None else None
        if plan.estimate_temperature:
            try:
                from dwave.system.temperatures import maximum_pseudolikelihood_temperature

                T, _ = maximum_pseudolikelihood_temperature(plan.bqm, raw)
                beta_eff = math.inf if T <= 0 else 1.0 / float(T)
                source = "pseudolikelihood"
            except Exception as err:  # keep the samples; report why there is no estimate
                info["beta_eff_error"] = f"{type(err).__name__}: {err}"
        info["beta_eff"] = beta_eff
        info["beta_eff_source"] = source
        info["beta_model"] = None if beta_eff is None else beta_eff * plan.prefactor
        info["beta_eff_assumed"] = self.beta_eff
        v, h = split_units(x, params.n_visible)
        return v, h, info
