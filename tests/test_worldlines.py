"""Exact periodic-chain (worldline) draws, checked against enumeration of every worldline."""

import itertools
import math

import pytest
import torch

from physamp.samplers.worldlines import ring_log_odds, sample_periodic_chains, trotter_coupling


def _exact(a: torch.Tensor, K: float) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2^M worldlines (rows, slice 0 first) and their probabilities under w(x)."""
    M = a.numel()
    states = torch.tensor(list(itertools.product([0, 1], repeat=M)), dtype=torch.float64)
    if math.isinf(K):
        tied = (states == states[:, :1]).all(1)
        logw = torch.where(tied, states @ a, torch.tensor(-math.inf, dtype=torch.float64))
    else:
        s = 2 * states - 1
        logw = states @ a + (K * (s * s.roll(-1, 1)).sum(1) if M > 1 else 0.0)
    return states, torch.softmax(logw, 0)


def _tv_bound(p: torch.Tensor, n: int, seed: int = 0, q: float = 0.99) -> float:
    """The q-quantile of a perfect sampler's TV at n draws (200 seeded multinomial draws)."""
    g = torch.Generator().manual_seed(seed)
    tvs = []
    for _ in range(200):
        counts = torch.bincount(torch.multinomial(p, n, replacement=True, generator=g), minlength=p.numel())
        tvs.append(0.5 * (counts.double() / n - p).abs().sum().item())
    return float(torch.tensor(tvs).quantile(q))


@pytest.mark.parametrize("M", [1, 2, 3, 6])
@pytest.mark.parametrize("K", [0.0, 0.4, 2.5, math.inf])
def test_ring_marginal_is_exact(M, K):
    g = torch.Generator().manual_seed(10 * M + int(min(K, 9) * 10))
    a = torch.randn(M, generator=g, dtype=torch.float64) * 1.5
    states, p = _exact(a, K)
    for k in range(M):  # every slice's marginal: slice 0 of the rolled logits
        want = p[states[:, k] == 1].sum()
        got = torch.sigmoid(ring_log_odds(a.roll(-k)[:, None], K)[0])
        assert abs(float(got) - float(want)) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("M,K", [(2, 0.3), (5, 1.2), (5, 1.8), (4, math.inf)])
def test_draws_follow_the_chain_distribution(M, K, dtype):
    n = 40_000
    a = torch.tensor([0.9, -1.4, 0.3, 2.0, -0.5][:M], dtype=torch.float64)
    states, p = _exact(a, K)
    x = sample_periodic_chains(
        a[:, None].expand(M, n).to(dtype).contiguous(), K, generator=torch.Generator().manual_seed(3)
    )
    assert x.dtype == dtype and set(x.unique().tolist()) <= {0.0, 1.0}
    idx = (x.t().double() * (2 ** torch.arange(M - 1, -1, -1, dtype=torch.float64))).sum(1).long()
    emp = torch.bincount(idx, minlength=2**M).double() / n
    tv = 0.5 * (emp - p).abs().sum().item()
    bound = _tv_bound(p, n)
    assert tv < bound, (tv, bound)
    if not math.isinf(K):  # the same bound catches a coupling 30 % off
        _, p_wrong = _exact(a, 1.3 * K)
        assert 0.5 * (emp - p_wrong).abs().sum().item() > bound


def test_noise_reproduces_and_batches_are_independent():
    a = torch.randn(6, 50, 7, dtype=torch.float64)
    noise = torch.logit(torch.rand(6, 50, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    x1 = sample_periodic_chains(a, 0.7, noise=noise)
    x2 = sample_periodic_chains(a, 0.7, noise=noise)
    assert torch.equal(x1, x2)
    # one column drawn alone gives the same worldline: columns do not interact
    alone = sample_periodic_chains(a[:, 3:4, 2:3].contiguous(), 0.7, noise=noise[:, 3:4, 2:3].contiguous())
    assert torch.equal(alone, x1[:, 3:4, 2:3])


def test_trotter_coupling_limits():
    assert trotter_coupling(0.0, 1.0, 8) == math.inf
    assert trotter_coupling(1e6, 1.0, 2) == 0.0
    eps_gamma = 0.5 * 1.3 / 4
    assert trotter_coupling(1.3, 0.5, 4) == pytest.approx(-0.5 * math.log(math.tanh(eps_gamma)), rel=1e-15)


def test_bad_input():
    with pytest.raises(ValueError, match="J⊥"):
        sample_periodic_chains(torch.zeros(3, 2), -1.0)
    with pytest.raises(ValueError, match="J⊥"):
        ring_log_odds(torch.zeros(3, 2), float("nan"))
    with pytest.raises(ValueError, match="noise has shape"):
        sample_periodic_chains(torch.zeros(3, 2), 1.0, noise=torch.zeros(2, 2))
    with pytest.raises(TypeError, match="floating-point"):
        sample_periodic_chains(torch.zeros(3, 2, dtype=torch.int64), 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_and_torch_paths_draw_the_same_worldlines(monkeypatch, dtype):
    """The compiled kernel and the torch operations, from the same generator: the same draws (they
    could differ only where a uniform falls within rounding of a threshold)."""
    from physamp.samplers import worldlines

    if worldlines._KERNEL.lib() is None:
        pytest.skip(f"no compiled kernel here: {worldlines.compiled_status()}")
    g = torch.Generator().manual_seed(4)
    # the sampler's layout: (units, M, chains) buffers, passed as (M, units, chains) views
    logits = (torch.randn(40, 9, 300, generator=g, dtype=dtype) * 2).permute(1, 0, 2)
    draws = {}
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(worldlines._KERNEL, "lib", lambda *a: None)
        out = torch.empty(40, 9, 300, dtype=dtype).permute(1, 0, 2)
        sample_periodic_chains(logits, 0.6, generator=torch.Generator().manual_seed(8), out=out)
        draws[compiled] = out
    assert torch.equal(draws[True], draws[False])
    assert 0.2 < float(draws[True].mean()) < 0.8
