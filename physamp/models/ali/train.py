"""Algorithm 1 of the thesis (ALI training) on the one training loop, :class:`~physamp.training.TrainLoop`.

One step, for a batch of ``M`` examples ``x`` (with their ``y`` when conditional)::

    z ~ p(z) = N(0, I)                 ẑ = G_z(x, ε),  ε ~ N(0, I)   (Eq. 5.2)
    x̃ = G_x(z)
    l_q = D(x, ẑ)      l_p = D(x̃, z)   (logits; one pass of D over the 2M pairs)
    L_d = BCE(l_q, 1) + BCE(l_p, 0)    = -mean log ρ_q - mean log(1 - ρ_p)
    L_g = BCE(l_q, 0) + BCE(l_p, 1)    = -mean log(1 - ρ_q) - mean log ρ_p      (Eq. 5.4)
    θ_d ← Adam(∇_θd L_d)   θ_g ← Adam(∇_θg L_g)      simultaneously, from the same forward pass

``L_g`` is the non-saturating generator loss of Eq. 5.4 (the label-swapped
cross-entropy); both losses are computed on logits
(:func:`~torch.nn.functional.binary_cross_entropy_with_logits`), never on
probabilities, so a saturated discriminator gives finite losses and gradients.
Both gradients are taken before either update, so neither player sees the
other's new parameters within a step (Algorithm 1; the authors' code does the same).

Choices (the thesis is silent; see also :mod:`physamp.models.ali.networks`):

- The discriminator scores the ``M`` encoder pairs and the ``M`` decoder pairs in one
  batch of ``2M`` (the authors' code concatenates them too), so its batch-norm layers
  see both kinds of pair at once.
- One discriminator step per generator step (Algorithm 1).
- Adam with the table's ``lr = 1e-4``, ``β₁ = 0.5`` and ``β₂ = 0.999`` (the tables' "10⁻³"
  read as ``1 − β₂``), the same rule for both players (the authors' code).
- Conditional ALI (Eq. 5.7): the decoder pairs reuse the batch's ``y`` (a draw from
  the empirical ``p(y)``), as the authors' CelebA script does.
- The GAN baseline is this same step with ``gan=True``: no encoder, and a
  discriminator that sees ``x`` only (:class:`~physamp.models.ali.model.Discriminator`).
- ``train_decoder=False`` freezes the decoder (the "post-hoc learned inference"
  baseline of §5.2.2: a trained GAN's decoder, a new encoder and a new joint
  discriminator trained by this objective). The frozen decoder runs in eval mode
  (its batch norm on its running statistics), as the trained GAN is sampled.

Randomness: ``z`` and ``ε`` come from the trainer's own generator (saved in every
checkpoint) and are drawn for the whole global batch, of which each process takes
its slice, so ``k`` processes on one global batch draw what one process would; dropout
draws from the global generator (also saved). A killed run resumes bit-identical on CPU.

A loss that is not finite stops the run *before* that step's update, with a
:class:`NonFiniteLossError` naming the step; the run directory keeps the last
checkpoint written before it.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from physamp.models.ali.data import ALI_DATASETS, one_hot_labels, unit_float
from physamp.models.ali.model import ALI, build_ali, check_images
from physamp.models.ali.networks import SPECS
from physamp.seeding import SEEDING_VERSION, derive_seed
from physamp.training import BatchOrder, Trainer, TrainLoop, resolve_device, to_jsonable
from physamp.training.device import check_amp
from physamp.training.options import option, positive_float, positive_int, seed_int

__all__ = [
    "ALITrainConfig",
    "ALITrainer",
    "NonFiniteLossError",
    "ali_losses",
    "DATASET_MODELS",
    "check_amp",
]

#: the model each dataset trains by default (each has a model of its own name)
DATASET_MODELS = {name: name for name in ALI_DATASETS}


class NonFiniteLossError(FloatingPointError):
    """A loss or a gradient became NaN or infinite; the update of that step was not applied."""

    def __init__(self, step: int, losses: dict[str, float], checkpoint: Path | None = None):
        self.step, self.losses, self.checkpoint = step, losses, checkpoint
        super().__init__(step, losses)

    def __str__(self) -> str:
        values = ", ".join(f"{k} = {v}" for k, v in self.losses.items())
        text = (
            f"the loss or its gradients are not finite at step {self.step:,} ({values}); that update "
            f"(number {self.step + 1:,}) was not applied"
        )
        if self.checkpoint is not None and self.checkpoint.exists():
            text += f". The last good checkpoint is {self.checkpoint}"
        return text + ". Lower the learning rate (--lr) or the initial weight scale (--init-std)"


def ali_losses(l_q: torch.Tensor, l_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_d, L_g)`` of Algorithm 1 from the logits of the encoder pairs ``l_q`` and decoder pairs ``l_p``.

    ``L_d = -mean log σ(l_q) - mean log(1 - σ(l_p))`` (encoder pairs are label 1);
    ``L_g = -mean log(1 - σ(l_q)) - mean log σ(l_p)`` (Eq. 5.4, the swapped labels).
    """
    l_q, l_p = l_q.float(), l_p.float()
    ones, zeros = torch.ones_like(l_q), torch.zeros_like(l_p)
    loss_d = F.binary_cross_entropy_with_logits(l_q, ones) + F.binary_cross_entropy_with_logits(l_p, zeros)
    loss_g = F.binary_cross_entropy_with_logits(l_q, zeros[: len(l_q)]) + F.binary_cross_entropy_with_logits(
        l_p, torch.ones_like(l_p)
    )
    return loss_d, loss_g


