"""§7.3.2 and Fig. 7.5 -- one N-styles network against N single-style networks.

Protocol
--------
- Networks: one **N-styles** network (``num_styles`` = N styles, every batch mixing styles drawn
  uniformly per image) and, for each of its styles, one **single-style** network: the same Table 7.1
  architecture with N = 1, the same hyper-parameters and the **same number of steps** (``steps``) each,
  the same initial convolution weights and the same content batches in the same order (see
  :mod:`~physamp.experiments.style_common` for the training, the data and the cache). So the N
  single-style networks together make N times the parameter updates of the N-styles network, and each
  sees N times as many images of its style: the thesis's fairness caveat ("it takes N times more
  parameter updates to train N single-style networks separately than to train them with an N-styles
  network"), which the report repeats.
- Final losses (the thesis's centre column): content and style loss of each network in each of its
  styles on ``eval_batches`` = 32 batches of held-out content images, **the same 32 batches** for every
  network (drawn once with ``eval_seed``). Per style ``k``, the N-styles network's relative difference
  ``100 (L_N,k − L_1,k) / L_1,k`` (%), for the content and the style loss; summarised by the mean and
  the **sample** standard deviation (ddof = 1) over the N styles, beside the thesis's +8.7 ± 3.9 %
  (content) and −8.9 ± 16.5 % (style). The thesis does not say which std its ± is; the standard error of
  the mean (std / √N) says whether a mean differs from 0 by more than two of them.
- Learning curves (the thesis's left column): the per-style training metrics of every network
  (``content_loss/k``, ``style_loss/k``: the mean over the style's images in each ``log_every``-step
  window of training batches), N-styles dashed and single-style solid, one colour per style. The
  thesis's curves were "averaged over 32 random batches" and may have been held-out; ours are the
  training batches' (no extra passes).
- Pastiches (right column): one held-out image in every style, by the N-styles network and by that
  style's single-style network, at ``display_size``.
- Outputs: ``style-n-vs-single.md`` (protocol, data, the table beside the thesis, observations, what
  the preset cut and what ``full`` costs), ``style-n-vs-single.png`` (Fig. 7.5: curves, % differences,
  pastiches), ``losses.csv`` (per style: both networks' losses and the differences), ``cells.csv``. One
  cell per network (the sweep trains them in parallel); the networks stay in the model cache, and the
  N-styles one is the one :mod:`~physamp.experiments.style_add` and
  :mod:`~physamp.experiments.style_interpolation` use when their presets match.

Thesis (§7.3.2, Fig. 7.5): 10 Monet paintings; "The 10-styles network's content loss is around
8.7 ± 3.9% higher than its single-style counterparts, while the difference in style losses (8.9 ± 16.5%
lower) is insignificant"; the 10-styles network "converges as quickly as the single-style networks in
terms of style loss, but lags slightly behind in terms of content loss"; the pastiches are
"qualitatively similar".

Presets: ``tiny`` (tests: random small VGG, 16×16, batch 2, 3 styles, 6 steps: seconds), ``quick``
(offline on a CPU: bundled photographs and textures, HED VGG-16, 64×64, batch 4, N = 4, 160 steps per
network: 5 networks, 800 steps), ``full`` (Table 7.1: 256×256, batch 16, 40,000 steps, N = 10,
``content_root`` / ``style_root`` your ImageNet/COCO and Monet folders, ImageNet VGG-16). Measured on
this machine (2 shared cores, one torch thread per process, Table 7.1 network + full VGG-16, forward and
backward): a 64×64 step of batch 4 takes 0.9 s on an idle core, 1.6 s at load 2, 2.5 s at load 4 and
3.5 s at load 5-6 (other jobs on the two cores); 128×128 takes 4.7 s on an idle core. The quick run took
23 minutes at load 4-6 (5 cells in 1,383 s on 2 workers; 2.8 s per step on average, 1.1-3.6 s; the
N-styles network's evaluation, 4 styles × 32 batches, about 3 minutes, a single-style one's about 1) for
868 s of CPU time: about 8 minutes on two idle cores (``--set steps=80`` halves it). ``full`` trains 11
networks × 40,000 steps = 440,000 steps at about 16 × 4.7 ≈ 75 s each on this CPU (256² × 16 is 16
times the pixels of 128² × 4): ≈ 380 core-days, ≈ 190 days on 2 workers, months rather than weeks; on a
GPU it is the thesis's setting (no GPU time was measured here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.experiments import common, style_common
from physamp.experiments.style_common import percent_difference

NAME = "style-n-vs-single"
TITLE = "An N-styles network against N single-style networks (thesis §7.3.2, Fig. 7.5)"
PROTOCOL = common.protocol_section(__doc__, end="Thesis (§7.3.2")
RESULT_KEYS = ("train_seconds", "steps_done")
#: §7.3.2: mean ± std (over the 10 styles, std not specified) of the 10-styles network's % difference
THESIS: dict[str, Any] = {"content": (8.7, 3.9), "style": (-8.9, 16.5), "n": 10}
MULTI, SINGLE = "N-styles", "single-style"

PRESETS = style_common.base_presets()  # full: N = 10 (the Monet model)


def cells(p: dict) -> list[dict]:
    """One cell per network: the N-styles one first (it also evaluates N styles), then one per style."""
    style_common.check_settings(p, NAME, min_styles=2)
    base = {"experiment": NAME, **p}
    out = [{**base, "network": MULTI, "style": -1}]
    out += [{**base, "network": SINGLE, "style": k} for k in range(p["num_styles"])]
    return out


def _network(p: dict, cell_style: int):
    """``(net, info, style ids in net, StyleSet)`` of the N-styles network (-1) or style k's single one."""
    styles = style_common.style_set(p)
    if cell_style < 0:
        net, info = style_common.trained_network(p, styles, p["steps"])
        return net, info, list(range(len(styles))), styles
    one = styles.subset([cell_style])
    net, info = style_common.trained_network(p, one, p["steps"])
    return net, info, [0], one


