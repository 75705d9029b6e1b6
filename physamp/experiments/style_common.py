"""What the three chapter-7 experiments share: presets, data, the loss network, cached networks, evaluation.

The experiments are :mod:`~physamp.experiments.style_n_vs_single` (§7.3.2, Fig. 7.5),
:mod:`~physamp.experiments.style_add` (§7.3.4, Fig. 7.6) and
:mod:`~physamp.experiments.style_interpolation` (§7.3.5, Fig. 7.7). Each states its own protocol;
this module holds the parts they have in common, so that the three train **one** N-styles network
when their presets agree (the same model-cache key) and evaluate every network the same way.

Shared protocol
---------------
- **Networks**: the Table 7.1 transformer (:class:`~physamp.models.style.StyleNetwork`), trained by
  :class:`~physamp.models.style.train.StyleTrainer` with Table 7.1's optimiser (Adam, lr 1e-3,
  β = (0.9, 0.999), N(0, 0.01²) weights, no schedule). A single-style network is the same
  architecture with N = 1 and the same hyper-parameters. Every network of a preset starts from the
  **same initial convolution weights** and sees the **same content batches in the same order** (both
  derive from ``seed``), so N-styles and single-style networks differ only in their styles.
- **Objective**: :class:`~physamp.models.style.loss.StyleLoss` (magenta's layers: content
  ``relu3_3`` with λ_c = ``content_weight`` = 1, style ``relu1_2 … relu4_3`` with ``style_weight``
  each; the thesis leaves λ_s free). Style images are resized so that their smaller side is
  ``style_size`` before their Gram matrices are computed (twice the training crop in every preset,
  as 512 is to the thesis's 256).
- **Content**: ``content_root = "bundled"`` takes the 112 offline crops of the 8 photographs that
  ship with scikit-image and scikit-learn (:func:`~physamp.models.style.data.bundled_content_images`)
  at ``image_size``; the crops of the photographs in ``heldout_photos`` are **held out** (never
  trained on) and every other crop is a training image. A folder (ImageNet, COCO) is read by
  :class:`~physamp.models.style.data.ContentImages` (smaller side resized to ``size·258/256``,
  centre crop, spec §4); ``heldout_images`` of its files, drawn by a fixed seed, are held out.
- **Styles**: ``style_root = "bundled"`` takes :func:`~physamp.models.style.data.bundled_style_images`
  (5 scikit-image textures, then numpy-generated patterns; ``style_seed``) in their fixed order;
  a folder gives its image files in sorted order. Style ``k`` of a preset is the k-th of these.
- **Evaluation** (every number of the reports): the mean content and style loss (weighted, as
  trained) over ``eval_batches`` batches of ``batch_size`` held-out content images, each batch
  drawn without replacement from the held-out set by ``numpy.random.default_rng([eval_seed, i])``;
  the **same batches** for every network and every style (the thesis: "averaged over 32 random
  batches of content images").
- **Pastiches** are shown on one held-out image (the centre crop of the first held-out photograph,
  or the first held-out file) at ``display_size`` (twice the training crop, as the thesis shows
  512-pixel pastiches of a network trained at 256).
- **Caching**: every trained network is a checkpoint in the model cache
  (``$PHYSAMP_MODEL_CACHE``, by default ``OUT/../models``) under a key made of everything its
  weights depend on (training settings, steps, styles' names and pixels, content split, loss
  network, the base network for an added style), never of evaluation or display settings. A
  rerun of a report loads every network and trains none.
"""

from __future__ import annotations

import collections
import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.experiments import common
from physamp.experiments.sweep import cell_key
from physamp.models.style.loss import StyleLoss
from physamp.models.style.network import StyleNetwork
from physamp.models.style.train import StyleTrainConfig, StyleTrainer, image_digest
from physamp.training import load_checkpoint, load_component, save_components

__all__ = [
    "THESIS_TABLE_7_1",
    "MEASURED_SECONDS_PER_STEP",
    "TRAINING_RUNS",
    "base_presets",
    "check_settings",
    "StyleSet",
    "ContentSplit",
    "content_split",
    "style_set",
    "loss_network",
    "make_loss",
    "trained_network",
    "frozen_check",
    "heldout_batches",
    "evaluate",
    "display_image",
    "percent_difference",
    "mean_sample_std",
    "monotonic_violations",
    "write_markdown",
    "data_paragraph",
    "cuts_paragraph",
    "full_cost",
    "md_table",
]

