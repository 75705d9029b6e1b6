"""The three players of ALI and the model that holds them: ``build_ali(name)``.

``q(x, z) = q(x) q(z | x)`` (the encoder's joint) and ``p(x, z) = p(z) p(x | z)`` (the
decoder's joint, prior ``p(z) = N(0, I)``); the discriminator tells pairs of the
first (label 1) from pairs of the second (label 0). See :mod:`~physamp.models.ali.networks` for the
tables and every choice the thesis leaves open, and :mod:`~physamp.models.ali.train` for Algorithm 1.

Shapes: images ``x`` are ``(B, C, H, W)`` in [0, 1], latents ``z`` are
``(B, latent, 1, 1)``; for the toy both are ``(B, 2)``. ``discriminator(x, z)`` gives
``(B, 1)`` logits of "this pair came from the encoder".

Conditional ALI (Eq. 5.7): with ``n_cond > 0`` every player also takes ``y`` of shape
``(B, n_cond)`` (CelebA's 40 attributes in {0, 1}, or a one-hot digit), "linearly
embedded in the encoder, decoder and discriminator". The thesis gives no detail; we
follow the authors' released CelebA script: the embedding (``cond_embed`` units,
default 256) is concatenated to the encoder's last hidden feature map before its final
layer, to ``z`` at the decoder's input, and to ``[D(x), D(z)]`` before the joint
network. Each player has its **own** linear embedding (the script shares one), so
that each of the two optimisers owns the parameters its loss trains.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from physamp.models.ali.networks import SPECS, ModelSpec, Stack, build_stack, layer_shapes

__all__ = ["ALI", "Encoder", "Decoder", "Discriminator", "build_ali", "check_images"]


def _check_name(name: str) -> ModelSpec:
    if not isinstance(name, str) or name.lower() not in SPECS:
        raise ValueError(f"unknown ALI model {name!r}; choose one of {', '.join(SPECS)}")
    return SPECS[name.lower()]


def check_images(x: torch.Tensor, spec: ModelSpec, what: str = "x") -> None:
    """A clear error when ``x`` does not have the shape the ``spec`` model takes."""
    want = tuple(spec.image_shape)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got a {type(x).__qualname__}")
    if x.dim() != len(want) + 1 or tuple(x.shape[1:]) != want:
        kind = "images" if spec.is_image else "points"
        raise ValueError(
            f"the {spec.name} model takes {kind} of shape (B, {', '.join(map(str, want))}); "
            f"{what} has shape {tuple(x.shape)}"
            + (
                ". Resize or crop the images to the model's size, or pick the model of that size"
                if spec.is_image
                else ""
            )
        )


class _Embedding(nn.Module):
    """``y (B, n_cond) -> (B, units[, 1, 1])``: one linear map (Eq. 5.7's "linearly embedded")."""

    def __init__(self, n_cond: int, units: int, image: bool):
        super().__init__()
        self.linear = nn.Linear(n_cond, units)
        self.image = image

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        e = self.linear(y.to(self.linear.weight.dtype))
        return e[:, :, None, None] if self.image else e


def _check_y(y: torch.Tensor | None, n_cond: int, batch: int) -> None:
    if n_cond == 0:
        if y is not None:
            raise ValueError("this model is not conditional (n_cond=0), so it takes no y")
        return
    if y is None:
        raise ValueError(f"this conditional model needs y of shape (B, {n_cond})")
    if y.dim() != 2 or y.shape != (batch, n_cond):
        raise ValueError(f"y must have shape ({batch}, {n_cond}), got {tuple(y.shape)}")


class Encoder(nn.Module):
    """``G_z(x)``: ``q(z | x)``; Gaussian (``z = μ + σ ⊙ ε``, Eq. 5.2) or implicit (``z = f([x, ε])``)."""

    def __init__(self, spec: ModelSpec, n_cond: int = 0, cond_embed: int = 256):
        super().__init__()
        self.spec, self.n_cond = spec, n_cond
        in_ch = spec.image_shape[0] + (spec.noise_dim if spec.implicit else 0)
        self.body: Stack = build_stack(spec.encoder[:-1], in_ch, spec)
        self.embed = _Embedding(n_cond, cond_embed, spec.is_image) if n_cond else None
        head_in = self.body.out_channels + (cond_embed if n_cond else 0)
        self.head: Stack = build_stack(spec.encoder[-1:], head_in, spec)
        want = spec.latent if spec.implicit else 2 * spec.latent
        if self.head.out_channels != want:  # pragma: no cover - the specs are ours
            raise ValueError(f"{spec.name}: encoder ends in {self.head.out_channels} outputs, not {want}")

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """The shape of one example's ε: ``(noise_dim,)`` (implicit) or the latent's (Gaussian)."""
        return (self.spec.noise_dim,) if self.spec.implicit else self.spec.latent_shape

    def _hidden(
        self, x: torch.Tensor, y: torch.Tensor | None, eps: torch.Tensor | None
    ) -> list[torch.Tensor]:
        check_images(x, self.spec)
        _check_y(y, self.n_cond, x.shape[0])
        if self.spec.implicit:
            if eps is None:
                eps = torch.randn(x.shape[0], self.spec.noise_dim, device=x.device, dtype=x.dtype)
            x = torch.cat([x, eps.to(x.dtype)], dim=1)
        outs = self.body.forward_all(x)
        h = outs[-1] if outs else x
        if self.embed is not None:
            h = torch.cat([h, self.embed(y)], dim=1)
        return outs + [self.head(h)]

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ)`` of ``q(z | x)``, each ``(B, latent, 1, 1)`` (Gaussian encoders only)."""
        if self.spec.implicit:
            raise ValueError("the toy's implicit encoder has no closed-form posterior; use encode()")
        out = self._hidden(x, y, None)[-1]
        return out[:, : self.spec.latent], out[:, self.spec.latent :]

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        eps: torch.Tensor | None = None,
        mean: bool = False,
    ) -> torch.Tensor:
        """A sample ``ẑ ~ q(z | x)`` (``eps`` given or drawn from the global generator);
        ``mean=True``: μ(x) (for the implicit encoder: its output at ε = 0)."""
        if self.spec.implicit:
            if mean:
                eps = torch.zeros(x.shape[0], self.spec.noise_dim, device=x.device, dtype=x.dtype)
            return self._hidden(x, y, eps)[-1]
        out = self._hidden(x, y, None)[-1]
        mu, log_sigma = out[:, : self.spec.latent], out[:, self.spec.latent :]
        if mean:
            return mu
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + log_sigma.exp() * eps.to(mu.dtype)  # Eq. 5.2

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The semi-supervised features (§5.4.3): the last three hidden layers' outputs (after their
        nonlinearity), flattened, then μ; ``(B, D)``. SVHN: 256·4·4 + 512 + 512 + 256 = 5,376."""
        if self.spec.implicit:
            raise ValueError("features are defined for the image encoders")
        outs = self._hidden(x, y, None)
        hidden = [h.flatten(1) for h in outs[-4:-1]]
        mu = outs[-1][:, : self.spec.latent].flatten(1)
        return torch.cat(hidden + [mu], dim=1)

    @property
    def feature_dim(self) -> int:
        shapes = layer_shapes(self.spec.encoder, self.spec.image_shape)
        return sum(math.prod(s) for s in shapes[-4:-1]) + self.spec.latent


