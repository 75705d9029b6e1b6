"""One registry of sampler backends, chosen by name everywhere (CLI, config, notebook)."""

from __future__ import annotations

import importlib
from typing import Any

from physamp.samplers.base import Sampler

__all__ = ["make_sampler", "register_sampler", "available_samplers", "sampler_class", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "physamp.samplers"

# name -> "module:Class" (imported on first use, so Ocean loads only when needed)
_BUILTIN: dict[str, str] = {
    "exact": "physamp.samplers.exact:ExactSampler",
    "gibbs": "physamp.samplers.gibbs:GibbsSampler",
    "simulated": "physamp.samplers.simulated:SimulatedDevice",
    "neal": "physamp.samplers.neal:NealSampler",
    "dwave": "physamp.samplers.dwave:DWaveBackend",
    "dimod": "physamp.samplers.dimod_backend:DimodBackend",
    "quantum": "physamp.samplers.quantum:QuantumSampler",
    "openjij": "physamp.samplers.openjij_backend:OpenJijBackend",
}
_REGISTERED: dict[str, Any] = {}


def register_sampler(name: str, cls: type[Sampler] | str) -> None:
    """Register a backend class (or ``"module:Class"``) under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError("a sampler name must be a non-empty string")
    _REGISTERED[name] = cls


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}  # Python >= 3.10


def available_samplers() -> list[str]:
    """Names accepted by :func:`make_sampler` (built-in, registered and entry points)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def _resolve(name: str) -> type[Sampler]:
    target = _REGISTERED.get(name) or _BUILTIN.get(name)
    if target is None:
        ep = _entry_points().get(name)
        if ep is None:
            raise ValueError(
                f"unknown sampler {name!r}; available: {', '.join(available_samplers())}. "
                f"Third-party backends register through the entry-point group {ENTRY_POINT_GROUP!r}."
            )
        target = ep.load()
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    if not (isinstance(target, type) and issubclass(target, Sampler)):
        raise TypeError(f"sampler {name!r} resolves to {target!r}, which is not a physamp Sampler")
    return target


def sampler_class(name: str) -> type[Sampler]:
    """The backend class registered as ``name``, not built: its declarations (``uses_chains``,
    ``steps_option``, ``supports_persistent``, ``parameters``) can be read before any options
    are chosen. Raises ``ValueError`` for an unknown name (listing the known ones)."""
    if not isinstance(name, str):
        raise TypeError(f"a sampler name must be a string, got {type(name).__name__}")
    return _resolve(name)


def make_sampler(name: str | Sampler | Any, **options: Any) -> Sampler:
    """Build a backend by name: ``make_sampler("gibbs", steps=15, persistent=True)``.

    ``name`` may also be a :class:`Sampler` (returned as is) or any dimod sampler
    instance (wrapped by the ``dimod`` backend). Unknown names and options raise
    with the list of valid ones.
    """
    if isinstance(name, Sampler):
        if options:
            raise TypeError("options cannot be applied to an already-built Sampler")
        return name
    if not isinstance(name, str):
        if hasattr(name, "sample") and hasattr(name, "parameters"):  # a dimod sampler
            dimod_backend: Any = _resolve("dimod")  # DimodSampler, whose first option is sampler=
            return dimod_backend(sampler=name, **options)
        raise TypeError(f"make_sampler needs a backend name, got {type(name).__name__}")
    cls = _resolve(name)
    try:
        return cls(**options)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        import inspect

        sig = inspect.signature(cls.__init__)
        valid = [p for p in sig.parameters if p not in ("self", "kwargs", "args")]
        raise TypeError(f"{err}. Options of the {name!r} sampler: {', '.join(valid)}") from None
