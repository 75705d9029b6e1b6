"""OpenJij (``pip install "physamp[openjij]"``) as a second annealer SDK: ``make_sampler("openjij")``.

OpenJij's ``SQASampler`` (simulated quantum annealing: path-integral Monte Carlo on Trotter
slices) and ``SASampler`` (classical simulated annealing) are dimod samplers built to *optimise*.
This backend uses them as *samplers* of physamp's distributions at one fixed point:

- ``method="sqa"`` (default): the transverse-field distribution of DESIGN.md,
  ``H = H_Ising − Γ Σᵢ σˣᵢ`` over all visible and hidden spins,
  ``p_Γ(s) = ⟨s|e^{−βH}|s⟩ / Tr e^{−βH}``, with ``H_Ising`` the Ising form of the RBM
  (Eq. 3.1, dimod's signs, ``s = 2x − 1``; it differs from the RBM energy by a constant);
- ``method="sa"``: the classical distribution ``p ∝ exp(−βE)`` (Γ = 0).

OpenJij's semantics (read from openjij 0.12's source)
-----------------------------------------------------
``SQASampler`` simulates ``H(s) = s·H_p + Γ_oj (1 − s) Σᵢ σˣᵢ`` at inverse temperature ``β_oj``
with ``M = trotter`` slices (the sign of the σˣ term changes no diagonal element of
``e^{−βH}``: conjugating by ``Πᵢ σᶻᵢ`` flips it). A schedule is a list of
``(s, β_oj, one_mc_step)`` (or ``(s, one_mc_step)`` at the call's ``beta``); each entry runs
``one_mc_step`` sweeps at that point, a sweep being one Metropolis attempt per spin and slice
(even slices, then odd). At a point, a worldline configuration ``{sᵢᵗ}`` has the weight

    exp( −(s β_oj / M) Σₜ E(sᵗ) + J⊥ Σₜ Σᵢ sᵢᵗ sᵢᵗ⁺¹ ),   J⊥ = −½ ln tanh(β_oj Γ_oj (1 − s) / M),

periodic in ``t`` (``E`` the Ising energy without its offset). The transverse field enters only
through ``β_oj Γ_oj (1 − s) / M``; ``gamma`` is fixed for the call. This backend runs one
schedule entry, ``(s, β_oj, one_mc_step) = (½, 2β, steps)``, with ``Γ_oj = Γ``: then
``β_oj H(½) = βH`` exactly (the factors ½ and 2 are exact in floating point), the slice weight is
``exp(−ε Σₜ E(sᵗ) + J⊥ Σ sᵢᵗ sᵢᵗ⁺¹)`` with ``ε = β/M`` and ``J⊥ = −½ ln tanh(εΓ)`` -- physamp's
Suzuki–Trotter form (DESIGN.md) -- and the marginal of any one slice is
``⟨s|(e^{−εH_Ising} e^{εΓX})^M|s⟩ / Tr(...)``, which tends to ``p_Γ`` as ``M → ∞`` (the Trotter
error falls ~4x per doubling of ``M`` on small models). ``SASampler``'s schedule is a list of
``(β, one_mc_step)`` of sequential-scan Metropolis sweeps; ``method="sa"`` runs ``[(β, steps)]``.

Three traps of OpenJij's defaults, and what this backend does about them:

1. **Identical reads.** ``sample(..., num_reads=N, seed=k)`` re-seeds every read with the same
   ``k`` and resets it to the same initial state, so all ``N`` reads are the same chain (without
   ``seed``, each read draws from ``std::random_device``: independent but not reproducible). Here
   every read gets its own 31-bit seed drawn from the sampler's generator (``seed`` gives the
   generator, :meth:`~physamp.samplers.base.Sampler.generator`): reads differ, and a seeded
   sampler repeats its calls.
2. **Annealing to ground states.** Without ``schedule``, ``SQASampler`` ramps ``s`` from 0 to 1
   (a quartic schedule at ``β = 5``), ending where the transverse field vanishes, and ``SASampler``
   raises β geometrically to a large ``beta_max``: the reads are (near-)ground states. Here the
   schedule is the single fixed point above: no anneal.
3. **The lowest slice.** ``SQASampler`` reports, for each read, the slice of lowest classical
   energy among the ``M`` (OpenJij's ``get_solution``), a biased pick. Here a read is slice 0 of
   its worldline (``info["system"][r]["trotter_state"]`` in OpenJij's response holds all slices);
   every slice has the same marginal.

Persistent chains
-----------------
OpenJij's ``initial_state`` is *one classical state per call*: it is copied into all ``M``
slices, and every read of the call restarts from it. So chains cannot continue through the
dimod-style ``sample`` with ``num_reads > 1``. This backend (``api="cxxjij"``, the default)
drives the routine that ``SQASampler.sample`` ends in -- OpenJij's compiled
``make_transverse_ising`` system and ``Algorithm_SingleSpinFlip_run`` (``make_classical_ising``
for ``"sa"``), with the same schedule objects -- once per call, resetting the system to each
read's own start: with ``persistent=True`` each read continues its **full worldline** (all ``M``
slices) from the previous call; any other start (a first call, an ``initial=`` that is not the
chains' own slice 0) is a classical state copied into every slice, as OpenJij does. ``api="sampler"``
goes through the public ``SQASampler.sample`` / ``SASampler.sample`` instead, one call per read
(``num_reads=1``, the read's seed and start): the same reads for the same seeds when the starts
are classical, but a persistent chain there restarts from its classical slice 0 (its worldline's
other slices are lost), and every call rebuilds OpenJij's graph and scores all ``M`` slices (1.7x
the CPU time of ``"cxxjij"`` on a 64x64 RBM, 8 slices, 100 sweeps). Either way each read is one
call of OpenJij's compiled algorithm, which costs ~0.15 ms beyond its sweeps.

Threads: OpenJij parallelises the slices of a sweep with OpenMP, fork and join on every sweep.
``num_threads=1`` (default) runs OpenJij on one OpenMP thread during the call (through
``threadpoolctl`` when it is installed, else OpenJij's bundled OpenMP runtime by ``ctypes``), then
restores the setting; ``None`` leaves ``OMP_NUM_THREADS`` in charge. On a shared 2-core machine two
threads made a 5-spin, 8-slice read 30x slower (14.7 ms instead of 0.5 ms for 60 sweeps) and a
64x64 one 3.5x slower.
"""

