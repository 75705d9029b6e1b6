"""Block Gibbs sampling in PyTorch (CPU, CUDA, MPS).

One sweep updates the whole hidden layer given the visibles, then the whole
visible layer given the hiddens (Eqs. 1.34-1.35)::

    h ~ Bernoulli(σ(β (c + W v))),      v ~ Bernoulli(σ(β (b + Wᵀ h)))

States are kept unit-major, ``(units, N)``, so both half-sweeps are one
``addmm`` with the weight matrix on the left: dense ``W`` for dense models, a
CSR copy of ``W`` (built from the mask, only the existing connections) when the
mask keeps a small fraction of them -- the 784×784 Chimera RBM has 4,592 of
614,656 connections, and a sparse product over them is ~20x cheaper.

With ``rng="int32"`` (the default) the Bernoulli draws are those of
:class:`~physamp.samplers.bernoulli.Int32Bernoulli`: a 32-bit threshold per
unit, ``P(1)`` the nearest multiple of ``2^-32`` to ``σ(β a)`` (within
``2^-33``: finer than a float32 uniform, and resolved in the tails), from 16
random bits a unit for all but about one unit in 65,536. ``rng="uniform"`` draws
one float32 uniform per unit from torch (``u < σ(β a)``) and is several times
slower. ``rng="int16"`` is accepted as an old name of ``"int32"``: the 16-bit
draw it used to name rounded probabilities up to multiples of ``2^-16``, which
moved the stationary distribution of slow-mixing chains, and is gone.

A dense half-sweep is ``addmm`` into a reused buffer, then the draw in place
from the logits (on the CPU one compiled pass, no sigmoid). A sparse one on the
CPU is a single compiled pass that computes each row of the CSR product and
draws it while it is in cache (:meth:`Int32Bernoulli.sparse_product_draw_`);
where the kernel is not built (no C compiler, ``PHYSAMP_COMPILED_DRAW=0``) or
on another device, ``addmm`` then the draw's torch operations, with the same
draws from the same words.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from physamp.energy import RBMParams
from physamp.samplers.base import Chains, Sampler
from physamp.samplers.bernoulli import Int32Bernoulli
from physamp.samplers.diagnostics import (
    check_diagnostic_options,
    check_sweeps_or_auto,
    not_recorded,
    plan_checks,
    run_with_checks,
    stack_records,
    warn_if_not_mixed,
)
from physamp.seeding import derive_seed

__all__ = ["GibbsSampler", "GibbsKernel"]

_RNG_MODES = ("int32", "uniform")
#: Old names of rng modes, read as the mode they map to (configs and checkpoints keep working).
_RNG_ALIASES = {"int16": "int32"}


def check_rng(rng) -> str:
    """The canonical name of an ``rng`` mode (``"int16"`` reads as ``"int32"``), or a ValueError."""
    rng = _RNG_ALIASES.get(rng, rng) if isinstance(rng, str) else rng
    if rng not in _RNG_MODES:
        raise ValueError(f"rng must be one of {_RNG_MODES} ('int16' is an old name of 'int32'), got {rng!r}")
    return rng


class SparseStructure:
    """CSR index arrays of a connectivity mask, in both orientations, built once per mask.

    ``matrices(W)`` then only gathers the ``nnz`` existing weights: no sort, no
    coalesce, no scan of the dense mask on every call.
    """

    _cache: dict[tuple, SparseStructure] = {}
    _density: dict[tuple, tuple[torch.Tensor, float]] = {}

    def __init__(self, mask: torch.Tensor):
        nh, nv = mask.shape
        self.mask = mask  # held, so its storage cannot be freed and reused while cached
        rows, cols = torch.nonzero(mask, as_tuple=True)  # row-major: sorted by (row, col)
        self.shape = (nh, nv)
        self.rows, self.cols = rows, cols
        self.crow_hv = torch.zeros(nh + 1, dtype=torch.int64, device=mask.device)
        self.crow_hv[1:] = torch.cumsum(torch.bincount(rows, minlength=nh), 0)
        self.perm_vh = torch.argsort(cols * nh + rows)  # sorted by (col, row)
        self.col_vh = rows[self.perm_vh].contiguous()
        self.crow_vh = torch.zeros(nv + 1, dtype=torch.int64, device=mask.device)
        self.crow_vh[1:] = torch.cumsum(torch.bincount(cols, minlength=nv), 0)

    @staticmethod
    def _key(mask: torch.Tensor) -> tuple:
        # identity and in-place version of the tensor; the cached entry keeps the tensor
        # alive, so id() cannot be reused by another mask while the entry exists
        return (id(mask), mask._version, tuple(mask.shape), str(mask.device))

    @classmethod
    def density_of(cls, mask: torch.Tensor) -> float:
        key = cls._key(mask)
        hit = cls._density.get(key)
        if hit is None or hit[0] is not mask:
            if len(cls._density) > 32:
                cls._density.clear()
            hit = cls._density[key] = (mask, float(mask.sum()) / max(mask.numel(), 1))
        return hit[1]

    @classmethod
    def get(cls, mask: torch.Tensor) -> SparseStructure:
        key = cls._key(mask)
        s = cls._cache.get(key)
        if s is None or s.mask is not mask:
            if len(cls._cache) > 8:
                cls._cache.clear()
            s = cls._cache[key] = cls(mask)
        return s

    def matrices(self, W: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale·W, scale·Wᵀ)`` as CSR tensors holding the masked entries of ``W``."""
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        vals = W[self.rows, self.cols]
        if scale != 1.0:
            vals = vals * scale
        nh, nv = self.shape
        W_hv = torch.sparse_csr_tensor(self.crow_hv, self.cols, vals, (nh, nv), check_invariants=False)
        W_vh = torch.sparse_csr_tensor(
            self.crow_vh, self.col_vh, vals[self.perm_vh], (nv, nh), check_invariants=False
        )
        return W_hv, W_vh