#: Table 7.1's training settings (the ``full`` presets)
THESIS_TABLE_7_1 = {"image_size": 256, "batch_size": 16, "steps": 40_000, "lr": 1e-3}

#: measured seconds per training step (Table 7.1 network + full VGG-16, forward and backward) on this
#: machine's CPU with one torch thread, keyed by (image size, batch): the brief's idle-core figures and
#: ours with other jobs on the two shared cores (load 2-5); see each experiment's docstring
MEASURED_SECONDS_PER_STEP: dict[tuple[int, int], dict[str, float]] = {
    (64, 4): {"idle": 0.9, "loaded": 1.6},
    (128, 4): {"idle": 4.7},
}

#: networks trained (not loaded) in this process, by kind: how the tests see that a rerun trains nothing
TRAINING_RUNS: collections.Counter[str] = collections.Counter()

#: the keys of every preset that the trained networks depend on (their cache key)
TRAIN_KEYS = ("image_size", "batch_size", "lr", "content_weight", "style_weight", "style_size", "seed")


def base_presets() -> dict[str, dict[str, Any]]:
    """The settings every style experiment shares, per preset (each experiment adds its own).

    ``tiny``: a random small VGG, 16×16 crops, batch 2, 3 styles, 6 steps (tests: seconds).
    ``quick``: offline on a CPU: the bundled photographs and styles, the HED VGG-16 weights
    (edge-detection fine-tuned), 64×64 crops, batch 4, 4 styles, 160 steps.
    ``full``: Table 7.1 (256×256, batch 16, 40,000 steps), ImageNet VGG-16, your own folders.
    """
    shared = dict(
        lr=1e-3,
        content_weight=1.0,
        seed=0,
        style_seed=0,
        eval_seed=0,
        device="cpu",
        loader_workers=0,
        vgg_widths=[4, 8, 8, 8, 8],
        heldout_photos=["chelsea", "coffee"],
        heldout_images=512,
    )
    return {
        "tiny": dict(
            shared,
            content_root="bundled",
            style_root="bundled",
            vgg="random",
            image_size=16,
            batch_size=2,
            steps=6,
            num_styles=3,
            style_weight=1e-2,
            style_size=32,
            display_size=32,
            eval_batches=3,
            log_every=2,
        ),
        "quick": dict(
            shared,
            content_root="bundled",
            style_root="bundled",
            vgg="hed",
            image_size=64,
            batch_size=4,
            steps=160,
            num_styles=4,
            style_weight=1e-4,
            style_size=128,
            display_size=128,
            eval_batches=32,
            log_every=10,
        ),
        "full": dict(
            shared,
            content_root=None,
            style_root=None,
            vgg="imagenet",
            image_size=256,
            batch_size=16,
            steps=40_000,
            num_styles=10,
            style_weight=1e-4,
            style_size=512,
            display_size=512,
            eval_batches=32,
            log_every=100,
            device="auto",
            loader_workers=4,
        ),
    }


def positive_int_setting(p: dict, key: str, minimum: int = 1) -> int:
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{key} must be an int >= {minimum}, got {v!r}")
    return v


def check_settings(p: dict, name: str, *, min_styles: int = 1) -> None:
    """A clear ``ValueError`` for settings that cannot run, before any work; the folders first."""
    missing = [k for k in ("content_root", "style_root") if not p.get(k)]
    if missing:
        raise ValueError(
            f"experiment {name!r}: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. "
            "This preset (Table 7.1) trains on your own images: give --set content_root=DIR (a folder of "
            "ImageNet or COCO photographs, searched recursively) and --set style_root=DIR (a folder of "
            "painting images, used in sorted order), or --set content_root=bundled / style_root=bundled "
            "for the offline images; vgg=imagenet needs `physamp fetch-vgg --source imagenet` once"
        )
    for key in ("image_size", "display_size"):
        v = positive_int_setting(p, key, 8)
        if v % 4:
            raise ValueError(f"{key} must be a multiple of 4 (the network's constraint), got {v}")
    for key in ("batch_size", "steps", "eval_batches", "log_every"):
        positive_int_setting(p, key)
    positive_int_setting(p, "num_styles", min_styles)
    if p["style_size"] is not None:
        positive_int_setting(p, "style_size", 8)
    if p["vgg"] == "random" and (
        not isinstance(p["vgg_widths"], list) or len(p["vgg_widths"]) != 5 or min(p["vgg_widths"]) < 1
    ):
        raise ValueError(f"vgg_widths must be a list of 5 positive ints, got {p['vgg_widths']!r}")


