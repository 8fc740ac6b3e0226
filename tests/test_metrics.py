"""IWAE, ELBO and KL(q̂‖p) on a linear-Gaussian model (probabilistic PCA), where log p(x) is exact."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from sigmavae.metrics import (
    elbo,
    iwae_log_likelihood,
    iwae_log_likelihoods,
    kl_divergence_mc,
    kl_divergences_mc,
)
from sigmavae.sampling import AggregatePosterior, GaussianMixturePrior, StandardNormalPrior

D, X_DIM, SIGMA2 = 2, 6, 0.3


class LinearGaussian(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I); q(z|x) diagonal, optionally perturbed."""

    def __init__(self, W, b, enc_A, enc_c, enc_std):
        super().__init__()
        self.latent_dim = W.shape[1]
        self.W, self.b, self.A, self.c, self.std = W, b, enc_A, enc_c, enc_std

    def encode(self, x):
        mu = x @ self.A.T + self.c
        return mu, self.std.expand_as(mu)

    def decode(self, z):
        return z @ self.W.T + self.b, torch.tensor(math.log(SIGMA2))

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + SIGMA2 * torch.eye(X_DIM)
        return MultivariateNormal(self.b, cov).log_prob(x)


def posterior(W, b):
    """Exact p(z|x) = N(M⁻¹Wᵀ(x - b), σ² M⁻¹), M = WᵀW + σ²I: (A, c, covariance)."""
    M = W.T @ W + SIGMA2 * torch.eye(D)
    A = torch.linalg.solve(M, W.T)
    return A, -A @ b, SIGMA2 * torch.linalg.inv(M)


def make(orthogonal: bool, perturb: float = 0.0):
    g = torch.Generator().manual_seed(1)
    W = torch.randn(X_DIM, D, generator=g, dtype=torch.float64)
    if orthogonal:  # orthogonal columns → M diagonal → the exact posterior is diagonal
        W = torch.linalg.qr(W).Q * torch.tensor([1.5, 0.7], dtype=torch.float64)
    b = torch.randn(X_DIM, generator=g, dtype=torch.float64)
    A, c, cov = posterior(W, b)
    std = cov.diagonal().sqrt() * (1 + perturb)
    model = LinearGaussian(W, b, A * (1 + perturb), c + perturb, std)
    z = torch.randn(300, D, generator=g, dtype=torch.float64)
    x = z @ W.T + b + SIGMA2 ** 0.5 * torch.randn(300, X_DIM, generator=g, dtype=torch.float64)
    return model, x


def test_exact_posterior_makes_elbo_and_iwae_equal_log_px():
    model, x = make(orthogonal=True)
    exact = model.exact_log_px(x)
    for k in (1, 7):
        torch.testing.assert_close(iwae_log_likelihood(model, x, k).double(), exact, atol=1e-4, rtol=0)


def test_bounds_are_ordered_and_iwae_converges_to_log_px():
    model, x = make(orthogonal=False, perturb=0.3)
    exact = float(model.exact_log_px(x).mean())
    elbo_value = elbo(model, x)["elbo"]
    per_image = {k: iwae_log_likelihood(model, x, k, seed=k) for k in (1, 5, 50, 5000)}
    iwae = {k: float(v.mean()) for k, v in per_image.items()}
    assert elbo_value < exact - 0.05  # the perturbed, mean-field q leaves a real gap
    # k = 1 is the ELBO: a single-sample estimate of it, within Monte Carlo error.
    assert abs(iwae[1] - elbo_value) < 4 * float(per_image[1].std()) / math.sqrt(len(x))
    assert iwae[1] < iwae[5] < iwae[50] < iwae[5000] <= exact + 0.01
    assert exact - iwae[5000] < 0.02 * (exact - iwae[1])


def test_iwae_under_q_hat_converges_to_the_marginal_likelihood_under_q_hat():
    """With p(z) replaced by a q̂ away from N(0, I), the model is p(x) = N(x; Wm + b, WSWᵀ + σ²I)
    for q̂ = N(m, S): exact, and several nats from log p(x) under N(0, I). One decoder pass scores
    both priors; with k = 4000 each is within Monte Carlo error of its own exact marginal."""
    model, x = make(orthogonal=False, perturb=0.3)
    g = torch.Generator().manual_seed(2)
    qhat = GaussianMixturePrior(1).fit(torch.tensor([0.8, -0.5]) + 0.6 * torch.randn(100_000, D, generator=g))
    m, S = (torch.from_numpy(a[0]) for a in (qhat.gmm.means_, qhat.gmm.covariances_))
    exact_q = MultivariateNormal(model.W @ m + model.b, model.W @ S @ model.W.T + SIGMA2 * torch.eye(X_DIM))
    want = {"prior": float(model.exact_log_px(x).mean()), "q̂": float(exact_q.log_prob(x).mean())}
    assert want["prior"] - want["q̂"] > 1.0  # the two priors give different models
    both = iwae_log_likelihoods(model, x, 4000, {"prior": StandardNormalPrior(D), "q̂": qhat}, seed=3)
    for name, value in both.items():
        assert float(value.mean()) == pytest.approx(want[name], abs=0.05), name
        assert float(value.mean()) <= want[name] + 0.01  # a lower bound, up to Monte Carlo error


