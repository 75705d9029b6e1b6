"""The Bernoulli draw of the Gibbs sampler and AIS: 32-bit thresholds, 16 random bits a unit.

On a CPU the Bernoulli draws, not the matrix products, bound a sparse Gibbs sweep
or an AIS transition. This module is the one implementation both use.

The rule
--------
Each unit gets a uniform 32-bit integer threshold ``K`` and is drawn as::

    x = 1   iff   (K + 1/2) · 2^-32  <  p,        p = σ(a) (logits) or p (probabilities)

so ``P(x = 1) = m(p) / 2^32`` with ``m(p) = #{K : K + 1/2 < 2^32 p}``: the nearest multiple of
``2^-32`` to ``p``, i.e. ``P(1)`` is within ``2^-33`` of ``p`` for *every* ``p`` (for logits, of the
double-precision ``σ(a)``, itself within ``2^-52`` relative of the true one). ``p = 0`` gives 0,
``p = 1`` gives 1, NaN gives 0. For comparison, a float32 uniform (``torch.rand(...) < p``) is
``2^-24`` coarse; the tails are resolved down to ``p ≈ 2^-33``: ``σ(-14) = 8.3e-7`` is drawn with
probability ``8.3e-7`` (relative error 1.1e-4), ``σ(-20) = 2.1e-9`` within 2 %.
``tests/test_bernoulli.py`` counts ``m`` exactly, over all ``2^32`` thresholds, on the real code.

The threshold is ``K = slot · 2^16 + low``: the 16-bit ``slot`` comes from the random words (four
a 64-bit word), ``low`` only when needed. The slot alone decides a draw unless ``2^16 p`` lies
within the slot (or within a margin of it), which happens with probability about ``2^-16`` per
unit; only then is ``low`` computed -- the low 16 bits of SplitMix64's output number ``i + 1``
(``i`` = the unit's index in the call) from a *key*, one random word per call -- and the rule
evaluated in double precision. A call on ``n`` units consumes exactly ``1 + ceil(n / 4)`` words
(the key, then the slots, in the order of a little-endian ``uint16`` view of the words) whatever
it decides, so the draws are a function of the words, the inputs and nothing else.

Why the shortcuts are exact. From probabilities: ``q = 2^16 p`` is exact (a power-of-two
scaling); ``slot + 1 <= q`` means every ``K`` of the slot is below ``2^32 p - 1/2``, and
``q <= slot`` means none is. From logits the compiled kernel uses ``e ≈ exp(-|a|)`` (Cephes'
``expf``, relative error ``δ <= 1.2e-7``, checked on every 97th float32 in ``[0, 87]`` by
``tests/test_bernoulli.py``, on every one with ``-m slow``) and decides 1 when
``(slot + 1 + M)(1 + e) <= 2^16 g`` and 0 when ``(slot - M)(1 + e) >= 2^16 g``, with ``g = 1``
for ``a >= 0`` and ``g = e`` for ``a < 0`` (so ``2^16 g / (1 + e) ≈ 2^16 σ(a)``) and a margin of
``M = 1/16`` slot. The error of that estimate
of ``2^16 σ(a)`` is at most ``2^16 (δ/4 + 2^-23) < 0.01`` slot (``σ(1-σ) <= 1/4`` weighs ``δ``;
two float32 roundings), and clamping ``|a|`` at 87 only errs on the side of "undecided", so a
decided slot is decided the way the exact rule decides each of its ``2^16`` thresholds. The
torch path decides on ``torch.sigmoid`` with a margin of 1/4 slot (``2^-18`` in probability,
far above float32 sigmoid's error). Different shortcuts leave different units undecided, but
every path returns the exact rule's value for every unit: the compiled kernel and the torch path
give *identical* draws from the same words (tested).

Paths
-----
* CPU, float32 / float64: a small C kernel, compiled on first use with the system C compiler
  (``cc``, ``$CC``) into ``$PHYSAMP_KERNEL_CACHE`` (default ``~/.cache/physamp/kernels``) and
  loaded with ctypes; AVX2 + FMA where the CPU has them (eight units at a time), plain C
  otherwise. It runs the random words from numpy's SFC64 generator in place (the same state, so
  ``state_dict()`` is unchanged) and makes one pass over the units: no sigmoid pass, no buffer.
  ``PHYSAMP_COMPILED_DRAW=0`` turns it off; :func:`compiled_status` says whether it is in use
  and why not.
* Everything else (no compiler, other dtypes, CUDA, MPS): the same rule in torch operations,
  words from numpy's SFC64 on the CPU and from a torch generator on other devices.

The kernel also fuses the draw with the work around it, with the same words and draws as the
separate steps: a sparse Gibbs half-sweep computes each row of the CSR product and draws it while
it is in cache (:meth:`Int32Bernoulli.sparse_product_draw_`), and an AIS step's hidden side
computes the weight factor and draws the hiddens in one pass over the product
(:meth:`Int32Bernoulli.ais_hidden_`). :meth:`Int32Bernoulli.random_half` takes one bit a unit.

Cost, measured on the 2-core development machine (AVX2, one thread): a draw from 784,000 logits
takes about 0.8 ms in the kernel (0.25 ms of it the random words), against 3 ms for the previous
torch-operation draw; the fused sparse half-sweep of the 784x784 Chimera RBM at 1,000 chains about
1 ms, against 0.7-0.9 ms for torch's CSR product alone.

The rule replaces the previous default, ``x = [p - α|r| > 0]`` on 32-bit ``r`` (two units a
word, ``P(1)`` within ``2^-25``), which itself replaced a 16-bit draw that rounded every
probability up to a multiple of ``2^-16`` and moved a slow-mixing chain's stationary
distribution (issue 8). ``Int16Bernoulli`` remains as an alias of the class.

>>> import torch
>>> bern = Int32Bernoulli(torch.device("cpu"), seed=0)
>>> x = bern.sample_from_logits_(torch.zeros(4, 1000))
>>> 0.45 < float(x.mean()) < 0.55
True
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physamp.samplers._kernels import CompiledKernel

__all__ = ["Int32Bernoulli", "Int16Bernoulli", "compiled_status", "exact_draw"]

_MASK64 = (1 << 64) - 1
#: Margin of the torch path's logit shortcut, in slots: torch.sigmoid's error is far below it.
_TORCH_MARGIN = 0.25
#: The compiled kernel's margin, in slots (MARGIN in the C source).
KERNEL_MARGIN = 0.0625
#: The largest relative error of the kernel's e^{-t} that KERNEL_MARGIN covers: 2^16 (δ/4 + 2^-23) <= M.
KERNEL_EXP_TOLERANCE = (KERNEL_MARGIN - 2.0**-7) / 2.0**14


def exact_draw(value: float, K: int, *, logits: bool) -> float:
    """The rule for one unit: ``1.0`` iff ``(K + 1/2)·2^-32 < p`` (``p = σ(value)`` in double for logits).

    The double-precision sigmoid is ``1 / (1 + exp(-a))`` with the C library's ``exp`` -- what
    the compiled kernel evaluates -- so both give the same value.
    """
    if logits:
        try:
            p = 1.0 / (1.0 + math.exp(-value))
        except OverflowError:  # exp(-a) is inf: σ(a) is 0 in double, as in C
            p = 0.0
    else:
        p = value
    return 1.0 if (K + 0.5) * 2.0**-32 < p else 0.0


_UINT16 = getattr(torch, "uint16", None)


def _slots_into(out: torch.Tensor, slot16: torch.Tensor) -> None:
    """``out`` (float) gets the 16-bit slots held in the int16 tensor ``slot16``, as unsigned values."""
    if _UINT16 is not None:
        try:
            out.copy_(slot16.view(_UINT16))
            return
        except (RuntimeError, TypeError):  # a build without uint16 conversions
            pass
    out.copy_(slot16.to(torch.int32).bitwise_and_(0xFFFF))


def _flagged(flags: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Indices of the nonzero elements of a mostly-zero 1-D float tensor, in order: the chunks that
    hold one first (a max over each chunk), then ``nonzero`` inside those chunks only."""
    n = flags.numel()
    m = n - n % chunk
    parts = []
    if m:
        blocks = flags[:m].view(-1, chunk)
        hit = blocks.amax(1).nonzero().reshape(-1)
        if hit.numel():
            rows, cols = blocks[hit].nonzero(as_tuple=True)
            parts.append(hit[rows] * chunk + cols)
    if m < n:
        parts.append(flags[m:].nonzero().reshape(-1) + m)
    if not parts:
        return torch.zeros(0, dtype=torch.int64, device=flags.device)
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _low16(key: int, idx: np.ndarray) -> np.ndarray:
    """Low 16 bits of the thresholds of units ``idx``: SplitMix64's output ``idx + 1`` from ``key``."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (idx.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z & np.uint64(0xFFFF)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the compiled kernel
# ---------------------------------------------------------------------------------------------
_C_SOURCE = r"""
/* physamp's fused Bernoulli draw. The rule and the proof that the shortcuts below agree with it
   are in physamp/samplers/bernoulli.py; this file is compiled from the string there. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PS_AVX2 1
#else
#define PS_AVX2 0
#endif

#define BLK 512
/* the hot helpers are forced inline: without it gcc stops inlining them once the file grows */
#define HOT static inline __attribute__((always_inline))
#define MARGIN 0.0625f /* in slots (units of 2^-16 of probability) */

