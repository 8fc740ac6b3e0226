"""Which page the book shows for each artefact (book/pages.py): the paper-settings page where one was
executed, else the quick one, and the table of contents, summary and "What differs" pages made
from that choice."""

import json
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))  # the book's scripts import each other as scripts do
import pages  # noqa: E402


def test_the_committed_toc_summary_and_differences_are_what_pages_writes():
    """After executing a paper-settings page (or editing book/templates/): python book/pages.py --write."""
    assert pages.stale() == []


def fake_book(tmp_path: Path, paper: list[str]) -> Path:
    """A repository with every quick page, the templates, and paper-settings pages for ``paper``."""
    for dataset, names in pages.ARTEFACTS.items():
        for a in names:
            (tmp_path / f"{pages.quick_page(dataset, a)}.ipynb").parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"{pages.quick_page(dataset, a)}.ipynb").write_text("{}")
    for page in paper:
        (tmp_path / f"{page}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{page}.ipynb").write_text("{}")
    shutil.copytree(ROOT / "book" / "templates", tmp_path / "book" / "templates")
    return tmp_path


def chapters(toc: dict) -> dict[str, list[str]]:
    return {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}


def test_a_paper_settings_page_replaces_its_quick_page_which_stays_in_its_own_part(tmp_path):
    root = fake_book(tmp_path, ["notebooks/paper/table3", "notebooks/paper/fashion_mnist/table2"])
    assert pages.book_page("mnist", "table3", root) == "notebooks/paper/table3"
    assert pages.book_page("mnist", "table2", root) == "notebooks/table2"  # no paper page: quick
    assert pages.book_page("fashion_mnist", "table2", root) == "notebooks/paper/fashion_mnist/table2"
    assert pages.book_page("fashion_mnist", "table3", root) == "notebooks/fashion_mnist/table3"
    parts = chapters(pages.toc(root))
    assert "notebooks/paper/table3" in parts["MNIST"] and "notebooks/table3" not in parts["MNIST"]
    quick = {k: v for k, v in parts.items() if "quick" in k}
    shadowed = sorted(f for v in quick.values() for f in v)
    assert shadowed == ["notebooks/fashion_mnist/table2", "notebooks/table3"]
    every = [f for v in parts.values() for f in v]
    assert len(every) == len(set(every))  # no page twice
    assert all((root / f"{f}.ipynb").is_file() for f in every if f.startswith("notebooks/"))
    text = pages.render("{glue:text}`/{{mnist/table3}}.ipynb::x:s` <../{{fashion_mnist/table3}}>", root)
    assert text == "{glue:text}`/notebooks/paper/table3.ipynb::x:s` <../notebooks/fashion_mnist/table3>"


def test_without_paper_pages_the_book_is_the_quick_pages_alone(tmp_path):
    root = fake_book(tmp_path, [])
    parts = chapters(pages.toc(root))
    assert list(parts) == ["The reproduction", "MNIST", "Fashion-MNIST", "Beyond the paper", "Your turn"]
    assert parts["MNIST"] + parts["Beyond the paper"] == [f"notebooks/{a}" for a in pages.ARTEFACTS["mnist"]]
    assert "{{" not in "".join(pages.files(root).values())  # every placeholder names a known page


def test_each_page_reads_its_own_results_file():
    assert pages.results_file("notebooks/table2") == ROOT / "results" / "table2-mnist.json"
    assert (pages.results_file("/notebooks/fashion_mnist/table3.ipynb")
            == ROOT / "results" / "table3-fashion_mnist.json")
    assert pages.results_file("notebooks/paper/table1") == ROOT / "results" / "paper" / "table1-mnist.json"
    assert (pages.results_file("notebooks/paper/fashion_mnist/appendix")
            == ROOT / "results" / "paper" / "appendix-fashion_mnist.json")
    for path in pages.book_results():  # the committed ones exist and say what they are
        saved = json.loads(path.read_text())
        assert path.name == f"{saved['artefact']}-{saved['dataset']}.json"
        assert ("paper" in path.parts) == (saved["parameters"]["epochs1"] == 16)  # B.1's epochs


def test_the_committed_toc_lists_existing_pages_once():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for p in toc["parts"] for c in p["chapters"]]
    assert len(files) == len(set(files))
    assert all((ROOT / f"{f}.md").is_file() or (ROOT / f"{f}.ipynb").is_file() for f in files)


def test_every_artefact_is_shown_at_the_papers_settings_with_its_three_seeds():
    """book/intro.md and the README say so: every page of both datasets at the paper's settings,
    from seeds 0, 1 and 2. A block being retrained shows seed 0 or its quick page, and fails this
    until those texts say which."""
    shown = {(d, a): pages.book_page(d, a) for d, names in pages.ARTEFACTS.items() for a in names}
    assert {k: p for k, p in shown.items() if p != pages.paper_page(*k)} == {}
    seeds = {p: json.loads(pages.results_file(p).read_text())["seeds"] for p in shown.values()}
    assert {p: s for p, s in seeds.items() if s != [0, 1, 2]} == {}
