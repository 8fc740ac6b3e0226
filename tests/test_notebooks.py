"""Notebooks: each runs under papermill with the smoke profile; each has a parameters cell that
papermill documents, and a jupytext twin with the same cells."""

import json
from pathlib import Path

import jupytext
import papermill
import pytest
import yaml

NOTEBOOKS = sorted(Path(__file__).parents[1].joinpath("notebooks").glob("*.ipynb"))
PROFILES = Path(__file__).parents[1] / "notebooks" / "profiles"


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_documented_and_the_twin_matches(path):
    params = papermill.inspect_notebook(str(path))
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    declared = [line.split(" = ")[0] for line in cell.source.splitlines() if " = " in line]
    for name in ("profile", "dataset", "latent_dim", "epochs1", "epochs2", "seed", "device",
                 "data_root", "n_samples", "components", "fid", "sigma_update", "cache_dir"):
        assert name in declared, name
    for name in declared:  # papermill parses every line (it cannot, e.g., with a ";" in a comment)
        assert name in params and params[name]["help"], f"papermill --help-notebook misses {name}"
    twin = jupytext.read(path.parent / "py" / f"{path.stem}.py")
    ipynb = jupytext.read(path)  # executed: papermill added the cell of the parameters it used
    ran = [c for c in ipynb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert [c.source for c in twin.cells] == [c.source for c in ran]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One model cache for all notebooks, as in real use: later notebooks reuse earlier models."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_with_the_smoke_profile(path, tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("SIGMAVAE_CACHE", str(shared_cache))
    params = {**yaml.safe_load((PROFILES / "smoke.yaml").read_text()), "results_dir": str(tmp_path)}
    papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters=params,
                               progress_bar=False, kernel_name="python3")
    written = list(tmp_path.glob(f"{path.stem}-*.json"))
    assert written and json.loads(written[0].read_text())["parameters"]["profile"] == "smoke"
