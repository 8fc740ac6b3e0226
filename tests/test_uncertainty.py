"""Figures 3-4 (§5.4) against a map that ignores z (issue 19, item 5).

σ² beating chance at marking the pixels of largest error says little: errors sit where the images
vary, which the training set's per-pixel variance knows without looking at z. These tests decide
the claims on hand-made numbers, then measure them (:func:`sigmavae.scores.uncertainty_score`) on
the embedded digits with tiny stand-in models whose σ²(z) is chosen: the true squared error (must
beat the map), the map itself (no better), a constant (worse; and no rank correlation on samples)."""

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from sigmavae import experiments, paper, reports, scores
from sigmavae.artefacts import ours_model, resolve
from sigmavae.cache import Store
from sigmavae.claims import Estimate


def one(value, se=None):
    return Estimate([value], None if se is None else [se])


def claims(over):
    return paper.uncertainty_claims(over)


def figure4(rho):
    """Figure 4's check (against chance)."""
    return paper.uncertainty_checks(one(0.8, 0.01), one(0.3, 0.02), rho)[2]


# ----------------------------------------------------------------------------- the claims


@pytest.mark.parametrize("over, se, verdict", [
    (0.05, 0.01, "holds"),  # clearly better than the map that ignores z
    (0.0, 0.01, "unresolved"), (0.015, 0.01, "unresolved"),  # no better, or not by 2 se
    (-0.05, 0.01, "fails"),  # worse than the map
    (0.05, None, "unresolved"),  # no error estimate
])
def test_sigma2_must_beat_the_map_that_ignores_z_not_only_chance(over, se, verdict):
    (trivial,) = claims(one(over, se))
    chance = paper.uncertainty_checks(one(0.8, 0.01), one(0.3, 0.02), one(0.4, 0.01))[0]
    assert chance["passed"]  # AUROC 0.8 beats chance whatever the map does: a check
    assert trivial.verdict == verdict and trivial.margin == pytest.approx(over)
    assert "ignores z" in trivial.text and "per-pixel variance" in trivial.text
    assert (trivial.se is None) == (se is None) and (se is None or trivial.se == pytest.approx(se))


def test_the_map_comparison_over_seeds_is_decided_by_their_spread():
    # 0.02, 0.03, 0.04: std 0.01, se 0.0058 → holds, though each seed's own ± 0.5 decides nothing
    assert claims(Estimate([0.02, 0.03, 0.04], [0.5] * 3))[0].verdict == "holds"
    assert claims(Estimate([-0.1, 0.03, 0.16], [0.001] * 3))[0].verdict == "unresolved"


@pytest.mark.parametrize("rho, se, passed", [(0.4, 0.01, True), (0.01, 0.01, False),
                                             (-0.3, 0.02, False), (math.nan, math.nan, False)])
def test_figure4_sigma2_of_samples_follows_where_the_training_images_vary(rho, se, passed):
    """Figure 4's statement has chance as its only comparator: a check, decided by the same rule."""
    check = paper.uncertainty_checks(one(0.8, 0.01), one(0.3, 0.02), one(rho, se))[2]
    assert check["passed"] is passed
    assert "samples from q̂" in check["text"] and "per-pixel variance" in check["text"]


def test_the_claims_need_their_numbers():
    with pytest.raises(TypeError):
        paper.uncertainty_claims()


# ----------------------------------------------------------------------------- the measurement


