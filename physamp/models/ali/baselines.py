"""The inference baselines of ALI's toy comparison (thesis §5.2.2, §5.4.5, Fig. 5.8), on the one loop.

Each baseline is a small trainer, like :class:`~physamp.models.ali.train.ALITrainer`: its own model
parts, its own Adam, its own generator for every random draw of a step, ``state()`` (what a
checkpoint holds), ``step(step)`` (one update, returning its metrics) and ``fit(run_dir=None,
progress=..., ...)``, which runs ``step`` on :class:`~physamp.training.TrainLoop` (there is no other
training loop). A killed run resumes from its run directory, as every TrainLoop run does.

- :class:`InverseMappingTrainer`, **GAN + learned inverse mapping** (§5.2.2): a new encoder trained to
  minimise ``E_{z~p(z)} ‖z − G_z(G_x(z))‖²`` (squared Euclidean norm over the latent, mean over the
  batch) for a *frozen* decoder ``G_x`` (a trained GAN's). No data is used: the encoder's inputs are the
  decoder's samples ``G_x(z)``, ``z ~ N(0, I)``.
- :class:`PostHocTrainer`, **GAN + post-hoc learned inference** (§5.2.2): the GAN's decoder frozen, a new
  encoder and a new joint discriminator ``D(x, z)`` trained by the ALI objective on the data. It *is* an
  :class:`~physamp.models.ali.train.ALITrainer` (``train_decoder=False``) on a ``build_ali("toy")``
  model whose decoder is loaded from the GAN's.
- :class:`VAETrainer`, **VAE** "with the same encoder-decoder architecture as ALI" (§5.4.5), by the
  ELBO with the reparametrisation trick (Eq. 5.2): :class:`ToyVAE`.

Choices (the thesis gives none of these training details; spec ``ALI.md`` §5.1 lists them as NOT
STATED):

1. **Architecture.** Every new encoder is the toy ALI encoder (:data:`~physamp.models.ali.networks.TOY`:
   MLP 400 → 400 → 2, batch norm + ReLU on the hidden layers, no bias there, linear output with bias).
   The inverse-mapping and post-hoc encoders are *implicit*, as ALI's (input ``[x, ε]``, ε ~ N(0, I₂)),
   so that "the encoders learned for GAN inference have the same architecture as ALI's encoder".
   The VAE needs a closed-form ``q(z | x)`` for its KL term, so its encoder is the same MLP reading
   ``x`` alone (no ε input: 2 → 400 → 400 → 4) whose last layer gives ``(μ, log σ)``, split as in the
   authors' ``GaussianConditional`` (``σ = exp(log σ)``, ``z = μ + σ ⊙ ε``, Eq. 5.2). Its decoder is the
   toy decoder unchanged (2 → 400 × 4 → 2, a deterministic mean ``G_x(z)``).
2. **VAE likelihood.** ``p(x | z) = N(x; G_x(z), σ_x² I)`` with a **fixed** ``σ_x`` (``sigma_x``, default
   :data:`VAE_SIGMA_X` = 0.1, twice the mixture components' std 0.05). A fixed variance makes the
   ELBO a weighted reconstruction error plus KL: ``σ_x`` sets how many nats a reconstruction error is
   worth against the KL. At σ_x = 0.1 identifying a point's mode (spacing 2) is worth about
   ``16 / (2 σ_x²) = 800`` nats against the ``log 25 ≈ 3.2`` nats of KL that it costs, so the VAE has
   every reason to cover all 25 modes, and placing a point within its mode (std 0.05 = σ_x / 2) is still
   worth resolving; a much smaller σ_x (0.05 and below) makes the KL negligible (an autoencoder in all
   but name), a much larger one (≳ 1) lets the KL blur neighbouring modes together. A 1,000-step check
   (lr 1e-4, β₁ 0.8) with σ_x = 0.05, 0.1, 0.2, 0.5, 1 put 99, 100, 98, 74 and 47 % of held-out
   reconstructions in their original's mode, so 0.1 covers the modes with the least blur. The ELBO is reported
   in nats, constants included: ``log p(x|z) = −‖x − G_x(z)‖² / (2σ_x²) − log(2π σ_x²)`` (2-d x) and
   ``KL = ½ Σ (μ² + σ² − 1 − 2 log σ)``; one ε per example per step.
   "Samples" of the VAE are decoder means ``G_x(z)``, ``z ~ p(z)``, as for ALI and the GAN (no
   ``N(0, σ_x²)`` noise is added), and its reconstructions decode one draw ``z ~ q(z | x)``.
3. **Frozen decoders** are used in evaluation mode (batch-norm running statistics, which then never
   change): the decoder's whole state dict, buffers included, stays bit-identical, and the new encoder
   learns to invert the decoder exactly as it is evaluated afterwards (also in evaluation mode).
   :class:`InverseMappingTrainer` works on a frozen copy of the decoder it is given;
   :class:`PostHocTrainer` loads the given decoder's state into the new model's own decoder. In
   both the given module is never modified. (``ALITrainer(train_decoder=False)`` only turns the
   decoder's gradients off and leaves it in training mode, where batch norm would keep updating its
   running statistics; :class:`PostHocTrainer` puts it in evaluation mode.)
4. **Optimiser.** Adam for every trainer, with ``lr``, ``β₁``, ``β₂ = 0.999`` and the initial weights'
   std (weights ~ N(0, std²), biases 0, batch-norm scale 1 and shift 0) given by its
   :class:`BaselineConfig` (default: the authors' toy settings, lr 1e-4, β₁ 0.8, std 0.02; the
   experiment :mod:`physamp.experiments.ali_toy` passes the settings of the run each baseline
   augments). Batch 100. A run lasts ``steps`` updates (not epochs: the comparison trains every
   baseline for as many steps as the ALI / GAN runs). The post-hoc discriminator is the toy's
   (three maxout layers of 200 units and 5 pieces, then a linear logit) on ``[x, z]``, updated
   simultaneously with the encoder from the same forward pass, as in Algorithm 1.
5. **Data order.** The VAE and the post-hoc trainer read the training data in the order of
   :class:`~physamp.training.BatchOrder` seeded with the run's ``seed``, which is the order an
   ``ALITrainer`` of the same seed uses (so a VAE of the ALI run's seed sees the same batches).

Randomness: the prior's ``z`` and the encoders' ``ε`` come from each trainer's own generator (saved in
checkpoints); initial weights from a generator seeded by ``derive_seed(seed, ...)``. On CPU a run is
bit-identical for a seed, and a killed run resumes bit-identical. A loss that is not finite stops the run
before that step's update (:class:`~physamp.models.ali.train.NonFiniteLossError`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from physamp.models.ali.model import Decoder, Encoder, build_ali, init_weights_
from physamp.models.ali.networks import TOY, build_stack, linear
from physamp.models.ali.train import ALITrainConfig, ALITrainer, NonFiniteLossError
from physamp.seeding import SEEDING_VERSION, derive_seed
from physamp.training import BatchOrder, Trainer, TrainLoop, resolve_device, to_jsonable

__all__ = [
    "BaselineConfig",
    "VAE_SIGMA_X",
    "toy_encoder",
    "frozen_copy",
    "InverseMappingTrainer",
    "PostHocTrainer",
    "ToyVAE",
    "VAETrainer",
    "gaussian_kl",
]

#: the VAE's default fixed likelihood std σ_x (choice 2 of the module docstring)
VAE_SIGMA_X = 0.1


@dataclass
class BaselineConfig:
    """Settings of one baseline run (choice 4 of the module docstring). ``sigma_x``: the VAE's only."""

    steps: int = 1000
    batch_size: int = 100
    lr: float = 1e-4
    beta1: float = 0.8
    beta2: float = 0.999
    init_std: float = 0.02
    seed: int = 0
    sigma_x: float = VAE_SIGMA_X

    def validate(self) -> BaselineConfig:
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "init_std", "sigma_x"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        return self

    def adam(self, params) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2))


