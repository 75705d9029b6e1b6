"""Noise and limits of the simulated device follow the thesis's redraw rules (§3.3)."""

import pytest
import torch

import physamp
from physamp.ising import rbm_to_ising
from physamp.samplers import make_sampler
from physamp.samplers.simulated import SimulatedDevice, hashed_normal

from conftest import exact_joint, random_rbm, tv_distance


def device(**kw):
    return SimulatedDevice(child="exact", seed=kw.pop("seed", 0), **kw)


def test_weight_noise_reused_while_parameters_unchanged():
    rbm = random_rbm(30, 20, seed=0)
    d = device(weight_noise=0.1)
    a = d.device_params(rbm.params(), 4).W
    b = d.device_params(rbm.params(), 4).W
    assert torch.equal(a, b)
    assert not torch.equal(a, rbm.W.detach())
    err = a - rbm.W.detach()
    assert 0.09 < err.std().item() < 0.11  # 600 draws: std within ~6 % of σ


def test_weight_noise_redrawn_only_where_the_value_changed():
    rbm = random_rbm(30, 20, seed=1)
    d = device(weight_noise=0.1)
    before = d.device_params(rbm.params(), 1).W - rbm.W.detach()
    with torch.no_grad():
        rbm.W[3, 4] += 0.5
    after = d.device_params(rbm.params(), 1).W - rbm.W.detach()
    changed = (before - after).abs() > 1e-6
    assert changed.sum() == 1 and changed[3, 4]


def test_bias_noise_redrawn_for_every_sample_and_call():
    rbm = random_rbm(30, 20, seed=2)
    d = device(bias_noise=0.2)
    p1 = d.device_params(rbm.params(), 500)
    p2 = d.device_params(rbm.params(), 500)
    assert p1.b.shape == (500, 30) and p1.c.shape == (500, 20)
    e1 = p1.b - rbm.b.detach()
    assert not torch.equal(e1[0], e1[1])  # each sample its own draw
    assert not torch.equal(p1.b, p2.b)  # and each call
    assert abs(e1.std().item() - 0.2) < 0.01  # 15,000 draws
    assert abs(e1.mean().item()) < 0.01
    assert torch.equal(p1.W, rbm.W.detach())  # no weight noise asked


def test_deterministic_control_error():
    rbm = random_rbm(30, 20, seed=3)
    a = device(weight_noise=0.1, bias_noise=0.1, deterministic=True, seed=4)
    b = device(weight_noise=0.1, bias_noise=0.1, deterministic=True, seed=4)
    pa, pb = a.device_params(rbm.params(), 3), b.device_params(rbm.params(), 3)
    assert torch.equal(pa.W, pb.W) and torch.equal(pa.b, pb.b)  # same request, same error
    err = pa.W - rbm.W.detach()
    assert 0.09 < err.std().item() < 0.11
    # a new requested value gets its own (fixed) error; returning to the old value restores it
    with torch.no_grad():
        old = rbm.W[0, 0].item()
        rbm.W[0, 0] = old + 0.25
    pc = a.device_params(rbm.params(), 3)
    assert pc.W[0, 0] - rbm.W[0, 0] != pa.W[0, 0] - old
    with torch.no_grad():
        rbm.W[0, 0] = old
    assert torch.equal(a.device_params(rbm.params(), 3).W, pa.W)
    # another seed is another device
    c = device(weight_noise=0.1, deterministic=True, seed=5)
    assert not torch.equal(c.device_params(rbm.params(), 3).W, pa.W)


def test_hashed_normal_is_standard_normal():
    x = hashed_normal(torch.linspace(-1, 1, 20_000), seed=0)
    assert abs(x.mean().item()) < 0.03 and abs(x.std().item() - 1) < 0.03


def test_magnitude_limits_rbm_and_ising_space():
    rbm = random_rbm(10, 8, seed=4, scale=3.0)
    p = device(max_weight=1.0, max_bias=0.5).device_params(rbm.params(), 1)
    assert p.W.abs().max() <= 1.0 and p.b.abs().max() <= 0.5 and p.c.abs().max() <= 0.5
    assert torch.equal(p.W, rbm.W.detach().clamp(-1, 1))
    q = device(max_weight=0.25, max_bias=1.0, space="ising").device_params(rbm.params(), 1)
    ising = rbm_to_ising(q)
    assert abs(ising.J).max() <= 0.25 + 1e-6
    assert abs(ising.h_visible).max() <= 1.0 + 1e-6 and abs(ising.h_hidden).max() <= 1.0 + 1e-6


def test_masked_connections_get_no_noise():
    mask = torch.rand(8, 10, generator=torch.Generator().manual_seed(0)) < 0.3
    rbm = random_rbm(10, 8, seed=5, mask=mask)
    for space in ("rbm", "ising"):
        p = device(weight_noise=0.5, space=space).device_params(rbm.params(), 2)
        assert (p.W[~mask] == 0).all()


def test_noisy_device_samples_the_noisy_model():
    """With weight noise only, samples follow the exact distribution of the realised model."""
    rbm = random_rbm(4, 3, seed=6)
    d = make_sampler("simulated", child="exact", weight_noise=0.3, seed=1)
    realised = d.device_params(rbm.params(), 1)
    p_noisy = exact_joint(realised.W, realised.b, realised.c)
    p_clean = exact_joint(rbm.W, rbm.b, rbm.c)
    s = d.sample(rbm, 30_000)
    assert tv_distance(s, p_noisy) < 0.05
    assert tv_distance(s, p_clean) > tv_distance(s, p_noisy)


def test_bad_options():
    with pytest.raises(ValueError, match="weight_noise must be a finite"):
        make_sampler("simulated", weight_noise=-0.1)
    with pytest.raises(ValueError, match="max_weight must be None or a positive"):
        make_sampler("simulated", max_weight=0)
    with pytest.raises(ValueError, match="space must be"):
        make_sampler("simulated", space="qubo")
    with pytest.raises(TypeError):
        make_sampler("simulated", not_an_option=1)


def test_simulated_wraps_neal_with_persistent_chains():
    rbm = physamp.RBM(5, 4)
    s = make_sampler("simulated", child="neal", num_sweeps=2, persistent=True, weight_noise=0.1, seed=0)
    s.sample(rbm, 3)
    assert s.chains is not None and s.chains.v.shape == (3, 5)
    out = s.sample(rbm, 3)
    assert out.info["child"]["continued"]
