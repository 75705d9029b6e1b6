"""Make tests/data/rbm_784x20.pt: a 784x20 RBM trained on binarised MNIST digits (float32 W, b, c).

    python tests/data/make_rbm_784x20.py

The training is plain torch and deterministic: CD-1 for 300 updates, then PCD-1 for 1,700
updates with 100 persistent chains; lr 0.05 with momentum 0.5, batch 100, seed 0.
The digits are the first 5,000 rows of shared/datasets/mnist/mnist_5k.csv.gz, each a
row of 784 pixels and then the label, binarised at > 127. The file stores W, b, c and
the exact log Z from :func:`physamp.ais.exact_log_z`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
MNIST = HERE.parents[2] / "shared" / "datasets" / "mnist" / "mnist_5k.csv.gz"


def load_mnist_binary(path: Path = MNIST) -> torch.Tensor:
    a = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.uint8)
    return torch.from_numpy((a[:, :784] > 127).astype(np.float32))


def train(data: torch.Tensor, n_hidden: int = 20, updates: int = 2000, seed: int = 0):
    torch.manual_seed(seed)
    nv = data.shape[1]
    W = torch.randn(n_hidden, nv) * 0.01
    p = (data.mean(0) + 0.05) / 1.1
    b = torch.log(p) - torch.log1p(-p)
    c = torch.zeros(n_hidden)
    mW, mb, mc = torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(c)
    lr, mom, bs = 0.05, 0.5, 100
    chains = data[torch.randperm(data.shape[0])[:bs]].clone()
    for it in range(updates):
        v0 = data[torch.randint(0, data.shape[0], (bs,))]
        ph0 = torch.sigmoid(v0 @ W.t() + c)
        start = v0 if it < 300 else chains  # CD-1, then PCD-1
        h = (torch.rand(bs, n_hidden) < torch.sigmoid(start @ W.t() + c)).float()
        vk = (torch.rand(bs, nv) < torch.sigmoid(h @ W + b)).float()
        phk = torch.sigmoid(vk @ W.t() + c)
        if it >= 300:
            chains = vk
        gW = (ph0.t() @ v0 - phk.t() @ vk) / bs
        gb = (v0 - vk).mean(0)
        gc = (ph0 - phk).mean(0)
        mW.mul_(mom).add_(gW)
        mb.mul_(mom).add_(gb)
        mc.mul_(mom).add_(gc)
        W += lr * mW
        b += lr * mb
        c += lr * mc
    return W, b, c


def main() -> None:
    import physamp
    from physamp.ais import exact_log_z, test_nll

    torch.set_num_threads(1)
    data = load_mnist_binary()
    W, b, c = train(data)
    rbm = physamp.RBM(784, 20)
    with torch.no_grad():
        rbm.W.copy_(W)
        rbm.b.copy_(b)
        rbm.c.copy_(c)
    log_z = exact_log_z(rbm)
    nll = test_nll(rbm, data, log_z).nll
    print(f"exact log Z = {log_z:.4f}, train NLL = {nll:.2f} nats, |W| max = {W.abs().max():.2f}")
    out = HERE / "rbm_784x20.pt"
    torch.save({"W": W.clone(), "b": b.clone(), "c": c.clone(), "log_z": log_z}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