# ------------------------------------------------------------------------------------------ the data
@dataclass(frozen=True)
class StyleSet:
    """Style images (already at ``style_size``) with their names and where each comes from."""

    images: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, ids: Sequence[int]) -> StyleSet:
        return StyleSet(
            tuple(self.images[i] for i in ids),
            tuple(self.names[i] for i in ids),
            tuple(self.sources[i] for i in ids),
        )

    def digest(self) -> str:
        return image_digest(list(self.images))


@lru_cache(maxsize=8)
def _style_source(root: str, size: int | None, seed: int, count: int) -> StyleSet:
    from physamp.models.style.data import bundled_image_source, bundled_style_images, load_style_images

    if root == "bundled":
        images, names = bundled_style_images(count, size, seed=seed)
        sources = [bundled_image_source(n, seed=seed) for n in names]
    else:
        images, names = load_style_images(root, size)
        sources = [f"style image {n!r} of {root}" for n in names]
        if len(images) < count:
            raise ValueError(
                f"style_root {root!r} holds {len(images)} style images; this experiment needs {count}"
            )
    return StyleSet(tuple(images[:count]), tuple(names[:count]), tuple(sources[:count]))


def style_set(p: dict, count: int | None = None) -> StyleSet:
    """The first ``count`` (default ``num_styles``) style images of the preset's style source."""
    return _style_source(
        str(p["style_root"]), p["style_size"], int(p["style_seed"]), count or p["num_styles"]
    )


@dataclass(frozen=True)
class ContentSplit:
    """Training and held-out content images: tensors ``(K, 3, S, S)`` or datasets of ``(3, S, S)``."""

    train: Any
    heldout: Any
    identity: dict
    description: str
    display_path: str | None  # a held-out file (folders) or a bundled crop label


_SPLIT_SEED = 20_170_101  # the fixed seed of a folder's held-out files (not a preset value: it selects data)


@lru_cache(maxsize=4)
def _split(root: str, size: int, heldout_photos: tuple[str, ...], heldout_images: int) -> ContentSplit:
    from physamp.models.style.data import (
        BUNDLED_CONTENT_PHOTOS,
        ContentImages,
        bundled_content_images,
        bundled_content_names,
    )

    if root == "bundled":
        unknown = [h for h in heldout_photos if h not in BUNDLED_CONTENT_PHOTOS]
        if unknown or not heldout_photos:
            raise ValueError(
                f"heldout_photos must name bundled photographs ({', '.join(BUNDLED_CONTENT_PHOTOS)})"
            )
        images, names = bundled_content_images(size), bundled_content_names(size)
        held = [i for i, n in enumerate(names) if n.split("@")[0] in heldout_photos]
        train = [i for i in range(len(names)) if i not in set(held)]
        photos = [n for n in BUNDLED_CONTENT_PHOTOS if n not in heldout_photos]
        text = (
            f"content: the {len(names)} offline crops of the 8 photographs bundled with scikit-image and "
            f"scikit-learn (14 crops each at three scales, {size}×{size}); training on the {len(train)} "
            f"crops of {', '.join(photos)}; **held out** (evaluation and pastiches only): the {len(held)} "
            f"crops of {', '.join(heldout_photos)}"
        )
        ident = {"content": "bundled", "size": size, "heldout_photos": sorted(heldout_photos)}
        return ContentSplit(images[train], images[held], ident, text, f"{heldout_photos[0]}@1:0,0")
    ds = ContentImages(root, size)
    n = len(ds)
    if n <= heldout_images:
        raise ValueError(
            f"content_root {root!r} has {n} images, not more than heldout_images ({heldout_images})"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_SPLIT_SEED)).tolist()
    held, train = sorted(perm[:heldout_images]), sorted(perm[heldout_images:])
    text = (
        f"content: the {n:,} image files under {root} (smaller side resized to {ds.resize}, centre crop "
        f"{size}×{size}); {heldout_images} of them, drawn by a fixed seed, **held out** for evaluation"
    )
    ident = {"content": os.path.abspath(root), "files": n, "size": size, "heldout_images": heldout_images}
    subset = torch.utils.data.Subset
    return ContentSplit(subset(ds, train), subset(ds, held), ident, text, ds.paths[held[0]])


