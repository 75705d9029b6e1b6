"""Training the N-styles network (§7.3.1, Table 7.1) on the one loop, :class:`~physamp.training.Trainer`.

One step, for a global batch of ``B`` content images::

    s_b ~ Uniform(trained styles)          one style per image: a batch mixes styles
    p_b = T(c_b, s_b)                      each image with its own style's γ_s, β_s
    loss = mean_b [ λ_c L_c(p_b) + λ_s L_s(p_b; s_b) ]         (Eqs. 7.1, 7.4; per-example targets)
    θ ← Adam(∇ loss)                      lr 1e-3, β = (0.9, 0.999), no schedule, no clipping

Table 7.1's defaults: 256×256 crops, batch 16, 40,000 updates, N(0, 0.01²) weights.

Choices (the thesis is silent; see also :mod:`~physamp.models.style.network` and
:mod:`~physamp.models.style.loss`):

- **Styles in a batch**: each image's style is drawn uniformly at random, independently
  (magenta dequeues labels from a shuffled queue: the same marginal). The draws come from
  the trainer's own generator, saved in every checkpoint.
- **Content images**: the folder's images, the smaller side resized to
  ``round(size · 258 / 256)`` and centre-cropped to ``size`` (magenta's 258 → 256),
  visited in a shuffled order per epoch that resumes exactly (:class:`~physamp.training.ResumableLoader`).
- **Style images**: their smaller side is resized to ``style_size`` (default 512, the size
  at which the thesis shows pastiches) before their Gram matrices are computed once; magenta
  uses them as loaded, which ``style_size=None`` does.
- **Adding a style** (``train_styles``): only the rows of the listed styles are trained;
  every convolution is frozen (``requires_grad=False``) and the gradient of every other
  row of ``γ``/``β`` is zeroed before Adam sees it. Adam moves a parameter whose gradient
  has always been zero by exactly 0 (its moments stay 0), so the other styles stay
  bit-identical. Fine-tuning uses Table 7.1's optimiser (the thesis gives no other).

Metrics per record: ``loss``, ``content_loss``, ``style_loss`` (weighted, batch means) and,
per style ``k``, ``content_loss/k`` and ``style_loss/k``: the mean over that style's images
in the record's window (weighted ``(total, count)`` metrics of the loop).

Distributed (``torchrun``): the network is wrapped in DistributedDataParallel; every process
reads the same global batch from the same resumable order and keeps its slice, and the style
labels are drawn for the global batch, so ``k`` processes compute what one process would.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physamp.models.style.loss import StyleLoss
from physamp.models.style.network import StyleNetwork
from physamp.seeding import SEEDING_VERSION, derive_seed
from physamp.training import ResumableLoader, Trainer, TrainLoop, resolve_device, to_jsonable
from physamp.training.options import option, positive_float, positive_int, seed_int

__all__ = ["StyleTrainConfig", "StyleTrainer", "NonFiniteStyleLoss", "image_digest"]


class NonFiniteStyleLoss(FloatingPointError):
    """The loss or a gradient became NaN or infinite; that step's update was not applied."""


def _positive_or_none(text: str) -> int | None:
    return None if str(text).lower() in ("0", "none") else positive_int(text)


