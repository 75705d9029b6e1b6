"""One derivation for every seed physamp uses.

A run has one integer ``seed``. Every consumer of randomness draws from its own
stream, whose seed is derived from ``(seed, purpose, *keys)`` by
:func:`derive_seed`: a 63-bit prefix of the BLAKE2b hash of those values. Two
purposes never share a stream, a stream does not move when another purpose is
added, and the same seed gives the same streams on every machine and in every
process (no ``hash()`` randomisation, no memory addresses).

The purposes physamp uses:

==================  ==========================================================
purpose             stream
==================  ==========================================================
``"model-init"``    initial parameters of a model (the RBM trainer's weights)
``"sampler"``       the negative-phase sampler a trainer builds
``"binarize"``      stochastic re-binarisation of training data
``"data-order"``    the batch order; epoch ``e`` uses ``derive_seed(seed, "data-order", e)``
``"data-loader"``   the generator of a ``DataLoader`` iterator (its workers' base seeds),
                    so that starting an epoch never draws from torch's global generator
``"generator"``     a sampler's torch generator on one device type
                    (``derive_seed(seed, "generator", "cpu")``, ``..., "cuda")``)
``"words"``         the random 64-bit words of the 32-bit threshold Bernoulli draws
                    (:class:`physamp.samplers.bernoulli.Int32Bernoulli`)
``"device-noise"``  the simulated device's parameter noise
``"embedding"``     minorminer's search for an embedding
``"ais"``           the random draws of an AIS run
``"noise-draws"``   the noisy models of an expected-NLL-under-noise estimate
==================  ==========================================================

A model family adds its own purposes (``"dropout"``, ``"latent"``, ...) by name:
no offsets to keep apart by hand.

Global generators (Python's ``random``, numpy's legacy ``np.random``, torch's
default generator) are seeded by :func:`seed_everything` for user code; physamp
code draws only from the explicit streams above.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["derive_seed", "seed_everything", "check_seed", "SEEDING_VERSION"]

#: Version of the derivation. A run's config records it, so a checkpoint written under
#: another derivation (whose streams would differ) is refused instead of resumed.
SEEDING_VERSION = 1

_MASK63 = (1 << 63) - 1


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int, or a ``ValueError`` that names it (bools and floats are refused)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{name} must be an int, got {seed!r}")
    return seed


def derive_seed(seed: int, purpose: str, *keys: int | str) -> int:
    """The seed of stream ``purpose`` (and ``keys``, e.g. an epoch) of a run seeded with ``seed``.

    Returns an int in ``[0, 2^63)``, usable by ``torch.Generator.manual_seed`` and
    numpy's bit generators alike.

    >>> derive_seed(0, "sampler") == derive_seed(0, "sampler")
    True
    >>> derive_seed(0, "sampler") != derive_seed(0, "binarize") != derive_seed(1, "sampler")
    True
    """
    check_seed(seed)
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string, got {purpose!r}")
    text = "\x1f".join(["physamp", purpose, str(int(seed)), *(str(k) for k in keys)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def seed_everything(seed: int):
    """Seed Python, numpy and torch's global generators; return a fresh CPU generator seeded with ``seed``.

    physamp code draws from explicit generators (the returned one, and the
    streams of :func:`derive_seed`), so a run is reproducible from its seed; the
    global seeds only cover user code.
    """
    import numpy as np
    import torch

    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
