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

import inspect
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from physamp.models.rbm import RBM
from physamp.samplers import Sampler, make_sampler
from physamp.seeding import derive_seed
from physamp.training import TrainLoop, resolve_device

__all__ = ["RBMTrainConfig", "RBMTrainer", "build_training_sampler", "parse_topology", "base_rate_init"]


@dataclass
class RBMTrainConfig:
    """Hyper-parameters of a PCD-k / CD-k run (defaults: a quick 784x500 PCD-15 run)."""

    n_hidden: int = 500
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.05
    lr_schedule: str = "linear"  # "constant" | "linear" (to lr_final) | "exponential"
    lr_final: float = 0.005
    momentum: float = 0.5
    weight_decay: float = 1e-4
    method: str = "pcd"  # "pcd" | "cd"
    k: int = 15
    num_chains: int = 100  # PCD fantasy particles
    sampler: str = "gibbs"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    topology: str | None = None  # None | chimera[:pixel_blocks|:extended] | pegasus | zephyr | random:F
    max_weight: float | None = None
    max_bias: float | None = None
    weight_noise: float = 0.0
    bias_noise: float = 0.0
    noise_space: str = "rbm"
    init_std: float = 0.01
    seed: int = 0

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
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.method not in ("pcd", "cd"):
            raise ValueError(f"method must be 'pcd' or 'cd', got {self.method!r}")
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
    """``None`` (dense), ``"chimera"`` / ``"chimera:pixel_blocks"`` / ``"chimera:extended"``,
    ``"pegasus"`` / ``"zephyr"`` (784x784 only, pixel-ordered visibles; see
    :mod:`physamp.topology.modern_pixels`), or ``"random:F"`` (a fraction F of the
    connections removed, seeded) → topology or None."""
    if spec is None or spec in ("", "dense", "none"):
        return None
    from physamp import topology as T

    kind, _, arg = spec.partition(":")
    if kind == "chimera":
        mapping = {
            "": "pixel_blocks",
            "pixel_blocks": "pixel_blocks",
            "extended": "extended_pixel_blocks",
            "extended_pixel_blocks": "extended_pixel_blocks",
            "none": None,
        }.get(arg, "?")
        if mapping == "?":
            raise ValueError(
                f"unknown chimera mapping {arg!r}; use chimera, chimera:pixel_blocks or chimera:extended"
            )
        side = int(round(math.sqrt(n_visible)))
        m = side // 2
        if side * side != n_visible or side % 2 or n_hidden != n_visible:
            raise ValueError(
                f"the chimera topology lays a square image out as an m x m Chimera with 4m^2 visible and "
                f"4m^2 hidden units; {n_visible} visible x {n_hidden} hidden does not fit (use n_hidden = "
                f"{n_visible} for 28x28 MNIST: the thesis's 784x784 chimera RBM)"
            )
        return T.chimera_rbm(m, pixel_mapping=mapping)
    if kind == "random":
        try:
            frac = float(arg)
        except ValueError:
            raise ValueError(f"random topology needs a fraction, e.g. random:0.5; got {spec!r}") from None
        return T.random_mask(n_visible, n_hidden, frac, seed=seed)
    if kind in ("pegasus", "zephyr"):
        from physamp.topology.modern_pixels import modern_rbm

        if arg or n_visible != 784 or n_hidden != 784:
            raise ValueError(
                f"the {kind} topology is a 784 visible x 784 hidden RBM with a 28x28 pixel mapping "
                f"(spec {kind!r}, no options); got spec {spec!r} with {n_visible} visible x "
                f"{n_hidden} hidden"
            )
        return modern_rbm(kind)
    raise ValueError(
        f"unknown topology {spec!r}; use dense, chimera[:pixel_blocks|:extended], pegasus, zephyr "
        "or random:FRACTION"
    )


def _chain_options(name: str, k: int, persistent: bool) -> dict[str, Any]:
    """Options that make backend ``name`` run k steps with (non-)persistent chains."""
    from physamp.samplers.registry import _resolve

    params = inspect.signature(_resolve(name).__init__).parameters
    out: dict[str, Any] = {}
    if "steps" in params:
        out["steps"] = k
    elif "num_sweeps" in params:
        out["num_sweeps"] = k
    if "persistent" in params:
        out["persistent"] = persistent
    return out


