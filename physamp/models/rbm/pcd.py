"""PCD-k / CD-k training of an RBM whose negative phase comes from any sampler backend.

Gradient of the mean log-likelihood (Eq. 1.36 ff.): for the parameters θ,
``∂ log p(v)/∂θ = -∂F(v)/∂θ + E_model[∂F/∂θ]``. The positive phase is exact
mean field (``p(h|v)`` in closed form, as the thesis did); the negative phase
uses samples ``v⁻`` from the backend, Rao-Blackwellised over the hiddens. Both
are the gradient of the contrastive free-energy difference::

    L = mean F(v_data) - mean F(v⁻)            (v⁻ treated as constants)

so one ``backward()`` gives the update and any torch optimizer applies it (SGD
with momentum and weight decay by default). Device constraints (§3.4-3.8):

- a topology mask (masked weights stay exactly zero: see :class:`~physamp.RBM`),
- magnitude limits ``max_weight`` / ``max_bias``, clipped after every update,
- parameter noise in the negative phase: the backend is wrapped in the
  ``simulated`` device (training "on" the noisy device, §3.5).

Data are re-binarised stochastically at every presentation (§3.4). The batch
order of epoch ``e`` is a pure function of ``(seed, e)`` and every other random
number comes from generators saved in checkpoints, so a run killed and resumed
ends bit-identical (on CPU) to an uninterrupted run.

On a QPU (the ``dwave`` backend; offline ``-o solver=simulated``), training is a workflow::

    physamp train-rbm --sampler dwave --topology pegasus --hidden 784 --qpu-budget 600 --calibrate-every 100

- the topology is placed on the solver's working graph (:func:`place_on_solver`), one qubit per
  unit, and the RBM's mask is the placed one; without a token this fails before any training;
- each step's negative phase is one ``sample`` of ``num_chains`` reads (hardware keeps no chains);
- ``calibrate_every``: the prefactor is calibrated to β_model = 1 at step 0 and every N steps
  (:func:`physamp.samplers.temperature.calibrate`); the calibrated scale is checkpointed;
- ``qpu_budget``: every call is estimated first and recorded in ``run_dir/qpu_ledger.jsonl``
  (:mod:`physamp.samplers.qpu_budget`), which counts against the budget on resume; a step that
  would exceed it stops the run cleanly (:class:`QPUBudgetStop`: checkpoint, cost report);
- ``run_dir/qpu_cost.json``: the cost report (total, per step, calls, reads, calibration share).
"""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physamp.models.rbm.model import BASE_RATE_SMOOTHING, RBM
from physamp.samplers import Sampler, make_sampler
from physamp.seeding import SEEDING_VERSION, derive_seed
from physamp.training import BatchOrder, Trainer, resolve_device, to_jsonable
from physamp.training.options import (
    nonnegative_float,
    number_type,
    option,
    parse_assignments,
    positive_float,
    positive_int,
    seed_int,
)

__all__ = [
    "RBMTrainConfig",
    "RBMTrainer",
    "QPUBudgetStop",
    "build_training_sampler",
    "parse_topology",
    "place_on_solver",
    "qpu_backend",
    "base_rate_init",
    "LEDGER_FILE",
    "COST_FILE",
]

nonnegative_int = number_type(int, strictly_positive=False)

#: the QPU ledger and cost report of a run directory trained on the dwave backend
LEDGER_FILE = "qpu_ledger.jsonl"
COST_FILE = "qpu_cost.json"
#: a dwave run checkpoints at least this often (steps): QPU time spent after a checkpoint is redone
QPU_CHECKPOINT_EVERY = 10


#: Hidden units of an RBM whose topology does not fix the shape (``--hidden`` overrides it).
DEFAULT_HIDDEN = 500


