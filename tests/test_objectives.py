"""Baseline objectives: DIP-VAE's covariance penalty, WAE's MMD, and one step of each method."""

import pytest
import torch

from sigmavae.data import load_dataset
from sigmavae.objectives import OBJECTIVES, dip_covariance, imq_mmd
from sigmavae.training import TrainConfig, build_model


def test_dip_covariances_are_the_batch_moments():
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[1.0, 0.0], [0.6, 0.5]])
    mu = torch.randn(100_000, 2, generator=g) @ L.T
    sigma = torch.full_like(mu, 0.3)
    cov_i = dip_covariance(mu, sigma, "i")
    torch.testing.assert_close(cov_i, L @ L.T, atol=0.02, rtol=0)
    torch.testing.assert_close(dip_covariance(mu, sigma, "ii"), cov_i + 0.09 * torch.eye(2))


def test_mmd_separates_distributions_and_vanishes_on_equal_ones():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1000, 8, generator=g)
    same = float(imq_mmd(a, b))
    shifted = float(imq_mmd(a + 0.5, b))
    assert abs(same) < 0.01 and shifted > 20 * abs(same)
    assert float(imq_mmd(b, a + 0.5)) == pytest.approx(shifted, rel=1e-5)  # symmetric


@pytest.mark.parametrize("method", list(OBJECTIVES))
def test_one_step_of_each_method_lowers_its_loss_on_a_fixed_batch(method):
    cfg = TrainConfig(dataset="synthetic", method=method, latent_dim=4, lr=1e-3)
    model = build_model(cfg)
    x = load_dataset("synthetic")[:64]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(5):
        torch.manual_seed(0)  # same noise: the loss is a deterministic function of the weights
        loss, terms = OBJECTIVES[method](model, x, cfg)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_methods_fix_their_variance_and_refuse_a_conflicting_one():
    assert TrainConfig(method="vae").sigma2 == 0.5
    assert TrainConfig(method="beta-vae").sigma2 == 1.0
    assert TrainConfig(method="dip-vae").sigma2 == 0.5
    assert TrainConfig(method="dip-vae", dip_type="i").dip_lambdas() == (10.0, 100.0)
    assert TrainConfig(method="dip-vae", dip_type="ii").dip_lambdas() == (10.0, 10.0)
    assert TrainConfig(method="wae").wae_lambda_value() == 10.0
    assert TrainConfig(method="wae", dataset="celeba").wae_lambda_value() == 100.0
    with pytest.raises(ValueError, match="method vae fixes σ² = 0.5"):
        TrainConfig(method="vae", sigma2=0.3)


def test_beta_weights_the_kl_term():
    x = load_dataset("synthetic")[:32]
    losses = {}
    for beta in (1.0, 4.0):
        cfg = TrainConfig(dataset="synthetic", method="vae", latent_dim=4, beta=beta)
        torch.manual_seed(0)
        loss, t = OBJECTIVES["vae"](build_model(cfg), x, cfg)
        losses[beta] = (float(loss), float(t.kl.mean()))
    assert losses[4.0][0] - losses[1.0][0] == pytest.approx(3 * losses[1.0][1], rel=1e-4)


def test_the_closed_form_objective_returns_eq_10_and_leaves_the_model_alone():
    from sigmavae.likelihoods import gaussian_log_prob, optimal_sigma2

    cfg = TrainConfig(dataset="synthetic", latent_dim=4, sigma_update="closed_form")
    model = build_model(cfg)
    x = load_dataset("synthetic")[:64]
    before = model.sigma.detach().clone()
    loss, t = OBJECTIVES["sigma"](model, x, cfg)
    assert torch.equal(model.sigma.detach(), before)  # σ is written by the training step, not here
    torch.testing.assert_close(t.sigma2_star, optimal_sigma2(x, t.mean).detach())  # Eq. 10, same pass
    # The likelihood of this batch is evaluated at this batch's σ²_*.
    torch.testing.assert_close(t.recon, gaussian_log_prob(x, t.mean, t.sigma2_star.log()))
    torch.testing.assert_close(loss, -(t.recon - t.kl).mean())
    model.set_sigma2(t.sigma2_star)  # what run_epoch does: the stored model then gives the same loss
    assert torch.equal(model.log_sigma2().detach(), t.log_var)
    adam = TrainConfig(dataset="synthetic", latent_dim=4)  # Algorithm 1's Adam on σ: nothing to store
    assert OBJECTIVES["sigma"](model, x, adam)[1].sigma2_star is None
