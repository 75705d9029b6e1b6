"""The sampler protocol: one method to write, the rest derived.

A physamp sampler draws joint samples ``(v, h)`` of a binary RBM from (an
approximation of) its Boltzmann distribution ``p(v, h) ∝ exp(-E(v, h))``
(Eq. 1.32). Every backend -- exact enumeration, block Gibbs, a simulated noisy
device, simulated annealing, a D-Wave QPU -- has the same call::

    samples = sampler.sample(rbm, num_samples=1000)
    samples.v, samples.h      # {0,1} tensors (N, n_visible), (N, n_hidden) on the RBM's device
    samples.info              # backend metadata: time, sweeps, QPU timing, β_eff, ...

Writing a backend
-----------------
Subclass :class:`Sampler`, give it a ``name``, list its ``sample``-time options
in ``parameters``, and implement ``_sample``. This complete backend draws every
unit independently with probability 1/2 (a valid sampler of the β = 0 model)::

    import torch
    from physamp.samplers import Sampler, register_sampler

    class CoinFlipSampler(Sampler):
        name = "coinflip"
        parameters = {"p": "probability of a 1"}

        def __init__(self, p: float = 0.5, seed: int | None = None):
            super().__init__(seed=seed)
            self.p = p

        def _sample(self, params, num_samples, initial, **opts):
            p = opts.get("p", self.p)
            g = self.generator(params.device)
            v = (torch.rand(num_samples, params.n_visible, generator=g) < p).to(params.dtype)
            h = (torch.rand(num_samples, params.n_hidden, generator=g) < p).to(params.dtype)
            return v, h, {"p": p}

    register_sampler("coinflip", CoinFlipSampler)   # or an entry point, see below

``_sample`` receives validated :class:`~physamp.models.rbm.RBMParams` (detached
``W, b, c``; biases may be batched, one row per chain), the number of samples,
the chain state to continue from (or None), and the per-call overrides of the
options in ``parameters``. It returns ``(v, h, info)``; the base class checks
shapes, moves the result to the RBM's device and dtype, keeps persistent
chains, times the call and fills ``info["backend"]``.

The inverse temperature ``beta`` is the protocol's: a backend that has one
stores it as ``self.beta`` (the base class checks it there, when it is set) and
lists ``"beta"`` in ``parameters`` to take it per call (checked by ``sample``
before ``_sample`` sees it). Either way it is a positive finite real number
(:func:`check_beta`); NaN, ±inf, 0, negative values and non-numbers are refused
with one message, for every backend. ``num_samples`` is any integral number
``>= 1`` (Python or numpy integers; not a bool) and reaches ``_sample`` as an ``int``.

A backend that continues Markov chains sets ``uses_chains = True`` and declares
what a trainer needs to run it as PCD-k / CD-k: ``steps_option``, the name of its
constructor option for the number of sweeps per call (``"steps"`` for ``gibbs``,
``"num_sweeps"`` for ``neal``), and ``supports_persistent = True`` if its
constructor takes ``persistent``. A trainer passes ``k`` under that name and
refuses a chain backend that declares none; backends that draw independent
samples on every call (``uses_chains = False``: ``exact``, ``dimod``, ``dwave``)
need no sweeps, and ``k`` is not applied to them::

    class MyChainSampler(Sampler):
        name = "mychain"
        uses_chains = True
        steps_option = "my_steps"       # PCD-k builds it as MyChainSampler(my_steps=k, ...)
        supports_persistent = True      # ... and persistent=True

        def __init__(self, my_steps: int = 100, *, persistent: bool = False, seed=None):
            super().__init__(seed=seed, persistent=persistent)
            ...

Persistent chains (PCD)
-----------------------
With ``persistent=True`` a sampler keeps the last ``(v, h)`` it returned as a
:class:`Chains` and continues from it on the next call with the same number of
samples and model shape -- the chains live in the sampler, so a PCD trainer only
calls ``sample`` again. ``sampler.chains`` reads them, ``reset_chains()`` drops
them, and ``state_dict()`` / ``load_state_dict()`` carry them (and the random
generator) through checkpoints. A one-off starting point can be passed as
``sample(rbm, n, initial=Chains(v, h))`` (or a visible batch ``initial=v``).

Third-party backends register by name through the entry-point group
``physamp.samplers``::

    [project.entry-points."physamp.samplers"]
    coinflip = "mypkg.coin:CoinFlipSampler"
"""

