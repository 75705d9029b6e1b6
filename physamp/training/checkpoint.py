"""Checkpoints: one format for every model, written atomically, read without running pickled code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts saved with
``torch.save``. It is written to a temporary file in the same directory, flushed
to disk and renamed over the target (``os.replace`` is atomic on POSIX and
Windows), so a crash mid-write leaves the previous checkpoint intact. It is read
with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, truncated, corrupt or from another model."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"physamp_checkpoint": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
    if state["physamp_checkpoint"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer physamp (format {state['physamp_checkpoint']}); upgrade physamp"
        )
    return state


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """States of torch's global CPU generator and of the named generators."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in (generators or {}).items():
        out[f"gen:{name}"] = g.get_state()
    return out


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        key = f"gen:{name}"
        if key in state:
            g.set_state(state[key])
