"""The Table 7.1 network, conditional instance normalization (Eq. 7.5) and blending."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from physamp.models.style import SHARED_CONV_WEIGHTS, STYLE_PARAMS_PER_STYLE, CondInstanceNorm2d, StyleNetwork
from physamp.models.style.network import style_weights
from physamp.models.style.stylize import corner_weights


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomise_styles(net: StyleNetwork, seed: int = 0) -> StyleNetwork:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.style_parameters():
            p.copy_(p + 0.3 * torch.randn(p.shape, generator=g))
    return net


def test_parameter_counts_match_table_7_1():
    for n in (1, 10, 32):
        net = StyleNetwork(n)
        shared = sum(p.numel() for p in net.shared_parameters())
        per_style = sum(p.numel() for p in net.style_parameters()) / n
        assert shared == SHARED_CONV_WEIGHTS == 1_674_432
        assert per_style == STYLE_PARAMS_PER_STYLE == 3_206
        assert sum(p.numel() for p in net.parameters()) == 1_674_432 + 3_206 * n
    assert sum(p.numel() for p in StyleNetwork(10).parameters()) == 1_706_492  # the spec's N = 10 total
    # no convolution has a bias; every convolution is followed by a CIN
    net = StyleNetwork(2)
    assert all(c.bias is None for c in net.convs())
    assert len(net.convs()) == len(net.norms()) == 16
    assert sum(m.channels for m in net.norms()) == 1_603


def test_layer_table_and_shapes():
    net = StyleNetwork(1)
    convs = net.convs()
    got = [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding_mode) for c in convs]
    expected = [(3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)] + [(128, 128, 3, 1)] * 10
    expected += [(128, 64, 3, 1), (64, 32, 3, 1), (32, 3, 9, 1)]
    assert got == [(*e, "reflect") for e in expected]
    # the derived output shapes of the spec, on a 256 x 256 input
    shapes = {}
    named = {"conv1": net.conv1, "conv2": net.conv2, "conv3": net.conv3, "res": net.res[4]}
    named.update(up1=net.up1, up2=net.up2, out=net.out)
    hooks = [
        m.register_forward_hook(lambda mod, i, o, k=k: shapes.__setitem__(k, tuple(o.shape)))
        for k, m in named.items()
    ]
    with torch.no_grad():
        y = net(torch.rand(1, 3, 256, 256), 0)
    for h in hooks:
        h.remove()
    assert shapes == {
        "conv1": (1, 32, 256, 256),
        "conv2": (1, 64, 128, 128),
        "conv3": (1, 128, 64, 64),
        "res": (1, 128, 64, 64),
        "up1": (1, 64, 128, 128),
        "up2": (1, 32, 256, 256),
        "out": (1, 3, 256, 256),
    }
    assert y.min() >= 0 and y.max() <= 1  # the sigmoid


def test_init_is_n_0_001():
    net = StyleNetwork(3, generator=torch.Generator().manual_seed(0))
    w = torch.cat([c.weight.flatten() for c in net.convs()])
    assert abs(w.mean().item()) < 2e-4 and abs(w.std().item() - 0.01) < 2e-4
    for m in net.norms():
        assert torch.equal(m.gamma, torch.ones_like(m.gamma)) and torch.equal(
            m.beta, torch.zeros_like(m.beta)
        )
    same = StyleNetwork(3, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), same.parameters(), strict=True))


def test_cin_is_eq_7_5():
    torch.manual_seed(0)
    cin = CondInstanceNorm2d(4, 3)
    with torch.no_grad():
        cin.gamma.normal_()
        cin.beta.normal_()
    x = torch.randn(5, 4, 6, 7) * 3 + 1
    s = torch.tensor([0, 2, 1, 2, 0])
    mu = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), unbiased=False, keepdim=True)
    ref = cin.gamma[s][:, :, None, None] * (x - mu) / torch.sqrt(var + 1e-5) + cin.beta[s][:, :, None, None]
    torch.testing.assert_close(cin(x, s), ref, rtol=1e-5, atol=1e-5)
    # a one-hot weight row is the same as the id
    torch.testing.assert_close(cin(x, F.one_hot(s, 3).float()), ref, rtol=1e-5, atol=1e-5)


def test_reflect_padding_and_nearest_upsampling_as_specified():
    net = StyleNetwork(1)
    x = torch.rand(1, 3, 16, 12)
    conv = net.conv2.conv
    ref = F.conv2d(F.pad(x.repeat(1, 11, 1, 1)[:, :32], [1, 1, 1, 1], mode="reflect"), conv.weight, stride=2)
    torch.testing.assert_close(conv(x.repeat(1, 11, 1, 1)[:, :32]), ref)
    h = torch.rand(1, 128, 4, 4)
    up = net.up1
    doubled = h.repeat_interleave(2, 2).repeat_interleave(2, 3)
    conv = F.conv2d(F.pad(doubled, [1] * 4, mode="reflect"), up.conv.conv.weight)
    ref = F.relu(up.conv.norm(conv, torch.tensor([0])))
    torch.testing.assert_close(up(h, torch.tensor([0])), ref)


def test_fully_convolutional_sizes_and_errors():
    net = StyleNetwork(2)
    with torch.no_grad():
        for h, w in ((8, 8), (36, 20), (64, 100)):
            assert net(torch.rand(2, 3, h, w), torch.tensor([0, 1])).shape == (2, 3, h, w)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 32), 0)
    with pytest.raises(ValueError, match="at least 8"):
        net(torch.rand(1, 3, 4, 4), 0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 32, 32), 0)


def test_style_ids_select_rows_and_blends_mix_every_layer():
    torch.manual_seed(1)
    net = _randomise_styles(StyleNetwork(3), seed=1).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        by_id = net(x, torch.tensor([2, 0]))
        assert torch.allclose(by_id[0], net(x[:1], 2)[0], atol=1e-6)
        # a blend is Σ w_k γ_k and Σ w_k β_k at every layer: a network whose one style holds the mix
        w = torch.tensor([0.2, 0.5, 0.3])
        mixed = StyleNetwork(1)
        rows = ("gamma", "beta")
        mixed.load_state_dict(
            {k: (w @ v)[None] if k.endswith(rows) else v for k, v in net.state_dict().items()}
        )
        torch.testing.assert_close(net(x, w), mixed(x, 0), rtol=1e-5, atol=1e-6)
        # weights not summing to 1 are proportions (normalised), unless normalize=False
        torch.testing.assert_close(net(x, w * 4), net(x, w), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(net(x, w * 4, normalize=False), net(x, w), atol=1e-3)
        # different blends give different pastiches; a one-hot blend is the style itself
        assert not torch.allclose(
            net(x, torch.tensor([1.0, 0, 0])), net(x, torch.tensor([0, 1.0, 0])), atol=1e-3
        )
        torch.testing.assert_close(net(x, torch.tensor([0, 0, 1.0])), net(x, 2), rtol=1e-5, atol=1e-6)


def test_bad_styles_are_clear_errors():
    with pytest.raises(ValueError, match="out of range.*3 styles"):
        style_weights(torch.tensor([0, 3]), 3, 2)
    with pytest.raises(ValueError, match="out of range"):
        style_weights(-1, 3, 2)
    with pytest.raises(ValueError, match="non-negative"):
        style_weights(torch.tensor([0.5, -0.1, 0.6]), 3, 2)
    with pytest.raises(ValueError, match="all zero"):
        style_weights(torch.zeros(3), 3, 2)
    with pytest.raises(ValueError, match="finite"):
        style_weights(torch.tensor([float("nan"), 1.0, 0.0]), 3, 2)
    with pytest.raises(ValueError, match="N = 3"):
        style_weights(torch.ones(4), 3, 2)
    with pytest.raises(ValueError, match="one per image"):
        style_weights(torch.tensor([0, 1, 2]), 3, 2)
    with pytest.raises(ValueError, match="positive int"):
        StyleNetwork(0)


def test_add_styles_keeps_existing_rows_and_checkpoint_mismatch():
    net = _randomise_styles(StyleNetwork(3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ids = net.add_styles(2)
    assert ids == [3, 4] and net.num_styles == 5
    for k, v in net.state_dict().items():
        if k.endswith(("gamma", "beta")):
            assert torch.equal(v[:3], before[k])
            assert torch.equal(
                v[3:], torch.ones_like(v[3:]) if k.endswith("gamma") else torch.zeros_like(v[3:])
            )
        else:
            assert torch.equal(v, before[k])
    net.add_styles(1, init="mean")
    assert torch.allclose(net.conv1.norm.gamma[5], before["conv1.norm.gamma"].mean(0).mul(3).add(2).div(5))
    with pytest.raises(ValueError, match="3 styles; this one has 6"):
        net.load_state_dict(before)


def test_corner_weights_are_bilinear_convex_combinations():
    w = corner_weights(3, (0, 1, 2, 3), 5)
    assert w.shape == (9, 5)
    torch.testing.assert_close(w.sum(1), torch.ones(9))
    assert torch.equal(w[0], torch.tensor([1.0, 0, 0, 0, 0]))  # top-left
    assert torch.equal(w[2], torch.tensor([0, 1.0, 0, 0, 0]))  # top-right
    assert torch.equal(w[6], torch.tensor([0, 0, 1.0, 0, 0]))  # bottom-left
    assert torch.equal(w[8], torch.tensor([0, 0, 0, 1.0, 0]))  # bottom-right
    torch.testing.assert_close(w[4], torch.tensor([0.25, 0.25, 0.25, 0.25, 0]))
    with pytest.raises(ValueError, match="out of range"):
        corner_weights(3, (0, 1, 2, 7), 5)


def test_huge_and_low_precision_weights_mix_without_overflow():
    w = style_weights(torch.tensor([3e38, 3e38, 0.0]), 3, 1)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5, 0.0]]))
    w16 = style_weights(torch.tensor([60000.0, 60000.0, 0.0], dtype=torch.float16), 3, 2)
    assert w16.dtype == torch.float32
    torch.testing.assert_close(w16, torch.tensor([[0.5, 0.5, 0.0]] * 2))
    with pytest.raises(TypeError, match="not bool"):
        style_weights(torch.tensor([True, False]), 3, 2)


def test_input_dtype_must_match_the_network():
    net = StyleNetwork(1)
    with pytest.raises(ValueError, match="convert them"):
        net(torch.rand(1, 3, 8, 8, dtype=torch.float64), 0)
    with torch.no_grad():
        assert net.double()(torch.rand(1, 3, 8, 8, dtype=torch.float64), 0).dtype == torch.float64
