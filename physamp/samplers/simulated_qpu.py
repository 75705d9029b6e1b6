"""A simulated D-Wave QPU for Ocean code: Boltzmann samples, the thesis's noise, the QPU's limits.

:class:`SimulatedQPU` is a ``dimod.Sampler`` + ``dimod.Structured`` that stands in
for ``dwave.system.DWaveSampler`` offline: the same working graphs (Chimera,
Pegasus, Zephyr, with missing qubits), the properties Ocean code reads, the
parameters it passes, the refusals it meets, the timing it is charged. Unlike
Ocean's ``MockDWaveSampler`` (which returns steepest-descent local minima, ignores
``h_range`` / ``j_range`` and adds no noise) it *samples*: every read is a draw
from the Boltzmann distribution of the programmed problem ::

    p(s) ∝ exp(-beta · E_programmed(s)),   E(s) = Σ h_i s_i + Σ J_ij s_i s_j  (dimod's signs)

at the device's inverse temperature ``beta`` (a constructor argument: the "true"
β_eff, which a user who only sees samples has to estimate, as on hardware), or with
``gamma > 0`` a draw from the transverse-field distribution a QPU's reads follow in the
freeze-out model (see "The freeze-out model" below).

What is programmed
------------------
1. The BQM (SPIN, or BINARY converted to SPIN as the QPU does) must live on the
   working graph: every variable a working qubit, every interaction a working
   coupler (:class:`dimod.exceptions.BinaryQuadraticModelStructureError` naming
   the first one that is not; Ocean's ``EmbeddingComposite`` maps other problems).
2. Ranges. With ``auto_scale=True`` (the default, as on the QPU) ``h`` and ``J``
   are divided by the one factor that brings them into ``h_range`` / ``j_range``
   using as much of them as possible (the largest of ``h_i / h_max``, ``h_i /
   h_min``, ``J_ij / j_max``, ``J_ij / j_min`` over the positive ratios; values
   need only be finite). With ``auto_scale=False`` the values are programmed as
   given, and the problem is refused (``ValueError``, before sampling, naming the
   qubit or coupler and the range) when an ``h`` lies outside ``h_range``, a ``J``
   outside ``extended_j_range``, or the sum of a qubit's couplings outside
   ``per_qubit_coupling_range`` (checked in both modes).
3. Noise, the thesis's model (§3.3) in Ising space, in programmed units:
   ``j_noise`` σ -- a Gaussian offset on each coupler, drawn once each time that
   coupler is programmed with a *new* value (programming the same value again
   keeps the offset: the noise is fixed per programmed value); ``h_noise`` σ -- a
   Gaussian offset on each qubit's field, redrawn for every read. Coupler offsets
   are a property of the device (seeded by the constructor's ``seed``), not of a
   call's ``seed``: each is hashed from the device's key, the coupler and the
   value, so the device holds no noise state and a resumed run meets the same
   offsets as an uninterrupted one. Qubits and couplers the problem does not use are not simulated.
   :attr:`SimulatedQPU.last_programmed` shows the last programmed problem, coupler
   noise included (a diagnostic a real QPU does not give).

How it samples
--------------
Block Gibbs sampling of ``p ∝ exp(-beta·E)`` over a proper colouring of the
working graph (Chimera: its bipartition ``(i + j + u) mod 2``; Pegasus and
Zephyr: a greedy colouring with 8 and 6 colours), in numpy: the qubits of one
colour share no coupler, so they are drawn together from their exact
conditionals ``P(s_i = +1 | rest) = σ(-2·beta·(h_i + η_i + Σ_j J_ij s_j))``, the
local fields of a whole colour class being one sparse (CSR) product. One chain per
read, started from uniformly random spins (the β = 0 distribution), run for
``num_sweeps`` sweeps (default 1000; a per-call parameter). Each read's field
noise ``η`` is one row of a ``(reads, qubits)`` Gaussian matrix, fixed along its
chain, so the reads sample the noise-averaged distribution exactly. Every draw is
seeded (constructor ``seed``, or a call's ``seed``).

Single-site (and block) Gibbs mixes slowly where couplings are strong against the
temperature: on a 16-qubit Chimera problem with ``J = ±1`` at ``beta = 3``, 1000
sweeps leave the mean energy of 5,000 reads about 900 standard errors from the exact one. With
``num_replicas=K > 1`` every read runs ``K`` replicas at inverse temperatures
geometric from a hot end (where ``beta`` times the largest possible local field is
1) to ``beta``, which trade temperatures after every sweep (replica exchange,
accepted with ``min(1, exp((β_k - β_k+1)(E_k - E_k+1)))``); the read is the replica
at ``beta``. The chain is then still exact at ``beta``, and mixes: on the problem
above ``K = 4`` and 100 sweeps give the exact mean energy within its standard error.
It costs about ``K`` times the sweeps; the rungs a ladder needs grow with the square
root of the number of strongly coupled qubits (the exchanges stall when
neighbouring replicas' energy distributions stop overlapping).

Why this engine and not dwave-samplers' simulated annealing at a fixed β: the
stationary distribution is the same, but SA programs one problem per call and
cannot give each read its own field noise without one call per read; the block
sweep is vectorised over reads (and replicas), and with the colouring it needs no
random site order to be a valid Gibbs chain. As on hardware nothing certifies that a
chain has mixed: raise ``num_sweeps`` or ``num_replicas`` on hard problems. Cost:
about 10-20 ns per qubit, read, replica and sweep on one CPU core (Pegasus P9, all
1,664 qubits, 1,000 reads, 100 sweeps: 2 s).

The freeze-out model: a transverse field
----------------------------------------
A QPU's reads follow, to a good approximation, the thermal state of the transverse-field
Ising Hamiltonian at the point ``s*`` where the anneal's dynamics freeze (Amin, Phys. Rev.
A 92, 052323, 2015), not the classical Boltzmann distribution. With ``gamma=Γ > 0`` the
device samples that distribution, in physamp's convention (DESIGN.md) and programmed units::

    H = E_programmed(σᶻ) − Γ Σᵢ σˣᵢ,        p_Γ(s) = ⟨s| e^{−beta·H} |s⟩ / Tr e^{−beta·H}

(``beta`` multiplies the transverse term too; Γ = 0 is the classical engine above, sample
for sample). :func:`freeze_out` turns a published anneal schedule ``A(s)``, ``B(s)`` and a
temperature into this ``(beta, gamma)``. The engine is a path-integral (Suzuki–Trotter)
sampler with ``trotter=M`` slices at ``ε = beta/M``: every qubit has a worldline of ``M``
spins around imaginary time, neighbouring slices coupled by ``J⊥ = −½ ln tanh(εΓ)``
(:mod:`physamp.samplers.worldlines`), each slice weighted by ``exp(−ε E_programmed)``. The
colouring does the rest: conditioned on the other colours' worldlines, each worldline of a
colour class is an independent periodic 1-D Ising chain whose slice ``k`` has log-odds
``−2ε (h_i + η_i + Σ_j J_ij s_j^k)`` of ``s = +1``, and such a chain is drawn exactly
(forward filtering, backward sampling), so a sweep (every colour class in turn) does not
slow down as ``M`` grows. A read is slice 0 of its worldlines: a draw of the Trotterised
model's slice marginal ``⟨s|(e^{−ε E} e^{εΓX})^M|s⟩ / Tr``, which is ``p_Γ`` up to the
Trotter error (it falls as ``1/M²`` and grows with beta, Γ and the couplings; the default
is ``M = 16``). The noise model is unchanged: coupler offsets per (coupler, programmed
value), field offsets per read, shared by the read's slices. A sweep costs about ``M``
classical sweeps: 15-45 ns per qubit, slice, read and sweep on one core of a shared machine
(Pegasus P9, all 1,664 qubits, 1,000 reads, ``M = 16``, 20 sweeps: 16-24 s, most of it in the
chains' compiled draw). Checked on a Chimera cell (tests/test_freeze_out.py): at beta = 1.5,
Γ = 1, ``M = 8``, 10,000 reads after 20 sweeps are within TV 0.047 of the exact Trotter-8
marginal (a perfect sampler exceeds 0.053 1 % of the time; Γ 30 % off is 0.11+ away), and the
Trotter error itself is 0.039, 0.010, 0.0026, 0.00065 in TV at ``M`` = 4, 8, 16, 32.
``num_replicas > 1`` is refused with ``gamma > 0`` (replica exchange is not implemented for
worldlines). ``info["gamma"]``, ``info["trotter"]`` and ``info["distribution"]`` say which
distribution a sampleset follows; :func:`physamp.samplers.dimod_io.fit_beta` (the 'dwave'
backend's β_eff) assumes the classical one, and on transverse-field reads its β̂ comes out
below beta, the reads looking hotter (β̂/β ≈ 0.6 at Γ = 1, beta = 1 on small models; the
``beta-estimation`` experiment measures it against Γ, :func:`beta_eff_note` quotes it).

Parameters (``sampler.parameters``)
-----------------------------------
Honoured: ``num_reads`` (within ``num_reads_range``; default 1, as on the QPU),
``auto_scale``, ``answer_mode`` (``'histogram'``, the QPU's default: distinct
samples with ``num_occurrences``, in order of increasing energy; ``'raw'``: one
row per read, in read order), ``seed``, ``num_sweeps`` and ``num_replicas``
(simulator extras), ``label`` (returned as ``info["problem_label"]``). Checked
against their ranges and used by the timing model only: ``annealing_time``,
``anneal_schedule`` (its last time; not together with ``annealing_time``; a
schedule starting at s = 1 is a reverse anneal and needs ``initial_state``),
``programming_thermalization``, ``readout_thermalization``,
``reduce_intersample_correlation``, ``reinitialize_state``. Accepted and *not
simulated* (a ``UserWarning`` says so unless ``parameter_warnings=False``):
``anneal_offsets``, ``flux_biases``, ``flux_drift_compensation``,
``h_gain_schedule``, ``initial_state``, ``fast_anneal``, and the shape of an
``anneal_schedule``. ``warnings`` is accepted and ignored (Ocean's composites
handle it). Anything else is refused with the list of valid parameters.

Timing
------
Every sampleset carries ``info["timing"]`` in the QPU's key names (microseconds)
and ``info["problem_id"]`` (a uuid4). The model is the cloud client's
``StructuredSolver.estimate_qpu_access_time`` applied to
``properties["problem_timing_data"]``, computed by physamp's one copy of it,
:func:`physamp.samplers.qpu_budget.access_time_breakdown` (which the QPU budget uses too);
:meth:`SimulatedQPU.estimate_qpu_access_time` computes the same number before a call,
and ``info["timing"]["qpu_access_time"]`` of the call equals it exactly
(``num_qubits`` = the number of variables of the programmed BQM). With ``n`` qubits, ``R`` reads::

    qpu_anneal_time_per_sample   = annealing_time (or the schedule's last time; default_annealing_time)
    qpu_readout_time_per_sample  = readout model at n (pwl_log_log: 10 ** interp(log10 n, q, t))
    qpu_delay_time_per_sample    = qpu_delay_time_per_sample + reverse-anneal delta
                                   + max(readout_thermalization, decorrelation time)
    qpu_sampling_time            = R · (anneal + readout + delay)
    qpu_programming_time         = typical_programming_time + reverse-anneal delta
                                   + programming_thermalization
    qpu_access_time              = qpu_sampling_time + qpu_programming_time

``qpu_access_overhead_time``, ``total_post_processing_time`` and
``post_processing_overhead_time`` are reported with fixed, documented values
(:data:`OVERHEAD_TIMES`, plus 0.1 µs per read of post-processing) and are not part
of ``qpu_access_time``. One difference from the cloud client's estimate: an explicit
``programming_thermalization=0`` or ``readout_thermalization=0`` counts as 0 µs here,
as the QPU runs it (the cloud client reads a 0 as "use the default", so its estimate
is higher by ``default_programming_thermalization``; the default readout
thermalization is 0, so there the two agree).

Graphs
------
``SimulatedQPU("chimera" | "pegasus" | "zephyr", shape=None)``. The default shape
of each family is the graph physamp's own 784 × 784 RBM topologies are laid out
on, with the same linear qubit labels, so that ``DWaveBackend(sampler=SimulatedQPU(
"pegasus"), topology=make_topology("pegasus", 784, 784))`` places one qubit per
unit: Chimera C(14, 14, 4) (``chimera_rbm(14)``), Pegasus P9 (``modern_rbm("pegasus")``
on ``pegasus_rbm(9)``), Zephyr Z(7, 4). The device sizes are ``shape=16`` for a
D-Wave 2000Q (Chimera) or an Advantage (Pegasus) and ``shape=(12, 4)`` for an
Advantage2 (Zephyr). ``missing_qubits`` (labels) and ``missing_fraction`` (a random
fraction, drawn with ``missing_seed``) remove qubits and their couplers;
``missing_couplers`` removes couplers. :data:`FAMILY_PROPERTIES` lists the ranges
of each family: an Advantage_system4.1's values (as dwave-system's
``MockDWaveSampler`` carries them) for Pegasus and Zephyr, with a 2000Q's
``h_range`` of [-2, 2] for Chimera; ``per_qubit_coupling_range`` is
``[-(d + 3), d]`` for a graph of degree ``d`` (the Advantage's [-18, 15] at
``d = 15``; Chimera [-9, 6], Zephyr [-23, 20]). ``properties=`` overrides any of them.

The 'dwave' backend
-------------------
``DWaveBackend(solver="simulated")`` builds one of these through :func:`from_spec`
(no token): ``"simulated[:FAMILY][:SHAPE][:KEY=VALUE...]"`` or a dict ``{"name":
"simulated", ...SimulatedQPU arguments}`` (:data:`SPEC_SYNTAX`); without a family the
graph is the one the backend's topology is laid out on.
"""

