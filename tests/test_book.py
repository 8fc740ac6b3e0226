"""The book: builds strictly from the committed notebooks, and every page loads in a real browser
(Debian's chromium, headless) with its tables and figures."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "book"))  # the book's scripts import each other as scripts do
import pages  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


REPO = "https://github.com/example/sigmavae"  # as `make book REPO_URL=...`: Colab buttons


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    config = out / "_config.yml"
    result = subprocess.run([sys.executable, str(ROOT / "book" / "configure.py"), REPO],
                            capture_output=True, text=True, check=True)
    config.write_text(result.stdout)
    before = {p: p.read_bytes() for p in (ROOT / "notebooks").glob("**/*") if p.is_file()}
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jb), "build", str(ROOT), "--config", str(config), "--path-output",
                             str(out), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert before == {p: p.read_bytes() for p in (ROOT / "notebooks").glob("**/*") if p.is_file()}
    return out / "_build" / "html"


def dom(page: Path, tmp_path: Path) -> str:
    assert CHROMIUM, "install Debian's chromium (apt-get install chromium) to test the book"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.parametrize("name", toc_files())
def test_page_loads_with_its_content(html, name, tmp_path):
    page = html / f"{name}.html"
    assert page.is_file()
    text = dom(page, tmp_path)
    assert "<h1" in text and "sigmavae" in text
    if name.startswith("notebooks/"):
        nb = (ROOT / f"{name}.ipynb").read_text()
        if '"text/html"' in nb:  # a DataFrame was displayed
            assert "<table" in text
        if '"image/png"' in nb:  # a figure was displayed
            assert "<img" in text
        assert "profile" in text  # each page says which parameter profile produced it
        colab = f"colab.research.google.com/github/{REPO.removeprefix('https://github.com/')}/blob/main/{name}.ipynb"
        assert colab in text


def test_summary_pastes_every_claim_from_the_notebooks(html, tmp_path):
    """Each notebook's claims table is pasted whole: as many verdict cells as its results file
    has claims and checks."""
    import json
    import re

    text = dom(html / "book" / "summary.html", tmp_path)
    source = (ROOT / "book" / "summary.md").read_text()
    pasted = re.findall(r"```\{glue\} claims_table\n:doc: (/notebooks/[\w/]+\.ipynb)", source)
    assert len(pasted) >= 11
    expected, profiles = 0, set()
    for page in pasted:  # the page the book shows for that artefact: paper settings, else quick
        saved = json.loads(pages.results_file(page).read_text())
        expected += len(saved["claims"]) + len(saved["checks"])
        profiles.add(f"profile {saved['profile']}")
    verdicts = re.findall(r">\s*(holds|fails|unresolved|passed|FAILED)\s*</td>", text)
    assert len(verdicts) == expected >= 30
    made_with = source.count("::profile:s`")
    assert made_with >= 11 and text.count("Made with") == made_with  # each notebook's profile line
    assert all(p in text for p in profiles)
    assert "{glue" not in text  # no unresolved role left as text


PAGES = sorted((ROOT / "notebooks").glob("**/*.ipynb"))
NOISE = ("Warning", "Traceback", "/work/", "/root/", "/home/", "/tmp/", "site-packages")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_pages_open_with_the_science_and_show_no_noise(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = [c for c in code if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))
             or "find_spec(\"sigmavae\")" in c.source]
    assert setup and all("hide-cell" in c.metadata.get("tags", []) for c in setup)  # folded
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    texts = []
    for cell in code:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", ""))
            texts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
            assert out.output_type != "error", f"{path.name}: a cell failed"
    text = "\n".join(texts)
    assert not [w for w in NOISE if w in text], [w for w in NOISE if w in text]
    assert "profile " in text  # the one visible line naming profile, dataset, epochs and seeds


# Marks each element wider than the space it has (what would scroll sideways), once laid out.
MEASURE = """<script>window.addEventListener('load', () => {
  const over = e => e && e.scrollWidth > e.clientWidth + 1;
  const wide = [...document.querySelectorAll('article pre, article table, article p, article img')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                 || over(e) || over(e.parentElement));
  document.body.setAttribute('data-wide',
    wide.map(e => e.tagName + ':' + e.textContent.slice(0, 60)).join(' | '));
});</script>"""
# the text pages, the widest tables (Table 1, Table 3) and the longest printed lines (Beyond)
SHOWN = ["book/summary", "book/differences", "notebooks/paper/table1", "notebooks/paper/table3",
         "notebooks/paper/beyond", "notebooks/table1", "notebooks/fashion_mnist/table3"]


@pytest.mark.parametrize("name", SHOWN)
def test_no_line_scrolls_sideways_at_a_1300_pixel_window(html, name, tmp_path):
    """Issue 32: each page's "profile ..." line scrolled sideways; printed lines wrap now, and
    tables' cells too (_static/wrap.css)."""
    import re

    page = html / f"{name}.html"
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path}", "--window-size=1300,1000",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    wide = re.search(r'data-wide="([^"]*)"', out.stdout)
    assert wide is not None, "the probe did not run"
    assert wide.group(1) == "", wide.group(1)