def test_kl_mc_matches_analytic_for_one_component():
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[0.5, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.2, 0.1, 0.3]])
    z = torch.tensor([1.0, -0.5, 0.2]) + torch.randn(50_000, 3, generator=g) @ L.T
    qhat = GaussianMixturePrior(1).fit(z)
    m = torch.from_numpy(qhat.gmm.means_[0])
    S = torch.from_numpy(qhat.gmm.covariances_[0])
    analytic = 0.5 * float(S.trace() + m @ m - 3 - torch.logdet(S))
    mean, std = kl_divergence_mc(qhat, StandardNormalPrior(3), n=10_000, runs=10)
    assert std > 0
    assert abs(mean - analytic) < 4 * std / math.sqrt(10) + 1e-3


def test_kl_from_the_aggregate_posterior_matches_the_closed_form_for_each_target():
    """Section 5.1's estimator: an aggregate posterior whose components all coincide is one
    Gaussian N(m, diag s²), so KL(q‖p) and KL(q‖N(m', I)) have closed forms; both come from the same
    z ~ q, run by run."""
    m, s = torch.tensor([0.7, -1.2]), torch.tensor([0.4, 1.5])
    q = AggregatePosterior()
    q.mu, q.sigma = m.double().repeat(500, 1), s.double().repeat(500, 1)
    shifted = StandardNormalPrior(2)
    shifted.log_prob = lambda z: StandardNormalPrior(2).log_prob(z - torch.tensor([1.0, 0.0]))

    def closed_form(centre):
        return 0.5 * float((s.square() + (m - centre).square() - 1 - s.square().log()).sum())

    runs = kl_divergences_mc(q, {"prior": StandardNormalPrior(2), "shifted": shifted}, n=20_000, runs=4)
    for name, centre in (("prior", torch.zeros(2)), ("shifted", torch.tensor([1.0, 0.0]))):
        est = torch.tensor(runs[name], dtype=torch.float64)
        assert len(est) == 4 and len(set(runs[name])) == 4
        assert abs(float(est.mean()) - closed_form(centre)) < 4 * float(est.std()) / 2 + 1e-3, name


def test_iwae_rejects_k_below_one():
    model, x = make(orthogonal=True)
    with pytest.raises(ValueError, match="k must be"):
        iwae_log_likelihood(model, x, 0)


def test_auroc_and_spearman_agree_with_scikit_learn_and_scipy_under_ties():
    """Figure 3's measures, where most σ² tie at the floor: checked against independent code."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from sigmavae.metrics import auroc, spearman

    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 5, (400,), generator=g).double()  # heavy ties, as at the floor
    label = (score + torch.randn(400, generator=g, dtype=torch.float64) > 2.5)
    assert auroc(score, label) == pytest.approx(roc_auc_score(label.numpy(), score.numpy()), abs=1e-12)
    other = score + torch.randn(400, generator=g, dtype=torch.float64)
    assert spearman(score, other) == pytest.approx(spearmanr(score.numpy(), other.numpy())[0], abs=1e-12)


def test_the_mean_image_reference_is_the_exact_likelihood_of_a_decoder_that_ignores_z():
    """Issue 19's collapse reference: N(x; m, σ²I) with m the training mean. It equals the IWAE of
    a model whose decoder ignores z (W = 0, b = m) for any k, and its own σ² maximises the
    training likelihood."""
    from sigmavae.metrics import mean_image_log_likelihood

    g = torch.Generator().manual_seed(0)
    x_train, x_test = torch.rand(400, 1, 4, 4, generator=g), torch.rand(50, 1, 4, 4, generator=g)
    ll, s2 = mean_image_log_likelihood(x_train, x_test, sigma2=SIGMA2)
    m = x_train.double().mean(0)
    want = torch.distributions.Normal(m, SIGMA2 ** 0.5).log_prob(x_test.double()).flatten(1).sum(1)
    torch.testing.assert_close(ll, want, rtol=1e-5, atol=1e-4)
    assert s2 == SIGMA2
    flat = x_test.flatten(1).double()
    ignores_z = LinearGaussian(torch.zeros(16, D, dtype=torch.float64), m.flatten(), torch.zeros(D, 16,
                               dtype=torch.float64), torch.zeros(D, dtype=torch.float64),
                               torch.ones(D, dtype=torch.float64))
    for k in (1, 7):
        torch.testing.assert_close(iwae_log_likelihood(ignores_z, flat, k).double(), ll, rtol=1e-5, atol=1e-4)
    _, best = mean_image_log_likelihood(x_train, x_train)
    assert best == pytest.approx(float((x_train.double() - m).square().mean()), rel=1e-9)

    def train_ll(s):
        return float(mean_image_log_likelihood(x_train, x_train, sigma2=s)[0].mean())

    assert train_ll(best) > max(train_ll(best * 0.9), train_ll(best * 1.1))