def content_split(p: dict) -> ContentSplit:
    """The preset's training and held-out content (cached per process)."""
    return _split(
        str(p["content_root"]), p["image_size"], tuple(p["heldout_photos"]), int(p["heldout_images"])
    )


def heldout_batches(p: dict, split: ContentSplit | None = None) -> list[torch.Tensor]:
    """``eval_batches`` batches ``(batch_size, 3, S, S)`` of held-out images: batch ``i`` is drawn without
    replacement by ``numpy.random.default_rng([eval_seed, i])``; the same for every network."""
    split = split or content_split(p)
    k = len(split.heldout)
    if k < p["batch_size"]:
        raise ValueError(f"{k} held-out content images are fewer than one batch of {p['batch_size']}")
    out = []
    for i in range(p["eval_batches"]):
        idx = np.random.default_rng([int(p["eval_seed"]), i]).choice(k, p["batch_size"], replace=False)
        if isinstance(split.heldout, torch.Tensor):
            out.append(split.heldout[torch.as_tensor(idx)])
        else:
            out.append(torch.stack([split.heldout[int(j)] for j in idx]))
    return out


def display_image(p: dict, split: ContentSplit | None = None) -> tuple[torch.Tensor, str]:
    """The held-out image the pastiches are shown on, ``(3, D, D)`` at ``display_size``, and its name."""
    from physamp.models.style.data import (
        bundled_content_images,
        bundled_content_names,
        center_crop,
        read_image,
        resize_smaller_side,
    )

    split = split or content_split(p)
    size = p["display_size"]
    display = split.display_path
    assert display is not None, "this content split has no display image"
    if split.identity["content"] == "bundled":
        names = bundled_content_names(size)
        return bundled_content_images(size)[names.index(display)], display
    img = center_crop(resize_smaller_side(read_image(display), size), size).contiguous()
    return img, Path(display).name


# ---------------------------------------------------------------------------------- the loss network
@lru_cache(maxsize=4)
def _vgg(kind: str, widths: tuple[int, ...], device: str):
    from physamp.models.style.vgg import load_vgg, random_vgg

    if kind == "random":
        vgg, prep = random_vgg(widths, seed=0)
        note = (
            f"a randomly initialised VGG-16 layout (block widths {list(widths)}, seed 0): a test loss "
            "network, not a trained classifier; its losses say nothing about the thesis's"
        )
        info = {"source": "random", "note": note, "widths": list(widths), "edge_detection": False}
        return vgg.to(device), prep, info
    vgg, prep, info = load_vgg(kind, device=device)
    return vgg, prep, info


def _device(p: dict) -> torch.device:
    from physamp.training import resolve_device

    return resolve_device(p.get("device", "cpu"))


def loss_network(p: dict):
    """``(vgg, preprocess, info)`` of the preset's loss network (``vgg``: random / hed / imagenet / path)."""
    return _vgg(str(p["vgg"]), tuple(p["vgg_widths"]), str(_device(p)))


def make_loss(p: dict, styles: Sequence[torch.Tensor | None] | None = None) -> StyleLoss:
    """A :class:`StyleLoss` on the preset's loss network, with the Gram targets of ``styles`` if given."""
    vgg, prep, _ = loss_network(p)
    loss = StyleLoss(vgg, prep, content_weight=p["content_weight"], style_weight=p["style_weight"])
    if styles is not None:
        dev = _device(p)
        loss.set_styles([None if s is None else s.to(dev) for s in styles])
    return loss


def _vgg_identity(p: dict) -> dict:
    _, _, info = loss_network(p)
    if info["source"] == "random":
        return {"vgg": "random", "widths": list(p["vgg_widths"])}
    return {"vgg": info["source"], "sha256": info.get("source_sha256"), "path_name": Path(info["path"]).name}


