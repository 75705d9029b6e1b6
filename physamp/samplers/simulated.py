"""The thesis's simulated physical device (§3.3-3.8) as a composite around any sampler.

A physical sampler realises the parameters it is asked for only approximately
and within a limited range. :class:`SimulatedDevice` turns the requested RBM into
the one a device would actually sample and hands it to a child backend
(``gibbs`` by default; ``neal``, ``exact`` or any other work too):

1. **Magnitude limits** ``max_weight`` / ``max_bias``: requested values are clipped
   to ``[-max, max]`` (the range a device can program).
2. **Weight noise** ``weight_noise = σ_W``: Gaussian noise on each weight, drawn
   once for each new requested value of that weight and reused while it is
   unchanged (§3.3: a coupler is programmed once and keeps its error).
3. **Bias noise** ``bias_noise = σ_b``: Gaussian noise on the biases, redrawn for
   every sample (each chain of each call gets its own draw, held fixed over the
   sweeps that produce that sample).

``space="rbm"`` (default; what the thesis simulated, §3.4) applies limits and
noise to ``W, b, c``; ``space="ising"`` applies them to the Ising ``J, h`` of
Eq. 3.1, as a device does (the same numbers then mean different things:
``J = -W/4``). ``deterministic=True`` models *control error* instead of random
noise, a mode the thesis names but did not model: the error of a parameter is a
fixed pseudo-random function of (its position, the requested value, ``seed``),
so the same requested J always gets the same error -- for biases too.

With zero noise and no limits the child receives the parameters unchanged, so
``simulated`` is then exactly its child (``gibbs``, sample for sample).

A chain child's convergence diagnostic (``info["rhat"]``, ``"ess"``, ``"converged"``,
``"convergence"``: split-R̂ of its chains' energies under the realised parameters, see
:mod:`physamp.samplers.diagnostics`) is copied to the top of the device's ``info``; its
``steps="auto"`` / ``num_sweeps="auto"`` pass through like any child option.
"""

from __future__ import annotations

from typing import Any

import torch

from physamp.energy import RBMParams
from physamp.ising import from_ising_arrays, to_ising_arrays
from physamp.samplers.base import Chains, Composite, Sampler
from physamp.seeding import derive_seed

__all__ = ["SimulatedDevice", "hashed_normal"]

#: The child's convergence diagnostic, copied to the top of ``info`` (see physamp.samplers.diagnostics).
_DIAGNOSTIC_KEYS = ("rhat", "ess", "converged", "convergence")

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _srl(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _srl(x, 30)) * _M1
    x = (x ^ _srl(x, 27)) * _M2
    return x ^ _srl(x, 31)


def hashed_normal(values: torch.Tensor, seed: int, stream: int = 0) -> torch.Tensor:
    """A standard normal that is a fixed function of (position, value, seed, stream).

    The value's float64 bit pattern and its flat index are hashed (splitmix64)
    into a 53-bit uniform and mapped through the inverse normal CDF, so equal
    requests at the same position always give the same number.
    """
    bits = values.detach().to(torch.float64).contiguous().view(torch.int64)
    idx = torch.arange(values.numel(), device=values.device, dtype=torch.int64).view(values.shape)
    x = _splitmix64(bits ^ _splitmix64(idx * 2 + stream * 1_000_003 + int(seed) * 7919))
    u = (_srl(x, 11).to(torch.float64) + 0.5) / float(1 << 53)
    return torch.special.ndtri(u).to(values.dtype)


