"""The package's modules form layers: each imports only modules below it, at the top of the file."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "sigmavae"
# Bottom first, as the README lists them.
ORDER = ["__init__", "runtime", "precision", "data", "config", "distributed", "likelihoods", "models",
         "objectives", "runs", "data_parallel", "epoch", "training", "sampling", "metrics", "classifier",
         "fid", "evidence",
         "cache", "claims", "paper", "literature", "params",
         "artefacts", "scores", "outcomes", "headlines", "sigma2_sweep", "generation", "log_likelihoods",
         "uncertainty", "two_stages", "beyond", "experiments", "plots", "reports",
         "sweeps", "reproduce", "cli"]
# Imported inside a function on purpose: an optional dependency's module, not a cycle.
OPTIONAL = {("cli", "reproduce")}  # papermill: `pip install sigmavae[notebooks]`


def package_imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sigmavae."):
            names.add(node.module.split(".")[1])
    return names


def test_every_module_is_in_the_order():
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(ORDER)


def test_each_module_imports_only_modules_below_it_and_at_the_top():
    wrong = []
    for name in ORDER:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        statements = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        top = {m for n in statements for m in package_imports(n) if m in ORDER and m != "__init__"}
        inside = {m for n in tree.body if n not in statements for m in package_imports(n)
                  if m in ORDER and (name, m) not in OPTIONAL}
        wrong += [f"{name} imports {m}, which is not below it" for m in sorted(top)
                  if ORDER.index(m) >= ORDER.index(name)]
        wrong += [f"{name} imports {m} inside a function" for m in sorted(inside)]
    assert not wrong, "\n".join(wrong)


def test_no_unittest_mock_in_the_library():
    assert not [p.name for p in PACKAGE.glob("*.py") if "unittest" in p.read_text()]
