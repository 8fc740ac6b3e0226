"""Notebooks: each runs under papermill with the smoke profile; each has a parameters cell that
papermill documents, and a jupytext twin with the same cells."""

import json
import math
from pathlib import Path

import jupytext
import papermill
import pytest

from sigmavae.artefacts import ARTEFACTS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
NOTEBOOKS = [ROOT / "notebooks" / f"{a}.ipynb" for a in ARTEFACTS]


def test_one_notebook_per_artefact_named_by_it():
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(p.name for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_documented_and_the_twin_matches(path):
    params = papermill.inspect_notebook(str(path))
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    declared = [line.split(" = ")[0] for line in cell.source.splitlines() if " = " in line]
    for name in ("profile", "dataset", "latent_dim", "epochs1", "epochs2", "seeds", "sigma_update",
                 "components", "device", "data_root", "cache_dir", "results_dir"):
        assert name in declared, name
    for name in declared:  # papermill parses every line (it cannot, e.g., with a ";" in a comment)
        assert name in params and params[name]["help"], f"papermill --help-notebook misses {name}"
    twin = jupytext.read(path.parent / "py" / f"{path.stem}.py")
    ipynb = jupytext.read(path)  # executed: papermill added the cell of the parameters it used
    ran = [c for c in ipynb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert [c.source for c in twin.cells] == [c.source for c in ran]


EXECUTED_COPIES = sorted(p for p in (ROOT / "notebooks").glob("*/**/*.ipynb")  # reproduce --out: other
                         if p.parent.name != ".ipynb_checkpoints")  # datasets, the paper's settings


@pytest.mark.parametrize("path", EXECUTED_COPIES, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_executed_copies_ran_the_current_notebook(path):
    """A page for another dataset (``notebooks/fashion_mnist/table2.ipynb``) or at the paper's
    settings (``notebooks/paper/table3.ipynb``, ``notebooks/paper/fashion_mnist/table3.ipynb``) must
    show what the notebook of the same name holds today: same cells, other injected parameters."""
    source = jupytext.read(ROOT / "notebooks" / path.name)
    ran = [c for c in jupytext.read(path).cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert [c.source for c in source.cells if "injected-parameters" not in c.metadata.get("tags", [])] \
        == [c.source for c in ran]
    injected = next(c.source for c in jupytext.read(path).cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    folders = path.relative_to(ROOT / "notebooks").parts[:-1]
    if folders[0] == "paper":
        assert 'profile = "paper"' in injected
        folders = folders[1:]
    dataset = folders[0] if folders else "mnist"
    assert f'dataset = "{dataset}"' in injected or (dataset == "mnist" and "dataset = " not in injected)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for all notebooks, as in real use: later notebooks reuse earlier models and scores."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_with_the_smoke_profile(path, tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(shared_cache))
    params = {"profile": "smoke", "results_dir": str(tmp_path)}
    papermill.execute_notebook(str(path), str(tmp_path / path.name), progress_bar=False,
                               kernel_name="python3", parameters=params)
    saved = json.loads((tmp_path / f"{path.stem}-digits.json").read_text())
    assert saved["profile"] == "smoke" and saved["seeds"] == [0]
    for c in saved["claims"]:  # the rule, from the saved margin and se (a collapsed comparator: unresolved)
        se, m = c["se"], c["margin"]
        if se is None or not math.isfinite(m) or abs(m) <= c["critical"] * se or "collapsed" in c["basis"]:
            assert c["verdict"] == "unresolved", c
        else:
            assert c["verdict"] == ("holds" if m > 0 else "fails"), c


def test_two_seeds_give_per_seed_values_and_their_std(tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(shared_cache))
    path = ROOT / "notebooks" / "figure3_4.ipynb"
    params = {"profile": "smoke", "seeds": "[0, 1]", "results_dir": str(tmp_path)}
    papermill.execute_notebook(str(path), str(tmp_path / path.name), progress_bar=False,
                               kernel_name="python3", parameters=params)
    saved = json.loads((tmp_path / "figure3_4-digits.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["profile"] == "custom"
    auroc = saved["numbers"]["auroc"]
    assert len(auroc["values"]) == 2 and auroc["values"][0] != auroc["values"][1]
    mean = sum(auroc["values"]) / 2
    assert auroc["std"] == pytest.approx(abs(auroc["values"][0] - mean) * 2 ** 0.5)
    assert all(c["basis"].startswith("2 seeds, t(1)") for c in saved["claims"])


def test_a_misspelt_parameter_stops_the_notebook_naming_the_closest(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(tmp_path / "cache"))
    path = ROOT / "notebooks" / "table3.ipynb"
    with pytest.raises(papermill.PapermillExecutionError,
                       match=r"'epochz' is not a parameter \(did you mean 'epochs"):
        papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), progress_bar=False,
                                   kernel_name="python3", parameters={"profile": "smoke", "epochz": 3})
    assert not (tmp_path / "cache").exists()  # refused before anything was trained or loaded


def test_celeba_through_a_notebook_with_appendix_b2_settings(tmp_path, monkeypatch):
    from test_celeba import make_celeba

    monkeypatch.setenv("SIGMAVAE_CACHE", str(tmp_path / "cache"))
    make_celeba(tmp_path, n=12)
    path = ROOT / "notebooks" / "figure3_4.ipynb"
    params = {"profile": "smoke", "dataset": "celeba", "data_root": str(tmp_path),
              "results_dir": str(tmp_path)}
    papermill.execute_notebook(str(path), str(tmp_path / path.name), progress_bar=False,
                               kernel_name="python3", parameters=params)
    saved = json.loads((tmp_path / "figure3_4-celeba.json").read_text())
    assert saved["profile"] == "smoke"  # the smoke settings, on CelebA
    p = saved["parameters"]
    assert (p["latent_dim"], p["qhat_points"], p["epochs1"], p["components"]) == (256, 50_000, 1, 4)
    config = json.loads(next((tmp_path / "cache" / "runs").glob("celeba-sigma-*/config.json")).read_text())
    assert config["latent_dim"] == 256
    trained = sorted((tmp_path / "cache" / "runs").glob("celeba-*/model.pt"))  # ours, and its stage 1
    assert len(trained) == 2
    table2 = ROOT / "notebooks" / "table2.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="CelebA's FID needs Inception"):
        papermill.execute_notebook(str(table2), str(tmp_path / "t2.ipynb"), progress_bar=False,
                                   kernel_name="python3", parameters={**params, "fid": "classifier"})
    assert sorted((tmp_path / "cache" / "runs").glob("celeba-*/model.pt")) == trained  # table2: none
