"""``physamp experiment NAME``: cells → sweep (cached) → CSV, PNG plot, Markdown table."""

from __future__ import annotations

import functools
import importlib
import json
import os
import time
from pathlib import Path
from types import ModuleType

from physamp.experiments import EXPERIMENTS
from physamp.experiments.common import write_csv
from physamp.experiments.sweep import run_sweep

__all__ = [
    "load_experiment",
    "run_experiment",
    "available_experiments",
    "check_overrides",
    "describe_presets",
    "run_cell_recording_data",
]


def available_experiments() -> list[str]:
    """The names of ``EXPERIMENTS`` whose modules import in this installation."""
    out = []
    for name, module in EXPERIMENTS.items():
        try:
            importlib.import_module(module)
            out.append(name)
        except ImportError:
            pass
    return out


def load_experiment(name: str) -> ModuleType:
    """The module of experiment ``name``; a ``ValueError`` names the known ones, or why it does not import."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(available_experiments())}")
    try:
        return importlib.import_module(EXPERIMENTS[name])
    except ImportError as err:
        raise ValueError(f"experiment {name!r} is not available in this release ({err})") from None


def run_experiment(
    name: str,
    preset: str = "quick",
    out_dir: str | Path | None = None,
    *,
    workers: int | None = None,
    dask: bool | str | None = None,
    progress: bool = True,
    overrides: dict | None = None,
) -> dict:
    """Run every cell of experiment ``name`` at ``preset`` and write its outputs.

    Outputs in ``out_dir`` (default ``results/NAME/PRESET``): ``cells.csv`` (every
    cell: config, seed, NLL with AIS bounds, time), ``NAME.png`` and ``NAME.md``.
    Finished cells are cached in ``out_dir/cache``; trained models in
    ``out_dir/../models`` unless ``PHYSAMP_MODEL_CACHE`` is set.
    """
    exp = load_experiment(name)
    if preset not in exp.PRESETS:
        raise ValueError(f"experiment {name!r} has presets {sorted(exp.PRESETS)}, not {preset!r}")
    p = dict(exp.PRESETS[preset])
    p.update(check_overrides(name, p, overrides or {}))
    cells = exp.cells(p)
    if not cells:
        raise ValueError(f"experiment {name!r} has no cells with these settings; every list needs a value")
    out = Path(out_dir or Path("results") / name / preset)
    out.mkdir(parents=True, exist_ok=True)
    user_cache = os.environ.get("PHYSAMP_MODEL_CACHE")
    if not user_cache:  # this run's own model cache, beside its outputs (workers inherit it)
        os.environ["PHYSAMP_MODEL_CACHE"] = str((out.parent / "models").resolve())
    try:
        return _run(exp, name, preset, cells, out, workers, dask, progress)
    finally:
        if not user_cache:
            os.environ.pop("PHYSAMP_MODEL_CACHE", None)


def check_overrides(name: str, preset: dict, overrides: dict) -> dict:
    """``overrides`` of experiment ``name``'s ``preset`` values (``--set KEY=VALUE``), checked against
    them: known keys, a list for a list (with at least one value), a positive number for a
    positive one. Returns the overrides; a ``ValueError`` says what is wrong."""
    unknown = set(overrides) - set(preset)
    if unknown:
        raise ValueError(f"unknown preset keys {sorted(unknown)} for {name!r}; known: {sorted(preset)}")
    for key, value in overrides.items():
        old = preset[key]
        if isinstance(old, list) != isinstance(value, list):
            kind = "a list, e.g. [0, 1]" if isinstance(old, list) else "a single value"
            raise ValueError(f"preset key {key!r} of {name!r} takes {kind}; got {value!r}")
        if isinstance(value, list) and not value:
            raise ValueError(f"preset key {key!r} of {name!r} needs at least one value, e.g. {key}={old!r}")
        if isinstance(old, (int, float)) and not isinstance(old, bool) and isinstance(value, (int, float)):
            if old > 0 and not value > 0:
                raise ValueError(f"preset key {key!r} of {name!r} must be positive; got {value!r}")
    return dict(overrides)


def describe_presets(name: str) -> str:
    """The presets of experiment ``name`` and their values: what ``--set KEY=VALUE`` can change."""
    exp = load_experiment(name)
    lines = [f"presets of {name!r} (--preset NAME; --set KEY=VALUE changes one value):"]
    for preset, values in exp.PRESETS.items():
        lines.append(f"  {preset}:")
        lines += [f"    {key} = {value!r}" for key, value in values.items()]
    return "\n".join(lines)


def run_cell_recording_data(name: str, cell: dict) -> dict:
    """``run_cell(cell)`` of experiment ``name``, with the data the cell used where it ran
    (``dataset``: its name, ``num_train``: training digits): the report names that data."""
    from physamp.experiments import common

    result = dict(load_experiment(name).run_cell(cell))
    if "data" in cell:
        data = common.dataset(cell["data"])
        n = int(data.train.shape[0])
        result.setdefault("dataset", data.name)
        result.setdefault("num_train", n if cell.get("max_train") is None else min(n, int(cell["max_train"])))
    return result


def _run(exp, name, preset, cells, out, workers, dask, progress) -> dict:
    if workers is None:
        workers = max(1, min(len(cells), (os.cpu_count() or 1)))
    t0 = time.perf_counter()
    results = run_sweep(
        functools.partial(run_cell_recording_data, name),
        cells,
        out / "cache",
        workers=workers,
        dask=dask,
        progress=progress,
        required=getattr(exp, "RESULT_KEYS", ("nll",)),
    )
    rows = [{"cell": c, "result": r} for c, r in zip(cells, results, strict=True)]
    csv_path = write_csv([{**c, **r} for c, r in zip(cells, results, strict=True)], out / "cells.csv")
    exp.report(rows, out, preset)
    summary = {
        "experiment": name,
        "preset": preset,
        "cells": len(cells),
        "seconds": time.perf_counter() - t0,
        "csv": str(csv_path),
        "png": str(out / f"{name}.png"),
        "markdown": str(out / f"{name}.md"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