/* numpy's SFC64 step on numpy's own state words (a, b, c, counter) */
HOT uint64_t sfc_next(uint64_t *s) {
    const uint64_t tmp = s[0] + s[1] + s[3]++;
    s[0] = s[1] ^ (s[1] >> 11);
    s[1] = s[2] + (s[2] << 3);
    s[2] = ((s[2] << 24) | (s[2] >> 40)) + tmp;
    return tmp;
}

/* low 16 bits of element i's threshold: SplitMix64's output number i + 1 from the call's key */
static inline uint32_t low16(uint64_t key, int64_t i) {
    uint64_t z = key + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z & 0xFFFFu);
}

/* the rule itself, in double: x = [K + 1/2 < 2^32 p] */
static inline float exact_logit(double a, uint32_t K) {
    const double p = 1.0 / (1.0 + exp(-a));
    return ((double)K + 0.5) * 0x1p-32 < p ? 1.0f : 0.0f;
}
static inline float exact_prob(double p, uint32_t K) { return ((double)K + 0.5) * 0x1p-32 < p ? 1.0f : 0.0f; }

/* e^{-t} for t in [0, 87] (NaN stays NaN): Cephes' expf (Cody-Waite ln 2, degree-5 polynomial) */
HOT float exp_neg1(float t) {
    const float x = -t;
    const float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* 1 or 0 where the slot s decides the draw of logit v, -1 where only the exact rule can */
HOT float exp_neg_abs1(float v) {
    float t = fabsf(v);
    t = t > 87.0f ? 87.0f : t; /* NaN stays NaN */
    return exp_neg1(t);
}
/* ... given e = exp_neg_abs1(v) */
HOT int dec_logit1_e(float v, float e, float s) {
    const float f = 1.0f + e;
    const float g = signbit(v) ? 65536.0f * e : 65536.0f;
    if ((s + (1.0f + MARGIN)) * f <= g) return 1;
    if ((s - MARGIN) * f >= g) return 0;
    return -1;
}
HOT int dec_logit1(float v, float s) { return dec_logit1_e(v, exp_neg_abs1(v), s); }
HOT int dec_prob1(float p, float s) {
    const float q = p * 65536.0f;
    return s + 1.0f <= q ? 1 : (q <= s ? 0 : -1);
}

#if PS_AVX2
HOT __m256 exp_neg8(__m256 t) {
    const __m256 x = _mm256_sub_ps(_mm256_setzero_ps(), t);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    const __m256i bits = _mm256_slli_epi32(ni, 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

HOT __m256 exp_neg_abs8(__m256 v) {
    const __m256 absv = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
    return exp_neg8(_mm256_min_ps(_mm256_set1_ps(87.0f), absv)); /* NaN stays NaN */
}
/* ... given e = exp_neg_abs8(v) */
HOT __m256 dec_logit8_e(__m256 v, __m256 e, __m256 s, int *undecided) {
    const __m256 f = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
    const __m256 big = _mm256_set1_ps(65536.0f);
    const __m256 g = _mm256_blendv_ps(big, _mm256_mul_ps(big, e), v); /* by the sign bit of v */
    const __m256 hi = _mm256_mul_ps(_mm256_add_ps(s, _mm256_set1_ps(1.0f + MARGIN)), f);
    const __m256 lo = _mm256_mul_ps(_mm256_sub_ps(s, _mm256_set1_ps(MARGIN)), f);
    const __m256 one = _mm256_cmp_ps(hi, g, _CMP_LE_OQ);
    const __m256 zero = _mm256_cmp_ps(lo, g, _CMP_GE_OQ);
    *undecided = 0xFF & ~_mm256_movemask_ps(_mm256_or_ps(one, zero));
    return _mm256_and_ps(one, _mm256_set1_ps(1.0f));
}
HOT __m256 dec_logit8(__m256 v, __m256 s, int *undecided) {
    return dec_logit8_e(v, exp_neg_abs8(v), s, undecided);
}

HOT __m256 dec_prob8(__m256 p, __m256 s, int *undecided) {
    const __m256 q = _mm256_mul_ps(p, _mm256_set1_ps(65536.0f));
    const __m256 one = _mm256_cmp_ps(_mm256_add_ps(s, _mm256_set1_ps(1.0f)), q, _CMP_LE_OQ);
    const __m256 zero = _mm256_cmp_ps(q, s, _CMP_LE_OQ);
    *undecided = 0xFF & ~_mm256_movemask_ps(_mm256_or_ps(one, zero));
    return _mm256_and_ps(one, _mm256_set1_ps(1.0f));
}

/* 8 float32 elements at x with slots from the 16-bit values in (w0, w1); lows == NULL: hashed */
HOT int64_t step8(float *x, uint64_t w0, uint64_t w1, const uint16_t *lows, uint64_t key, int64_t i,
                            int logits) {
    const __m256 s = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_set_epi64x((long long)w1, (long long)w0)));
    const __m256 v = _mm256_loadu_ps(x);
    int und;
    const __m256 out = logits ? dec_logit8(v, s, &und) : dec_prob8(v, s, &und);
    if (__builtin_expect(und == 0, 1)) {
        _mm256_storeu_ps(x, out);
        return 0;
    }
    float vv[8], oo[8];
    uint16_t sl[8];
    memcpy(sl, &w0, 8);
    memcpy(sl + 4, &w1, 8);
    _mm256_storeu_ps(vv, v);
    _mm256_storeu_ps(oo, out);
    int64_t exact = 0;
    for (int l = 0; l < 8; l++) {
        if (und >> l & 1) {
            const uint32_t K = ((uint32_t)sl[l] << 16) | (lows ? (uint32_t)lows[l] : low16(key, i + l));
            oo[l] = logits ? exact_logit(vv[l], K) : exact_prob(vv[l], K);
            exact++;
        }
    }
    memcpy(x, oo, sizeof oo);
    return exact;
}
#endif

/* one element, scalar; lows == NULL: the low bits are hashed from (key, i) */
#define LOW_BITS(lows, key, i) ((lows) ? (uint32_t)(lows)[0] : low16((key), (i)))
HOT int64_t step1_f32(float *x, uint32_t slot, const uint16_t *lows, uint64_t key, int64_t i,
                                int logits) {
    const float v = *x;
    const int d = logits ? dec_logit1(v, (float)slot) : dec_prob1(v, (float)slot);
    if (d >= 0) {
        *x = (float)d;
        return 0;
    }
    const uint32_t K = (slot << 16) | LOW_BITS(lows, key, i);
    *x = logits ? exact_logit(v, K) : exact_prob(v, K);
    return 1;
}
HOT int64_t step1_f64(double *x, uint32_t slot, const uint16_t *lows, uint64_t key, int64_t i,
                                int logits) {
    const double v = *x;
    int d;
    if (logits) {
        d = dec_logit1((float)v, (float)slot); /* the margin covers the rounding to float32 */
    } else {
        const double q = v * 65536.0;
        d = (double)slot + 1.0 <= q ? 1 : (q <= (double)slot ? 0 : -1);
    }
    if (d >= 0) {
        *x = (double)d;
        return 0;
    }
    const uint32_t K = (slot << 16) | LOW_BITS(lows, key, i);
    *x = logits ? exact_logit(v, K) : exact_prob(v, K);
    return 1;
}

/* The draw: x (n contiguous elements, float32, or float64 if is64) becomes {0, 1} in place, from logits
   or probabilities. Consumes 1 + ceil(n / 4) words of the SFC64 state: the key, then the slots (four
   16-bit slots a word, in the order of a little-endian uint16 view). Returns how many elements the
   exact rule decided. */
int64_t ps_draw(void *x, int64_t n, uint64_t *state, int is64, int logits) {
    if (n <= 0) return 0;
    const uint64_t key = sfc_next(state);
    int64_t exact = 0, i = 0;
#if PS_AVX2
    if (!is64) {
        float *xf = (float *)x;
        for (; i + 8 <= n; i += 8) {
            const uint64_t w0 = sfc_next(state);
            const uint64_t w1 = sfc_next(state);
            exact += step8(xf + i, w0, w1, NULL, key, i, logits);
        }
    }
#endif
    uint16_t slots[BLK];
    for (; i < n; i += BLK) { /* i is a multiple of 8 here: ceil(n / 4) words in all */
        const int m = (int)(n - i < BLK ? n - i : BLK);
        for (int w = 0; w < (m + 3) / 4; w++) {
            const uint64_t r = sfc_next(state);
            memcpy(slots + 4 * w, &r, 8);
        }
        for (int l = 0; l < m; l++) {
            exact += is64 ? step1_f64((double *)x + i + l, slots[l], NULL, key, i + l, logits)
                          : step1_f32((float *)x + i + l, slots[l], NULL, key, i + l, logits);
        }
    }
    return exact;
}

/* The same rule for given 32-bit thresholds K (slot = K >> 16, low bits = K & 0xFFFF): the tests count
   the rule exactly through this, on the same decision code as ps_draw. */
int64_t ps_threshold(void *x, int64_t n, const uint32_t *K, int is64, int logits) {
    int64_t exact = 0, i = 0;
#if PS_AVX2
    if (!is64) {
        float *xf = (float *)x;
        for (; i + 8 <= n; i += 8) {
            uint16_t sl[8], lows[8];
            for (int l = 0; l < 8; l++) {
                sl[l] = (uint16_t)(K[i + l] >> 16);
                lows[l] = (uint16_t)(K[i + l] & 0xFFFFu);
            }
            uint64_t w0, w1;
            memcpy(&w0, sl, 8);
            memcpy(&w1, sl + 4, 8);
            exact += step8(xf + i, w0, w1, lows, 0, i, logits);
        }
    }
#endif
    for (; i < n; i++) {
        const uint16_t low = (uint16_t)(K[i] & 0xFFFFu);
        exact += is64 ? step1_f64((double *)x + i, K[i] >> 16, &low, 0, i, logits)
                      : step1_f32((float *)x + i, K[i] >> 16, &low, 0, i, logits);
    }
    return exact;
}

/* 16-bit slots in stream order, across calls of take_slots within one draw (a word gives four) */
typedef struct {
    uint64_t *state;
    uint16_t left[4];
    int nleft;
} slot_stream;

HOT void take_slots(slot_stream *ss, uint16_t *dst, int m) {
    int k = 0;
    while (k < m && ss->nleft > 0) dst[k++] = ss->left[4 - ss->nleft--];
    while (k + 4 <= m) {
        const uint64_t w = sfc_next(ss->state);
        memcpy(dst + k, &w, 8);
        k += 4;
    }
    if (k < m) {
        const uint64_t w = sfc_next(ss->state);
        memcpy(ss->left, &w, 8);
        ss->nleft = 4;
        while (k < m) dst[k++] = ss->left[4 - ss->nleft--];
    }
}

/* m float32 logits at x become draws, with the given slots; element l has the call's index base + l */
HOT int64_t draw_slots_f32(float *x, int m, const uint16_t *slots, uint64_t key, int64_t base) {
    int64_t exact = 0;
    int l = 0;
#if PS_AVX2
    for (; l + 8 <= m; l += 8) {
        uint64_t w[2];
        memcpy(w, slots + l, 16);
        exact += step8(x + l, w[0], w[1], NULL, key, base + l, 1);
    }
    if (l < m) { /* the tail, padded to eight lanes (the padding's draws are dropped) */
        float xp[8] = {0};
        uint16_t sp[8] = {0};
        uint64_t w[2];
        memcpy(xp, x + l, (size_t)(m - l) * sizeof(float));
        memcpy(sp, slots + l, (size_t)(m - l) * sizeof(uint16_t));
        memcpy(w, sp, 16);
        exact += step8(xp, w[0], w[1], NULL, key, base + l, 1);
        memcpy(x + l, xp, (size_t)(m - l) * sizeof(float));
        l = m;
    }
#endif
    for (; l < m; l++) exact += step1_f32(x + l, slots[l], NULL, key, base + l, 1);
    return exact;
}

/* The sparse half-sweep in one pass: out (R x N, row-major) becomes draws from the logits
   bias + W @ in, W in CSR (crow, col, val: R rows), in (C x N) row-major, bias (R) or, with
   bias_per_chain, (R x N). The same words as ps_draw on the product; the product is summed in
   CSR order (with fused multiply-adds where the CPU has them: torch's CSR product may round its last
   bit differently). */
int64_t ps_csr_draw(float *out, const float *in, const int64_t *crow, const int64_t *col, const float *val,
                    const float *bias, int bias_per_chain, int64_t R, int64_t N, uint64_t *state) {
    if (R <= 0 || N <= 0) return 0;
    slot_stream ss = {state, {0, 0, 0, 0}, 0};
    const uint64_t key = sfc_next(state);
    uint16_t slots[BLK];
    int64_t exact = 0;
    for (int64_t r = 0; r < R; r++) {
        float *o = out + r * N;
        const float *b = bias_per_chain ? bias + r * N : NULL;
        const int64_t k0 = crow[r], k1 = crow[r + 1];
        int64_t c = 0;
#if PS_AVX2
        const __m256 b1 = _mm256_set1_ps(bias[bias_per_chain ? 0 : r]);
        for (; c + 32 <= N; c += 32) {
            __m256 a0, a1, a2, a3;
            if (b) {
                a0 = _mm256_loadu_ps(b + c), a1 = _mm256_loadu_ps(b + c + 8);
                a2 = _mm256_loadu_ps(b + c + 16), a3 = _mm256_loadu_ps(b + c + 24);
            } else {
                a0 = a1 = a2 = a3 = b1;
            }
            for (int64_t k = k0; k < k1; k++) {
                const float *src = in + col[k] * N + c;
                const __m256 w = _mm256_set1_ps(val[k]);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(src), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(src + 8), a1);
                a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(src + 16), a2);
                a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(src + 24), a3);
            }
            _mm256_storeu_ps(o + c, a0);
            _mm256_storeu_ps(o + c + 8, a1);
            _mm256_storeu_ps(o + c + 16, a2);
            _mm256_storeu_ps(o + c + 24, a3);
        }
        for (; c + 8 <= N; c += 8) {
            __m256 a0 = b ? _mm256_loadu_ps(b + c) : b1;
            for (int64_t k = k0; k < k1; k++)
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(val[k]), _mm256_loadu_ps(in + col[k] * N + c), a0);
            _mm256_storeu_ps(o + c, a0);
        }