def run_cell(cell: dict) -> dict:
    net, info, ids, styles = _network(cell, cell["style"])
    loss = style_common.make_loss(cell, list(styles.images))
    found = style_common.evaluate(net, loss, ids, style_common.heldout_batches(cell))
    k_of = (lambda i: i) if cell["style"] < 0 else (lambda i: cell["style"])
    result = {
        "train_seconds": info["seconds"],
        "steps_done": info["steps"],
        "seconds_per_step": info["seconds"] / max(1, info["steps"]),
    }
    for i, losses in found.items():
        result[f"content_loss/{k_of(i)}"] = losses["content_loss"]
        result[f"style_loss/{k_of(i)}"] = losses["style_loss"]
    return result


# -------------------------------------------------------------------------------------------- report
def comparison(rows: list[dict]) -> list[dict]:
    """Per style: both networks' held-out losses and the N-styles network's % differences."""
    multi = next(r["result"] for r in rows if r["cell"]["network"] == MULTI)
    out = []
    for r in sorted((r for r in rows if r["cell"]["network"] == SINGLE), key=lambda r: r["cell"]["style"]):
        k, single = r["cell"]["style"], r["result"]
        entry = {"style": k}
        for what in ("content", "style"):
            m, s = multi[f"{what}_loss/{k}"], single[f"{what}_loss/{k}"]
            entry |= {f"{what}_multi": m, f"{what}_single": s, f"{what}_diff_pct": percent_difference(m, s)}
        out.append(entry)
    return out


def _pm(mean: float, std: float) -> str:
    return f"{mean:+.1f} ± {'–' if np.isnan(std) else f'{std:.1f}'} %"


