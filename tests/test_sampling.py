"""The prior and q̂ share one interface; q̂ is the mixture density of Eq. 13 (checked against scipy) and
its samples follow it; the exact aggregate posterior is Eq. 12 (checked against torch.distributions)."""

import numpy as np
import pytest
import torch

from sigmavae.sampling import GaussianMixturePrior, StandardNormalPrior


def two_blobs(n=4000):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 2, generator=g) * 0.2
    z[: n // 4] += torch.tensor([3.0, 0.0])  # weights 1/4, 3/4
    return z


def test_mixture_sample_matches_fit_and_is_shuffled():
    qhat = GaussianMixturePrior(2, seed=0).fit(two_blobs())
    s = qhat.sample(20_000, seed=1)
    assert s.shape == (20_000, 2)
    far = s[:, 0] > 1.5
    assert abs(float(far.float().mean()) - 0.25) < 0.02
    assert abs(float(s[far, 1].std()) - 0.2) < 0.02
    assert far[:100].any() and (~far[:100]).any()  # not grouped by component
    assert not torch.equal(qhat.sample(10, seed=1), qhat.sample(10, seed=2))
    assert torch.equal(qhat.sample(10, seed=3), qhat.sample(10, seed=3))


def two_separated_clusters():
    """100 points near (0, 0) and 300 near (40, -20), each with its own correlated covariance: so far
    apart (> 40 standard deviations) that EM's responsibilities are 0 or 1 to double precision, and
    its fixed point is known by hand: weights 1/4 and 3/4, each cluster's mean and (biased) sample
    covariance, plus scikit-learn's reg_covar = 1e-6 on the diagonal."""
    g = torch.Generator().manual_seed(0)
    L_a = torch.tensor([[0.5, 0.0], [0.3, 0.4]], dtype=torch.float64)
    L_b = torch.tensor([[0.2, 0.0], [-0.1, 0.6]], dtype=torch.float64)
    a = torch.randn(100, 2, generator=g, dtype=torch.float64) @ L_a.T
    b = torch.tensor([40.0, -20.0], dtype=torch.float64) + torch.randn(300, 2, generator=g,
                                                                        dtype=torch.float64) @ L_b.T
    parts = []
    for c in (a, b):
        m = c.mean(0)
        cov = (c - m).T @ (c - m) / len(c) + 1e-6 * torch.eye(2, dtype=torch.float64)
        parts.append((len(c) / 400, m.numpy(), cov.numpy()))
    return torch.cat([a, b])[torch.randperm(400, generator=g)], parts


@pytest.mark.parametrize("backend", ["torch", "sklearn"])
def test_mixture_log_prob_is_the_density_of_eq_13(backend):
    """q̂(z) = Σ_m w_m N(z; μ_m, Σ_m) for the mixture EM must reach, computed here with scipy."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    z, parts = two_separated_clusters()
    qhat = GaussianMixturePrior(2, seed=0, backend=backend).fit(z)
    g = qhat.gmm
    order = np.argsort(g.weights_)  # component order is EM's business: 1/4 first, then 3/4
    for (w, m, cov), k in zip(parts, order, strict=True):  # what sample() draws from
        assert g.weights_[k] == pytest.approx(w, abs=1e-9)
        np.testing.assert_allclose(g.means_[k], m, rtol=0, atol=1e-9)
        np.testing.assert_allclose(g.covariances_[k], cov, rtol=1e-7, atol=1e-10)
    points = np.concatenate([z[:20].numpy(), [[20.0, -10.0], [0.0, 3.0], [41.0, -18.0]]])  # and between
    exact = logsumexp([np.log(w) + multivariate_normal(m, cov).logpdf(points) for w, m, cov in parts], axis=0)
    got = qhat.log_prob(torch.from_numpy(points))
    assert got.shape == (len(points),)
    np.testing.assert_allclose(got.double().numpy(), exact, rtol=1e-6, atol=1e-5)
    # [..., D] in, [...] out, point by point
    torch.testing.assert_close(qhat.log_prob(torch.from_numpy(points).view(23, 1, 2)), got.view(23, 1))


def test_standard_normal_prior_is_n_0_i():
    from torch.distributions import MultivariateNormal

    p = StandardNormalPrior(3).fit(torch.randn(5, 3) + 7)  # fitting changes nothing
    z = torch.randn(100, 3) * 2
    exact = MultivariateNormal(torch.zeros(3), torch.eye(3)).log_prob(z)
    torch.testing.assert_close(p.log_prob(z), exact)
    s = p.sample(50_000, seed=0)
    torch.testing.assert_close(s.mean(0), torch.zeros(3), atol=0.02, rtol=0)  # 4.5 standard errors
    torch.testing.assert_close(torch.cov(s.T), torch.eye(3), atol=0.03, rtol=0)
    assert torch.equal(p.sample(10, seed=4), p.sample(10, seed=4))
    assert not torch.equal(p.sample(10, seed=4), p.sample(10, seed=5))


def test_too_many_components_is_refused():
    with pytest.raises(ValueError, match="cannot fit 10 mixture components to 5"):
        GaussianMixturePrior(10).fit(torch.randn(5, 2))


class FixedEncoder:
    """A stand-in encoder: image i has the posterior N(mu_i, diag(sigma_i²))."""

    def __init__(self, mu, sigma):
        self.mu, self.sigma = mu, sigma

    def encode(self, x):
        i = x.flatten(1)[:, 0].long()
        return self.mu[i], self.sigma[i]


def test_aggregate_posterior_is_the_mixture_of_eq_12():
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

    from sigmavae.sampling import AggregatePosterior

    g = torch.Generator().manual_seed(0)
    mu, sigma = torch.randn(300, 2, generator=g), 0.1 + torch.rand(300, 2, generator=g)
    x = torch.arange(300.0).view(300, 1, 1, 1)  # image i encodes to (mu_i, sigma_i)
    q = AggregatePosterior().fit(FixedEncoder(mu, sigma), x, batch_size=64)
    exact = MixtureSameFamily(Categorical(torch.ones(300)), Independent(Normal(mu, sigma), 1))
    z = torch.randn(500, 2, generator=g) * 2
    torch.testing.assert_close(q.log_prob(z, chunk=37), exact.log_prob(z), rtol=1e-5, atol=1e-5)
    s = q.sample(100_000, seed=0)  # the mixture's mean and variance
    torch.testing.assert_close(s.mean(0), mu.mean(0), atol=0.02, rtol=0)
    var = (sigma.square() + mu.square()).mean(0) - mu.mean(0).square()
    torch.testing.assert_close(s.var(0), var, rtol=0.03, atol=0)


def test_qhat_of_eq_13_fits_as_many_components_as_asked_to_the_posterior_samples():
    """Four well-separated posteriors: q̂ with M = 4 puts one component on each (its means are the
    centres, its held-out density beats M = 1's by far); with ``points`` it fits a seeded subset."""
    from sigmavae.sampling import fit_aggregate_posterior

    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, -4.0], [0.0, 4.0]])
    mu = centres.repeat(100, 1)  # image i encodes to N(centre of i mod 4, 0.1² I)
    x = torch.arange(400.0).view(400, 1, 1, 1)
    encoder = FixedEncoder(mu, torch.full_like(mu, 0.1))
    four, one = (fit_aggregate_posterior(encoder, x, m, seed=0) for m in (4, 1))
    means = torch.as_tensor(four.gmm.means_, dtype=torch.float32)
    assert torch.cdist(centres, means).min(1).values.max() < 0.05  # a component at every centre
    held_out = centres.repeat(50, 1) + 0.1 * torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    assert float(four.log_prob(held_out).mean() - one.log_prob(held_out).mean()) > 2.0
    assert four.fit_seconds > 0
    few = fit_aggregate_posterior(encoder, x, 2, seed=3, points=8)  # 8 of the 400 images
    assert len(few.gmm.weights_) == 2
    with pytest.raises(ValueError, match="cannot fit 9 mixture components to 8 training images"):
        fit_aggregate_posterior(encoder, x, 9, seed=3, points=8)