def toy_encoder(init_std: float = TOY.init_std, generator: torch.Generator | None = None) -> Encoder:
    """A new implicit toy encoder (``[x, ε]`` → MLP 400 → 400 → 2), weights ~ N(0, init_std²)."""
    enc = Encoder(TOY)
    init_weights_(enc, float(init_std), generator)
    return enc


def frozen_copy(decoder: Decoder) -> Decoder:
    """A copy of ``decoder`` without gradients, in evaluation mode (choice 3 of the module docstring)."""
    if not isinstance(decoder, Decoder) or decoder.spec.name != "toy":
        raise TypeError("give the toy model's decoder (e.g. gan.decoder of build_ali('toy', gan=True))")
    out = copy.deepcopy(decoder)
    out.requires_grad_(False)
    return out.eval()


def _check_finite(step: int, losses: dict[str, torch.Tensor], loop: TrainLoop | None) -> None:
    if not all(bool(torch.isfinite(v)) for v in losses.values()):
        ckpt = None if loop is None else loop.checkpoint_path
        raise NonFiniteLossError(step, {k: float(v) for k, v in losses.items()}, ckpt)


def _check_points(x_train: torch.Tensor) -> torch.Tensor:
    if not isinstance(x_train, torch.Tensor) or x_train.dim() != 2 or x_train.shape[1] != 2:
        shape = tuple(x_train.shape) if isinstance(x_train, torch.Tensor) else type(x_train).__name__
        raise ValueError(f"x_train must be a tensor of 2-d points, shape (N, 2); got {shape}")
    if not x_train.is_floating_point() or not torch.isfinite(x_train).all():
        raise ValueError("x_train must hold finite floating-point values")
    return x_train


