"""Checkpoints: one layout for every model, written atomically, read without running pickled code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts saved with
``torch.save``. It is written to a temporary file in the same directory, flushed
to disk and renamed over the target (``os.replace`` is atomic on POSIX and
Windows), so a crash mid-write leaves the previous checkpoint intact. It is read
with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.

The one layout, built by :func:`checkpoint_payload` (what :class:`~physamp.training.TrainLoop`
writes, and what :func:`save_components` writes for a model saved outside a loop)::

    {
        "physamp_checkpoint": 1,          # format version
        "step": 1200,                     # steps done (0 outside a training loop)
        "config": {...},                  # the run's config, as plain JSON (to_jsonable)
        "state:model": {...},             # one state dict per component ...
        "state:optimizer": {...},         # ... named as in TrainLoop's ``state``
        "rng": {"torch": ..., "gen:generator": ...},   # TrainLoop only: generator states
        ...                               # ``extra`` entries (e.g. "seconds", "loop")
    }

Read one component with :func:`load_component` (``load_component(path, "model")``
is the model's state dict), the config with :func:`checkpoint_config`, and the
names of the components with :func:`checkpoint_components`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from physamp.training.config import to_jsonable

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "atomic_torch_save",
    "load_checkpoint",
    "checkpoint_payload",
    "save_components",
    "load_component",
    "checkpoint_components",
    "checkpoint_config",
    "rng_state",
    "set_rng_state",
]

FORMAT_VERSION = 1
COMPONENT_PREFIX = "state:"
_RESERVED = ("physamp_checkpoint", "step", "config", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, truncated, corrupt or from another model."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: a temporary file beside it, fsync, rename. The file
    gets the usual permissions (``0666`` less the umask; ``mkstemp`` alone would leave it ``0600``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    return atomic_torch_save({"physamp_checkpoint": FORMAT_VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable physamp checkpoint (truncated or corrupt: {type(err).__name__}: "
            f"{str(err)[:200]}). Use an earlier checkpoint or retrain; nothing was changed on disk."
        ) from None
    if not isinstance(state, dict) or "physamp_checkpoint" not in state:
        raise CheckpointError(f"{path} is a torch file but not a physamp checkpoint")
    _check_layout(state, str(path))
    return state


def _check_layout(state: dict, where: str) -> None:
    """The entries every reader relies on have the type of the one layout, or a one-line error naming
    ``where``: the format version, ``step``, ``config``, ``rng`` and every ``state:<name>`` component."""
    version = state["physamp_checkpoint"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{where}: its format version is {version!r}, not a positive int; the file is damaged"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where} was written by a newer physamp (format {version}); upgrade physamp")
    bad = None
    step = state.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        bad = f"its 'step' is {step!r}, not a non-negative int"
    elif not isinstance(state.get("config", {}), Mapping):
        bad = f"its 'config' entry is a {type(state['config']).__qualname__}, not a dict"
    elif not isinstance(state.get("rng", {}), Mapping):
        bad = f"its 'rng' entry is a {type(state['rng']).__qualname__}, not a dict of generator states"
    else:
        for key, value in state.items():
            if isinstance(key, str) and key.startswith(COMPONENT_PREFIX) and not isinstance(value, Mapping):
                name = key[len(COMPONENT_PREFIX) :]
                bad = f"its component {name!r} is a {type(value).__qualname__}, not a state dict"
                break
    if bad is not None:
        raise CheckpointError(f"{where}: {bad}; the file is damaged or was not written by physamp")


def _check_storable(value: Any, where: str) -> None:
    """Refuse, at save time, what ``torch.load(weights_only=True)`` would refuse at load time."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.dtype, torch.device)):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_storable(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_storable(v, f"{where}[{i}]")
    else:
        raise TypeError(
            f"{where} is a {type(value).__qualname__}, which a checkpoint cannot hold (it is read with "
            "weights_only=True); store tensors, numbers, strings, lists or dicts of them"
        )


