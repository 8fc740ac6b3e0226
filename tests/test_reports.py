"""The notebooks' library side: parameter checks refuse bad input before any compute, and each
notebook's numbers land in results/ and in the book's glue."""

import json

import pytest

from sigmavae import reports

GOOD = {"profile": "smoke", "dataset": "digits", "latent_dim": 2, "epochs1": 1, "epochs2": 0,
        "seed": 0, "device": "cpu", "data_root": None, "n_samples": 50, "components": 4,
        "components_list": [2, 4], "fid": "classifier", "sigma_update": "closed_form",
        "cache_dir": "/tmp/x", "results_dir": "results", "unrelated": object()}


def test_good_parameters_pass():
    reports.check_parameters(GOOD)


@pytest.mark.parametrize("name, value, match", [
    ("epochs1", "3", "epochs1 = '3' is a str, expected int"),
    ("epochs1", 3.0, "expected int"),
    ("latent_dim", True, "is a bool, expected int"),
    ("data_root", 5, "expected str or None"),
    ("components", 0, "components = 0 must be >= 1"),
    ("epochs2", -1, "epochs2 = -1 must be >= 0"),
    ("dataset", "cifar", "dataset = 'cifar' is not one of"),
    ("fid", "kid", "fid = 'kid' is not one of inception, classifier"),
    ("sigma_update", "adam", "sigma_update = 'adam' is not one of"),
    ("components_list", [8, "16"], "must hold ints >= 1"),
])
def test_bad_parameters_are_refused_with_the_fix(name, value, match):
    with pytest.raises(ValueError, match=match) as err:
        reports.check_parameters({**GOOD, name: value})
    assert "-p epochs1 3" in str(err.value)  # says how to pass them


def test_table1_needs_a_2d_latent_before_training(tmp_path):
    with pytest.raises(ValueError, match="latent_dim must be 2"):
        reports.table1("digits", latent_dim=16, epochs=1, cache_dir=tmp_path, device="cpu")
    assert not any(tmp_path.iterdir())


def test_table4_refuses_more_components_than_points_before_training(tmp_path):
    with pytest.raises(ValueError, match="only .* fitting points"):
        reports.table4("digits", 4, 1, 0, components_list=[4, 10**6], cache_dir=tmp_path, device="cpu")
    assert not any(tmp_path.iterdir())


def test_publish_writes_json_glues_headline_and_claims(tmp_path, monkeypatch):
    glued = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display: glued.setdefault(key, value))
    numbers = {"x": 1.5, "headline": {"ours": 8.9}, "claims": {"ours is best": True, "q̂ wins": False}}
    table = reports.publish(tmp_path, "table9", numbers, profile="quick", dataset="mnist")
    saved = json.loads((tmp_path / "table9-mnist.json").read_text())
    assert saved["results"]["x"] == 1.5 and saved["parameters"] == {"profile": "quick", "dataset": "mnist"}
    assert glued == {"ours": 8.9, "claim0": "yes", "claim0_text": "ours is best", "claim1": "no",
                     "claim1_text": "q̂ wins"}
    assert list(table["holds here"]) == ["yes", "no"]