def test_pixel_variance_is_the_variance_over_images_averaged_over_channels():
    x = torch.randint(0, 256, (50, 3, 4, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    expected = (x.double() / 255).var(0, unbiased=False).mean(0).flatten()
    assert torch.allclose(scores.pixel_variance(x), expected, rtol=1e-12, atol=1e-15)
    assert torch.allclose(scores.pixel_variance(x.float() / 255), expected, rtol=1e-6, atol=1e-9)
    assert scores.pixel_variance(x).shape == (20,)


FLOOR = 0.01


class ImageLatents:
    """A stand-in for a trained ours: z is the image itself, the reconstruction is the image blurred
    (wrong at the strokes' edges), and σ²(x, reconstruction) [N, 1, 28, 28] is what the test says."""

    floor, sigma2, latent_dim = FLOOR, 2 * FLOOR, 28 * 28

    def __init__(self, sigma2_of):
        self.sigma2_of = sigma2_of

    def encode(self, x):
        return x.flatten(1), torch.ones(len(x), self.latent_dim)

    def decode(self, z):
        x = z.view(-1, 1, 28, 28)
        recon = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return recon, self.sigma2_of(x, recon).log()


class TrainingImages:
    """A stand-in for q̂ that draws training images (as latents of :class:`ImageLatents`)."""

    def __init__(self, x):
        self.x = x.float().div(255).flatten(1)

    def sample(self, n, seed=None):
        return self.x[torch.randint(len(self.x), (n,), generator=torch.Generator().manual_seed(seed))]


@pytest.fixture(autouse=True)
def _small(request, monkeypatch):
    """Fewer test images and samples than the notebooks' 1000 (the ranks' sorts dominate): seconds."""
    if "tmp_path" in request.fixturenames:
        monkeypatch.setattr(scores, "UNCERTAINTY_IMAGES", 100)
        monkeypatch.setattr(scores, "UNCERTAINTY_SAMPLES", 200)
        request.getfixturevalue("one_thread")


def _store(tmp_path, sigma2_of):
    p = resolve("figure3_4", profile="smoke", cache_dir=str(tmp_path / "cache"), device="cpu", progress=False)
    store = Store(runtime=p.runtime)
    config = ours_model(p, p.seeds[0])["ours"]
    store.attach(config, tmp_path / "run", ImageLatents(sigma2_of))
    train = store.images(p.dataset, "train")
    store.qhat = lambda *args, **kwargs: TrainingImages(train)
    return p, store, config, scores.pixel_variance(train).view(1, 1, 28, 28)


def _error(x, recon):
    return (recon - x).square().double() + FLOOR


def test_sigma2_equal_to_the_error_beats_the_map_that_ignores_z(tmp_path):
    p, store, config, _ = _store(tmp_path, _error)
    s = scores.uncertainty_score(store, config, p, p.seeds[0], n_boot=10)
    assert s["auroc"] == pytest.approx(1.0)  # σ² is the error: it ranks every top-5% pixel first
    assert 0.5 < s["auroc_trivial"] < 0.99  # the map knows where errors tend to be, not which
    assert s["auroc_over_trivial"] == pytest.approx(s["auroc"] - s["auroc_trivial"])
    over = Estimate([s["auroc_over_trivial"]], [s["auroc_over_trivial_std"]])
    assert s["auroc_over_trivial_std"] > 0  # from the image resamples
    claim = claims(over)[0]
    assert claim.verdict == "holds", claim
    assert s["generated_samples"] == scores.UNCERTAINTY_SAMPLES


def test_sigma2_equal_to_the_training_variance_is_no_better_than_it(tmp_path):
    p, store, config, trivial = _store(tmp_path, lambda x, recon: (trivial + FLOOR).expand(len(x), 1, 28, 28))
    s = scores.uncertainty_score(store, config, p, p.seeds[0], n_boot=10)
    assert s["auroc"] == pytest.approx(s["auroc_trivial"], abs=1e-9) and s["auroc"] > 0.5
    assert s["auroc_over_trivial"] == pytest.approx(0.0, abs=1e-9)
    over = Estimate([s["auroc_over_trivial"]], [s["auroc_over_trivial_std"]])
    assert claims(over)[0].verdict != "holds"
    # Figure 4: every sample's σ² map is the training variance itself, ranked the same
    assert s["generated_constant"] == 0
    assert s["generated_spearman"] == pytest.approx(1.0)
    assert figure4(Estimate([s["generated_spearman"]], [s["generated_spearman_stderr"]]))["passed"]


def test_sigma2_against_the_training_variance_fails_on_samples(tmp_path):
    p, store, config, trivial = _store(tmp_path, lambda x, recon: (1 - trivial).expand(len(x), 1, 28, 28))
    s = scores.uncertainty_score(store, config, p, p.seeds[0], n_boot=10)
    assert s["generated_spearman"] == pytest.approx(-1.0)
    assert s["auroc_over_trivial"] < -2 * s["auroc_over_trivial_std"]
    rho = Estimate([s["generated_spearman"]], [s["generated_spearman_stderr"]])
    check = figure4(rho)
    assert not check["passed"] and check["margin"].startswith("-1")


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # no pixel above the floor
def test_a_constant_sigma2_has_no_rank_correlation_and_is_counted(tmp_path):
    p, store, config, _ = _store(tmp_path, lambda x, recon: torch.full_like(x, FLOOR, dtype=torch.float64))
    s = scores.uncertainty_score(store, config, p, p.seeds[0], n_boot=10)
    assert s["auroc"] == pytest.approx(0.5) and s["fraction_at_floor"] == 1.0
    assert s["auroc_over_trivial"] == pytest.approx(0.5 - s["auroc_trivial"])
    assert s["generated_constant"] == s["generated_samples"] == scores.UNCERTAINTY_SAMPLES
    assert math.isnan(s["generated_spearman"]) and math.isnan(s["generated_spearman_stderr"])
    rho = Estimate([s["generated_spearman"]], [s["generated_spearman_stderr"]])
    assert not figure4(rho)["passed"]


def test_the_outcome_carries_the_new_numbers_claims_and_rows(tmp_path, monkeypatch):
    p, store, config, _ = _store(tmp_path, _error)
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "model.pt").touch()  # "trained": nothing to train
    monkeypatch.setattr(scores, "UNCERTAINTY_SAMPLES", 50)
    fewer_resamples = functools.partial(scores.uncertainty_score, n_boot=5)
    monkeypatch.setattr("sigmavae.uncertainty.uncertainty_score", fewer_resamples)  # where it is measured
    o = experiments.uncertainty(p, store)
    assert [c.text for c in o.claims] == [c.text for c in claims(one(0.1, 0.01))]
    assert o.claims[0].verdict == "holds"
    assert [c["text"].split(" (")[0] for c in o.checks[1:]] == [
        c["text"].split(" (")[0] for c in paper.uncertainty_checks(one(0.8), one(0.3), one(0.4))]
    assert o.numbers["auroc_over_trivial"].mean == pytest.approx(1.0 - o.numbers["auroc_trivial"].mean)
    assert o.numbers["generated_samples"].mean == 50
    for key in ("auroc", "spearman", "auroc_trivial", "auroc_over_trivial", "generated_spearman"):
        assert " ± " in o.headline[key], key
    assert o.headline["generated_constant"] == 0
    table = reports.uncertainty(o)
    assert any("ignores z" in m for m in table.index) and any("samples from q̂" in m for m in table.index)
    assert table.loc["samples from q̂ with a constant σ² map (no ρ; left out)", "value"] == "0 of 50"