def checkpoint_payload(
    components: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    step: int = 0,
    rng: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of the one layout (see the module docstring).

    Args:
        components: ``{name: object}``: an object with ``state_dict()`` (module, optimizer,
            scheduler, sampler, :class:`~physamp.training.data.ResumableLoader`) or a state
            dict already taken; stored as ``"state:<name>"``. A ``torch.Generator`` is stored
            in ``"rng"`` as ``"gen:<name>"``.
        config: the run's config; stored as :func:`~physamp.training.config.to_jsonable` of it.
        step: training steps done.
        rng: generator states (:func:`rng_state`), written by the training loop.
        extra: further entries (e.g. ``{"seconds": 12.5}``); their names must not clash with
            the layout's own keys, and they must be tensors, numbers, strings, lists or dicts.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    payload: dict[str, Any] = {
        "physamp_checkpoint": FORMAT_VERSION,
        "step": step,
        "config": to_jsonable(dict(config or {})),
    }
    rng_out = dict(rng or {})
    for name, obj in components.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"component names must be non-empty strings, got {name!r}")
        if isinstance(obj, torch.Generator):
            rng_out[f"gen:{name}"] = obj.get_state()
        elif hasattr(obj, "state_dict"):
            payload[COMPONENT_PREFIX + name] = obj.state_dict()
        elif isinstance(obj, Mapping):
            payload[COMPONENT_PREFIX + name] = dict(obj)
        else:
            raise TypeError(
                f"component {name!r} is a {type(obj).__qualname__}: give an object with state_dict() "
                "(a module, optimizer, scheduler, ...), a state dict, or a torch.Generator"
            )
    if rng_out:
        payload["rng"] = rng_out
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or key in _RESERVED or key.startswith(COMPONENT_PREFIX):
            raise ValueError(
                f"extra entry {key!r} clashes with the checkpoint layout's own keys "
                f"({', '.join(_RESERVED)}, {COMPONENT_PREFIX}*); rename it"
            )
        _check_storable(value, f"extra[{key!r}]")
        payload[key] = value
    return payload


def save_components(
    path: str | os.PathLike,
    components: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``components`` (and ``config``, ``step``, ``extra``) atomically in the one layout.

    ``save_components(path, {"model": rbm}, config=cfg, extra={"seconds": 3.2})`` saves a
    model outside a training loop; ``load_component(path)`` reads its state dict back.
    """
    return save_checkpoint(path, checkpoint_payload(components, config=config, step=step, extra=extra))


def _as_checkpoint(path_or_ckpt: str | os.PathLike | Mapping[str, Any], map_location) -> tuple[dict, str]:
    if isinstance(path_or_ckpt, Mapping):
        return dict(path_or_ckpt), "the checkpoint"
    return load_checkpoint(path_or_ckpt, map_location=map_location), str(path_or_ckpt)


def checkpoint_components(path_or_ckpt: str | os.PathLike | Mapping[str, Any]) -> list[str]:
    """The names of the components a checkpoint (a path or a loaded dict) holds, sorted."""
    ckpt, _ = _as_checkpoint(path_or_ckpt, "cpu")
    return sorted(
        k[len(COMPONENT_PREFIX) :] for k in ckpt if isinstance(k, str) and k.startswith(COMPONENT_PREFIX)
    )


def load_component(
    path_or_ckpt: str | os.PathLike | Mapping[str, Any],
    name: str = "model",
    *,
    map_location: str | torch.device | None = "cpu",
) -> Mapping[str, Any]:
    """The state dict of component ``name`` of a checkpoint (a path, or a dict from :func:`load_checkpoint`).

    ``model.load_state_dict(load_component("runs/x/checkpoint.pt"))`` restores a model
    trained by :class:`~physamp.training.TrainLoop` or saved by :func:`save_components`.
    A missing component is a :class:`CheckpointError` that names the ones the file has.
    """
    ckpt, where = _as_checkpoint(path_or_ckpt, map_location)
    key = COMPONENT_PREFIX + name
    if key not in ckpt:
        have = checkpoint_components(ckpt)
        holds = (
            f"its components are {have}"
            if have
            else (
                f"it holds no components at all (keys: {sorted(map(str, ckpt))[:10]}), so it was not written "
                "in the one checkpoint layout (TrainLoop / save_components)"
            )
        )
        raise CheckpointError(f"{where} has no component {name!r}: {holds}. Pass one of those as name=.")
    state = ckpt[key]
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{where}: component {name!r} is a {type(state).__qualname__}, not a state dict"
        )
    return state


def checkpoint_config(path_or_ckpt: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """The config stored in a checkpoint (a path or a loaded dict); ``{}`` if it has none."""
    ckpt, where = _as_checkpoint(path_or_ckpt, "cpu")
    config = ckpt.get("config", {})
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{where}: its 'config' entry is a {type(config).__qualname__}, not a dict")
    return dict(config)


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """States of torch's global CPU generator and of the named generators."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in (generators or {}).items():
        out[f"gen:{name}"] = g.get_state()
    return out


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` returned (the global CPU generator, CUDA's, and the named ones)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        key = f"gen:{name}"
        if key in state:
            g.set_state(state[key])
