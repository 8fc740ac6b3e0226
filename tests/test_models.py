"""Appendix B.1 networks: shapes, layer sizes, and the symmetric padding."""

import numpy as np
import pytest
import torch
from torch import nn

from sigmavae.models import VAE, symmetric_pad


def test_symmetric_pad_is_numpys_symmetric_mode():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).view(1, 2, 28, 28)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="symmetric")
    np.testing.assert_array_equal(symmetric_pad(x, 2).numpy(), expected)


def test_output_shapes_and_ranges():
    model = VAE(latent_dim=16)
    x = torch.rand(3, 1, 28, 28)
    mu, sigma = model.encode(x)
    assert mu.shape == sigma.shape == (3, 16) and (sigma > 0).all()
    z = torch.randn(3, 16)
    features = model.decoder.features(z)
    assert features.shape == (3, 64, 8, 8)  # the R^{8×8×64} tensor the variance net reads
    mean, log_var = model.decode(z)
    assert mean.shape == (3, 1, 28, 28) and ((mean > 0) & (mean < 1)).all()
    assert log_var.dim() == 0
    model.start_pixel_variance(0.5)
    _, log_var = model.decode(z)
    assert log_var.shape == (3, 1, 28, 28)


def test_layer_sizes_are_the_appendix():
    model = VAE(latent_dim=16)
    convs = lambda m: [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0])  # noqa: E731
                       for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert convs(model.encoder) == [(1, 16, 4, 2), (16, 64, 4, 2), (64, 256, 4, 2)]
    assert (model.encoder.fc.in_features, model.encoder.fc.out_features) == (4096, 64)
    assert model.encoder.fc_mu.out_features == model.encoder.fc_sigma.out_features == 16
    assert model.decoder.fc.out_features == 4096
    assert convs(model.decoder) == [(256, 256, 3, 1), (64, 64, 3, 1), (16, 16, 3, 1), (4, 1, 5, 1)]
    assert convs(model.variance_net) == [(64, 128, 3, 1), (32, 32, 3, 1), (8, 1, 5, 1)]


def test_stage_switch_starts_at_sigma2_dataset_and_respects_floor():
    model = VAE(latent_dim=16, variance="global", sigma2=0.01)
    model.start_pixel_variance(0.5)
    assert model.floor == pytest.approx(0.005)
    assert not model.sigma.requires_grad
    with torch.no_grad():
        var = model.decode(torch.randn(64, 16))[1].exp()
    assert (var >= 0.005 * (1 - 1e-5)).all()
    assert 0.5 < float(var.median()) / 0.01 < 2  # continuous with stage 1 (deviation 7)


def test_sigma_parameterisations_agree():
    for param in ("sigma", "log_sigma"):
        model = VAE(variance="global", sigma2=0.02, sigma_param=param)
        assert model.sigma2 == pytest.approx(0.02)
        model.set_sigma2(0.3)
        assert model.sigma2 == pytest.approx(0.3)