def vgg_description(p: dict) -> str:
    """One sentence on the loss network, with the weights' own note (the HED warning included)."""
    _, _, info = loss_network(p)
    if info["source"] == "random":
        return f"Loss network: {info['note']}."
    what = {"hed": "HED VGG-16", "imagenet": "ImageNet VGG-16"}.get(info["source"], "VGG-16 from a file")
    return f"Loss network: {what} with average pooling ({info['note']})"


# --------------------------------------------------------------------------------- cached networks
def _config(p: dict, steps: int) -> StyleTrainConfig:
    return StyleTrainConfig(
        image_size=p["image_size"],
        batch_size=p["batch_size"],
        steps=steps,
        lr=p["lr"],
        content_weight=p["content_weight"],
        style_weight=p["style_weight"],
        style_size=p["style_size"],
        vgg=str(p["vgg"]),
        workers=int(p["loader_workers"]),
        seed=p["seed"],
    )


def network_spec(p: dict, styles: StyleSet, steps: int, base: tuple[StyleSet, int] | None = None) -> dict:
    """Everything the weights of a network depend on (its model-cache key); ``base`` for an added style."""
    return {
        "family": "style-experiment",
        "train": {k: p[k] for k in TRAIN_KEYS},
        "steps": steps,
        "styles": list(styles.names),
        "styles_digest": styles.digest(),
        "content": content_split(p).identity,
        "loss_network": _vgg_identity(p),
        "base": None if base is None else network_spec(p, base[0], base[1]),
    }


def _label(styles: StyleSet, base) -> str:
    if base is not None:
        return f"add-{styles.names[0]}"
    return f"single-{styles.names[0]}" if len(styles) == 1 else f"multi{len(styles)}"


def _kind(styles: StyleSet, base) -> str:
    return "add" if base is not None else ("single" if len(styles) == 1 else "multi")


def trained_network(
    p: dict, styles: StyleSet, steps: int, *, base: tuple[StyleSet, int] | None = None
) -> tuple[StyleNetwork, dict]:
    """The network trained on ``styles`` for ``steps`` steps, from the model cache or trained now.

    Without ``base``: a network of ``len(styles)`` styles trained from scratch (every style, every
    parameter). With ``base = (base_styles, base_steps)``: that trained network with ``len(styles)``
    new styles appended (γ = 1, β = 0) and **only their rows** trained for ``steps`` steps
    (``train_styles``; every convolution and every old row frozen).

    Returns ``(net, info)``, the network in eval mode; ``info``: ``seconds`` (training time when it
    trained), ``steps``, ``history`` (the per-record training metrics, ``content_loss/k``...),
    ``cached`` (loaded rather than trained now), ``path``, ``kind``, ``label`` and, for an added style,
    ``frozen`` (:func:`frozen_check` against the base).
    """
    spec = network_spec(p, styles, steps, base)
    label, kind = _label(styles, base), _kind(styles, base)
    path = common.model_cache_dir() / f"style-{label}-{cell_key(spec)}.pt"
    dev = _device(p)
    base_net = None if base is None else trained_network(p, base[0], base[1])[0]
    n_total = len(styles) + (0 if base_net is None else base_net.num_styles)

    def load() -> tuple[StyleNetwork, dict] | None:
        if not path.exists():
            return None
        try:
            ckpt = load_checkpoint(path)
            net = StyleNetwork(n_total)
            net.load_state_dict(load_component(ckpt, "model"))
            info = {
                "seconds": float(ckpt["seconds"]),
                "steps": int(ckpt["step"]),
                "history": list(ckpt["history"]),
                "frozen": ckpt.get("frozen"),
            }
        except Exception:
            return None  # a damaged or old entry is retrained and rewritten atomically
        return net.to(dev).eval(), {**info, "cached": True, "path": str(path), "kind": kind, "label": label}

    def make() -> tuple[StyleNetwork, dict]:
        cfg = _config(p, steps)
        split = content_split(p)
        if base_net is None:
            images: list[torch.Tensor | None] = list(styles.images)  # None: a style trained before
            train_styles, net = None, None
            names = list(styles.names)
        else:
            assert base is not None  # as base_net
            net = copy.deepcopy(base_net).cpu()
            new = net.add_styles(len(styles))
            images = [None] * base_net.num_styles + list(styles.images)
            names = list(base[0].names) + list(styles.names)
            train_styles = new
        loss = make_loss(p)  # the trainer sets the targets
        _, _, vgg_info = loss_network(p)
        trainer = StyleTrainer(
            cfg,
            split.train,
            images,
            loss=loss,
            net=net,
            style_names=names,
            train_styles=train_styles,
            device=dev,
            data=split.identity,
            vgg_info=vgg_info,
        )
        t0 = time.perf_counter()
        history = trainer.fit(run_dir=None, progress=False, log_every=min(p["log_every"], steps))
        seconds = time.perf_counter() - t0
        TRAINING_RUNS[kind] += 1
        trained = trainer.net.eval()
        frozen = None if base_net is None else frozen_check(base_net, trained)
        history = [{k: float(v) for k, v in r.items()} for r in history]
        extra = {"seconds": seconds, "history": history, "spec": spec, "frozen": frozen}
        save_components(path, {"model": trained}, config=trainer.config_dict(), step=steps, extra=extra)
        info = {"seconds": seconds, "steps": steps, "history": history, "frozen": frozen}
        return trained, {**info, "cached": False, "path": str(path), "kind": kind, "label": label}

    return common.cached(path, load, make)