def _verdict(what: str, mean: float, std: float, n: int) -> str:
    se = std / np.sqrt(n) if n > 1 else float("nan")
    if np.isnan(se) or se == 0:
        return f"{what}: one style, no spread."
    t = mean / se
    side = "higher" if mean > 0 else "lower"
    sig = (
        "more than 2 standard errors from 0"
        if abs(t) > 2
        else "within 2 standard errors of 0 (not significant)"
    )
    return f"the N-styles network's {what} loss is on average {abs(mean):.1f} % {side} ({sig}; t = {t:+.2f})"


def _figure(out_dir: Path, p: dict, comp: list[dict], preset: str) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    from physamp.models.style.data import center_crop, resize_smaller_side
    from physamp.models.style.stylize import stylize
    from physamp.plotting import tile

    styles = style_common.style_set(p)
    n = len(styles)
    fig = plt.figure(figsize=(14, max(6.0, 1.25 * n + 1.5)))
    gs = GridSpec(2, 3, figure=fig, width_ratios=[1.4, 1.0, 1.1])
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20")
    multi, m_info, _, _ = _network(p, -1)
    singles = [_network(p, k)[:2] for k in range(n)]  # (net, info), loaded from the model cache
    image, image_name = style_common.display_image(p)
    tiles = []
    for row, what in enumerate(("content", "style")):
        ax = fig.add_subplot(gs[row, 0])
        for k in range(n):
            h_m, h_s = m_info["history"], singles[k][1]["history"]
            ax.plot([r["step"] for r in h_s], [r[f"{what}_loss/0"] for r in h_s], color=colours(k), lw=1.2)
            key = f"{what}_loss/{k}"
            seen = [r for r in h_m if key in r]
            ax.plot([r["step"] for r in seen], [r[key] for r in seen], "--", color=colours(k), lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{what} loss (training batches)")
        ax.plot([], [], "k-", label=SINGLE)
        ax.plot([], [], "k--", label=f"{MULTI} (N = {n})")
        ax.legend(fontsize=7)
        ax = fig.add_subplot(gs[row, 1])
        diffs = [c[f"{what}_diff_pct"] for c in comp]
        mean, std = style_common.mean_sample_std(diffs)
        ax.bar(range(n), diffs, color=[colours(k) for k in range(n)])
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(mean, color="C3", ls="--", lw=1, label=f"mean {_pm(mean, std)}")
        tm, ts = THESIS[what]
        ax.axhspan(tm - ts, tm + ts, color="0.8", alpha=0.5, label=f"thesis {tm:+.1f} ± {ts:.1f} %")
        ax.set_xticks(range(n), styles.names, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(f"{what} loss: N-styles vs single (%)")
        ax.legend(fontsize=7)
    with torch.no_grad():
        for k in range(n):
            single = singles[k][0]
            side = image.shape[-1]
            style_img = center_crop(resize_smaller_side(styles.images[k], side), side)
            tiles += [
                style_img,
                stylize(multi, image, torch.tensor([k]))[0],
                stylize(single, image, torch.tensor([0]))[0],
            ]
    ax = fig.add_subplot(gs[:, 2])
    ax.imshow(tile(torch.stack(tiles), 3))
    ax.set_xticks([(0.5 + j) * (image.shape[-1] + 2) for j in range(3)], ["style", MULTI, SINGLE], fontsize=8)
    ax.set_yticks([(0.5 + k) * (image.shape[-2] + 2) for k in range(n)], styles.names, fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(f"pastiches of held-out {image_name}", fontsize=8)
    return common.save_figure(fig, out_dir, NAME, title=f"{TITLE} [{preset}]")


def report(rows: list[dict], out_dir: Path, preset: str) -> None:
    style_common.one_thread_report(_report, rows, Path(out_dir), preset)


def _report(rows: list[dict], out_dir: Path, preset: str) -> None:
    p = {k: v for k, v in rows[0]["cell"].items() if k not in ("experiment", "network", "style")}
    styles = style_common.style_set(p)
    comp = comparison(rows)
    common.write_csv([{"name": styles.names[c["style"]], **c} for c in comp], out_dir / "losses.csv")
    _figure(out_dir, p, comp, preset)

    n = len(comp)
    stats = {
        w: style_common.mean_sample_std([c[f"{w}_diff_pct"] for c in comp]) for w in ("content", "style")
    }
    header = [
        "style",
        "content N-styles",
        "content single",
        "Δ content",
        "style N-styles",
        "style single",
        "Δ style",
    ]
    table_rows = [
        [
            f"{c['style']}: {styles.names[c['style']]}",
            c["content_multi"],
            c["content_single"],
            f"{c['content_diff_pct']:+.1f} %",
            c["style_multi"],
            c["style_single"],
            f"{c['style_diff_pct']:+.1f} %",
        ]
        for c in comp
    ]
    table_rows.append(
        [
            f"**mean ± sample std over {n} styles**",
            "",
            "",
            _pm(*stats["content"]),
            "",
            "",
            _pm(*stats["style"]),
        ]
    )
    table_rows.append(["**thesis (10 Monet styles)**", "", "", "+8.7 ± 3.9 %", "", "", "−8.9 ± 16.5 %"])
    table = style_common.md_table(header, table_rows)

    seconds = [r["result"]["seconds_per_step"] for r in rows]
    full_n = p["num_styles"] if preset == "full" else PRESETS["full"]["num_styles"]
    steps = p["steps"]
    c_mean, c_std = stats["content"]
    s_mean, s_std = stats["style"]
    same_dir_c = "as in the thesis (+8.7 %)" if c_mean > 0 else "unlike the thesis's +8.7 %"
    same_dir_s = "the thesis's direction (−8.9 %)" if s_mean < 0 else "the opposite of the thesis's −8.9 %"
    obs = [
        f"**Final losses.** On the same {p['eval_batches']} held-out batches, "
        + _verdict("content", c_mean, c_std, n)
        + f", {same_dir_c}; "
        + _verdict("style", s_mean, s_std, n)
        + f", {same_dir_s}. The thesis finds the content difference significant (+8.7 ± 3.9 %) and the "
        "style difference insignificant (−8.9 ± 16.5 %). Here ± is the **sample** std over styles "
        "(ddof = 1); the thesis does not say which std it used.",
        "**Fairness.** The N single-style networks together made "
        f"{n} × {steps:,} = {n * steps:,} parameter updates against the N-styles network's {steps:,}, and "
        f"each saw {steps * p['batch_size']:,} images in its style against about "
        f"{steps * p['batch_size'] / n:,.0f} for the N-styles network (styles are drawn per image): the "
        "thesis's caveat that this \"may not be a fair comparison, given that it takes N times more "
        'parameter updates to train N single-style networks".',
        "**Learning curves** (figure, left): dashed N-styles, solid single-style, one colour per style, "
        "training batches. The thesis sees the N-styles network converge as fast in style loss and lag "
        "slightly in content loss.",
        f"**Cost of this run.** {np.mean(seconds):.2f} s per training step on average "
        f"({min(seconds):.2f}-{max(seconds):.2f} over the {len(rows)} networks; the time measured when each "
        "network trained).",
        style_common.cuts_paragraph(
            p,
            preset,
            10,
            "ImageNet photographs, 10 Monet paintings",
            f"1 + {full_n} networks",
            (1 + full_n) * 40_000,
        ),
    ]
    if steps < 2_000:
        obs.insert(
            1,
            f"**At {steps:,} steps** ({100 * steps / 40_000:.2g} % of the thesis's 40,000) every network is "
            "early in training, where the single-style networks' N-fold head start per style counts most; "
            "the differences say how the two set-ups start, not where they converge.",
        )
    style_common.write_markdown(
        out_dir,
        NAME,
        f"{TITLE} [{preset}]",
        [
            PROTOCOL,
            style_common.data_paragraph(p, styles),
            table,
            f"![Fig. 7.5: learning curves, % differences, pastiches]({NAME}.png)",
            *obs,
        ],
    )
