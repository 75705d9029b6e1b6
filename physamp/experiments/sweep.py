"""Sweeps of independent cells: local worker processes or a Dask cluster, cached by config.

A *cell* is a JSON-able dict (an experiment's configuration for one point of
its grid and one seed). ``run_sweep(fn, cells, cache_dir)`` evaluates ``fn(cell)``
for every cell not already in the cache and returns the results in cell order.
Each finished cell is written at once to ``cache_dir/<hash>.json`` (atomically),
its hash taken over the canonical JSON of the cell, so an interrupted sweep
resumes without recomputing what it finished, and two sweeps sharing a cell
share its result. A cache entry that is not ``{"cell": ..., "result": {...}}`` with
the result keys the experiment declares is a ``ValueError`` naming the file.

Each cell is computed under a lock (``cache_dir/<hash>.lock``, see
:mod:`physamp.training.lock`): when two sweeps share a cache, a cell that one of them
is computing is waited for by the other (which says so, naming the process) and then
read from the cache, never computed twice.

Ctrl-C stops the sweep: worker processes ignore it and are stopped by the sweep, and
:class:`SweepInterrupted` says how many cells are cached; the same call resumes.

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
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

__all__ = ["cell_key", "run_sweep", "load_cached", "SweepError", "SweepInterrupted"]


class SweepError(RuntimeError):
    """A cell failed; the message names the cell. Finished cells stay cached."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep: ``done`` of ``total`` cells are cached in ``cache_dir``."""

    def __init__(self, done: int, total: int, cache_dir: Path):
        super().__init__(done, total, str(cache_dir))
        self.done, self.total, self.cache_dir = done, total, cache_dir

    def __str__(self) -> str:
        return (
            f"sweep stopped with {self.done} of {self.total} cells finished and cached in {self.cache_dir} "
            "(finished cells are not recomputed)"
        )


def cell_key(cell: dict) -> str:
    """Stable 16-hex-digit hash of a cell's canonical JSON."""
    text = json.dumps(cell, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_path(cache_dir: Path, cell: dict) -> Path:
    return cache_dir / f"{cell_key(cell)}.json"


def load_cached(cache_dir: str | Path, cell: dict, required: Sequence[str] = ()) -> dict | None:
    """The cached result of ``cell``, or None when it is not cached.

    A file cut short (not JSON) is treated as not cached: the cell is recomputed and the
    entry rewritten atomically. An entry that is JSON but not ``{"cell": ..., "result":
    {...}}`` with every key of ``required`` in its result is a ``ValueError`` naming the
    file (something other than this sweep wrote or edited it).
    """
    path = _cache_path(Path(cache_dir), cell)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None  # a damaged cache entry is recomputed (and rewritten atomically)
    fix = "delete it to recompute the cell"
    if not isinstance(record, dict) or "cell" not in record or not isinstance(record.get("result"), dict):
        what = "a result" if isinstance(record, dict) and "cell" in record else "a cell and a result"
        raise ValueError(
            f"{path}: a sweep cache entry without {what} ({{'cell': ..., 'result': {{...}}}}); {fix}"
        )
    if record["cell"] != json.loads(json.dumps(cell, sort_keys=True, default=str)):
        return None
    missing = [k for k in required if k not in record["result"]]
    if missing:
        raise ValueError(f"{path}: the cached result has no {', '.join(map(repr, missing))}; {fix}")
    return record["result"]


def _store(cache_dir: Path, cell: dict, result: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _cache_path(cache_dir, cell)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"cell": cell, "result": result}, sort_keys=True, default=str, indent=1))
    os.replace(tmp, path)


def _cell_lock(cache_dir: Path, cell: dict):
    """The lock of one cell (``cache_dir/<hash>.lock``); None where the cache cannot be reached
    (a Dask worker on another machine without the shared file system)."""
    from physamp.training.lock import FileLock

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileLock(cache_dir / f"{cell_key(cell)}.lock", what=f"sweep cell {cell_key(cell)}")


