"""§7.3.4 and Fig. 7.6 -- adding a style to a trained N-styles network by training only its γ and β.

Protocol
--------
- Base: the N-styles network of the preset (``num_styles`` styles, ``steps`` steps; trained as in
  :mod:`~physamp.experiments.style_common`). It is the **same cached network** as
  :mod:`~physamp.experiments.style_n_vs_single`'s and
  :mod:`~physamp.experiments.style_interpolation`'s when their presets agree (one model-cache key),
  so it is trained once.
- New style: ``new_style``, a style image that is not among the N (default: the (N+1)-th image of the
  style source, i.e. the next bundled style or the next file of ``style_root`` in sorted order; or an
  image file). It is appended as a new row of every CIN layer (γ = 1, β = 0, magenta's fine-tuning
  start) and **only that row** is trained for ``add_steps`` = S steps (``train_styles=[N]``): every
  convolution is frozen and the gradient of every other row is zeroed, with Table 7.1's optimiser
  (the thesis gives no other; batch ``batch_size``, lr 1e-3), every batch in the new style.
- Baselines: a single-style network for the new style trained **from scratch** for S steps and for
  ``scratch_factor`` · S = 8 S steps (the thesis: 5,000 against 40,000), the same architecture with
  N = 1 and the same hyper-parameters; both start from the same initial weights and see the same
  content batches in the same order (the S-step network is the 8 S-step one stopped at S, which the
  report checks on their curves).
- Final losses: content and style loss of the three networks in the new style on the same
  ``eval_batches`` = 32 held-out batches as the other experiments. Loss curves (the left panel of
  Fig. 7.6): the new style's training losses per ``log_every`` steps of each run. Pastiches: one
  held-out image at ``display_size`` by the three networks.
- Frozen check (the report prints it): after fine-tuning, every convolution weight of the network
  and the N old rows of every γ and β are compared with the base network's with ``torch.equal``:
  they must be **bit-identical** (and the new row must have moved). It is checked when the network
  is trained (stored with it) and again, on the networks loaded from the cache, in every cell.
- Outputs: ``style-add.md`` (protocol, data, table, the frozen check, observations, what the preset
  cut), ``style-add.png`` (Fig. 7.6: curves and pastiches), ``losses.csv``, ``cells.csv``. One cell
  per network (the 8 S-step baseline first, the longest), models in the model cache.

Thesis (§7.3.4, Fig. 7.6): Monet's *Plum Trees in Blossom* added to the network trained on 32 varied
styles: "Learning γ and β for 5,000 steps from a trained style transfer network produces pastiches
comparable to that of a single network trained from scratch for 40,000 steps. Conversely, 5,000 step
of training from scratch [...] leads to a poor pastiche"; learning γ and β "converges much faster than
training a model from scratch" (a loss-curve plot, no numbers).

Presets: ``tiny`` (tests: random small VGG, 16×16, 3 + 1 styles, base 6 steps, S = 2), ``quick``
(offline: the bundled images and HED VGG-16, 64×64, batch 4, N = 4 and the 5th bundled style
(``hubble_deep_field``) added; base 160 steps (shared with style-n-vs-single), S = 20 and 8 S = 160:
as in the thesis, S is an eighth of the base's steps and the long baseline trains as long as the base),
``full`` (Table 7.1, N = 32, S = 5,000, 8 S = 40,000, your folders, ImageNet VGG-16). Measured on this
machine (2 shared cores, one thread per process): a 64×64 step of batch 4 takes 0.9 s on an idle core
and 1.6-3.5 s with other jobs on the cores; a γ/β-only step costs about as much (the backward pass still
runs through every layer to reach the first γ). Quick: 160 + 20 + 20 steps (plus the 160-step base if
style-n-vs-single has not trained it): the 160-step baseline bounds the wall time, 2.5 minutes on an
idle core, about 9 under load (the quick run here: 3.8 minutes, 3 cells in 221 s with the base cached,
load falling from 4 to 1). ``full``: 40,000 (base) + 5,000 + 5,000 + 40,000 = 90,000 steps at
≈ 75 s on this CPU ≈ 78 core-days; on a GPU the thesis's setting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from physamp.experiments import common, style_common
from physamp.experiments.style_common import StyleSet, percent_difference

NAME = "style-add"
TITLE = "Adding a style by training only γ and β (thesis §7.3.4, Fig. 7.6)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (§7.3.4")
RESULT_KEYS = ("content_loss", "style_loss", "train_seconds")
FINE_TUNED, SCRATCH = "fine-tuned γ/β", "from scratch"

PRESETS = style_common.base_presets()
for _name, _extra in {
    "tiny": dict(add_steps=2, scratch_factor=8),
    "quick": dict(add_steps=20, scratch_factor=8),
    "full": dict(num_styles=32, add_steps=5_000, scratch_factor=8),
}.items():
    PRESETS[_name].update(_extra, new_style=None)


def cells(p: dict) -> list[dict]:
    """The 8 S-step baseline (the longest), the fine-tuned network, the S-step baseline."""
    style_common.check_settings(p, NAME)
    for key in ("add_steps", "scratch_factor"):
        style_common.positive_int_setting(p, key)
    s = p["add_steps"]
    base = {"experiment": NAME, **p}
    return [
        {**base, "network": SCRATCH, "run_steps": s * p["scratch_factor"]},
        {**base, "network": FINE_TUNED, "run_steps": s},
        {**base, "network": SCRATCH, "run_steps": s},
    ]


def new_style(p: dict) -> StyleSet:
    """The style that is added: ``new_style`` (an image file) or the (N+1)-th of the style source."""
    n = p["num_styles"]
    if p.get("new_style"):
        from physamp.models.style.data import load_style_images

        images, names = load_style_images(p["new_style"], p["style_size"])
        new = StyleSet((images[0],), (names[0],), (f"style image file {p['new_style']}",))
    else:
        try:
            new = style_common.style_set(p, n + 1).subset([n])
        except ValueError as err:
            raise ValueError(f"{err}: the N = {n} styles and the new one (or set new_style=FILE)") from None
    if new.digest() in {style_common.style_set(p).subset([k]).digest() for k in range(n)}:
        raise ValueError(f"the new style {new.names[0]!r} is one of the N = {n} styles of the base network")
    return new


def _network(p: dict, network: str, steps: int):
    """``(net, info, id of the new style in net, loss)`` of one of the three networks."""
    new = new_style(p)
    if network == FINE_TUNED:
        base = style_common.style_set(p)
        net, info = style_common.trained_network(p, new, steps, base=(base, p["steps"]))
        loss = style_common.make_loss(p, [None] * len(base) + [new.images[0]])
        return net, info, len(base), loss
    net, info = style_common.trained_network(p, new, steps)
    return net, info, 0, style_common.make_loss(p, [new.images[0]])


def run_cell(cell: dict) -> dict:
    net, info, k, loss = _network(cell, cell["network"], cell["run_steps"])
    found = style_common.evaluate(net, loss, [k], style_common.heldout_batches(cell))[k]
    result = {
        **found,
        "train_seconds": info["seconds"],
        "steps_done": info["steps"],
        "seconds_per_step": info["seconds"] / max(1, info["steps"]),
    }
    if cell["network"] == FINE_TUNED:
        base_net, _ = style_common.trained_network(cell, style_common.style_set(cell), cell["steps"])
        now = style_common.frozen_check(base_net, net)  # again, on the networks as loaded
        stored = info["frozen"] or {}
        result |= {f"frozen_{key}": value for key, value in now.items()}
        result["frozen_at_training"] = bool(
            stored.get("convs_identical") and stored.get("old_rows_identical")
        )
    return result


# -------------------------------------------------------------------------------------------- report
def _figure(out_dir: Path, p: dict, rows: list[dict], preset: str) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    from physamp.models.style.data import center_crop, resize_smaller_side
    from physamp.models.style.stylize import stylize
    from physamp.plotting import tile

    fig = plt.figure(figsize=(13, 5.5))
    gs = GridSpec(2, 2, figure=fig, width_ratios=[1.3, 1.0])
    image, image_name = style_common.display_image(p)
    new = new_style(p)
    s, big = p["add_steps"], p["add_steps"] * p["scratch_factor"]
    order = [(FINE_TUNED, s), (SCRATCH, s), (SCRATCH, big)]  # the rows of the table
    nets = {f"{net}, {steps:,} steps": _network(p, net, steps) for net, steps in order}
    styles = {FINE_TUNED: "-", SCRATCH: "--"}
    for row, what in enumerate(("content", "style")):
        ax = fig.add_subplot(gs[row, 0])
        for j, (label, (_, info, k, _)) in enumerate(nets.items()):
            h = info["history"]
            key = f"{what}_loss/{k}"
            line = styles[label.split(",")[0]]
            steps, values = [r["step"] for r in h], [r[key] for r in h]
            ax.plot(steps, values, line, color=f"C{j}", label=label, lw=1.3 if j else 1.0, marker="o", ms=3)
        ax.axvline(p["add_steps"], color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{what} loss, new style (training)")
        ax.legend(fontsize=7)
    side = image.shape[-1]
    tiles = [center_crop(resize_smaller_side(new.images[0], side), side), image]
    with torch.no_grad():
        tiles += [stylize(net, image, torch.tensor([k]))[0] for net, _, k, _ in nets.values()]
    ax = fig.add_subplot(gs[:, 1])
    ax.imshow(tile(torch.stack(tiles), 3))
    ax.set_axis_off()
    names = ["new style", f"content ({image_name})", *nets]
    ax.set_title("  |  ".join(names[:3]) + "\n" + "  |  ".join(names[3:]), fontsize=7)
    return common.save_figure(fig, out_dir, NAME, title=f"{TITLE} [{preset}]")


def _frozen_text(result: dict) -> str:
    convs, rows, then = (
        result["frozen_convs_identical"],
        result["frozen_old_rows_identical"],
        result["frozen_at_training"],
    )
    same = {True: "bit-identical", False: "NOT identical"}
    moved = "moved" if result["frozen_new_rows_trained"] else "did NOT move"
    return (
        f"**Frozen check: {'PASSED' if convs and rows and then else 'FAILED'}.** After fine-tuning, "
        f"all {result['frozen_conv_tensors']} convolution weight tensors are {same[convs]} to the base "
        f"network's, and the {result['frozen_old_styles']} old rows of all {result['frozen_style_tensors']} "
        f"γ/β tensors are {same[rows]} (`torch.equal`; largest absolute change "
        f"{result['frozen_max_abs_change']:g}); checked when the network was trained ({same[then]}) and "
        f"again on the networks loaded from the cache. The new row {moved} from γ = 1, β = 0."
    )


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    style_common.one_thread_report(_report, rows, Path(out_dir), preset)


def _report(rows: list[dict], out_dir: Path, preset: str) -> None:
    drop = ("experiment", "network", "run_steps")
    p = {k: v for k, v in rows[0]["cell"].items() if k not in drop}
    new = new_style(p)
    s, big = p["add_steps"], p["add_steps"] * p["scratch_factor"]
    by = {(r["cell"]["network"], r["cell"]["run_steps"]): r["result"] for r in rows}
    ref = by[(SCRATCH, big)]
    order = [(FINE_TUNED, s), (SCRATCH, s), (SCRATCH, big)]
    csv_rows, table_rows = [], []
    thesis = {
        (FINE_TUNED, s): "5,000 steps: pastiches comparable to 40,000 from scratch",
        (SCRATCH, s): '5,000 steps: "a poor pastiche"',
        (SCRATCH, big): "40,000 steps: the reference",
    }
    for key in order:
        r = by[key]
        dc, ds = (percent_difference(r[f"{w}_loss"], ref[f"{w}_loss"]) for w in ("content", "style"))
        csv_rows.append(
            {
                "network": key[0],
                "steps": key[1],
                "content_loss": r["content_loss"],
                "style_loss": r["style_loss"],
                "content_vs_scratch_8s_pct": dc,
                "style_vs_scratch_8s_pct": ds,
                "seconds_per_step": r["seconds_per_step"],
            }
        )
        row = [key[0], f"{key[1]:,}", r["content_loss"], f"{dc:+.1f} %", r["style_loss"], f"{ds:+.1f} %"]
        table_rows.append([*row, thesis[key]])
    common.write_csv(csv_rows, out_dir / "losses.csv")
    _figure(out_dir, p, rows, preset)
    header = ["network", "steps", "content loss", "vs scratch 8S", "style loss", "vs scratch 8S", "thesis"]
    table = style_common.md_table(header, table_rows)

    ft, sc = by[(FINE_TUNED, s)], by[(SCRATCH, s)]
    best = min(order, key=lambda k: by[k]["style_loss"])
    vs_s = percent_difference(ft["style_loss"], sc["style_loss"])
    vs_big = percent_difference(ft["style_loss"], ref["style_loss"])
    obs = [
        _frozen_text(ft),
        f"**Style loss in the new style ({new.names[0]}).** After S = {s:,} steps, fine-tuning only γ/β "
        f"reaches {ft['style_loss']:.4g} against {sc['style_loss']:.4g} from scratch ({vs_s:+.1f} %) and "
        f"{ref['style_loss']:.4g} after {big:,} steps from scratch ({vs_big:+.1f} %); the lowest is "
        f"{best[0]} at {best[1]:,} steps. Content loss: fine-tuned {ft['content_loss']:.4g}, scratch S "
        f"{sc['content_loss']:.4g}, scratch 8S {ref['content_loss']:.4g}. The thesis shows the fine-tuned "
        "pastiche comparable to the 40,000-step one and the 5,000-step one poor (by eye; no numbers). "
        + _verdict(ft["style_loss"], sc["style_loss"], ref["style_loss"], s, big),
        _curves_text(p),
        style_common.cuts_paragraph(
            p,
            preset,
            32,
            "ImageNet photographs, 32 varied paintings + Plum Trees in Blossom",
            f"the 32-styles base and three networks of the new style (S = 5,000; here S = {s:,})",
            40_000 + 5_000 + 5_000 + 40_000,
        ),
    ]
    if p["steps"] < 2_000:
        obs.insert(
            2,
            f"**At this length** the base network trained {p['steps']:,} steps "
            f"({100 * p['steps'] / 40_000:.2g} % of the thesis's 40,000), so its shared convolutions are far "
            "from the thesis's trained ones, and what the new γ/β can reach is limited by them.",
        )
    style_common.write_markdown(
        out_dir,
        NAME,
        f"{TITLE} [{preset}]",
        [
            PROTOCOL,
            style_common.data_paragraph(p, style_common.style_set(p))
            + f" New style (id {p['num_styles']} of the extended network): {new.sources[0]}.",
            table,
            f"![Fig. 7.6: loss curves and pastiches]({NAME}.png)",
            *obs,
        ],
    )


def _verdict(fine_tuned: float, scratch_s: float, scratch_big: float, s: int, big: int) -> str:
    """How the fine-tuned style loss compares with the two baselines, against the thesis's claim."""
    if fine_tuned <= 1.1 * scratch_big:
        return (
            f"Here the γ/β fine-tuning is within 10 % of (or below) the {big:,}-step baseline, as the thesis "
            "reports."
        )
    if fine_tuned < scratch_s:
        return (
            f"Here the γ/β fine-tuning beats the {s:,}-step baseline but not the {big:,}-step one: half of "
            "the thesis's claim."
        )
    return (
        f"Here the γ/β fine-tuning is worse than both baselines, unlike the thesis: with every other "
        f"parameter frozen it can only recombine the base's convolutions, and a network trained from "
        f"scratch for {s:,} steps, all of whose parameters move, already does better at this length."
    )


