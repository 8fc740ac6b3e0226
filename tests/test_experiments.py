"""The experiment layer: parameters checked once and labelled by what they are, each model, q̂ and
score computed once, and each artefact's numbers and verdicts saved with their uncertainty."""

import dataclasses
import json

import pytest
import torch

from sigmavae import experiments, reports, scores
from sigmavae.artefacts import ARTEFACTS, required_configs, resolve
from sigmavae.cache import Store
from sigmavae.claims import Estimate
from sigmavae.params import PROFILES
from sigmavae.runtime import Runtime


def test_a_profile_is_named_only_when_the_values_are_its_own():
    assert resolve("table2", profile="quick").profile == "quick"
    assert resolve("table2", profile="quick", epochs1=3, device="cpu").profile == "quick"  # same values
    custom = resolve("table2", {"profile": "paper", "dataset": "fashion_mnist", "epochs1": 1, "epochs2": 1})
    assert custom.profile == "custom"
    assert custom.differences == ("epochs1 = 1 (paper: 16)", "epochs2 = 1 (paper: 14)")
    header = reports.header(custom)
    assert "custom (epochs1 = 1 (paper: 16); epochs2 = 1 (paper: 14)): fashion_mnist" in header
    assert resolve("table2", profile="quick", dataset="fashion_mnist").profile == "quick"  # any dataset
    celeba = resolve("table3", profile="paper", dataset="celeba")  # appendix B.2 where the profile is silent
    assert (celeba.profile, celeba.latent_dim, celeba.epochs1, celeba.epochs2, celeba.components,
            celeba.qhat_points) == ("paper", 256, 75, 20, 500, 50_000)
    # asked for "paper" but every value is smoke's: the label follows the values
    assert resolve("table3", profile="paper", **PROFILES["smoke"]).profile == "smoke"


def test_artefact_defaults_apply_where_the_profile_is_silent():
    assert resolve("table1", profile="quick").latent_dim == 2
    assert resolve("table3", profile="quick").n_samples == 500
    assert resolve("table3", profile="smoke").n_samples == 50  # the profile's own value wins
    assert resolve("table2", profile="paper").seeds == (0, 1, 2)
    assert resolve("table2", profile="quick", seeds="[0, 1]").seeds == (0, 1)  # papermill's -p string


@pytest.mark.parametrize("name, value, match", [
    ("epochs1", "3", "epochs1 = '3' is a str, expected int"),
    ("epochs1", 3.0, "expected int"),
    ("latent_dim", True, "is a bool, expected int"),
    ("data_root", 5, "expected str or None"),
    ("components", 0, "components = 0 must be >= 1"),
    ("epochs2", -1, "epochs2 = -1 must be >= 0"),
    ("dataset", "cifar", "dataset = 'cifar' is not one of mnist, fashion_mnist"),
    ("fid", "kid", "fid = 'kid' is not one of auto, classifier, inception"),
    ("sigma_update", "adam", "sigma_update = 'adam' is not one of sigma, log_sigma, closed_form"),
    ("components_list", [8, "16"], "must be a non-empty list of ints >= 1"),
    ("seeds", "0, 1", "seeds = '0, 1' must be a non-empty list"),
    ("profile", "fast", "profile = 'fast' is not one of smoke, quick, paper"),
])
def test_bad_parameters_are_refused_with_the_fix(name, value, match):
    with pytest.raises(ValueError, match=match) as err:
        resolve("table2", {name: value, "unrelated": object()})
    assert "-p epochs1 3" in str(err.value)  # says how to pass them


def test_unknown_names_are_refused_naming_the_closest():
    with pytest.raises(ValueError, match=r"'epochz' is not a parameter \(did you mean 'epochs"):
        resolve("table2", epochz=3)  # a keyword that is not a parameter
    # in a notebook: the names papermill injected (IPython's history In holds its cell)
    injected = {"In": ["", "# Parameters\nprofile = \"smoke\"\nn_sample = 5\n"], "profile": "smoke",
                "n_sample": 5, "REPO_URL": "", "os": object()}
    with pytest.raises(ValueError, match=r"'n_sample' is not a parameter \(did you mean 'n_samples'\?\)"):
        resolve("table2", injected)
    injected["In"][1] = "# Parameters\nprofile = \"smoke\"\nresults_dir = \"out\"\n"
    assert resolve("table2", injected).profile == "smoke"  # globals that are not injected are ignored