def _timed(fn: Callable[[dict], dict], cell: dict, cache_dir: Path | None = None, required=()) -> dict:
    """``fn(cell)`` with its time, under the cell's lock: a cell another process is computing is
    waited for and then read from the cache."""
    from physamp.training import set_threads  # the one place threads are set
    from physamp.training.lock import LockHeldError, describe_holder

    set_threads(int(os.environ.get("PHYSAMP_CELL_THREADS", "1")))
    lock = None if cache_dir is None else _cell_lock(Path(cache_dir), cell)
    if lock is not None:
        try:
            lock.acquire()
        except LockHeldError as err:
            print(
                f"cell {cell_key(cell)} is being computed by {describe_holder(err.holder)}; waiting for it",
                file=sys.stderr,
                flush=True,
            )
            lock.acquire(blocking=True)
    try:
        if lock is not None and cache_dir is not None:  # a lock exactly when there is a cache
            cached = load_cached(cache_dir, cell, required)
            if cached is not None:  # another sweep finished it meanwhile
                return cached
        t0 = time.perf_counter()
        result = dict(fn(cell))
        result.setdefault("seconds", time.perf_counter() - t0)
        missing = [k for k in required if k not in result]
        if missing:
            raise ValueError(
                f"the cell's result has no {', '.join(map(repr, missing))} (keys: {sorted(result)})"
            )
        if cache_dir is not None:
            _store(Path(cache_dir), cell, result)  # written before the lock is given back
        return result
    finally:
        if lock is not None:
            lock.release()


def _ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the sweep, which stops them (no traceback from each)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the cells not started and stop the workers; cells under way are abandoned."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5)


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
    required: Sequence[str] = (),
) -> list[dict]:
    """Evaluate ``fn`` on every cell (cached ones are read back); results in cell order.

    ``fn`` must be importable by name (a module-level function) for worker
    processes and Dask. Each worker uses one torch thread unless
    ``PHYSAMP_CELL_THREADS`` says otherwise. ``required`` names the keys every result
    must hold (e.g. ``("nll",)``): a result or a cache entry without them is an error.
    """
    cache_dir = Path(cache_dir)
    cells = [json.loads(json.dumps(c, sort_keys=True, default=str)) for c in cells]
    if not cells:
        raise ValueError("the sweep has no cells (an empty list of seeds or settings?)")
    keys = [cell_key(c) for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("two cells of the sweep are identical; give each a distinct seed or setting")
    required = tuple(required)
    results: dict[str, dict] = {}
    todo = []
    for c, k in zip(cells, keys, strict=True):
        cached = load_cached(cache_dir, c, required)
        if cached is None:
            todo.append(c)
        else:
            results[k] = cached
    bar = _progress(len(cells), len(cells) - len(todo), progress)

    def finish(cell: dict, result: dict) -> None:
        _store(cache_dir, cell, result)  # again: a Dask worker may not reach the cache
        results[cell_key(cell)] = result
        bar.update(1)

    try:
        if not todo:
            pass
        elif dask:
            _run_dask(fn, todo, finish, None if dask is True else str(dask), cache_dir, required)
        elif workers <= 1:
            for c in todo:
                try:
                    finish(c, _timed(fn, c, cache_dir, required))
                except Exception as err:
                    raise SweepError(f"cell {c} failed: {type(err).__name__}: {err}") from err
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
            try:
                futures = {pool.submit(_timed, fn, c, cache_dir, required): c for c in todo}
                pending = set(futures)
                while pending:
                    # short waits: the main thread comes back often enough to see a Ctrl-C
                    done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    for fut in done:
                        c = futures[fut]
                        try:
                            finish(c, fut.result())
                        except Exception as err:
                            raise SweepError(f"cell {c} failed: {type(err).__name__}: {err}") from err
            except BaseException:
                _stop_workers(pool)
                raise
            pool.shutdown()
    except KeyboardInterrupt:
        raise SweepInterrupted(len(results), len(cells), cache_dir) from None
    finally:
        bar.close()
    return [results[k] for k in keys]


def _run_dask(fn, todo: list[dict], finish, address: str | None, cache_dir: Path, required=()) -> None:
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
        futures = [
            client.submit(_timed, fn, c, cache_dir, required, key=f"physamp-cell-{cell_key(c)}", pure=False)
            for c in todo
        ]
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
