"""Table 5.1's protocol: an L2-SVM on ALI encoder features, beside raw pixels and an untrained encoder.

Protocol
--------
- Data: ``dataset`` (``mnist``: the offline split, 13,000 training digits and 2,000 test
  digits, grey levels; ``svhn`` / ``cifar10`` when a user has them, ``--data-root DIR``).
- Model: the dataset's ALI model (:mod:`physamp.models.ali.networks`: the MNIST model,
  Table 5.4 for SVHN, Table 5.3 for CIFAR-10), trained by Algorithm 1 for ``epochs``
  epochs (Adam as in the table) with seed ``seed``; the trained encoder is cached, so
  rerunning the report does not train again.
- Features (§5.4.3): "the last three hidden layers of the encoder as well as its output",
  i.e. the outputs (after their nonlinearity) of the encoder's last three hidden layers,
  flattened, then μ of ``q(z | x)`` (:meth:`~physamp.models.ali.model.Encoder.features`).
  MNIST: 256·3·3 + 512 + 512 + 64 = 3,392 dimensions; SVHN: 256·4·4 + 512 + 512 + 256 =
  5,376 (the thesis prints 8,960, which Table 5.4 cannot give: see the spec), computed
  in eval mode (batch-norm running statistics, ``ẑ`` not sampled).
- Baselines in the same table, so the number means something: the raw pixels, and the
  same encoder **untrained** (its initial weights, N(0, 0.01²), batch-norm statistics
  from the training data: a random-feature baseline).
- Classifier (:func:`physamp.models.ali.semi_supervised.svm_protocol`): 10,000 training
  examples held out for validation, ``LinearSVC`` on 1,000 class-balanced labels (100 per
  class) from the rest, C chosen on the validation set, test error averaged over
  ``n_svms`` SVMs trained on different label draws (mean ± sample std).

Thesis (SVHN, Table 5.1): ALI + L2-SVM 19.14 ± 0.50 %, DCGAN + L2-SVM 22.18 %.

Presets: ``tiny`` (tests: 300 training images, 4 steps, 3 SVMs), ``quick`` (MNIST, 2 epochs
of ALI: ≈ 10 core-minutes of training at ≈ 2.3 s per step of batch 100 on one core, then
100 SVMs per feature set; about 15 minutes in all) and ``full`` (20 epochs ≈ 100
core-minutes on MNIST; SVHN's 100 epochs of 733 steps (73,257 images) at ≈ 2.5 s per step on
one core ≈ 51 core-hours: a GPU job).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from physamp.experiments import common
from physamp.models.ali.data import unit_float
from physamp.models.ali.networks import BN_MOMENTUM
from physamp.seeding import derive_seed

if TYPE_CHECKING:
    from physamp.models.ali.model import ALI, Encoder

NAME = "ali-semi-supervised"
TITLE = "ALI encoder features for semi-supervised learning (thesis Table 5.1 protocol)"
RESULT_KEYS = ("error_mean", "error_std")
FEATURES = {
    "pixels": "raw pixels",
    "untrained": "untrained encoder",
    "ali": "ALI encoder",
}
_BASE = dict(dataset="mnist", data_root=None, features=list(FEATURES), seed=0, n_labels=1000, n_val=10_000)
PRESETS = {
    "tiny": {**_BASE, "epochs": 1, "max_train": 300, "max_steps": 4, "n_val": 100, "n_labels": 50,
             "n_svms": 3},
    "quick": {**_BASE, "epochs": 2, "max_train": None, "max_steps": None, "n_svms": 100},
    "full": {**_BASE, "epochs": 20, "max_train": None, "max_steps": None, "n_svms": 100},
}  # fmt: skip


def cells(p: dict) -> list[dict]:
    keys = ("dataset", "data_root", "seed", "epochs", "max_train", "max_steps", "n_labels", "n_val", "n_svms")
    return [{"features": f, **{k: p[k] for k in keys}} for f in p["features"]]


def _data(cell: dict):
    from physamp.models.ali.data import load_ali_data

    return load_ali_data(cell["dataset"], cell["data_root"], max_train=cell["max_train"], seed=cell["seed"])


def trained_encoder(cell: dict, data) -> tuple[ALI, float]:
    """The ALI model of ``cell``, trained (on CUDA when there is one) or loaded from the model cache,
    and its training seconds.

    It trains in a run directory of the model cache (``ali-KEY/``), so a study stopped while
    training resumes there; a finished run is marked by ``ali-KEY/done.json``.
    """
    from physamp.models.ali import ALITrainConfig, ALITrainer, build_ali
    from physamp.models.ali.train import DATASET_MODELS
    from physamp.training import load_component, resolve_device

    model = DATASET_MODELS[cell["dataset"]]
    cfg = ALITrainConfig(model=model, epochs=cell["epochs"], steps=cell["max_steps"], seed=cell["seed"])
    run = common.model_cache_dir() / f"ali-{common._key({'ali': cfg.__dict__, 'data': data.identity})}"
    done = run / "done.json"

    def finished():
        try:
            ali = build_ali(cfg.model)
            ali.load_state_dict(load_component(run / "checkpoint.pt", "model"))
            return ali, float(json.loads(done.read_text())["seconds"])
        except Exception:
            return None  # not trained yet, or a damaged entry: trained (or resumed) again

    def train() -> tuple[ALI, float]:
        t0 = time.perf_counter()
        trainer = ALITrainer(cfg, data.x_train, device=resolve_device("auto"), data=data.identity)
        trainer.fit(run_dir=run, progress=False)  # a study stopped while training resumes here
        seconds = time.perf_counter() - t0
        done.write_text(json.dumps({"seconds": seconds, "steps": trainer.total_steps}) + "\n")
        return trainer.ali.cpu(), seconds

    return common.cached(run, lambda: finished() if done.exists() else None, train)


@torch.no_grad()
def encoder_features(encoder: Encoder, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    """``encoder.features`` of every image of ``x`` (uint8 or float in [0, 1]), in eval mode, as float32."""
    was = encoder.training
    encoder.eval()
    out = []
    for i in range(0, x.shape[0], batch):
        out.append(encoder.features(unit_float(x[i : i + batch])).numpy().astype(np.float32))
    encoder.train(was)
    return np.concatenate(out)


def run_cell(cell: dict) -> dict:
    from physamp.models.ali import build_ali
    from physamp.models.ali.semi_supervised import svm_protocol
    from physamp.models.ali.train import DATASET_MODELS

    data = _data(cell)
    if data.y_train is None or data.y_train.dim() != 1:
        raise ValueError(f"{data.name} has no class labels, so the SVM protocol cannot run on it")
    train_s = 0.0
    if cell["features"] == "pixels":
        f_train = unit_float(data.x_train).flatten(1).numpy()
        f_test = data.x_val.flatten(1).numpy()
    else:
        if cell["features"] == "ali":
            ali, train_s = trained_encoder(cell, data)
        else:
            # the initial weights of the trained model (the trainer draws them from this seed)
            ali = build_ali(DATASET_MODELS[cell["dataset"]], seed=derive_seed(cell["seed"], "model-init"))
        encoder = ali.encoder
        assert encoder is not None  # an ALI model, not the GAN baseline
        if cell["features"] != "ali":
            _batch_norm_statistics(encoder, data.x_train[:2000])
        f_train = encoder_features(encoder, data.x_train)
        f_test = encoder_features(encoder, data.x_val)
    res = svm_protocol(
        f_train,
        data.y_train.numpy(),
        f_test,
        data.y_val.numpy(),
        n_labels=cell["n_labels"],
        n_val=cell["n_val"],
        n_svms=cell["n_svms"],
        seed=cell["seed"],
    )
    return {
        "error_mean": res.error_mean,
        "error_std": res.error_std,
        "c": res.c,
        "val_error": res.val_error,
        "feature_dim": res.feature_dim,
        "not_converged": res.not_converged,
        "train_s": train_s,
        "svm_s": res.elapsed_s,
        "dataset": data.name,
        "num_train": int(data.x_train.shape[0]),
        "num_test": int(data.x_val.shape[0]),
    }


@torch.no_grad()
def _batch_norm_statistics(encoder: Encoder, x: torch.Tensor, batch: int = 100) -> None:
    """Running batch-norm statistics of an untrained encoder from data (its weights stay as drawn)."""
    for m in encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
    encoder.train()
    for i in range(0, x.shape[0], batch):
        encoder.features(unit_float(x[i : i + batch]))
    for m in encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = BN_MOMENTUM


def report(rows: list[dict], out_dir: Path, preset_name: str) -> None:
    from physamp.models.ali.semi_supervised import TABLE_5_1

    out_dir = Path(out_dir)
    r0 = rows[0]["result"]
    cell0 = rows[0]["cell"]
    table = [
        "| features | dimension | C | validation error (%) | test error (%), mean ± std | ALI training |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        c, r = row["cell"], row["result"]
        trained = f"{c['epochs']} epoch(s), {r['train_s']:.0f} s" if c["features"] == "ali" else "—"
        if c["features"] == "ali" and c["max_steps"]:
            trained = f"{c['max_steps']} steps, {r['train_s']:.0f} s"
        table.append(
            f"| {FEATURES[c['features']]} | {r['feature_dim']:,} | {r['c']:.3g} | {r['val_error']:.2f} | "
            f"{r['error_mean']:.2f} ± {r['error_std']:.2f} ({c['n_svms']} SVMs) | {trained} |"
        )
    thesis = "\n".join(f"| {k} | {v} |" for k, v in TABLE_5_1.items())
    full_epochs = PRESETS["full"]["epochs"]
    cut = (
        "" if preset_name == "full" else
        f" This preset trained ALI for {cell0['epochs']} epoch(s)"
        + (f" ({cell0['max_steps']} steps)" if cell0["max_steps"] else "")
        + f"; the full preset trains {full_epochs}."
    )  # fmt: skip
    text = f"""# {TITLE} [{preset_name}]