class _Trainer(Trainer):
    """What the baselines' trainers share: the loop, its state and the run's config."""

    kind = "baseline"
    cfg: BaselineConfig

    @property
    def total_steps(self) -> int:  # type: ignore[override]  # Trainer: "an attribute or a property"
        return self.cfg.steps

    def config_dict(self) -> dict[str, Any]:
        return {"model": self.kind, "network": "toy", "seeding": SEEDING_VERSION, **asdict(self.cfg)}

    @property
    def desc(self) -> str:  # type: ignore[override]  # Trainer.desc is a plain class attribute
        return f"train-{self.kind}"

    def prepare(self, loop: TrainLoop, run_dir) -> bool:
        torch.manual_seed(derive_seed(self.cfg.seed, "global"))  # nothing draws from it; a resume restores it
        return True


# --------------------------------------------------------------------------------- inverse mapping
class InverseMappingTrainer(_Trainer):
    """GAN + learned inverse mapping: a new encoder minimising ``E_{z~p(z)} ‖z − G_z(G_x(z))‖²``.

    Args:
        decoder: the trained GAN's decoder ``G_x`` (``gan.decoder``); a frozen copy is used and the
            given module is not modified.
        cfg: the run's :class:`BaselineConfig` (``steps``, ``batch_size``, Adam, ``init_std``, ``seed``).
        encoder: an encoder to train (default: a new :func:`toy_encoder`).

    After :meth:`fit`, ``trainer.encoder`` is the inverse mapping and ``trainer.decoder`` the frozen
    decoder. Metrics per record: ``loss`` (the objective above, per batch).
    """

    kind = "inverse-mapping"

    def __init__(
        self,
        decoder: Decoder,
        cfg: BaselineConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        encoder: Encoder | None = None,
    ):
        self.cfg = (cfg or BaselineConfig()).validate()
        self.device = resolve_device(device)
        self.decoder = frozen_copy(decoder).to(self.device)
        if encoder is None:
            gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "inverse-mapping-init"))
            encoder = toy_encoder(self.cfg.init_std, gen)
        self.encoder = encoder.to(self.device).train()
        self.opt = self.cfg.adam(self.encoder.parameters())
        self.noise = torch.Generator(device=self.device).manual_seed(
            derive_seed(self.cfg.seed, "inverse-noise")
        )

    def loss(self, z: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``mean_i ‖z_i − G_z(G_x(z_i), ε_i)‖²`` (the decoder is fixed: no gradient flows into it)."""
        with torch.no_grad():
            x = self.decoder(z)
        return ((z - self.encoder(x, eps=eps)) ** 2).sum(1).mean()

    def step(self, step: int) -> dict[str, torch.Tensor]:
        b = self.cfg.batch_size
        z = torch.randn((b, *TOY.latent_shape), generator=self.noise, device=self.device)
        eps = torch.randn((b, *self.encoder.noise_shape), generator=self.noise, device=self.device)
        loss = self.loss(z, eps)
        _check_finite(step, {"loss": loss.detach()}, self.loop)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def state(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "decoder": self.decoder, "opt": self.opt, "noise": self.noise}


# ----------------------------------------------------------------------------- post-hoc inference
class PostHocTrainer(ALITrainer):
    """GAN + post-hoc learned inference: ALI (Algorithm 1) with the GAN's decoder frozen.

    A new ``build_ali("toy")`` model (encoder and joint discriminator initialised from ``cfg.seed`` with
    ``cfg.init_std``) whose decoder is loaded from ``decoder`` (``gan.decoder``; not modified), then
    frozen (no gradients, evaluation mode: choice 3 of the module docstring), trained by
    :class:`~physamp.models.ali.train.ALITrainer` with ``train_decoder=False`` for ``cfg.steps`` steps.
    ``trainer.ali`` is the result (``ali.encoder``, the frozen ``ali.decoder``, the new discriminator).
    """

    kind = "post-hoc"

    def __init__(
        self,
        decoder: Decoder,
        x_train: torch.Tensor,
        cfg: BaselineConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        data: dict[str, Any] | None = None,
    ):
        self.baseline = (cfg or BaselineConfig()).validate()
        if not isinstance(decoder, Decoder) or decoder.spec.name != "toy":
            raise TypeError("give the toy GAN's decoder (gan.decoder of build_ali('toy', gan=True))")
        x_train = _check_points(x_train)
        b = self.baseline.batch_size
        if x_train.shape[0] < b:
            raise ValueError(f"{x_train.shape[0]} training points are fewer than one batch of {b}")
        ali_cfg = ALITrainConfig(
            model="toy",
            steps=self.baseline.steps,
            batch_size=b,
            lr=self.baseline.lr,
            beta1=self.baseline.beta1,
            beta2=self.baseline.beta2,
            init_std=self.baseline.init_std,
            train_decoder=False,
            seed=self.baseline.seed,
        )
        gen = torch.Generator().manual_seed(derive_seed(self.baseline.seed, "model-init"))
        ali = build_ali("toy", init_std=self.baseline.init_std, generator=gen)
        ali.decoder.load_state_dict(decoder.state_dict())
        super().__init__(
            ali_cfg, x_train, device=device, ali=ali, data=data
        )  # its step keeps the decoder in eval

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "baseline": self.kind}


# -------------------------------------------------------------------------------------------- VAE
def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(μ, σ²) ‖ N(0, I))`` per example, summed over the latent: ``½ Σ (μ² + σ² − 1 − 2 log σ)``."""
    return 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1.0 - 2 * log_sigma).sum(1)