from __future__ import annotations

import math
import numbers
import uuid
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import dimod
import numpy as np

from physamp.samplers.qpu_budget import access_time_breakdown
from physamp.seeding import derive_seed

__all__ = [
    "SimulatedQPU",
    "FAMILIES",
    "DEFAULT_SHAPES",
    "FAMILY_PROPERTIES",
    "PROBLEM_TIMING_DATA",
    "OVERHEAD_TIMES",
    "DEFAULT_NUM_SWEEPS",
    "DEFAULT_TROTTER",
    "freeze_out",
    "beta_eff_note",
]

FAMILIES = ("chimera", "pegasus", "zephyr")

#: The graph each family is built on by default: the one physamp's 784 x 784 topologies use.
DEFAULT_SHAPES: dict[str, tuple[int, ...]] = {"chimera": (14, 14, 4), "pegasus": (9,), "zephyr": (7, 4)}

DEFAULT_NUM_SWEEPS = 1000

#: Trotter slices of the transverse-field engine (``gamma > 0``) unless ``trotter=`` says otherwise.
DEFAULT_TROTTER = 16

# problem_timing_data as published by two systems in August 2022 (the values dwave-cloud-client's
# mocks carry): a D-Wave 2000Q_6 (Chimera) and an Advantage_system4.1 (Pegasus). No Zephyr system's
# data was at hand: Zephyr uses the Advantage's.
_TIMING_ADVANTAGE = {
    "version": "1.0.0",
    "typical_programming_time": 14072.88,
    "reverse_annealing_with_reinit_prog_time_delta": 0.0,
    "reverse_annealing_without_reinit_prog_time_delta": 5.55,
    "default_programming_thermalization": 1000.0,
    "default_annealing_time": 20.0,
    "readout_time_model": "pwl_log_log",
    # log10(qubits) break points, then log10(readout time in µs) at each
    "readout_time_model_parameters": [0.0, 0.7699665876947938, 1.7242758696010096, 2.711975459489206]
    + [3.1639057672764026, 3.750276915153992, 1.539131714800995, 1.8726623164229292]
    + [2.125631787097315, 2.332672340068556, 2.371606651233025, 2.3716219271760215],
    "qpu_delay_time_per_sample": 20.54,
    "reverse_annealing_with_reinit_delay_time_delta": -4.5,
    "reverse_annealing_without_reinit_delay_time_delta": -1.5,
    "default_readout_thermalization": 0.0,
    "decorrelation_max_nominal_anneal_time": 2000.0,
    "decorrelation_time_range": [500.0, 10000.0],
}
_TIMING_2000Q = {
    **_TIMING_ADVANTAGE,
    "typical_programming_time": 10536.81,
    "reverse_annealing_without_reinit_prog_time_delta": 359.58,
    "readout_time_model_parameters": [0.0, 3.30984300471607, 2.2975416678181597, 2.2975416678181597],
    "reverse_annealing_with_reinit_delay_time_delta": 586.38,
    "reverse_annealing_without_reinit_delay_time_delta": -5.0,
}
PROBLEM_TIMING_DATA: dict[str, dict[str, Any]] = {
    "chimera": _TIMING_2000Q,
    "pegasus": _TIMING_ADVANTAGE,
    "zephyr": _TIMING_ADVANTAGE,
}

#: Times a QPU reports that are not QPU access time; fixed values here (µs).
OVERHEAD_TIMES = {"qpu_access_overhead_time": 1000.0, "post_processing_overhead_time": 200.0}
_POST_PROCESSING_PER_READ = 0.1  # µs of (energy) post-processing per read