@dataclass
class StyleTrainConfig:
    """Hyper-parameters of a style-transfer run (Table 7.1's defaults); the one source of
    ``physamp train-style``'s flags."""

    image_size: int = option(256, "side of the square content crops (a multiple of 4)", type=positive_int)
    batch_size: int = option(16, "global batch size", type=positive_int)
    steps: int = option(40_000, "parameter updates", type=positive_int)
    lr: float = option(1e-3, "Adam learning rate", type=positive_float)
    beta1: float = option(0.9, "Adam β₁")
    beta2: float = option(0.999, "Adam β₂")
    init_std: float = option(0.01, "std of the N(0, σ²) initial convolution weights", type=positive_float)
    content_weight: float = option(1.0, "λ_c, the content loss weight (relu3_3)", type=positive_float)
    style_weight: float = option(1e-4, "λ_s, the weight of each style layer (relu1_2 ... relu4_3)",
                                 type=positive_float)  # fmt: skip
    style_size: int | None = option(
        512, "resize each style image's smaller side to this before its Gram matrices (0: as loaded)",
        type=_positive_or_none,
    )  # fmt: skip
    vgg: str = option("auto", "loss-network weights: auto, imagenet, hed or a file (see fetch-vgg)")
    workers: int = option(2, "DataLoader worker processes for a folder of content images", type=int)
    amp: bool = option(False, "bfloat16 autocast (CUDA)")
    seed: int = option(0, "seed of the run (every stream derives from it)", type=seed_int)

    def validate(self) -> StyleTrainConfig:
        for name in ("image_size", "batch_size", "steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.image_size % 4 or self.image_size < 8:
            raise ValueError(f"image_size must be a multiple of 4 and at least 8, got {self.image_size}")
        for name in ("lr", "init_std", "content_weight", "style_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if self.style_size is not None and (not isinstance(self.style_size, int) or self.style_size < 8):
            raise ValueError(f"style_size must be an int >= 8 or None, got {self.style_size!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be a non-negative int, got {self.workers!r}")
        return self


def image_digest(images: Sequence[torch.Tensor | None]) -> str:
    """A short digest of style images (their shapes and pixels), so a run is tied to its styles."""
    h = hashlib.blake2b(digest_size=8)
    for im in images:
        if im is None:
            h.update(b"none")
            continue
        t = im.detach().cpu().float().contiguous()
        h.update(repr(tuple(t.shape)).encode())
        h.update((t * 255).round().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _unit_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class StyleTrainer(Trainer):
    """Train a :class:`StyleNetwork` on content images for a set of style images.

    Args:
        cfg: the run's :class:`StyleTrainConfig`.
        content: ``(K, 3, S, S)`` images in [0, 1] (float) or 0..255 (uint8), ``S = cfg.image_size``,
            or a map-style dataset of such ``(3, S, S)`` images (read by a DataLoader with
            ``cfg.workers`` workers), e.g. :class:`physamp.models.style.data.ContentImages`.
        styles: one image ``(3, H, W)`` in [0, 1] per style, in style-id order; ``None`` for a style
            that is not trained (with ``train_styles``).
        loss: the :class:`StyleLoss` (default: built on ``load_vgg(cfg.vgg)``).
        net: a network to train (default: a new ``StyleNetwork(len(styles))`` seeded from ``cfg.seed``).
        style_names: names of the styles (stored in the run's config and the checkpoint).
        train_styles: ids of the only styles whose γ/β rows are trained, every convolution frozen
            (adding a style); ``None`` trains everything.
        data: identity of the content data, stored in the run's config.
        dist: a :class:`physamp.training.distributed.Distributed` (None: one process).
    """

    desc = "train-style"

    def __init__(
        self,
        cfg: StyleTrainConfig,
        content,
        styles: Sequence[torch.Tensor | None],
        *,
        loss: StyleLoss | None = None,
        net: StyleNetwork | None = None,
        style_names: Sequence[str] | None = None,
        train_styles: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
        data: dict[str, Any] | None = None,
        dist=None,
        vgg_info: dict[str, Any] | None = None,
    ):
        from physamp.training.device import check_amp

        self.cfg = cfg.validate()
        self.device = resolve_device(device)
        check_amp(cfg.amp, self.device)
        self.dist = dist
        self.rank = 0 if dist is None else dist.rank
        self.world_size = 1 if dist is None else dist.world_size
        styles = list(styles)
        n = len(styles)
        if n < 1:
            raise ValueError("no style images: give at least one")
        for k, im in enumerate(styles):
            if im is None:
                continue
            if not isinstance(im, torch.Tensor) or im.dim() != 3 or im.shape[0] != 3:
                got = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__qualname__
                raise ValueError(f"style image {k} must be a (3, H, W) RGB tensor, got {got}")
            if not torch.isfinite(im).all() or im.min() < 0 or im.max() > 1:
                raise ValueError(f"style image {k} must hold finite values in [0, 1]")
            if min(im.shape[-2:]) < 16 and cfg.style_size is None:
                raise ValueError(
                    f"style image {k} is {im.shape[-2]}×{im.shape[-1]}; the loss network needs at least 16 "
                    "pixels each way (give a style_size, e.g. 256, to resize it)"
                )
        self.style_names = list(style_names) if style_names is not None else [f"style {k}" for k in range(n)]
        if len(self.style_names) != n:
            raise ValueError(f"{len(self.style_names)} style names for {n} styles")
        if train_styles is None:
            if any(im is None for im in styles):
                raise ValueError("every style needs an image unless train_styles lists the trained ones")
            self.train_styles = list(range(n))
        else:
            self.train_styles = sorted({int(k) for k in train_styles})
            bad = [k for k in self.train_styles if not 0 <= k < n or styles[k] is None]
            if bad or not self.train_styles:
                raise ValueError(
                    f"train_styles {list(train_styles)} must be ids of styles with an image (0..{n - 1})"
                )
        self.partial = train_styles is not None
        batch = cfg.batch_size
        if batch % self.world_size:
            raise ValueError(
                f"the global batch ({batch}) must divide evenly among the {self.world_size} processes"
            )

        # --- the content batches ---------------------------------------------------------------
        if isinstance(content, torch.Tensor):
            if content.dim() != 4 or content.shape[1] != 3:
                raise ValueError(f"content images must be (K, 3, S, S), got shape {tuple(content.shape)}")
            if tuple(content.shape[-2:]) != (cfg.image_size, cfg.image_size):
                raise ValueError(
                    f"content images are {tuple(content.shape[-2:])}; the config's image_size is "
                    f"{cfg.image_size}"
                )
            floats_ok = content.is_floating_point() and bool(torch.isfinite(content).all())
            floats_ok = floats_ok and bool(content.min() >= 0) and bool(content.max() <= 1)
            if content.dtype != torch.uint8 and not floats_ok:
                raise ValueError("content images must be floats in [0, 1] or uint8")
            k = content.shape[0]
            batches: ResumableLoader | None = None
            if k >= batch:
                batches = ResumableLoader.from_tensors(
                    content.to(self.device), batch_size=batch, seed=cfg.seed, drop_last=True
                )
        else:
            k = len(content)
            kwargs: dict[str, Any] = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
            batches = ResumableLoader(content, batch_size=batch, seed=cfg.seed, drop_last=True,
                                      **kwargs) if k >= batch else None  # fmt: skip
        if batches is None:
            raise ValueError(f"{k} content images are fewer than one batch of {batch}; lower --batch-size")
        self.batches = batches
        self.n_content = k
        self.batches_per_epoch = len(self.batches)
        self.total_steps = cfg.steps

        # --- the network, the loss, the optimiser ----------------------------------------------------
        if net is None:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "model-init"))
            net = StyleNetwork(n, init_std=cfg.init_std, generator=gen)
        if net.num_styles != n:
            raise ValueError(f"the network has {net.num_styles} styles but {n} style images were given")
        self.net = net.to(self.device)
        if loss is None:
            from physamp.models.style.vgg import load_vgg

            vgg, preprocess, vgg_info = load_vgg(cfg.vgg, device=self.device)
            loss = StyleLoss(
                vgg, preprocess, content_weight=cfg.content_weight, style_weight=cfg.style_weight
            )
        info = dict(vgg_info or {"source": "given"})
        self.vgg_path = info.pop(
            "path", None
        )  # where this machine keeps them: not part of the run's identity
        self.vgg_info = to_jsonable(info)
        self.loss = loss.to(self.device)
        self.style_images = [None if im is None else self._resize_style(im) for im in styles]
        self.loss.set_styles(self.style_images)
        self.style_digest = image_digest(self.style_images)

        self.row_mask = None
        if self.partial:  # the convolutions are frozen; the other styles' rows get a zero gradient (step)
            for p in self.net.shared_parameters():
                p.requires_grad_(False)
            self.row_mask = torch.zeros(n, 1, device=self.device)
            self.row_mask[self.train_styles] = 1
            params = self.net.style_parameters()
        else:
            params = list(self.net.parameters())
        self.params = [p for p in params if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.model = self.net if dist is None else dist.wrap(self.net)
        self.labels = torch.Generator().manual_seed(derive_seed(cfg.seed, "style-labels"))
        self._label_pool = torch.tensor(self.train_styles)  # the ids a batch draws from (checked above)
        self.data_identity = None if data is None else to_jsonable(data)
        self.loop: TrainLoop | None = None

    def _resize_style(self, im: torch.Tensor) -> torch.Tensor:
        size = self.cfg.style_size
        if size is not None and min(im.shape[-2:]) != size:
            from physamp.models.style.data import resize_smaller_side

            im = resize_smaller_side(im, size)
        return im.to(self.device)

    # --- one step --------------------------------------------------------------------------------
    def _slice(self) -> slice:
        per = self.cfg.batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's content images (on the device) and style ids (on the CPU, where the network
        checks them without a device sync) of the next global batch."""
        x = next(self.batches)
        if isinstance(x, (tuple, list)):
            x = x[0]
        pool = self._label_pool
        ids = pool[torch.randint(len(pool), (self.cfg.batch_size,), generator=self.labels)]
        sl = self._slice()
        return _unit_float(x[sl].to(self.device, non_blocking=True)), ids[sl]

    def step(self, step: int) -> dict[str, Any]:
        self.net.train()
        x, ids = self.batch(step)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.cfg.amp else nullcontext()
        with amp:
            pastiche = self.model(x, ids)
            ids = ids.to(self.device, non_blocking=True)
            content_loss, style_loss = self.loss.per_example(pastiche, x, ids)  # ids valid by construction
        content_loss, style_loss = content_loss.float(), style_loss.float()
        loss = (content_loss + style_loss).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            if self.row_mask is not None:  # only the trained styles' rows of γ and β move
                for p in self.params:
                    if p.grad is not None:
                        p.grad.mul_(self.row_mask)
            grads = [p.grad for p in self.params if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())
            n = self.net.num_styles
            wide = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
            per = torch.zeros(3, n, device=self.device, dtype=wide)
            per[0].index_add_(0, ids, content_loss.to(wide))
            per[1].index_add_(0, ids, style_loss.to(wide))
            per[2].index_add_(0, ids, torch.ones_like(content_loss, dtype=wide))
            metrics: dict[str, Any] = {
                "loss": loss.detach(),
                "content_loss": content_loss.mean(),
                "style_loss": style_loss.mean(),
            }
            if (
                self.dist is not None
            ):  # means over the processes (the per-style sums: their ratio is unchanged)
                keys = list(metrics)
                flat = self.dist.mean({**metrics, **{f"_{i}": v for i, v in enumerate(per.flatten())}})
                metrics = {k: flat[k] for k in keys}
                per = torch.stack([flat[f"_{i}"] for i in range(per.numel())]).reshape(3, n)
        if not bool(torch.isfinite(metrics["loss"] + grad_norm)):
            self.opt.zero_grad(set_to_none=True)
            ckpt = None if self.loop is None else self.loop.checkpoint_path
            where = f"; the last good checkpoint is {ckpt}" if ckpt is not None and ckpt.exists() else ""
            raise NonFiniteStyleLoss(
                f"the loss or its gradients are not finite at step {step:,} (loss {metrics['loss'].item()}, "
                f"gradient norm {grad_norm.item()}); that update was not applied{where}. Lower --lr or "
                "the style weight"
            )
        self.opt.step()
        for k in self.train_styles:
            metrics[f"content_loss/{k}"] = (per[0, k], per[2, k])
            metrics[f"style_loss/{k}"] = (per[1, k], per[2, k])
        return metrics

    # --- the run ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.net, "opt": self.opt, "labels": self.labels, "data": self.batches}

    def intervals(self) -> tuple[int, int]:
        """A checkpoint (and the figures) every 1,000 steps and a record every 100, whatever the
        size of the content set (an ImageNet epoch is 80,000 batches of 16; the bundled one 28 of 4)."""
        return min(self.total_steps, 1000) or 1, min(self.total_steps, 100) or 1

    def config_dict(self) -> dict[str, Any]:
        cfg = to_jsonable(self.cfg)
        cfg.pop("workers")  # how the data is read, not what the run is: a resume may change it
        if Path(self.cfg.vgg).is_file():  # a weights file: its absolute path (the run is found from anywhere)
            cfg["vgg"] = str(Path(self.cfg.vgg).resolve())
        out = {
            **cfg,
            "family": "style",
            "seeding": SEEDING_VERSION,
            "num_styles": self.net.num_styles,
            "style_names": self.style_names,
            "train_styles": self.train_styles if self.partial else "all",
            "styles_digest": self.style_digest,
            "n_content": self.n_content,
            "vgg_weights": self.vgg_info,
        }
        if self.data_identity is not None:
            out["data"] = self.data_identity
        return out

    def loop_options(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.rank == 0:
            return options
        return {"run_dir": None, "progress": False, "callbacks": ()}

    def prepare(self, loop: TrainLoop, run_dir) -> bool:
        if self.dist is None:
            return True
        self.dist.sync_resume(loop, run_dir)
        return False