def _same_record(a: dict, b: dict) -> bool:
    """Two training records with the same metrics (bit for bit; NaN equal to NaN), the time apart."""
    keys = (set(a) | set(b)) - {"time_s"}
    return all(k in a and k in b and (a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k]))) for k in keys)


def _curves_text(p: dict) -> str:
    s, big = p["add_steps"], p["add_steps"] * p["scratch_factor"]
    short = _network(p, SCRATCH, s)[1]["history"]
    prefix = [r for r in _network(p, SCRATCH, big)[1]["history"] if r["step"] <= s]
    # the records both runs logged (the short run's last window may end between two of the long run's)
    long_at = {r["step"]: r for r in prefix}
    common = [(long_at[r["step"]], r) for r in short if r["step"] in long_at]
    same = bool(common) and all(_same_record(a, b) for a, b in common)
    ft = _network(p, FINE_TUNED, s)[1]["history"]
    k = p["num_styles"]
    ft_first, ft_last = ft[0][f"style_loss/{k}"], ft[-1][f"style_loss/{k}"]
    sc_at = prefix[-1]["style_loss/0"] if prefix else float("nan")
    text = (
        f"**Curves** (figure, left; training batches). Over its {s:,} steps the fine-tuned style loss goes "
        f"from {ft_first:.4g} (first record) to {ft_last:.4g}; the from-scratch network is at {sc_at:.4g} at "
        f"step {s:,}. "
    )
    if same:
        return text + (
            f"The {s:,}-step baseline's curve is the first {s:,} steps of the {big:,}-step one, record for "
            f"record ({len(common)} records at the same steps; the same initial weights, batches and "
            "optimiser: training is deterministic)."
        )
    return text + (
        f"The {s:,}-step baseline's curve differs from the first {s:,} steps of the {big:,}-step one "
        "(training was not bit-reproducible here)."
    )
