"""FID: the Fréchet distance's closed form, the Inception pipeline offline, classifier FID's sense."""

import numpy as np
import pytest
import torch

from sigmavae import fid as fidmod
from sigmavae.data import load_dataset
from sigmavae.runtime import Runtime


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


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """Two files of random FID-Inception weights (pytorch-fid's architecture; its download and
    torchvision's weight loading switched off here, in the test, to build them)."""
    import pytorch_fid.inception as pi
    import torchvision.models.inception as tv

    paths = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pi, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(tv.Inception3, "load_state_dict", lambda self, *a, **k: None)
        for seed in (0, 1):
            torch.manual_seed(seed)
            path = tmp_path_factory.mktemp("weights") / fidmod.INCEPTION_FILE
            torch.save(pi.fid_inception_v3().state_dict(), path)
            paths.append(path)
    return paths


def test_inception_features_come_from_the_weights_given_and_nothing_is_downloaded(monkeypatch,
                                                                                 random_inception):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    hub = torch.hub.get_dir()
    a, b = (fidmod.inception_extractor(runtime=Runtime(device="cpu", fid_weights=str(p)))
            for p in random_inception)
    assert torch.hub.get_dir() == hub  # set back
    grey = torch.rand(3, 1, 28, 28)
    features = a(grey, batch_size=2)
    assert features.shape == (3, 2048) and a.dims == 2048
    rgb = a(grey.expand(-1, 3, -1, -1), batch_size=2)  # replication = passing RGB copies
    np.testing.assert_allclose(features, rgb, rtol=1e-5, atol=1e-6)
    assert not np.allclose(features, b(grey))  # the other file's weights: other features
    # pytorch-fid's own network with the first file's weights gives the same features
    import pytorch_fid.inception as pi

    weights = torch.load(random_inception[0], weights_only=True)
    monkeypatch.setattr(pi, "load_state_dict_from_url", lambda *args, **kwargs: weights)
    net = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    with torch.no_grad():
        want = net(grey.expand(-1, 3, -1, -1))[0].flatten(1).double().numpy()
    np.testing.assert_allclose(features, want, rtol=1e-5, atol=1e-6)


def test_a_weights_file_that_is_not_tensors_is_refused(tmp_path):
    bad = tmp_path / fidmod.INCEPTION_FILE
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt or truncated.*pytorch-fid"):
        fidmod.inception_extractor(runtime=Runtime(device="cpu", fid_weights=str(bad)))


def test_missing_inception_weights_error_says_what_and_where(monkeypatch, tmp_path):
    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        fidmod.inception_extractor(runtime=Runtime(device="cpu"))
    msg = str(err.value)
    assert fidmod.INCEPTION_FILE in msg and str(tmp_path / "checkpoints") in msg
    assert "--fid-weights" in msg and "--fid classifier" in msg
    with pytest.raises(FileNotFoundError, match="not found at /nowhere"):
        fidmod.inception_extractor(runtime=Runtime(device="cpu", fid_weights="/nowhere"))


def test_classifier_fid_ranks_real_above_pixel_shuffled(tmp_path, monkeypatch):
    here = Runtime(device="cpu", cache_dir=tmp_path)
    extractor = fidmod.classifier_extractor("digits", runtime=here)
    assert extractor.info["test_accuracy"] > 0.9
    real = fidmod.real_features(extractor, "digits", "train", 1500, runtime=here)
    test = load_dataset("digits", "test")
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(0))
    shuffled = test.flatten(1)[:, perm].view_as(test)

    def fid(images):
        return fidmod.frechet_distance(*fidmod.statistics(extractor(images)), *fidmod.statistics(real))

    assert fid(shuffled) > 10 * fid(test)
    # cached: a second extractor is the saved classifier, trained nowhere
    import sigmavae.classifier as classifier

    monkeypatch.setattr(classifier, "train_classifier", lambda *a, **k: pytest.fail("trained again"))
    again = fidmod.classifier_extractor("digits", runtime=here)
    np.testing.assert_allclose(again(test[:5]), extractor(test[:5]))
    np.testing.assert_array_equal(fidmod.real_features(again, "digits", "train", 1500, runtime=here), real)


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
    from sigmavae.fid import INCEPTION_FILE, choose_fid

    def choose(kind="auto", **runtime):
        return choose_fid(kind, Runtime(**runtime))

    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert choose() == "classifier"  # offline, nothing here
    assert choose(download=True) == "inception"  # pytorch-fid may fetch them
    monkeypatch.setenv("SIGMAVAE_DOWNLOAD", "1")
    assert choose() == "inception" and choose(download=False) == "classifier"
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD")
    weights = tmp_path / INCEPTION_FILE
    weights.write_bytes(b"")
    assert choose(fid_weights=str(weights)) == "inception"
    monkeypatch.setenv("SIGMAVAE_FID_WEIGHTS", str(weights))
    assert choose() == "inception"
    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / INCEPTION_FILE).write_bytes(b"")
    assert choose() == "inception"  # torch hub's cache
    assert choose("classifier") == "classifier"
    with pytest.raises(ValueError, match="unknown FID kind 'kid'"):
        choose("kid")


