"""The cheap Bernoulli draw: 32-bit thresholds, two to one random 64-bit word.

On a CPU the Bernoulli draws, not the matrix products, bound a Gibbs sweep or
an AIS transition. This module is the one implementation both use. One random
64-bit word gives two int32 values ``r`` uniform on ``{-2^31, ..., 2^31 - 1}``
and::

    x = 1   iff   p - α·|r| > 0,        α = (1 - 2^-24) · 2^-31

computed in the dtype of ``p`` (``|r|`` is ``r`` converted to that dtype, then
made non-negative). ``α·|r|`` is a uniform on ``[0, 1)`` with 31 random bits
and a 0 that is taken half as often; folding the sign this way keeps float's
*relative* precision near 0, where a float32 ``p`` is small. For float32 ``p``
(counted exactly over all ``2^32`` thresholds in ``tests/test_bernoulli.py``):

* ``p >= 2^-8``: ``P(x = 1)`` is within one float32 ulp of ``p`` -- half an ulp
  above it on average, at most ``2^-25`` absolute: the resolution ``p`` itself
  has (``|r|`` is rounded to 24 significant bits, to the nearest);
* ``p < 2^-8``: within ``2^-32`` absolute, so the tails are resolved down to
  ``p ≈ 2^-32``: ``σ(-14) = 8.3e-7`` is drawn with probability ``8.3e-7``
  (relative error 1e-4), ``σ(-20) = 2.1e-9`` within 2 %;
* ``p = 0`` gives 0 and ``p = 1`` gives 1, exactly (``α·|r| <= 1 - 2^-24 < 1``).

For comparison, a float32 uniform (``torch.rand(...) < p``) draws a 1 with
probability ``ceil(p·2^24) / 2^24``: up to ``2^-24`` too often at every ``p``,
and ``2^-24`` for every ``0 < p < 2^-24``.

This replaces a 16-bit threshold draw (``x = [p - r16/65536 > 1/2]``) that
rounded every probability *up* to the next multiple of ``2^-16`` and lost
everything below about ``3e-8``; on slow-mixing models that moved a Gibbs
chain's stationary distribution (the 6x5 RBM of issue 8: 0.0175 instead of
0.0129 on one state). ``Int16Bernoulli`` remains as an alias of the class.

Cost: one random word per two units. On the CPU the words come from numpy's
SFC64 generator (about 2.5x faster than torch's Mersenne twister here); on CUDA
and MPS from a torch generator on the device. The elementwise work is
in-place: ``sigmoid_``, the int32 -> float conversion into a reused buffer,
``abs_``, ``sub_`` and ``gt_``. The whole draw is still about twice as cheap as
``torch.rand`` followed by the comparison.

>>> import torch
>>> bern = Int32Bernoulli(torch.device("cpu"), seed=0)
>>> x = bern.sample_from_logits_(torch.zeros(4, 1000))
>>> 0.45 < float(x.mean()) < 0.55
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Int32Bernoulli", "Int16Bernoulli", "ALPHA"]

#: Scale of the folded thresholds: ``α·|r| <= α·2^31 = 1 - 2^-24``, the largest float32 below 1.
#: Exactly representable in float32 and float64.
ALPHA = (1.0 - 2.0**-24) * 2.0**-31


def _sfc64_state_to_tensor(state: dict) -> torch.Tensor:
    """SFC64 state (four uint64 words, a buffer flag and word) as an int64 tensor for checkpoints."""
    words = [int(x) for x in state["state"]["state"]] + [int(state["has_uint32"]), int(state["uinteger"])]
    return torch.tensor(np.array(words, dtype=np.uint64).view(np.int64))


def _sfc64_state_from_tensor(t: torch.Tensor) -> dict:
    w = t.cpu().numpy().astype(np.int64).view(np.uint64)
    return {
        "bit_generator": "SFC64",
        "state": {"state": w[:4].copy()},
        "has_uint32": int(w[4]),
        "uinteger": int(w[5]),
    }


class Int32Bernoulli:
    """Bernoulli draws from 32-bit thresholds on ``device`` (see the module docstring).

    Args:
        device: where the draws are made.
        seed: seed of the word source (numpy SFC64 on the CPU, a torch generator
            elsewhere); None seeds from the operating system.
        generator: on CUDA / MPS, an existing torch generator on ``device`` to draw
            the words from (its state is then saved by its owner).
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.device = torch.device(device)
        if generator is not None:
            if self.device.type == "cpu":
                raise ValueError("on the CPU the words come from numpy's SFC64: pass a seed, not a generator")
            self.np_rng, self.gen = None, generator
        elif self.device.type == "cpu":
            self.np_rng: np.random.Generator | None = np.random.Generator(np.random.SFC64(seed))
            self.gen: torch.Generator | None = None
        else:
            self.np_rng = None
            self.gen = torch.Generator(device=self.device)
            if seed is None:
                self.gen.seed()
            else:
                self.gen.manual_seed(int(seed))
        self._words: torch.Tensor | None = None  # buffer for torch-generated words
        self._fbuf: torch.Tensor | None = None  # the random integers as floats

    # --- the random integers ------------------------------------------------------------
    def _raw_words(self, num_words: int) -> torch.Tensor:
        """``num_words`` uniform int64 words on the device."""
        if self.np_rng is not None:
            return torch.from_numpy(self.np_rng.bit_generator.random_raw(num_words).view(np.int64))
        if self._words is None or self._words.numel() < num_words:
            self._words = torch.empty(num_words, dtype=torch.int64, device=self.device)
        words = self._words[:num_words]
        return words.random_(-(2**63), 2**63 - 1, generator=self.gen)

    def int32(self, n: int) -> torch.Tensor:
        """``n`` uniform int32 values on the device, two per 64-bit random word."""
        return self._raw_words((n + 1) // 2).view(torch.int32)[:n]

    def int16(self, n: int) -> torch.Tensor:
        """``n`` uniform int16 values on the device, four per 64-bit random word (for sign bits)."""
        return self._raw_words((n + 3) // 4).view(torch.int16)[:n]

    def _as_floats(self, r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``r`` converted to ``like``'s dtype and shape, in a buffer reused across calls."""
        n = like.numel()
        if self._fbuf is None or self._fbuf.numel() < n or self._fbuf.dtype != like.dtype:
            self._fbuf = torch.empty(n, device=self.device, dtype=like.dtype)
        return self._fbuf[:n].view(like.shape).copy_(r.reshape(like.shape))

    # --- draws ------------------------------------------------------------------------
    def threshold_(self, p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """In place: ``p`` becomes ``[p - α·|r| > 0]`` for the given int32 ``r`` (same numel).

        The one comparison rule of the draw; :meth:`sample_from_probs_` feeds it fresh
        random integers. Exposed so that a test can feed it chosen integers and count
        exactly how many of the ``2^32`` values give a 1.
        """
        if not p.is_floating_point():
            raise TypeError(f"probabilities must be a float tensor, got {p.dtype}")
        return p.sub_(self._as_floats(r, p).abs_(), alpha=ALPHA).gt_(0.0)

    def sample_from_probs_(self, p: torch.Tensor) -> torch.Tensor:
        """In place: ``p`` holds probabilities and becomes {0, 1} draws (same dtype)."""
        return self.threshold_(p, self.int32(p.numel()))

    def sample_from_logits_(self, a: torch.Tensor) -> torch.Tensor:
        """In place: ``a`` holds logits ``z`` and becomes {0, 1} draws with P(1) = σ(z)."""
        return self.sample_from_probs_(a.sigmoid_())

    def random_half(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bernoulli(1/2) states: the sign bits of 16-bit random integers (four per word)."""
        n = int(np.prod(shape))
        return self.int16(n).view(shape).lt(0).to(self.device, dtype)

    # --- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.np_rng is not None:
            return {"sfc64_state": _sfc64_state_to_tensor(self.np_rng.bit_generator.state)}
        return {"torch_state": self.gen.get_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if self.np_rng is not None:
            if "sfc64_state" not in sd:
                raise ValueError("this Bernoulli source runs on the CPU (SFC64); the state is from a GPU one")
            self.np_rng.bit_generator.state = _sfc64_state_from_tensor(sd["sfc64_state"])
        else:
            if "torch_state" not in sd:
                raise ValueError(f"this Bernoulli source runs on {self.device}; the state is from a CPU one")
            self.gen.set_state(sd["torch_state"])


#: The class's former name (it drew 16-bit thresholds); kept so that old imports work.
Int16Bernoulli = Int32Bernoulli
