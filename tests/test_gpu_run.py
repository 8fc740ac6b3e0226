"""Issue 20: the device run's two ends that run here: which wheels it carries (bench/gpu_wheels.py)
and how what comes back enters the repository (bench/import_gpu_run.sh). The run itself is
rehearsed with `REHEARSE=1 OUT=DIR bash bench/gpu_paper.sh` (minutes; not a test)."""

import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "bench" / "gpu_wheels.py")
gpu_wheels = importlib.util.module_from_spec(spec)
sys.modules["gpu_wheels"] = gpu_wheels
spec.loader.exec_module(gpu_wheels)


def wheel(folder: Path, name: str, version: str, *requires: str) -> None:
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", meta)


def test_the_wheel_check_names_what_the_device_would_lack(tmp_path):
    for name in gpu_wheels.NEEDED:
        wheel(tmp_path, name, "1.0", "traitlets>=5", "requests", "pywin32; sys_platform == 'win32'",
              "debugpy>=1.6", "sphinx; extra == 'docs'")
    wheel(tmp_path, "traitlets", "5.0")
    wheel(tmp_path, "pytorch-fid", "0.3.0", "torch", "numpy")
    problems, from_image = gpu_wheels.check(tmp_path)
    assert problems == [] and from_image == {"requests"}  # win32-only, extras, optional: not needed
    wheel(tmp_path, "traitlets", "5.1")  # a second version would stop the device's install
    try:
        gpu_wheels.check(tmp_path)
    except SystemExit as err:
        assert "carries traitlets twice" in str(err)
    else:
        raise AssertionError("two versions of traitlets passed the check")


def test_a_missing_need_is_named(tmp_path):
    for name in gpu_wheels.NEEDED:
        wheel(tmp_path, name, "1.0", *(["mystery-package>=2"] if name == "nbclient" else []))
    wheel(tmp_path, "pytorch-fid", "0.3.0", "torch")
    problems, _ = gpu_wheels.check(tmp_path)
    assert problems == ["nbclient-1.0-py3-none-any.whl needs mystery-package>=2, neither carried nor in "
                        "the device image"]
    (tmp_path / "pytorch_fid-0.3.0-py3-none-any.whl").unlink()
    assert "pytorch-fid is not carried" in gpu_wheels.check(tmp_path)[0]


def test_what_comes_back_is_imported_where_the_book_reads_it(tmp_path):
    repo, back = tmp_path / "repo", tmp_path / "back"
    (repo / "bench").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "import_gpu_run.sh", repo / "bench")
    staged = tmp_path / "staged"
    (staged / "results").mkdir(parents=True)
    (staged / "table3.ipynb").write_text(json.dumps({"cells": []}))
    (staged / "results" / "table3-mnist.json").write_text("{}")
    back.mkdir()
    with tarfile.open(back / "notebooks-mnist.tar.gz", "w:gz") as tar:
        tar.add(staged, arcname=".")
    for name in ("device.txt", "timings.txt", "log.txt"):
        (back / name).write_text(name)
    out = subprocess.run(["bash", "bench/import_gpu_run.sh", str(back)], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    assert "imported notebooks/paper/table3.ipynb" in out
    assert (repo / "notebooks/paper/table3.ipynb").is_file()
    assert (repo / "results/paper/table3-mnist.json").is_file()
    assert (repo / "bench/results/gpu/timings.txt").read_text() == "timings.txt"
    bad = subprocess.run(["bash", "bench/import_gpu_run.sh", str(tmp_path)], cwd=repo, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "not what bench/gpu_paper.sh returns" in bad.stderr


@pytest.mark.parametrize("parts", [1, 2])
def test_the_evidence_a_device_run_returns_goes_into_the_store_and_never_overwrites(tmp_path, parts):
    """gpu_paper.sh packs the store entries of every model it finished (evidence-<ds>.tar.gz, in
    parts .aa, .ab, … where over 15 MiB); the import puts them into the repository's evidence/: new
    entries added, an entry already there with other content kept and reported."""
    import os

    from sigmavae import evidence
    from sigmavae.cache import Store
    from sigmavae.config import TrainConfig
    from sigmavae.runtime import Runtime

    repo, back = tmp_path / "repo", tmp_path / "back"
    (repo / "bench").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "import_gpu_run.sh", repo / "bench")
    device = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / "device-cache", progress=False,
                                   precision="fp32", evidence_dir=tmp_path / "nowhere"))
    config = TrainConfig(dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0)
    device.train([config])
    device.score(config, "answer", {}, lambda: {"mean": 1.0})
    evidence.put(tmp_path / "device-cache", tmp_path / "packed")
    back.mkdir()
    (back / "device.txt").write_text("an H200")
    with tarfile.open(back / "evidence-synthetic.tar.gz", "w:gz") as tar:
        for path in (tmp_path / "packed").iterdir():
            tar.add(path, arcname=path.name)
    if parts == 2:  # as `split -b` leaves them: the archive cut in two
        whole = (back / "evidence-synthetic.tar.gz").read_bytes()
        (back / "evidence-synthetic.tar.gz.aa").write_bytes(whole[:len(whole) // 2])
        (back / "evidence-synthetic.tar.gz.ab").write_bytes(whole[len(whole) // 2:])
        (back / "evidence-synthetic.tar.gz").unlink()
    score = next((tmp_path / "packed").rglob("scores/answer-*.json")).relative_to(tmp_path / "packed")
    (repo / "evidence" / score).parent.mkdir(parents=True)
    other = {"kind": "answer", "settings": {}, "value": {"mean": 2}}  # this machine's, computed before
    (repo / "evidence" / score).write_text(json.dumps(other))
    out = subprocess.run(["bash", "bench/import_gpu_run.sh", str(back)], cwd=repo, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHON": sys.executable}).stdout
    assert "evidence-synthetic.tar.gz into evidence/:" in out
    assert "3 files added, 0 already there, 1 conflicting (kept as they were)" in out and str(score) in out
    assert json.loads((repo / "evidence" / score).read_text())["value"] == {"mean": 2}  # the first stays
    assert evidence.check(repo / "evidence") == 4
