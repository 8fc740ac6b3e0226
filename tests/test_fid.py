"""FID: the Fréchet distance's closed form, the Inception pipeline offline, classifier FID's sense."""

import numpy as np
import pytest
import torch

from sigmavae import fid as fidmod
from sigmavae.data import load_dataset


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = fidmod.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)  # 5 + (4 + 1 + 0) = 10


def test_frechet_distance_rotated_covariances():
    """Σ₁ = R diag(a) Rᵀ, Σ₂ = R diag(b) Rᵀ commute, so tr (Σ₁Σ₂)^{1/2} = Σ √(a b)."""
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    got = fidmod.frechet_distance(np.zeros(4), R @ np.diag(a) @ R.T, np.zeros(4), R @ np.diag(b) @ R.T)
    assert got == pytest.approx(np.sum(a + b - 2 * np.sqrt(a * b)), rel=1e-7)


def test_inception_pipeline_with_random_weights_downloads_nothing(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    extractor = fidmod.inception_extractor("random")
    grey = torch.rand(3, 1, 28, 28)
    features = extractor(grey, batch_size=2)
    assert features.shape == (3, 2048) and extractor.dims == 2048
    rgb = extractor(grey.expand(-1, 3, -1, -1), batch_size=2)  # replication = passing RGB copies
    np.testing.assert_allclose(features, rgb, rtol=1e-5, atol=1e-6)
    x = torch.rand(40, 1, 28, 28)
    stats = fidmod.statistics(extractor(x))
    assert fidmod.fid(x, stats, extractor) == pytest.approx(0.0, abs=1e-3)


def test_missing_inception_weights_error_says_what_and_where(monkeypatch, tmp_path):
    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        fidmod.inception_extractor()
    msg = str(err.value)
    assert fidmod.INCEPTION_FILE in msg and str(tmp_path / "checkpoints") in msg
    assert "--fid-weights" in msg and "--fid classifier" in msg
    with pytest.raises(FileNotFoundError, match="not found at /nowhere"):
        fidmod.inception_extractor("/nowhere")


def test_classifier_fid_ranks_real_above_pixel_shuffled(tmp_path):
    extractor = fidmod.classifier_extractor("digits", cache_dir=tmp_path)
    assert extractor.info["test_accuracy"] > 0.9
    assert (tmp_path / "classifier-digits-e10.pt").is_file()
    real = fidmod.real_statistics(extractor, "digits", "train", 1500, cache_dir=tmp_path)
    test = load_dataset("digits", "test")
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(0))
    shuffled = test.flatten(1)[:, perm].view_as(test)
    held_out, scrambled = fidmod.fid(test, real, extractor), fidmod.fid(shuffled, real, extractor)
    assert scrambled > 10 * held_out
    # cached: a second call reads the .npz and the saved classifier
    assert list((tmp_path / "fid-stats").iterdir())[0].name == "classifier-e10-digits-train-1500.npz"
    again = fidmod.classifier_extractor("digits", cache_dir=tmp_path)
    np.testing.assert_allclose(again(test[:5]), extractor(test[:5]))


def test_fid_bootstrap_std_matches_the_spread_over_fresh_samples():
    """Two samples of one Gaussian: their FID varies from draw to draw; the bootstrap of a single
    pair must estimate that spread (within a factor of 2), which is what the claims rely on."""
    import numpy as np

    from sigmavae.fid import fid_with_std

    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.5, 2.0, 8))

    def draw():
        return rng.multivariate_normal(np.zeros(8), cov, 400)

    fresh = [fid_with_std(draw(), draw(), n_boot=0)[0] for _ in range(60)]
    value, std = fid_with_std(draw(), draw(), n_boot=60, seed=1)
    assert 0 < value < 0.5  # same distribution: only the finite-sample bias
    assert 0.5 < std / np.std(fresh, ddof=1) < 2.0


def test_auto_takes_inception_wherever_its_weights_can_be_had(tmp_path, monkeypatch):
    import torch

    from sigmavae.fid import INCEPTION_FILE, choose_fid

    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert choose_fid("auto") == "classifier"  # offline, nothing here
    assert choose_fid("auto", download=True) == "inception"  # pytorch-fid may fetch them
    monkeypatch.setenv("SIGMAVAE_DOWNLOAD", "1")
    assert choose_fid("auto") == "inception" and choose_fid("auto", download=False) == "classifier"
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD")
    weights = tmp_path / INCEPTION_FILE
    weights.write_bytes(b"")
    assert choose_fid("auto", weights=str(weights)) == "inception"
    monkeypatch.setenv("SIGMAVAE_FID_WEIGHTS", str(weights))
    assert choose_fid("auto") == "inception"
    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / INCEPTION_FILE).write_bytes(b"")
    assert choose_fid("auto") == "inception"  # torch hub's cache
    assert choose_fid("classifier") == "classifier"


def test_celeba_without_inception_stops_before_training(tmp_path, monkeypatch):
    import torch

    from sigmavae.experiments import resolve

    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for fid in ("classifier", "auto"):
        with pytest.raises(ValueError, match="CelebA's FID needs Inception features.*-p download True"):
            resolve("table2", profile="smoke", dataset="celeba", fid=fid)
    assert resolve("table3", profile="smoke", dataset="celeba").dataset == "celeba"  # no FID there
    assert resolve("table2", profile="smoke", dataset="celeba", download=True).fid == "auto"
