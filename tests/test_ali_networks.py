"""The ALI networks against the tables (spec §3): every layer's output shape and each model's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from physamp.models.ali import build_ali
from physamp.models.ali.networks import SPECS, Maxout, layer_shapes

# the [DERIVED] output shapes of the spec, table by table (C, H, W)
# ruff: noqa: E501
ENCODER_SHAPES = {
    "cifar10": [(32, 28, 28), (64, 13, 13), (128, 10, 10), (256, 4, 4), (512, 1, 1), (512, 1, 1), (128, 1, 1)],
    "svhn": [(32, 28, 28), (64, 13, 13), (128, 10, 10), (256, 4, 4), (512, 1, 1), (512, 1, 1), (512, 1, 1)],
    "celeba": [(64, 63, 63), (128, 29, 29), (256, 13, 13), (256, 4, 4), (512, 1, 1), (512, 1, 1)],
    "imagenet64": [(64, 31, 31), (64, 28, 28), (128, 13, 13), (128, 10, 10), (256, 4, 4), (256, 1, 1),
                   (2048, 1, 1), (2048, 1, 1), (512, 1, 1)],
    "mnist": [(32, 24, 24), (64, 11, 11), (128, 8, 8), (256, 3, 3), (512, 1, 1), (512, 1, 1), (128, 1, 1)],
}  # fmt: skip  # noqa: E501
DECODER_SHAPES = {
    "cifar10": [(256, 4, 4), (128, 10, 10), (64, 13, 13), (32, 28, 28), (32, 32, 32), (32, 32, 32), (3, 32, 32)],
    "svhn": [(256, 4, 4), (128, 10, 10), (64, 13, 13), (32, 28, 28), (32, 32, 32), (32, 32, 32), (3, 32, 32)],
    "celeba": [(512, 4, 4), (256, 13, 13), (256, 29, 29), (128, 63, 63), (64, 64, 64), (3, 64, 64)],
    "imagenet64": [(2048, 1, 1), (256, 1, 1), (256, 4, 4), (128, 10, 10), (128, 13, 13), (64, 28, 28),
                   (64, 31, 31), (64, 64, 64), (3, 64, 64)],
    "mnist": [(256, 3, 3), (128, 8, 8), (64, 11, 11), (32, 24, 24), (32, 28, 28), (32, 28, 28), (1, 28, 28)],
}  # fmt: skip
# the joint discriminator's input channels, as the tables print them ("D(x, z) - 1024 x 1 x 1 input")
JOINT_INPUT = {"cifar10": 1024, "svhn": 1024, "celeba": 1536, "imagenet64": 2304, "mnist": 1024}
LATENT = {"cifar10": 64, "svhn": 256, "celeba": 256, "imagenet64": 256, "mnist": 64, "toy": 2}


def _outputs(stack, x):
    return [tuple(o.shape[1:]) for o in stack.forward_all(x)]


@pytest.mark.parametrize("name", list(ENCODER_SHAPES))
def test_every_layer_has_the_tables_shape(name):
    spec = SPECS[name]
    ali = build_ali(name, seed=0).eval()
    x = torch.rand(2, *spec.image_shape)
    assert layer_shapes(spec.encoder, spec.image_shape) == ENCODER_SHAPES[name]
    enc = ali.encoder
    hidden = _outputs(enc.body, x)
    head = enc.head(enc.body(x))
    assert hidden + [tuple(head.shape[1:])] == ENCODER_SHAPES[name]
    z = torch.randn(2, LATENT[name], 1, 1)
    assert _outputs(ali.decoder.net, z) == DECODER_SHAPES[name]
    assert layer_shapes(spec.decoder, (LATENT[name], 1, 1)) == DECODER_SHAPES[name]
    d = ali.discriminator
    hx, hz = d.d_x(x), d.d_z(z)
    assert hx.shape[2:] == (1, 1) and hz.shape[2:] == (1, 1)
    assert hx.shape[1] + hz.shape[1] == JOINT_INPUT[name] == d.d_joint.in_channels
    assert d(x, z).shape == (2, 1)


@pytest.mark.parametrize("name", list(SPECS))
def test_the_public_api_shapes(name):
    spec = SPECS[name]
    ali = build_ali(name, seed=0).eval()
    x = torch.rand(3, *spec.image_shape)
    z = ali.encode(x)
    assert z.shape == (3, *spec.latent_shape) == (3, LATENT[name], 1, 1)[: 2 if name == "toy" else 4]
    assert ali.encode(x, mean=True).shape == z.shape
    x_tilde = ali.decode(z)
    assert x_tilde.shape == x.shape
    if spec.is_image:
        assert 0 <= x_tilde.min() and x_tilde.max() <= 1
    assert ali.discriminator(x, z).shape == (3, 1)


def test_svhn_parameter_count_by_hand():
    """Table 5.4, counted by hand: conv weights (no bias under batch norm) + BN scale and shift."""
    enc = (3 * 32 * 25 + 2 * 32) + (32 * 64 * 16 + 2 * 64) + (64 * 128 * 16 + 2 * 128)
    enc += (128 * 256 * 16 + 2 * 256) + (256 * 512 * 16 + 2 * 512) + (512 * 512 + 2 * 512) + (512 * 512 + 512)
    dec = (256 * 256 * 16 + 2 * 256) + (256 * 128 * 16 + 2 * 128) + (128 * 64 * 16 + 2 * 64)
    dec += (64 * 32 * 16 + 2 * 32) + (32 * 32 * 25 + 2 * 32) + (32 * 32 + 2 * 32) + (32 * 3 + 3)
    d_x = (3 * 32 * 25 + 32) + (32 * 64 * 16 + 2 * 64) + (64 * 128 * 16 + 2 * 128)
    d_x += (128 * 256 * 16 + 2 * 256) + (256 * 512 * 16 + 2 * 512)
    d_z = (256 * 512 + 512) + (512 * 512 + 512)
    d_xz = (1024 * 1024 + 1024) * 2 + (1024 + 1)
    ali = build_ali("svhn")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ali.encoder) == enc == 3_315_488
    assert count(ali.decoder) == dec
    assert count(ali.discriminator) == d_x + d_z + d_xz


def test_cifar10_maxout_doubles_the_convolution_and_halves_after():
    ali = build_ali("cifar10")
    convs = [m for m in ali.discriminator.d_x.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024]  # 2 pieces x the table's maps
    assert ali.discriminator.d_x.out_channels == 512
    m = Maxout(2)
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0]])
    assert m(x).tolist() == [[5.0, -2.0]]


# total parameters of (encoder, decoder, discriminator): a regression guard on the layer lists
PARAMS = {
    "toy": (164_002, 484_802, 407_201),
    "mnist": (2_199_392, 863_329, 4_266_689),
    "svhn": (3_315_488, 1_764_515, 5_284_097),
    "cifar10": (3_118_496, 978_083, 10_368_641),
    "celeba": (6_794_880, 11_799_107, 15_191_169),
    "imagenet64": (7_812_352, 3_151_939, 32_985_793),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts(name):
    ali = build_ali(name)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(ali.encoder), count(ali.decoder), count(ali.discriminator)) == PARAMS[name]


def test_toy_models():
    ali = build_ali("toy", seed=0)
    assert ali.spec.implicit and ali.encoder.body[0][0].in_features == 4  # [x, eps]
    assert [type(b[-1]).__name__ for b in ali.discriminator.d_joint][:3] == ["Maxout"] * 3
    assert ali.discriminator.d_joint[0][0].out_features == 1000  # 200 units x 5 pieces
    gan = build_ali("toy", gan=True)
    assert gan.encoder is None and gan.discriminator.d_joint[0][0].in_features == 2


def test_initial_weights_follow_the_tables():
    torch.manual_seed(0)
    ali = build_ali("svhn", seed=1)
    w = ali.encoder.body[3][0].weight
    assert abs(w.std().item() - 0.01) < 0.0005 and abs(w.mean().item()) < 0.0005
    biases = [m.bias for m in ali.discriminator.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert biases and all(b.abs().max() == 0 for b in biases)
    assert torch.equal(build_ali("svhn", seed=1).encoder.body[3][0].weight, w)  # seeded


def test_encoder_is_gaussian_eq_5_2():
    ali = build_ali("mnist", seed=0).eval()
    x = torch.rand(4, 1, 28, 28)
    mu, log_sigma = ali.encoder.posterior(x)
    eps = torch.randn_like(mu)
    assert torch.allclose(ali.encode(x, eps=eps), mu + log_sigma.exp() * eps)
    assert torch.allclose(ali.encode(x, mean=True), mu)


def test_semi_supervised_feature_dimension():
    ali = build_ali("svhn").eval()
    assert ali.encoder.feature_dim == 256 * 4 * 4 + 512 + 512 + 256 == 5376
    assert ali.encoder.features(torch.rand(2, 3, 32, 32)).shape == (2, 5376)


def test_conditional_players_take_y():
    ali = build_ali("mnist", n_cond=10, cond_embed=16, seed=0).eval()
    x, y = torch.rand(2, 1, 28, 28), torch.eye(10)[:2]
    z = ali.encode(x, y)
    assert ali.decode(z, y).shape == x.shape and ali.discriminator(x, z, y).shape == (2, 1)
    with pytest.raises(ValueError, match="needs y"):
        ali.decode(z)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 10\)"):
        ali.decode(z, torch.eye(5)[:2])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ALI model 'svhm'; choose one of toy, mnist"):
        build_ali("svhm")
    ali = build_ali("svhn")
    with pytest.raises(
        ValueError, match=r"takes images of shape \(B, 3, 32, 32\); x has shape \(2, 3, 64, 64\)"
    ):
        ali.encode(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 256, 1, 1\)"):
        ali.decode(torch.randn(2, 64, 1, 1))
    with pytest.raises(ValueError, match="scores pairs"):
        ali.discriminator(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="init_std"):
        build_ali("toy", init_std=float("nan"))


# --- every row of Tables 5.3-5.6 against the spec's transcription (../shared/specs/ALI.md §3) ------
SPEC = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "specs" / "ALI.md"
SECTIONS = {"cifar10": "### 3.1", "svhn": "### 3.2", "celeba": "### 3.3", "imagenet64": "### 3.4"}
PARTS = {"G_z(x)": "encoder", "G_x(z)": "decoder", "D(x)": "d_x", "D(z)": "d_z", "D(x, z)": "d_joint"}
ACT = {"Leaky ReLU": "lrelu", "Linear": "linear", "Sigmoid": "sigmoid", "Maxout": "maxout"}


def _row(op, k, s, fm, bn, drop, act, part):
    act = ACT[act.strip()]
    if part.startswith("d_") and act == "sigmoid":
        act = "linear"  # the discriminator ends in a logit; its sigmoid is inside the loss
    return (
        "tconv" if op == "TConv" else "conv",
        int(k),
        int(s),
        int(fm),
        bn.strip() == "✓",
        float(drop),
        act,
    )


def _spec_tables():
    """{model: {part: [rows]}} read from the spec's tables and from its one-line layer lists."""
    import re

    text = SPEC.read_text()
    out = {}
    for model, head in SECTIONS.items():
        body = text[text.index(head) :]
        body = body[: body.index("\n### ", 1)]
        parts = {}
        for block in re.split(r"\n(?=\*\*(?:G_[xz]\(|D\())", body)[1:]:
            name = re.match(r"\*\*([^–]+?) –", block).group(1).strip()
            part = PARTS[name]
            rows = []
            for m in re.finditer(
                r"^\| (T?Conv) \| (\d)×\d \| (\d)×\d \| (\d+) \| ([✓×]) \| ([\d.]+) \| ([A-Za-z ]+?) \|",
                block,
                re.M,
            ):
                rows.append(_row(*m.groups(), part))
            line = block.split("\n", 1)[0]
            for m in re.finditer(
                r"(T?Conv) (\d)×\d/(\d)×\d/(\d+), ([✓×]), ([\d.]+), ([A-Za-z ]+?)[;.]", line
            ):
                rows.append(_row(*m.groups(), part))
            for m in re.finditer(r"(T?Conv) (\d)×\d (\d+) \(([✓×]), ([\d.]+), ([A-Za-z ]+?)\)", line):
                op, k, fm, bn, drop, act = m.groups()
                rows.append(_row(op, k, 1, fm, bn, drop, act, part))
            if "identical layer list to CIFAR-10 G_x" in line:
                rows = out["cifar10"]["decoder"]
            parts[part] = rows
        out[model] = parts
    return out