from __future__ import annotations

import abc
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from physamp.energy import RBMLike, RBMParams, as_params
from physamp.seeding import derive_seed

__all__ = ["Sampler", "Composite", "Samples", "Chains", "UnknownOptionError", "check_beta", "check_positive"]


class UnknownOptionError(TypeError):
    """An option a sampler does not have (a ``TypeError``, as Python raises for kwargs)."""


@dataclass
class Chains:
    """State of a set of Markov chains: ``v: (N, n_visible)``, ``h: (N, n_hidden)`` in {0, 1}."""

    v: torch.Tensor
    h: torch.Tensor | None = None

    @property
    def num_chains(self) -> int:
        return self.v.shape[0]

    def to(self, device=None, dtype=None) -> Chains:
        h = None if self.h is None else self.h.to(device=device, dtype=dtype)
        return Chains(self.v.to(device=device, dtype=dtype), h)


class Samples:
    """Samples returned by every backend.

    v: ``(N, n_visible)`` and h: ``(N, n_hidden)``, values in {0, 1}, on the RBM's
    device in its dtype. info: backend metadata (always ``backend``, ``num_samples``
    and ``time_s``).

    A backend may hand over its states in another memory layout (``gibbs`` keeps
    them unit-major); ``.v`` and ``.h`` are made contiguous on first access, so a
    caller that only continues the chains never pays for the copy.
    """

    __slots__ = ("_v", "_h", "info")

    def __init__(self, v: torch.Tensor, h: torch.Tensor, info: dict[str, Any] | None = None):
        self._v, self._h = v, h
        self.info = {} if info is None else info

    @property
    def v(self) -> torch.Tensor:
        if not self._v.is_contiguous():
            self._v = self._v.contiguous()
        return self._v

    @property
    def h(self) -> torch.Tensor:
        if not self._h.is_contiguous():
            self._h = self._h.contiguous()
        return self._h

    def __len__(self) -> int:
        return self._v.shape[0]

    def __iter__(self):
        """``v, h = sampler.sample(rbm, n)`` (``info`` stays on the object)."""
        return iter((self.v, self.h))

    def __repr__(self) -> str:
        shapes = f"v={tuple(self._v.shape)}, h={tuple(self._h.shape)}"
        return f"Samples({shapes}, backend={self.info.get('backend')!r})"

    @property
    def chains(self) -> Chains:
        return Chains(self._v, self._h)


def check_positive(value, name: str, meaning: str = "") -> float:
    """``value`` as a float if it is a finite real number > 0, else a one-line ``ValueError``.

    A real number is a Python or numpy number or a one-element tensor, not a bool. The one
    check of every positive-number option of the sampler layer (β, prefactors, chain
    strengths, ...); ``meaning`` is added to the message in parentheses.
    """
    x = value
    if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.is_complex():
        x = x.item()
    note = f" ({meaning})" if meaning else ""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise ValueError(
            f"{name} must be a positive finite number{note}, got {value!r} of type {type(value).__name__}"
        )
    x = float(x)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive finite number{note}, got {x!r}")
    return x


def check_beta(beta, name: str = "beta") -> float:
    """``beta`` as a float if it is a valid inverse temperature, else a one-line ``ValueError``.

    Valid: a real number (Python, numpy or a one-element tensor; not a bool) that is
    finite and > 0 (:func:`check_positive`). This is the one check of β for every backend
    (:class:`Sampler` applies it to ``self.beta`` and to a per-call ``beta``).
    """
    return check_positive(beta, name, "an inverse temperature, 1 for the model itself")


class _Beta:
    """The ``beta`` attribute of every sampler: checked by :func:`check_beta` when it is set.

    Reading it on a backend that never set one raises ``AttributeError``, as for any
    missing attribute (so ``hasattr(sampler, "beta")`` tells whether a backend has one).
    """

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__!r} sampler has no {self.name!r}") from None

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = check_beta(value, self.name)