_COMMON_PROPERTIES: dict[str, Any] = {
    "j_range": [-1.0, 1.0],
    "extended_j_range": [-2.0, 1.0],
    "num_reads_range": [1, 10000],
    "annealing_time_range": [0.5, 2000.0],
    "default_annealing_time": 20.0,
    "default_programming_thermalization": 1000.0,
    "default_readout_thermalization": 0.0,
    "programming_thermalization_range": [0.0, 10000.0],
    "readout_thermalization_range": [0.0, 10000.0],
    "problem_run_duration_range": [0.0, 10000000.0],
    "h_gain_schedule_range": [-3.0, 3.0],
    "max_anneal_schedule_points": 12,
    "max_h_gain_schedule_points": 20,
    "supported_problem_types": ["ising", "qubo"],
    "category": "qpu",
    "quota_conversion_rate": 1,
    "tags": ["simulated"],
    "vfyc": False,
}
#: Ranges per family (overridable with ``properties=``): 2000Q, Advantage, Advantage2-like.
FAMILY_PROPERTIES: dict[str, dict[str, Any]] = {
    "chimera": {
        **_COMMON_PROPERTIES,
        "h_range": [-2.0, 2.0],
        "per_qubit_coupling_range": [-9.0, 6.0],
        "annealing_time_range": [1.0, 2000.0],
    },
    "pegasus": {**_COMMON_PROPERTIES, "h_range": [-4.0, 4.0], "per_qubit_coupling_range": [-18.0, 15.0]},
    "zephyr": {**_COMMON_PROPERTIES, "h_range": [-4.0, 4.0], "per_qubit_coupling_range": [-23.0, 20.0]},
}

_DESCRIPTIONS = {
    "num_reads": "number of reads (one Boltzmann sample each), within num_reads_range",
    "auto_scale": "rescale h and J into h_range / j_range (default True)",
    "answer_mode": "'histogram' (default: distinct samples with counts) or 'raw' (one row per read)",
    "annealing_time": "anneal duration in microseconds (timing only)",
    "anneal_schedule": "[[t, s], ...] schedule (its duration counts; its shape is not simulated)",
    "programming_thermalization": "wait after programming, microseconds (timing only)",
    "readout_thermalization": "wait after each read, microseconds (timing only)",
    "reduce_intersample_correlation": "pause between reads (timing only)",
    "reinitialize_state": "reverse annealing: reset the initial state for every read (timing only)",
    "initial_state": "reverse annealing start (accepted, not simulated)",
    "anneal_offsets": "per-qubit anneal offsets (accepted, not simulated)",
    "flux_biases": "per-qubit flux biases (accepted, not simulated)",
    "flux_drift_compensation": "flux drift compensation flag (accepted, not simulated)",
    "h_gain_schedule": "time-dependent gain on h (accepted, not simulated)",
    "fast_anneal": "fast-anneal protocol flag (accepted, not simulated)",
    "label": "problem label, returned as info['problem_label']",
    "warnings": "Ocean's warning action (accepted and ignored)",
    "seed": "seed of this call's draws (simulator only)",
    "num_sweeps": "block Gibbs sweeps per read (simulator only; with the device's gamma > 0 a sweep "
    "redraws every qubit's worldline of trotter slices)",
    "num_replicas": "tempering replicas per read, 1 for plain Gibbs (simulator only; 1 with gamma > 0)",
}
_REPLICAS_WITH_GAMMA = (
    "num_replicas > 1 needs gamma = 0: replica exchange is not implemented for the transverse-field "
    "engine's worldlines; use num_replicas=1 and more num_sweeps"
)

#: Parameters that would change the distribution on hardware but are not simulated.
_NOT_SIMULATED = (
    "initial_state", "anneal_offsets", "flux_biases", "flux_drift_compensation", "h_gain_schedule",
    "fast_anneal",
)  # fmt: skip


class OutOfRangeError(ValueError):
    """A programmed value outside the solver's ranges (the QPU refuses the problem)."""


