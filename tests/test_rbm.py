import math

import pytest
import torch

import physamp
from physamp.models.rbm import RBMParams

from conftest import all_states, exact_joint, random_rbm


def test_free_energy_gives_exact_marginal():
    rbm = random_rbm(4, 3, seed=1)
    p = exact_joint(rbm.W, rbm.b, rbm.c).reshape(16, 8).sum(1)
    V = torch.tensor(all_states(4), dtype=torch.float32)
    logq = -rbm.free_energy(V).detach().double()
    q = torch.softmax(logq, 0).numpy()
    assert abs(q - p).max() < 1e-6
    H = torch.tensor(all_states(3), dtype=torch.float32)
    ph = exact_joint(rbm.W, rbm.b, rbm.c).reshape(16, 8).sum(0)
    qh = torch.softmax(-rbm.free_energy_hidden(H).detach().double(), 0).numpy()
    assert abs(qh - ph).max() < 1e-6


def test_conditionals_match_enumeration_and_take_beta():
    rbm = random_rbm(4, 3, seed=2)
    P = exact_joint(rbm.W, rbm.b, rbm.c).reshape(16, 8)
    V, H = all_states(4), all_states(3)
    iv = 5
    ph_given_v = P[iv] / P[iv].sum()
    marg = ph_given_v @ H
    got = rbm.p_h_given_v(torch.tensor(V[iv : iv + 1], dtype=torch.float32))[0].detach().numpy()
    assert abs(got - marg).max() < 1e-6
    # beta scales the logits
    v = torch.tensor(V[iv : iv + 1], dtype=torch.float32)
    logit = torch.logit(rbm.p_h_given_v(v, beta=0.5))
    assert torch.allclose(logit, 0.5 * (rbm.c + v @ rbm.W.t()), atol=1e-5)
    h = torch.tensor(H[3:4], dtype=torch.float32)
    assert torch.allclose(torch.logit(rbm.p_v_given_h(h, beta=2.0)), 2 * (rbm.b + h @ rbm.W), atol=1e-4)


def test_energy_sign_convention():
    rbm = physamp.RBM(2, 1)
    with torch.no_grad():
        rbm.W.fill_(1.5)
        rbm.b.copy_(torch.tensor([0.3, -0.2]))
        rbm.c.fill_(0.7)
    v = torch.tensor([[1.0, 1.0]])
    h = torch.tensor([[1.0]])
    # E = -b.v - c.h - h^T W v = -(0.1) - 0.7 - 3.0
    assert math.isclose(rbm.energy(v, h).item(), -3.8, rel_tol=1e-6)


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
def test_masked_weights_stay_exactly_zero(opt_name):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(5, 7, generator=g) < 0.5
    rbm = physamp.RBM(7, 5, mask=mask, init_std=0.5)
    assert (rbm.W[~mask] == 0).all()
    opt = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
        "adam": lambda p: torch.optim.Adam(p, lr=0.1),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1),
    }[opt_name](rbm.parameters())
    v = (torch.rand(16, 7, generator=g) < 0.5).float()
    for _ in range(5):
        opt.zero_grad()
        rbm.free_energy(v).mean().backward()
        opt.step()
    assert (rbm.W[~mask] == 0).all()
    assert (rbm.W[mask] != 0).any()


def test_load_state_dict_rezeroes_masked_weights():
    mask = torch.eye(3, dtype=torch.bool)
    rbm = physamp.RBM(3, 3, mask=mask)
    sd = {k: v.clone() for k, v in rbm.state_dict().items()}
    sd["W"] = torch.ones(3, 3)
    rbm.load_state_dict(sd)
    assert torch.equal(rbm.W.detach(), torch.eye(3))


def test_mask_shape_error_names_expected_shape():
    with pytest.raises(ValueError, match=r"\(n_hidden, n_visible\) = \(3, 4\)"):
        physamp.RBM(4, 3, mask=torch.ones(4, 3, dtype=torch.bool))


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive int"):
        physamp.RBM(bad, 3)


def test_nan_parameters_are_refused():
    rbm = physamp.RBM(4, 3)
    with torch.no_grad():
        rbm.W[0, 0] = float("nan")
    with pytest.raises(ValueError, match="W holds 1 non-finite"):
        physamp.make_sampler("gibbs", steps=1).sample(rbm, 2)


def test_params_shape_validation():
    W = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="visible bias b has shape"):
        RBMParams(W, torch.zeros(3), torch.zeros(3)).validate()
    with pytest.raises(ValueError, match="hidden bias c"):
        RBMParams(W, torch.zeros(4), torch.zeros(5)).validate()
