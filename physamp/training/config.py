"""The identity of a run: its config as plain JSON that is the same in every process.

A run directory is claimed by its config (``config.json``) and every checkpoint
stores that config, so that a restart with other settings is refused instead of
silently mixing two runs. Comparing configs only works if their JSON form never
depends on the process that built them: ``json.dumps(config, default=str)`` puts
``repr``s such as ``<Sampler object at 0x7f...>`` in, and those change at every
start. :func:`to_jsonable` gives every value a stable form instead:

==============================  =================================================
value                           JSON form
==============================  =================================================
``None``, bool, int, str        itself
float                           itself; NaN and ±inf as the strings ``"nan"``, ...
list, tuple, set                a list (a set sorted by its canonical JSON)
dict                            a dict with ``str`` keys
dataclass instance              the dict of its fields
enum member                     its value
``pathlib.Path``                its string
``torch.device`` / dtype        ``"cuda:0"``, ``"torch.float32"``
numpy scalar                    the Python number
tensor / array, <= 64 entries   the nested list
larger tensor / array           ``"torch.Tensor[float32 (784, 500) sha256:…]"``
function, class                 ``"module.qualname"``
any other object                ``"module.ClassName"`` plus its size where it has a
                                ``nodelist`` / ``visible`` (dimod samplers, topologies)
==============================  =================================================

:func:`canonical_config` is the one string two configs are compared by, and
:func:`config_diff` names the (dotted) keys where two configs differ.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from physamp.credentials import REDACTED, is_credential_key, redact_tokens

__all__ = ["to_jsonable", "canonical_config", "config_diff"]

_SMALL_ARRAY = 64


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _array(value: Any, kind: str) -> Any:
    """A tensor or numpy array: the values when small, else shape, dtype and a content digest."""
    if kind == "torch":
        import torch

        t = value.detach().cpu()
        if t.numel() <= _SMALL_ARRAY:
            return to_jsonable(t.tolist())
        dtype = str(t.dtype).removeprefix("torch.")
        raw = t.contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes()
        shape, name = tuple(t.shape), "torch.Tensor"
    else:
        if value.size <= _SMALL_ARRAY:
            return to_jsonable(value.tolist())
        dtype, raw = str(value.dtype), value.tobytes(order="C")
        shape, name = tuple(value.shape), "numpy.ndarray"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"{name}[{dtype} {shape} sha256:{digest}]"


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dict / list / str / number / bool / None), the same in every process.

    Values JSON holds are kept as they are; every other value gets the stable form of
    the module docstring's table, never a ``repr`` with a memory address. Use it for
    anything that goes into a run's config.

    >>> to_jsonable({"lr": 0.1, "betas": (0.5, 0.999), 3: float("inf")})
    {'lr': 0.1, 'betas': [0.5, 0.999], '3': 'inf'}

    Secrets never reach a config or checkpoint: the value of a key named like a credential
    (``token``, ``api_token``, ``api_key``, ``password``, ``secret``, ...) becomes
    ``"<redacted>"``, and so does any token-shaped text (a short prefix, a dash and 32 or
    more hex digits, as a D-Wave Leap token): the rules of :mod:`physamp.credentials`.

    >>> to_jsonable({"sampler_options": {"token": "my-leap-token", "prefactor": 0.5}})
    {'sampler_options': {'token': '<redacted>', 'prefactor': 0.5}}
    """
    if isinstance(value, str):
        return redact_tokens(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {
            to_jsonable(str(k)): REDACTED if v is not None and is_credential_key(k) else to_jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, PurePath):
        return str(value)
    module = type(value).__module__
    if module == "torch" or module.startswith("torch."):
        import torch

        if isinstance(value, (torch.device, torch.dtype)):
            return str(value)
        if isinstance(value, torch.Tensor):
            return _array(value, "torch")
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        if isinstance(value, np.generic):
            return to_jsonable(value.item())
        if isinstance(value, np.ndarray):
            return _array(value, "numpy")
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return _qualified(value)
    desc = _qualified(type(value))
    for attr in ("nodelist", "visible"):
        if hasattr(value, attr):
            try:
                desc += f"[{len(getattr(value, attr))} {attr}]"
            except TypeError:
                pass
    return desc


def canonical_config(config: Any) -> str:
    """The one string a config is compared by: :func:`to_jsonable`, then compact JSON with sorted keys."""
    return json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The keys (dotted for nested dicts, e.g. ``"data.name"``) whose values differ between two configs."""
    old, new = to_jsonable(old), to_jsonable(new)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if canonical_config(old) == canonical_config(new) else [prefix or "<config>"]
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else key
        if key not in old or key not in new:
            out.append(name)
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            out.extend(config_diff(old[key], new[key], name))
        elif canonical_config(old[key]) != canonical_config(new[key]):
            out.append(name)
    return out
