"""The notebooks' install cell, the way Colab runs it: a Python that already has torch (and the
rest) but not sigmavae gets sigmavae, and its torch stays exactly the one it had."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import jupytext
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]


def install_cell() -> str:
    cells = jupytext.read(ROOT / "notebooks" / "py" / "table3.py").cells
    return next(c.source for c in cells if "find_spec(\"sigmavae\")" in c.source)


def test_install_cell_adds_sigmavae_and_keeps_torch(tmp_path):
    # A fresh venv that sees every package of this one except sigmavae, as Colab has torch & co.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    outer = tmp_path / "preinstalled"
    outer.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "sigmavae" not in entry.name and not entry.name.startswith("__editable__"):
            (outer / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "preinstalled.pth").write_text(f"{outer}\n")
    source = tmp_path / "src"  # the repository as `pip install git+URL` would see it
    shutil.copytree(ROOT / "sigmavae", source / "sigmavae", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    probe = "import torch, sys; print(torch.__version__, torch.__file__); print('sigmavae' in sys.modules)"
    before = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    script = "download = None\n" + install_cell() + "\nimport sigmavae; print(sigmavae.__file__)\n"
    # offline: everything sigmavae needs is already there, so nothing may be fetched (torch above all)
    env = {**os.environ, "SIGMAVAE_PIP": str(source), "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0"}
    ran = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert ran.stdout.strip().splitlines()[-1].startswith(site)  # installed into the fresh venv
    after = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert after.stdout.splitlines()[0] == before.stdout.splitlines()[0]  # same torch, same place
    assert not any(Path(site).glob("torch*"))


def test_make_book_repo_url_reaches_every_install_cell(tmp_path):
    sys.path.insert(0, str(ROOT / "book"))
    from configure import set_repo_url

    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    changed = set_repo_url("git@github.com:someone/sigmavae.git", notebooks)
    executed = list(notebooks.glob("**/*.ipynb"))  # Fashion-MNIST's executed copies too
    assert len(executed) > len(list(notebooks.glob("*.ipynb")))
    assert len(changed) == len(executed) + len(list(notebooks.glob("py/*.py")))
    for path in executed:
        cell = next(c.source for c in jupytext.read(path).cells if "find_spec(\"sigmavae\")" in c.source)
        assert 'REPO_URL = "https://github.com/someone/sigmavae"' in cell


def test_a_remote_that_is_not_on_github_gives_no_buttons_and_changes_no_notebook(tmp_path, capsys):
    """A clone of a local path or another host (``make book``'s default is git's origin): the book
    builds without Colab buttons (sphinx-book-theme needs a GitHub URL) and no cell is rewritten."""
    sys.path.insert(0, str(ROOT / "book"))
    from configure import config, github_url, set_repo_url

    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    for remote in ("/work/main", "https://gitlab.com/someone/sigmavae.git", "https://github.com/someone"):
        assert set_repo_url(remote, notebooks) == [] and "repository" not in config(remote)
        assert "is not a GitHub repository" in capsys.readouterr().err
    assert github_url("https://github.com/someone/sigmavae.git/") == "https://github.com/someone/sigmavae"
    assert config("https://github.com/someone/sigmavae")["repository"]["url"] == \
        "https://github.com/someone/sigmavae"