class ToyVAE(nn.Module):
    """The toy VAE: Gaussian encoder ``x → (μ, log σ)`` (MLP 400 → 400 → 4) and the toy decoder.

    ``p(x | z) = N(G_x(z), σ_x² I)`` with the fixed ``sigma_x`` (choice 2 of the module docstring).
    """

    def __init__(self, sigma_x: float = VAE_SIGMA_X):
        super().__init__()
        self.spec = TOY
        self.sigma_x = float(sigma_x)
        self.encoder_body = build_stack(TOY.encoder[:-1], TOY.image_shape[0], TOY)
        self.encoder_head = build_stack(
            (linear(2 * TOY.latent, False, "linear"),), self.encoder_body.out_channels, TOY
        )
        self.decoder = Decoder(TOY)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ)`` of ``q(z | x)``, each ``(B, 2)``."""
        out = self.encoder_head(self.encoder_body(x))
        return out[:, : TOY.latent], out[:, TOY.latent :]

    def encode(self, x: torch.Tensor, *, eps: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """``z = μ + σ ⊙ ε`` (Eq. 5.2; ``eps`` given or drawn from the global generator); ``mean=True``: μ."""
        mu, log_sigma = self.posterior(x)
        if mean:
            return mu
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + log_sigma.exp() * eps.to(mu.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def elbo_terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per example (nats): ``log_px`` (log p(x | z), one z ~ q(z | x)), ``kl``, ``elbo = log_px − kl``."""
        mu, log_sigma = self.posterior(x)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + log_sigma.exp() * eps.to(mu.dtype)
        s2 = self.sigma_x**2
        d = x.shape[1]
        log_px = -((x - self.decoder(z)) ** 2).sum(1) / (2 * s2) - 0.5 * d * math.log(2 * math.pi * s2)
        kl = gaussian_kl(mu, log_sigma)
        return {"log_px": log_px, "kl": kl, "elbo": log_px - kl}