from __future__ import annotations

import contextlib
import numbers
import time
from typing import Any

import numpy as np
import torch

from physamp.energy import RBMParams
from physamp.ising import to_ising_arrays
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.quantum import DEFAULT_TROTTER as QUANTUM_DEFAULT_TROTTER
from physamp.samplers.quantum import check_trotter
from physamp.samplers.quantum_exact import check_gamma

__all__ = ["OpenJijBackend", "openjij_point", "import_openjij", "INSTALL_HINT"]

INSTALL_HINT = 'the "openjij" sampler needs OpenJij, an optional extra: pip install "physamp[openjij]"'

#: OpenJij's annealing parameter at the fixed point (see the module docstring): ``β_oj = β / s``.
S_POINT = 0.5
#: Default number of Trotter slices (the ``quantum`` backend's default too).
DEFAULT_TROTTER = QUANTUM_DEFAULT_TROTTER  # the same default as `quantum`
METHODS = ("sqa", "sa")
APIS = ("cxxjij", "sampler")


def import_openjij():
    """``openjij`` (with its compiled ``cxxjij``), or one ``ImportError`` line saying how to install it."""
    try:
        import openjij
        import openjij.cxxjij  # noqa: F401  (the compiled core the samplers run)
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    return openjij


@contextlib.contextmanager
def _openmp_threads(num_threads: int | None, openjij_module):
    """Run the block with OpenJij's OpenMP on ``num_threads`` threads (None: leave it); yields the
    limit that was applied, or None when none could be (no threadpoolctl and no runtime found)."""
    if num_threads is None:
        yield None
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=num_threads, user_api="openmp"):
            yield num_threads
        return
    runtime = _bundled_openmp(openjij_module)
    if runtime is None:
        yield None
        return
    before = runtime.omp_get_max_threads()
    runtime.omp_set_num_threads(num_threads)
    try:
        yield num_threads
    finally:
        runtime.omp_set_num_threads(before)


