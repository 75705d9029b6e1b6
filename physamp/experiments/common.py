"""What every thesis experiment shares: data, cached trained models, AIS evaluation, outputs.

Protocol shared by all chapter-3 experiments (each file states its own values):
binary RBMs on MNIST trained by PCD-15 with the ``gibbs`` backend, positive
phase by mean field, SGD with momentum; training images re-binarised at every
presentation; test NLL by AIS (base rate from the training data) on the test
images binarised once with seed 0. On these machines the data protocol is
``mnist-offline`` (13,000 training digits): NLLs are higher than the thesis's
(60,000 digits), so compare orderings and ratios, not absolute values.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.models.rbm import RBM
from physamp.models.rbm_train import RBMTrainConfig, RBMTrainer
from physamp.training import load_checkpoint, save_checkpoint

__all__ = [
    "dataset",
    "trained_rbm",
    "evaluate_nll",
    "make_cell",
    "train_and_evaluate",
    "ais_betas",
    "write_csv",
    "flatten",
    "model_cache_dir",
]


@lru_cache(maxsize=4)
def dataset(name: str = "mnist-default", binarize_seed: int = 0):
    from physamp.data import default_dataset, load_dataset

    if name in ("default", "mnist-default"):
        return default_dataset(binarize_seed=binarize_seed)
    return load_dataset(name, binarize_seed=binarize_seed)


def model_cache_dir() -> Path:
    """Trained models shared by cells: ``$PHYSAMP_MODEL_CACHE`` or ``~/.cache/physamp/models``."""
    root = os.environ.get("PHYSAMP_MODEL_CACHE") or Path.home() / ".cache" / "physamp" / "models"
    return Path(root)


def _key(obj: Any) -> str:
    import hashlib

    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trained_rbm(
    train: dict, data_name: str = "mnist-default", max_train: int | None = None
) -> tuple[RBM, float]:
    """Train (or load the cached) RBM for the :class:`RBMTrainConfig` fields ``train``.

    Returns ``(rbm, training seconds)``. Models are cached by (config, data), so
    every cell that evaluates the same trained model trains it once.
    """
    cfg = RBMTrainConfig(**train)
    data = dataset(data_name)
    key = _key({"train": asdict(cfg), "data": data.name, "max_train": max_train})
    path = model_cache_dir() / f"rbm-{key}.pt"
    if path.exists():
        try:
            ckpt = load_checkpoint(path)
            sd = ckpt["model"]
            rbm = RBM(int(sd["W"].shape[1]), int(sd["W"].shape[0]), mask=sd.get("mask"))
            rbm.load_state_dict(sd)
            return rbm, float(ckpt["seconds"])
        except Exception:
            pass  # a damaged cache entry is retrained and rewritten atomically
    import time

    x = data.train if max_train is None else data.train[:max_train]
    t0 = time.perf_counter()
    trainer = RBMTrainer(cfg, x)
    trainer.fit(run_dir=None, progress=False)
    seconds = time.perf_counter() - t0
    save_checkpoint(path, {"model": trainer.rbm.state_dict(), "seconds": seconds, "config": asdict(cfg)})
    return trainer.rbm, seconds


def ais_betas(n: int) -> np.ndarray:
    """The S&M schedule for ``n == 14500``, else ``n`` evenly spaced intermediate distributions."""
    from physamp.ais import default_betas

    return default_betas() if n == 14500 else np.linspace(0.0, 1.0, n + 1)


def evaluate_nll(rbm: RBM, data_name: str, ais: dict, seed: int = 0, max_test: int | None = None) -> dict:
    """Test NLL by AIS: ``{"nll", "nll_lower", "nll_upper", "log_z"}``."""
    from physamp.ais import estimate_log_z, test_nll

    data = dataset(data_name)
    test = data.test if max_test is None else data.test[:max_test]
    log_z = estimate_log_z(
        rbm, data=data.train, num_runs=ais["runs"], betas=ais_betas(ais["betas"]), seed=seed
    )
    nll = test_nll(rbm, test, log_z)
    return {"nll": nll.nll, "nll_lower": nll.nll_lower, "nll_upper": nll.nll_upper, "log_z": log_z.log_z}


def make_cell(experiment: str, p: dict, seed: int, train: dict, **fields: Any) -> dict:
    """One cell of a sweep: the experiment's own ``fields``, the seed, the training config
    (:class:`RBMTrainConfig` fields), the AIS settings and any data limits of preset ``p``."""
    cell = {
        "experiment": experiment,
        **fields,
        "seed": seed,
        "data": "mnist-default",
        "train": train,
        "ais": {"runs": p["ais_runs"], "betas": p["ais_betas"]},
    }
    for key in ("max_train", "max_test"):
        if p.get(key) is not None:
            cell[key] = p[key]
    return cell


def train_and_evaluate(cell: dict) -> tuple[RBM, dict]:
    """Train (or load) the cell's RBM and estimate its test NLL: ``(rbm, result)``."""
    rbm, train_s = trained_rbm(cell["train"], cell["data"], max_train=cell.get("max_train"))
    result = evaluate_nll(rbm, cell["data"], cell["ais"], seed=cell["seed"], max_test=cell.get("max_test"))
    return rbm, {**result, "train_seconds": train_s}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def write_csv(rows: list[dict], path: Path) -> Path:
    flat = [flatten(r) for r in rows]
    cols: list[str] = []
    for r in flat:
        cols += [k for k in r if k not in cols]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(flat)
    return path


def mean_std(values) -> tuple[float, float]:
    a = np.asarray(list(values), dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def markdown_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda x: f"{x:.2f}" if isinstance(x, float) else str(x)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def torch_threads_note() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) per cell"


def aggregate(rows: list[dict], key) -> list[tuple[Any, float, float, int]]:
    """Group ``rows`` (``{"cell", "result"}``) by ``key(cell)``: ``[(key, mean NLL, std, n)]``, sorted."""
    groups: dict[Any, list[float]] = {}
    for r in rows:
        groups.setdefault(key(r["cell"]), []).append(r["result"]["nll"])
    out = []
    for k in sorted(groups, key=lambda x: (str(type(x)), x)):
        m, s = mean_std(groups[k])
        out.append((k, m, s, len(groups[k])))
    return out


def write_report(out_dir: Path, name: str, title: str, protocol: str, table: str, notes: str = "") -> Path:
    """``NAME.md``: title, protocol, data protocol, the table, and notes on the thesis comparison."""
    data = dataset()
    text = f"# {title}\n\n{protocol.strip()}\n\n**Data:** {data.protocol}\n\n{table}\n\n{notes.strip()}\n"
    path = Path(out_dir) / f"{name}.md"
    path.write_text(text)
    return path


def new_figure(width: float = 5.0, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save_figure(fig, out_dir: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