@dataclass
class RBMTrainConfig:
    """Hyper-parameters of a PCD-k / CD-k run (defaults: a quick 784x500 PCD-15 run).

    This dataclass is the one source of each option: ``physamp train-rbm``'s flags,
    their defaults and help text are generated from these fields
    (:func:`physamp.training.options.add_config_arguments`), and ``--set KEY=VALUE``
    reaches any of them by name.
    """

    n_hidden: int = option(DEFAULT_HIDDEN, "hidden units", flags=("--hidden",), type=positive_int)
    epochs: int = option(10, "passes over the training data", type=positive_int)
    batch_size: int = option(100, "examples per update", type=positive_int)
    lr: float = option(0.05, "initial learning rate", type=positive_float)
    lr_schedule: str = option(
        "linear", "learning-rate schedule, to lr_final", choices=("constant", "linear", "exponential")
    )
    lr_final: float = option(0.005, "final rate of the linear/exponential schedule", type=positive_float)
    momentum: float = option(0.5, "SGD momentum, in [0, 1)")
    weight_decay: float = option(1e-4, "L2 weight decay", type=nonnegative_float)
    method: str = option("pcd", "pcd (persistent chains) or cd (chains start at data)", choices=("pcd", "cd"))
    k: int = option(15, "Gibbs steps (or sweeps) per update", flags=("-k",), type=positive_int)
    num_chains: int = option(100, "PCD fantasy particles", flags=("--chains",), type=positive_int)
    sampler: str = option("gibbs", "negative-phase backend (see `physamp samplers`)")
    sampler_options: dict[str, Any] = option(
        default_factory=dict,
        help="backend option NAME=VALUE, repeatable",
        flags=("-o", "--option"),
        action="append",
        convert=parse_assignments,
        metavar="NAME=VALUE",
    )
    topology: str | None = option(
        None, "dense (none), chimera[:pixel_blocks|:extended], pegasus, zephyr, random:FRACTION"
    )
    max_weight: float | None = option(None, "magnitude limit on the weights", type=positive_float)
    max_bias: float | None = option(None, "magnitude limit on the biases", type=positive_float)
    weight_noise: float = option(0.0, "σ of weight noise in the negative phase", type=nonnegative_float)
    bias_noise: float = option(0.0, "σ of bias noise in the negative phase", type=nonnegative_float)
    noise_space: str = option("rbm", "apply noise and limits to the RBM or the Ising parameters",
                              choices=("rbm", "ising"))  # fmt: skip
    init_std: float = option(0.01, "standard deviation of the initial weights", type=positive_float)
    qpu_budget: float | None = option(
        None,
        "seconds of QPU access time the run may spend (dwave backend), counting the run directory's "
        "ledger (qpu_ledger.jsonl); training stops with a checkpoint before a step would exceed it",
        type=positive_float,
        metavar="SECONDS",
    )
    calibrate_every: int | None = option(
        None,
        "calibrate the dwave backend's prefactor to beta 1 at step 0 and every N steps (0 / none: never)",
        type=nonnegative_int,
        metavar="N",
    )
    calibrate_samples: int = option(1000, "reads per calibration iteration", type=positive_int)
    seed: int = option(
        0,
        "seed of the run, any 64-bit integer (every stream derives from it: physamp.seeding)",
        type=seed_int,
    )

    def validate(self) -> RBMTrainConfig:
        positive = ("n_hidden", "epochs", "batch_size", "k", "num_chains", "calibrate_samples")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "lr_final"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        try:
            seed_int(
                str(self.seed) if isinstance(self.seed, int) and not isinstance(self.seed, bool) else "x"
            )
        except argparse.ArgumentTypeError:
            raise ValueError(f"seed must be an integer from -2^63 to 2^63 - 1, got {self.seed!r}") from None
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.method not in ("pcd", "cd"):
            raise ValueError(f"method must be 'pcd' or 'cd', got {self.method!r}")
        if not (
            isinstance(self.init_std, (int, float)) and self.init_std > 0 and math.isfinite(self.init_std)
        ):
            raise ValueError(f"init_std must be a positive finite number, got {self.init_std!r}")
        if self.noise_space not in ("rbm", "ising"):
            raise ValueError(f"noise_space must be 'rbm' or 'ising', got {self.noise_space!r}")
        if isinstance(self.topology, str) and self.topology.strip().lower() in ("", "none", "dense"):
            self.topology = None  # one spelling of the dense RBM, so equal runs have equal configs
        if self.lr_schedule not in ("constant", "linear", "exponential"):
            raise ValueError(f"lr_schedule must be constant, linear or exponential, got {self.lr_schedule!r}")
        for name in ("max_weight", "max_bias"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be None or a positive number, got {v!r}")
        for name in ("weight_noise", "bias_noise"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite σ >= 0, got {v!r}")
        v = self.qpu_budget
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v))
        ):
            raise ValueError(f"qpu_budget must be None or a positive number of seconds, got {v!r}")
        v = self.calibrate_every
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"calibrate_every must be None or an integer >= 0 (steps), got {v!r}")
        if v == 0:
            self.calibrate_every = None  # one spelling of "never", so equal runs have equal configs
        return self


def default_hidden(topology: str | None, n_visible: int, seed: int = 0) -> int:
    """The number of hidden units ``physamp train-rbm`` uses when ``--hidden`` is not given:
    :data:`DEFAULT_HIDDEN` (500) unless the topology cannot hold that many and lays the image out
    on a square RBM (``chimera``, ``pegasus``, ``zephyr``: 784 hidden units for 28x28 images), then
    ``n_visible``. Raises the topology's own error (which says what fits) when neither shape fits.
    (``RBMTrainConfig.n_hidden`` itself stays 500 unless set: the Python API never guesses.)"""
    if topology is None or str(topology).strip().lower() in ("", "dense", "none"):
        return DEFAULT_HIDDEN
    try:
        parse_topology(topology, n_visible, DEFAULT_HIDDEN, seed=seed)
        return DEFAULT_HIDDEN
    except ValueError as err:
        first = err
    try:
        parse_topology(topology, n_visible, n_visible, seed=seed)
        return n_visible
    except ValueError:
        raise first from None


def parse_topology(spec: str | None, n_visible: int, n_hidden: int, seed: int = 0):
    """The topology of ``RBMTrainConfig.topology``: ``None`` / ``"dense"`` → None (a dense RBM), else
    :func:`physamp.topology.make_topology` ``(spec, n_visible, n_hidden, seed=seed)``.

    Any registered name works (:func:`physamp.topology.available_topologies`): ``"chimera"`` /
    ``"chimera:pixel_blocks"`` / ``"chimera:extended"``, ``"pegasus"`` / ``"zephyr"`` (784x784
    only, pixel-ordered visibles; see :mod:`physamp.topology.modern_pixels`), ``"random:F"`` (a
    fraction F of the connections removed, seeded) and any topology added with
    :func:`physamp.topology.register_topology`."""
    if spec is None or spec in ("", "dense", "none"):
        return None
    from physamp.topology.registry import make_topology

    return make_topology(spec, n_visible, n_hidden, seed=seed)