def _bundled_openmp(openjij_module):
    """The OpenMP runtime OpenJij's wheel bundles (``openjij.libs/lib*omp*``), by ctypes, or None."""
    import ctypes
    from pathlib import Path

    folder = Path(openjij_module.__file__).resolve().parent.parent / "openjij.libs"
    for path in sorted(folder.glob("lib*omp*")):
        try:
            lib = ctypes.CDLL(str(path))
            lib.omp_get_max_threads.restype = ctypes.c_int
            lib.omp_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def openjij_point(beta: float, gamma: float) -> tuple[float, float, float]:
    """OpenJij's ``(s, β_oj, Γ_oj)`` whose SQA samples physamp's ``e^{−βH}``: ``(½, 2β, Γ)``.

    OpenJij's slice weight depends on ``s β_oj / M`` (classical part) and
    ``β_oj Γ_oj (1 − s) / M`` (transverse part); both equal physamp's ``β/M`` and ``βΓ/M`` here.
    """
    return S_POINT, float(beta) / S_POINT, float(gamma)


def _check_int(value, name: str, minimum: int, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({what}), got {value!r}")
    return int(value)


def _check_steps(steps) -> int:
    return _check_int(steps, "steps", 1, "Monte Carlo sweeps per call, OpenJij's one_mc_step")


class OpenJijBackend(Sampler):
    """OpenJij's SQA (or SA) at a fixed ``(β, Γ)``: samples of ``p_Γ`` (or ``p ∝ e^{−βE}``).

    Args:
        steps: sweeps per call (OpenJij's ``one_mc_step`` of the one schedule entry; default 1000).
            A sweep of SQA visits every spin of every slice once; from a random start the
            single-spin moves need more sweeps as ``trotter`` or the couplings grow.
        gamma: transverse field Γ >= 0 (:func:`~physamp.samplers.quantum_exact.check_gamma`).
            Required for ``"sqa"`` and > 0 there (at Γ = 0 OpenJij's slice coupling is infinite and
            no spin can flip: use ``method="sa"``); ``"sa"`` is classical: None or 0.
        beta: inverse temperature of the protocol (1 samples the model itself); it multiplies the
            transverse term too.
        trotter: number M of Trotter slices (an int >= 2; default 16), ``ε = β/M``. Ignored by ``"sa"``.
        method: ``"sqa"`` (``SQASampler``; default) or ``"sa"`` (``SASampler`` at fixed β).
        persistent: keep the chains (full worldlines with ``api="cxxjij"``) and continue them next call.
        api: ``"cxxjij"`` (OpenJij's compiled system and algorithm, one system per call; default)
            or ``"sampler"`` (the public ``SQASampler.sample`` / ``SASampler.sample``, one call per read).
        sparse: OpenJij's interaction graph: ``True`` (``CSRSparse``, what ``sample_ising`` builds;
            default: it stores only the RBM's couplers, ~10 % faster on a dense 64x64 RBM) or
            ``False`` (``Dense``, what ``SQASampler.sample`` builds from a dimod BQM).
        num_threads: OpenMP threads of OpenJij's sweeps during a call (default 1; None: leave
            ``OMP_NUM_THREADS`` in charge). See the module docstring.
        seed: seed of the sampler's generator; every read gets its own seed drawn from it.

    ``info`` holds the settings, ``openjij_schedule`` (the schedule handed to OpenJij, as tuples),
    ``openjij_point`` (``s, beta, gamma`` on OpenJij's side), ``slice`` (the slice returned: 0),
    ``continued`` (``"worldlines"``, ``"classical"`` or None for a fresh random start),
    ``num_threads`` (the OpenMP limit applied), ``openjij_time_s`` (time inside OpenJij's runs) and
    ``setup_time_s`` (the rest: the problem, the starts, the loop's bookkeeping).
    """

    name = "openjij"
    parameters = {
        "steps": "Monte Carlo sweeps in this call (OpenJij's one_mc_step)",
        "beta": "inverse temperature (multiplies the transverse field too)",
        "gamma": "transverse field Γ (> 0 for method='sqa'; 0 for 'sa')",
    }
    uses_chains = True
    steps_option = "steps"
    supports_persistent = True

    def __init__(
        self,
        steps: int = 1000,
        *,
        gamma: float | None = None,
        beta: float = 1.0,
        trotter: int = DEFAULT_TROTTER,
        method: str = "sqa",
        persistent: bool = False,
        api: str = "cxxjij",
        sparse: bool = True,
        num_threads: int | None = 1,
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        if method not in METHODS:
            raise ValueError(
                f"method must be 'sqa' (quantum, SQASampler) or 'sa' (classical), got {method!r}"
            )
        if api not in APIS:
            raise ValueError(
                f"api must be 'cxxjij' (OpenJij's compiled system, one per call) or 'sampler' "
                f"(SQASampler.sample / SASampler.sample, one call per read), got {api!r}"
            )
        if not isinstance(sparse, (bool, np.bool_)):
            raise ValueError(f"sparse must be True (CSRSparse graph) or False (Dense graph), got {sparse!r}")
        self.method, self.api, self.sparse = method, api, bool(sparse)
        if num_threads is not None:
            num_threads = _check_int(
                num_threads, "num_threads", 1, "OpenMP threads of OpenJij's sweeps, or None"
            )
        self.num_threads = num_threads
        self.steps = _check_steps(steps)
        self.beta = beta  # checked by the protocol (Sampler.beta)
        self.trotter = check_trotter(trotter)
        if gamma is None and method == "sqa":
            raise ValueError(
                "the 'openjij' sampler with method='sqa' needs gamma, the transverse field Γ > 0 (e.g. "
                "make_sampler('openjij', gamma=1.0, trotter=16)); for Γ = 0 use method='sa'"
            )
        self.gamma = self._check_method_gamma(0.0 if gamma is None else gamma)
        self._oj = import_openjij()  # after the options: a bad option reads the same with or without it
        self._worldlines: np.ndarray | None = None  # (N, M, n) int8 spins of the persistent chains

    # --- options ------------------------------------------------------------------------------
    def _check_method_gamma(self, gamma) -> float:
        gamma = check_gamma(gamma)
        if self.method == "sa" and gamma != 0.0:
            raise ValueError(
                f"method='sa' is OpenJij's classical SASampler (Γ = 0), got gamma={gamma!r}; use "
                "method='sqa' for a transverse field, or leave gamma out"
            )
        if self.method == "sqa" and gamma == 0.0:
            raise ValueError(
                "method='sqa' needs gamma > 0: at Γ = 0 OpenJij's slice coupling −½ ln tanh(0) is "
                "infinite and no spin can flip; use method='sa' for the classical distribution"
            )
        return gamma

    def _repr_options(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "gamma": self.gamma,
            "beta": self.beta,
            "trotter": self.trotter,
            "method": self.method,
            "persistent": self.persistent,
        }

    @property
    def properties(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {**super().properties, "method": self.method, "api": self.api, "openjij": version("openjij")}

    # --- chains: the worldlines travel with the classical slice the base class keeps ----------------
    @property
    def worldlines(self) -> torch.Tensor | None:
        """The persistent chains' worldlines ``(N, M, n)`` in {−1, +1} (visible spins first), or None."""
        return None if self._worldlines is None else torch.from_numpy(self._worldlines.copy())

    def reset_chains(self) -> None:
        super().reset_chains()
        self._worldlines = None

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self._worldlines is not None:
            sd["worldlines"] = torch.from_numpy(self._worldlines.copy())
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict(sd)
        w = sd.get("worldlines")
        self._worldlines = None if w is None else w.detach().cpu().numpy().astype(np.int8)

    # --- the problem as OpenJij's interaction matrix ----------------------------------------------
    @staticmethod
    def _ising(params: RBMParams) -> tuple[np.ndarray, np.ndarray]:
        """``(upper, fields)``: the ``(n+1, n+1)`` upper-triangular interaction matrix OpenJij's graphs
        take (``J`` between visible ``i`` and hidden ``n_visible + j``; the fields in the last column
        against OpenJij's dummy spin, set to 1 there) and the fields ``(B, n)`` (B = 1 unless the
        biases are batched, one row per read)."""
        W = params.W.detach().to("cpu", torch.float64)
        if params.mask is not None:
            W = W * params.mask.detach().cpu().to(torch.float64)
        b = params.b.detach().to("cpu", torch.float64)
        c = params.c.detach().to("cpu", torch.float64)
        h_v, h_h, J, _ = to_ising_arrays(W.numpy(), b.numpy(), c.numpy())
        nv, nh = params.n_visible, params.n_hidden
        n = nv + nh
        upper = np.zeros((n + 1, n + 1))
        upper[:nv, nv:n] = J.T  # coupler (visible i, hidden j) = J[j, i]
        upper[n, n] = 1.0
        h_v, h_h = np.atleast_2d(h_v), np.atleast_2d(h_h)
        rows = max(h_v.shape[0], h_h.shape[0])
        fields = np.concatenate([np.broadcast_to(h_v, (rows, nv)), np.broadcast_to(h_h, (rows, nh))], axis=1)
        return upper, np.ascontiguousarray(fields)

    def _graph(self, upper: np.ndarray, fields: np.ndarray):
        cxx = self._oj.cxxjij
        n = fields.size
        mat = upper.copy()
        mat[:n, n] = fields
        if self.sparse:
            import scipy.sparse

            return cxx.graph.CSRSparse(scipy.sparse.csr_matrix(mat))
        graph = cxx.graph.Dense(n)
        graph.set_interaction_matrix(mat)
        return graph

    def _bqm(self, upper: np.ndarray, fields: np.ndarray):
        """The same problem as an OpenJij BinaryQuadraticModel (labels ``0..n−1``), for ``api="sampler"``."""
        n = fields.size
        rows, cols = np.nonzero(upper[:n, :n])
        quadratic = {(int(i), int(j)): float(upper[i, j]) for i, j in zip(rows, cols, strict=True)}
        linear = {i: float(fields[i]) for i in range(n)}
        return self._oj.BinaryQuadraticModel(linear, quadratic, 0.0, "SPIN", sparse=self.sparse)

    # --- starts ---------------------------------------------------------------------------------
    def _starts(self, params: RBMParams, num_samples: int, initial: Chains | None, beta: float, M: int):
        """``(worldlines (N, M, n) int8, how)``: each read's start and where it came from."""
        g = self.generator("cpu")
        n = params.n_visible + params.n_hidden
        if initial is None:  # uniformly random classical spins, copied into every slice
            x = torch.randint(0, 2, (num_samples, n), generator=g).numpy()
            how = None
        else:
            v0, h0 = initial.v.detach().cpu(), initial.h
            if h0 is None:  # a visible batch only: hiddens from p(h | v) at β
                p = torch.sigmoid(params.hidden_logits(initial.v, beta)).detach().cpu()
                h0 = (torch.rand(p.shape, generator=g, dtype=p.dtype) < p).to(p.dtype)
            x = torch.cat([v0, h0.detach().cpu()], 1).numpy()
            how = "classical"
        spins = (2 * x - 1).astype(np.int8)
        w = self._worldlines  # kept only for method="sqa" with api="cxxjij" (see _sample)
        if (
            how == "classical"
            and w is not None
            and w.shape == (num_samples, M, n)
            and np.array_equal(w[:, 0, :], spins)
        ):
            return w.copy(), "worldlines"  # the chains the previous call returned: continue every slice
        return np.repeat(spins[:, None, :], M, axis=1), how

    # --- the call -------------------------------------------------------------------------------
    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        steps = _check_steps(opts.get("steps", self.steps))
        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        # attributes set since the constructor are checked too (a bad trotter crashes OpenJij's core)
        gamma = self._check_method_gamma(opts.get("gamma", self.gamma))
        sqa = self.method == "sqa"
        M = check_trotter(self.trotter) if sqa else 1
        nv, n = params.n_visible, params.n_visible + params.n_hidden
        t0 = time.perf_counter()
        upper, fields = self._ising(params)
        starts, how = self._starts(params, num_samples, initial, beta, M)
        seeds = torch.randint(0, 2**31 - 1, (num_samples,), generator=self.generator("cpu")).tolist()
        schedule: list[tuple]  # (s, β, sweeps) entries for SQA, (β, sweeps) for SA
        if sqa:
            s, beta_oj, gamma_oj = openjij_point(beta, gamma)
            schedule = [(s, beta_oj, steps)]
            point = {"s": s, "beta": beta_oj, "gamma": gamma_oj}
        else:
            schedule = [(float(beta), steps)]
            point = {"beta": float(beta)}
        run = self._run_cxxjij if self.api == "cxxjij" else self._run_sampler
        with _openmp_threads(self.num_threads, self._oj) as threads:
            out, run_time = run(upper, fields, starts, seeds, schedule, point)
        elapsed = time.perf_counter() - t0
        if self.persistent and sqa and self.api == "cxxjij":  # the only path that can restart from them
            self._worldlines = out
        x = torch.from_numpy((out[:, 0, :] > 0).astype(np.float32))
        info = {
            "method": self.method,
            "api": self.api,
            "steps": steps,
            "beta": beta,
            "gamma": gamma,
            "trotter": M if sqa else None,
            "epsilon": beta / M if sqa else None,
            "slice": 0,
            "openjij_schedule": schedule,
            "openjij_point": point,
            "continued": how,
            "num_threads": threads,
            "openjij_time_s": run_time,
            "setup_time_s": elapsed - run_time,
        }
        return x[:, :nv], x[:, nv:n], info

    def _run_cxxjij(self, upper, fields, starts, seeds, schedule, point):
        """Every read on one OpenJij system (one per read when the biases are per read): reset to the
        read's start (all slices), run the schedule with the read's seed, read all slices back."""
        cxx = self._oj.cxxjij
        N, M, n = starts.shape
        out = np.empty_like(starts)
        sqa = "s" in point
        if sqa:
            entry = cxx.utility.TransverseFieldSchedule()
            entry.updater_parameter.s = point["s"]
            entry.updater_parameter.beta = point["beta"]
            make = lambda graph, w: cxx.system.make_transverse_ising(w, graph, point["gamma"])  # noqa: E731
        else:
            entry = cxx.utility.ClassicalSchedule()
            entry.updater_parameter.beta = point["beta"]
            make = lambda graph, w: cxx.system.make_classical_ising(w[0], graph)  # noqa: E731
        entry.one_mc_step = schedule[0][-1]
        algorithm = cxx.algorithm.Algorithm_SingleSpinFlip_run
        per_read = fields.shape[0] > 1
        system: Any = None if per_read else make(self._graph(upper, fields[0]), starts[0].tolist())
        run_time = 0.0
        for r in range(N):
            w = starts[r].tolist()  # python ints: OpenJij converts them 3x faster than numpy rows
            if per_read:
                system = make(self._graph(upper, fields[r]), w)
            elif sqa:
                system.reset_spins(w)
            else:
                system.reset_spins(w[0])
            t = time.perf_counter()
            algorithm(system, seeds[r], [entry])
            run_time += time.perf_counter() - t
            if sqa:
                out[r] = system.trotter_spins[:n, :].T  # (M, n); the last row is OpenJij's dummy spin
            else:
                out[r, 0] = system.spin[:n]
        return out, run_time

    def _run_sampler(self, upper, fields, starts, seeds, schedule, point):
        """One public ``SQASampler.sample`` / ``SASampler.sample`` call per read (``num_reads=1``, the
        read's seed, its classical start slice 0): OpenJij copies that start into every slice."""
        oj = self._oj
        N, M, n = starts.shape
        out = np.empty_like(starts)
        sqa = "s" in point
        sampler = oj.SQASampler() if sqa else oj.SASampler()
        per_read = fields.shape[0] > 1
        bqm = None if per_read else self._bqm(upper, fields[0])
        run_time = 0.0
        for r in range(N):
            if per_read:
                bqm = self._bqm(upper, fields[r])
            start = {i: int(starts[r, 0, i]) for i in range(n)}
            t = time.perf_counter()
            if sqa:
                res = sampler.sample(
                    bqm, gamma=point["gamma"], trotter=M, schedule=schedule, num_reads=1,
                    initial_state=start, seed=seeds[r], reinitialize_state=True,
                )  # fmt: skip
            else:
                res = sampler.sample(bqm, schedule=schedule, num_reads=1, initial_state=start, seed=seeds[r])
            run_time += time.perf_counter() - t
            order = [int(v) for v in res.variables]
            if order != list(range(n)):
                raise RuntimeError(
                    f"OpenJij returned the variables in the order {order[:8]}..., expected 0..{n - 1}"
                )
            if sqa:
                out[r] = np.asarray(res.info["system"][0]["trotter_state"])  # (M, n): every slice, in order
            else:
                out[r, 0] = res.record.sample[0]
        return out, run_time
