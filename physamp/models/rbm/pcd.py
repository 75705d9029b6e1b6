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
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import torch

from physamp.models.rbm.model import BASE_RATE_SMOOTHING, RBM
from physamp.samplers import Sampler, make_sampler
from physamp.seeding import SEEDING_VERSION, derive_seed
from physamp.training import BatchOrder, Trainer, resolve_device, to_jsonable
from physamp.training.options import (
    nonnegative_float,
    option,
    parse_assignments,
    positive_float,
    positive_int,
    seed_int,
)

__all__ = ["RBMTrainConfig", "RBMTrainer", "build_training_sampler", "parse_topology", "base_rate_init"]


@dataclass
class RBMTrainConfig:
    """Hyper-parameters of a PCD-k / CD-k run (defaults: a quick 784x500 PCD-15 run).

    This dataclass is the one source of each option: ``physamp train-rbm``'s flags,
    their defaults and help text are generated from these fields
    (:func:`physamp.training.options.add_config_arguments`), and ``--set KEY=VALUE``
    reaches any of them by name.
    """

    n_hidden: int = option(500, "hidden units", flags=("--hidden",), type=positive_int)
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
    seed: int = option(
        0,
        "seed of the run, any 64-bit integer (every stream derives from it: physamp.seeding)",
        type=seed_int,
    )

    def validate(self) -> RBMTrainConfig:
        positive = ("n_hidden", "epochs", "batch_size", "k", "num_chains")
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
        return self


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


def build_training_sampler(cfg: RBMTrainConfig) -> Sampler:
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
    """
    persistent = cfg.method == "pcd"
    options = dict(cfg.sampler_options)
    noisy = cfg.weight_noise > 0 or cfg.bias_noise > 0
    if cfg.sampler == "simulated" or noisy:
        child = options.pop("child", "gibbs") if cfg.sampler == "simulated" else cfg.sampler
        chain = _chain_options(child, cfg.k, persistent) if isinstance(child, str) else {}
        options.setdefault("weight_noise", cfg.weight_noise)
        options.setdefault("bias_noise", cfg.bias_noise)
        options.setdefault("space", cfg.noise_space)
        return make_sampler(
            "simulated", child=child, seed=derive_seed(cfg.seed, "sampler"), **{**chain, **options}
        )
    options = {**_chain_options(cfg.sampler, cfg.k, persistent), **options}
    return make_sampler(cfg.sampler, seed=derive_seed(cfg.seed, "sampler"), **options)


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
    """

    desc = "train-rbm"

    def intervals(self) -> tuple[int, int]:
        return self.batches_per_epoch, self.batches_per_epoch  # a checkpoint and a record per epoch

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
        self.sampler = sampler if sampler is not None else build_training_sampler(cfg)
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
        if self.cfg.method == "pcd":
            return self.sampler.sample(self.rbm, self.cfg.num_chains)
        return self.sampler.sample(self.rbm, v_data.shape[0], initial=v_data)

    def step(self, step: int) -> dict[str, torch.Tensor | float]:
        """One update; the metrics are tensors on the device (no sync: the loop averages them)."""
        cfg, rbm = self.cfg, self.rbm
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        v = self.batch(step)
        neg = self.negative_samples(v)
        self.optimizer.zero_grad(set_to_none=True)
        fe_data = rbm.free_energy(v).mean()
        fe_model = rbm.free_energy(neg.v.to(v.dtype)).mean()
        (fe_data - fe_model).backward()
        self.optimizer.step()
        rbm.apply_constraints_(cfg.max_weight, cfg.max_bias)
        with torch.no_grad():
            recon = ((v - rbm.p_v_given_h(rbm.p_h_given_v(v))) ** 2).sum(1).mean()
        gap = (fe_data - fe_model).detach()
        return {"recon": recon, "fe_gap": gap, "lr": self.learning_rate(step)}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.rbm,
            "optimizer": self.optimizer,
            "sampler": self.sampler,
            "generator": self.generator,
        }

    def config_dict(self) -> dict[str, Any]:
        """The run's JSON description (:func:`~physamp.training.to_jsonable`: objects in
        ``sampler_options`` by their class name), with the data identity as ``"data"`` if given."""
        out = {
            "model": "rbm",
            "n_visible": self.rbm.n_visible,
            "seeding": SEEDING_VERSION,  # checkpoints of another seed derivation do not resume
            **to_jsonable(self.cfg),
        }
        if self.data_identity is not None:
            out["data"] = self.data_identity
        return out
