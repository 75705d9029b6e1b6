"""What every thesis experiment shares: data, cached trained models, AIS evaluation, outputs.

Protocol shared by all chapter-3 experiments (each file states its own values):
binary RBMs on MNIST trained by PCD-15 with the ``gibbs`` backend, positive
phase by mean field, SGD with momentum; training images re-binarised at every
presentation; test NLL by AIS (base rate from the training data) on the test
images binarised once with seed 0. The data is ``mnist-default``: the offline
split (``mnist-offline``, 13,000 training digits) where its files are found, else
the slice bundled with the package (``mnist-bundled``, 2,000 digits). Every report
names the data its cells actually used (:func:`data_description`); with fewer
digits than the thesis's 60,000, NLLs are higher, so compare orderings and ratios,
not absolute values.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.models.rbm import RBM, RBMTrainConfig, RBMTrainer
from physamp.training import load_checkpoint, load_component, save_components

__all__ = [
    "dataset",
    "trained_rbm",
    "cached",
    "evaluate_nll",
    "make_cell",
    "train_and_evaluate",
    "ais_betas",
    "write_csv",
    "flatten",
    "model_cache_dir",
    # outputs: tables, figures, reports
    "NLL_AXIS",
    "Report",
    "aggregate",
    "errorbar_plot",
    "markdown_table",
    "mean_std",
    "new_figure",
    "relative_change",
    "save_figure",
    "write_report",
    # presets and cells
    "FULL_EVALUATION",
    "OFFLINE_SPLIT_NOTE",
    "data_description",
    "spread",
    "QUICK_EVALUATION",
    "pcd15",
    "presets",
    "protocol_section",
    "seed_grid",
    "topology_cells",
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


def cached(path: Path, load: Callable[[], Any], make: Callable[[], Any]) -> Any:
    """``load()`` when it finds the entry at ``path`` (not None), else ``make()`` under the entry's lock.

    One worker makes an entry that several cells need; the others wait for its lock and then
    load it. ``load`` returns None for an entry that is missing or damaged (it is made again).
    """
    from physamp.training.lock import FileLock

    found = load()
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")).acquire(blocking=True):
        found = load()
        return found if found is not None else make()


def trained_rbm(
    train: dict, data_name: str = "mnist-default", max_train: int | None = None
) -> tuple[RBM, float]:
    """Train (or load the cached) RBM for the :class:`RBMTrainConfig` fields ``train``.

    Returns ``(rbm, training seconds)``. Models are cached by (config, data), so
    every cell that evaluates the same trained model trains it once (under a lock:
    cells in other workers that need it wait for it). A cache entry
    is a checkpoint in the one layout of :mod:`physamp.training.checkpoint`
    (``load_component(path, "model")`` reads it, as for any run).
    """
    cfg = RBMTrainConfig(**train)
    data = dataset(data_name)
    key = _key({"train": asdict(cfg), "data": data.name, "max_train": max_train})
    path = model_cache_dir() / f"rbm-{key}.pt"

    def make() -> tuple[RBM, float]:
        import time

        x = data.train if max_train is None else data.train[:max_train]
        identity = {**data.identity(), "num_train": int(x.shape[0])}
        t0 = time.perf_counter()
        trainer = RBMTrainer(cfg, x, data=identity)
        trainer.fit(run_dir=None, progress=False)
        seconds = time.perf_counter() - t0
        extra = {"seconds": seconds}
        save_components(path, {"model": trainer.rbm}, config=trainer.config_dict(), extra=extra)
        return trainer.rbm, seconds

    return cached(path, lambda: _cached_model(path), make)


def _cached_model(path: Path) -> tuple[RBM, float] | None:
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
        return RBM.from_state_dict(load_component(ckpt, "model")), float(ckpt["seconds"])
    except Exception:
        return None  # a damaged or old-layout cache entry is retrained and rewritten atomically


def ais_betas(n: int) -> np.ndarray:
    """The S&M schedule for ``n == 14500``, else ``n`` evenly spaced intermediate distributions."""
    from physamp.models.rbm.ais import schedule  # what physamp.ais is (mypy cannot follow that alias)

    return schedule(n)


def evaluate_nll(rbm: RBM, data_name: str, ais: dict, seed: int = 0, max_test: int | None = None) -> dict:
    """Test NLL by AIS (:func:`physamp.models.rbm.evaluate.evaluate_nll`):
    ``{"nll", "nll_lower", "nll_upper", "log_z"}``."""
    from physamp.models.rbm.evaluate import evaluate_nll as _evaluate

    nll, log_z = _evaluate(
        rbm, dataset(data_name), ais_runs=ais["runs"], ais_betas=ais["betas"], seed=seed, max_test=max_test
    )
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
    """Nested dicts as one level, keys joined by dots: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def write_csv(rows: list[dict], path: Path) -> Path:
    """Write ``rows`` (flattened, :func:`flatten`) as a CSV with the union of their columns.

    Returns ``path``."""
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
    """Mean and sample standard deviation (0.0 for a single value: show it with :func:`spread`)."""
    a = np.asarray(list(values), dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def spread(std: float, n: int) -> float | str:
    """The std column of a table: the std over ``n`` seeds, or ``"– (n=1)"`` when one seed gives none."""
    return std if n > 1 else "– (n=1)"


def markdown_table(header: list[str], rows: list[list], fmt=None) -> str:
    """A Markdown table; ``fmt(value) -> str`` formats each cell (default: floats with 2 decimals)."""
    fmt = fmt or (lambda x: f"{x:.2f}" if isinstance(x, float) else str(x))
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


THESIS_TRAIN_DIGITS = 60_000  # the thesis's models trained on full MNIST


def _data_used(row: dict) -> tuple[str, int | None]:
    """(dataset name, training digits) of one ``{"cell", "result"}`` row: what its result recorded
    (the runner records it where the cell ran), else the cell's data resolved here."""
    result, cell = row.get("result", {}), row.get("cell", {})
    if "dataset" in result:
        n = result.get("num_train")
        return str(result["dataset"]), None if n is None else int(n)
    data = dataset(cell.get("data", "mnist-default"))
    n = (
        data.train.shape[0]
        if cell.get("max_train") is None
        else min(int(cell["max_train"]), data.train.shape[0])
    )
    return data.name, int(n)


def data_description(rows: list[dict] | None = None) -> str:
    """The **Data** paragraph of a report: the protocol of the data the cells of ``rows`` used (the
    default dataset when ``rows`` is None), how many training digits, and what that means for the
    comparison with the thesis (full MNIST, 60,000 digits)."""
    used: set[tuple[str, int | None]]
    if not rows:
        used = {(dataset().name, int(dataset().train.shape[0]))}
    else:
        used = {_data_used(r) for r in rows}
    parts = []
    for name, n in sorted(used, key=str):
        protocol = dataset(name).protocol
        limited = n is not None and n < dataset(name).train.shape[0]
        parts.append(f"{protocol}" + (f"; the cells used its first {n:,} training digits" if limited else ""))
    sizes = sorted({n for _, n in used if n is not None})
    text = " **and** ".join(parts) + "."
    if sizes and sizes[-1] < THESIS_TRAIN_DIGITS:
        digits = f"{sizes[0]:,}" if len(sizes) == 1 else f"{sizes[0]:,} to {sizes[-1]:,}"
        text += (
            f" These models trained on {digits} digits, the thesis's on full MNIST "
            f"({THESIS_TRAIN_DIGITS:,}); fewer digits give higher NLLs than full MNIST, so compare orderings "
            "and ratios with the thesis, not absolute values."
        )
    return text


def write_report(
    out_dir: Path, name: str, title: str, protocol: str, table: str, notes: str = "", rows: list | None = None
) -> Path:
    """``NAME.md``: title, protocol, the data the cells used (:func:`data_description` of ``rows``),
    the table, and notes on the thesis comparison."""
    data = data_description(rows)
    text = f"# {title}\n\n{protocol.strip()}\n\n**Data:** {data}\n\n{table}\n\n{notes.strip()}\n"
    path = Path(out_dir) / f"{name}.md"
    path.write_text(text)
    return path


def new_figure(width: float = 5.0, height: float = 3.5, **subplots: Any):
    """``(fig, ax)`` of a new headless (Agg) figure; ``subplots`` go to ``plt.subplots`` (``nrows``, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), **subplots)


def save_figure(fig, out_dir: Path, name: str, dpi: int = 120, title: str | None = None) -> Path:
    """Lay out ``fig`` (below a figure-wide ``title`` if given), write it to ``out_dir/NAME.png`` and
    close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    if title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


NLL_AXIS = "test NLL (nats)"


def relative_change(value: float, base: float | None, *, nats: bool = False) -> str:
    """``value`` against the reference ``base`` as table text: ``"+4.3 %"``; with ``nats``
    ``"+1.23 (+4.3 %)"``; ``""`` when there is no reference."""
    if base is None:
        return ""
    percent = f"{100 * (value / base - 1):+.1f} %"
    return f"{value - base:+.2f} ({percent})" if nats else percent


def errorbar_plot(
    ax,
    agg: list[tuple[Any, float, float, int]],
    *,
    xlabel: str,
    ylabel: str = NLL_AXIS,
    x=None,
    group=None,
    groups: list | None = None,
    label=None,
    markers: str = "o",
    annotate: bool = False,
    reference: tuple[float, str] | None = None,
    xscale: str | None = None,
):
    """Draw mean ± std (over seeds) of ``agg`` on matplotlib axes ``ax`` and return ``ax``.

    ``agg`` holds ``(key, mean, std, n)`` rows as :func:`aggregate` returns them;
    points are joined in that order.

    - ``x``: ``key -> x`` value (default: the key itself).
    - ``group``: ``key -> series`` (default: a single series); ``groups`` lists the series
      in drawing order (default: first seen); a series without points is skipped but
      keeps its marker. ``label``: ``series -> legend label``. ``markers``: one
      character per series, cycled.
    - ``annotate``: write each key beside its point, alternately above and below.
    - ``reference``: ``(y, label)`` of a dashed grey horizontal line (e.g. the
      unconstrained model).
    - ``xscale``: e.g. ``"log"``.

    A legend is drawn when a series is labelled or there is a reference.
    """
    x = x or (lambda key: key)
    group = group or (lambda key: None)
    groups = list(dict.fromkeys(group(k) for k, *_ in agg)) if groups is None else groups
    legend = reference is not None or label is not None
    for i, series in enumerate(groups):
        pts = [(k, m, s) for k, m, s, _ in agg if group(k) == series]
        if not pts:
            continue
        extra = {} if label is None else {"label": label(series)}
        xs = [x(k) for k, _, _ in pts]
        ys = [m for _, m, _ in pts]
        ax.errorbar(xs, ys, yerr=[s for *_, s in pts], marker=markers[i % len(markers)], capsize=3, **extra)
        if annotate:
            for j, (k, xv, yv) in enumerate(zip([k for k, _, _ in pts], xs, ys, strict=True)):
                offset = (4, 6) if j % 2 == 0 else (4, -12)  # alternate so close points stay legible
                ax.annotate(str(k), (xv, yv), textcoords="offset points", xytext=offset, fontsize=8)
    if reference is not None:
        ax.axhline(reference[0], color="gray", linestyle="--", label=reference[1])
    if legend:
        ax.legend(fontsize=8)
    if xscale is not None:
        ax.set_xscale(xscale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


@dataclass(frozen=True)
class Report:
    """The two outputs of one experiment run, ``NAME.png`` and ``NAME.md`` in ``out_dir``, under one title.

    ``title`` is the full title (the experiments use ``f"{TITLE} [{preset}]"``) and
    ``protocol`` the protocol text written at the top of the Markdown report; ``rows`` are
    the experiment's ``{"cell", "result"}`` rows, from which the report names the data
    the cells used.
    """

    out_dir: Path
    name: str
    title: str
    protocol: str
    rows: list | None = None

    def figure(self, width: float = 5.0, height: float = 3.5, **subplots: Any):
        """``(fig, ax)`` of a new figure: see :func:`new_figure`."""
        return new_figure(width, height, **subplots)

    def save(self, fig, ax=None, *, title_size: float = 9, dpi: int = 120) -> Path:
        """Title ``ax`` (if given) with the report's title and write ``fig`` to ``NAME.png``."""
        if ax is not None:
            ax.set_title(self.title, fontsize=title_size)
        return save_figure(fig, self.out_dir, self.name, dpi=dpi)

    def errorbar_plot(self, agg, *, title_size: float = 9, **options: Any) -> Path:
        """``NAME.png``: one :func:`errorbar_plot` of ``agg`` (``options`` are its keywords)."""
        fig, ax = self.figure()
        errorbar_plot(ax, agg, **options)
        return self.save(fig, ax, title_size=title_size)

    def write(self, header: list[str], rows: list[list], notes: str = "") -> Path:
        """``NAME.md``: title, protocol, data protocol, the :func:`markdown_table` and ``notes``.

        ``notes`` are paragraphs separated by blank lines; the line breaks inside a paragraph
        are folded into single spaces, so notes can be written as a triple-quoted block.
        """
        table = markdown_table(header, rows)
        paragraphs = (" ".join(par.split()) for par in re.split(r"\n\s*\n", notes.strip()))
        notes = "\n\n".join(par for par in paragraphs if par)
        return write_report(self.out_dir, self.name, self.title, self.protocol, table, notes, self.rows)


# the experiments' presets and cells ------------------------------------------------------------------
QUICK_EVALUATION = {"seeds": [0], "ais_runs": 20, "ais_betas": 2000}
FULL_EVALUATION = {"seeds": [0, 1, 2, 3, 4], "ais_runs": 100, "ais_betas": 14500}
#: kept for old callers; the reports' **Data** paragraph now says this for the data actually used
OFFLINE_SPLIT_NOTE = ""


def protocol_section(doc: str, end: str = "Presets:") -> str:
    """The part of an experiment module's docstring between its ``Protocol`` heading and ``end``."""
    if "Protocol\n--------" not in doc or end not in doc:
        raise ValueError(f"the docstring needs a 'Protocol\\n--------' heading followed by {end!r}")
    return doc.split("Protocol\n--------")[1].split(end)[0]


def presets(quick: dict, full: dict) -> dict[str, dict]:
    """``{"quick": ..., "full": ...}``: an experiment's own settings on top of the chapter's evaluation.

    ``quick`` starts from :data:`QUICK_EVALUATION` (1 seed, AIS 2,000 x 20) and ``full`` from
    :data:`FULL_EVALUATION` (5 seeds, the S&M schedule 14,500 x 100); their keys override these.
    """
    return {
        "quick": {**copy.deepcopy(QUICK_EVALUATION), **quick},
        "full": {**copy.deepcopy(FULL_EVALUATION), **full},
    }


def seed_grid(p: dict, *axes: str | Sequence) -> itertools.product:
    """``(seed, value, ...)`` for every seed of preset ``p`` and every combination of the axes,
    seeds outermost (the order of nested ``for`` loops). An axis is a key of ``p`` (its list of
    values) or a sequence of values."""
    return itertools.product(p["seeds"], *(p[axis] if isinstance(axis, str) else axis for axis in axes))


def pcd15(p: dict, seed: int, *, n_hidden: int | None = None, **extra: Any) -> dict:
    """:class:`RBMTrainConfig` fields of the chapter's PCD-15 models: ``n_hidden`` (default
    ``p["n_hidden"]``) and ``epochs`` of preset ``p``, ``k = 15``, ``seed``, then ``extra``."""
    n_hidden = p["n_hidden"] if n_hidden is None else n_hidden
    return dict(n_hidden=n_hidden, epochs=p["epochs"], k=15, seed=seed, **extra)


def topology_cells(experiment: str, p: dict, topologies: dict[str, str | None]) -> list[dict]:
    """Cells of a 784 x 784 topology comparison: for every seed and every label of ``p["topologies"]``,
    the PCD-15 model (:func:`pcd15`) on the topology spec ``topologies[label]`` (None: dense)."""
    unknown = [t for t in p["topologies"] if t not in topologies]
    if unknown:
        raise ValueError(f"unknown topologies {unknown} for {experiment!r}; use {list(topologies)}")
    return [
        make_cell(experiment, p, seed, pcd15(p, seed, n_hidden=784, topology=topologies[t]), topology=t)
        for seed, t in seed_grid(p, "topologies")
    ]