def build_training_sampler(cfg: RBMTrainConfig) -> Sampler:
    """The negative-phase sampler: backend ``cfg.sampler`` running k steps (persistent for PCD),
    wrapped in the simulated device when noise is asked for.

    With ``sampler="simulated"`` the k steps go to its child (``child`` option,
    ``gibbs`` by default); ``weight_noise`` / ``bias_noise`` of the config and of the
    options are the same thing (the options win).
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
        return make_sampler("simulated", child=child, seed=derive_seed(cfg.seed, "sampler"), **{**chain, **options})
    options = {**_chain_options(cfg.sampler, cfg.k, persistent), **options}
    return make_sampler(cfg.sampler, seed=derive_seed(cfg.seed, "sampler"), **options)


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else a stable description (class name, and properties
    of a dimod sampler's graph size) -- never a repr with a memory address."""
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    desc = f"{type(value).__module__}.{type(value).__qualname__}"
    for attr in ("nodelist", "visible"):
        if hasattr(value, attr):
            try:
                desc += f"[{len(getattr(value, attr))} {attr}]"
            except TypeError:
                pass
    return desc


@torch.no_grad()
def base_rate_init(rbm: RBM, data: torch.Tensor, smoothing: float = 0.05) -> None:
    """Visible biases to the logit of the smoothed data mean (Hinton's practical guide)."""
    p = (data.double().mean(0) + smoothing) / (1 + 2 * smoothing)
    rbm.b.copy_(torch.logit(p).to(rbm.b.dtype))


class RBMTrainer:
    """Train ``rbm`` on ``train`` (grey levels in [0, 1], re-binarised per presentation).

    ``trainer.fit(run_dir=...)`` runs :class:`~physamp.training.TrainLoop`: progress,
    metrics (``recon``: squared reconstruction error; ``fe_gap``: F(data) - F(samples)),
    checkpoints and exact resume.
    """

    def __init__(
        self,
        cfg: RBMTrainConfig,
        train: torch.Tensor,
        *,
        device: str | torch.device = "cpu",
        rbm: RBM | None = None,
        sampler: Sampler | None = None,
    ):
        self.cfg = cfg.validate()
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
        self.batches_per_epoch = max(1, train.shape[0] // cfg.batch_size)
        self.total_steps = self.batches_per_epoch * cfg.epochs
        # binarisation noise; the batch order is a pure function of (seed, epoch)
        self.generator = torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "binarize"))
        self._order: tuple[int, torch.Tensor] | None = None

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
        epoch, i = divmod(step, self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "data-order", epoch))
            self._order = (epoch, torch.randperm(self.train.shape[0], generator=g))
        idx = self._order[1][i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size].to(self.device)
        probs = self.train[idx]
        u = torch.rand(probs.shape, generator=self.generator, device=self.device)
        return (u < probs).to(torch.float32)

    def negative_samples(self, v_data: torch.Tensor):
        if self.cfg.method == "pcd":
            return self.sampler.sample(self.rbm, self.cfg.num_chains)
        return self.sampler.sample(self.rbm, v_data.shape[0], initial=v_data)

    def step(self, step: int) -> dict[str, float]:
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
        gap = float((fe_data - fe_model).detach())
        return {"recon": float(recon), "fe_gap": gap, "lr": self.learning_rate(step)}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.rbm,
            "optimizer": self.optimizer,
            "sampler": self.sampler,
            "generator": self.generator,
        }

    def config_dict(self) -> dict[str, Any]:
        """The run's JSON description (objects in ``sampler_options`` by their class name)."""
        cfg = asdict(self.cfg)
        cfg["sampler_options"] = {k: _jsonable(v) for k, v in cfg["sampler_options"].items()}
        return {"model": "rbm", "n_visible": self.rbm.n_visible, **cfg}

    def fit(
        self,
        run_dir: str | Path | None = None,
        *,
        progress: bool = True,
        checkpoint_every: int | None = None,
        stop_after: int | None = None,
        log_every: int | None = None,
        overwrite: bool = False,
        callbacks=(),
    ) -> list[dict]:
        """Train (resuming from ``run_dir``'s checkpoint if it holds this run)."""
        loop = TrainLoop(
            self.step,
            total_steps=self.total_steps,
            state=self.state(),
            run_dir=run_dir,
            config=self.config_dict(),
            checkpoint_every=checkpoint_every or self.batches_per_epoch,
            log_every=log_every or self.batches_per_epoch,
            progress=progress,
            desc="train-rbm",
            overwrite=overwrite,
            callbacks=callbacks,
        )
        self.loop = loop
        return loop.run(stop_after=stop_after)