@dataclass
class ALITrainConfig:
    """Hyper-parameters of an ALI (or GAN-baseline) run. ``None`` means the model's table value.

    The one source of ``physamp train-ali``'s flags (:func:`physamp.training.options.add_config_arguments`).
    """

    model: str = option("mnist", "network (Tables 5.3-5.6, toy, mnist)", choices=tuple(SPECS))
    gan: bool = option(False, "train the GAN baseline: no encoder, a discriminator on x only")
    conditional: bool = option(False, "conditional ALI (Eq. 5.7) on the dataset's labels / attributes")
    cond_embed: int = option(256, "units of each player's linear embedding of y", type=positive_int)
    epochs: int | None = option(
        None, "passes over the training data (default: the table's)", type=positive_int
    )
    steps: int | None = option(None, "total updates, instead of whole epochs (default: epochs x batches)",
                               type=positive_int)  # fmt: skip
    batch_size: int | None = option(None, "global batch size (default: the table's)", type=positive_int)
    lr: float | None = option(None, "Adam learning rate (default: the table's, 1e-4)", type=positive_float)
    beta1: float | None = option(None, "Adam β₁ (default: the table's)")
    beta2: float | None = option(None, "Adam β₂ (default 0.999: the tables' '10⁻³' read as 1 - β₂)")
    init_std: float | None = option(
        None, "std of the initial weights (default: the table's)", type=positive_float
    )
    train_decoder: bool = option(
        True, "train the decoder (False: post-hoc inference on a frozen one)", cli=False
    )
    amp: bool = option(False, "bfloat16 autocast (CUDA)")
    seed: int = option(0, "seed of the run (every stream derives from it)", type=seed_int)

    def validate(self) -> ALITrainConfig:
        if self.model not in SPECS:
            raise ValueError(f"unknown ALI model {self.model!r}; choose one of {', '.join(SPECS)}")
        for name in ("epochs", "steps", "batch_size", "cond_embed"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "init_std"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if self.gan and self.conditional:
            raise ValueError("the GAN baseline is unconditional here; drop --gan or --conditional")
        if self.gan and not self.train_decoder:
            raise ValueError("a GAN with a frozen decoder trains nothing")
        if self.conditional and self.model == "toy":
            raise ValueError(
                "the toy mixture has no labels or attributes to condition on; drop --conditional"
            )
        return self

    # the table's value where the config says None
    @property
    def spec(self):
        return SPECS[self.model]

    def resolved(self) -> dict[str, Any]:
        s = self.spec
        return {
            "epochs": self.epochs or s.epochs,
            "batch_size": self.batch_size or s.batch_size,
            "lr": self.lr or s.lr,
            "beta1": s.beta1 if self.beta1 is None else self.beta1,
            "beta2": s.beta2 if self.beta2 is None else self.beta2,
            "init_std": self.init_std or s.init_std,
        }


class ALITrainer(Trainer):
    """Train ALI (or the GAN baseline) on ``x_train`` with :class:`~physamp.training.TrainLoop`.

    Args:
        cfg: the run's :class:`ALITrainConfig`.
        x_train: ``(N, *image_shape)`` in [0, 1] (float) or 0..255 (uint8, kept as uint8 on
            the device and scaled per batch), or ``(N, 2)`` points for the toy.
        y_train: the conditioning variable when ``cfg.conditional``: int class labels
            ``(N,)`` (one-hot encoded here, with ``n_classes`` columns: default ``max + 1``) or
            float ``(N, n_cond)`` (e.g. attributes).
        device: where to train.
        ali: a model to train (default: ``build_ali(cfg.model, ...)`` seeded from ``cfg.seed``).
        data: identity of the training data, stored in the run's config.
        dist: a :class:`physamp.training.distributed.Distributed` (None: one process).

    ``trainer.fit(run_dir=...)`` trains, resuming from the run directory's checkpoint.
    Metrics per record: ``loss_d``, ``loss_g``, ``d_q`` / ``d_p`` (the discriminator's mean
    probability that encoder / decoder pairs came from the encoder).
    """

    def __init__(
        self,
        cfg: ALITrainConfig,
        x_train: torch.Tensor,
        y_train: torch.Tensor | None = None,
        *,
        device: str | torch.device = "cpu",
        ali: ALI | None = None,
        data: dict[str, Any] | None = None,
        dist=None,
        n_classes: int | None = None,
    ):
        self.cfg = cfg.validate()
        self.hp = cfg.resolved()
        self.spec = cfg.spec
        self.device = resolve_device(device)
        self.dist = dist
        self.rank = 0 if dist is None else dist.rank
        self.world_size = 1 if dist is None else dist.world_size
        self.data_identity = None if data is None else to_jsonable(data)
        if not isinstance(x_train, torch.Tensor) or x_train.shape[0] < 1:
            raise ValueError("x_train must be a non-empty tensor of training examples")
        check_images(x_train[:1], self.spec, "the training data")
        if x_train.dtype != torch.uint8:
            if not x_train.is_floating_point():
                raise ValueError(f"x_train must be float or uint8, got {x_train.dtype}")
            if not torch.isfinite(x_train).all():
                raise ValueError("x_train holds NaN or infinite values")
            if self.spec.is_image and (x_train.min() < 0 or x_train.max() > 1):
                raise ValueError(
                    "image data must be in [0, 1] (float) or 0..255 (uint8); the decoder ends in a sigmoid"
                )
        self.x_train = x_train.to(self.device)
        self.n_cond = 0
        self.y_train = None
        if cfg.conditional:
            if y_train is None:
                raise ValueError("conditional ALI needs labels (y_train), and this dataset has none")
            if y_train.shape[0] != x_train.shape[0]:
                raise ValueError(f"y_train has {y_train.shape[0]} rows but x_train has {x_train.shape[0]}")
            self.y_train = one_hot_labels(y_train, n_classes).to(self.device)
            self.n_cond = self.y_train.shape[1]
        batch = self.hp["batch_size"]
        if batch % self.world_size:
            raise ValueError(
                f"the global batch ({batch}) must divide evenly among the {self.world_size} processes"
            )
        n = x_train.shape[0]
        if n < batch:
            raise ValueError(f"{n} training examples are fewer than one batch of {batch}; lower --batch-size")
        self.order = BatchOrder(n, batch, seed=cfg.seed, drop_last=True)
        self.batches_per_epoch = len(self.order)
        self.total_steps = cfg.steps or self.batches_per_epoch * self.hp["epochs"]

        if ali is None:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "model-init"))
            ali = build_ali(
                cfg.model,
                gan=cfg.gan,
                n_cond=self.n_cond,
                cond_embed=cfg.cond_embed,
                init_std=self.hp["init_std"],
                generator=gen,
            )
            if self.spec.is_image:
                ali.decoder.init_output_bias(unit_float(x_train[:500]))
        if ali.spec.name != self.spec.name or ali.gan != cfg.gan:
            raise ValueError(f"the model given is {ali.spec.name} (gan={ali.gan}), the config asks for "
                             f"{self.spec.name} (gan={cfg.gan})")  # fmt: skip
        self.ali = ali.to(self.device)
        if not cfg.train_decoder:
            self.ali.decoder.requires_grad_(False)
        self.g_params = [p for p in self.ali.generator_parameters() if p.requires_grad]
        self.d_params = self.ali.discriminator_parameters()
        betas = (self.hp["beta1"], self.hp["beta2"])
        self.opt_g = torch.optim.Adam(self.g_params, lr=self.hp["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=self.hp["lr"], betas=betas)
        # the players the step calls (wrapped for DistributedDataParallel when distributed)
        self.encoder, self.decoder, self.discriminator = (
            self.ali.encoder,
            self.ali.decoder,
            self.ali.discriminator,
        )
        if dist is not None:
            self.encoder, self.decoder, self.discriminator = dist.wrap_players(self.ali, cfg.train_decoder)
        # z and ε of every step (the whole global batch; each process takes its slice)
        self.noise = torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "ali-noise"))
        check_amp(cfg.amp, self.device)
        self.loop: TrainLoop | None = None

    # --- one step of Algorithm 1 ---------------------------------------------------------
    def _slice(self) -> slice:
        per = self.hp["batch_size"] // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's share of the global batch of ``step``."""
        idx = self.order.indices(*self.order.position(step))[self._slice()].to(self.device)
        x = unit_float(self.x_train[idx])
        y = None if self.y_train is None else self.y_train[idx]
        return x, y

    def noise_for_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``z ~ p(z)`` and the encoder's ``ε`` for this process's slice of the global batch."""
        b, sl = self.hp["batch_size"], self._slice()
        z = torch.randn((b, *self.spec.latent_shape), generator=self.noise, device=self.device)[sl]
        eps = None
        if self.ali.encoder is not None:
            shape = self.ali.encoder.noise_shape
            eps = torch.randn((b, *shape), generator=self.noise, device=self.device)[sl]
        return z.to(x.dtype), eps

    def logits(self, x, y, z, eps) -> tuple[torch.Tensor, torch.Tensor]:
        """``(l_q, l_p)``: the discriminator's logits on the encoder pairs and the decoder pairs."""
        x_tilde = self.decoder(z, y)
        if self.encoder is None:  # the GAN baseline: D sees x only
            logits = self.discriminator(torch.cat([x, x_tilde]))
        else:
            z_hat = self.encoder(x, y, eps=eps)
            yy = None if y is None else torch.cat([y, y])
            logits = self.discriminator(torch.cat([x, x_tilde]), torch.cat([z_hat, z]), yy)
        return logits[: len(x)], logits[len(x) :]

    def step(self, step: int) -> dict[str, torch.Tensor]:
        self.ali.train()  # whatever mode the model was handed over in
        if not self.cfg.train_decoder:  # a frozen decoder is the trained one as evaluated: eval mode
            self.ali.decoder.eval()
        x, y = self.batch(step)
        z, eps = self.noise_for_step(x)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.cfg.amp else nullcontext()
        with amp:
            l_q, l_p = self.logits(x, y, z, eps)
        loss_d, loss_g = ali_losses(l_q, l_p)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        # both gradients from the one forward pass, before either update (simultaneous)
        loss_d.backward(inputs=self.d_params, retain_graph=True)
        loss_g.backward(inputs=self.g_params)
        with torch.no_grad():
            metrics = {
                "loss_d": loss_d.detach(),
                "loss_g": loss_g.detach(),
                "d_q": torch.sigmoid(l_q.float()).mean(),
                "d_p": torch.sigmoid(l_p.float()).mean(),
            }
            grads = [p.grad for p in self.d_params + self.g_params if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())
        if self.dist is not None:  # the global batch's means; a NaN on any process reaches every process
            metrics = self.dist.mean(metrics)
        # one host sync: losses and gradients finite, or nothing of this step is applied
        if not bool(torch.isfinite(metrics["loss_d"] + metrics["loss_g"] + grad_norm)):
            self.opt_d.zero_grad(set_to_none=True)
            self.opt_g.zero_grad(set_to_none=True)
            ckpt = None if self.loop is None else self.loop.checkpoint_path
            losses = {"loss_d": metrics["loss_d"].item(), "loss_g": metrics["loss_g"].item()}
            raise NonFiniteLossError(step, {**losses, "gradient norm": grad_norm.item()}, ckpt)
        self.opt_d.step()
        self.opt_g.step()
        return metrics

    # --- the run ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.ali, "opt_d": self.opt_d, "opt_g": self.opt_g, "noise": self.noise}

    def config_dict(self) -> dict[str, Any]:
        out = {
            **to_jsonable(self.cfg),  # its "model" is the network's name
            **self.hp,  # the table's values where the config said None: one spelling per run
            "family": "gan" if self.cfg.gan else "ali",
            "seeding": SEEDING_VERSION,
            "n_train": int(self.x_train.shape[0]),
            "n_cond": self.n_cond,
            "total_steps": self.total_steps,
        }
        if self.data_identity is not None:
            out["data"] = self.data_identity
        return out

    @property
    def desc(self) -> str:  # type: ignore[override]  # Trainer.desc is a plain class attribute
        return "train-gan" if self.cfg.gan else "train-ali"

    def loop_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """In a distributed run only process 0 writes the run directory, shows progress and draws figures."""
        if self.rank == 0:
            return options
        return {"run_dir": None, "progress": False, "callbacks": ()}

    def prepare(self, loop: TrainLoop, run_dir) -> bool:
        torch.manual_seed(derive_seed(self.cfg.seed, "global", self.rank))  # dropout; a resume restores it
        if self.dist is None:
            return True
        self.dist.sync_resume(loop, run_dir)  # every process starts from process 0's checkpoint
        return False
