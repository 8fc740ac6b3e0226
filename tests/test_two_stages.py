"""Section 3.4 (issue 32): the per-pixel variance learned from the first epoch with no floor,
against Algorithm 1. The claims are decided on hand-made numbers; where σ² lies is measured
(:func:`sigmavae.scores.variance_score`) on a stand-in model whose σ²(z) is chosen, so every share
and percentile is known exactly."""

import pytest
import torch

from sigmavae import paper, scores
from sigmavae.artefacts import ALGORITHM_1, NO_STAGE1, resolve, section3_4_models
from sigmavae.cache import Store
from sigmavae.claims import Estimate

NAMES = (ALGORITHM_1, NO_STAGE1)


def one(value, se=None):
    return Estimate([value], None if se is None else [se])


def verdicts(below, discrete, fid, collapsed=()):
    return [c.verdict for c in paper.section3_4_claims(below, discrete, fid, NAMES, collapsed)]


@pytest.mark.parametrize("share, se, verdict", [
    (0.9, 0.01, "holds"),  # most pixels below the floor: stuck at very small values
    (0.52, 0.02, "unresolved"),  # about half: not by two standard errors
    (0.1, 0.01, "fails"),  # most pixels above the floor: not stuck
])
def test_stuck_means_most_test_pixels_below_algorithm_1s_floor(share, se, verdict):
    assert verdicts(one(share, se), one(50, 5), one(10, 2))[0] == verdict


def test_algorithm_1_must_win_on_the_8bit_probability_and_the_fid():
    assert verdicts(one(0.9, 0.01), one(50, 5), one(10, 2))[1:] == ["holds", "holds"]
    assert verdicts(one(0.9, 0.01), one(-50, 5), one(-10, 2))[1:] == ["fails", "fails"]
    assert verdicts(one(0.9, 0.01), one(5, 5), one(1, 2))[1:] == ["unresolved", "unresolved"]


def test_a_collapsed_model_decides_no_comparison_but_not_where_sigma2_lies():
    claims = paper.section3_4_claims(one(0.9, 0.01), one(50, 5), one(10, 2), NAMES, [NO_STAGE1])
    assert [c.verdict for c in claims] == ["holds", "unresolved", "unresolved"]
    assert "collapsed" in claims[1].basis


def test_over_three_seeds_the_spread_decides():
    spread = Estimate([0.9, 0.2, 0.95])  # one seed escaped: mean 0.68, se 0.23
    assert verdicts(spread, one(50, 5), one(10, 2))[0] == "unresolved"


def test_the_counterfactual_is_the_variance_network_from_the_first_epoch_with_no_floor():
    p = resolve("section3_4", profile="quick")
    ours, scratch = section3_4_models(p, 0).values()
    assert (ours.epochs1, ours.epochs2, ours.variance_floor) == (3, 2, 0.5)
    assert (scratch.epochs1, scratch.epochs2, scratch.variance_floor) == (0, 5, 0.0)
    assert scratch.method == ours.method == "sigma" and scratch.seed == ours.seed


class KnownVariance:
    """A stand-in for a trained model: z is the image, the reconstruction the image itself, and
    σ² is ``tiny`` on the pixels that are 0 and ``large`` elsewhere."""

    floor, sigma2, latent_dim = 0.0, 0.02, 28 * 28
    tiny, large = 1e-7, 0.05

    def encode(self, x):
        return x.flatten(1), torch.ones(len(x), self.latent_dim)

    def decode(self, z):
        x = z.view(-1, 1, 28, 28)
        return x, torch.where(x == 0, self.tiny, self.large).log()


def test_variance_score_shares_and_percentiles_are_those_of_the_model(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(scores, "UNCERTAINTY_IMAGES", 200)
    p = resolve("section3_4", profile="smoke", cache_dir=str(tmp_path / "cache"), device="cpu",
                progress=False)
    store = Store(runtime=p.runtime)
    config = section3_4_models(p, 0)[NO_STAGE1]
    store.attach(config, tmp_path / "run", KnownVariance())
    s = scores.variance_score(store, config, p, 0, floor=0.01)
    x = store.images(p.dataset, "test")[:200].float().flatten(1)
    zero = (x == 0).double().mean(1)  # per image: the pixels whose σ² is tiny
    assert KnownVariance.tiny < scores.GREY_LEVEL ** 2 < 0.01 < KnownVariance.large
    for key in ("below_grey_level", "below_floor"):  # both thresholds sit between tiny and large
        assert s[key]["mean"] == pytest.approx(float(zero.mean()))
        assert s[key]["stderr"] == pytest.approx(float(zero.std()) / 200 ** 0.5)
    share = float(zero.mean())
    q = s["quantiles_1_10_50_90_99"]
    levels = (0.01, 0.1, 0.5, 0.9, 0.99)
    expected = [KnownVariance.tiny if level < share else KnownVariance.large for level in levels]
    assert q == pytest.approx(expected, rel=1e-5)
    assert s["min"] == pytest.approx(KnownVariance.tiny, rel=1e-5)
    counts = torch.tensor(s["log10_counts"])
    assert counts.sum() == x.numel()
    assert counts[counts > 0].tolist() == [int((x == 0).sum()), int((x != 0).sum())]


class AtTheFloor(KnownVariance):
    """σ² = the floor everywhere, as Algorithm 1's variance network gives it where its output is 0:
    log(0 + floor) in float32, which reads back a hair below the floor."""

    def decode(self, z):
        x = z.view(-1, 1, 28, 28)
        return x, torch.log(torch.zeros_like(x) + 0.00764).float()


def test_sigma2_at_the_floor_is_not_below_it(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(scores, "UNCERTAINTY_IMAGES", 50)
    p = resolve("section3_4", profile="smoke", cache_dir=str(tmp_path / "cache"), device="cpu",
                progress=False)
    store = Store(runtime=p.runtime)
    config = section3_4_models(p, 0)[ALGORITHM_1]
    store.attach(config, tmp_path / "run", AtTheFloor())
    assert torch.tensor(0.00764).log().double().exp() < 0.00764  # what float32 does to it
    s = scores.variance_score(store, config, p, 0, floor=0.00764)
    assert s["below_floor"]["mean"] == 0.0 and s["min"] == pytest.approx(0.00764, rel=1e-6)