@torch.no_grad()
def frozen_check(base: StyleNetwork, tuned: StyleNetwork) -> dict:
    """Whether fine-tuning left the base's parameters bit-identical: every convolution weight, and the
    base's rows of every γ and β (``torch.equal``); with the count of tensors compared and the largest
    absolute change (0.0 when identical)."""
    n = base.num_styles
    convs = list(zip(base.shared_parameters(), tuned.shared_parameters(), strict=True))
    rows = list(zip(base.style_parameters(), tuned.style_parameters(), strict=True))
    convs_same = all(torch.equal(a.cpu(), b.cpu()) for a, b in convs)
    rows_same = all(torch.equal(a.cpu(), b[:n].cpu()) for a, b in rows)
    change = max(
        [float((a.cpu() - b.cpu()).abs().max()) for a, b in convs]
        + [float((a.cpu() - b[:n].cpu()).abs().max()) for a, b in rows]
    )
    new_moved = False  # did any new row leave its initial value (γ = 1, β = 0)?
    for norm in tuned.norms():
        new_moved |= not torch.equal(norm.gamma[n:].cpu(), torch.ones_like(norm.gamma[n:]).cpu())
        new_moved |= not torch.equal(norm.beta[n:].cpu(), torch.zeros_like(norm.beta[n:]).cpu())
    return {
        "convs_identical": bool(convs_same),
        "old_rows_identical": bool(rows_same),
        "conv_tensors": len(convs),
        "style_tensors": len(rows),
        "old_styles": n,
        "max_abs_change": change,
        "new_rows_trained": bool(new_moved),
    }


# -------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    net: StyleNetwork, loss: StyleLoss, style_ids: Sequence[int], batches: Sequence[torch.Tensor]
) -> dict[int, dict[str, float]]:
    """``{id: {"content_loss", "style_loss"}}``: the mean weighted losses of ``net`` in each style
    (ids into ``net`` and into ``loss``'s targets) over the held-out ``batches``."""
    dev = next(net.parameters()).device
    net.eval()
    out = {}
    for k in style_ids:
        c_sum = s_sum = 0.0
        count = 0
        for x in batches:
            x = x.to(dev)
            ids = torch.full((x.shape[0],), int(k), dtype=torch.long, device=dev)
            c, s = loss(net(x, ids), x, ids)
            c_sum, s_sum, count = c_sum + float(c.sum()), s_sum + float(s.sum()), count + x.shape[0]
        out[int(k)] = {"content_loss": c_sum / count, "style_loss": s_sum / count}
    return out


def percent_difference(value: float, reference: float) -> float:
    """``100 (value − reference) / reference``: the thesis's "% higher" of the N-styles network."""
    if reference == 0:
        raise ValueError("the reference loss is 0; a relative difference is undefined")
    return 100.0 * (value - reference) / reference