def _check_num_samples(num_samples) -> int:
    """``num_samples`` as an int: any integral number >= 1 (Python or numpy ints), not a bool."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
        raise ValueError(
            f"num_samples must be a positive integer, got {num_samples!r} "
            f"of type {type(num_samples).__name__}"
        )
    return int(num_samples)


def _initial_to_chains(initial, params: RBMParams, num_samples: int) -> Chains:
    if isinstance(initial, Samples):
        initial = initial.chains
    if isinstance(initial, torch.Tensor):
        initial = Chains(initial)
    if not isinstance(initial, Chains):
        raise TypeError(
            f"initial must be a Chains, Samples or a (N, n_visible) tensor, got {type(initial).__name__}"
        )
    v, h = initial.v, initial.h
    if v.dim() != 2 or v.shape != (num_samples, params.n_visible):
        raise ValueError(
            f"initial visible states have shape {tuple(v.shape)}; expected "
            f"({num_samples}, {params.n_visible}) = (num_samples, n_visible)"
        )
    if h is not None and tuple(h.shape) != (num_samples, params.n_hidden):
        raise ValueError(
            f"initial hidden states have shape {tuple(h.shape)}; expected ({num_samples}, {params.n_hidden})"
        )
    for name, t in (("visible", v), ("hidden", h)):
        if t is not None and not ((t == 0) | (t == 1)).all():
            raise ValueError(f"initial {name} states must be 0/1 valued")
    return initial.to(device=params.device, dtype=params.dtype)


class Sampler(abc.ABC):
    """Base class of every physamp backend (see the module docstring).

    A backend sets these class attributes.

    Attributes:
        name: the registry name (``make_sampler(name)``).
        parameters: ``{option: description}`` of the options ``sample`` accepts as
            per-call overrides (dimod's ``parameters``).
        uses_chains: whether the backend continues Markov chains (Gibbs, SA at
            fixed β); exact or hardware samplers ignore ``initial``.
        steps_option: the constructor option that sets the number of sweeps per
            call (``"steps"``, ``"num_sweeps"``), or None. PCD-k passes ``k`` under
            this name; a chain backend (``uses_chains``) without one cannot be
            trained with PCD-k / CD-k. A composite that passes its options to a
            child declares the child's.
        supports_persistent: whether the constructor takes ``persistent`` (chains
            kept between calls, for PCD).
    """

    name: ClassVar[str] = "sampler"
    parameters: ClassVar[dict[str, str]] = {}
    #: The inverse temperature of a backend that has one (checked when set; see :func:`check_beta`).
    beta = _Beta()
    uses_chains: ClassVar[bool] = False
    steps_option: ClassVar[str | None] = None
    supports_persistent: ClassVar[bool] = False

    def __init__(self, *, seed: int | None = None, persistent: bool = False) -> None:
        self.seed = seed
        self.persistent = bool(persistent)
        self._generators: dict[str, torch.Generator] = {}
        self._chains: Chains | None = None

    # --- self-description ------------------------------------------------------------
    @property
    def properties(self) -> dict[str, Any]:
        """Static facts about the backend (dimod's ``properties``)."""
        return {"name": self.name, "uses_chains": self.uses_chains, "persistent": self.persistent}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._repr_options().items())
        return f"{type(self).__name__}({opts})"

    def _repr_options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.parameters if hasattr(self, k)}

    # --- randomness -------------------------------------------------------------------
    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """The sampler's ``torch.Generator`` on ``device``: ``derive_seed(seed, "generator", type)``."""
        device = torch.device(device)
        key = str(device)
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=device)
            if self.seed is None:
                g.seed()
            else:
                g.manual_seed(derive_seed(int(self.seed), "generator", device.type))
            self._generators[key] = g
        return g

    def numpy_seed(self) -> int:
        """A 32-bit seed drawn from the CPU generator, for numpy/C backends."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator("cpu")).item())

    # --- chains -----------------------------------------------------------------------
    @property
    def chains(self) -> Chains | None:
        """The persistent chains (None until the first persistent call)."""
        return self._chains

    def reset_chains(self) -> None:
        self._chains = None

    def state_dict(self) -> dict[str, Any]:
        """Chain state and generator states, for checkpoints (tensors only, no pickled code)."""
        sd: dict[str, Any] = {"generators": {k: g.get_state() for k, g in self._generators.items()}}
        if self._chains is not None:
            sd["chains_v"] = self._chains.v
            if self._chains.h is not None:
                sd["chains_h"] = self._chains.h
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        for key, state in sd.get("generators", {}).items():
            self.generator(key).set_state(state)
        if "chains_v" in sd:
            self._chains = Chains(sd["chains_v"], sd.get("chains_h"))
        else:
            self._chains = None

    # --- the call ---------------------------------------------------------------------
    def _check_overrides(self, overrides: dict[str, Any]) -> None:
        """Refuse unknown per-call options (a backend may widen what it accepts)."""
        unknown = sorted(set(overrides) - set(self.parameters))
        if unknown:
            valid = ", ".join(sorted(self.parameters)) or "(none)"
            raise UnknownOptionError(
                f"{self.name!r} sampler got unknown option(s) {unknown}; its per-call options are: {valid}"
            )

    def sample(
        self,
        rbm: RBMLike,
        num_samples: int = 1000,
        *,
        initial: Chains | Samples | torch.Tensor | None = None,
        **overrides: Any,
    ) -> Samples:
        """Draw ``num_samples`` joint samples of ``rbm``; returns :class:`Samples`."""
        num_samples = _check_num_samples(num_samples)
        self._check_overrides(overrides)
        if "beta" in overrides:  # the protocol's inverse temperature, for every backend
            overrides["beta"] = check_beta(overrides["beta"])
        params = as_params(rbm).validate()
        if params.batched and params.batch_size != num_samples:
            raise ValueError(
                f"the parameters carry {params.batch_size} bias vectors (one per chain) but "
                f"{num_samples} samples were requested"
            )
        chains = None
        if initial is not None:
            chains = _initial_to_chains(initial, params, num_samples)
        elif self.persistent and self._chains is not None:
            c = self._chains
            if c.v.shape == (num_samples, params.n_visible) and (
                c.h is None or c.h.shape[1] == params.n_hidden
            ):
                chains = c.to(device=params.device, dtype=params.dtype)
        t0 = time.perf_counter()
        v, h, info = self._sample(params, num_samples, chains, **overrides)
        elapsed = time.perf_counter() - t0
        v = v.to(device=params.device, dtype=params.dtype)
        h = h.to(device=params.device, dtype=params.dtype)
        if v.shape != (num_samples, params.n_visible) or h.shape != (num_samples, params.n_hidden):
            raise RuntimeError(
                f"backend {self.name!r} returned v {tuple(v.shape)}, h {tuple(h.shape)}; expected "
                f"({num_samples}, {params.n_visible}) and ({num_samples}, {params.n_hidden})"
            )
        if self.persistent:
            self._chains = Chains(v, h)  # in the backend's own layout: free to continue
        info = {"backend": self.name, "num_samples": num_samples, "time_s": elapsed, **info}
        return Samples(v, h, info)

    @abc.abstractmethod
    def _sample(
        self, params: RBMParams, num_samples: int, initial: Chains | None, **overrides: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Return ``(v, h, info)`` for validated ``params``; see the module docstring."""


class Composite(Sampler):
    """A sampler that wraps a child sampler (dimod's composite idea).

    Noise, magnitude limits and embeddings are composites: they transform the
    parameters (or the problem) and delegate the sampling to ``child``, so they
    wrap any backend. Chains live in the child.
    """

    def __init__(self, child: Sampler, *, seed: int | None = None) -> None:
        if not isinstance(child, Sampler):
            raise TypeError(f"child must be a physamp Sampler, got {type(child).__name__}")
        super().__init__(seed=seed, persistent=False)
        self.child = child

    @property
    def uses_chains(self) -> bool:  # type: ignore[override]
        return self.child.uses_chains

    @property
    def properties(self) -> dict[str, Any]:
        return {**super().properties, "child": self.child.properties}

    @property
    def chains(self) -> Chains | None:
        return self.child.chains

    def reset_chains(self) -> None:
        self.child.reset_chains()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "child": self.child.state_dict()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict({k: v for k, v in sd.items() if k != "child"})
        if "child" in sd:
            self.child.load_state_dict(sd["child"])