class VAETrainer(_Trainer):
    """Train a :class:`ToyVAE` on ``x_train`` (``(N, 2)`` points) by the ELBO, on :class:`TrainLoop`.

    Metrics per record: ``elbo`` (mean per example, nats; the objective, maximised), ``log_px``, ``kl``.
    """

    kind = "vae"

    def __init__(
        self,
        x_train: torch.Tensor,
        cfg: BaselineConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        vae: ToyVAE | None = None,
        data: dict[str, Any] | None = None,
    ):
        self.cfg = (cfg or BaselineConfig()).validate()
        self.device = resolve_device(device)
        self.data_identity = None if data is None else to_jsonable(data)
        x_train = _check_points(x_train)
        b = self.cfg.batch_size
        if x_train.shape[0] < b:
            raise ValueError(f"{x_train.shape[0]} training points are fewer than one batch of {b}")
        self.x_train = x_train.float().to(self.device)
        self.order = BatchOrder(x_train.shape[0], b, seed=self.cfg.seed, drop_last=True)
        self.batches_per_epoch = len(self.order)
        if vae is None:
            gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "vae-init"))
            vae = ToyVAE(self.cfg.sigma_x)
            init_weights_(vae, self.cfg.init_std, gen)
        self.vae = vae.to(self.device).train()
        self.opt = self.cfg.adam(self.vae.parameters())
        self.noise = torch.Generator(device=self.device).manual_seed(derive_seed(self.cfg.seed, "vae-noise"))

    def batch(self, step: int) -> torch.Tensor:
        idx = self.order.indices(*self.order.position(step)).to(self.device)
        return self.x_train[idx]

    def step(self, step: int) -> dict[str, torch.Tensor]:
        x = self.batch(step)
        eps = torch.randn((x.shape[0], TOY.latent), generator=self.noise, device=self.device)
        terms = {k: v.mean() for k, v in self.vae.elbo_terms(x, eps).items()}
        _check_finite(step, {"elbo": terms["elbo"].detach()}, self.loop)
        self.opt.zero_grad(set_to_none=True)
        (-terms["elbo"]).backward()
        self.opt.step()
        return {k: v.detach() for k, v in terms.items()}

    def state(self) -> dict[str, Any]:
        return {"model": self.vae, "opt": self.opt, "noise": self.noise}

    def config_dict(self) -> dict[str, Any]:
        out = {**super().config_dict(), "n_train": int(self.x_train.shape[0])}
        if self.data_identity is not None:
            out["data"] = self.data_identity
        return out
