"""Path-integral (Suzuki–Trotter) sampling of an RBM's transverse-field distribution.

The distribution (DESIGN.md, :mod:`physamp.samplers.quantum_exact`): over **all** visible and
hidden units::

    H = H_Ising − Γ Σᵢ σˣᵢ,        p_Γ(v, h) = ⟨s| e^{−βH} |s⟩ / Tr e^{−βH},

with the RBM energy ``E(v, h) = −b·v − c·h − hᵀWv`` as the diagonal ``H_Ising``, so β multiplies
the transverse term too and Γ = 0 is the classical ``p ∝ exp(−βE)``.

Suzuki–Trotter with ``M`` slices maps it onto a classical model of *worldlines*: every unit gets
``M`` copies ``x⁰ … x^{M−1}`` around imaginary time, ``ε = β/M``, and the path weight is

    Π_k exp(−ε E(v^k, h^k)) · Π_units Π_k exp(J⊥ σ^k σ^{k+1}),   J⊥ = −½ ln tanh(εΓ),  σ = 2x − 1,

slice ``M−1`` bonded to slice 0. Slice 0 of a worldline configuration drawn from it follows the
*Trotterised* distribution ``p_M(s) ∝ ⟨s|(e^{−εH_Ising} e^{εΓX})^M|s⟩``
(:func:`~physamp.samplers.quantum_exact.trotter_log_probs`), which tends to ``p_Γ`` as ``M`` grows,
with an error that falls as ``1/M²`` (about 4x per doubling of ``M``).

The sweep. In an RBM, conditioned on all hidden worldlines, the visible worldlines are
independent periodic Ising chains with slice log-odds ``a_k = ε (b_i + (Wᵀ h^k)_i)`` and bond
``J⊥`` (and vice versa, ``a_k = ε (c_j + (W v^k)_j)``). A periodic chain is drawn exactly by
forward filtering, backward sampling (:func:`~physamp.samplers.worldlines.sample_periodic_chains`),
so one sweep is two exact block updates -- all hidden worldlines given the visible ones, then all
visible worldlines given the hidden ones -- and its mixing does not collapse as ``M`` grows (moves
of single slices do: a flip of a whole worldline must then pass through ``M`` kinks of cost ``2J⊥``
each).

Layout: the worldlines of a layer are one ``(units, M, N)`` tensor (``N`` chains), so a single
product of ``ε W`` (dense, or CSR for a sparse mask, from :class:`~physamp.samplers.gibbs.GibbsKernel`)
with its ``(units, M·N)`` view gives every slice's fields; the chain draws read and write
``(M, units, N)`` permuted views of the same buffers.

Γ = 0 ties the slices together (``J⊥ = ∞``): the sampler then runs one slice at ``ε = β``, which
is classical block Gibbs, and says so in ``info``.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from physamp.energy import RBMParams
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.diagnostics import (
    check_diagnostic_options,
    check_sweeps_or_auto,
    not_recorded,
    plan_checks,
    run_with_checks,
    stack_records,
    warn_if_not_mixed,
)
from physamp.samplers.gibbs import GibbsKernel
from physamp.samplers.quantum_exact import check_gamma
from physamp.samplers.worldlines import sample_periodic_chains, trotter_coupling

__all__ = ["QuantumSampler", "check_trotter", "DEFAULT_TROTTER"]

#: The default number of Trotter slices: the Trotter error of small random RBMs at β = 1 is then
#: ~10⁻³ in TV at Γ = 1 (it falls ~4x per doubling), below the sampling noise of 10⁵ draws.
DEFAULT_TROTTER = 16
#: With ``progress="auto"``, calls of at least this many sweeps get a bar (shown after 1 s).
AUTO_PROGRESS_SWEEPS = 100
_PROGRESS_DELAY_S = 1.0
_STATISTIC = "classical energy E(v, h) of slice 0 of the chains' worldlines"


def check_trotter(trotter, name: str = "trotter") -> int:
    """``trotter`` as an int if it is an integer >= 2 (Python or numpy; not a bool or a float)."""
    if isinstance(trotter, bool) or not isinstance(trotter, numbers.Integral) or trotter < 2:
        raise ValueError(
            f"{name} must be an integer >= 2 (the number M of Trotter slices, ε = β/M; "
            f"e.g. {DEFAULT_TROTTER}), got {trotter!r}"
        )
    return int(trotter)


class _PathIntegral:
    """The sweep loop on fixed parameters: worldline buffers ``(units, slices, N)`` and the kernel.

    ``start`` is the visible worldlines to begin from; it is only read (the first hidden update
    reads it, the visible updates write this object's own buffer), so the worldlines of an
    earlier call are never overwritten.
    """

    def __init__(self, kernel: GibbsKernel, start: torch.Tensor, coupling: float, generator, bar=None):
        nv, M, N = start.shape
        nh = kernel.nh
        self.kernel, self.coupling, self.generator, self.bar = kernel, coupling, generator, bar
        self.shape = (M, N)
        kw: dict[str, Any] = {"dtype": kernel.dtype, "device": kernel.device}
        self.V = torch.empty(nv, M, N, **kw)
        self.H = torch.empty(nh, M, N, **kw)
        self.src = start
        self._lh = torch.empty(nh, M * N, **kw)
        self._lv = torch.empty(nv, M * N, **kw)

    def _fields(self, W, bias: torch.Tensor, X: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out (n, M·N) = bias + W X``, every slice's fields; ``bias`` is ``(n, 1)`` or ``(n, N)``."""
        X2 = X.reshape(X.shape[0], -1)  # a view: the buffers are contiguous
        if bias.shape[1] == 1:
            return torch.addmm(bias, W, X2, out=out)
        torch.mm(W, X2, out=out)
        M, N = self.shape
        out.view(-1, M, N).add_(bias[:, None, :])
        return out

    def _draw(self, logits: torch.Tensor, X: torch.Tensor) -> None:
        M, N = self.shape
        sample_periodic_chains(
            logits.view(-1, M, N).permute(1, 0, 2),
            self.coupling,
            generator=self.generator,
            out=X.permute(1, 0, 2),
        )

    def run(self, sweeps: int) -> None:
        k = self.kernel
        for _ in range(sweeps):
            self._draw(self._fields(k.W_hv, k.c, self.src, self._lh), self.H)
            self._draw(self._fields(k.W_vh, k.b, self.H, self._lv), self.V)
            self.src = self.V
            if self.bar is not None:
                self.bar.update(1)


def _kinks(X: torch.Tensor) -> float:
    """Mean number of kinks (neighbouring slices in different states, around the ring) per worldline."""
    if X.shape[1] < 2 or X.numel() == 0:
        return 0.0
    flips = (X != X.roll(-1, dims=1)).sum()
    return float(flips) / (X.shape[0] * X.shape[2])


class QuantumSampler(Sampler):
    """Path-integral (Suzuki–Trotter) sampler of an RBM's transverse-field Boltzmann distribution.

    Draws ``(v, h)`` from ``p_M``, the ``M``-slice Trotter approximation of
    ``p_Γ(v, h) = ⟨s|e^{−βH}|s⟩ / Tr e^{−βH}``, ``H = H_Ising − Γ Σᵢ σˣᵢ`` over all visible and hidden
    units (see the module docstring for the convention and the sweep). A sweep is two exact block
    updates of whole worldlines, so the chains mix about as fast as block Gibbs on the classical
    model, for any ``M``. One sweep does the work of ``M`` classical Gibbs sweeps: on a dense
    784x500 RBM it took 1.1-1.5x their time at M = 8-32 (one thread, ``benchmarks/quantum.py``);
    on the sparse Chimera RBM, whose products are cheap, the periodic-chain draws dominate (4-6x).

    The returned samples are slice 0 of each chain's worldlines (every slice has the same marginal;
    ``v`` and ``h`` of one slice are jointly distributed as ``p_M``).

    Args:
        steps: sweeps per call (default 1000, as ``gibbs``; PCD-k passes ``steps=k``), or ``"auto"``:
            sweep in doubling blocks until the split-R̂ of the chains' slice-0 energies is at most
            ``rhat_threshold``, at most ``max_steps`` sweeps (see :class:`.GibbsSampler`).
        gamma: the transverse field Γ >= 0, in the energy's units (required: no value is neutral --
            0 is classical Gibbs, and any Γ > 0 chooses a distribution; a device's freeze-out Γ
            depends on the model and the anneal). Γ = 0 runs classical block Gibbs on one slice.
        trotter: the number ``M >= 2`` of Trotter slices (default 16); ``ε = β/M``. The Trotter
            error falls as ``1/M²``; :func:`~physamp.samplers.quantum_exact.trotter_error_table`
            measures it on small models.
        persistent: keep the chains between calls (PCD). The whole worldlines are kept, not just
            the slice 0 returned, and the next call continues them.
        beta: inverse temperature of the sampled distribution (it multiplies Γ too).
        init: start of new chains: ``"random"`` (Bernoulli ½ visibles) or ``"zeros"``, copied into
            every slice (a worldline without kinks: a classical state).
        sparse: ``"auto"`` (CSR products when a mask keeps < 10 % of the connections, on the CPU),
            True or False, as ``gibbs``.
        progress: ``"auto"`` (default) shows a tqdm bar over the sweeps of calls of at least 100
            sweeps, once a call has run for 1 s; True always, False never.
        diagnostics: record the slice-0 energies and report R̂ / ESS as ``gibbs`` does (default
            True; calls of fewer than 96 sweeps record nothing). Recording does not change the chains.
        max_steps, rhat_threshold, min_ess: as ``gibbs`` (for ``steps="auto"`` and the verdict).
        seed: seed of the sampler's generator.

    Persistence and changes between calls: the chains continue from the kept worldlines when the
    base class hands back the chains this sampler last returned (or those loaded by
    :meth:`load_state_dict`) and the worldlines have the shape of this call -- the same number of
    chains, units and slices. A per-call ``gamma`` or ``beta`` with the same number of slices
    continues them (a valid state of the new chain, which then re-equilibrates, as chains do after
    a PCD update). A different number of slices (Γ = 0 uses one) restarts them from slice 0 of the
    kept chains, copied into every slice. An ``initial`` state passed to ``sample`` is copied into
    every slice. ``info["start"]`` says which of ``"new"``, ``"initial"``, ``"continued"``,
    ``"restarted"`` happened.

    ``info``: ``gamma``, ``beta``, ``trotter`` (the ``M`` asked for), ``slices`` (``M``, or 1 at
    Γ = 0), ``epsilon`` (β / slices), ``j_perp`` (J⊥; ``inf`` at Γ = 0), ``steps``, ``start``,
    ``kinks_visible`` / ``kinks_hidden`` (mean kinks per worldline: 0 for a classical state, about
    ``slices/2`` when the slices are independent), ``kink_density`` (the fraction of slice bonds
    broken, over both layers: how quantum the state is), ``sparse``, ``classical`` (True at Γ = 0,
    with a ``note``), and the convergence report of ``gibbs`` (``rhat``, ``ess``, ``converged``,
    ``convergence``) on the classical energy of slice 0.
    """

    name = "quantum"
    parameters = {
        "steps": "path-integral sweeps in this call, or 'auto' (until the chains mix)",
        "beta": "inverse temperature (multiplies the transverse field too)",
        "gamma": "transverse field Γ >= 0 (0: classical block Gibbs)",
    }
    uses_chains = True
    steps_option = "steps"
    supports_persistent = True

    def __init__(
        self,
        steps: int | str = 1000,
        *,
        gamma: float | None = None,
        trotter: int = DEFAULT_TROTTER,
        persistent: bool = False,
        beta: float = 1.0,
        init: str = "random",
        sparse: bool | str = "auto",
        progress: bool | str = "auto",
        diagnostics: bool = True,
        max_steps: int = 100_000,
        rhat_threshold: float = 1.01,
        min_ess: float | None = None,
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        if gamma is None:
            raise ValueError(
                "the 'quantum' sampler needs gamma, the transverse field Γ >= 0 (e.g. "
                "make_sampler('quantum', gamma=1.0, trotter=16); gamma=0 is classical block Gibbs)"
            )
        self.gamma = check_gamma(gamma)
        self.trotter = check_trotter(trotter)
        self.steps = check_sweeps_or_auto(steps, what="path-integral sweeps per call")
        self.beta = beta  # checked by the protocol (Sampler.beta)
        if init not in ("random", "zeros"):
            raise ValueError(f"init must be 'random' or 'zeros', got {init!r}")
        if sparse not in ("auto", True, False):
            raise ValueError(f"sparse must be 'auto', True or False, got {sparse!r}")
        if progress not in ("auto", True, False):
            raise ValueError(f"progress must be 'auto', True or False, got {progress!r}")
        self.init, self.sparse, self.progress = init, sparse, progress
        self.max_steps, self.rhat_threshold, self.min_ess, self.diagnostics = check_diagnostic_options(
            max_steps, rhat_threshold, min_ess, diagnostics
        )
        #: the visible and hidden worldlines ``(units, slices, N)`` of the last persistent call
        self._worldlines: tuple[torch.Tensor, torch.Tensor] | None = None

    def _repr_options(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "gamma": self.gamma,
            "trotter": self.trotter,
            "beta": self.beta,
            "persistent": self.persistent,
        }

    # --- chains ---------------------------------------------------------------------------------
    @property
    def worldlines(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The kept worldlines ``(V (n_visible, slices, N), H (n_hidden, slices, N))``, or None."""
        return self._worldlines

    def reset_chains(self) -> None:
        super().reset_chains()
        self._worldlines = None

    def state_dict(self) -> dict[str, Any]:
        """The base class's chains and generators, plus the whole worldlines (tensors only; stored
        as bool, a quarter of their float32 size, and read back in the model's dtype)."""
        sd = super().state_dict()
        if self._worldlines is not None:
            sd["worldlines_v"], sd["worldlines_h"] = (x.to(torch.bool) for x in self._worldlines)
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict(sd)
        if "worldlines_v" in sd and "worldlines_h" in sd:
            self._worldlines = (sd["worldlines_v"], sd["worldlines_h"])
        else:
            self._worldlines = None

    def _start(
        self, params: RBMParams, num_samples: int, slices: int, initial: Chains | None, kernel: GibbsKernel
    ) -> tuple[torch.Tensor, str]:
        """The visible worldlines ``(n_visible, slices, N)`` to begin from, and how they were chosen."""
        nv, nh = params.n_visible, params.n_hidden
        kept = self._worldlines
        ours = (
            initial is not None
            and kept is not None
            and self._chains is not None
            and initial.v is self._chains.v  # the chains this sampler stored, handed back
        )
        if ours:
            assert kept is not None and initial is not None
            V, H = kept
            fits = V.shape == (nv, slices, num_samples) and H.shape == (nh, slices, num_samples)
            if fits:
                V = V.to(device=params.device, dtype=params.dtype)  # only read: no copy when it fits
                if torch.equal(V[:, 0, :].t(), initial.v):
                    return V.contiguous(), "continued"
        if initial is not None:
            v = initial.v
            how = "restarted" if ours else "initial"
        elif self.init == "zeros":
            v = torch.zeros(num_samples, nv, dtype=params.dtype, device=params.device)
            how = "new"
        else:
            g = self.generator(params.device)
            u = torch.rand(num_samples, nv, generator=g, device=params.device)
            v = (u < 0.5).to(params.dtype)
            how = "new"
        V = v.t().to(dtype=params.dtype)[:, None, :].expand(nv, slices, num_samples).contiguous()
        return V, how

    def _bar(self, steps):
        show = self.progress is True or (
            self.progress == "auto" and (steps == "auto" or steps >= AUTO_PROGRESS_SWEEPS)
        )
        if not show:
            return None
        from tqdm.auto import tqdm

        delay = 0.0 if self.progress is True else _PROGRESS_DELAY_S
        total = self.max_steps if steps == "auto" else steps
        return tqdm(total=total, desc=f"{self.name} sweeps", unit="sweep", delay=delay, leave=False,
                    mininterval=0.5)  # fmt: skip

    # --- the call -------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        steps = check_sweeps_or_auto(opts.get("steps", self.steps), what="path-integral sweeps per call")
        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        # the attributes are re-checked: a user may have set sampler.gamma / sampler.trotter since
        gamma = check_gamma(opts.get("gamma", self.gamma))
        trotter = check_trotter(self.trotter)
        if steps == "auto" and num_samples < 2:
            raise ValueError(
                "steps='auto' compares chains (split-R̂), so it needs num_samples >= 2; "
                "pass an integer steps for a single chain"
            )
        slices = 1 if gamma == 0.0 else trotter
        epsilon = beta / slices
        coupling = trotter_coupling(gamma, beta, slices)
        kernel = GibbsKernel(params, num_samples, beta=epsilon, sparse=self.sparse)
        start, how = self._start(params, num_samples, slices, initial, kernel)
        bar = self._bar(steps)
        engine = _PathIntegral(kernel, start, coupling, self.generator(params.device), bar)
        report = None
        try:
            if steps == "auto" or self.diagnostics:
                report = _run_diagnosed(self, engine, steps)
            else:
                engine.run(int(steps))
        finally:
            if bar is not None:
                bar.close()
        V, H = engine.V, engine.H
        if self.persistent:
            self._worldlines = (V, H)
        kv, kh = _kinks(V), _kinks(H)
        nv, nh = params.n_visible, params.n_hidden
        info: dict[str, Any] = {
            "gamma": gamma,
            "beta": beta,
            "trotter": trotter,
            "slices": slices,
            "epsilon": epsilon,
            "j_perp": coupling,
            "steps": steps if report is None else report.steps,
            "start": how,
            "continued": how == "continued",
            "kinks_visible": kv,
            "kinks_hidden": kh,
            "kink_density": (kv * nv + kh * nh) / ((nv + nh) * slices) if slices > 1 else 0.0,
            "sparse": kernel.sparse,
            "classical": gamma == 0.0,
        }
        if gamma == 0.0:
            info["note"] = (
                f"gamma = 0: classical block Gibbs at beta = {beta:g} (one slice, J⊥ = inf); "
                f"trotter = {self.trotter} is not used"
            )
        if report is not None:
            info.update(report.info(_STATISTIC))
            warn_if_not_mixed(self.name, report, steps, self.max_steps, option="steps")
        else:
            info.update(not_recorded(_STATISTIC))
        # slice 0 as compact (N, units) copies, not views: a view would keep (and torch.save would
        # write, through the base class's chains in state_dict) the whole (units, M, N) buffer
        fmt = torch.contiguous_format
        return V[:, 0, :].t().clone(memory_format=fmt), H[:, 0, :].t().clone(memory_format=fmt), info


def _run_diagnosed(sampler: QuantumSampler, engine: _PathIntegral, steps):
    """``steps`` sweeps (or ``"auto"``) with slice 0's energies recorded as :func:`plan_checks` says;
    the sweeps run in pieces between the recording points, so the chains are those of one run."""
    from physamp.samplers.gibbs import _chain_energies

    def record() -> torch.Tensor:
        # ε E(v⁰, h⁰): the kernel holds ε W, ε b, ε c; R̂ and ESS are rank-based, so the scale is moot
        return _chain_energies(engine.kernel, engine.V[:, 0, :], engine.H[:, 0, :])

    return run_with_checks(
        engine.run,
        record,
        stack_records,
        plan_checks(steps, sampler.max_steps),
        auto=steps == "auto",
        threshold=sampler.rhat_threshold,
        min_ess=sampler.min_ess,
    )
