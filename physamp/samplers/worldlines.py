"""Exact sampling of periodic 1-D Ising chains: the worldline update of path-integral samplers.

The Suzuki–Trotter form of the transverse-field model (DESIGN.md) gives every unit a *worldline*
``x⁰ … x^{M−1}`` in {0, 1} around imaginary time: ``M`` slices at ``ε = β/M``, neighbouring slices
of the same unit coupled by ``J⊥ = −½ ln tanh(εΓ)`` (ferromagnetic), and slice ``M−1`` next to
slice ``0``. Conditioned on everything else (for an RBM: on all worldlines of the other layer),
the worldlines of one layer are independent periodic chains with weight

    w(x) = Π_k exp(a_k x^k) · exp(J⊥ (2x^k − 1)(2x^{k+1} − 1)),        x^M ≡ x⁰,

where ``a_k`` is slice ``k``'s log-odds from the rest of the model (``ε`` times the unit's field).
A periodic chain is a tree after one cut, so it is sampled exactly, not by local moves:

1. the marginal of ``x⁰`` around the ring, from two forward passes (``x⁰`` clamped to 0 and to 1,
   run together) of unnormalised log-messages ``ℓ_k(x)``:
   ``ℓ_k(0) = logaddexp(ℓ_{k−1}(0), ℓ_{k−1}(1) − 2J⊥)``,
   ``ℓ_k(1) = a_k + logaddexp(ℓ_{k−1}(0) − 2J⊥, ℓ_{k−1}(1))``
   (the common factor ``e^{J⊥}`` of every step dropped), closed by the bond from ``x^{M−1}`` back
   to ``x⁰``;
2. ``x⁰`` drawn from that marginal, then ``x^{M−1}, …, x¹`` backwards, each from its filtered
   message of the pass clamped at the drawn ``x⁰`` and the bond to the slice after it (forward
   filtering, backward sampling).

The draw is exact for any ``J⊥``: the update does not slow down as ``M`` grows, unlike single-spin
moves on worldlines, whose flips of a whole worldline become rare as ``J⊥`` grows with ``M``.
Everything is vectorised over the trailing (batch) dimensions; the loop runs over the ``M`` slices.
``J⊥ = ∞`` (Γ = 0) ties all slices together: one classical draw with log-odds ``Σ_k a_k``.

Paths
-----
On the CPU the uniforms come from numpy SFC64 words (a generator seeded from the caller's torch
generator on every call, so the torch generator's state is the whole state): per block of one
unit's ``M × N`` slices and chains, the 32-bit halves of its words in order, their top 24 bits for
float32 logits and all 32 for float64. A small C kernel (``physamp.samplers._kernels``:
compiled on first use; ``PHYSAMP_COMPILED_DRAW=0`` turns it off) runs both passes over each
block, in the logits' precision, with each message kept as the pair ``(α(0), α(1))`` normalised
(sums of positive terms only, so float32 stays accurate however small ``tanh(εΓ)`` is), the
ring's log-ratio summed in float64, and eight (float32) or four (float64) chains at a time
through glibc's vector ``exp``/``log`` where it has them. Without the kernel the torch operations
above compute the same draws from the same uniforms in the log domain; the two paths could differ
only where a uniform falls within rounding of a threshold (tested: identical on 10⁵ draws). Other
devices draw ``torch.rand`` uniforms. Measured on one thread of the shared 2-core development
machine (under load): about 4.5 ns per unit, slice and chain in the kernel, against 9.5 ns for a
first version that kept the generator's state in memory and 50 ns in torch operations.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import numbers

import numpy as np
import torch

from physamp.samplers._kernels import CompiledKernel

__all__ = ["trotter_coupling", "ring_log_odds", "sample_periodic_chains"]


def trotter_coupling(gamma: float, beta: float, trotter: int) -> float:
    """``J⊥ = −½ ln tanh(εΓ)`` with ``ε = β/M``: the coupling of neighbouring Trotter slices.

    ``inf`` at Γ = 0 (slices tied: the classical model) and ``0`` once ``tanh(εΓ)`` rounds to 1
    (slices independent). Arguments are assumed checked (Γ >= 0, β > 0, M >= 1).
    """
    x = float(beta) / int(trotter) * float(gamma)
    if x == 0.0:
        return math.inf
    t = math.tanh(x)
    return 0.0 if t >= 1.0 else -0.5 * math.log(t)


def _check(logits: torch.Tensor, coupling: float) -> float:
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or logits.shape[0] < 1:
        raise ValueError("logits must be a tensor (M, ...) with at least one slice")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    bad = isinstance(coupling, bool) or not isinstance(coupling, numbers.Real)
    if bad or math.isnan(coupling) or coupling < 0:
        raise ValueError(f"the slice coupling J⊥ must be a number >= 0 (inf for Γ = 0), got {coupling!r}")
    return float(coupling)


def _forward(logits: torch.Tensor, two_k: float) -> torch.Tensor:
    """Log-messages ``ℓ (M, 2 clamps, 2 states, ...)`` of the two passes, ``x⁰`` clamped to 0 and 1."""
    M = logits.shape[0]
    msg = logits.new_empty((M, 2, 2) + tuple(logits.shape[1:]))
    # slice 0, clamped: ℓ_0 = (0, −inf) for x⁰ = 0 and (−inf, a_0) for x⁰ = 1; the first step is
    # written out so no −inf enters the arithmetic
    if M == 1:
        msg[0, 0, 0] = 0.0
        msg[0, 0, 1] = -math.inf
        msg[0, 1, 0] = -math.inf
        msg[0, 1, 1] = logits[0]
        return msg
    a0, a1 = logits[0], logits[1]
    msg[0, 0, 0], msg[0, 0, 1] = 0.0, -math.inf
    msg[0, 1, 0], msg[0, 1, 1] = -math.inf, a0
    msg[1, 0, 0] = 0.0  # from x⁰ = 0: stay 0 (weight 1), or flip (−2J⊥) then a_1
    torch.add(a1, -two_k, out=msg[1, 0, 1])
    torch.add(a0, -two_k, out=msg[1, 1, 0])  # from x⁰ = 1
    torch.add(a0, a1, out=msg[1, 1, 1])
    scratch = torch.empty_like(msg[0])
    for k in range(2, M):
        prev, cur = msg[k - 1], msg[k]
        # cur(0) = logaddexp(prev(0), prev(1) − 2J⊥);  cur(1) = a_k + logaddexp(prev(0) − 2J⊥, prev(1))
        torch.sub(prev, two_k, out=scratch)
        torch.logaddexp(prev[:, 0], scratch[:, 1], out=cur[:, 0])
        torch.logaddexp(scratch[:, 0], prev[:, 1], out=cur[:, 1])
        cur[:, 1] += logits[k]
    return msg


def _ring_odds_from(msg: torch.Tensor, two_k: float) -> torch.Tensor:
    """Log-odds of ``x⁰ = 1`` around the ring, from the last forward messages and the closing bond."""
    last = msg[-1]
    if msg.shape[0] == 1:  # a ring of one slice: the bond to itself is a constant
        return last[1, 1] - last[0, 0]
    z1 = torch.logaddexp(last[1, 0] - two_k, last[1, 1])  # x^{M−1} → x⁰ = 1
    z0 = torch.logaddexp(last[0, 0], last[0, 1] - two_k)  # x^{M−1} → x⁰ = 0
    return z1 - z0


def ring_log_odds(logits: torch.Tensor, coupling: float) -> torch.Tensor:
    """Exact log-odds ``log p(x⁰ = 1) − log p(x⁰ = 0)`` of slice 0 of periodic chains ``(M, ...)``.

    By the symmetry of the ring, slice ``k``'s marginal is this function of the logits rolled by
    ``k``. ``coupling = inf`` gives ``Σ_k a_k`` (slices tied).
    """
    coupling = _check(logits, coupling)
    if math.isinf(coupling):
        return logits.sum(0)
    return _ring_odds_from(_forward(logits, 2.0 * coupling), 2.0 * coupling)


_C_SOURCE = r"""
/* physamp's exact periodic-chain draw (forward filtering with x0 clamped to 0 and 1, backward
   sampling); the algorithm is described in physamp/samplers/worldlines.py. */
