"""CelebA on a handful of generated JPEGs in the expected layout: loading, caching, B.2 networks."""

import numpy as np
import pytest
import torch
from PIL import Image

from sigmavae.config import TrainConfig
from sigmavae.data import DatasetNotFoundError, load_dataset
from sigmavae.models import VAE
from sigmavae.objectives import OBJECTIVES


def make_celeba(root, n=12, partition=True):
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:  # CelebA's aligned images are 178 wide, 218 high
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / name)
    if partition:  # the official file: 0 train, 1 validation, 2 test
        lines = [f"{name} {0 if i < 8 else 1 if i < 10 else 2}" for i, name in enumerate(names)]
        (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_loading_uses_the_partition_file_and_caches(tmp_path):
    folder = make_celeba(tmp_path)
    train = load_dataset("celeba", "train", root=tmp_path, dtype=torch.uint8)
    test = load_dataset("celeba", "test", root=tmp_path)
    assert train.shape == (10, 3, 128, 128) and train.dtype == torch.uint8  # partitions 0 and 1
    assert test.shape == (2, 3, 128, 128) and test.dtype == torch.float32
    assert 0 <= float(test.min()) and float(test.max()) <= 1
    for f in folder.iterdir():  # the cache alone serves later loads
        f.unlink()
    torch.testing.assert_close(load_dataset("celeba", "train", root=tmp_path, dtype=torch.uint8), train)


def test_without_partition_file_a_seeded_tenth_is_test(tmp_path):
    make_celeba(tmp_path, n=30, partition=False)
    test = load_dataset("celeba", "test", root=tmp_path)
    assert len(test) == 3 and len(load_dataset("celeba", "train", root=tmp_path)) == 27


def test_missing_celeba_says_where_to_get_and_put_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("celeba", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "celeba" / "img_align_celeba") in msg
    assert "mmlab.ie.cuhk.edu.hk" in msg and "never downloaded" in msg


def test_one_training_step_of_the_b2_networks(tmp_path):
    make_celeba(tmp_path, n=4, partition=False)
    x = load_dataset("celeba", "train", root=tmp_path)
    for method in ("sigma", "wae"):
        cfg = TrainConfig(dataset="celeba", method=method, latent_dim=256)
        model = VAE.from_config(cfg)
        if method == "sigma":
            model.start_pixel_variance(0.5)  # the stage-2 network, with its 128×128×1 variance
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss, t = OBJECTIVES[method](model, x, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and t.mean.shape == (3, 3, 128, 128)
        assert t.mu.shape == (3, 256)
        if method == "sigma":
            assert t.log_var.shape == (3, 1, 128, 128)
            assert all(p.grad is not None for p in model.variance_net.parameters())


def test_the_b2_networks_have_the_printed_shapes_and_size():
    """Appendix B.2 as printed: 128×128×3 in, the decoder's 4×4×512 map, 128×128 out, and as
    many decoder parameters as the printed layers imply (FC_256, Conv_4096 1×1, then 4×4
    transposed convs 1024, 512, 256, 128 with batch norm, and 3)."""
    from sigmavae.models import VAE, SameConvTranspose2d

    model = VAE(256, 3, variance="pixel", floor=0.01, image_size=128)
    z = torch.randn(2, 256)
    features = model.decoder.features(z)
    assert features.shape == (2, 512, 4, 4)
    mean, log_var = model.decode(z)
    assert mean.shape == (2, 3, 128, 128) and log_var.shape == (2, 1, 128, 128)
    assert model.encode(torch.rand(2, 3, 128, 128))[0].shape == (2, 256)
    decoder = sum(p.numel() for p in model.decoder.parameters())
    printed = [(256, 256, 1), (256, 4096, 1), (4096, 1024, 16), (1024, 512, 16), (512, 256, 16),
               (256, 128, 16), (128, 3, 16)]  # (in, out, kernel taps)
    bn = 2 * (1024 + 512 + 256 + 128)
    assert decoder == sum(i * o * k + o for i, o, k in printed) + bn  # 79.2M
    # TF 'SAME' transposed convolutions: output = input × stride, for B.2's three kinds
    for stride, size in ((1, 1), (1, 5), (2, 4), (4, 4)):
        assert SameConvTranspose2d(2, 3, 4, stride)(torch.zeros(1, 2, size, size)).shape[-1] == size * stride