#endif
        for (; c < N; c++) {
            float a = b ? b[c] : bias[r];
            for (int64_t k = k0; k < k1; k++) a += val[k] * in[col[k] * N + c];
            o[c] = a;
        }
        for (int64_t c0 = 0; c0 < N; c0 += BLK) {
            const int m = (int)(N - c0 < BLK ? N - c0 : BLK);
            take_slots(&ss, slots, m);
            exact += draw_slots_f32(o + c0, m, slots, key, r * N + c0);
        }
    }
    return exact;
}

/* expm1(x) for |x| <= 1/16 and log1p(y) for |y| <= 1/15: their series to x^6 / y^8 (truncation below
   1e-11 relative, far under float32's rounding) */
HOT float expm1_small1(float x) {
    return x * (1.0f + x * (0.5f + x * (1.0f / 6 + x * (1.0f / 24 + x * (1.0f / 120 + x * (1.0f / 720))))));
}
HOT float log1p_small1(float y) {
    float p = -0.125f;
    p = p * y + 1.0f / 7;
    p = p * y - 1.0f / 6;
    p = p * y + 0.2f;
    p = p * y - 0.25f;
    p = p * y + 1.0f / 3;
    p = p * y - 0.5f;
    return y * (p * y + 1.0f);
}
#if PS_AVX2
HOT __m256 horner8(__m256 x, const float *c, int n) { /* c[0] + x (c[1] + x (...)) */
    __m256 p = _mm256_set1_ps(c[n - 1]);
    for (int k = n - 2; k >= 0; k--) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(c[k]));
    return p;
}
#endif