class GibbsKernel:
    """The sweep loop on fixed parameters; reusable by other samplers (AIS, tempering).

    ``W: (n_hidden, n_visible)``; biases ``(n,)`` or per-chain ``(N, n)``. Holds the
    (possibly sparse) weight matrices and biases scaled by β.
    """

    def __init__(
        self,
        params: RBMParams,
        num_chains: int,
        *,
        beta: float = 1.0,
        rng: str = "int32",
        sparse: bool | str = "auto",
        sparse_threshold: float = 0.1,
    ):
        self.rng = check_rng(rng)
        self.n_chains = num_chains
        self.nv, self.nh = params.n_visible, params.n_hidden
        scale = float(beta)
        use_sparse = sparse is True
        if sparse == "auto":
            use_sparse = (
                params.mask is not None
                and params.W.device.type == "cpu"
                and SparseStructure.density_of(params.mask) < sparse_threshold
            )
        self.sparse = bool(use_sparse)
        if self.sparse:
            structure = SparseStructure.get(params.mask if params.mask is not None else params.W != 0)
            self.W_hv, self.W_vh = structure.matrices(params.W, scale)
        else:  # BLAS reads the transposed view directly: no copy when β = 1
            W = params.W if scale == 1.0 else params.W * scale
            self.W_hv, self.W_vh = W, W.t()
        # biases as (units, 1) or per-chain (units, N) columns
        self.b = (params.b * scale).t().contiguous() if params.b.dim() == 2 else (params.b * scale)[:, None]
        self.c = (params.c * scale).t().contiguous() if params.c.dim() == 2 else (params.c * scale)[:, None]
        self.dtype, self.device = params.W.dtype, params.W.device
        # the CSR arrays of both products, checked once for the fused compiled half-sweep
        self._csr = {}
        if self.sparse:
            self._csr = {id(W): (W, Int32Bernoulli.csr_parts(W)) for W in (self.W_hv, self.W_vh)}

    def _bernoulli(self, a: torch.Tensor, source) -> torch.Tensor:
        """{0,1} draws with P(1) = σ(a) from pre-scaled activations ``a``, in place in ``a``.

        ``source`` is an :class:`Int32Bernoulli` (``rng="int32"``) or a torch generator
        (``rng="uniform"``: one float uniform per unit, ``u < σ(a)``).
        """
        if isinstance(source, Int32Bernoulli):
            return source.sample_from_logits_(a)
        u = torch.rand(a.shape, generator=source, device=a.device, dtype=a.dtype)
        return a.sigmoid_().sub_(u).gt_(0.0)

    def _half_sweep(self, W: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, source, out) -> torch.Tensor:
        """Draws from the logits ``bias + W x``: one compiled pass for a sparse ``W`` (product and
        draw, :meth:`Int32Bernoulli.sparse_product_draw_`), else ``addmm`` then the in-place draw."""
        held, parts = self._csr.get(id(W), (None, None))
        if held is W and parts is not None and isinstance(source, Int32Bernoulli) and source.compiled:
            if out is None:
                out = torch.empty(W.shape[0], x.shape[1], dtype=self.dtype, device=self.device)
            if source.csr_draw_(out, parts, bias, x) is not None:
                return out
        return self._bernoulli(torch.addmm(bias, W, x, out=out), source)

    def hidden_given_visible(self, vT: torch.Tensor, generator, out=None) -> torch.Tensor:
        """h ~ p(h | v) for unit-major ``vT (n_visible, N)``; written into ``out`` if given."""
        return self._half_sweep(self.W_hv, self.c, vT, generator, out)

    def visible_given_hidden(self, hT: torch.Tensor, generator, out=None) -> torch.Tensor:
        """v ~ p(v | h) for unit-major ``hT (n_hidden, N)``; written into ``out`` if given."""
        return self._half_sweep(self.W_vh, self.b, hT, generator, out)

    def random_half(self, shape: tuple[int, int], source) -> torch.Tensor:
        """Bernoulli(1/2) states (random start of new chains): one bit of the random words each."""
        if isinstance(source, Int32Bernoulli):
            return source.random_half(shape, self.dtype)
        return (torch.rand(shape, generator=source, device=self.device) < 0.5).to(self.dtype)

    def run(self, vT: torch.Tensor, steps: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps`` sweeps from visible states ``vT (n_visible, N)``; returns ``(vT, hT)``.

        Two buffers are reused across sweeps; ``vT`` itself is never written.
        """
        n = vT.shape[1]
        hbuf = torch.empty(self.nh, n, device=self.device, dtype=self.dtype)
        vbuf = torch.empty(self.nv, n, device=self.device, dtype=self.dtype)
        hT = hbuf
        for _ in range(steps):
            hT = self.hidden_given_visible(vT, generator, out=hbuf)
            vT = self.visible_given_hidden(hT, generator, out=vbuf)
        return vT, hT


class GibbsSampler(Sampler):
    """Block Gibbs sampling of an RBM.

    Every call reports whether its chains mixed (:mod:`physamp.samplers.diagnostics`): the
    energies ``E(v, h)`` of the chains' joint states are recorded at up to 100 evenly spaced
    sweeps of the last half of the call (the first half is burn-in; at least 12 sweeps apart,
    so the cost stays ~2 % of the call), and ``info`` gets their rank-normalised split-R̂
    (``info["rhat"]``), bulk effective sample size (``info["ess"]``, in recorded draws),
    ``info["converged"]`` (True, False, or None when not computed or undecided) and the details
    (``info["convergence"]``). A call whose R̂ is above ``rhat_threshold`` (beyond the
    estimate's own noise) warns with a :class:`~physamp.samplers.diagnostics.ConvergenceWarning`.
    Calls of fewer than 96 sweeps (PCD-k) record nothing and report ``converged=None``.
    Recording does not change the chains: the samples are those of the same call without it.

    Args:
        steps: Gibbs sweeps per call, or ``"auto"``: sweep in doubling blocks (checks after
            400, 800, 1600, ... sweeps, each on the draws of its own last half) until R̂ is at
            most ``rhat_threshold`` (and ESS at least ``min_ess``), at most ``max_steps``
            sweeps (a ConvergenceWarning when that cap is reached); ``info["steps"]`` is the
            number of sweeps run. The default (1000) is a burn-in long enough for moderately
            trained small models from a random start; PCD-k sets ``steps=k`` with
            ``persistent=True``.
        persistent: keep the chains between calls (PCD).
        beta: inverse temperature of the sampled distribution.
        rng: ``"int32"`` (default: 32-bit thresholds, ``P(1)`` within 2^-24, half the cost of
            ``"uniform"``) or ``"uniform"`` (one torch float uniform per unit). ``"int16"`` is
            an old name of ``"int32"``.
        sparse: ``"auto"`` uses sparse products when a mask keeps < 10 % of the
            connections (CPU); True/False forces it.
        init: start of new chains: ``"random"`` (Bernoulli ½ visibles) or ``"zeros"``.
        max_steps: cap on the sweeps of ``steps="auto"`` (default 100,000).
        rhat_threshold: R̂ above which the chains count as not mixed (default 1.01, the rule of
            Vehtari et al. 2021; 1.05 is a laxer one).
        min_ess: with ``steps="auto"``, also require this bulk ESS (default None: R̂ only).
        diagnostics: record the energies and report R̂ (default True); False skips it for a
            fixed ``steps`` (``"auto"`` always needs it).
        seed: seed of the sampler's generator.
    """

    name = "gibbs"
    parameters = {
        "steps": "Gibbs sweeps in this call, or 'auto' (until the chains mix)",
        "beta": "inverse temperature",
    }
    uses_chains = True
    steps_option = "steps"
    supports_persistent = True

    def __init__(
        self,
        steps: int | str = 1000,
        *,
        persistent: bool = False,
        beta: float = 1.0,
        rng: str = "int32",
        sparse: bool | str = "auto",
        init: str = "random",
        max_steps: int = 100_000,
        rhat_threshold: float = 1.01,
        min_ess: float | None = None,
        diagnostics: bool = True,
        seed: int | None = None,
    ):
        super().__init__(seed=seed, persistent=persistent)
        steps = check_sweeps_or_auto(steps)
        self.max_steps, self.rhat_threshold, self.min_ess, self.diagnostics = check_diagnostic_options(
            max_steps, rhat_threshold, min_ess, diagnostics
        )
        rng = check_rng(rng)
        if init not in ("random", "zeros"):
            raise ValueError(f"init must be 'random' or 'zeros', got {init!r}")
        if sparse not in ("auto", True, False):
            raise ValueError(f"sparse must be 'auto', True or False, got {sparse!r}")
        self.beta = beta  # checked by the protocol (Sampler.beta)
        self.steps, self.rng, self.sparse, self.init = steps, rng, sparse, init
        self._sources: dict[str, Int32Bernoulli] = {}

    def _repr_options(self) -> dict[str, Any]:
        return {"steps": self.steps, "persistent": self.persistent, "beta": self.beta, "rng": self.rng}

    def word_generator(self, device: torch.device):
        """Source of the Bernoulli draws on ``device``: an :class:`Int32Bernoulli` for
        ``rng="int32"`` (SFC64 seeded ``derive_seed(seed, "words")`` on the CPU, the
        sampler's torch generator elsewhere), the torch generator for ``"uniform"``."""
        device = torch.device(device)
        if self.rng != "int32":
            return self.generator(device)
        key = str(device)
        source = self._sources.get(key)
        if source is None:
            if device.type == "cpu":
                seed = None if self.seed is None else derive_seed(int(self.seed), "words")
                source = Int32Bernoulli(device, seed=seed)
            else:
                source = Int32Bernoulli(device, generator=self.generator(device))
            self._sources[key] = source
        return source

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        cpu = self._sources.get("cpu")
        if cpu is not None:
            sd["sfc64_state"] = cpu.state_dict()["sfc64_state"]
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict(sd)
        if "sfc64_state" in sd:
            self.word_generator(torch.device("cpu")).load_state_dict({"sfc64_state": sd["sfc64_state"]})

    def kernel(self, params: RBMParams, num_chains: int, beta: float | None = None) -> GibbsKernel:
        return GibbsKernel(
            params, num_chains, beta=self.beta if beta is None else beta, rng=self.rng, sparse=self.sparse
        )

    def initial_visible(self, kernel: GibbsKernel, params: RBMParams, num_samples: int) -> torch.Tensor:
        """Unit-major ``(n_visible, N)`` start of new chains."""
        if self.init == "zeros":
            return torch.zeros(params.n_visible, num_samples, device=params.device, dtype=params.dtype)
        return kernel.random_half((params.n_visible, num_samples), self.word_generator(params.device))

    @torch.no_grad()
    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        steps = check_sweeps_or_auto(opts.get("steps", self.steps))
        beta = opts.get("beta", self.beta)  # a per-call beta is checked by Sampler.sample
        if steps == "auto" and num_samples < 2:
            raise ValueError(
                "steps='auto' compares chains (split-R̂), so it needs num_samples >= 2; "
                "pass an integer steps for a single chain"
            )
        kernel = self.kernel(params, num_samples, beta)
        vT = (
            initial.v.t().contiguous()
            if initial is not None
            else self.initial_visible(kernel, params, num_samples)
        )
        source = self.word_generator(params.device)
        report = None
        if steps == "auto" or self.diagnostics:
            vT, hT, report = _run_diagnosed(self, kernel, vT, steps, source)
        else:
            vT, hT = kernel.run(vT, int(steps), source)  # not "auto": an int
        info = {
            "steps": steps if report is None else report.steps,
            "beta": beta,
            "sparse": kernel.sparse,
            "rng": self.rng,
            "continued": initial is not None,
        }
        if report is not None:
            info.update(report.info(_STATISTIC))
            warn_if_not_mixed(self.name, report, steps, self.max_steps, option="steps")
        else:
            info.update(not_recorded(_STATISTIC))
        # (N, units) views of the unit-major states: Samples makes them contiguous when read
        return vT.t(), hT.t(), info


# --- convergence diagnostics of the chains (physamp.samplers.diagnostics) ------------------------------
_STATISTIC = "energy E(v, h) of the chains' joint states"


def _chain_energies(kernel: GibbsKernel, vT: torch.Tensor, hT: torch.Tensor) -> torch.Tensor:
    """β E(v, h) of each chain (column) of unit-major states: one product with W, as half a sweep.

    The kernel holds β W, β b and β c, so this is the energy times β; the rank-normalised R̂ and
    ESS do not change under that (or any increasing) transform. Measured on one thread: 0.36-0.48
    of a sweep (784x500 dense and 784x784 Chimera-sparse, 100 and 1,000 chains).
    """
    pre = torch.addmm(kernel.c, kernel.W_hv, vT)  # β (c + W v), (n_hidden, N)
    e = pre.mul_(hT).sum(0)  # h·(c + W v)
    if kernel.b.shape[1] == 1:  # one bias vector: b·v of every chain as one product
        e.add_(torch.mm(kernel.b.t(), vT)[0])
    else:  # per-chain biases (nv, N)
        e.add_((kernel.b * vT).sum(0))
    return e.neg_()


def _run_diagnosed(sampler: GibbsSampler, kernel: GibbsKernel, vT: torch.Tensor, steps, source):
    """``steps`` sweeps (or ``"auto"``) with the energies recorded as :func:`plan_checks` says.

    The sweeps run through ``kernel.run`` from one recording point to the next: the same draws
    in the same order as one ``kernel.run(vT, steps)``, so the chains are unchanged.
    """
    state: list[Any] = [vT, None]  # (vT, hT) after the latest sweeps

    def advance(n: int) -> None:
        state[0], state[1] = kernel.run(state[0], n, source)

    def record() -> torch.Tensor:
        return _chain_energies(kernel, state[0], state[1])

    checks = plan_checks(steps, sampler.max_steps)
    report = run_with_checks(
        advance,
        record,
        stack_records,
        checks,
        auto=steps == "auto",
        threshold=sampler.rhat_threshold,
        min_ess=sampler.min_ess,
    )
    return state[0], state[1], report