{common.protocol_section(__doc__).strip()}

**Data:** {r0["dataset"]}: {r0["num_train"]:,} training images ({cell0["n_val"]:,} of them held out for
choosing C; {cell0["n_labels"]:,} class-balanced labels per SVM from the rest) and {r0["num_test"]:,}
test images.{cut}

{chr(10).join(table)}

The thesis's Table 5.1 is for SVHN (the MNIST model and numbers are this package's; no MNIST
figure of this protocol is in the thesis), as printed:

| model | SVHN test error (%) |
|---|---|
{thesis}

Read the ALI row against the two baselines of the same run: the untrained encoder has the same
architecture and feature dimension, so the gap between them is what ALI's training added.
"""
    (out_dir / f"{NAME}.md").write_text(text)
    _plot(rows, out_dir / f"{NAME}.png", preset_name)
    (out_dir / f"{NAME}.json").write_text(json.dumps([row["result"] for row in rows], indent=2) + "\n")


def _plot(rows, path: Path, preset_name: str) -> Path:
    fig, ax = common.new_figure(5.0, 3.0)
    names = [FEATURES[r["cell"]["features"]] for r in rows]
    means = [r["result"]["error_mean"] for r in rows]
    stds = [r["result"]["error_std"] for r in rows]
    ax.barh(names, means, xerr=stds, color=["0.6", "0.75", "tab:blue"][: len(rows)], capsize=3)
    ax.set_xlabel("test error (%) of the L2-SVM on 1,000 labels")
    ax.invert_yaxis()
    ax.set_title(f"{TITLE} [{preset_name}]", fontsize=8)
    return common.save_figure(fig, path.parent, path.stem)
