"""Which executed notebook the book shows for each artefact, and the files made from that choice.

For each artefact and dataset the book shows the paper-settings page where one has been executed,
else the ``quick`` one:

    paper settings   notebooks/paper/<artefact>.ipynb, notebooks/paper/fashion_mnist/<artefact>.ipynb
                     (their numbers in results/paper/)
    quick            notebooks/<artefact>.ipynb (the sources themselves), notebooks/fashion_mnist/...
                     (their numbers in results/)

The paper-settings pages are written by ``sigmavae reproduce --profile paper ... --out notebooks/paper
-p results_dir results/paper`` (book/rerun.md has the commands). The quick pages a paper page
replaces stay in the book, in their own parts, as what a CPU reproduces in about an hour; each page's
first line names the profile (or "custom" and how it differs) that produced it.

    python book/pages.py          # print which page the book shows for each artefact; exit 1 when a
                                  # generated file is out of date
    python book/pages.py --write  # write _toc.yml, book/summary.md and book/differences.md

``book/summary.md`` and ``book/differences.md`` are made from ``book/templates/``, where
``{{mnist/table3}}`` stands for the page the book shows (``notebooks/paper/table3`` or
``notebooks/table3``) and ``{{fashion_mnist/table3}}`` for Fashion-MNIST's. Edit the templates, then
``--write``; ``tests/test_pages.py`` fails when the committed files are not what this writes.
Imports nothing from ``sigmavae``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The book's parts of notebook pages, in order: (caption, dataset, artefacts).
PARTS = (("MNIST", "mnist", ("table1", "figure1", "table2", "table3", "table4", "figure2", "figure3_4",
                             "section3_4", "appendix")),
         ("Fashion-MNIST", "fashion_mnist", ("table2", "table3", "figure2", "figure3_4", "section3_4",
                                             "appendix")),
         ("Beyond the paper", "mnist", ("beyond",)))
ARTEFACTS = {"mnist": PARTS[0][2] + PARTS[2][2], "fashion_mnist": PARTS[1][2]}  # each dataset's pages
CAPTIONS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
GENERATED = ("book/summary.md", "book/differences.md")
PLACEHOLDER = re.compile(r"\{\{(mnist|fashion_mnist)/(\w+)\}\}")


def quick_page(dataset: str, artefact: str) -> str:
    return f"notebooks/{artefact}" if dataset == "mnist" else f"notebooks/{dataset}/{artefact}"


def paper_page(dataset: str, artefact: str) -> str:
    return f"notebooks/paper/{artefact}" if dataset == "mnist" else f"notebooks/paper/{dataset}/{artefact}"


def book_page(dataset: str, artefact: str, root: Path = ROOT) -> str:
    """The page (path without ``.ipynb``) the book shows: paper settings where executed, else quick."""
    paper = paper_page(dataset, artefact)
    return paper if (root / f"{paper}.ipynb").is_file() else quick_page(dataset, artefact)


def results_file(page: str, root: Path = ROOT) -> Path:
    """The results JSON a page's notebook wrote (``reports.publish``)."""
    parts = page.removesuffix(".ipynb").strip("/").split("/")[1:]  # drop "notebooks"
    folder = root / "results"
    if parts[0] == "paper":
        folder, parts = folder / "paper", parts[1:]
    dataset = parts[0] if len(parts) == 2 else "mnist"
    return folder / f"{parts[-1]}-{dataset}.json"


def book_results(root: Path = ROOT) -> list[Path]:
    """The results files of the pages the book shows, in the book's order."""
    return [results_file(book_page(d, a, root), root) for d, names in ARTEFACTS.items() for a in names
            if (root / f"{book_page(d, a, root)}.ipynb").is_file()]


def render(template: str, root: Path = ROOT) -> str:
    """``template`` with each ``{{dataset/artefact}}`` replaced by the page the book shows."""
    return PLACEHOLDER.sub(lambda m: book_page(m.group(1), m.group(2), root), template)


def toc(root: Path = ROOT) -> dict:
    """The table of contents: the reproduction, each dataset's pages as the book shows them, the
    quick pages that paper-settings pages replace, then "Your turn"."""
    parts = [{"caption": "The reproduction",
              "chapters": [{"file": f"book/{p}"} for p in ("method", "summary", "differences")]}]
    for caption, dataset, names in PARTS:
        parts.append({"caption": caption, "chapters": [{"file": book_page(dataset, a, root)} for a in names]})
    for dataset, names in ARTEFACTS.items():
        quick = [quick_page(dataset, a) for a in names]
        shadowed = [q for a, q in zip(names, quick, strict=True) if book_page(dataset, a, root) != q]
        if shadowed:
            parts.append({"caption": f"{CAPTIONS[dataset]} at the quick profile (3 + 2 epochs, 2 CPU cores)",
                          "chapters": [{"file": f} for f in shadowed]})
    parts.append({"caption": "Your turn", "chapters": [{"file": "book/rerun"}]})
    return {"format": "jb-book", "root": "book/intro", "parts": parts}


def files(root: Path = ROOT) -> dict[str, str]:
    """Each generated file's path (relative to ``root``) and its text."""
    out = {"_toc.yml": "# Generated by `python book/pages.py --write` (which page each artefact shows).\n"
                       + yaml.safe_dump(toc(root), sort_keys=False, allow_unicode=True)}
    for path in GENERATED:
        template = (root / "book" / "templates" / Path(path).name).read_text()
        out[path] = render(template, root)
    return out


def stale(root: Path = ROOT) -> list[str]:
    """The generated files whose committed text differs from what :func:`files` writes."""
    return [p for p, text in files(root).items()
            if not (root / p).is_file() or (root / p).read_text() != text]


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        for path, text in files().items():
            (ROOT / path).write_text(text)
    for dataset, names in ARTEFACTS.items():
        for a in names:
            print(f"{CAPTIONS[dataset]:14} {a:10} {book_page(dataset, a)}.ipynb")
    out_of_date = stale()
    if out_of_date:
        print(f"out of date: {', '.join(out_of_date)} (run python book/pages.py --write)", file=sys.stderr)
        sys.exit(1)
