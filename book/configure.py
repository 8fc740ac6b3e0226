"""Print the book's ``_config.yml`` with the repository URL that Colab's launch buttons need.

Colab opens notebooks from GitHub, so the "launch in Colab" button of each notebook page exists
only when the book knows where the repository lives:

    python book/configure.py https://github.com/<you>/sigmavae > _build/_config.yml
    jupyter-book build . --config _build/_config.yml

``make book`` does this with ``REPO_URL`` (default: the git remote ``origin``, if any).
Without a URL the config is printed unchanged and the pages have no launch buttons.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def config(repo_url: str = "", branch: str = "main") -> dict:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = repo_url.strip().removesuffix(".git").replace("git@github.com:", "https://github.com/")
    if url:
        cfg["repository"] = {"url": url, "branch": branch}
        cfg["launch_buttons"] = {"colab_url": "https://colab.research.google.com"}
        cfg.setdefault("html", {})["use_repository_button"] = True
    return cfg


if __name__ == "__main__":
    print(yaml.safe_dump(config(*sys.argv[1:]), sort_keys=False, allow_unicode=True), end="")