def _chain_options(name: str, k: int, persistent: bool) -> dict[str, Any]:
    """Options that make backend ``name`` run k sweeps per call with (non-)persistent chains.

    Read from what the backend declares (:class:`~physamp.samplers.Sampler`'s
    ``uses_chains``, ``steps_option``, ``supports_persistent``), never guessed from its
    constructor. A backend that draws independent samples on every call
    (``uses_chains = False``: ``exact``, ``dimod``, ``dwave``) needs no sweeps: it gets
    no options, and k does not apply to it.

    Raises:
        ValueError: a chain backend that declares no ``steps_option`` (k could not reach
            it), or PCD (``persistent``) with one that cannot keep its chains.
    """
    from physamp.samplers.registry import sampler_class

    cls = sampler_class(name)
    uses_chains, steps, keeps = cls.uses_chains, cls.steps_option, cls.supports_persistent
    if not isinstance(uses_chains, bool) or not isinstance(steps, (str, type(None))):
        raise ValueError(
            f"the {name!r} backend ({cls.__name__}) decides uses_chains / steps_option per instance "
            "(a composite takes them from its child), so the trainer cannot set its sweeps by name; "
            "train with its child as the sampler, or pass a built Sampler"
        )
    if not uses_chains:
        return {}
    if steps is None:
        raise ValueError(
            f"the {name!r} backend ({cls.__name__}) runs Markov chains (uses_chains = True) but declares "
            f"no steps_option, so PCD-k / CD-k cannot make it run k={k} sweeps per update. The backend "
            "must declare steps_option: the name of its constructor option for the number of sweeps "
            'per call (e.g. steps_option = "steps"; see physamp.samplers.base, "Writing a backend")'
        )
    out: dict[str, Any] = {steps: k}
    if persistent and not keeps:
        raise ValueError(
            f"PCD keeps its chains in the sampler, but the {name!r} backend ({cls.__name__}) declares "
            "supports_persistent = False; use method='cd', or declare supports_persistent = True "
            "if its constructor takes persistent"
        )
    if keeps:
        out["persistent"] = persistent
    return out


def _quiet(name, chain: dict[str, Any]) -> dict[str, Any]:
    """``chain`` plus ``diagnostics=False`` for a chain backend that reports R̂ (gibbs, neal): the k
    sweeps of an update continue the chains by design, they are not a mixing run whose R̂ would
    mean anything, and a warning per update would bury the log (``-o diagnostics=True`` wins)."""
    if not chain or not isinstance(name, str):
        return chain
    import inspect

    from physamp.samplers.registry import sampler_class

    if "diagnostics" in inspect.signature(sampler_class(name).__init__).parameters:
        return {**chain, "diagnostics": False}
    return chain


def build_training_sampler(
    cfg: RBMTrainConfig, *, topology=None, run_dir: str | Path | None = None
) -> Sampler:
    """The negative-phase sampler: backend ``cfg.sampler`` running k sweeps per update
    (persistent chains for PCD), wrapped in the simulated device when noise is asked for.

    k goes to the backend under the option it declares as ``steps_option`` (``steps`` for
    ``gibbs``, ``num_sweeps`` for ``neal``), ``persistent`` only if it declares
    ``supports_persistent``. Backends that draw independent samples on every call
    (``exact``, ``dimod``, ``dwave``: ``uses_chains = False``) are built without either:
    k does not apply to them. A chain backend that declares no ``steps_option`` is refused
    (``ValueError``). Options given in ``cfg.sampler_options`` win over these.

    With ``sampler="simulated"`` the k sweeps go to its child (``child`` option,
    ``gibbs`` by default; a child given as a built Sampler is used as it is);
    ``weight_noise`` / ``bias_noise`` of the config and of the options are the same
    thing (the options win).

    The ``dwave`` backend (also as the simulated device's child) is set up for training by
    :func:`setup_qpu_backend`: ``cfg.qpu_budget``, the ledger ``run_dir/qpu_ledger.jsonl``
    (with a ``run_dir``), and ``topology`` placed on the solver's working graph
    (:func:`place_on_solver`; this connects to the solver, so a missing token is an error
    here, before any training). ``qpu_budget`` / ``calibrate_every`` with another backend
    are refused.
    """
    persistent = cfg.method == "pcd"
    options = dict(cfg.sampler_options)
    noisy = cfg.weight_noise > 0 or cfg.bias_noise > 0
    if cfg.sampler == "simulated" or noisy:
        child = options.pop("child", "gibbs") if cfg.sampler == "simulated" else cfg.sampler
        chain = _quiet(child, _chain_options(child, cfg.k, persistent)) if isinstance(child, str) else {}
        options.setdefault("weight_noise", cfg.weight_noise)
        options.setdefault("bias_noise", cfg.bias_noise)
        options.setdefault("space", cfg.noise_space)
        sampler = make_sampler(
            "simulated", child=child, seed=derive_seed(cfg.seed, "sampler"), **{**chain, **options}
        )
    else:
        options = {**_quiet(cfg.sampler, _chain_options(cfg.sampler, cfg.k, persistent)), **options}
        sampler = make_sampler(cfg.sampler, seed=derive_seed(cfg.seed, "sampler"), **options)
    setup_qpu_backend(sampler, cfg, topology=topology, run_dir=run_dir)
    return sampler


# --- the dwave backend in training ------------------------------------------------------
def qpu_backend(sampler):
    """The :class:`~physamp.samplers.dwave.DWaveBackend` ``sampler`` is or wraps (through
    ``.child``, e.g. the simulated device around it), else None."""
    from physamp.samplers.dwave import DWaveBackend

    s = sampler
    for _ in range(16):
        if isinstance(s, DWaveBackend):
            return s
        s = getattr(s, "child", None)
        if s is None:
            break
    return None