#if PS_AVX2
/* eight lanes of ps_ais_hidden: h and t of a[0..8), element i of the call's draw = i0 + lane */
HOT int64_t ais8(const float *a, const uint16_t *slots, float *h, float *t, uint64_t key,
                           int64_t i0, float bk, float dbk) {
    static const float EXPM1[6] = {1.0f, 0.5f, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720};
    static const float LOG1P[8] = {1.0f, -0.5f, 1.0f / 3, -0.25f, 0.2f, -1.0f / 6, 1.0f / 7, -0.125f};
    const __m256 av = _mm256_loadu_ps(a);
    const __m256 z = _mm256_mul_ps(av, _mm256_set1_ps(bk));
    const __m256 e = exp_neg_abs8(z);
    const __m256 sv = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)slots)));
    int und;
    __m256 out = dec_logit8_e(z, e, sv, &und);
    int64_t exact = 0;
    if (__builtin_expect(und != 0, 0)) {
        float zz[8], oo[8];
        _mm256_storeu_ps(zz, z);
        _mm256_storeu_ps(oo, out);
        for (int q = 0; q < 8; q++) {
            if (und >> q & 1) {
                oo[q] = exact_logit(zz[q], ((uint32_t)slots[q] << 16) | low16(key, i0 + q));
                exact++;
            }
        }
        out = _mm256_loadu_ps(oo);
    }
    _mm256_storeu_ps(h, out);
    /* σ(z) = g / (1 + e), g = 1 (z >= 0) or e (z < 0) */
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, e, z), _mm256_add_ps(one, e));
    const __m256 x = _mm256_mul_ps(av, _mm256_set1_ps(-dbk));
    const __m256 y = _mm256_mul_ps(sig, _mm256_mul_ps(x, horner8(x, EXPM1, 6)));
    _mm256_storeu_ps(t, _mm256_mul_ps(y, horner8(y, LOG1P, 8)));
    return exact;
}
#endif