def test_the_old_single_seed_parameter_is_refused_with_the_new_name():
    with pytest.raises(ValueError, match="the parameter is `seeds`"):
        resolve("table2", {"seed": 1})


def test_table1_needs_a_2d_latent_before_training(tmp_path):
    p = resolve("table1", profile="smoke", latent_dim=16, cache_dir=str(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="latent_dim must be 2"):
        experiments.table1(p)
    assert not any(tmp_path.iterdir())


def test_table4_refuses_more_components_than_points_before_training(tmp_path):
    p = resolve("table4", profile="smoke", components_list=[4, 10**6], cache_dir=str(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="only .* fitting points"):
        experiments.table4(p)
    assert not (tmp_path / "runs").exists()


def test_models_are_declared_per_artefact():
    p = {a: resolve(a, profile="paper") for a in ARTEFACTS}
    assert len(required_configs(["table1"], p)) == 7 * 3  # the sweep, three seeds
    assert len(required_configs(["table1", "figure1"], p)) == 21  # shared, counted once
    # Table 3's five and Table 2's five share ours (both stages), VAE, β-VAE and DIP-VAE
    assert len(required_configs(["table2", "table3", "figure3_4"], p)) == 6 * 3


def test_a_second_request_computes_nothing(tmp_path):
    p = resolve("table3", dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0, seeds=[0],
                n_samples=20, iwae_k=3, components=2, kl_samples=200, kl_runs=3,
                cache_dir=str(tmp_path), device="cpu", progress=False)
    config = p.config("vae", seed=0)
    first = Store(runtime=Runtime(cache_dir=tmp_path, device="cpu", progress=False))
    iwae = scores.iwae_score(first, config, p, 0)
    kl = scores.kl_score(first, config, p, 0)
    assert dict(first.computed) == {"model": 1, "qhat": 1, "iwae": 1, "kl": 1}
    again = Store(runtime=p.runtime)  # a new process, as another notebook
    assert scores.iwae_score(again, config, p, 0) == iwae
    assert scores.kl_score(again, config, p, 0) == kl
    assert not again.computed
    scores.iwae_score(again, config, dataclasses.replace(p, iwae_k=4), 0)
    assert dict(again.computed) == {"iwae": 1}  # other settings: computed; q̂ and model reused


def test_one_kl_run_gives_no_error_estimate_and_no_verdict(tmp_path):
    """Issue 19: KL(q̂‖p) from one Monte Carlo run has no spread; its claims are unresolved, not
    decided by the sign of a margin with a zero error."""
    from sigmavae import paper

    p = resolve("table1", dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0, seeds=[0],
                components=2, kl_samples=200, kl_runs=1, cache_dir=str(tmp_path), device="cpu",
                progress=False)
    store = Store(runtime=p.runtime)
    config = p.config("vae", seed=0)
    mean, stderr = scores.kl_score(store, config, p, 0)
    assert mean > 0 and stderr is None
    kl = {k: Estimate([mean + i], None) for i, k in enumerate(("1", "0.5", "0.1", "0.05", "0.02", "0.01"))}
    kl["learned"] = Estimate([mean], None)
    claims = paper.table1_claims({"learned": Estimate([0.03], None)}, kl)
    assert {c.verdict for c in claims} == {"unresolved"}


def test_outcomes_are_saved_with_seeds_spreads_and_verdicts(tmp_path, monkeypatch):
    from sigmavae.claims import Estimate, greater, positive

    glued = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display: glued.setdefault(key, value))
    p = resolve("table3", profile="quick", seeds=[0, 1])
    a, b = Estimate([10.0, 12.0], [1.0, 1.0]), Estimate([1.0, 2.0], [1.0, 1.0])
    o = experiments.Outcome("table3", p, {"x": {"ours": a}}, [greater("ours beats the other", a, b)],
                            headline={"ours": a.text(1)})
    table = reports.publish(o, tmp_path)
    saved = json.loads((tmp_path / "table3-mnist.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["profile"] == "custom"
    assert saved["differences"] == ["seeds = (0, 1) (quick: (0,))"]
    assert saved["numbers"]["x"]["ours"] == {"mean": 11.0, "std": pytest.approx(1.414, abs=1e-3),
                                             "values": [10.0, 12.0], "stderr": pytest.approx(0.707, abs=1e-3),
                                             "stderr_per_seed": [1.0, 1.0]}
    claim = saved["claims"][0]
    assert claim["verdict"] == "holds" and claim["margin"] == 9.5 and claim["basis"] == "2 seeds, t(1)"
    assert glued["claim0"] == "holds" and glued["claim0_text"] == "ours beats the other"
    assert "2 seeds" in glued["claim0_margin"] and glued["ours"] == "11.0 ± 1.4"
    assert glued["claims_failing"] == glued["claims_against"] == "none"
    assert "<table" in glued["claims_table"].data
    o.claims = [greater("b beats ours", b, a), positive("within noise", Estimate([-1.0, 0.5]))]
    glued.clear()
    reports.publish(o, tmp_path)  # -9.5 ± 0.5 beyond t(1)·se = 7.0; -0.25 ± 0.75 within it
    assert glued["claims_failing"].startswith("b beats ours (-9.5")
    assert "within" not in glued["claims_failing"]
    assert glued["claims_against"].startswith("within noise (-0.25")
    assert list(table.data["verdict"]) == ["holds"]
    o.claims = []  # nothing to decide (the appendix's samples): nothing shown, the JSON still written
    assert reports.publish(o, tmp_path) is None
    assert json.loads((tmp_path / "table3-mnist.json").read_text())["claims"] == []


def test_a_calibrated_decoder_is_its_own_eq_10_sigma2_and_scores_above_its_fixed_one(tmp_path):
    """Issue 19: a VAE trained at σ² = 0.5, scored at its own best σ² (Eq. 10 over the training set:
    the mean squared reconstruction error, one z per image) beats itself at 0.5 on the same test
    images; the mean image (which ignores z) at its best σ² is the reference it must beat."""
    p = resolve("table3", dataset="synthetic", latent_dim=2, epochs1=2, epochs2=0, seeds=[0],
                n_samples=64, iwae_k=3, components=2, cache_dir=str(tmp_path), device="cpu", progress=False)
    store = Store(runtime=p.runtime)
    config = p.config("vae", seed=0)
    raw, cal = scores.iwae_score(store, config, p, 0), scores.calibrated_iwae_score(store, config, p, 0)
    model, x = store.model(config), store.images("synthetic", "train").float() / 255
    eps = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, sigma = model.encode(x)
        mse = float((model.decode(mu + sigma * eps)[0].double() - x.double()).square().mean())
    assert cal["sigma2"] == pytest.approx(mse, rel=1e-4) and mse < 0.5
    assert cal["prior"]["mean"] > raw["prior"]["mean"] + 100  # σ² 0.5 is far from this decoder's
    assert model.sigma2 == pytest.approx(0.5)  # the cached model itself is left as it was
    ref = scores.mean_image_score(store, p, None)
    assert len(ref["per_image"]) == len(raw["prior"]["per_image"]) == 64


def test_a_per_pixel_variance_model_calibrates_its_decoder_mean_alone(tmp_path):
    """Issue 33: a per-pixel σ²(z) model whose mean ignores z can still beat the mean image through
    its variance network; what its samples show is its decoder mean. Calibrated, that mean is scored
    at Eq. 10's global σ² (its mean squared error, one z per image), the variance network set aside."""
    p = resolve("table3", dataset="synthetic", latent_dim=2, epochs1=2, epochs2=1, seeds=[0],
                n_samples=64, iwae_k=3, components=2, cache_dir=str(tmp_path), device="cpu", progress=False)
    store = Store(runtime=p.runtime)
    config = p.config("sigma", seed=0)
    assert scores.pixel_variance_of(config)
    pixel, cal = scores.iwae_score(store, config, p, 0), scores.calibrated_iwae_score(store, config, p, 0)
    model, x = store.model(config), store.images("synthetic", "train").float() / 255
    assert model.variance == "pixel"  # the cached model is left as it was
    eps = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, sigma = model.encode(x)
        mse = float((model.decode(mu + sigma * eps)[0].double() - x.double()).square().mean())
    assert cal["sigma2"] == pytest.approx(mse, rel=1e-4)
    assert cal["prior"]["mean"] != pytest.approx(pixel["prior"]["mean"], abs=1.0)  # not σ²(z)'s