def setup_qpu_backend(sampler, cfg: RBMTrainConfig, *, topology=None, run_dir=None):
    """Give the dwave backend in ``sampler`` the run's budget, ledger and topology; returns it (None
    when there is none, after refusing ``qpu_budget`` / ``calibrate_every`` for another backend).

    - ``cfg.qpu_budget`` becomes the backend's ``qpu_budget`` (a different ``-o qpu_budget=`` is
      refused);
    - with a ``run_dir``, a backend whose ledger is in memory (the default) records into
      ``run_dir/qpu_ledger.jsonl`` from then on: the file is read first, so an earlier session's
      QPU time counts, and the calls already in memory are copied in;
    - ``topology`` (one qubit per unit) is placed on the solver's working graph by
      :func:`place_on_solver`, unless the backend was given a topology or embedding of its own;
    - with a budget, a sampler whose access time cannot be estimated is refused here (before
      training) unless ``allow_unknown_cost`` is set.
    """
    qpu = qpu_backend(sampler)
    if qpu is None:
        if cfg.qpu_budget is not None or cfg.calibrate_every:
            what = "qpu_budget" if cfg.qpu_budget is not None else "calibrate_every"
            raise ValueError(
                f"{what} applies to the dwave backend (a QPU or its offline stand-in), but the sampler "
                f"is {getattr(sampler, 'name', type(sampler).__name__)!r}; use --sampler dwave, or drop "
                f"--{what.replace('_', '-')}"
            )
        return None
    if cfg.qpu_budget is not None:
        if qpu.qpu_budget is not None and qpu.qpu_budget != cfg.qpu_budget:
            raise ValueError(
                f"the QPU budget is given twice, as --qpu-budget {cfg.qpu_budget:g} and as the backend's "
                f"qpu_budget={qpu.qpu_budget:g}; give it once"
            )
        qpu.qpu_budget = float(cfg.qpu_budget)
    if run_dir is not None and qpu.ledger.path is None:
        from physamp.samplers.qpu_budget import QPULedger

        run_ledger = QPULedger(Path(run_dir) / LEDGER_FILE)
        run_ledger.extend(qpu.ledger)  # calls made before the run directory was known count too
        qpu.ledger = run_ledger
    if topology is not None and qpu.topology is None and qpu.embedding is None:
        qpu.topology = topology  # first: a simulated solver (solver="simulated") is built on its graph
        try:
            qpu.topology = place_on_solver(topology, qpu.sampler)
        except BaseException:
            qpu.topology = None
            raise
    if qpu.qpu_budget is not None and not qpu.allow_unknown_cost:
        from physamp.samplers.qpu_budget import access_time_estimator, check_budget

        estimate, why = access_time_estimator(qpu.sampler)
        if estimate is None:
            check_budget(qpu.qpu_budget, qpu.ledger, None, num_reads=0, num_qubits=0, why_unknown=why)
    return qpu


def _shift_maps(family: str, ours: tuple, theirs: tuple):
    """Label maps from a ``family`` graph of shape ``ours`` into one of shape ``theirs``: the
    coordinates kept (nested graphs), then shifted by whole unit cells. Yields ``(shift, map)``."""
    import dwave.graphs as dg

    if family == "chimera":
        (m, n, t), (mm, nn, tt) = ours, theirs
        if t != tt or m > mm or n > nn:
            return
        src, dst = dg.chimera_coordinates(m, n, t), dg.chimera_coordinates(mm, nn, tt)
        for a in range(mm - m + 1):
            for b in range(nn - n + 1):
                yield (
                    (a, b),
                    lambda q, a=a, b=b: dst.chimera_to_linear(
                        (lambda i, j, u, k: (i + a, j + b, u, k))(*src.linear_to_chimera(q))
                    ),
                )
    elif family == "pegasus":
        (m,), (mm,) = ours, theirs
        if m > mm:
            return
        src, dst = dg.pegasus_coordinates(m), dg.pegasus_coordinates(mm)

        def peg(q, a, b):
            u, w, k, z = src.linear_to_pegasus(q)  # u = 0 (vertical): w is its column, z its row
            return dst.pegasus_to_linear((u, w + a, k, z + b) if u == 0 else (u, w + b, k, z + a))

        for a in range(mm - m + 1):
            for b in range(mm - m + 1):
                yield (a, b), lambda q, a=a, b=b: peg(q, a, b)
    elif family == "zephyr":
        (m, t), (mm, tt) = ours, theirs
        if t != tt or m > mm:
            return
        src, dst = dg.zephyr_coordinates(m, t), dg.zephyr_coordinates(mm, tt)

        def zep(q, a, b):
            u, w, k, j, z = src.linear_to_zephyr(q)
            return dst.zephyr_to_linear(
                (u, w + 2 * a, k, j, z + b) if u == 0 else (u, w + 2 * b, k, j, z + a)
            )

        for a in range(mm - m + 1):
            for b in range(mm - m + 1):
                yield (a, b), lambda q, a=a, b=b: zep(q, a, b)


