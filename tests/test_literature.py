"""Beyond the paper (issue 22): the step bound on Adam's σ² and the page's claims, decided by the rule."""

import math

import pytest
import torch

from sigmavae.claims import Estimate
from sigmavae.literature import MNIST_8BIT, adam_sigma_bound, sigma_learning_claims, stage2_claims


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_adam_cannot_take_sigma2_below_the_bound_and_a_steady_gradient_reaches_it(param):
    """Adam on σ (or log σ) from σ = 1, pushed down by the same gradient every step: its steps are
    the learning rate, so after n steps it sits at the bound; a noisy gradient of the same sign
    gets no further."""
    lr, steps = 5e-4, 1500  # σ = 1 − 0.75 at the bound
    bound = adam_sigma_bound(lr, steps)[param]
    for noise in (0.0, 0.5):
        g = torch.Generator().manual_seed(0)
        w = torch.zeros(1, requires_grad=True) if param == "log_sigma" else torch.ones(1, requires_grad=True)
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            w.grad = torch.ones(1) * (1 + noise * torch.rand(1, generator=g))  # always downhill
            opt.step()
        w = w.detach()
        sigma2 = float(w.exp() ** 2 if param == "log_sigma" else w ** 2)
        assert sigma2 >= bound * (1 - 1e-3)
        if noise == 0.0:
            assert sigma2 == pytest.approx(bound, rel=1e-2)


def test_log_sigma_needs_longer_to_reach_a_small_sigma2():
    """From σ = 1 to σ² = 0.006: 0.92 of σ against 2.56 of log σ, at the same step size."""
    target = 0.006
    reach = {p: next(n for n in range(1, 10**5) if adam_sigma_bound(5e-4, n)[p] <= target)
             for p in ("sigma", "log_sigma")}
    assert reach["log_sigma"] / reach["sigma"] == pytest.approx(math.log(1 / math.sqrt(target))
                                                                / (1 - math.sqrt(target)), rel=1e-3)


def one_seed(mean, se):
    return Estimate([mean], [se])


def test_stage2_claims_follow_the_rule_and_a_collapsed_model_leaves_them_unresolved():
    fids = {"qhat": one_seed(4, 1), "prior": one_seed(0.5, 1)}
    claims = stage2_claims(one_seed(50, 5), one_seed(-30, 5), fids)
    assert [c.verdict for c in claims] == ["holds", "fails", "holds", "unresolved"]
    gone = stage2_claims(one_seed(50, 5), one_seed(40, 5), {"qhat": one_seed(4, 1)},
                         collapsed_models=["ours, global σ², equal epochs"])
    assert {c.verdict for c in gone} == {"unresolved"} and "collapsed" in gone[0].basis


def test_sigma_learning_claims_name_their_direction():
    claims = sigma_learning_claims(one_seed(270, 10), one_seed(-18, 4), one_seed(-3, 1))
    assert [c.verdict for c in claims] == ["holds", "fails", "fails"]
    assert "log σ lags" in claims[0].text and "Adam − Eq. 10" in claims[2].text


def test_published_numbers_name_what_they_are():
    assert all(0.5 < v < 3 and ref and conv for _, v, ref, conv in MNIST_8BIT)
