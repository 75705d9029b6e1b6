"""Sweeps of independent cells: local worker processes or a Dask cluster, cached by config.

A *cell* is a JSON-able dict (an experiment's configuration for one point of
its grid and one seed). ``run_sweep(fn, cells, cache_dir)`` evaluates ``fn(cell)``
for every cell not already in the cache and returns the results in cell order.
Each finished cell is written at once to ``cache_dir/<hash>.json`` (atomically),
its hash taken over the canonical JSON of the cell, so an interrupted sweep
resumes without recomputing what it finished, and two sweeps sharing a cell
share its result.

Executors:

- ``workers=1``: in this process (debugging, tiny presets);
- ``workers=N``: N local worker processes (the default for the CLI);
- ``dask=True`` / ``dask="tcp://scheduler:8786"``: a Dask distributed cluster
  (a ``LocalCluster`` when no address is given). On SLURM, start the cluster with
  dask-jobqueue and pass its scheduler address::

      from dask_jobqueue import SLURMCluster
      cluster = SLURMCluster(cores=4, memory="16GB", walltime="04:00:00")
      cluster.scale(jobs=20)
      print(cluster.scheduler_address)     # -> physamp experiment NAME --dask tcp://...
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

__all__ = ["cell_key", "run_sweep", "load_cached", "SweepError"]


class SweepError(RuntimeError):
    """A cell failed; the message names the cell. Finished cells stay cached."""


def cell_key(cell: dict) -> str:
    """Stable 16-hex-digit hash of a cell's canonical JSON."""
    text = json.dumps(cell, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_path(cache_dir: Path, cell: dict) -> Path:
    return cache_dir / f"{cell_key(cell)}.json"


def load_cached(cache_dir: str | Path, cell: dict) -> dict | None:
    path = _cache_path(Path(cache_dir), cell)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None  # a damaged cache entry is recomputed (and rewritten atomically)
    if record.get("cell") != json.loads(json.dumps(cell, sort_keys=True, default=str)):
        return None
    return record["result"]


def _store(cache_dir: Path, cell: dict, result: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _cache_path(cache_dir, cell)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"cell": cell, "result": result}, sort_keys=True, default=str, indent=1))
    os.replace(tmp, path)


def _timed(fn: Callable[[dict], dict], cell: dict) -> dict:
    from physamp.training import set_threads  # the one place threads are set

    set_threads(int(os.environ.get("PHYSAMP_CELL_THREADS", "1")))
    t0 = time.perf_counter()
    result = dict(fn(cell))
    result.setdefault("seconds", time.perf_counter() - t0)
    return result


def _progress(total: int, initial: int, enabled: bool):
    from physamp.training import progress_bar

    return progress_bar(total, initial=initial, desc="cells", enabled=enabled)


def run_sweep(
    fn: Callable[[dict], dict],
    cells: Sequence[dict],
    cache_dir: str | Path,
    *,
    workers: int = 1,
    dask: bool | str | None = None,
    progress: bool = True,
) -> list[dict]:
    """Evaluate ``fn`` on every cell (cached ones are read back); results in cell order.

    ``fn`` must be importable by name (a module-level function) for worker
    processes and Dask. Each worker uses one torch thread unless
    ``PHYSAMP_CELL_THREADS`` says otherwise.
    """
    cache_dir = Path(cache_dir)
    cells = [json.loads(json.dumps(c, sort_keys=True, default=str)) for c in cells]
    keys = [cell_key(c) for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("two cells of the sweep are identical; give each a distinct seed or setting")
    results: dict[str, dict] = {}
    todo = []
    for c, k in zip(cells, keys, strict=True):
        cached = load_cached(cache_dir, c)
        if cached is None:
            todo.append(c)
        else:
            results[k] = cached
    bar = _progress(len(cells), len(cells) - len(todo), progress)

    def finish(cell: dict, result: dict) -> None:
        _store(cache_dir, cell, result)
        results[cell_key(cell)] = result
        bar.update(1)

    try:
        if not todo:
            pass
        elif dask:
            _run_dask(fn, todo, finish, None if dask is True else str(dask))
        elif workers <= 1:
            for c in todo:
                try:
                    finish(c, _timed(fn, c))
                except Exception as err:
                    raise SweepError(f"cell {c} failed: {type(err).__name__}: {err}") from err
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_timed, fn, c): c for c in todo}
                for fut in as_completed(futures):
                    c = futures[fut]
                    try:
                        finish(c, fut.result())
                    except Exception as err:
                        for f in futures:
                            f.cancel()
                        raise SweepError(f"cell {c} failed: {type(err).__name__}: {err}") from err
    finally:
        bar.close()
    return [results[k] for k in keys]


def _run_dask(fn, todo: list[dict], finish, address: str | None) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:
        raise SweepError("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=min(len(todo), os.cpu_count() or 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = [client.submit(_timed, fn, c, key=f"physamp-cell-{cell_key(c)}", pure=False) for c in todo]
        by_key = {f.key: c for f, c in zip(futures, todo, strict=True)}
        for fut in dask_completed(futures):
            c = by_key[fut.key]
            try:
                finish(c, fut.result())
            except Exception as err:
                raise SweepError(f"cell {c} failed on the cluster: {type(err).__name__}: {err}") from err
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