def place_on_solver(topology, solver):
    """``topology`` placed on ``solver``'s working graph: the :class:`~physamp.topology.Topology` the
    dwave backend programs (one qubit per unit) and the RBM's mask comes from.

    A topology laid out on a smaller graph of the solver's family (the 784x784 ``pegasus`` RBM
    lives on ``pegasus_graph(9)``, an Advantage QPU is Pegasus 16; ``chimera`` 784x784 is C_14,
    a D-Wave 2000Q C_16) is moved onto the solver's labels through the graph's coordinates,
    at the whole-cell shift that keeps every unit on a working qubit and the most connections
    on working couplers (ties: the smallest shift). Then :meth:`Topology.restrict_to` removes
    the connections the solver lacks (unit indices unchanged). A topology of the solver's own
    shape is only restricted.

    Raises:
        TopologyMismatchError: another graph family, or a larger graph than the solver's.
        ValueError: no placement puts every unit on a working qubit.
    """
    import networkx as nx

    from physamp.topology.base import Topology, TopologyMismatchError, _graph_family, _solver_family

    ours, theirs = _graph_family(topology.graph.graph), _solver_family(solver)
    if ours[0] is not None and ours[0] == theirs[0] and ours[1] and theirs[1] and ours[1] != theirs[1]:
        nodes = set(solver.nodelist)
        edges = {frozenset(e) for e in solver.edgelist}
        units = topology.labels()
        pairs = list(topology.graph.edges())
        best = None
        for shift, f in _shift_maps(ours[0], ours[1], theirs[1]):
            mapping = {q: f(q) for q in units}
            missing = sum(mapping[q] not in nodes for q in units)
            kept = sum(frozenset((mapping[x], mapping[y])) in edges for x, y in pairs)
            score = (-missing, kept)
            if best is None or score > best[0]:
                best = (score, shift, mapping)
        if best is None:
            raise TopologyMismatchError(
                f"the topology {topology.name!r} is laid out on a {ours[0]} graph of shape {list(ours[1])}, "
                f"which does not fit in the solver's {theirs[0]} graph of shape {list(theirs[1])}; build a "
                "smaller topology"
            )
        (neg_missing, _), shift, mapping = best
        if neg_missing:
            raise ValueError(
                f"no placement of the topology {topology.name!r} on the solver's working graph avoids its "
                f"missing qubits (the best shift {shift} leaves {-neg_missing} unit(s) without a qubit); "
                "use a smaller RBM or a topology built from the solver's graph"
            )
        graph = nx.relabel_nodes(topology.graph, mapping, copy=True)
        keys = {"chimera": ("rows", "columns", "tile"), "pegasus": ("rows",), "zephyr": ("rows", "tile")}
        graph.graph.update(zip(keys[ours[0]], theirs[1], strict=True))
        if ours[0] == "pegasus":
            graph.graph["columns"] = theirs[1][0]
        info = {**topology.info, "placed_from": list(ours[1]), "placed_shift": list(shift)}
        topology = Topology(
            graph,
            [mapping[q] for q in topology.visible],
            [mapping[q] for q in topology.hidden],
            topology.mask.clone(),
            f"{topology.name}@{theirs[0]}{list(theirs[1])}",
            info,
        )
    placed, report = topology.restrict_to(solver)
    if report.missing_qubits:
        raise ValueError(
            f"the topology {topology.name!r} puts {len(report.missing_qubits)} unit(s) on qubits the solver "
            f"lacks ({report.summary()}); the dwave backend programs one qubit per unit, so build the "
            "topology from the solver's working graph"
        )
    return placed


class QPUBudgetStop(RuntimeError):
    """The QPU budget stopped a training run cleanly: the refused step changed nothing, the
    checkpoint holds the steps done and the cost report what was spent.

    Attributes: ``step`` (steps done), ``total_steps``, ``checkpoint`` (path, or None when no
    step was done or there is no run directory), ``report`` (the cost report dict),
    ``report_path`` (``run_dir/qpu_cost.json`` or None), ``refusal`` (the
    :class:`~physamp.samplers.qpu_budget.QPUBudgetExceeded`).
    """

    def __init__(self, refusal, *, step: int, total_steps: int, checkpoint, report, report_path):
        self.refusal, self.step, self.total_steps = refusal, step, total_steps
        self.checkpoint, self.report, self.report_path = checkpoint, report, report_path
        est, left, budget = refusal.estimate_s, refusal.left_s, refusal.budget_s
        head = (
            f"QPU budget: training stopped before step {step + 1:,} of {total_steps:,}, whose sampling would "
            f"use an estimated {est:.4g} s of QPU access time with {left:.4g} s of the {budget:.6g} s "
            f"budget left ({refusal.spent_s:.6g} s spent)"
        )
        if checkpoint is not None:
            where = f"; the checkpoint {checkpoint} holds step {step:,}"
        elif step == 0:
            where = "; nothing was trained"
        else:
            where = f"; {step:,} step(s) were trained in memory"
        tail = "" if report_path is None else f", the cost report is in {report_path}"
        super().__init__(
            head + where + tail + ". To continue, run it again with a larger --qpu-budget (the ledger keeps "
            "counting what was spent)"
        )


