"""One check per input, in the protocol (issue 8, items 4 and 6).

* β (inverse temperature) is checked by the Sampler base class, whether it is set as a
  backend's ``beta`` (constructor) or passed per call: NaN, ±inf, 0, negatives and
  non-numbers are refused with one message for every backend.
* A mask is boolean or exactly 0/1, checked where it enters an RBM or RBMParams.
* ``num_samples`` is any integral number >= 1 (numpy integers too), not a bool.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physamp
from physamp.energy import RBMParams, check_mask
from physamp.samplers import Sampler, make_sampler
from physamp.samplers.base import check_beta
from physamp.samplers.exact import exact_log_z

from conftest import random_rbm

BAD_BETAS = [math.nan, math.inf, -math.inf, 0.0, -1.0, -0.0, "1.0", True, None, np.float64("nan")]
BETA_MSG = "beta must be a positive finite number"


@pytest.fixture(scope="module")
def rbm():
    return random_rbm(4, 3, seed=1)


# --- β --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gibbs", "exact", "neal", "simulated"])
@pytest.mark.parametrize("beta", BAD_BETAS, ids=repr)
def test_bad_beta_is_refused_at_construction(name, beta):
    with pytest.raises(ValueError, match=BETA_MSG):
        make_sampler(name, beta=beta)


@pytest.mark.parametrize("name", ["gibbs", "exact", "neal", "simulated"])
@pytest.mark.parametrize("beta", BAD_BETAS, ids=repr)
def test_bad_beta_is_refused_per_call(rbm, name, beta):
    sampler = make_sampler(name, seed=0)
    with pytest.raises(ValueError, match=BETA_MSG):
        sampler.sample(rbm, 3, beta=beta)


def test_good_betas_of_any_real_type_are_accepted_as_floats(rbm):
    for beta in (2, 0.5, np.float32(0.5), np.int64(2), torch.tensor(0.5), 1e-300):
        s = make_sampler("gibbs", steps=1, seed=0, beta=beta)
        assert type(s.beta) is float and s.beta == float(beta)
        assert s.sample(rbm, 2, beta=beta).info["beta"] == float(beta)
    assert check_beta(np.float64(3.0)) == 3.0


def test_beta_is_checked_once_in_the_protocol_for_any_backend(rbm):
    """A third-party backend gets both checks without writing any."""
    seen = []

    class Tempered(Sampler):
        name = "tempered"
        parameters = {"beta": "inverse temperature"}

        def __init__(self, beta=1.0):
            super().__init__()
            self.beta = beta

        def _sample(self, params, num_samples, initial, **opts):
            seen.append(opts.get("beta", self.beta))
            return torch.zeros(num_samples, params.n_visible), torch.zeros(num_samples, params.n_hidden), {}

    with pytest.raises(ValueError, match=BETA_MSG):
        Tempered(beta=math.nan)
    t = Tempered(beta=2)
    assert type(t.beta) is float and t.beta == 2.0
    with pytest.raises(ValueError, match=BETA_MSG):
        t.beta = -3.0
    with pytest.raises(ValueError, match=BETA_MSG):
        t.sample(rbm, 2, beta=math.inf)
    assert seen == []  # refused before the backend ran
    t.sample(rbm, 2, beta=np.float32(0.25))
    assert seen == [0.25] and type(seen[0]) is float


def test_samplers_without_beta_have_no_attribute():
    class Plain(Sampler):
        name = "plain"

        def _sample(self, params, num_samples, initial, **opts):  # pragma: no cover
            raise AssertionError

    assert not hasattr(Plain(), "beta")
    with pytest.raises(AttributeError, match="has no 'beta'"):
        Plain().beta  # noqa: B018


def test_exact_log_z_and_log_z_method_check_beta(rbm):
    with pytest.raises(ValueError, match=BETA_MSG):
        exact_log_z(rbm.params(), beta=0.0)
    with pytest.raises(ValueError, match=BETA_MSG):
        make_sampler("exact").log_z(rbm, beta=math.nan)
    assert make_sampler("exact").log_z(rbm, beta=np.float32(1.0)) == pytest.approx(exact_log_z(rbm.params()))


def test_neal_anneal_start_is_still_checked_against_beta():
    with pytest.raises(ValueError, match="beta_start <= beta"):
        make_sampler("neal", schedule="anneal", beta=0.5, beta_start=0.9)


def test_cli_reports_a_bad_beta_in_one_line(capsys):
    from physamp.cli import main

    code = main(["check-sampler", "gibbs", "-o", "beta=nan"])
    err = capsys.readouterr().err
    assert code == 2 and BETA_MSG in err and "Traceback" not in err


# --- masks ------------------------------------------------------------------------------------------
BAD_MASKS = {
    "nan": [[1.0, math.nan, 0.0], [0.0, 1.0, 1.0]],
    "minus one": [[1, -1, 0], [0, 1, 1]],
    "half": [[1.0, 0.5, 0.0], [0.0, 1.0, 1.0]],
    "two": [[1, 2, 0], [0, 1, 1]],
}


@pytest.mark.parametrize("kind", sorted(BAD_MASKS))
def test_a_mask_that_is_not_0_1_is_refused_where_it_enters(kind):
    bad = torch.tensor(BAD_MASKS[kind])
    msg = "a mask must be boolean or hold only 0 and 1"
    with pytest.raises(ValueError, match=msg):
        physamp.RBM(3, 2, mask=bad)
    rbm = physamp.RBM(3, 2)
    with pytest.raises(ValueError, match=msg):
        rbm.set_mask(bad)
    with pytest.raises(ValueError, match=msg):
        RBMParams(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2), bad)
    with pytest.raises(ValueError, match=msg):
        RBMParams(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2), bad.numpy())
    sd = physamp.RBM(3, 2, mask=torch.ones(2, 3, dtype=torch.bool)).state_dict()
    sd["mask"] = bad
    with pytest.raises(ValueError, match=msg):
        physamp.RBM(3, 2, mask=torch.ones(2, 3, dtype=torch.bool)).load_state_dict(sd)
    with pytest.raises(ValueError, match=msg):
        physamp.RBM.from_state_dict(sd)
    from physamp.ising import IsingRBM, ising_to_params

    ising = IsingRBM(np.zeros(3), np.zeros(2), np.zeros((2, 3)), 0.0, np.asarray(BAD_MASKS[kind]))
    with pytest.raises(ValueError, match=msg):
        ising_to_params(ising)


def test_bool_and_exact_0_1_masks_are_accepted_and_stored_as_bool():
    ref = torch.tensor([[True, False, True], [False, True, True]])
    as_uint8 = ref.numpy().astype(np.uint8)
    for mask in (ref, ref.float(), ref.double(), ref.to(torch.int64), ref.numpy(), as_uint8, ref.tolist()):
        rbm = physamp.RBM(3, 2, mask=mask)
        assert rbm.mask.dtype == torch.bool and torch.equal(rbm.mask, ref)
        p = RBMParams(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2), mask)
        assert p.mask.dtype == torch.bool and torch.equal(p.mask, ref)
    assert check_mask(ref) is ref  # a bool mask is not copied (the sparse-structure cache keys on it)
    rbm = physamp.RBM(3, 2, mask=ref)
    assert rbm.params().mask is rbm.mask


def test_topology_masks_still_pass():
    from physamp.topology import chimera_rbm

    top = chimera_rbm(2)
    rbm = physamp.RBM(top.mask.shape[1], top.mask.shape[0], mask=top.mask)
    assert rbm.num_connections() == int(top.mask.sum()) > 0
    s = make_sampler("gibbs", steps=2, seed=0).sample(rbm, 4)
    assert s.v.shape == (4, top.mask.shape[1])


def test_a_float_mask_samples_like_the_bool_one():
    rbm = random_rbm(4, 3, seed=2, mask=torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]]).bool())
    p = rbm.params()
    as_float = RBMParams(p.W, p.b, p.c, p.mask.float())
    a = make_sampler("gibbs", steps=5, seed=3, sparse=True).sample(as_float, 20)
    b = make_sampler("gibbs", steps=5, seed=3, sparse=True).sample(p, 20)
    assert torch.equal(a.v, b.v) and torch.equal(a.h, b.h)


# --- num_samples -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gibbs", "exact", "neal", "simulated"])
def test_num_samples_may_be_any_integral_number(rbm, name):
    for n in (np.int64(3), np.int32(3), np.uint8(3), 3):
        s = make_sampler(name, seed=0).sample(rbm, n)
        assert s.v.shape == (3, 4) and s.info["num_samples"] == 3 and type(s.info["num_samples"]) is int


@pytest.mark.parametrize("n", [0, -2, True, 2.0, np.float64(2.0), "2", None, np.int64(0)], ids=repr)
def test_num_samples_that_is_not_a_positive_integer_is_refused(rbm, n):
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        make_sampler("gibbs", steps=1).sample(rbm, n)


def test_steps_may_be_a_numpy_integer_but_not_a_fraction(rbm):
    s = make_sampler("gibbs", steps=np.int64(2), seed=0)
    assert s.sample(rbm, 2, steps=np.int32(3)).info["steps"] == 3
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        s.sample(rbm, 2, steps=2.5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        make_sampler("gibbs", steps=True)
    neal = make_sampler("neal", num_sweeps=np.int64(2), seed=0)
    assert neal.sample(rbm, 2, num_sweeps=np.int32(3)).info["num_sweeps"] == 3
    with pytest.raises(ValueError, match="num_sweeps must be a positive integer"):
        neal.sample(rbm, 2, num_sweeps=2.5)