def test_celeba_without_inception_stops_before_training(tmp_path, monkeypatch):
    from sigmavae.artefacts import resolve

    monkeypatch.delenv("SIGMAVAE_FID_WEIGHTS", raising=False)
    monkeypatch.delenv("SIGMAVAE_DOWNLOAD", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for fid in ("classifier", "auto"):
        with pytest.raises(ValueError, match="CelebA's FID needs Inception features.*-p download True"):
            resolve("table2", profile="smoke", dataset="celeba", fid=fid)
    assert resolve("table3", profile="smoke", dataset="celeba").dataset == "celeba"  # no FID there
    assert resolve("table2", profile="smoke", dataset="celeba", download=True).fid == "auto"


def test_paired_bootstrap_of_two_fids_against_one_real_set_removes_its_noise():
    """FID(A, R) − FID(B, R), A and B from one distribution: the real set R's resampling moves both
    FIDs alike, so the paired replicates' std (issue 19) is well below √(se_A² + se_B²), and on the
    safe side of the spread of the difference over fresh draws of A, B and R."""
    from sigmavae.fid import fid_bootstrap, paired_std

    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.5, 2.0, 8))

    def draw(n):
        return rng.multivariate_normal(np.zeros(8), cov, n)

    real = draw(300)  # fewer real images than generated: the real set's noise dominates
    a, b = draw(2000), draw(2000)
    (_, ra), (_, rb) = fid_bootstrap(a, real, 100, seed=3), fid_bootstrap(b, real, 100, seed=3)
    paired, unpaired = paired_std(ra, rb), float(np.hypot(ra.std(ddof=1), rb.std(ddof=1)))
    assert paired < 0.5 * unpaired
    def fresh_difference():  # new A, B and R: what the paired error estimates
        r = draw(300)
        return fid_bootstrap(draw(2000), r, 0)[0] - fid_bootstrap(draw(2000), r, 0)[0]

    spread = np.std([fresh_difference() for _ in range(40)], ddof=1)
    # measured: paired 0.032, fresh 0.020; the bootstrap errs high (resampled sets repeat points,
    # which inflates the covariance terms), as the single FID's does (0.053 against 0.027 here)
    assert 1.0 < paired / spread < 2.5
    with pytest.raises(ValueError, match="paired replicates"):
        paired_std(ra, rb[:10])


def test_the_fid_classifier_says_each_epoch_and_what_is_left_and_trains_the_same_either_way():
    """Issue 31: the FID classifier trained silently for minutes before a page's first FID."""
    from sigmavae.classifier import train_classifier

    x = load_dataset("digits", "train", dtype=torch.uint8)[:256]
    y = torch.arange(256) % 10
    lines = []
    told = train_classifier(x, y, epochs=3, log=lines.append)
    epochs = [line.split(" after ")[0] for line in lines]
    assert epochs == [f"  FID classifier: epoch {e} of 3" for e in (1, 2, 3)]
    assert lines[0].endswith(" s left") and lines[-1].endswith("about 0 s left")
    quiet = train_classifier(x, y, epochs=3)
    assert all(torch.equal(a, b) for a, b in zip(told.state_dict().values(), quiet.state_dict().values(),
                                                 strict=True))