class _QPUState:
    """The dwave backend's calibrated scale (``prefactor``, ``beta_eff``) as a checkpoint entry, so a
    resumed run programs exactly what the uninterrupted one would."""

    def __init__(self, backend, trainer: RBMTrainer):
        self.backend, self.trainer = backend, trainer

    def state_dict(self) -> dict[str, Any]:
        return {
            "prefactor": self.backend.prefactor,
            "beta_eff": self.backend.beta_eff,
            "calibrations": list(self.trainer.calibrations),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        from physamp.samplers.base import check_positive

        for key in ("prefactor", "beta_eff"):
            v = sd.get(key)
            setattr(self.backend, key, None if v is None else check_positive(v, key))
        self.trainer.calibrations = list(sd.get("calibrations", []))


def base_rate_init(rbm: RBM, data: torch.Tensor, smoothing: float = BASE_RATE_SMOOTHING) -> None:
    """Visible biases to the base rate of ``data`` (Hinton's practical guide): the base-rate
    model AIS anneals from (:func:`~physamp.models.rbm.model.base_rate_biases`)."""
    rbm.init_base_rate_(data, smoothing)


class RBMTrainer(Trainer):
    """Train ``rbm`` on ``train`` (grey levels in [0, 1], re-binarised per presentation).

    ``trainer.fit(run_dir=...)`` runs :class:`~physamp.training.TrainLoop`: progress,
    metrics (``recon``: squared reconstruction error; ``fe_gap``: F(data) - F(samples)),
    checkpoints and exact resume.

    The batch order is a :class:`~physamp.training.BatchOrder` of the training examples:
    epoch ``e`` is ``torch.randperm(N)`` seeded by ``derive_seed(cfg.seed, "data-order", e)``,
    cut into ``N // batch_size`` batches (one batch of all ``N`` when ``N < batch_size``);
    the data stays one tensor on the device, indexed by the order's index tensors.

    ``data`` is the identity of the training data (e.g. ``{"name": "mnist-offline",
    "root": ..., "binarize_seed": 0}``): it is stored as ``config["data"]``, so a run
    directory trained on other data is refused like any other config difference.

    With the ``dwave`` backend (see the module docstring) the trainer also has
    :meth:`qpu_estimate` (before training), :meth:`qpu_cost_report` and ``calibrations``; a
    dwave run checkpoints every ``QPU_CHECKPOINT_EVERY`` (10) steps at least, and ``qpu_budget``
    is no part of the run's identity, so a run stopped by its budget goes on under a larger one.
    """

    desc = "train-rbm"
    batches_per_epoch: int  # set by __init__

    def intervals(self) -> tuple[int, int]:
        per = self.batches_per_epoch  # a checkpoint and a record per epoch
        if self._qpu is not None:  # QPU time spent after the last checkpoint is redone on resume
            return min(per, QPU_CHECKPOINT_EVERY), per
        return per, per

    def __init__(
        self,
        cfg: RBMTrainConfig,
        train: torch.Tensor,
        *,
        device: str | torch.device = "cpu",
        rbm: RBM | None = None,
        sampler: Sampler | None = None,
        data: dict[str, Any] | None = None,
    ):
        self.cfg = cfg.validate()
        if data is not None and not isinstance(data, dict):
            raise TypeError(
                f"data must be a dict that identifies the training data (e.g. {{'name': 'mnist', "
                f"'root': ...}}) or None; got a {type(data).__qualname__}"
            )
        self.data_identity: dict[str, Any] | None = None if data is None else to_jsonable(data)
        self.device = resolve_device(device)
        if train.dim() != 2 or train.shape[0] < 1:
            raise ValueError(f"training data must be (N, n_visible), got shape {tuple(train.shape)}")
        if not torch.isfinite(train).all() or train.min() < 0 or train.max() > 1:
            raise ValueError("training data must hold grey levels / probabilities in [0, 1]")
        self.train = train.to(self.device, torch.float32)
        n_visible = train.shape[1]
        self.topology = parse_topology(cfg.topology, n_visible, cfg.n_hidden, seed=cfg.seed)
        # the sampler before the model: the dwave backend places the topology on the solver's working
        # graph, and the RBM's mask is the placed one (this also connects: no token, no training)
        if sampler is None:
            sampler = build_training_sampler(cfg, topology=self.topology)
        else:
            setup_qpu_backend(sampler, cfg, topology=self.topology)
        self.sampler = sampler
        self._qpu = qpu_backend(sampler)
        if self._qpu is not None and self.topology is not None and self._qpu.topology is not None:
            self.topology = self._qpu.topology
        self.calibrations: list[dict[str, Any]] = []  # one summary per calibration (checkpointed)
        self._warned_calibration = False
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "model-init"))
        if rbm is None:
            mask = None if self.topology is None else self.topology.mask
            rbm = RBM(n_visible, cfg.n_hidden, mask=mask, init_std=cfg.init_std, generator=gen)
            base_rate_init(rbm, train)
        if rbm.n_visible != n_visible or rbm.n_hidden != cfg.n_hidden:
            raise ValueError(
                f"the RBM is {rbm.n_visible}x{rbm.n_hidden} but the data/config need "
                f"{n_visible}x{cfg.n_hidden}"
            )
        self.rbm = rbm.to(self.device)
        self.optimizer = torch.optim.SGD(
            self.rbm.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        # the batch order is a pure function of (seed, epoch): nothing of it to checkpoint
        n = train.shape[0]
        self.order = BatchOrder(n, cfg.batch_size, seed=cfg.seed, drop_last=n >= cfg.batch_size)
        self.batches_per_epoch = len(self.order)  # max(1, N // batch_size)
        self.total_steps = self.batches_per_epoch * cfg.epochs
        # binarisation noise
        self.generator = torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "binarize"))

    # --- pieces -----------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        cfg, frac = self.cfg, step / max(self.total_steps, 1)
        if cfg.lr_schedule == "constant":
            return cfg.lr
        if cfg.lr_schedule == "linear":
            return cfg.lr + (cfg.lr_final - cfg.lr) * frac
        return cfg.lr * (cfg.lr_final / cfg.lr) ** frac

    def batch(self, step: int) -> torch.Tensor:
        """The freshly binarised minibatch of ``step``."""
        idx = self.order.indices(*self.order.position(step)).to(self.device)
        probs = self.train[idx]
        u = torch.rand(probs.shape, generator=self.generator, device=self.device)
        return (u < probs).to(torch.float32)

    def negative_samples(self, v_data: torch.Tensor):
        """The negative phase's samples. On the dwave backend they are one ``sample`` per step
        (``num_chains`` reads for PCD, a batch's worth for CD; split over solver calls only above
        the solver's ``num_reads_range``): hardware keeps no chains, so PCD and CD both draw
        independent anneals, and ``initial`` is ignored."""
        if self._qpu is not None:
            with self._qpu.ledger_label_as("train"):
                return self._negative_samples(v_data)
        return self._negative_samples(v_data)

    def _negative_samples(self, v_data: torch.Tensor):
        if self.cfg.method == "pcd":
            return self.sampler.sample(self.rbm, self.cfg.num_chains)
        return self.sampler.sample(self.rbm, v_data.shape[0], initial=v_data)

    def step(self, step: int) -> dict[str, torch.Tensor | float]:
        """One update; the metrics are tensors on the device (no sync: the loop averages them).

        On the dwave backend a step calibrates first when ``calibrate_every`` says so, and a
        sample the QPU budget refuses (:class:`~physamp.samplers.qpu_budget.QPUBudgetExceeded`)
        leaves the trainer as the step found it (the random streams it drew from, the calibrated
        scale), so that the checkpoint written at the stop resumes exactly."""
        qpu = self._qpu
        if qpu is None:
            return self._update(step)
        from physamp.samplers.qpu_budget import QPUBudgetExceeded

        before = (
            self.generator.get_state(),
            self.sampler.state_dict(),
            torch.get_rng_state(),
            qpu.prefactor,
            qpu.beta_eff,
            list(self.calibrations),
        )
        try:
            return self._update(step)
        except QPUBudgetExceeded:
            self.generator.set_state(before[0])
            self.sampler.load_state_dict(before[1])
            torch.set_rng_state(before[2])
            qpu.prefactor, qpu.beta_eff, self.calibrations = before[3], before[4], before[5]
            raise

    def _step_reads(self) -> int:
        cfg = self.cfg
        return cfg.num_chains if cfg.method == "pcd" else min(cfg.batch_size, self.train.shape[0])

    def _check_step_fits(self, qpu) -> None:
        """Before a calibrating step spends anything: refuse it unless its first calibration call
        and its training sample both fit in the budget (a calibration whose step the budget then
        refuses would be paid for and redone on resume)."""
        if qpu.qpu_budget is None:
            return
        from physamp.samplers.qpu_budget import check_budget

        calibration = qpu.dry_run(self.rbm, self.cfg.calibrate_samples)
        train = qpu.dry_run(self.rbm, self._step_reads())
        if calibration.estimated_qpu_access_time_s is None or train.estimated_qpu_access_time_s is None:
            return  # unknown cost, explicitly allowed: nothing to check
        check_budget(
            qpu.qpu_budget,
            qpu.ledger,
            [calibration.estimated_qpu_access_time_s * 1e6, train.estimated_qpu_access_time_s * 1e6],
            num_reads=calibration.num_samples + train.num_samples,
            num_qubits=train.num_qubits,
        )

    def _calibrate(self, step: int) -> dict[str, Any]:
        """Calibrate the dwave backend's prefactor to β_model = 1 on the current model
        (:func:`physamp.samplers.temperature.calibrate`, its reads labelled ``calibration``
        in the ledger); the metrics ``prefactor``, ``beta_eff``, ``beta_eff_std``."""
        from physamp.samplers.temperature import calibrate

        qpu, cfg = self._qpu, self.cfg
        with qpu.ledger_label_as("calibration"):
            result = calibrate(qpu, self.rbm, 1.0, num_samples=cfg.calibrate_samples)
        self.calibrations.append(
            {
                "step": step,
                "prefactor": result.prefactor,
                "beta_eff": result.beta_eff,
                "beta_eff_std": result.beta_eff_std,
                "beta_model": result.beta_model,
                "converged": bool(result.converged),
                "reads": int(result.num_reads),
            }
        )
        if not result.converged and not self._warned_calibration:
            self._warned_calibration = True
            warnings.warn(
                f"calibration at step {step} did not converge ({result.reason or 'no reason given'}); "
                f"training goes on at prefactor {qpu.prefactor:.4g}",
                RuntimeWarning,
                stacklevel=2,
            )
        # (value, count) pairs: the records average them over the calibration steps only
        out: dict[str, Any] = {"prefactor": (float(qpu.prefactor), 1)}
        for key in ("beta_eff", "beta_eff_std"):
            value = getattr(result, key)
            if value is not None and math.isfinite(value):
                out[key] = (float(value), 1)
        return out

    def _update(self, step: int) -> dict[str, torch.Tensor | float]:
        cfg, rbm, qpu = self.cfg, self.rbm, self._qpu
        extra: dict[str, Any] = {}
        if qpu is not None and cfg.calibrate_every and step % cfg.calibrate_every == 0:
            self._check_step_fits(qpu)
            extra.update(self._calibrate(step))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        v = self.batch(step)
        spent = None if qpu is None else qpu.ledger.spent_us
        neg = self.negative_samples(v)
        if qpu is not None:
            extra["qpu_ms"] = (qpu.ledger.spent_us - spent) * 1e-3  # this step's QPU access time
            # only a measured β: an assumed beta_eff (the fallback when the reads give no estimate)
            # times the prefactor would be logged as if the step's reads had shown it
            measured = neg.info.get("beta_eff_source") == "pseudolikelihood"
            beta = neg.info.get("beta_model") if measured else None
            if isinstance(beta, float) and math.isfinite(beta):
                extra["beta_model"] = (beta, 1)  # β the step's reads sampled the RBM at, estimated
        self.optimizer.zero_grad(set_to_none=True)
        fe_data = rbm.free_energy(v).mean()
        fe_model = rbm.free_energy(neg.v.to(v.dtype)).mean()
        (fe_data - fe_model).backward()
        self.optimizer.step()
        rbm.apply_constraints_(cfg.max_weight, cfg.max_bias)
        with torch.no_grad():
            recon = ((v - rbm.p_v_given_h(rbm.p_h_given_v(v))) ** 2).sum(1).mean()
        gap = (fe_data - fe_model).detach()
        return {"recon": recon, "fe_gap": gap, "lr": self.learning_rate(step), **extra}

    def state(self) -> dict[str, Any]:
        out = {
            "model": self.rbm,
            "optimizer": self.optimizer,
            "sampler": self.sampler,
            "generator": self.generator,
        }
        if self._qpu is not None:  # the calibrated scale (other backends' checkpoints are unchanged)
            out["qpu"] = _QPUState(self._qpu, self)
        return out

    # --- QPU time ---------------------------------------------------------------------
    def qpu_estimate(self) -> dict[str, Any] | None:
        """The estimated QPU access time of this run before it starts (None: not the dwave backend):
        ``per_step_s`` (one step's reads, from a dry run on the current model), ``steps``,
        ``training_s``, ``calibrations`` and ``calibration_max_s`` (each calibration at most
        ``max_iter`` = 8 calls of ``calibrate_samples`` reads), ``total_max_s``, ``budget_s``,
        ``spent_s`` (the ledger so far) and ``left_s``; ``per_step_s`` is None when the sampler
        gives no estimate."""
        qpu, cfg = self._qpu, self.cfg
        if qpu is None:
            return None
        per_step = qpu.dry_run(self.rbm, self._step_reads()).estimated_qpu_access_time_s
        calibrations = 0 if not cfg.calibrate_every else -(-self.total_steps // cfg.calibrate_every)
        per_cal = None
        if calibrations:
            one = qpu.dry_run(self.rbm, cfg.calibrate_samples).estimated_qpu_access_time_s
            per_cal = None if one is None else 8 * one
        training = None if per_step is None else per_step * self.total_steps
        total = (
            None
            if training is None or (calibrations and per_cal is None)
            else training + calibrations * (per_cal or 0)
        )
        return {
            "per_step_s": per_step,
            "steps": self.total_steps,
            "training_s": training,
            "calibrations": calibrations,
            "calibration_max_s": per_cal,
            "total_max_s": total,
            "budget_s": qpu.qpu_budget,
            "spent_s": qpu.ledger.spent_s,
            "left_s": qpu.qpu_budget_left,
        }

    def qpu_cost_report(self, *, stopped_by_budget: bool = False) -> dict[str, Any] | None:
        """What the run has spent (:func:`physamp.samplers.qpu_budget.cost_report` of the backend's
        ledger, with the steps done and the calibrations); None: not the dwave backend."""
        from physamp.samplers.qpu_budget import cost_report

        if self._qpu is None:
            return None
        steps = None if self.loop is None else self.loop.step
        report = cost_report(
            self._qpu.ledger, budget_s=self._qpu.qpu_budget, steps=steps, stopped_by_budget=stopped_by_budget
        )
        report["total_steps"] = self.total_steps
        report["calibrations"] = list(self.calibrations)
        report["prefactor"] = self._qpu.prefactor
        return report

    def _write_cost_report(self, run_dir, *, stopped_by_budget: bool = False):
        """``run_dir/qpu_cost.json`` (atomically); returns ``(report, path or None)``."""
        import json

        report = self.qpu_cost_report(stopped_by_budget=stopped_by_budget)
        if run_dir is None or report is None:
            return report, None
        path = Path(run_dir) / COST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(to_jsonable(report), indent=2) + "\n")
        tmp.replace(path)
        return report, path

    def fit(self, run_dir=None, **kwargs) -> list[dict]:
        """:meth:`Trainer.fit`; on the dwave backend the run's ledger is ``run_dir/qpu_ledger.jsonl``
        (an earlier session's QPU time counts against the budget), the cost report is written to
        ``run_dir/qpu_cost.json`` at the end (and when training stops for any reason), and a step
        the budget refuses ends the run cleanly: a checkpoint of the steps done, then
        :class:`QPUBudgetStop` (with the report) instead of the refusal."""
        qpu = self._qpu
        if qpu is None:
            return super().fit(run_dir, **kwargs)
        from physamp.samplers.qpu_budget import QPUBudgetExceeded
        from physamp.training.loop import run_dir_lock

        setup_qpu_backend(self.sampler, self.cfg, run_dir=run_dir)
        try:
            history = super().fit(run_dir, **kwargs)
        except QPUBudgetExceeded as refusal:
            loop, checkpoint = self.loop, None
            if loop is not None and loop.run_dir is not None and loop.step > 0:
                with run_dir_lock(loop.run_dir):  # the loop gave its lock back when the step raised
                    checkpoint = loop.save()
            report, path = self._write_cost_report(run_dir, stopped_by_budget=True)
            raise QPUBudgetStop(
                refusal,
                step=0 if loop is None else loop.step,
                total_steps=self.total_steps,
                checkpoint=checkpoint,
                report=report,
                report_path=path,
            ) from None
        except BaseException:  # Ctrl-C or a failure: still say what was spent
            try:
                self._write_cost_report(run_dir)
            except OSError:
                pass
            raise
        self._write_cost_report(run_dir)
        return history

    def config_dict(self) -> dict[str, Any]:
        """The run's JSON description (:func:`~physamp.training.to_jsonable`: objects in
        ``sampler_options`` by their class name), with the data identity as ``"data"`` if given."""
        out = {
            "model": "rbm",
            "n_visible": self.rbm.n_visible,
            "seeding": SEEDING_VERSION,  # checkpoints of another seed derivation do not resume
            **to_jsonable(self.cfg),
        }
        # the QPU budget limits what a run may spend, not what it computes: a run goes on under a
        # larger one. The calibration fields are left out while off, so older run directories match.
        out.pop("qpu_budget", None)
        if self.cfg.calibrate_every is None:
            out.pop("calibrate_every", None)
            out.pop("calibrate_samples", None)
        options = out.get("sampler_options")
        if isinstance(options, dict):
            for key in ("qpu_budget", "ledger", "allow_unknown_cost"):
                options.pop(key, None)
        if self.data_identity is not None:
            out["data"] = self.data_identity
        return out