/* One AIS step's hidden side in one pass (physamp/models/rbm/ais.py, the fast form): for A (D, nh + 1, R)
   = [c + W v; (b - b_A)·v], z = b_k a (float32), t = log1p(σ(z) expm1(-Δβ a)) = softplus(b_{k-1} a) -
   softplus(b_k a), incr (D, R) = Δβ A[:, nh] - Σ_j t, and h (D, nh, R) drawn from the logits z with the
   words of ps_draw on a (D, nh, R) tensor of z. Needs Δβ |a| <= 1/16. */
int64_t ps_ais_hidden(const float *A, int64_t D, int64_t nh, int64_t R, float bk, float dbk, float *h,
                      float *incr, double *acc, uint64_t *state) {
    if (D <= 0 || nh <= 0 || R <= 0) return 0;
    slot_stream ss = {state, {0, 0, 0, 0}, 0};
    const uint64_t key = sfc_next(state);
    uint16_t slots[BLK];
    float tb[BLK];
    int64_t exact = 0;
    for (int64_t d = 0; d < D; d++) {
        for (int64_t r = 0; r < R; r++) acc[r] = 0.0;
        for (int64_t j = 0; j < nh; j++) {
            const float *a = A + (d * (nh + 1) + j) * R;
            float *hr = h + (d * nh + j) * R;
            const int64_t base = (d * nh + j) * R;
            for (int64_t c0 = 0; c0 < R; c0 += BLK) {
                const int m = (int)(R - c0 < BLK ? R - c0 : BLK);
                take_slots(&ss, slots, m);
                int l = 0;
#if PS_AVX2
                for (; l + 8 <= m; l += 8)
                    exact += ais8(a + c0 + l, slots + l, hr + c0 + l, tb + l, key, base + c0 + l, bk, dbk);
                if (l < m) { /* the tail, padded to eight lanes (the padding's results are dropped) */
                    float ap[8] = {0}, hp[8], tp[8];
                    uint16_t sp[8] = {0};
                    const size_t k = (size_t)(m - l);
                    memcpy(ap, a + c0 + l, k * sizeof(float));
                    memcpy(sp, slots + l, k * sizeof(uint16_t));
                    exact += ais8(ap, sp, hp, tp, key, base + c0 + l, bk, dbk);
                    memcpy(hr + c0 + l, hp, k * sizeof(float));
                    memcpy(tb + l, tp, k * sizeof(float));
                    l = m;
                }
#endif
                for (; l < m; l++) {
                    const float av = a[c0 + l], z = av * bk;
                    const float e = exp_neg_abs1(z);
                    const int dd = dec_logit1_e(z, e, (float)slots[l]);
                    if (dd >= 0) {
                        hr[c0 + l] = (float)dd;
                    } else {
                        const uint32_t K = ((uint32_t)slots[l] << 16) | low16(key, base + c0 + l);
                        hr[c0 + l] = exact_logit(z, K);
                        exact++;
                    }
                    const float sig = (signbit(z) ? e : 1.0f) / (1.0f + e);
                    tb[l] = log1p_small1(sig * expm1_small1(av * -dbk));
                }
                for (l = 0; l < m; l++) acc[c0 + l] += (double)tb[l];
            }
        }
        const float *ad = A + (d * (nh + 1) + nh) * R;
        for (int64_t r = 0; r < R; r++) incr[d * R + r] = (float)((double)(ad[r] * dbk) - acc[r]);
    }
    return exact;
}

/* Bernoulli(1/2) states: bit b of word w is unit 64 w + b (ceil(n / 64) words) */
void ps_half(void *x, int64_t n, uint64_t *state, int is64) {
    float table[256][8]; /* the bits of a byte, as eight floats */
    for (int v = 0; v < 256; v++)
        for (int b = 0; b < 8; b++) table[v][b] = (float)((v >> b) & 1);
    for (int64_t i = 0; i < n; i += 64) {
        const uint64_t w = sfc_next(state);
        const int m = (int)(n - i < 64 ? n - i : 64);
        if (is64) {
            double *d = (double *)x + i;
            for (int b = 0; b < m; b++) d[b] = (double)((w >> b) & 1u);
        } else if (m == 64) {
            float *f = (float *)x + i;
            for (int k = 0; k < 8; k++) memcpy(f + 8 * k, table[(w >> (8 * k)) & 0xFFu], sizeof table[0]);
        } else {
            float *f = (float *)x + i;
            for (int b = 0; b < m; b++) f[b] = (float)((w >> b) & 1u);
        }
    }
}

