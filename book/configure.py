"""Print the book's ``_config.yml`` with the repository URL that Colab's launch buttons need.

Colab opens notebooks from GitHub, so the "launch in Colab" button of each notebook page exists
only when the book knows where the repository lives:

    python book/configure.py https://github.com/<you>/sigmavae > _build/_config.yml
    jupyter-book build . --config _build/_config.yml

``make book`` does this with ``REPO_URL`` (default: the git remote ``origin``, if any).
Without a URL the config is printed unchanged and the pages have no launch buttons.

``python book/configure.py --notebooks URL`` (``make book`` runs it when ``REPO_URL`` is set)
writes the URL into every notebook's install cell (``REPO_URL = "..."``, in ``notebooks/**/*.ipynb``,
the executed copies for other datasets included, and the twins), so that a notebook opened on
Colab installs sigmavae from that repository (``pip install git+URL``, keeping Colab's torch).
Commit the notebooks afterwards: Colab opens them from GitHub.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


GITHUB = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")


def github_url(url: str) -> str:
    """``url`` as ``https://github.com/<owner>/<name>`` (from an https or ssh remote, with or
    without ``.git``), or "" with a note on stderr where it is not a GitHub repository (a local
    path, another host): Colab opens notebooks from GitHub only."""
    url = url.strip().removesuffix("/").removesuffix(".git").replace("git@github.com:", "https://github.com/")
    if url and not GITHUB.fullmatch(url):
        print(f"configure: {url} is not a GitHub repository: no Colab buttons, install cells unchanged "
              "(pass REPO_URL=https://github.com/<you>/sigmavae)", file=sys.stderr)
        return ""
    return url


def config(repo_url: str = "", branch: str = "main") -> dict:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = github_url(repo_url)
    if url:
        cfg["repository"] = {"url": url, "branch": branch}
        cfg["launch_buttons"] = {"colab_url": "https://colab.research.google.com"}
        cfg.setdefault("html", {})["use_repository_button"] = True
    return cfg


def set_repo_url(url: str, notebooks: Path = ROOT / "notebooks") -> list[Path]:
    """Write ``REPO_URL = "<url>"`` into the install cell of each notebook and twin; the changed files
    (none where ``url`` is not a GitHub repository)."""
    url = github_url(url)
    if not url:
        return []
    line = re.compile(r'REPO_URL = \\?"[^"\\]*\\?"')
    changed = []
    for path in sorted(notebooks.glob("**/*.ipynb")) + sorted(notebooks.glob("py/*.py")):
        text = path.read_text()
        quote = '\\"' if path.suffix == ".ipynb" else '"'  # inside JSON strings quotes are escaped
        replacement = f"REPO_URL = {quote}{url}{quote}"
        new = line.sub(lambda _, r=replacement: r, text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    if sys.argv[1:2] == ["--notebooks"]:
        for path in set_repo_url(sys.argv[2]):
            print(f"configure: {path.relative_to(ROOT)} now installs from {sys.argv[2]}", file=sys.stderr)
    else:
        print(yaml.safe_dump(config(*sys.argv[1:]), sort_keys=False, allow_unicode=True), end="")