#include <math.h>
#include <stdint.h>
#ifdef PW_MVEC /* glibc's libmvec: vector exp and log, so the chain loops vectorise */
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double log(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float logf(float);
#endif

static inline uint64_t sfc_next(uint64_t *s) { /* numpy's SFC64 step on numpy's state words */
    const uint64_t tmp = s[0] + s[1] + s[3]++;
    s[0] = s[1] ^ (s[1] >> 11);
    s[1] = s[2] + (s[2] << 3);
    s[2] = ((s[2] << 24) | (s[2] >> 40)) + tmp;
    return tmp;
}

/* The messages are kept as the pair (P0, P1) = (α(0), α(1)) / (α(0) + α(1)), never as p and 1 − p:
   every update adds positive terms only, so REAL = float keeps full relative precision even when
   tanh(εΓ) is far below float's epsilon. The ring's log-ratio is summed in double. */
/* uniforms in (0, 1) from 32-bit halves: 24 bits for float, all 32 for double */
#define UNIFORM_F32(h) (((float)((h) >> 8) + 0.5f) * (1.0f / 16777216.0f))
#define UNIFORM_F64(h) (((double)(h) + 0.5) * (1.0 / 4294967296.0))

#define FFBS(NAME, REAL, EXP, LOG, UNIFORM)                                                        \
void NAME(const REAL *a, int64_t sMa, int64_t sBa, REAL *x, int64_t sMx, int64_t sBx, int64_t M,   \
          int64_t B, int64_t N, double td, uint64_t *state, REAL *work, double *D,                 \
          uint64_t *words) {                                                                       \
    /* work: 4 M N messages + M N uniforms + N; D: N; words: (M N + 1) / 2 */                      \
    const int64_t MN = M * N;                                                                      \
    REAL *P00 = work, *P01 = work + MN, *P10 = work + 2 * MN, *P11 = work + 3 * MN;                \
    REAL *U = work + 4 * MN, *xn = U + MN;                                                         \
    const REAL t = (REAL)td;                                                                       \
    for (int64_t b = 0; b < B; b++) {                                                              \
        { /* the state in registers: words may alias it as far as the compiler knows */             \
            uint64_t st[4] = {state[0], state[1], state[2], state[3]};                             \
            for (int64_t i = 0; i < (MN + 1) / 2; i++) words[i] = sfc_next(st);                    \
            state[0] = st[0]; state[1] = st[1]; state[2] = st[2]; state[3] = st[3];                \
        }                                                                                          \
        const uint32_t *halves = (const uint32_t *)words; /* low half first, as numpy's view */    \
        _Pragma("omp simd")                                                                        \
        for (int64_t i = 0; i < MN; i++) U[i] = UNIFORM(halves[i]);                                \
        for (int64_t j = 0; j < N; j++) {                                                          \
            P00[j] = 1; P01[j] = 0; P10[j] = 0; P11[j] = 1; D[j] = 0.0;                            \
        }                                                                                          \
        for (int64_t k = 1; k < M; k++) {                                                          \
            const REAL *ak = a + k * sMa + b * sBa;                                                \
            const int64_t o = (k - 1) * N;                                                         \
            _Pragma("omp simd")                                                                    \
            for (int64_t j = 0; j < N; j++) {                                                      \
                const REAL av = ak[j], e = EXP(-fabs(av));                                         \
                const REAL f0 = av >= 0 ? e : 1, f1 = av >= 0 ? 1 : e; /* φ / max φ */              \
                /* clamp 0 */                                                                      \
                REAL q0 = P00[o + j], q1 = P01[o + j];                                             \
                REAL A0 = (q0 + t * q1) * f0, A1 = (t * q0 + q1) * f1;                             \
                const REAL s0 = A0 + A1, r0 = 1 / s0;                                              \
                P00[o + N + j] = A0 * r0; P01[o + N + j] = A1 * r0;                                \
                /* clamp 1 */                                                                      \
                q0 = P10[o + j]; q1 = P11[o + j];                                                  \
                A0 = (q0 + t * q1) * f0; A1 = (t * q0 + q1) * f1;                                  \
                const REAL s1 = A0 + A1, r1 = 1 / s1;                                              \
                P10[o + N + j] = A0 * r1; P11[o + N + j] = A1 * r1;                                \
                D[j] += (double)LOG(s1 * r0);                                                      \
            }                                                                                      \
        }                                                                                          \
        const REAL *a0 = a + b * sBa;                                                              \
        const int64_t l = (M - 1) * N;                                                             \
        REAL *x0 = x + b * sBx;                                                                    \
        _Pragma("omp simd")                                                                        \
        for (int64_t j = 0; j < N; j++) {                                                          \
            /* the closing bond x^{M-1} -> x0: weight 1 if equal, t if not */                      \
            const double c1 = (double)P11[l + j] + td * (double)P10[l + j];                        \
            const double c0 = (double)P00[l + j] + td * (double)P01[l + j];                        \
            double lam = (double)a0[j] + D[j] + log(c1 / c0);                                      \
            lam = lam > 700.0 ? 700.0 : (lam < -700.0 ? -700.0 : lam);                             \
            const REAL v = (double)U[j] * (1.0 + exp(-lam)) < 1.0 ? 1 : 0;                         \
            xn[j] = v;                                                                             \
            x0[j] = v;                                                                             \
        }                                                                                          \
        for (int64_t k = M - 1; k >= 1; k--) {                                                     \
            const int64_t o = k * N;                                                               \
            const REAL *uk = U + o;                                                                \
            REAL *xk = x + k * sMx + b * sBx;                                                      \
            _Pragma("omp simd")                                                                    \
            for (int64_t j = 0; j < N; j++) {                                                      \
                const int c = x0[j] > 0.5f;                                                        \
                const REAL q0 = c ? P10[o + j] : P00[o + j], q1 = c ? P11[o + j] : P01[o + j];     \
                const int up = xn[j] > 0.5f;                                                       \
                const REAL num = up ? q1 : t * q1, den = num + (up ? t * q0 : q0);                 \
                const REAL v = uk[j] * den < num ? 1 : 0;                                          \
                xn[j] = v;                                                                         \
                xk[j] = v;                                                                         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

FFBS(pw_ffbs_f32, float, expf, logf, UNIFORM_F32)
FFBS(pw_ffbs_f64, double, exp, log, UNIFORM_F64)

int pw_mvec(void) {
#ifdef PW_MVEC
    return 1;
#else
    return 0;
#endif
}
"""


def _load(path):
    lib = ctypes.CDLL(str(path))
    i64, vp = ctypes.c_int64, ctypes.c_void_p
    for fn in (lib.pw_ffbs_f32, lib.pw_ffbs_f64):
        fn.restype = None
        fn.argtypes = [vp, i64, i64, vp, i64, i64, i64, i64, i64, ctypes.c_double, vp, vp, vp, vp]
    lib.pw_mvec.restype, lib.pw_mvec.argtypes = ctypes.c_int, []
    # check the kernel against the torch path on a small problem before trusting it
    g = torch.Generator().manual_seed(0)
    for logits, coupling in itertools.product(
        (torch.randn(5, 3, 7, generator=g, dtype=dt) * 2 for dt in (torch.float32, torch.float64)), (0.0, 0.8)
    ):
        want = _torch_draw(logits, coupling, _uniforms(np.random.SFC64(11), 5, 3, 7, logits.dtype))
        got = torch.empty_like(logits)
        _kernel_draw(lib, logits, coupling, np.random.SFC64(11), got)
        if not torch.equal(got, want):
            raise RuntimeError("its draws differ from the torch path's")
    return lib


_KERNEL = CompiledKernel(
    "worldlines",
    _C_SOURCE,
    _load,
    flags=("-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"),
    variants=(("-march=native", "-DPW_MVEC"), ("-march=native",), ()),
    what="periodic-chain draw",
)


def compiled_status() -> str:
    """Whether the CPU draws run in the compiled kernel: ``"compiled (...) at PATH"`` or why not."""
    _KERNEL.lib(_describe)
    return _KERNEL.reason


def _describe(lib) -> str:
    return "vector exp/log" if lib.pw_mvec() else "scalar exp/log"


def _as_3d(t: torch.Tensor) -> torch.Tensor | None:
    """``t (M, ...)`` as a ``(M, B, N)`` view with unit stride along N, or None if it has none."""
    if t.dim() == 1:
        t = t[:, None, None]
    elif t.dim() == 2:
        t = t[:, None, :]
    elif t.dim() > 3:
        try:
            t = t.view(t.shape[0], -1, t.shape[-1])
        except RuntimeError:
            return None
    return t if t.stride(2) == 1 or t.shape[2] == 1 else None


def _uniforms(bitgen: np.random.SFC64, M: int, B: int, N: int, dtype: torch.dtype) -> torch.Tensor:
    """The kernel's uniforms ``(M, B, N)`` in float64: per unit block, ``M·N`` 32-bit halves of
    SFC64 words, their top 24 bits for a float32 draw and all 32 for a float64 one."""
    per = (M * N + 1) // 2
    words = bitgen.random_raw(B * per).reshape(B, per)
    halves = words.view(np.uint32).reshape(B, 2 * per)[:, : M * N]
    if dtype == torch.float32:
        u = ((halves >> np.uint32(8)).astype(np.float64) + 0.5) / 16777216.0
    else:
        u = (halves.astype(np.float64) + 0.5) / 4294967296.0
    return torch.from_numpy(u).view(B, M, N).permute(1, 0, 2)


def _kernel_draw(lib, logits3: torch.Tensor, coupling: float, bitgen, out3: torch.Tensor) -> None:
    M, B, N = logits3.shape
    work = torch.empty(5 * M * N + N, dtype=logits3.dtype)
    ratio = torch.empty(N, dtype=torch.float64)
    words = torch.empty((M * N + 1) // 2, dtype=torch.int64)
    fn = lib.pw_ffbs_f32 if logits3.dtype == torch.float32 else lib.pw_ffbs_f64
    t = math.exp(-2.0 * coupling)
    fn(
        logits3.data_ptr(), logits3.stride(0), logits3.stride(1),
        out3.data_ptr(), out3.stride(0), out3.stride(1),
        M, B, N, t, bitgen.ctypes.state_address, work.data_ptr(), ratio.data_ptr(), words.data_ptr(),
    )  # fmt: skip


def _logistic(u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Standard logistic draws ``log u − log(1 − u)`` from uniforms ``u`` in (0, 1), in ``dtype``."""
    return (u.log() - torch.log1p(-u)).to(dtype)


def _torch_draw(logits: torch.Tensor, coupling: float, u: torch.Tensor) -> torch.Tensor:
    """The torch operations' draw from uniforms ``u`` (float64, logits' shape)."""
    return sample_periodic_chains(logits, coupling, noise=_logistic(u.to(torch.float64), logits.dtype))


def sample_periodic_chains(
    logits: torch.Tensor,
    coupling: float,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact draws of periodic Ising chains: ``{0, 1}`` states ``(M, ...)`` with weight ``w(x)`` above.

    Args:
        logits: ``a (M, ...)``, each slice's log-odds from the rest of the model; the trailing
            dimensions are independent chains (units × Markov chains).
        coupling: ``J⊥ >= 0`` between neighbouring slices (slice ``M−1`` next to slice 0);
            ``inf`` ties the slices (Γ = 0).
        generator: the torch generator that seeds the call's uniforms (``M`` a chain: ``x⁰``, then
            ``x^{M−1} … x¹``; see Paths above); None uses torch's default generator.
        noise: instead of a generator, the standard logistic draws ``log u − log(1 − u)`` to use,
            same shape as ``logits`` (slice 0's for ``x⁰``, slice ``k``'s for ``x^k``).
        out: optional output tensor of the logits' shape (any dtype).

    Computed in the logits' dtype (float32 is accurate to ~1e-5 in the log-odds for models whose
    summed fields ``Σ_k |a_k|`` stay below ~100; pass float64 logits otherwise).
    """
    coupling = _check(logits, coupling)
    M = logits.shape[0]
    if noise is None and logits.device.type != "cpu":  # other devices: torch's own uniforms
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
        noise = _logistic(u, logits.dtype)
    elif noise is None:
        seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
        bitgen = np.random.SFC64(seed)
        if out is None:
            out = torch.empty(logits.shape, dtype=logits.dtype)
        a3, o3 = _as_3d(logits), _as_3d(out)
        lib = _KERNEL.lib(_describe) if not math.isinf(coupling) else None
        if lib is not None and a3 is not None and o3 is not None and out.dtype == logits.dtype:
            if logits.dtype in (torch.float32, torch.float64):
                _kernel_draw(lib, a3, coupling, bitgen, o3)
                return out
        B = int(np.prod(logits.shape[1:-1])) if logits.dim() > 2 else 1
        N = logits.shape[-1] if logits.dim() > 1 else 1
        noise = _logistic(_uniforms(bitgen, M, B, N, logits.dtype).reshape(logits.shape), logits.dtype)
    elif noise.shape != logits.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected the logits' {tuple(logits.shape)}")
    if out is None:
        out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    if math.isinf(coupling):  # tied slices: one classical draw
        x0 = noise[0] < logits.sum(0)
        out.copy_(x0.expand_as(logits))
        return out
    two_k = 2.0 * coupling
    msg = _forward(logits, two_k)
    x_next = noise[0] < _ring_odds_from(msg, two_k)  # x⁰
    out[0] = x_next
    x0 = x_next
    if M > 1:
        # filtered log-odds of x^k given x⁰ and slices ≤ k, for both clamps: (M, 2, ...)
        filtered = msg[:, :, 1] - msg[:, :, 0]
        chosen = torch.where(x0, filtered[:, 1], filtered[:, 0])  # the pass clamped at the drawn x⁰
        pull = torch.empty_like(logits[0])
        for k in range(M - 1, 0, -1):
            # the bond to the slice after k (x^{k+1}; x⁰ for k = M−1) adds ±2J⊥ to the log-odds
            torch.mul(x_next.to(logits.dtype), 2.0 * two_k, out=pull)
            pull.add_(chosen[k]).sub_(two_k)
            x_next = noise[k] < pull
            out[k] = x_next
    return out
