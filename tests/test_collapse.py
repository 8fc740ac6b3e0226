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
