"""The prior and q̂ share one interface; q̂ samples follow the fitted mixture."""

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


def test_mixture_log_prob_normalises():
    qhat = GaussianMixturePrior(2, seed=0).fit(two_blobs())
    grid = torch.stack(torch.meshgrid(torch.linspace(-2, 5, 351), torch.linspace(-3.5, 3.5, 351),
                                      indexing="ij"), -1)
    mass = qhat.log_prob(grid).exp().sum() * (7 / 350) ** 2
    assert float(mass) == pytest.approx(1.0, abs=0.01)


def test_prior_interface():
    p = StandardNormalPrior(3).fit(torch.zeros(5, 3))
    z = p.sample(50_000, seed=0)
    assert z.shape == (50_000, 3) and abs(float(z.std()) - 1) < 0.01
    torch.testing.assert_close(p.log_prob(torch.zeros(1, 3)), torch.tensor([-1.5 * 1.8378770664]))


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
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-7, 7, 281)] * 2, indexing="ij"), -1)
    assert float(q.log_prob(grid).exp().sum() * 0.05**2) == pytest.approx(1.0, abs=0.01)
    s = q.sample(100_000, seed=0)  # the mixture's mean and variance
    torch.testing.assert_close(s.mean(0), mu.mean(0), atol=0.02, rtol=0)
    var = (sigma.square() + mu.square()).mean(0) - mu.mean(0).square()
    torch.testing.assert_close(s.var(0), var, rtol=0.03, atol=0)


def test_torch_em_matches_scikit_learn_on_held_out_points():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 5, generator=g) * 3

    def draw(n):
        c = torch.randint(6, (n,), generator=g)
        return centres[c] + torch.randn(n, 5, generator=g) * (0.3 + c[:, None] / 6)

    z, held_out = draw(3000), draw(2000)
    ll = {b: float(GaussianMixturePrior(8, seed=0, backend=b).fit(z).log_prob(held_out).mean())
          for b in ("sklearn", "torch")}
    assert ll["torch"] == pytest.approx(ll["sklearn"], rel=0.01)
    q = GaussianMixturePrior(8, seed=0, backend="torch").fit(z)  # a complete scikit-learn object
    assert q.gmm.converged_ and q.sample(10, seed=0).shape == (10, 5)
    torch.testing.assert_close(torch.from_numpy(q.gmm.score_samples(held_out.double().numpy())).float(),
                               q.log_prob(held_out))


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