def mean_sample_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and **sample** standard deviation (ddof = 1; NaN for a single value)."""
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        raise ValueError("no values")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


def monotonic_violations(values: Sequence[float], increasing: bool) -> list[int]:
    """Indices ``i`` where ``values[i] → values[i + 1]`` goes the wrong way (strictly): down for an
    ``increasing`` curve, up for a decreasing one. An empty list means the curve is monotonic."""
    v = [float(x) for x in values]
    return [i for i in range(len(v) - 1) if (v[i + 1] < v[i] if increasing else v[i + 1] > v[i])]


# ---------------------------------------------------------------------------------------- reports
def _cell(x: Any) -> str:
    """A report's table cell: floats with 4 significant digits (scientific below 1e-3), NaN as a dash."""
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.3e}" if x != 0 and abs(x) < 1e-3 else f"{x:.4g}"
    return str(x)


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table of :func:`physamp.experiments.common.markdown_table` with ``_cell``'s numbers."""
    return common.markdown_table(header, rows, fmt=_cell)


def data_paragraph(p: dict, styles: StyleSet) -> str:
    """The **Data** paragraph: the content split, the styles and their origins, the loss network."""
    split = content_split(p)
    style_text = "; ".join(f"{k}: {src}" for k, src in enumerate(styles.sources))
    return f"**Data:** {split.description}. Styles (id: origin): {style_text}. {vgg_description(p)}"


def full_cost(steps_total: int) -> str:
    """The CPU cost of ``steps_total`` Table 7.1 steps (256×256, batch 16), from the measured times."""
    per_128 = MEASURED_SECONDS_PER_STEP[(128, 4)]["idle"]
    per_step = 16 * per_128  # 256² × 16 is 16 times the pixels of 128² × 4; the cost is about linear in them
    days = steps_total * per_step / 86400
    scale = "months" if days / 2 > 60 else ("weeks" if days / 2 > 10 else "days")
    return (
        f"{steps_total:,} steps × ≈{per_step:.0f} s (16 × the {per_128} s measured for a 128×128 batch of 4: "
        f"16 times the pixels) ≈ {days:,.0f} core-days on this CPU, ≈ {days / 2:,.0f} days on its 2 cores "
        f"({scale}). On a GPU it is the thesis's setting (the thesis gives no training time; not measured "
        "here)."
    )


def cuts_paragraph(
    p: dict, preset: str, thesis_n: int, thesis_data: str, networks: str, steps_total: int
) -> str:
    """What preset ``preset`` cut relative to the thesis, and what the full preset costs."""
    t = THESIS_TABLE_7_1
    if preset == "full" and p["image_size"] == t["image_size"] and p["steps"] == t["steps"]:
        head = "**Preset `full`** uses Table 7.1's sizes and steps."
    else:
        data = "the bundled offline photographs and textures/patterns"
        if p["content_root"] != "bundled" or p["style_root"] != "bundled":
            data = "your folders"
        vgg = "; the HED weights are fine-tuned for edge detection, so losses are not comparable in value"
        head = (
            f"**What the `{preset}` preset cut.** Crops {p['image_size']}×{p['image_size']} (thesis "
            f"{t['image_size']}×{t['image_size']}), batch {p['batch_size']} (16), {p['steps']:,} steps per "
            f"network ({t['steps']:,}), N = {p['num_styles']} styles ({thesis_n}); data: {data} (thesis: "
            f"{thesis_data}); loss network: {p['vgg']} VGG weights (thesis: an ImageNet classifier"
            f"{vgg if p['vgg'] == 'hed' else ''}). The `full` preset trains {networks}: "
            + full_cost(steps_total)
        )
    return head


def write_markdown(out_dir: Path, name: str, title: str, parts: Sequence[str]) -> Path:
    """``NAME.md``: ``# title`` and the paragraphs ``parts`` (one must start with ``**Data:**``:
    ``physamp experiment`` prints the report from there)."""
    text = f"# {title}\n\n" + "\n\n".join(part.strip() for part in parts if part and part.strip()) + "\n"
    path = Path(out_dir) / f"{name}.md"
    path.write_text(text)
    return path


def one_thread_report(fn, *args: Any) -> Any:
    """Run a report with one torch thread (as the cells; two cores are shared), restoring the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)
