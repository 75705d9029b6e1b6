"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def timeit(fn: Callable[[], object], repeat: int = 1, warmup: int = 0) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def finish(out: dict, t_start: float, threads: int, json_path: str | None) -> dict:
    """The end of a benchmark run: total wall time (stored as ``out["total_s"]`` and printed with the
    thread count), and ``out`` written to ``json_path`` when one is given."""
    import json

    out["total_s"] = total = time.perf_counter() - t_start
    print(f"\ntotal: {total:.1f} s, threads={threads}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=2)
    return out


def environment(**extra: object) -> dict:
    """What every benchmark prints and stores beside its figures: torch's version and thread count,
    Python, the machine, the CPU count, CUDA's presence, then ``extra`` (package versions, the mode)."""
    import os
    import platform

    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        **extra,
    }