@pytest.mark.skipif(not SPEC.exists(), reason="the spec (../shared/specs/ALI.md) is not beside this checkout")
@pytest.mark.parametrize("name", list(SECTIONS))
def test_every_row_matches_the_thesis_table(name):
    tables = _spec_tables()[name]
    spec = SPECS[name]
    assert set(tables) == {"encoder", "decoder", "d_x", "d_z", "d_joint"}
    for part, rows in tables.items():
        ours = [
            (lay.op, lay.kernel, lay.stride, lay.out, lay.bn, lay.dropout, lay.act)
            for lay in getattr(spec, part)
        ]
        assert ours == rows, (name, part)


def test_the_slopes_and_pieces_follow_the_tables():
    assert [SPECS[n].slope for n in ("cifar10", "svhn", "celeba", "imagenet64")] == [0.1, 0.01, 0.02, 0.01]
    assert SPECS["cifar10"].pieces == 2 and SPECS["toy"].pieces == 5
    lrelu = [m for m in build_ali("celeba").modules() if isinstance(m, nn.LeakyReLU)]
    assert lrelu and all(m.negative_slope == 0.02 for m in lrelu)
    drops = [m.p for m in build_ali("cifar10").discriminator.d_x.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.2, 0.5, 0.5, 0.5, 0.5]  # dropout on each layer's input, as the table's rates