def test_torch_em_matches_scikit_learn_on_held_out_points(one_thread):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 5, generator=g) * 3

    def draw(n):
        c = torch.randint(6, (n,), generator=g)
        return centres[c] + torch.randn(n, 5, generator=g) * (0.3 + c[:, None] / 6)

    z, held_out = draw(3000), draw(2000)
    q = {b: GaussianMixturePrior(8, seed=0, backend=b).fit(z) for b in ("sklearn", "torch")}
    ll = {b: float(qb.log_prob(held_out).mean()) for b, qb in q.items()}
    assert ll["torch"] == pytest.approx(ll["sklearn"], rel=0.01)
    assert q["torch"].gmm.converged_ and q["torch"].gmm.n_iter_ < q["torch"].gmm.max_iter


@pytest.mark.parametrize("backend", ["torch", "sklearn"])
def test_saved_qhat_reloads_to_the_same_log_prob_and_samples(tmp_path, backend):
    qhat = GaussianMixturePrior(2, seed=3, backend=backend).fit(two_blobs())
    qhat.save(tmp_path / "qhat.pt")
    saved = torch.load(tmp_path / "qhat.pt", weights_only=True)  # plain tensors, ints and strs
    assert saved["n_components"] == 2 and saved["seed"] == 3 and saved["backend"] == backend
    loaded = GaussianMixturePrior.load(tmp_path / "qhat.pt")
    z = torch.randn(500, 2) * 2
    assert torch.equal(loaded.log_prob(z), qhat.log_prob(z))
    assert torch.equal(loaded.sample(300, seed=1), qhat.sample(300, seed=1))
    assert loaded.backend == backend and loaded.latent_dim == 2


class Hostile:
    """Unpickled, it would create ``path`` (standing for any code a pickle can run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_qhat_file_that_needs_unpickling_is_refused_and_never_run(tmp_path):
    from sigmavae.runs import CorruptFileError

    marker = tmp_path / "code-ran"
    torch.save(Hostile(marker), tmp_path / "qhat.pt")
    with pytest.raises(CorruptFileError, match=rf"refused {tmp_path / 'qhat.pt'}: it is not a plain-tensor "
                       r"q̂ file .*could run code\. Delete it"):
        GaussianMixturePrior.load(tmp_path / "qhat.pt")
    assert not marker.exists()
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")  # loads, but is no q̂
    with pytest.raises(CorruptFileError, match="not a plain-tensor q̂ file"):
        GaussianMixturePrior.load(tmp_path / "other.pt")