/* n raw words (the load-time check against numpy's SFC64) */
void ps_words(uint64_t *state, uint64_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = sfc_next(state);
}

/* The largest relative error of the e^{-t} the decisions use (scalar and, where compiled, vector),
   over every step-th float32 t in [lo, hi]. */
double ps_exp_error(float lo, float hi, uint32_t step) {
    double worst = 0.0;
    uint32_t b, bhi;
    memcpy(&b, &lo, 4);
    memcpy(&bhi, &hi, 4);
    if (step == 0) step = 1;
    for (;;) {
        float t;
        memcpy(&t, &b, 4);
        const double ref = exp(-(double)t);
        double err = fabs((double)exp_neg1(t) - ref) / ref;
        if (!(err <= worst)) worst = err; /* a NaN result counts as the worst */
#if PS_AVX2
        float out[8];
        _mm256_storeu_ps(out, exp_neg8(_mm256_set1_ps(t)));
        err = fabs((double)out[0] - ref) / ref;
        if (!(err <= worst)) worst = err;
#endif
        if (bhi - b < step) break;
        b += step;
    }
    return worst;
}

int ps_vector_width(void) { return PS_AVX2 ? 8 : 1; }
"""


def _describe(lib) -> str:
    return "AVX2, 8 lanes" if lib.ps_vector_width() == 8 else "scalar"


_KERNEL = CompiledKernel("bernoulli", _C_SOURCE, lambda path: _load(path), what="Bernoulli draw")


def _load(path: Path):
    lib = ctypes.CDLL(str(path))
    i64, vp = ctypes.c_int64, ctypes.c_void_p
    lib.ps_draw.restype, lib.ps_draw.argtypes = i64, [vp, i64, vp, ctypes.c_int, ctypes.c_int]
    lib.ps_threshold.restype, lib.ps_threshold.argtypes = i64, [vp, i64, vp, ctypes.c_int, ctypes.c_int]
    lib.ps_words.restype, lib.ps_words.argtypes = None, [vp, vp, i64]
    lib.ps_exp_error.restype = ctypes.c_double
    lib.ps_exp_error.argtypes = [ctypes.c_float, ctypes.c_float, ctypes.c_uint32]
    lib.ps_vector_width.restype, lib.ps_vector_width.argtypes = ctypes.c_int, []
    lib.ps_csr_draw.restype = i64
    lib.ps_half.restype, lib.ps_half.argtypes = None, [vp, i64, vp, ctypes.c_int]
    lib.ps_ais_hidden.restype = i64
    f32 = ctypes.c_float
    lib.ps_ais_hidden.argtypes = [vp, i64, i64, i64, f32, f32, vp, vp, vp, vp]
    lib.ps_csr_draw.argtypes = [vp, vp, vp, vp, vp, vp, ctypes.c_int, i64, i64, vp]
    # the kernel steps numpy's SFC64 state in place: check the step and the state's layout
    ref, ours = np.random.SFC64(20240531), np.random.SFC64(20240531)
    expected = ref.random_raw(7)
    got = np.empty(7, dtype=np.uint64)
    lib.ps_words(ours.ctypes.state_address, got.ctypes.data, 7)
    if not (np.array_equal(got, expected) and ref.random_raw(1)[0] == ours.random_raw(1)[0]):
        raise RuntimeError("its SFC64 words differ from numpy's")
    return lib


def _compiled():
    """The loaded kernel, or None (and the reason in ``compiled_status()``)."""
    return _KERNEL.lib(_describe)


def compiled_status() -> str:
    """Whether the CPU draws run in the compiled kernel: ``"compiled (...) at PATH"`` or why not."""
    _compiled()
    return _KERNEL.reason


# ---------------------------------------------------------------------------------------------
# the draw
# ---------------------------------------------------------------------------------------------
class Int32Bernoulli:
    """Bernoulli draws from 32-bit thresholds on ``device`` (see the module docstring).

    Args:
        device: where the draws are made.
        seed: seed of the word source (numpy SFC64 on the CPU, a torch generator
            elsewhere); None seeds from the operating system.
        generator: on CUDA / MPS, an existing torch generator on ``device`` to draw
            the words from (its state is then saved by its owner).
        compiled: use the compiled CPU kernel: None (default) where it is available,
            False never (the torch path: the same draws), True or an error.
    """

    np_rng: np.random.Generator | None  # the CPU's word source
    gen: torch.Generator | None  # elsewhere

    def __init__(
        self,
        device: torch.device | str = "cpu",
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        compiled: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        if generator is not None:
            if self.device.type == "cpu":
                raise ValueError("on the CPU the words come from numpy's SFC64: pass a seed, not a generator")
            self.np_rng, self.gen = None, generator
        elif self.device.type == "cpu":
            self.np_rng = np.random.Generator(np.random.SFC64(seed))
            self.gen = None
        else:
            self.np_rng = None
            self.gen = torch.Generator(device=self.device)
            if seed is None:
                self.gen.seed()
            else:
                self.gen.manual_seed(int(seed))
        if compiled not in (None, True, False):
            raise ValueError(f"compiled must be None, True or False, got {compiled!r}")
        self._lib = None
        if compiled is not False and self.np_rng is not None:
            self._lib = _compiled()
        if compiled is True and self._lib is None:
            why = _KERNEL.reason if self.np_rng is not None else f"the kernel runs on the CPU, not {device}"
            raise RuntimeError(f"compiled=True, but the compiled Bernoulli draw is not available: {why}")
        self._words: torch.Tensor | None = None  # buffer for torch-generated words
        self._acc: np.ndarray | None = None  # the AIS kernel's per-run sums
        self._tbufs: dict = {}  # the torch path's work buffers

    def __getstate__(self) -> dict:
        """Picklable and deep-copyable: the ctypes library and the work buffers are dropped and
        found again (:func:`_compiled`) on restore; the random state travels as it is."""
        state = dict(self.__dict__)
        state["_lib"] = self._lib is not None
        state["_acc"], state["_tbufs"], state["_words"] = None, {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        had_lib = state.pop("_lib")
        self.__dict__.update(state)
        self._lib = _compiled() if had_lib else None

    @property
    def compiled(self) -> bool:
        """True when this source's CPU draws run in the compiled kernel."""
        return self._lib is not None

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

    # --- draws ------------------------------------------------------------------------
    def sample_from_probs_(self, p: torch.Tensor) -> torch.Tensor:
        """In place: ``p`` holds probabilities and becomes {0, 1} draws (same dtype)."""
        return self._draw_(p, logits=False)

    def sample_from_logits_(self, a: torch.Tensor) -> torch.Tensor:
        """In place: ``a`` holds logits ``z`` and becomes {0, 1} draws with P(1) = σ(z)."""
        return self._draw_(a, logits=True)

    def sparse_product_draw_(
        self, out: torch.Tensor, W: torch.Tensor, bias: torch.Tensor, inp: torch.Tensor
    ) -> torch.Tensor | None:
        """``out`` becomes the draws from the logits ``bias + W @ inp`` in one compiled pass, or None.

        ``W`` is a float32 CSR tensor ``(R, C)``, ``inp`` ``(C, N)``, ``bias`` ``(R, 1)`` or ``(R, N)``,
        ``out`` ``(R, N)``, all contiguous on the CPU. The same words as :meth:`sample_from_logits_`
        on ``torch.addmm(bias, W, inp)``; the product is summed row by row in CSR order, so an
        activation may differ from torch's in its last bit (a unit's draw then differs with
        probability ~1e-7). Returns None, having drawn nothing, where the kernel is not
        available or the arguments do not fit it (the caller then takes the two-step path).
        """
        parts = self.csr_parts(W)
        return None if parts is None else self.csr_draw_(out, parts, bias, inp)

    @staticmethod
    def csr_parts(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, ...]] | None:
        """``(crow, col, values, shape)`` of a float32 CPU CSR tensor in the kernel's layout, or None."""
        if W.layout != torch.sparse_csr or W.device.type != "cpu" or W.dtype != torch.float32:
            return None
        crow, col, val = W.crow_indices(), W.col_indices(), W.values()
        index_ok = all(t.dtype == torch.int64 and t.is_contiguous() for t in (crow, col))
        return (crow, col, val, tuple(W.shape)) if index_ok and val.is_contiguous() else None

    def csr_draw_(self, out: torch.Tensor, parts: tuple, bias: torch.Tensor, inp: torch.Tensor):
        """:meth:`sparse_product_draw_` with ``W`` given by its :meth:`csr_parts` (checked once by a
        caller that reuses them: a Gibbs kernel, every half-sweep)."""
        if self._lib is None:
            return None
        crow, col, val, (R, C) = parts
        if not (
            out.dim() == inp.dim() == bias.dim() == 2
            and out.shape == (R, inp.shape[1])
            and inp.shape[0] == C
            and bias.shape[0] == R
            and bias.shape[1] in (1, out.shape[1])
            and out.dtype == inp.dtype == bias.dtype == torch.float32
            and out.device.type == inp.device.type == bias.device.type == "cpu"
            and out.is_contiguous()
            and inp.is_contiguous()
            and bias.is_contiguous()
        ):
            return None
        assert self.np_rng is not None  # the compiled kernel runs on the CPU
        bg = self.np_rng.bit_generator
        with bg.lock:
            self._lib.ps_csr_draw(
                out.data_ptr(),
                inp.data_ptr(),
                crow.data_ptr(),
                col.data_ptr(),
                val.data_ptr(),
                bias.data_ptr(),
                int(bias.shape[1] != 1),
                R,
                out.shape[1],
                bg.ctypes.state_address,
            )
        return out

    def ais_hidden_(
        self, A: torch.Tensor, beta: float, dbeta: float, h: torch.Tensor, incr: torch.Tensor
    ) -> bool:
        """One AIS step's hidden side in one compiled pass, or False (nothing done) without the kernel.

        ``A (D, nh + 1, R)`` holds ``[c + W v; (b - b_A)·v]`` (see :mod:`physamp.models.rbm.ais`).
        ``h (D, nh, R)`` becomes the draws from the logits ``z = β a`` -- the words and draws of
        :meth:`sample_from_logits_` on a tensor of ``z`` -- and ``incr (D, R)`` the weight factor
        ``Δβ (b - b_A)·v - Σ_j [softplus(β_{k-1} a_j) - softplus(β a_j)]``, by the fast form
        ``log1p(σ(z) expm1(-Δβ a))`` with series for expm1 and log1p: the caller ensures
        ``Δβ |a| <= 1/16``. σ comes from the kernel's exp (relative error 1.2e-7, as float32's
        own sigmoid), the sum over hidden units is in double.
        """
        if self._lib is None or not all(
            t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in (A, h, incr)
        ):
            return False
        D, nh1, R = A.shape
        if nh1 < 2 or h.shape != (D, nh1 - 1, R) or incr.shape != (D, R):
            return False  # (no hidden units: nothing for the kernel to fuse)
        assert self.np_rng is not None  # the compiled kernel runs on the CPU
        bg = self.np_rng.bit_generator
        with bg.lock:  # the sums buffer too: another thread's call may be writing into the old one
            if self._acc is None or self._acc.size < R:
                self._acc = np.empty(R, dtype=np.float64)
            self._lib.ps_ais_hidden(
                A.data_ptr(),
                D,
                nh1 - 1,
                R,
                beta,
                dbeta,
                h.data_ptr(),
                incr.data_ptr(),
                self._acc.ctypes.data,
                bg.ctypes.state_address,
            )
        return True

    def threshold_(self, x: torch.Tensor, K: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        """In place: ``x`` becomes ``[(K + 1/2)·2^-32 < p]`` for given thresholds ``K`` (integers in
        ``[0, 2^32)``, as many as ``x`` has elements), ``p = σ(x)`` with ``logits``.

        The rule of the draws on the same code path (the compiled kernel's or the torch path's
        shortcuts, then the exact rule): :meth:`sample_from_probs_` and :meth:`sample_from_logits_`
        feed it random thresholds. Exposed so that a test can feed it chosen thresholds and count
        exactly how many of the ``2^32`` give a 1.
        """
        self._check(x)
        if K.numel() != x.numel():
            raise ValueError(f"K must have one threshold per element: {K.numel()} for {x.numel()}")
        if x.numel() == 0:
            return x
        Kc = K.detach().reshape(-1).to("cpu", torch.int64)
        if bool((Kc < 0).any()) or bool((Kc >= 2**32).any()):
            raise ValueError("thresholds K must lie in [0, 2^32)")
        if self._lib is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            xc = x if x.is_contiguous() else x.contiguous()
            K32 = Kc.numpy().astype(np.uint32)
            self._lib.ps_threshold(
                xc.data_ptr(), xc.numel(), K32.ctypes.data, int(xc.dtype == torch.float64), int(logits)
            )
            return x if xc is x else x.copy_(xc)
        return self._draw_torch_(x, logits, Kc)

    @staticmethod
    def _check(x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"probabilities and logits must be a float tensor, got {got}")

    def _draw_(self, x: torch.Tensor, logits: bool) -> torch.Tensor:
        self._check(x)
        n = x.numel()
        if n == 0:
            return x
        if self._lib is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            xc = x if x.is_contiguous() else x.contiguous()
            assert self.np_rng is not None  # the compiled kernel runs on the CPU
            bg = self.np_rng.bit_generator
            with bg.lock:
                self._lib.ps_draw(
                    xc.data_ptr(), n, bg.ctypes.state_address, int(xc.dtype == torch.float64), int(logits)
                )
            return x if xc is x else x.copy_(xc)
        return self._draw_torch_(x, logits)

    def _buffers(self, n: int, wd: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Two float work buffers of ``n`` elements, kept across calls (fresh large tensors cost page
        faults on every call)."""
        key = (wd, str(device))
        held = self._tbufs.get(key)
        if held is None or held[0].numel() < n:
            held = (torch.empty(n, dtype=wd, device=device), torch.empty(n, dtype=wd, device=device))
            self._tbufs[key] = held
        return held[0][:n], held[1][:n]

    def _draw_torch_(self, x: torch.Tensor, logits: bool, K: torch.Tensor | None = None) -> torch.Tensor:
        """The rule in torch operations (any device and float dtype); ``K``: given thresholds.

        In-place float operations only (torch's comparisons into bool tensors and ``nonzero`` over
        a whole tensor cost several times more): ``e`` ends as the slot's decision (1/0), ``g`` as
        the undecided flags, found chunk by chunk.
        """
        n = x.numel()
        wd = torch.float64 if x.dtype == torch.float64 else torch.float32
        e, g = self._buffers(n, wd, x.device)
        if K is None:
            raw = self._raw_words(1 + (n + 3) // 4)
            key = int(raw[0]) & _MASK64
            slot16 = raw[1:].view(torch.int16)[:n]
            _slots_into(e, slot16)
        else:
            key, K = 0, K.to(x.device)
            e.copy_(K >> 16)
        xv = x.detach().reshape(-1)
        if xv.dtype != wd:
            xv = xv.to(wd)
        if logits:
            # e = slot - 2^16 σ(a), within 0.02 of its value: the slot decides 1 at or below -(1 + m)
            # and 0 at or above m (m: the margin); undecided: |e + 1/2| < 1/2 + m
            torch.sigmoid(xv, out=g)
            e.sub_(g, alpha=65536.0)
            torch.add(e, 0.5, out=g).abs_().lt_(0.5 + _TORCH_MARGIN)
            e.le_(-(1.0 + _TORCH_MARGIN))
        else:
            # e = slot - 2^16 p, exact (2^16 p is exact, and the two are within a factor 2 of each
            # other wherever e is near 0 or -1): 1 for e <= -1, 0 for e >= 0, undecided between,
            # i.e. where e (e + 1) < 0
            torch.mul(xv, 65536.0, out=g)
            e.sub_(g)
            torch.add(e, 1.0, out=g).mul_(e).lt_(0.0)
            e.le_(-1.0)
        idx = _flagged(g)
        if idx.numel():
            vals = xv[idx].to("cpu", torch.float64).tolist()
            if K is None:
                hi = (slot16[idx].to("cpu", torch.int64) & 0xFFFF).numpy() << 16
                lo = _low16(key, idx.cpu().numpy())
            else:
                Ki = K[idx].cpu().numpy()
                hi, lo = (Ki >> 16) << 16, Ki & 0xFFFF
            thresholds = (hi | lo).tolist()
            fix = [exact_draw(v, int(k), logits=logits) for v, k in zip(vals, thresholds, strict=True)]
            e[idx] = torch.tensor(fix, dtype=wd, device=e.device)
        x.copy_(e.view(x.shape))
        return x

    def random_half(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bernoulli(1/2) states, one bit of the random words each: unit ``64 w + b`` is bit ``b``
        of word ``w`` (``ceil(n / 64)`` words; the compiled kernel and torch give the same states)."""
        n = math.prod(shape)
        if self._lib is not None and dtype in (torch.float32, torch.float64):
            x = torch.empty(shape, dtype=dtype)
            assert self.np_rng is not None  # the compiled kernel runs on the CPU
            bg = self.np_rng.bit_generator
            with bg.lock:
                self._lib.ps_half(x.data_ptr(), n, bg.ctypes.state_address, int(dtype == torch.float64))
            return x
        words = self._raw_words((n + 63) // 64)
        bits = (words[:, None] >> torch.arange(64, device=words.device)) & 1  # bit b, arithmetic shift or not
        return bits.reshape(-1)[:n].view(shape).to(self.device, dtype)

    # --- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.np_rng is not None:
            return {"sfc64_state": _sfc64_state_to_tensor(self.np_rng.bit_generator.state)}
        assert self.gen is not None  # off the CPU: a torch generator
        return {"torch_state": self.gen.get_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if self.np_rng is not None:
            if "sfc64_state" not in sd:
                raise ValueError("this Bernoulli source runs on the CPU (SFC64); the state is from a GPU one")
            self.np_rng.bit_generator.state = _sfc64_state_from_tensor(sd["sfc64_state"])
        else:
            if "torch_state" not in sd:
                raise ValueError(f"this Bernoulli source runs on {self.device}; the state is from a CPU one")
            assert self.gen is not None  # off the CPU: a torch generator
            self.gen.set_state(sd["torch_state"])


def _sfc64_state_to_tensor(state: Mapping[str, Any]) -> torch.Tensor:
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


#: The class's former name (it drew 16-bit thresholds); kept so that old imports work.
Int16Bernoulli = Int32Bernoulli
