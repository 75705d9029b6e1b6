"""§7.3.5 and Fig. 7.7 -- blending styles by convex combinations of their γ and β.

Protocol
--------
- Network: the N-styles network of the preset (the **same cached network** as
  :mod:`~physamp.experiments.style_n_vs_single`'s and :mod:`~physamp.experiments.style_add`'s base when
  their presets agree; trained as in :mod:`~physamp.experiments.style_common`).
- Two-style interpolation (Fig. 7.7, right): ``pair = [a, b]``; **style 1 is a** and style 2 is b in the
  thesis's formula ``γ = α γ_1 + (1 − α) γ_2``, ``β = α β_1 + (1 − α) β_2``, applied at every CIN layer
  (mixing weights ``α`` on a and ``1 − α`` on b: :meth:`~physamp.models.style.StyleNetwork.forward`).
  α takes ``alpha_steps`` = 11 evenly spaced values from 0 to 1. For one held-out content image at
  ``display_size``, the style loss of each pastiche with respect to style a and to style b
  (:meth:`~physamp.models.style.loss.StyleLoss.style_loss_to`, the training weights and layers, each
  style image at ``style_size``). The thesis's claim, "the style losses vary monotonically": the loss to
  a should **fall** as α grows (more of a) and the loss to b should **rise**. Each curve's violations
  are the steps α_i → α_{i+1} that go the other way (strictly); a curve is monotonic when it has none.
- Four-style grid (Fig. 7.7, left): ``corners`` (top-left, top-right, bottom-left, bottom-right) on a
  ``grid_steps`` × ``grid_steps`` = 5 × 5 grid of the same image, each point ``(u, v)`` of the unit
  square weighing the corners bilinearly (:func:`~physamp.models.style.stylize.corner_weights`; the
  thesis does not say how its grid is laid out).
- Outputs: ``style-interpolation.md`` (protocol, data, the curve table, the monotonicity statement,
  observations, what the preset cut), ``style-interpolation.png`` (the two curves and the pastiches
  along α), ``style-interpolation-grid.png`` (the 5 × 5 blend), ``interpolation.csv``, ``cells.csv``.
  One cell (it needs the one network).

Thesis (§7.3.5, Fig. 7.7): *Bicentennial Print* and *Head of a Clown* of the 32-styles network: "As α
increases, the style loss with respect to Bicentennial Print increases", so α weighs *Head of a Clown*
(style 1); caption: "the style losses vary monotonically". The α grid and the image are not stated.

Presets: ``tiny`` (tests: random small VGG, 16×16 training, 32×32 display, 3 styles, corners
``[0, 1, 2, 0]``), ``quick`` (offline: the 4-style network of style-n-vs-single's quick preset, 160 steps;
pair ``[0, 3]`` = brick → immunohistochemistry; 128×128 display), ``full`` (the 32-styles network of
style-add's full preset; pair ``[8, 0]``: *Head of a Clown* and *Bicentennial Print* when ``style_root``
holds the 32 paintings named so that they sort in the thesis's (alphabetical) list order). Cost: the
network (shared; 160 steps, 2.5-9 minutes on this CPU depending on the load, when it is not cached yet)
and 11 + 25 forward passes of the display image: the quick run here took 24 s with the network cached.
``full``: the 32-styles network, 40,000 steps at ≈ 75 s ≈ 35 core-days on this CPU (shared with
style-add's full preset, corners *Head of a Clown*, *Bicentennial Print*, *The Starry Night*, *White Zig
Zags* in that order); on a GPU the thesis's setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.experiments import common, style_common

NAME = "style-interpolation"
TITLE = "Blending two and four styles through γ and β (thesis §7.3.5, Fig. 7.7)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (§7.3.5")
RESULT_KEYS = ("alphas", "loss_a", "loss_b", "violations_a", "violations_b")

PRESETS = style_common.base_presets()
_EXTRA: dict[str, dict[str, Any]] = {
    "tiny": dict(pair=[0, 2], corners=[0, 1, 2, 0]),
    "quick": dict(pair=[0, 3], corners=[0, 1, 2, 3]),
    "full": dict(num_styles=32, pair=[8, 0], corners=[8, 0, 22, 31]),
}
for _name, _extra in _EXTRA.items():
    PRESETS[_name].update(_extra, alpha_steps=11, grid_steps=5)


def cells(p: dict) -> list[dict]:
    style_common.check_settings(p, NAME, min_styles=2)
    n = p["num_styles"]
    pair, corners = p["pair"], p["corners"]
    if len(pair) != 2 or pair[0] == pair[1] or not all(isinstance(k, int) and 0 <= k < n for k in pair):
        raise ValueError(f"pair must be two different style ids in 0..{n - 1}, got {pair!r}")
    if len(corners) != 4 or not all(isinstance(k, int) and 0 <= k < n for k in corners):
        raise ValueError(f"corners must be four style ids in 0..{n - 1}, got {corners!r}")
    style_common.positive_int_setting(p, "alpha_steps", 11)
    style_common.positive_int_setting(p, "grid_steps", 2)
    return [{"experiment": NAME, **p}]


def alpha_weights(alphas: np.ndarray, a: int, b: int, n: int) -> torch.Tensor:
    """``(K, N)`` mixing weights: ``α`` on style ``a`` (style 1), ``1 − α`` on style ``b`` (style 2)."""
    w = torch.zeros(len(alphas), n)
    w[:, a] += torch.as_tensor(alphas, dtype=torch.float32)
    w[:, b] += 1 - torch.as_tensor(alphas, dtype=torch.float32)
    return w


def _network(p: dict):
    styles = style_common.style_set(p)
    return style_common.trained_network(p, styles, p["steps"]), styles


@torch.no_grad()
def curves(p: dict) -> tuple[np.ndarray, list[float], list[float], torch.Tensor]:
    """``(alphas, loss to a, loss to b, pastiches (K, 3, D, D))`` on the display image."""
    from physamp.models.style.stylize import stylize

    (net, _), styles = _network(p)
    a, b = p["pair"]
    alphas = np.linspace(0.0, 1.0, p["alpha_steps"])
    image, _ = style_common.display_image(p)
    pastiches = stylize(net, image, alpha_weights(alphas, a, b, len(styles)))
    loss = style_common.make_loss(p, list(styles.images))
    dev = next(net.parameters()).device
    to = [loss.style_loss_to(pastiches.to(dev), styles.images[k].to(dev)).cpu().tolist() for k in (a, b)]
    return alphas, to[0], to[1], pastiches


def run_cell(cell: dict) -> dict:
    (_, info), _ = _network(cell)
    alphas, loss_a, loss_b, _ = curves(cell)
    va = style_common.monotonic_violations(loss_a, increasing=False)
    vb = style_common.monotonic_violations(loss_b, increasing=True)
    return {
        "alphas": [float(x) for x in alphas],
        "loss_a": loss_a,
        "loss_b": loss_b,
        "violations_a": va,
        "violations_b": vb,
        "monotonic_a": not va,
        "monotonic_b": not vb,
        "train_seconds": info["seconds"],
        "steps_done": info["steps"],
    }


# -------------------------------------------------------------------------------------------- report
def monotonicity_statement(result: dict, name_a: str, name_b: str) -> str:
    """One sentence per curve: expected direction, monotonic or not, the number of violations."""
    steps = len(result["alphas"]) - 1
    parts = []
    for key, name, direction in (("a", name_a, "fall"), ("b", name_b, "rise")):
        v = result[f"violations_{key}"]
        mono = "monotonic" if not v else "**not** monotonic"
        where = "" if not v else " (at α = " + ", ".join(f"{result['alphas'][i]:.2f}" for i in v) + " → next)"
        parts.append(
            f"the style loss with respect to {name} (should {direction} as α grows) is {mono}: "
            f"{len(v)} violation{'s' if len(v) != 1 else ''} in {steps} steps{where}"
        )
    both = not result["violations_a"] and not result["violations_b"]
    return (
        f"**Monotonicity: {'both curves are monotonic' if both else 'not both curves are monotonic'}** "
        f'(the thesis: "the style losses vary monotonically"): ' + "; ".join(parts) + "."
    )


def _figure(out_dir: Path, p: dict, result: dict, pastiches: torch.Tensor, names: tuple, preset: str) -> Path:
    import matplotlib.pyplot as plt

    from physamp.plotting import tile

    fig, (ax, ax_img) = plt.subplots(2, 1, figsize=(9, 6.5), gridspec_kw={"height_ratios": [2.2, 1]})
    alphas = result["alphas"]
    ax.plot(alphas, result["loss_a"], "o-", color="C0", label=f"w.r.t. style 1 (a): {names[0]} (left axis)")
    ax.set_ylabel(f"style loss w.r.t. {names[0]}", color="C0")
    ax.set_xlabel("α   (γ = α γ_a + (1 − α) γ_b, β likewise)")
    right = ax.twinx()  # the two styles' losses differ in scale: one axis each
    right.plot(
        alphas, result["loss_b"], "s-", color="C1", label=f"w.r.t. style 2 (b): {names[1]} (right axis)"
    )
    right.set_ylabel(f"style loss w.r.t. {names[1]}", color="C1")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center")
    ax_img.imshow(tile(pastiches, len(alphas)))
    ax_img.set_axis_off()
    ax_img.set_title(f"pastiches, α = 0 (all {names[1]}) … 1 (all {names[0]})", fontsize=8)
    return common.save_figure(fig, out_dir, NAME, title=f"{TITLE} [{preset}]")


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    style_common.one_thread_report(_report, rows, Path(out_dir), preset)


def _report(rows: list[dict], out_dir: Path, preset: str) -> None:
    from physamp.models.style.stylize import blend_grid

    p = {k: v for k, v in rows[0]["cell"].items() if k != "experiment"}
    result = rows[0]["result"]
    styles = style_common.style_set(p)
    a, b = p["pair"]
    names = (styles.names[a], styles.names[b])
    _, _, _, pastiches = curves(p)
    _figure(out_dir, p, result, pastiches, names, preset)
    (net, _), _ = _network(p)
    image, image_name = style_common.display_image(p)
    blend_grid(net, image, out_dir / f"{NAME}-grid.png", corners=p["corners"], steps=p["grid_steps"])
    common.write_csv(
        [
            {"alpha": x, f"loss_to_{names[0]}": la, f"loss_to_{names[1]}": lb}
            for x, la, lb in zip(result["alphas"], result["loss_a"], result["loss_b"], strict=True)
        ],
        out_dir / "interpolation.csv",
    )
    table = style_common.md_table(
        ["α", f"style loss w.r.t. style 1 (a = {names[0]})", f"w.r.t. style 2 (b = {names[1]})"],
        [
            [f"{x:.2f}", la, lb]
            for x, la, lb in zip(result["alphas"], result["loss_a"], result["loss_b"], strict=True)
        ],
    )
    corner_names = [styles.names[k] for k in p["corners"]]
    la, lb = result["loss_a"], result["loss_b"]
    right = la[-1] < la[0] and lb[0] < lb[-1]
    ends = (
        f"**The ends.** The loss to {names[0]} is {la[-1]:.4g} at α = 1 (all {names[0]}) and {la[0]:.4g} at "
        f"α = 0; the loss to {names[1]} is {lb[0]:.4g} at α = 0 (all {names[1]}) and {lb[-1]:.4g} at α = 1: "
        + (
            "each style's loss is lower at its own end."
            if right
            else "**not** each style's loss is lower at its own end."
        )
    )
    parts = [
        PROTOCOL,
        style_common.data_paragraph(p, styles)
        + f" Interpolated on held-out {image_name} at {p['display_size']}×{p['display_size']}.",
        table,
        monotonicity_statement(result, *names),
        ends,
        f"![Fig. 7.7, right: style losses along α]({NAME}.png)",
        f"**Four-style grid** ({p['grid_steps']} × {p['grid_steps']}, bilinear weights; corners top-left "
        f"{corner_names[0]}, top-right {corner_names[1]}, bottom-left {corner_names[2]}, bottom-right "
        f"{corner_names[3]}; the thesis's layout is not stated):\n\n"
        f"![Fig. 7.7, left: four-style blend]({NAME}-grid.png)",
        "The thesis's pair is *Head of a Clown* (style 1, weighted by α: its text says the loss to "
        "*Bicentennial Print* rises with α) and *Bicentennial Print* on the 32-styles network; "
        "the α grid and the image are not stated (here 11 values and one held-out image).",
        style_common.cuts_paragraph(
            p, preset, 32, "ImageNet photographs, 32 varied paintings", "the 32-styles network", 40_000
        ),
    ]
    if p["steps"] < 2_000:
        parts.insert(
            5,
            f"**At {p['steps']:,} steps** ({100 * p['steps'] / 40_000:.2g} % of the thesis's 40,000) "
            "the network has only begun to learn its styles: the curves describe an early network, not the "
            "thesis's trained one.",
        )
    style_common.write_markdown(out_dir, NAME, f"{TITLE} [{preset}]", parts)
