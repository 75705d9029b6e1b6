"""Build ``physamp/data/mnist_slice.npz``, the MNIST slice bundled with the package.

    python -m physamp.data.make_slice [SHARED_DATASETS_MNIST_DIR]

Contents (uint8, np.savez_compressed):

- ``train_images`` (2000, 28, 28), ``train_labels`` (2000,): the first 200 digits of each
  class, in file order, of ``mnist_5k.csv.gz`` (MNIST training digits), sorted back into file
  order;
- ``test_images`` (500, 28, 28), ``test_labels`` (500,): MNIST test images 8,000-8,499, which
  belong to the test part of the mnist-offline protocol, so no bundled test digit is ever a
  training digit of either protocol.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from physamp.data.download import find_shared_datasets
from physamp.data.mnist import BUNDLED_PATH, _offline_arrays

PER_CLASS = 200
TEST_RANGE = (8000, 8500)


def make_slice(folder: str | Path | None = None, out: str | Path = BUNDLED_PATH) -> Path:
    found = find_shared_datasets(folder)
    if found is None:
        raise SystemExit("shared/datasets/mnist not found; pass its path")
    a = _offline_arrays(found)
    keep = np.sort(np.concatenate([np.flatnonzero(a["csv_y"] == k)[:PER_CLASS] for k in range(10)]))
    lo, hi = TEST_RANGE
    np.savez_compressed(
        out,
        train_images=a["csv_x"][keep],
        train_labels=a["csv_y"][keep].astype(np.uint8),
        test_images=a["test_x"][lo:hi],
        test_labels=a["test_y"][lo:hi].astype(np.uint8),
    )
    return Path(out)


if __name__ == "__main__":
    path = make_slice(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