class SimulatedDevice(Composite):
    """A simulated physical device: limits and noise around a child sampler.

    Args:
        child: backend name or :class:`Sampler` (default ``"gibbs"``).
        weight_noise: σ of Gaussian noise on weights (J in Ising space).
        bias_noise: σ of Gaussian noise on biases (h in Ising space), per sample.
        max_weight, max_bias: magnitude limits (None: no limit).
        space: ``"rbm"`` (thesis) or ``"ising"`` (device).
        deterministic: control-error mode (the error is a fixed function of the
            requested value; see the module docstring).
        seed: seeds the noise, and the child when it is built here.
        **child_options: options of the child backend (``steps``, ``persistent``, ...).
    """

    name = "simulated"

    def __init__(
        self,
        child: str | Sampler = "gibbs",
        *,
        weight_noise: float = 0.0,
        bias_noise: float = 0.0,
        max_weight: float | None = None,
        max_bias: float | None = None,
        space: str = "rbm",
        deterministic: bool = False,
        seed: int | None = None,
        **child_options: Any,
    ):
        if isinstance(child, str):
            from physamp.samplers.registry import make_sampler

            child = make_sampler(child, seed=seed, **child_options)
        elif child_options:
            raise TypeError(f"child options {sorted(child_options)} need a child given by name")
        super().__init__(child, seed=None if seed is None else derive_seed(int(seed), "device-noise"))
        for name, val in (("weight_noise", weight_noise), ("bias_noise", bias_noise)):
            if not (isinstance(val, (int, float)) and val >= 0 and val == val and val != float("inf")):
                raise ValueError(f"{name} must be a finite σ >= 0, got {val!r}")
        for name, limit in (("max_weight", max_weight), ("max_bias", max_bias)):
            if limit is not None and not (isinstance(limit, (int, float)) and 0 < limit < float("inf")):
                raise ValueError(f"{name} must be None or a positive finite number, got {limit!r}")
        if space not in ("rbm", "ising"):
            raise ValueError(f"space must be 'rbm' or 'ising', got {space!r}")
        self.weight_noise, self.bias_noise = float(weight_noise), float(bias_noise)
        self.max_weight, self.max_bias = max_weight, max_bias
        self.space, self.deterministic = space, bool(deterministic)
        self._noise_seed = 0 if seed is None else int(seed)
        self._last_request: torch.Tensor | None = None
        self._weight_error: torch.Tensor | None = None

    @property
    def parameters(self) -> dict[str, str]:  # type: ignore[override]
        return dict(self.child.parameters)

    # the child's options (``steps``, ``num_sweeps``, ``persistent``, ...) pass straight
    # through the constructor, so the device declares what its child declares
    @property
    def steps_option(self) -> str | None:  # type: ignore[override]
        """The child's ``steps_option`` (child options pass through)."""
        return self.child.steps_option

    @property
    def supports_persistent(self) -> bool:  # type: ignore[override]
        """The child's ``supports_persistent`` (the chains live in the child)."""
        return self.child.supports_persistent

    def settings(self) -> dict[str, Any]:
        """The device's noise and limits (in ``properties`` and the repr)."""
        names = ("weight_noise", "bias_noise", "max_weight", "max_bias", "space", "deterministic")
        return {k: getattr(self, k) for k in names}

    @property
    def properties(self) -> dict[str, Any]:
        return {**super().properties, **self.settings()}

    def _repr_options(self) -> dict[str, Any]:
        return {"child": self.child, **self.settings()}

    @property
    def is_identity(self) -> bool:
        return (
            self.weight_noise == 0
            and self.bias_noise == 0
            and self.max_weight is None
            and self.max_bias is None
        )

    # --- the device's view of the parameters -----------------------------------------
    def weight_error(self, request: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Error on each requested weight: redrawn only where the request changed."""
        if self.weight_noise == 0:
            return torch.zeros_like(request)
        if self.deterministic:
            err = self.weight_noise * hashed_normal(request, self._noise_seed, stream=0)
        else:
            g = self.generator(request.device)
            last = self._last_request
            if last is None or last.shape != request.shape or last.device != request.device:
                err = self.weight_noise * torch.randn(
                    request.shape, generator=g, device=request.device, dtype=request.dtype
                )
            else:
                changed = request != last
                assert self._weight_error is not None  # set together with _last_request
                err = self._weight_error.clone()
                n = int(changed.sum())
                if n:
                    err[changed] = self.weight_noise * torch.randn(
                        n, generator=g, device=request.device, dtype=request.dtype
                    )
            self._last_request, self._weight_error = request.clone(), err
        return err if mask is None else err * mask.to(err.dtype)

    def bias_error(self, request: torch.Tensor, num_samples: int, stream: int) -> torch.Tensor:
        """``(num_samples, n)`` bias errors, a fresh draw for every sample."""
        if self.deterministic:
            return self.bias_noise * hashed_normal(request, self._noise_seed, stream=stream)
        g = self.generator(request.device)
        shape = (num_samples, request.shape[-1])
        return self.bias_noise * torch.randn(shape, generator=g, device=request.device, dtype=request.dtype)

    def device_params(self, params: RBMParams, num_samples: int) -> RBMParams:
        """The parameters the device realises for a request ``params`` (one call's worth)."""
        if self.is_identity:
            return params
        W, b, c = params.W, params.b, params.c
        if self.space == "ising":
            b, c, W, _ = to_ising_arrays(W, b, c)  # (h_visible, h_hidden, J)
        if self.max_weight is not None:
            W = W.clamp(-self.max_weight, self.max_weight)
        if self.max_bias is not None:
            b = b.clamp(-self.max_bias, self.max_bias)
            c = c.clamp(-self.max_bias, self.max_bias)
        W = W + self.weight_error(W, params.mask)
        if self.bias_noise > 0:
            b = b + self.bias_error(b, num_samples, stream=1)
            c = c + self.bias_error(c, num_samples, stream=2)
        if self.space == "ising":
            W, b, c = from_ising_arrays(b, c, W)
            if params.mask is not None:
                W = W * params.mask.to(W.dtype)
        return RBMParams(W, b, c, params.mask)

    def _sample(self, params: RBMParams, num_samples: int, initial: Chains | None, **opts):
        dev = self.device_params(params, num_samples)
        s = self.child.sample(dev, num_samples, initial=initial, **opts)
        child_info = {k: v for k, v in s.info.items() if k not in ("num_samples", "time_s")}
        # the child's convergence diagnostic (gibbs, neal) is the device's: its chains are the device's
        diagnostic = {k: child_info[k] for k in _DIAGNOSTIC_KEYS if k in child_info}
        info = {
            **diagnostic,
            "child": child_info,
            "weight_noise": self.weight_noise,
            "bias_noise": self.bias_noise,
            "max_weight": self.max_weight,
            "max_bias": self.max_bias,
            "space": self.space,
            "deterministic": self.deterministic,
        }
        return s.v, s.h, info

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self._last_request is not None:
            sd["last_request"], sd["weight_error"] = self._last_request, self._weight_error
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict({k: v for k, v in sd.items() if k not in ("last_request", "weight_error")})
        self._last_request, self._weight_error = sd.get("last_request"), sd.get("weight_error")
