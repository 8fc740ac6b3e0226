"""The collapse check (issue 19): a model that does not beat a decoder ignoring z, the training
set's mean image scored exactly, learned nothing from z. Measured here on stand-in models whose
decoder is chosen: the mean image itself (must be collapsed: its IWAE equals the reference exactly)
and one that reads the image off z (must beat it), through the same
:func:`sigmavae.scores.beats_mean_image` that every notebook calls."""

import math

import pytest
import torch

from sigmavae import paper, scores
from sigmavae.artefacts import resolve
from sigmavae.cache import Store
from sigmavae.claims import Estimate
from sigmavae.config import TrainConfig
from sigmavae.sampling import StandardNormalPrior

SIGMA2 = 0.002


class MeanImageDecoder:
    """Ignores z: q(z|x) = p(z) = N(0, I) and g(z) = the training mean, so every IWAE bound is the
    mean image's exact log N(x; m, σ²I)."""

    variance, sigma2, latent_dim = "global", SIGMA2, 2

    def __init__(self, mean):
        self.mean = mean

    def encode(self, x):
        return torch.zeros(len(x), 2), torch.ones(len(x), 2)

    def decode(self, z):
        return self.mean.expand(len(z), *self.mean.shape), torch.full((1,), math.log(SIGMA2))


class ImageInZ(MeanImageDecoder):
    """Uses z: the encoder puts the image itself in a 784-d z (± 0.045), the decoder reads it back."""

    latent_dim = 28 * 28

    def encode(self, x):
        return x.flatten(1), torch.full((len(x), self.latent_dim), 0.045)

    def decode(self, z):
        return z.view(-1, 1, 28, 28), torch.full((1,), math.log(SIGMA2))


def margin(tmp_path, make):
    p = resolve("table3", profile="smoke", cache_dir=str(tmp_path / "cache"), device="cpu", progress=False)
    store = Store(runtime=p.runtime)
    config = TrainConfig(dataset=p.dataset, method="fixed", sigma2=SIGMA2, latent_dim=2, epochs1=1, epochs2=0)
    train = store.images(p.dataset, "train").float().div(255)
    model = make(train.mean(0))
    store.attach(config, tmp_path / "run", model)
    store.qhat = lambda *args, **kwargs: StandardNormalPrior(model.latent_dim)
    mean, se = scores.beats_mean_image(store, config, p, p.seeds[0])
    return Estimate([mean], [se])


def test_a_decoder_that_ignores_z_is_collapsed(tmp_path, one_thread):
    m = margin(tmp_path, MeanImageDecoder)
    assert m.mean == pytest.approx(0.0, abs=1e-4) and m.se == pytest.approx(0.0, abs=1e-4)  # float32
    assert paper.collapsed({"mean image": m}) == {"mean image": ""}


def test_a_decoder_that_reads_the_image_from_z_is_not(tmp_path, one_thread):
    m = margin(tmp_path, ImageInZ)
    # its KL to N(0, I) costs ~2000 nats, the mean image's error at σ² = 0.002 several times more
    assert m.mean > 100 and m.mean > 10 * m.se
    assert paper.collapsed({"reads z": m}) == {}


class MeanImageWithVarianceFromZ(MeanImageDecoder):
    """A per-pixel σ²(z) (Eq. 11) whose variance reads z while its mean ignores it: its samples are
    the mean image whatever z, so for claims about samples it is collapsed, whatever its
    likelihood with σ²(z). ``variance`` switches to "global" as the calibrated score asks."""

    variance, training = "pixel", False

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def set_sigma2(self, sigma2):
        self.sigma2 = sigma2

    def decode(self, z):
        mean = self.mean.expand(len(z), *self.mean.shape)
        if self.variance == "global":
            return mean, torch.full((1,), math.log(self.sigma2))
        return mean, (math.log(SIGMA2) + 2 * torch.tanh(z[:, :1])).view(-1, 1, 1, 1).expand_as(mean)


def pixel_margin(tmp_path, samples):
    p = resolve("table3", profile="smoke", cache_dir=str(tmp_path / "cache"), device="cpu", progress=False)
    store = Store(runtime=p.runtime)
    config = TrainConfig(dataset=p.dataset, method="sigma", latent_dim=2, epochs1=1, epochs2=1)
    assert scores.pixel_variance_of(config)
    model = MeanImageWithVarianceFromZ(store.images(p.dataset, "train").float().div(255).mean(0))
    store.attach(config, tmp_path / "run", model)
    store.qhat = lambda *args, **kwargs: StandardNormalPrior(model.latent_dim)
    return Estimate(*[[v] for v in scores.beats_mean_image(store, config, p, p.seeds[0], samples=samples)])


def test_for_samples_a_per_pixel_model_is_judged_by_its_decoder_mean(tmp_path, one_thread):
    """Issue 33: with σ²(z) its likelihood differs from the mean image's; its decoder mean alone, at
    its own best σ² (Eq. 10), is the mean image at the mean image's best σ², exactly: collapsed."""
    with_variance = pixel_margin(tmp_path / "a", samples=False)
    decoder_mean = pixel_margin(tmp_path / "b", samples=True)
    assert abs(with_variance.mean) > 10  # the variance network moves the likelihood
    assert decoder_mean.mean == pytest.approx(0.0, abs=1e-2)
    assert decoder_mean.se == pytest.approx(0.0, abs=1e-2)
    assert paper.collapsed({"ours": decoder_mean}) == {"ours": ""}