def _mix64(x: np.ndarray | np.uint64) -> np.ndarray:
    """splitmix64's finaliser on uint64 values (wrapping arithmetic): a bijection that scatters
    nearby inputs over all 64 bits."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        where = f" in [{low}, {high}]" if high is not None else (f" >= {low}" if low is not None else "")
        raise ValueError(f"{name} must be an integer{where}, got {value!r}")
    return int(value)


def _check_time(name: str, value, rng: Sequence[float]) -> float:
    lo, hi = float(rng[0]), float(rng[1])
    if not _is_real(value) or not math.isfinite(value) or not (lo <= value <= hi):
        raise ValueError(f"{name} must be a number of microseconds in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _normalise_shape(family: str, shape) -> tuple[int, ...]:
    """``shape`` as the family's full shape tuple (chimera (m, n, t), pegasus (m,), zephyr (m, t))."""
    if shape is None:
        return DEFAULT_SHAPES[family]
    dims = (shape,) if _is_int(shape) else tuple(shape) if isinstance(shape, (tuple, list)) else None
    sizes = {"chimera": (1, 2, 3), "pegasus": (1,), "zephyr": (1, 2)}[family]
    if dims is None or len(dims) not in sizes or not all(_is_int(d) and d >= 1 for d in dims):
        forms = {"chimera": "m, (m, n) or (m, n, t)", "pegasus": "m", "zephyr": "m or (m, t)"}[family]
        raise ValueError(f"a {family} shape is {forms} of positive integers, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if family == "chimera":
        m = dims[0]
        n = dims[1] if len(dims) > 1 else m
        t = dims[2] if len(dims) > 2 else 4
        return (m, n, t)
    if family == "pegasus":
        if dims[0] < 2:
            raise ValueError(f"a pegasus graph needs m >= 2, got shape {shape!r}")
        return dims
    return (dims[0], dims[1] if len(dims) > 1 else 4)


def _family_graph(family: str, shape: tuple[int, ...], node_list=None, edge_list=None):
    import dwave.graphs as dg

    if family == "chimera":
        return dg.chimera_graph(*shape, node_list=node_list, edge_list=edge_list)
    if family == "pegasus":
        return dg.pegasus_graph(shape[0], node_list=node_list, edge_list=edge_list)
    return dg.zephyr_graph(*shape, node_list=node_list, edge_list=edge_list)


def _num_qubits(family: str, shape: tuple[int, ...]) -> int:
    """The number of qubit labels (working or not), as the QPU's ``num_qubits``."""
    if family == "chimera":
        m, n, t = shape
        return 2 * m * n * t
    if family == "pegasus":
        m = shape[0]
        return 24 * m * (m - 1)
    m, t = shape
    return 4 * t * m * (2 * m + 1)


class SimulatedQPU(dimod.Sampler, dimod.Structured):
    """A Boltzmann-sampling stand-in for ``DWaveSampler``; see the module docstring.

    Args:
        topology: ``"chimera"``, ``"pegasus"`` (default) or ``"zephyr"``.
        shape: the graph's shape (default :data:`DEFAULT_SHAPES`): chimera ``m``,
            ``(m, n)`` or ``(m, n, t)``; pegasus ``m``; zephyr ``m`` or ``(m, t)``.
        beta: the device's inverse temperature in programmed units (> 0).
        j_noise: σ of the coupler offsets (drawn per new programmed value).
        h_noise: σ of the field offsets (redrawn for every read).
        num_sweeps: default block Gibbs sweeps per read.
        num_replicas: default tempering replicas per read (1: plain block Gibbs).
        gamma: the transverse field Γ >= 0 the reads are frozen out at, in programmed units
            (0, the default: classical Boltzmann reads; > 0: the transverse-field distribution
            ``p_Γ`` by the path-integral engine, see the module docstring and :func:`freeze_out`).
        trotter: Trotter slices ``M >= 2`` of the path-integral engine (used only with gamma > 0).
        missing_qubits: qubit labels absent from the working graph.
        missing_fraction: a further fraction of the qubits, removed at random (``missing_seed``).
        missing_couplers: ``(u, v)`` couplers absent from the working graph.
        missing_seed: seed of the random missing qubits (a fixed device by default).
        properties: overrides of the default properties (ranges, timing data, ...).
        parameter_warnings: warn when a parameter that is not simulated is passed.
        seed: seeds every draw of the device (None: fresh entropy).
    """

    def __init__(
        self,
        topology: str = "pegasus",
        shape: int | Sequence[int] | None = None,
        *,
        beta: float = 1.0,
        j_noise: float = 0.0,
        h_noise: float = 0.0,
        num_sweeps: int = DEFAULT_NUM_SWEEPS,
        num_replicas: int = 1,
        gamma: float = 0.0,
        trotter: int = DEFAULT_TROTTER,
        missing_qubits: Iterable[int] = (),
        missing_fraction: float = 0.0,
        missing_couplers: Iterable[tuple[int, int]] = (),
        missing_seed: int = 0,
        properties: Mapping[str, Any] | None = None,
        parameter_warnings: bool = True,
        seed: int | None = None,
    ) -> None:
        if topology not in FAMILIES:
            raise ValueError(f"unknown topology {topology!r}; a SimulatedQPU is one of {', '.join(FAMILIES)}")
        self.family = topology
        self.shape = _normalise_shape(topology, shape)
        if not (_is_real(beta) and math.isfinite(beta) and beta > 0):
            raise ValueError(
                f"beta must be a positive finite number (the device's inverse temperature), got {beta!r}"
            )
        self._beta = float(beta)
        for name, sigma in (("j_noise", j_noise), ("h_noise", h_noise)):
            if not (_is_real(sigma) and math.isfinite(sigma) and sigma >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (a standard deviation), got {sigma!r}")
        self.j_noise, self.h_noise = float(j_noise), float(h_noise)
        self.num_sweeps = _check_int("num_sweeps", num_sweeps, 1)
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        if not (_is_real(gamma) and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(
                f"gamma must be a finite number >= 0 (the transverse field Γ in programmed units; 0 for "
                f"classical Boltzmann reads), got {gamma!r}"
            )
        self._gamma = float(gamma)
        if not _is_int(trotter) or trotter < 2:
            raise ValueError(
                f"trotter must be an integer >= 2 (the Trotter slices of the transverse-field engine, "
                f"e.g. {DEFAULT_TROTTER}), got {trotter!r}"
            )
        self._trotter = int(trotter)
        if self._gamma > 0 and self.num_replicas > 1:
            raise ValueError(_REPLICAS_WITH_GAMMA)
        if not (_is_real(missing_fraction) and 0 <= missing_fraction < 1):
            raise ValueError(f"missing_fraction must be a number in [0, 1), got {missing_fraction!r}")
        self.parameter_warnings = _check_flag("parameter_warnings", parameter_warnings)
        if seed is not None:
            seed = _check_int("seed", seed)
        self.seed = seed
        self._rng = np.random.default_rng(
            None if seed is None else derive_seed(seed, "simulated-qpu", "reads")
        )
        # the coupler offsets are a pure function of (this key, coupler, programmed value): no state
        # to carry through checkpoints, so a resumed training run sees the same device
        self._noise_key = np.uint64(
            np.random.default_rng().integers(2**63)
            if seed is None
            else derive_seed(seed, "device-noise", "simulated-qpu") % 2**64
        )
        self._build_graph(missing_qubits, float(missing_fraction), missing_couplers, missing_seed)
        self._build_properties(properties)
        self._parameters = {name: ["parameters"] for name in _DESCRIPTIONS}
        self.last_programmed: dimod.BinaryQuadraticModel | None = None

    # --- the working graph -----------------------------------------------------------------
    def _build_graph(self, missing_qubits, fraction: float, missing_couplers, missing_seed) -> None:
        ideal = _family_graph(self.family, self.shape)
        nodes = set(ideal.nodes)
        missing = set()
        for q in missing_qubits:
            if not _is_int(q) or q not in nodes:
                raise ValueError(
                    f"missing qubit {q!r} is not a qubit of the {self.family} graph of shape "
                    f"{list(self.shape)} (linear labels 0..{_num_qubits(self.family, self.shape) - 1})"
                )
            missing.add(int(q))
        if fraction > 0:
            rest = np.array(sorted(nodes - missing), dtype=np.int64)
            k = int(round(fraction * len(nodes)))
            rng = np.random.default_rng(
                derive_seed(_check_int("missing_seed", missing_seed), "missing-qubits")
            )
            missing.update(int(q) for q in rng.choice(rest, size=min(k, rest.size), replace=False))
        broken = set()
        for pair in missing_couplers:
            try:
                u, v = pair
            except (TypeError, ValueError):
                raise ValueError(f"a missing coupler is a pair (u, v) of qubits, got {pair!r}") from None
            if not ideal.has_edge(u, v):
                raise ValueError(f"missing coupler {pair!r} is not a coupler of the {self.family} graph")
            broken.add((min(u, v), max(u, v)))
        self.missing_qubits = sorted(missing)
        self._nodelist = sorted(nodes - missing)
        edges = sorted(
            (min(u, v), max(u, v))
            for u, v in ideal.edges
            if u not in missing and v not in missing and (min(u, v), max(u, v)) not in broken
        )
        self._edgelist = edges
        n_labels = _num_qubits(self.family, self.shape)
        self._n_labels = n_labels
        self._index = np.full(n_labels, -1, dtype=np.int64)  # label -> position in nodelist
        self._index[np.array(self._nodelist, dtype=np.int64)] = np.arange(len(self._nodelist))
        e = np.array(edges, dtype=np.int64).reshape(-1, 2)
        self._edges = e
        self._edge_keys = e[:, 0] * n_labels + e[:, 1]  # sorted, since edges are sorted
        # a proper colouring of the ideal graph (still proper on any subgraph)
        if self.family == "chimera":
            colour = {q: (i + j + u) % 2 for q, (i, j, u, _k) in ideal.nodes(data="chimera_index")}
        else:
            import networkx as nx

            colour = nx.greedy_color(ideal, strategy="largest_first")
        self._colour = np.zeros(n_labels, dtype=np.int64)
        for q, c in colour.items():
            self._colour[q] = c
        self.num_colours = len(set(colour.values()))

    def _build_properties(self, overrides: Mapping[str, Any] | None) -> None:
        props: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in FAMILY_PROPERTIES[self.family].items()
        }
        shape = list(self.shape)
        props["chip_id"] = f"SimulatedQPU_{self.family}_{'x'.join(map(str, shape))}"
        props["topology"] = {"type": self.family, "shape": shape}
        props["num_qubits"] = self._n_labels
        props["qubits"] = list(self._nodelist)
        props["couplers"] = [list(e) for e in self._edgelist]
        working = set(self._nodelist)
        props["anneal_offset_ranges"] = [
            [-0.5, 0.5] if q in working else [0.0, 0.0] for q in range(self._n_labels)
        ]
        props["anneal_offset_step"] = -0.0001500217998314891
        props["anneal_offset_step_phi0"] = 1.4303846404537006e-05
        props["problem_timing_data"] = dict(PROBLEM_TIMING_DATA[self.family])
        props["parameters"] = dict(_DESCRIPTIONS)
        # the simulator's own key (a QPU has none): which distribution the reads follow
        props["simulated_distribution"] = self.distribution
        if overrides:
            fixed = {"qubits", "couplers", "topology", "num_qubits"} & set(overrides)
            if fixed:
                raise ValueError(
                    f"properties {sorted(fixed)} follow from the graph; choose topology, shape and "
                    "missing_* instead"
                )
            props.update(overrides)
        self._properties = props

    @property
    def beta(self) -> float:
        """The device's inverse temperature in programmed units: what samples of a real QPU only let
        you estimate (read-only; for whoever built the device, e.g. to check an estimator)."""
        return self._beta

    @property
    def gamma(self) -> float:
        """The transverse field Γ the reads are frozen out at, in programmed units (0: classical
        Boltzmann reads); read-only, like :attr:`beta`."""
        return self._gamma

    @property
    def trotter(self) -> int:
        """Trotter slices of the transverse-field engine (used only when :attr:`gamma` > 0)."""
        return self._trotter

    @property
    def distribution(self) -> str:
        """One line naming the distribution the reads follow (also ``info["distribution"]``)."""
        if self._gamma == 0:
            return (
                f"classical Boltzmann p(s) ∝ exp(-beta·E(s)) of the programmed problem at beta = "
                f"{self._beta:.6g}"
            )
        return (
            f"transverse-field Boltzmann p(s) = <s|exp(-beta·H)|s>/Tr exp(-beta·H), H = E(σᶻ) - Γ Σ σˣ, "
            f"of the programmed problem at beta = {self._beta:.6g}, Γ = {self._gamma:.6g} (path "
            f"integral with {self._trotter} Trotter slices; not the classical Boltzmann distribution)"
        )

    @property
    def nodelist(self) -> list[Hashable]:
        """Working qubits, sorted."""
        return self._nodelist

    @property
    def edgelist(self) -> list[tuple[Hashable, Hashable]]:
        """Working couplers ``(u, v)`` with ``u < v``, sorted."""
        return self._edgelist

    @property
    def properties(self) -> dict[str, Any]:
        return self._properties

    @property
    def parameters(self) -> dict[str, list]:
        return self._parameters

    def to_networkx_graph(self):
        """The working graph as a dwave.graphs graph (coordinates and family metadata included)."""
        return _family_graph(self.family, self.shape, node_list=self._nodelist, edge_list=self._edgelist)

    def __repr__(self) -> str:
        missing = f", {len(self.missing_qubits)} missing qubits" if self.missing_qubits else ""
        quantum = f", gamma={self._gamma:g}, trotter={self._trotter}" if self._gamma > 0 else ""
        return f"SimulatedQPU({self.family!r}, shape={self.shape}{quantum}{missing})"

    # --- timing ------------------------------------------------------------------------------
    def _timing(self, num_qubits: int, num_reads: int = 1, **parameters: Any) -> dict[str, float]:
        """``info["timing"]`` of a call: the QPU part from the one timing model,
        :func:`physamp.samplers.qpu_budget.access_time_breakdown` (``parameters`` are its
        keyword parameters), on this solver's ``problem_timing_data``, plus the fixed
        overheads (not part of ``qpu_access_time``)."""
        data = self.properties["problem_timing_data"]
        timing = access_time_breakdown(data, num_qubits, num_reads, **parameters)
        post = _POST_PROCESSING_PER_READ * num_reads
        return {
            **timing,
            "qpu_access_overhead_time": OVERHEAD_TIMES["qpu_access_overhead_time"],
            "total_post_processing_time": post + OVERHEAD_TIMES["post_processing_overhead_time"],
            "post_processing_overhead_time": OVERHEAD_TIMES["post_processing_overhead_time"],
        }

    def estimate_qpu_access_time(
        self,
        num_qubits: int,
        num_reads: int = 1,
        annealing_time: float | None = None,
        anneal_schedule: Sequence[Sequence[float]] | None = None,
        initial_state=None,
        reverse_anneal: bool = False,
        reinitialize_state: bool = False,
        programming_thermalization: float | None = None,
        readout_thermalization: float | None = None,
        reduce_intersample_correlation: bool = False,
        **kwargs: Any,
    ) -> float:
        """QPU access time (µs) of a call with these parameters on a problem of ``num_qubits``
        qubits: the cloud client's ``StructuredSolver.estimate_qpu_access_time`` on this
        solver's ``problem_timing_data`` (but an explicit 0 thermalization is 0 µs; see the
        module docstring), and exactly ``info["timing"]["qpu_access_time"]`` of that call
        (``num_qubits`` = the BQM's number of variables). Other keyword arguments
        (solver parameters that take no time) are accepted and ignored, as the cloud client does;
        so is ``reverse_anneal`` (a reverse anneal is read from ``anneal_schedule``).
        """
        _check_int("num_qubits", num_qubits, 0)
        _check_int("num_reads", num_reads, 1)
        return self._timing(
            num_qubits, num_reads, annealing_time=annealing_time, anneal_schedule=anneal_schedule,
            initial_state=initial_state, reinitialize_state=reinitialize_state,
            programming_thermalization=programming_thermalization,
            readout_thermalization=readout_thermalization,
            reduce_intersample_correlation=reduce_intersample_correlation,
        )["qpu_access_time"]  # fmt: skip

    # --- checks ------------------------------------------------------------------------------
    def _check_parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(self._parameters))
        if unknown:
            raise ValueError(
                f"SimulatedQPU has no parameter(s) {unknown}; its parameters are: "
                f"{', '.join(sorted(self._parameters))}"
            )
        p = self.properties
        lo, hi = p["num_reads_range"]
        out: dict[str, Any] = {
            "num_reads": _check_int("num_reads", kwargs.get("num_reads", 1), int(lo), int(hi))
        }
        out["auto_scale"] = _check_flag("auto_scale", kwargs.get("auto_scale", True))
        mode = kwargs.get("answer_mode", "histogram")
        if mode not in ("raw", "histogram"):
            raise ValueError(f"answer_mode must be 'raw' or 'histogram', got {mode!r}")
        out["answer_mode"] = mode
        seed = kwargs.get("seed")
        out["seed"] = None if seed is None else _check_int("seed", seed, 0)
        out["num_sweeps"] = _check_int("num_sweeps", kwargs.get("num_sweeps", self.num_sweeps), 1)
        out["num_replicas"] = _check_int("num_replicas", kwargs.get("num_replicas", self.num_replicas), 1)
        if self._gamma > 0 and out["num_replicas"] > 1:
            raise ValueError(_REPLICAS_WITH_GAMMA)
        timing: dict[str, Any] = {}
        if kwargs.get("annealing_time") is not None:
            timing["annealing_time"] = _check_time(
                "annealing_time", kwargs["annealing_time"], p["annealing_time_range"]
            )
        schedule = kwargs.get("anneal_schedule")
        if schedule is not None:
            timing["anneal_schedule"] = self._check_schedule(schedule)
        for name in ("programming_thermalization", "readout_thermalization"):
            if kwargs.get(name) is not None:
                timing[name] = _check_time(name, kwargs[name], p[f"{name}_range"])
        for name in ("reduce_intersample_correlation", "reinitialize_state"):
            if name in kwargs:
                timing[name] = _check_flag(name, kwargs[name])
        if kwargs.get("initial_state") is not None:
            timing["initial_state"] = kwargs["initial_state"]
        out["timing"] = timing
        label = kwargs.get("label")
        if label is not None and not isinstance(label, str):
            raise ValueError(f"label must be a string, got {label!r}")
        out["label"] = label
        out["ignored"] = [k for k in _NOT_SIMULATED if kwargs.get(k) is not None]
        if schedule is not None:
            out["ignored"].append("anneal_schedule (its shape)")
        return out

    def _check_schedule(self, schedule) -> list[tuple[float, float]]:
        p = self.properties
        try:
            points = [(float(t), float(s)) for t, s in schedule]
        except (TypeError, ValueError):
            raise ValueError(f"anneal_schedule must be a list of [t, s] pairs, got {schedule!r}") from None
        lo, hi = p["annealing_time_range"]
        if not 2 <= len(points) <= p["max_anneal_schedule_points"]:
            raise ValueError(
                f"anneal_schedule needs 2 to {p['max_anneal_schedule_points']} points, got {len(points)}"
            )
        times = [t for t, _ in points]
        if points[0][0] != 0 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError(f"anneal_schedule times must start at 0 and increase, got {times}")
        if not all(0.0 <= s <= 1.0 for _, s in points) or not lo <= times[-1] <= hi:
            raise ValueError(
                f"anneal_schedule must keep s in [0, 1] and end within annealing_time_range [{lo:g}, {hi:g}]"
            )
        return points

    def _problem(self, bqm) -> tuple:
        """``(variables, labels, h, row, col, edge, J)`` of a SPIN BQM on the working graph: ``row`` /
        ``col`` index ``variables`` for each interaction, ``edge`` its coupler in ``edgelist``."""
        from dimod.exceptions import BinaryQuadraticModelStructureError

        variables = list(bqm.variables)
        bad = [v for v in variables if not (_is_int(v) and 0 <= v < self._n_labels and self._index[v] >= 0)]
        if bad:
            raise BinaryQuadraticModelStructureError(
                f"variable {bad[0]!r} of the BQM is not a working qubit of {self!r} ({len(bad)} such "
                "variables); the problem must use qubit labels of sampler.nodelist. Map other problems "
                "with dwave.system.EmbeddingComposite(sampler)"
            )
        labels = np.array(variables, dtype=np.int64)
        h, (row, col, J), _ = bqm.to_numpy_vectors(variable_order=variables)
        a, b = labels[row], labels[col]
        keys = np.minimum(a, b) * self._n_labels + np.maximum(a, b)
        pos = np.searchsorted(self._edge_keys, keys)
        pos_c = np.minimum(pos, max(len(self._edge_keys) - 1, 0))
        ok = (
            (pos < len(self._edge_keys)) & (self._edge_keys[pos_c] == keys)
            if len(self._edge_keys)
            else np.zeros(len(keys), bool)
        )
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise BinaryQuadraticModelStructureError(
                f"interaction ({int(min(a[i], b[i]))}, {int(max(a[i], b[i]))}) of the BQM is not a working "
                f"coupler of {self!r} "
                f"({int((~ok).sum())} such interactions); map the problem with "
                "dwave.system.EmbeddingComposite(sampler)"
            )
        h, J = np.asarray(h, dtype=np.float64), np.asarray(J, dtype=np.float64)
        return variables, labels, h, np.asarray(row, np.int64), np.asarray(col, np.int64), pos, J

    def _program(self, variables, h, row, col, edge, J, auto_scale: bool):
        """Scale (or check) ``h``, ``J``; returns the programmed ``(h, J)`` before noise."""
        p = self.properties
        if not (np.isfinite(h).all() and np.isfinite(J).all()):
            raise ValueError("the BQM has NaN or infinite biases, which no QPU can program")
        h_lo, h_hi = (float(x) for x in p["h_range"])
        if auto_scale:
            j_lo, j_hi = (float(x) for x in p["j_range"])
            ratios = [0.0]
            for vals, lo, hi in ((h, h_lo, h_hi), (J, j_lo, j_hi)):
                if vals.size:
                    ratios += [float(vals.max()) / hi, float(vals.min()) / lo]
            scale = max(ratios)
            if scale > 0:
                h, J = h / scale, J / scale
        else:
            e_lo, e_hi = (float(x) for x in p["extended_j_range"])
            for vals, lo, hi, what in ((h, h_lo, h_hi, "h_range"), (J, e_lo, e_hi, "extended_j_range")):
                bad = np.flatnonzero((vals < lo) | (vals > hi))
                if bad.size:
                    i = int(bad[0])
                    where = (
                        f"qubit {variables[i]!r}: h = {vals[i]:.6g}"
                        if what == "h_range"
                        else f"coupler {tuple(int(q) for q in self._edges[edge[i]])}: J = {vals[i]:.6g}"
                    )
                    raise OutOfRangeError(
                        f"problem refused: {where} is outside {what} [{lo:g}, {hi:g}] with auto_scale=False "
                        f"({bad.size} such value(s)); scale the problem into range or use auto_scale=True"
                    )
        # the sum of each qubit's couplings, as programmed
        if J.size:
            c_lo, c_hi = (float(x) for x in p["per_qubit_coupling_range"])
            sums = np.bincount(row, J, len(variables)) + np.bincount(col, J, len(variables))
            bad = np.flatnonzero((sums < c_lo - 1e-12) | (sums > c_hi + 1e-12))
            if bad.size:
                i = int(bad[0])
                raise OutOfRangeError(
                    f"problem refused: the couplings of qubit {variables[i]!r} sum to {sums[i]:.6g}, outside "
                    f"per_qubit_coupling_range [{c_lo:g}, {c_hi:g}] ({bad.size} such qubit(s)); weaken them"
                )
        return h, J

    def _coupler_noise(self, edge: np.ndarray, J: np.ndarray) -> np.ndarray:
        """The coupler offsets for programmed values ``J`` on couplers ``edge``: one N(0, j_noise²)
        draw per (coupler, programmed value), the same draw whenever that value is programmed again.

        Counter-based: the draw is hashed from the device's noise key, the coupler's index and the
        value's 64 bits (splitmix64, then Box-Muller), so it needs no cache and no random stream —
        nothing a checkpoint would have to carry for a resumed run to see the same device.
        """
        if self.j_noise == 0 or not edge.size:
            return np.zeros_like(J)
        bits = (np.asarray(J, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 reads as 0.0
        with np.errstate(over="ignore"):
            key = _mix64(self._noise_key ^ _mix64(edge.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
            key = _mix64(key ^ bits)
            u1 = (_mix64(key) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            u2 = (_mix64(key ^ np.uint64(0xD1B54A32D192ED03)) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)  # u1 < 1: log1p(-u1) finite
        return self.j_noise * normal

    # --- the sampler ---------------------------------------------------------------------------
    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Boltzmann samples of ``bqm`` as programmed (see the module docstring): classical ones, or
        the transverse-field distribution's with the device's ``gamma > 0``.

        Returns a ``SampleSet`` in the BQM's vartype and labels, energies of the BQM as given
        (unscaled, without noise), ``info["timing"]`` and ``info["problem_id"]``.
        """
        if not isinstance(bqm, dimod.BinaryQuadraticModel):
            raise TypeError(
                f"SimulatedQPU.sample needs a dimod.BinaryQuadraticModel, got {type(bqm).__name__} "
                "(use sample_ising(h, J) or sample_qubo(Q) for dicts)"
            )
        opts, variables, labels, h, row, col, edge, h_p, J_p, timing = self._accept(bqm, parameters)
        J_eff = J_p + self._coupler_noise(edge, J_p)
        self.last_programmed = dimod.BinaryQuadraticModel.from_numpy_vectors(
            h_p, (row, col, J_eff), 0.0, dimod.SPIN, variable_order=variables
        )
        if opts["ignored"] and self.parameter_warnings:  # every check passed: say what is not simulated
            warnings.warn(
                f"SimulatedQPU accepts {opts['ignored']} but does not simulate them: the reads are "
                "Boltzmann samples of the programmed problem whatever they say (parameter_warnings=False "
                "silences this)",
                UserWarning,
                stacklevel=2,
            )
        rng = np.random.default_rng(opts["seed"]) if opts["seed"] is not None else self._rng
        if self._gamma > 0:
            spins = self._path_integral(
                labels, h_p, row, col, J_eff, opts["num_reads"], opts["num_sweeps"], rng
            )
        else:
            spins = self._gibbs(
                labels, h_p, row, col, J_eff, opts["num_reads"], opts["num_sweeps"], opts["num_replicas"], rng
            )
        return self._sampleset(bqm, variables, spins, opts, timing)

    def check(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dict[str, float]:
        """Every refusal :meth:`sample` would raise for this call (parameters, graph, ranges, run
        duration), without sampling; returns the call's timing (µs). A QPU refuses such a problem
        when it is submitted, before it runs; a backend that spends QPU time against a budget
        calls this first, so a refused problem is never charged."""
        if not isinstance(bqm, dimod.BinaryQuadraticModel):
            raise TypeError(
                f"SimulatedQPU.check needs a dimod.BinaryQuadraticModel, got {type(bqm).__name__}"
            )
        return self._accept(bqm, parameters)[-1]

    def _accept(self, bqm, parameters: dict[str, Any]) -> tuple:
        """The checked call: options, the SPIN problem's arrays, the programmed values, the timing."""
        opts = self._check_parameters(dict(parameters))
        spin = bqm if bqm.vartype is dimod.SPIN else bqm.change_vartype(dimod.SPIN, inplace=False)
        variables, labels, h, row, col, edge, J = self._problem(spin)
        timing = self._timing(len(variables), opts["num_reads"], **opts["timing"])
        self._check_duration(opts)
        h_p, J_p = self._program(variables, h, row, col, edge, J, opts["auto_scale"])
        return opts, variables, labels, h, row, col, edge, h_p, J_p, timing

    def _check_duration(self, opts: dict[str, Any]) -> None:
        """The QPU's problem_run_duration_range check, on its duration
        ``(anneal + readout_thermalization) · num_reads + programming_thermalization``."""
        p, t = self.properties, opts["timing"]
        d = p["problem_timing_data"]
        if "annealing_time" in t:
            anneal = t["annealing_time"]
        elif "anneal_schedule" in t:
            anneal = t["anneal_schedule"][-1][0]
        else:
            anneal = d["default_annealing_time"]
        rt = t.get("readout_thermalization", d["default_readout_thermalization"])
        pt = t.get("programming_thermalization", d["default_programming_thermalization"])
        duration = (anneal + rt) * opts["num_reads"] + pt
        lo, hi = p["problem_run_duration_range"]
        if not lo <= duration <= hi:
            raise ValueError(
                f"problem refused: its run duration (annealing_time + readout_thermalization) x num_reads + "
                f"programming_thermalization = {duration:.6g} us is outside problem_run_duration_range "
                f"[{lo:g}, {hi:g}]; use fewer reads or shorter anneals"
            )

    def _ladder(self, h: np.ndarray, row, col, J: np.ndarray, replicas: int) -> np.ndarray:
        """Inverse temperatures of the replicas, geometric from a hot end to ``beta`` (the last).

        The hot end is where the largest possible local field ``|h_i| + Σ_j |J_ij|`` is 1 / beta
        units of thermal energy: a replica there flips freely whatever its neighbours do.
        """
        if replicas == 1:
            return np.array([self._beta])
        field = np.abs(h) + np.bincount(row, np.abs(J), len(h)) + np.bincount(col, np.abs(J), len(h))
        hot = min(self._beta, 1.0 / max(float(field.max(initial=0.0)), 1e-12))
        return hot * (self._beta / hot) ** (np.arange(replicas) / (replicas - 1))

    def _layout(self, labels, h, row, col, J) -> tuple:
        """``(where, A, blocks, h_sorted)``: the qubits sorted by colour (``where[i]`` is qubit ``i``'s
        row), the symmetric coupling matrix ``A`` (CSR, float32) in that order, each colour class's
        ``(first row, end row, its rows of A)``, and the fields in that order (float32)."""
        import scipy.sparse as sp

        n = len(labels)
        colour = self._colour[labels]
        order = np.argsort(colour, kind="stable")  # qubits of one colour contiguous
        where = np.empty(n, dtype=np.int64)
        where[order] = np.arange(n)
        r, c = where[row], where[col]
        A = sp.csr_matrix(
            (np.concatenate([J, J]).astype(np.float32), (np.concatenate([r, c]), np.concatenate([c, r]))),
            shape=(n, n),
        )
        sorted_colour = colour[order]
        cuts = np.flatnonzero(np.diff(sorted_colour)) + 1
        bounds = list(zip(np.r_[0, cuts], np.r_[cuts, n], strict=True))
        blocks = [(int(a), int(b), A[a:b]) for a, b in bounds]
        return where, A, blocks, h[order].astype(np.float32)

    def _gibbs(
        self, labels, h, row, col, J, num_reads: int, num_sweeps: int, replicas: int, rng
    ) -> np.ndarray:
        """``(num_reads, n)`` ±1 spins, columns in ``labels`` order: block Gibbs over the colouring,
        with ``replicas`` tempering replicas per read when ``replicas > 1`` (see the module doc)."""
        import torch

        n = len(labels)
        if n == 0:
            return np.zeros((num_reads, 0), dtype=np.int8)
        where, A, blocks, h_sorted = self._layout(labels, h, row, col, J)
        betas = self._ladder(h, row, col, J, replicas)
        one = np.float32(1.0)
        out = np.empty((n, num_reads), dtype=np.int8)
        chunk = max(1, min(num_reads, (1 << 21) // (n * replicas)))
        for start in range(0, num_reads, chunk):
            m = min(chunk, num_reads - start)
            cols = m * replicas  # column k * m + i: replica k of read i (until replicas swap places)
            S = np.where(rng.random((n, cols), dtype=np.float32) < 0.5, one, -one)
            if self.h_noise > 0:  # one field-noise row per read, shared by its replicas
                noise = np.float32(self.h_noise) * rng.standard_normal((n, m), dtype=np.float32)
                H = np.tile(h_sorted[:, None] + noise, (1, replicas))
            else:
                H = np.broadcast_to(h_sorted[:, None], (n, cols))
            # the temperature of each column, and which column holds temperature k of read i
            factor = np.repeat((-2.0 * betas).astype(np.float32), m)[None, :]
            holder = np.arange(cols).reshape(replicas, m)
            for sweep in range(num_sweeps):
                for a, b, Ak in blocks:
                    F = Ak @ S  # local fields of one colour class: a (class, columns) float32 array
                    F += H[a:b]
                    F *= factor
                    torch.from_numpy(F).sigmoid_()  # P(s = +1 | rest), in place (torch's is vectorised)
                    U = rng.random((b - a, cols), dtype=np.float32)
                    np.subtract(F, U, out=F)  # > 0 exactly when U < P
                    np.copysign(one, F, out=S[a:b])
                if replicas > 1:
                    self._exchange(A, S, H, factor, holder, betas, sweep % 2, rng)
            coldest = holder[-1]
            out[:, start : start + m] = S[:, coldest]
        return out[where].T  # back to labels order, one row per read

    def _path_integral(self, labels, h, row, col, J, num_reads: int, num_sweeps: int, rng) -> np.ndarray:
        """``(num_reads, n)`` ±1 spins, columns in ``labels`` order: slice 0 of each read's worldlines
        after ``num_sweeps`` sweeps of the path-integral engine at ``(beta, gamma, trotter)``.

        Worldlines are ``(n, M, reads)`` ±1 arrays (qubits sorted by colour); a sweep draws every
        colour class's worldlines exactly, given the others, as periodic chains with slice log-odds
        ``−2ε (h_i + η_i + Σ_j J_ij s_j^k)`` and slice coupling ``J⊥`` (see the module docstring).
        Every draw follows from ``rng``: the chains' uniforms from a torch generator seeded by it
        once per call (:func:`~physamp.samplers.worldlines.sample_periodic_chains`' own stream).
        """
        import torch

        from physamp.samplers.worldlines import sample_periodic_chains, trotter_coupling

        n = len(labels)
        if n == 0:
            return np.zeros((num_reads, 0), dtype=np.int8)
        where, A, blocks, h_sorted = self._layout(labels, h, row, col, J)
        M = self._trotter
        coupling = trotter_coupling(self._gamma, self._beta, M)
        factor = np.float32(-2.0 * self._beta / M)  # log-odds of s = +1 per unit of local field
        one = np.float32(1.0)
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        out = np.empty((n, num_reads), dtype=np.int8)
        chunk = max(1, min(num_reads, (1 << 21) // (n * M)))
        for start in range(0, num_reads, chunk):
            m = min(chunk, num_reads - start)
            # worldlines start constant at uniformly random spins (any start is valid for the chain)
            S = np.repeat(np.where(rng.random((n, 1, m), dtype=np.float32) < 0.5, one, -one), M, axis=1)
            flat = S.reshape(n, M * m)  # a view: column k * m + i is slice k of read i
            if self.h_noise > 0:  # one field-noise row per read, shared by its slices
                noise = np.float32(self.h_noise) * rng.standard_normal((n, m), dtype=np.float32)
                H = (h_sorted[:, None] + noise)[:, None, :]
            else:
                H = h_sorted[:, None, None]
            for _ in range(num_sweeps):
                for a, b, Ak in blocks:
                    F = (Ak @ flat).reshape(b - a, M, m)  # local fields of one colour class, every slice
                    F += H[a:b]
                    F *= factor
                    # (M, class, m) views of the fields and of this class's worldlines: the draw writes
                    # {0, 1} into S in place, then s = 2x − 1 there (no copies)
                    Sk = S[a:b]
                    logits = torch.from_numpy(F).permute(1, 0, 2)
                    sample_periodic_chains(
                        logits, coupling, generator=generator, out=torch.from_numpy(Sk).permute(1, 0, 2)
                    )
                    Sk *= 2.0
                    Sk -= 1.0
            out[:, start : start + m] = S[:, 0, :]
        return out[where].T  # back to labels order, one row per read

    @staticmethod
    def _exchange(A, S, H, factor, holder, betas, parity: int, rng) -> None:
        """Replica exchange between neighbouring temperatures (pairs ``(k, k+1)``, ``k = parity,
        parity + 2, ...``) of every read, accepted with ``min(1, exp((β_k - β_k+1)(E_k - E_k+1)))``:
        the columns keep their states and trade temperatures."""
        G = A @ S
        G *= np.float32(0.5)
        G += H
        G *= S
        energy = G.sum(axis=0, dtype=np.float64)  # E of each column (offset dropped: it cancels)
        for k in range(parity, len(betas) - 1, 2):
            ca, cb = holder[k], holder[k + 1]
            log_accept = (betas[k] - betas[k + 1]) * (energy[ca] - energy[cb])
            swap = np.log(rng.random(len(ca))) < log_accept
            if swap.any():
                fa, fb = factor[0, ca[swap]].copy(), factor[0, cb[swap]].copy()
                factor[0, ca[swap]], factor[0, cb[swap]] = fb, fa
                holder[k, swap], holder[k + 1, swap] = cb[swap], ca[swap]

    def _sampleset(self, bqm, variables, spins: np.ndarray, opts, timing) -> dimod.SampleSet:
        values = spins if bqm.vartype is dimod.SPIN else ((spins + 1) // 2).astype(np.int8)
        energies = bqm.energies((values, variables)) if variables else np.full(len(values), bqm.offset)
        info: dict[str, Any] = {"timing": timing, "problem_id": str(uuid.uuid4())}
        # the simulator's own keys (a QPU reports none): the distribution the reads follow
        info["gamma"] = self._gamma
        info["trotter"] = self._trotter if self._gamma > 0 else None
        info["distribution"] = self.distribution
        if opts["label"] is not None:
            info["problem_label"] = opts["label"]
        if opts["answer_mode"] == "raw":
            return dimod.SampleSet.from_samples((values, variables), bqm.vartype, energies, info=info)
        uniq, first, counts = np.unique(values, axis=0, return_index=True, return_counts=True)
        e = energies[first]
        rank = np.lexsort((first, e))  # increasing energy; ties in order of first appearance
        return dimod.SampleSet.from_samples(
            (uniq[rank], variables), bqm.vartype, e[rank], info=info, num_occurrences=counts[rank]
        )


# --- the freeze-out model: (beta, gamma) from an anneal schedule --------------------------------
PLANCK = 6.62607015e-34  #: J·s (exact in the SI since 2019)
BOLTZMANN = 1.380649e-23  #: J/K (exact in the SI since 2019)


def _schedule_value(schedule, s: float, name: str) -> float:
    if callable(schedule):
        value = schedule(s)
    else:
        try:
            points = np.asarray(schedule, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
            raise ValueError(
                f"{name} must be a callable s -> GHz or a list of (s, GHz) points (two or more), got "
                f"{schedule!r}"
            )
        s_grid, values = points[:, 0], points[:, 1]
        if np.any(np.diff(s_grid) <= 0) or not (s_grid[0] <= s <= s_grid[-1]):
            raise ValueError(
                f"{name}'s s values must increase and cover s_star = {s:g} (they span "
                f"[{s_grid[0]:g}, {s_grid[-1]:g}])"
            )
        value = np.interp(s, s_grid, values)
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}(s_star) must be a finite energy >= 0 in GHz, got {value!r}")
    return value


def freeze_out(schedule_A, schedule_B, s_star: float, temperature_K: float) -> tuple[float, float]:
    """``(beta_eff, gamma_freeze)`` of a QPU whose reads freeze out at ``s_star``: the ``beta`` and
    ``gamma`` of a :class:`SimulatedQPU` that samples as that QPU does in the freeze-out model.

    D-Wave writes its anneal Hamiltonian as ``H(s) = −A(s)/2 Σᵢ σˣᵢ + B(s)/2 E_programmed(σᶻ)``
    with ``A``, ``B`` energies in GHz (``E / h``), and publishes them per solver as the anneal
    schedule. Thermal at the physical temperature ``T`` and frozen at ``s*`` (Amin, Phys. Rev. A 92,
    052323, 2015), the reads follow ``exp(−H(s*) / k_B T)``, which is physamp's
    ``exp(−beta_eff (E_programmed − gamma_freeze Σ σˣ))`` with, per programmed (dimensionless)
    unit of ``h`` and ``J``::

        beta_eff     = h · B(s*) · 10⁹ Hz / (2 k_B T)      (h · 1 GHz / k_B = 0.04799 K)
        gamma_freeze = A(s*) / B(s*)

    (e.g. ``B = 4 GHz``, ``T = 12 mK``: ``beta_eff = 8.0``).

    Args:
        schedule_A, schedule_B: ``A(s)`` and ``B(s)`` in GHz, each a callable of ``s`` or a list
            of ``(s, GHz)`` points (the published schedule's columns; interpolated linearly).
        s_star: the freeze-out point, in [0, 1].
        temperature_K: the physical temperature in kelvin (> 0).
    """
    if not (_is_real(s_star) and 0.0 <= s_star <= 1.0):
        raise ValueError(f"s_star must be a number in [0, 1] (the freeze-out point), got {s_star!r}")
    if not (_is_real(temperature_K) and math.isfinite(temperature_K) and temperature_K > 0):
        raise ValueError(
            f"temperature_K must be a positive temperature in kelvin (e.g. 0.012), got {temperature_K!r}"
        )
    a = _schedule_value(schedule_A, float(s_star), "schedule_A")
    b = _schedule_value(schedule_B, float(s_star), "schedule_B")
    if b <= 0:
        raise ValueError(f"schedule_B(s_star) must be > 0 GHz (the problem's energy scale), got {b!r}")
    beta_eff = PLANCK * b * 1e9 / (2.0 * BOLTZMANN * float(temperature_K))
    return beta_eff, a / b


def beta_eff_note(gamma: float) -> str:
    """The 'dwave' backend's ``info["beta_eff_note"]`` for reads that follow the transverse-field
    distribution at ``gamma``: the classical β_eff estimator's bias there, as measured by the
    ``beta-estimation`` experiment (quick preset; its infinite-read limit on exact ``p_Γ`` of
    rbm-6x4-w1 and ising-10-w1, and the simulated QPU's own reads of chimera-1-w1)."""
    return (
        f"the reads follow a transverse-field distribution (gamma = {gamma:.4g} in programmed units), but "
        "beta_eff is fitted under a classical Boltzmann assumption, so it comes out below the device's "
        "beta (the reads look hotter): measured on small random models at beta = 1, beta_eff/beta is "
        "0.95-0.96 at gamma = 0.25, 0.82-0.86 at 0.5, 0.58-0.63 at 1 and 0.32-0.36 at 2, and lower at "
        "larger beta (0.62-0.70 at gamma = 0.25, beta = 3); see the beta-estimation experiment"
    )


# --- the 'dwave' backend's offline solver: SimulatedQPU from a spec ------------------------------
#: Options a spec may set, with the SimulatedQPU argument they become.
SPEC_OPTIONS = (
    "topology", "shape", "beta", "gamma", "trotter", "j_noise", "h_noise", "num_sweeps", "num_replicas",
    "missing_qubits", "missing_fraction", "missing_couplers", "missing_seed", "properties",
    "parameter_warnings", "seed",
)  # fmt: skip
_SPEC_SCALARS = ("beta", "gamma", "trotter", "j_noise", "h_noise", "num_sweeps", "num_replicas",
                 "missing_fraction", "missing_seed", "seed")  # fmt: skip
SPEC_SYNTAX = (
    "'simulated', 'simulated:FAMILY', 'simulated:FAMILY:SHAPE' or with ':KEY=VALUE' parts (FAMILY one of "
    "chimera, pegasus, zephyr; SHAPE like 16, 14x14x4 or 7x4; KEY one of " + ", ".join(_SPEC_SCALARS) + "), "
    "e.g. 'simulated:pegasus:beta=2.5' or 'simulated:pegasus:gamma=0.3:trotter=16', or a dict "
    "{'name': 'simulated', 'topology': ..., 'beta': ...} "
    "with keys among " + ", ".join(SPEC_OPTIONS)
)


def is_simulated_spec(spec) -> bool:
    """Whether a ``solver`` value names the simulated QPU: a string starting with ``"simulated"``
    or a dict whose ``"name"`` is ``"simulated"`` (anything else names a real solver)."""
    if isinstance(spec, str):
        return spec.strip().lower().startswith("simulated")
    return isinstance(spec, Mapping) and spec.get("name") == "simulated"


def _parse_spec_string(spec: str) -> dict[str, Any]:
    import ast

    head, *parts = [p.strip() for p in spec.strip().split(":")]
    if head.lower() != "simulated":
        raise ValueError(
            f"unknown simulated solver spec {spec!r}: it must start with 'simulated:'. {SPEC_SYNTAX}"
        )
    out: dict[str, Any] = {}
    for part in parts:
        key, eq, raw = part.partition("=")
        if eq:
            key = key.strip()
            if key not in _SPEC_SCALARS:
                raise ValueError(f"unknown option {key!r} in solver spec {spec!r}. {SPEC_SYNTAX}")
            try:
                out[key] = ast.literal_eval(raw.strip())
            except (ValueError, SyntaxError):
                raise ValueError(f"option {key}={raw!r} in solver spec {spec!r} is not a number") from None
        elif part.lower() in FAMILIES:
            out["topology"] = part.lower()
        elif part and all(d.isdigit() for d in part.lower().split("x")):
            out["shape"] = tuple(int(d) for d in part.lower().split("x"))
        else:
            raise ValueError(f"cannot read {part!r} in solver spec {spec!r}. {SPEC_SYNTAX}")
    return out


def _topology_graph(topology) -> tuple[str | None, tuple[int, ...] | None]:
    """``(family, shape)`` of the graph a physamp topology is laid out on (None if unknown)."""
    meta = getattr(getattr(topology, "graph", None), "graph", None)
    if not isinstance(meta, Mapping) or meta.get("family") not in FAMILIES:
        return None, None
    keys = {"chimera": ("rows", "columns", "tile"), "pegasus": ("rows",), "zephyr": ("rows", "tile")}
    family = meta["family"]
    try:
        return family, tuple(int(meta[k]) for k in keys[family])
    except (KeyError, TypeError, ValueError):
        return family, None


def spec_options(spec) -> dict[str, Any]:
    """The :class:`SimulatedQPU` arguments a ``solver`` spec names, read without building the device
    (so a backend can refuse an unreadable spec when it is constructed). Raises ``ValueError``."""
    if isinstance(spec, str):
        return _parse_spec_string(spec)
    if isinstance(spec, Mapping) and spec.get("name") == "simulated":
        options = {k: v for k, v in spec.items() if k != "name"}
        unknown = sorted(set(options) - set(SPEC_OPTIONS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in solver spec {spec!r}. {SPEC_SYNTAX}")
        return options
    raise ValueError(f"{spec!r} is not a simulated solver spec. {SPEC_SYNTAX}")


def from_spec(spec, *, topology=None, seed: int | None = None) -> SimulatedQPU:
    """The :class:`SimulatedQPU` a ``solver`` spec of the 'dwave' backend names (see :data:`SPEC_SYNTAX`).

    Without a family (or a shape) in the spec, the graph is the one ``topology`` (a physamp
    :class:`~physamp.topology.Topology`) is laid out on, so that its qubit labels are the
    simulated device's; with neither, the default Pegasus P9. ``seed`` seeds the device unless
    the spec sets its own.
    """
    options = spec_options(spec)
    family, shape = _topology_graph(topology)
    if "topology" not in options:
        options["topology"] = family or "pegasus"
        if family is not None and "shape" not in options:
            options["shape"] = shape
    elif options["topology"] == family and "shape" not in options:
        options["shape"] = shape
    if seed is not None and "seed" not in options:
        options["seed"] = seed
    return SimulatedQPU(**options)
