"""Style training on the one Trainer: the loss, one step, exact resume, adding a style, bad input."""

from __future__ import annotations

import pytest
import torch

from physamp.models.style import StyleNetwork
from physamp.models.style.loss import StyleLoss, gram
from physamp.models.style.train import NonFiniteStyleLoss, StyleTrainConfig, StyleTrainer
from physamp.models.style.vgg import random_vgg


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _loss(style_weight=1.0):
    vgg, pre = random_vgg(seed=0)
    return StyleLoss(vgg, pre, style_weight=style_weight)


def _styles(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 24 + 4 * k, 28, generator=g) for k in range(n)]


def _content(k=8, size=16, seed=1):
    return torch.rand(k, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _cfg(**kw):
    base = dict(image_size=16, batch_size=4, steps=6, style_size=None, seed=0)
    return StyleTrainConfig(**{**base, **kw})


class _Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_gram_is_normalised_by_hw():
    f = torch.randn(2, 3, 4, 5)
    g = gram(f)
    ref = torch.einsum("bchw,bdhw->bcd", f, f) / 20
    torch.testing.assert_close(g, ref)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_per_example_losses_against_a_hand_computation():
    loss = _loss(style_weight=0.5)
    styles = _styles(2)
    loss.set_styles(styles)
    torch.manual_seed(0)
    content, pastiche = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    ids = torch.tensor([1, 0, 1])
    c, s = loss(pastiche, content, ids)
    vgg, pre = loss.vgg, loss.preprocess
    fp = vgg.features(pre(pastiche), ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    fc = vgg.features(pre(content), ["relu3_3"])
    for b in range(3):
        ref_c = ((fp["relu3_3"][b] - fc["relu3_3"][b]) ** 2).mean()
        ref_s = 0.0
        for layer in ("relu1_2", "relu2_2", "relu3_3", "relu4_3"):
            f = vgg.features(pre(styles[int(ids[b])][None]), [layer])[layer][0]
            gs = f.flatten(1) @ f.flatten(1).T / (f.shape[1] * f.shape[2])
            gp = (
                fp[layer][b].flatten(1)
                @ fp[layer][b].flatten(1).T
                / (fp[layer].shape[2] * fp[layer].shape[3])
            )
            ref_s = ref_s + 0.5 * ((gp - gs) ** 2).mean()
        torch.testing.assert_close(c[b], ref_c, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(s[b], ref_s, rtol=1e-4, atol=1e-9)
    # a pastiche equal to its content has no content loss
    c0, _ = loss(content, content, ids)
    assert torch.all(c0 == 0)


def test_one_step_is_adam_on_the_mean_loss():
    cfg = _cfg(steps=1, batch_size=4)
    content = _content()
    trainer = StyleTrainer(cfg, content, _styles(), loss=_loss())
    ref_net = StyleNetwork(3)
    ref_net.load_state_dict(trainer.net.state_dict())
    # the batch and the style labels the step will use, drawn the same way
    order_idx = trainer.batches.order.indices(0, 0)
    labels = torch.Generator().manual_seed(trainer.labels.initial_seed())
    ids = torch.randint(3, (4,), generator=labels)
    x = content[order_idx]
    opt = torch.optim.Adam(ref_net.parameters(), lr=1e-3, betas=(0.9, 0.999))
    c, s = trainer.loss(ref_net(x, ids), x, ids)
    (c + s).mean().backward()
    opt.step()
    metrics = trainer.step(0)
    for a, b in zip(trainer.net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(metrics["loss"].float(), (c + s).mean().detach(), rtol=1e-6, atol=0)
    for k in range(3):
        mask = ids == k
        if mask.any():
            total, count = metrics[f"style_loss/{k}"]
            assert int(count) == int(mask.sum())
            torch.testing.assert_close(total.float(), s[mask].sum().detach(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("loader", ["tensors", "dataloader"])
def test_resume_is_bit_identical(tmp_path, loader):
    content = _content(k=10)
    data = content if loader == "tensors" else _Images(content)
    cfg = _cfg(steps=6, workers=0 if loader == "tensors" else 1)

    def make():
        return StyleTrainer(cfg, data, _styles(), loss=_loss())

    whole = make()
    whole.fit(tmp_path / "a", progress=False, log_every=2, checkpoint_every=100)
    part = make()
    part.fit(tmp_path / "b", progress=False, log_every=2, checkpoint_every=100, stop_after=2)
    again = make()
    records = again.fit(tmp_path / "b", progress=False, log_every=2, checkpoint_every=100)
    for a, b in zip(whole.net.state_dict().values(), again.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    from physamp.training import read_metrics

    ra, rb = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    drop = ("time_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in ra] == [
        {k: v for k, v in r.items() if k not in drop} for r in rb
    ]
    assert records and "style_loss/0" in ra[-1] or "style_loss/1" in ra[-1]


def test_training_lowers_the_loss():
    cfg = _cfg(steps=40, batch_size=4, lr=1e-2)
    trainer = StyleTrainer(cfg, _content(k=8), _styles(2), loss=_loss())
    history = trainer.fit(progress=False, log_every=10)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_add_style_trains_only_its_rows(tmp_path):
    base = StyleNetwork(3, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in base.style_parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    new = base.add_styles(1)[0]
    styles = [None, None, None, _styles(1, seed=9)[0]]
    trainer = StyleTrainer(
        _cfg(steps=5, lr=1e-2), _content(), styles, loss=_loss(), net=base, train_styles=[new]
    )
    trainer.fit(progress=False)
    after = trainer.net.state_dict()
    for k, v in before.items():
        if k.endswith(("gamma", "beta")):
            assert torch.equal(after[k][:3], v), k  # bit-identical
            assert not torch.equal(after[k][3], torch.ones_like(v[0]) if k.endswith("gamma") else v[0] * 0)
        else:
            assert torch.equal(after[k], v), k
    assert trainer.config_dict()["train_styles"] == [3]


def test_non_finite_loss_stops_before_the_update():
    loss = _loss()
    trainer = StyleTrainer(_cfg(steps=2), _content(), _styles(), loss=loss)
    with torch.no_grad():
        trainer.net.out.conv.weight[0, 0, 0, 0] = float("nan")
    before = [p.clone() for p in trainer.net.parameters()]
    with pytest.raises(NonFiniteStyleLoss, match="not applied"):
        trainer.step(0)
    after = list(trainer.net.parameters())
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a.nan_to_num(), b.nan_to_num())


def test_bad_input_is_refused_before_any_work():
    loss = _loss()
    with pytest.raises(ValueError, match="fewer than one batch"):
        StyleTrainer(_cfg(batch_size=16), _content(k=8), _styles(), loss=loss)
    with pytest.raises(ValueError, match="image_size"):
        StyleTrainer(_cfg(), _content(size=20), _styles(), loss=loss)
    with pytest.raises(ValueError, match="multiple of 4"):
        _cfg(image_size=18).validate()
    with pytest.raises(ValueError, match="style image 1"):
        StyleTrainer(_cfg(), _content(), [torch.rand(3, 16, 16), torch.rand(1, 16, 16)], loss=loss)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        StyleTrainer(_cfg(), _content(), [torch.rand(3, 16, 16) * 2], loss=loss)
    with pytest.raises(ValueError, match="2 styles but 3"):
        StyleTrainer(_cfg(), _content(), _styles(3), loss=loss, net=StyleNetwork(2))
    with pytest.raises(ValueError, match="style image 0 is 8×8.*style_size"):
        StyleTrainer(_cfg(), _content(), [torch.rand(3, 8, 8)], loss=loss)
    with pytest.raises(ValueError, match="bfloat16"):
        StyleTrainer(_cfg(amp=True), _content(), _styles(), loss=loss)


def test_gram_stays_float32_under_autocast_and_targets_follow_the_module():
    f = torch.randn(2, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram(f.bfloat16()).dtype == torch.float32
    loss = _loss()
    loss.set_styles(_styles(2))
    loss = loss.double()
    assert all(t.dtype == torch.float64 for t in loss.targets.values())
    c, s = loss(torch.rand(2, 3, 16, 16).double(), torch.rand(2, 3, 16, 16).double(), torch.tensor([0, 1]))
    assert s.dtype == torch.float64
    with pytest.raises(ValueError, match="style ids must be in 0..1"):
        loss(torch.rand(1, 3, 16, 16).double(), torch.rand(1, 3, 16, 16).double(), torch.tensor([-1]))


def test_checkpoint_and_record_intervals_do_not_depend_on_the_content_size():
    small = StyleTrainer(_cfg(steps=5000), _content(k=8), _styles(), loss=_loss())
    assert small.intervals() == (1000, 100)
    assert StyleTrainer(_cfg(steps=30), _content(k=8), _styles(), loss=_loss()).intervals() == (30, 30)


def test_style_losses_against_every_style_match_the_per_example_loss():
    loss = _loss(style_weight=0.3)
    loss.set_styles([*_styles(2), None])
    pastiche = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    table = loss.style_losses(pastiche)
    assert table.shape == (3, 3) and torch.isnan(table[:, 2]).all()
    for k in range(2):
        _, s = loss(pastiche, pastiche, torch.full((3,), k))
        torch.testing.assert_close(table[:, k], s, rtol=1e-5, atol=1e-9)