class Decoder(nn.Module):
    """``G_x(z)``: ``p(x | z)``, deterministic given ``z`` as in the tables; images in [0, 1]."""

    def __init__(self, spec: ModelSpec, n_cond: int = 0, cond_embed: int = 256):
        super().__init__()
        self.spec, self.n_cond = spec, n_cond
        self.embed = _Embedding(n_cond, cond_embed, spec.is_image) if n_cond else None
        self.net: Stack = build_stack(spec.decoder, spec.latent + (cond_embed if n_cond else 0), spec)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        want = self.spec.latent_shape
        if z.dim() != len(want) + 1 or tuple(z.shape[1:]) != want:
            raise ValueError(f"z must have shape (B, {', '.join(map(str, want))}), got {tuple(z.shape)}")
        _check_y(y, self.n_cond, z.shape[0])
        if self.embed is not None:
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        return self.net(z)

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor, eps: float = 1e-3) -> None:
        """Set the output layer's bias to the log-odds of the mean intensity of ``x`` per channel
        (a per-channel form of the authors' per-pixel initialisation from 500 training images)."""
        if not self.spec.is_image:
            return
        last = self.net[-1]
        conv = next(m for m in last.children() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
        m = x.float().mean(dim=(0, 2, 3)).clamp(eps, 1 - eps)
        assert conv.bias is not None  # the output convolution has a bias
        conv.bias.copy_(torch.log(m) - torch.log1p(-m))


class Discriminator(nn.Module):
    """``D(x, z)``: ``D(x)`` and ``D(z)`` concatenated along channels, then ``D(x, z)`` → ``(B, 1)`` logits.

    ``sees_z=False`` is the GAN baseline: the same ``D(x)`` and joint network, on ``D(x)`` alone.
    """

    def __init__(self, spec: ModelSpec, *, sees_z: bool = True, n_cond: int = 0, cond_embed: int = 256):
        super().__init__()
        self.spec, self.sees_z, self.n_cond = spec, sees_z, n_cond
        self.d_x: Stack = build_stack(spec.d_x, spec.image_shape[0], spec)
        self.d_z: Stack | None = build_stack(spec.d_z, spec.latent, spec) if sees_z else None
        self.embed = _Embedding(n_cond, cond_embed, spec.is_image) if n_cond else None
        joint_in = (
            self.d_x.out_channels
            + (self.d_z.out_channels if self.d_z is not None else 0)
            + (cond_embed if n_cond else 0)
        )
        self.d_joint: Stack = build_stack(spec.d_joint, joint_in, spec)

    def forward(
        self, x: torch.Tensor, z: torch.Tensor | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_images(x, self.spec)
        _check_y(y, self.n_cond, x.shape[0])
        parts = [self.d_x(x)]
        if self.sees_z:
            if z is None:
                raise ValueError("the ALI discriminator scores pairs: call it as discriminator(x, z)")
            assert self.d_z is not None  # built when sees_z
            parts.append(self.d_z(z.to(parts[0].dtype)))
        if self.embed is not None:
            parts.append(self.embed(y).to(parts[0].dtype))
        h = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return self.d_joint(h).reshape(x.shape[0], 1)


def init_weights_(module: nn.Module, std: float, generator: torch.Generator | None = None) -> None:
    """Every convolution / linear weight ~ N(0, std²), every bias 0 (the tables' "Isotropic
    gaussian (μ = 0, σ = 0.01), Constant(0)"); batch-norm scales 1, shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.normal_(0.0, std, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ALI(nn.Module):
    """Encoder, decoder and discriminator of one model (``encoder`` is None for the GAN baseline)."""

    def __init__(self, spec: ModelSpec, *, gan: bool = False, n_cond: int = 0, cond_embed: int = 256):
        super().__init__()
        if n_cond < 0:
            raise ValueError(f"n_cond must be >= 0, got {n_cond}")
        self.spec, self.gan, self.n_cond, self.cond_embed = spec, gan, n_cond, cond_embed
        self.encoder = None if gan else Encoder(spec, n_cond, cond_embed)
        self.decoder = Decoder(spec, n_cond, cond_embed)
        self.discriminator = Discriminator(spec, sees_z=not gan, n_cond=n_cond, cond_embed=cond_embed)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.spec.latent_shape

    def generator_parameters(self) -> list[nn.Parameter]:
        """θ_g of Algorithm 1: the encoder's and the decoder's parameters."""
        enc = [] if self.encoder is None else list(self.encoder.parameters())
        return enc + list(self.decoder.parameters())

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """θ_d of Algorithm 1."""
        return list(self.discriminator.parameters())

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, *, mean: bool = False, eps=None):
        if self.encoder is None:
            raise ValueError(
                "a GAN has no encoder; train ALI, or learn one afterwards (physamp.models.ali.baselines)"
            )
        return self.encoder(x, y, eps=eps, mean=mean)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z, y)

    def sample_prior(self, n: int, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``z ~ p(z) = N(0, I)``, shape ``(n, *latent_shape)``."""
        device = device or next(self.parameters()).device
        where = generator.device if generator is not None else device  # a CPU generator draws on the CPU
        return torch.randn((n, *self.latent_shape), generator=generator, device=where).to(device)

    @torch.no_grad()
    def sample(self, n: int, y=None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x̃ = G_x(z)``, ``z ~ p(z)``."""
        return self.decode(self.sample_prior(n, generator=generator), y)

    def draw_eps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The encoder's noise ``ε`` for ``n`` examples from ``generator`` (None: the global one)."""
        if self.encoder is None:
            return None
        device = next(self.parameters()).device
        shape = (n, *self.encoder.noise_shape)
        return torch.randn(shape, generator=generator, device=generator.device if generator else device).to(
            device
        )

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y=None, *, mean: bool = False, generator=None) -> torch.Tensor:
        """``x̂ = G_x(ẑ)``, ``ẑ ~ q(z | x)`` (§5.4.1); ε from ``generator`` when given."""
        eps = None if mean else self.draw_eps(x.shape[0], generator)
        return self.decode(self.encode(x, y, mean=mean, eps=eps), y)

    @torch.no_grad()
    def interpolate(
        self, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, y=None, *, generator=None
    ) -> torch.Tensor:
        """§5.4.2: encode each pair (a sample of ``q(z | x)``, ε from ``generator`` when given), decode
        ``(1 - t) z₁ + t z₂`` at ``steps`` evenly spaced t in [0, 1]. Returns ``(B, steps, *image_shape)``."""
        z1 = self.encode(x1, y, eps=self.draw_eps(x1.shape[0], generator))
        z2 = self.encode(x2, y, eps=self.draw_eps(x2.shape[0], generator))
        t = torch.linspace(0, 1, steps, device=z1.device).view(1, steps, *([1] * (z1.dim() - 1)))
        zs = ((1 - t) * z1[:, None] + t * z2[:, None]).flatten(0, 1)
        yy = None if y is None else y.repeat_interleave(steps, dim=0)
        return self.decode(zs, yy).view(x1.shape[0], steps, *x1.shape[1:])


def build_ali(
    name: str,
    *,
    gan: bool = False,
    n_cond: int = 0,
    cond_embed: int = 256,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> ALI:
    """The ALI model of ``name`` (``toy``, ``mnist``, ``svhn``, ``cifar10``, ``celeba``, ``imagenet64``).

    ``gan=True`` gives the GAN baseline (no encoder, a discriminator on ``x`` only);
    ``n_cond`` makes it conditional (Eq. 5.7). Weights ~ N(0, init_std²) (default: the
    table's), drawn from ``generator`` (or one seeded by ``seed``; else the global one).
    """
    spec = _check_name(name)
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    model = ALI(spec, gan=gan, n_cond=n_cond, cond_embed=cond_embed)
    std = spec.init_std if init_std is None else float(init_std)
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"init_std must be a positive finite number, got {init_std!r}")
    init_weights_(model, std, generator)
    return model
