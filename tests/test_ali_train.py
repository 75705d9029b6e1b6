"""Algorithm 1 on the one loop: the step against a hand-written one, exact resume, NaN stop, errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from physamp.models.ali import ALITrainConfig, ALITrainer, NonFiniteLossError, ali_losses, build_ali
from physamp.models.ali.figures import ALIFigures, interleave_columns
from physamp.training import Callback, load_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _points(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * 2


def _images(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_losses_are_algorithm_1_on_logits():
    l_q, l_p = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    rho_q, rho_p = torch.sigmoid(l_q), torch.sigmoid(l_p)
    loss_d, loss_g = ali_losses(l_q, l_p)
    assert torch.allclose(loss_d, -rho_q.log().mean() - (1 - rho_p).log().mean())
    assert torch.allclose(loss_g, -(1 - rho_q).log().mean() - rho_p.log().mean())  # Eq. 5.4
    # saturated logits: finite losses and gradients (log of a sigmoid would give inf / nan)
    big = torch.tensor([[1e4], [-1e4]], requires_grad=True)
    d, g = ali_losses(big, -big)
    assert torch.isfinite(d) and torch.isfinite(g) and g > 1e3
    g.backward()
    assert torch.isfinite(big.grad).all()


def test_one_step_equals_a_hand_written_simultaneous_update():
    """The spec's reference step (two autograd.grad calls on one forward pass, then both updates),
    written out by hand, from the same weights and noise. The toy's discriminator has no batch
    norm, so scoring the two kinds of pair together or apart is the same."""
    cfg = ALITrainConfig(model="toy", epochs=1, seed=3)
    trainer = ALITrainer(cfg, _points())
    ali = copy.deepcopy(trainer.ali)
    g_params, d_params = ali.generator_parameters(), ali.discriminator_parameters()
    opt_g = torch.optim.Adam(g_params, lr=1e-4, betas=(0.8, 0.999))
    opt_d = torch.optim.Adam(d_params, lr=1e-4, betas=(0.8, 0.999))
    noise = copy.deepcopy(trainer.noise)
    for step in range(3):
        x, _ = trainer.batch(step)
        z = torch.randn(100, 2, generator=noise)
        eps = torch.randn(100, 2, generator=noise)
        z_hat = ali.encoder(x, eps=eps)
        x_tilde = ali.decoder(z)
        l_q, l_p = ali.discriminator(x, z_hat), ali.discriminator(x_tilde, z)
        loss_d = F.softplus(-l_q).mean() + F.softplus(l_p).mean()
        loss_g = F.softplus(l_q).mean() + F.softplus(-l_p).mean()
        gd = torch.autograd.grad(loss_d, d_params, retain_graph=True)
        gg = torch.autograd.grad(loss_g, g_params)
        for p, g in zip(d_params + g_params, gd + gg, strict=True):
            p.grad = g
        opt_d.step()
        opt_g.step()
        trainer.step(step)
    for (k, a), b in zip(trainer.ali.state_dict().items(), ali.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), k


def test_the_gan_baseline_is_the_same_step_with_d_on_x():
    trainer = ALITrainer(ALITrainConfig(model="toy", epochs=1, gan=True), _points())
    assert trainer.ali.encoder is None and not trainer.ali.discriminator.sees_z
    before = _params(trainer.ali)
    metrics = trainer.step(0)
    assert set(metrics) == {"loss_d", "loss_g", "d_q", "d_p"}
    after = _params(trainer.ali)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder"))


@pytest.mark.parametrize(
    "cfg, data",
    [
        (dict(model="toy", epochs=2, batch_size=50), _points),
        (dict(model="toy", epochs=2, batch_size=50, gan=True), _points),
        # an image model: dropout (global generator), batch norm, the uint8 path
        (dict(model="mnist", epochs=2, batch_size=10), lambda: (_images(30) * 255).to(torch.uint8)),
    ],
    ids=["ali-toy", "gan-toy", "ali-mnist-uint8"],
)
def test_a_killed_run_resumes_bit_identical(tmp_path, cfg, data):
    x = data()
    straight = ALITrainer(ALITrainConfig(**cfg), x)
    straight.fit(run_dir=tmp_path / "straight", progress=False, checkpoint_every=1)
    first = ALITrainer(ALITrainConfig(**cfg), x)
    total = first.total_steps
    first.fit(run_dir=tmp_path / "killed", progress=False, checkpoint_every=1, stop_after=total // 2 + 1)
    assert first.loop.step == total // 2 + 1
    second = ALITrainer(ALITrainConfig(**cfg), x)  # a new process: everything from the checkpoint
    second.fit(run_dir=tmp_path / "killed", progress=False, checkpoint_every=1)
    for (k, a), b in zip(straight.ali.state_dict().items(), second.ali.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert straight.opt_d.state_dict()["state"][0]["exp_avg"].equal(
        second.opt_d.state_dict()["state"][0]["exp_avg"]
    )
    ckpt = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert {"state:model", "state:opt_d", "state:opt_g"} <= set(ckpt)


class _Poison(Callback):
    """Turns a discriminator weight into NaN after step ``at`` (a diverged update, simulated)."""

    def __init__(self, trainer, at):
        self.trainer, self.at = trainer, at

    def on_step_end(self, loop, step, metrics):
        if step == self.at:
            with torch.no_grad():
                next(self.trainer.ali.discriminator.parameters()).fill_(float("nan"))


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = ALITrainer(ALITrainConfig(model="toy", epochs=1, batch_size=50), _points())
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(run_dir=tmp_path, progress=False, checkpoint_every=2, callbacks=[_Poison(trainer, 3)])
    assert err.value.step == 3
    text = str(err.value)
    assert "not finite at step 3" in text and "was not applied" in text and "checkpoint.pt" in text
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state:model"].values() if v.is_floating_point())


def test_bad_training_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"takes images of shape \(B, 3, 32, 32\)"):
        ALITrainer(ALITrainConfig(model="svhn"), torch.rand(200, 1, 28, 28))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        ALITrainer(ALITrainConfig(model="mnist", batch_size=10), _images() * 3)
    with pytest.raises(ValueError, match="NaN"):
        ALITrainer(ALITrainConfig(model="toy"), torch.full((200, 2), float("nan")))
    with pytest.raises(ValueError, match="fewer than one batch of 100"):
        ALITrainer(ALITrainConfig(model="toy"), _points(50))
    with pytest.raises(ValueError, match="for CUDA"):
        ALITrainer(ALITrainConfig(model="toy", amp=True), _points())
    with pytest.raises(ValueError, match="needs labels"):
        ALITrainer(ALITrainConfig(model="mnist", conditional=True, batch_size=10), _images())
    with pytest.raises(ValueError, match="beta1"):
        ALITrainConfig(model="toy", beta1=1.5).validate()
    with pytest.raises(ValueError, match="unknown ALI model"):
        ALITrainConfig(model="svhm").validate()


def test_conditional_training_one_hot_encodes_labels():
    y = torch.arange(40) % 10
    trainer = ALITrainer(
        ALITrainConfig(model="mnist", conditional=True, batch_size=10, cond_embed=8), _images(), y
    )
    assert trainer.n_cond == 10 and trainer.y_train.shape == (40, 10)
    assert torch.isfinite(trainer.step(0)["loss_d"])


def test_figures_are_written_and_change_nothing_in_training(tmp_path):
    x = _images(30)
    cfg = ALITrainConfig(model="mnist", epochs=1, batch_size=10)
    plain = ALITrainer(cfg, x)
    plain.fit(progress=False)
    drawn = ALITrainer(cfg, x)
    figures = ALIFigures(drawn.ali, tmp_path, x, every=1, n_pairs=2)
    drawn.fit(progress=False, callbacks=[figures])
    for (k, a), b in zip(plain.ali.state_dict().items(), drawn.ali.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    names = sorted(p.name for p in figures.written)
    assert names == ["interpolations.png", "reconstructions.png", "samples.png"]
    samples = Image.open(tmp_path / "samples.png")
    assert samples.mode == "L" and samples.size == (10 * 30 + 2, 10 * 30 + 2)
    interp = Image.open(tmp_path / "interpolations.png")
    assert interp.size == (10 * 30 + 2, 2 * 30 + 2)  # x1, 8 steps, x2 per row; 2 pairs


def test_reconstructions_alternate_with_their_originals():
    a, b = torch.zeros(4, 1, 2, 2), torch.ones(4, 1, 2, 2)
    out = interleave_columns(a, b, ncol=4)
    assert [float(t.mean()) for t in out] == [0.0, 1.0] * 4


def test_post_hoc_inference_leaves_the_decoder_untouched():
    ali = build_ali("toy", seed=0)
    before = _params(ali.decoder)
    trainer = ALITrainer(ALITrainConfig(model="toy", epochs=1, train_decoder=False), _points(), ali=ali)
    for s in range(3):
        trainer.step(s)
    after = _params(trainer.ali.decoder)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics too


def test_steps_overrides_whole_epochs():
    trainer = ALITrainer(ALITrainConfig(model="toy", steps=7, batch_size=100), _points(300))
    assert trainer.batches_per_epoch == 3 and trainer.total_steps == 7
    history = trainer.fit(progress=False, log_every=7)
    assert history[-1]["step"] == 7
    # steps past the first epochs follow the data order of the next epochs
    assert trainer.order.position(6) == (2, 0)


def test_a_nan_gradient_under_a_finite_loss_is_not_applied():
    trainer = ALITrainer(ALITrainConfig(model="toy", epochs=1), _points())
    weight = next(trainer.ali.decoder.parameters())
    weight.register_hook(lambda g: g * float("nan"))  # the loss stays finite; one gradient does not
    before = _params(trainer.ali)
    with pytest.raises(NonFiniteLossError, match="gradient norm = nan"):
        trainer.step(0)
    after = _params(trainer.ali)
    assert all(
        torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k
    )
    assert not trainer.opt_g.state  # no Adam moment was touched


def test_a_model_handed_over_in_eval_mode_trains_in_train_mode():
    ali = build_ali("toy", seed=0).eval()
    trainer = ALITrainer(ALITrainConfig(model="toy", epochs=1), _points(), ali=ali)
    trainer.step(0)
    assert trainer.ali.training and trainer.ali.decoder.training
