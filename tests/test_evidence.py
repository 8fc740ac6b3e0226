"""The evidence store (issue 31): a cache's finished entries, without weights, put into a committed
folder; entries of several machines merge; the same key with other content is never overwritten;
bad entries are refused naming the file; the Store reads scores and q̂ from it instead of computing."""

import json
import multiprocessing
import subprocess
import sys

import pytest
import torch

from sigmavae import evidence
from sigmavae.cache import Store, run_dir
from sigmavae.config import TrainConfig
from sigmavae.runtime import CorruptFileError, Runtime

SMALL = dict(dataset="synthetic", latent_dim=2, epochs1=1, epochs2=1, batch_size=128)


def machine_with(tmp_path, name, seed):
    """A cache folder where one machine trained one seed, fitted its q̂ and computed a score."""
    store = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / name, progress=False, precision="fp32",
                                  evidence_dir=tmp_path / "nowhere"))
    config = TrainConfig(**SMALL, seed=seed)
    store.train([config])
    store.qhat(config, 3, seed)
    store.score(config, "answer", {"seed": seed}, lambda: {"mean": 40.0 + seed})
    store.score(None, "shared", {"n": 1}, lambda: {"mean": 1.0})
    return config


def reading(tmp_path, store) -> Runtime:
    """A machine with an empty cache that reads the store ``store``."""
    return Runtime(device="cpu", cache_dir=tmp_path / "empty", progress=False, evidence_dir=store)


def test_two_machines_seeds_merge_and_a_fresh_store_reads_them_without_computing(tmp_path):
    configs = [machine_with(tmp_path, f"machine{s}", s) for s in (0, 1)]
    store = tmp_path / "evidence"
    first = evidence.put(tmp_path / "machine0", store)
    second = evidence.put(tmp_path / "machine1", store)
    assert not first.conflicts and not second.conflicts
    assert "scores/shared-" in second.same[0] and len(second.same) == 1  # the same score of no model
    files = {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith("model.pt") or "checkpoint" in f or ".tmp-" in f]
    for c in configs:
        name = run_dir(c, tmp_path).name
        assert {f"runs/{name}/{f}" for f in ("config.json", "run.json", "history.json")} <= files
    run = json.loads((store / "runs" / run_dir(configs[0], tmp_path).name / "run.json").read_text())
    assert {"version", "precision", "machine", "commit"} <= set(run) and run["precision"] == "fp32"
    assert evidence.check(store) == len(files) - 1  # every entry but schema.json
    fresh = Store(runtime=reading(tmp_path, store))
    for seed, c in enumerate(configs):
        value = fresh.score(c, "answer", {"seed": seed}, lambda: pytest.fail("computed"))
        assert value == {"mean": 40.0 + seed}
        q = fresh.qhat(c, 3, seed)
        assert len(q.gmm.weights_) == 3 and q.fit_seconds > 0
    assert fresh.computed == {} and not (tmp_path / "empty").exists()  # nothing computed or written


def test_another_machines_rerun_never_overwrites_and_is_reported(tmp_path):
    machine_with(tmp_path, "a", 0)
    store = tmp_path / "evidence"
    evidence.put(tmp_path / "a", store)
    score = next((tmp_path / "a" / "runs").glob("*/scores/answer-*.json"))
    kept = (store / score.relative_to(tmp_path / "a")).read_bytes()
    score.write_text(json.dumps({**json.loads(score.read_text()), "value": {"mean": 41.5}}))
    report = evidence.put(tmp_path / "a", store)
    assert report.conflicts == [str(score.relative_to(tmp_path / "a"))] and not report.added
    assert (store / score.relative_to(tmp_path / "a")).read_bytes() == kept  # the first stays
    assert "conflict" in str(report) and "it stays" in str(report)


@pytest.mark.parametrize("damage,problem", [
    (lambda p: p.write_text('{"kind": "answer", "settin'), "is corrupt or truncated"),
    (lambda p: p.write_text('{"kind": "answer", "settings": {}}'), "must hold its kind, settings and value"),
])
def test_a_bad_score_is_refused_naming_it_before_anything_is_copied(tmp_path, damage, problem):
    machine_with(tmp_path, "a", 0)
    score = next((tmp_path / "a" / "runs").glob("*/scores/answer-*.json"))
    damage(score)
    with pytest.raises(CorruptFileError, match=rf"{score}.*{problem}.*delete it"):
        evidence.put(tmp_path / "a", tmp_path / "evidence")
    assert not (tmp_path / "evidence").exists()


def test_bad_history_qhat_and_schema_are_refused_when_read(tmp_path):
    config = machine_with(tmp_path, "a", 0)
    store = tmp_path / "evidence"
    evidence.put(tmp_path / "a", store)
    run = store / "runs" / run_dir(config, tmp_path).name
    (run / "history.json").write_text('{"epochs": 3}')
    with pytest.raises(CorruptFileError, match="history.json is not a valid evidence entry .*list of epochs"):
        evidence.check(store)
    (run / "history.json").write_text("[]")
    qhat = next(run.glob("qhat-*.pt"))
    d = torch.load(qhat, weights_only=True)
    torch.save({**d, "means": d["means"][:2]}, qhat)  # a hand-edited array of the wrong shape
    reader = Store(runtime=reading(tmp_path, store))
    with pytest.raises(CorruptFileError, match=rf"{qhat}: it is not a plain-tensor q̂ file \(shapes.*Delete"):
        reader.qhat(config, 3, 0)
    (store / "schema.json").write_text('{"schema": 99}')
    with pytest.raises(CorruptFileError, match="schema 99; this sigmavae reads schema 1"):
        evidence.check(store)


@pytest.mark.parametrize("name,content,problem", [
    ("samples", {"images": torch.zeros(4, 1, 28, 28)}, "samples figure's tensors are torch.uint8"),
    ("samples", {"images": torch.zeros(4, 28, 28, dtype=torch.uint8)}, "share one shape of 4 dimensions"),
    ("densities", {"aggregate": torch.zeros(9, 9), "qhat": torch.zeros(9, 8)}, r"qhat \(9, 8\)"),
    ("decoded", {"x": torch.zeros(2, 1, 4, 4)}, "holds recon, samples, .*, x, not x"),
    ("samples", [torch.zeros(1)], "must hold a dict of tensors"),
])
def test_a_figure_entry_of_the_wrong_shape_or_kind_is_refused_naming_it(tmp_path, name, content, problem):
    path = tmp_path / "evidence" / "runs" / "synthetic-sigma-0" / "figures" / f"{name}-abc.pt"
    path.parent.mkdir(parents=True)
    torch.save(content, path)
    with pytest.raises(CorruptFileError, match=rf"{name}-abc.pt is not a valid evidence entry \(.*{problem}"):
        evidence.lookup(tmp_path / "evidence", path.relative_to(tmp_path / "evidence"))


def _put(source, store):
    return evidence.put(source, store).added


def test_two_processes_putting_at_once_lose_nothing(tmp_path):
    machine_with(tmp_path, "a", 0)
    store = tmp_path / "evidence"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        added = pool.starmap(_put, [(tmp_path / "a", store)] * 2)
    files = evidence.portable_files(tmp_path / "a")
    assert sorted(added[0] + added[1]) == sorted(map(str, files))  # each file written exactly once
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    assert evidence.check(store) == len(files)


def test_the_command_line_puts_and_checks(tmp_path):
    machine_with(tmp_path, "a", 0)
    run = [sys.executable, "-m", "sigmavae.cli", "evidence"]
    out = subprocess.run(run + ["put", str(tmp_path / "a"), "--into", str(tmp_path / "ev")],
                         capture_output=True, text=True, check=True).stdout
    assert "files added, 0 already there, 0 conflicting" in out
    out = subprocess.run(run + ["check", "--into", str(tmp_path / "ev")], capture_output=True, text=True,
                         check=True).stdout
    assert "entries, all valid" in out


def test_each_computed_qhat_and_score_says_so_with_its_time(tmp_path, capsys):
    """A page's scoring phase is not silent: a line per q̂ fitted and per score computed; nothing
    for what is read back."""
    store = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path, evidence_dir=tmp_path / "ev"))
    config = TrainConfig(**SMALL)
    store.train([config])
    capsys.readouterr()
    store.qhat(config, 3, 0)
    store.score(config, "answer", {}, lambda: {"mean": 1.0})
    store.score(None, "shared", {}, lambda: {"mean": 1.0})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  q̂ of synthetic sigma by Adam on σ, z 2-d, seed 0: 3 components fitted in ")
    assert lines[1].startswith("  answer of synthetic sigma by Adam on σ, z 2-d, seed 0: computed in ")
    assert lines[0].endswith(" min so far]") and "[model 1 of 1, " in lines[1]  # which of the page's models
    assert lines[2].startswith("  shared of no model: computed in ") and "model" not in lines[2].split("[")[1]
    Store(runtime=store.runtime).score(config, "answer", {}, lambda: {"mean": 2.0})
    assert capsys.readouterr().out == ""
    # a score whose computation draws a figure on the way: each line has its own time, they add up
    import time

    def slow_figure():
        time.sleep(1.6)
        return {"image": torch.zeros(1)}

    store.score(config, "nested", {}, lambda: {"n": len(store.figure(config, "slow", {}, slow_figure))})
    drawn, computed = capsys.readouterr().out.splitlines()
    assert "slow of synthetic" in drawn and "drawn in 2 s" in drawn
    assert "nested of synthetic" in computed and "computed in 0 s" in computed


def test_a_retraining_that_differs_only_in_wall_time_is_the_same_entry(tmp_path):
    machine_with(tmp_path, "a", 0)
    store = tmp_path / "evidence"
    evidence.put(tmp_path / "a", store)
    history = next((tmp_path / "a" / "runs").glob("*/history.json"))
    epochs = json.loads(history.read_text())
    history.write_text(json.dumps([{**h, "seconds": h["seconds"] + 7} for h in epochs]))
    assert not evidence.put(tmp_path / "a", store).conflicts
    history.write_text(json.dumps([{**h, "elbo": h["elbo"] + 1} for h in epochs]))
    assert evidence.put(tmp_path / "a", store).conflicts == [str(history.relative_to(tmp_path / "a"))]


@pytest.mark.slow
def test_two_machines_seeds_in_one_store_then_both_seeds_execute_training_and_loading_nothing(
        tmp_path, monkeypatch):
    """Issue 31: seed 0 measured on one machine, seed 1 on another, both put into one store; a
    third machine with an empty cache executes Table 3 and Figures 3-4 with seeds [0, 1] from the
    store alone, no model trained or loaded, each seed's numbers as its own machine measured them."""
    from sigmavae import experiments

    def run(artefact, name, seeds, store_dir):
        monkeypatch.setenv("SIGMAVAE_EVIDENCE", str(store_dir))
        p = experiments.resolve(artefact, profile="smoke", seeds=seeds, cache_dir=str(tmp_path / name),
                                progress=False)
        return experiments.RUNNERS[artefact](p)

    alone = {(a, s): run(a, f"machine{s}", [s], tmp_path / f"nowhere{s}")
             for a in ("table3", "figure3_4") for s in (0, 1)}
    store = tmp_path / "evidence"
    for s in (0, 1):
        assert not evidence.put(tmp_path / f"machine{s}", store).conflicts
    monkeypatch.setattr(Store, "model", lambda self, c: pytest.fail(f"loaded or trained {c}"))
    picks = {"table3": lambda o: o.numbers["qhat"]["ours, pixel σ²"],
             "figure3_4": lambda o: o.numbers["auroc"]}
    for artefact, pick in picks.items():
        both = run(artefact, "third", [0, 1], store)
        assert list(pick(both).values) == [pick(alone[artefact, s]).values[0] for s in (0, 1)]
        assert both.computed["trained"] and not (tmp_path / "third" / "runs").exists()


def test_a_sample_grid_is_kept_in_8_bits_and_reads_back_as_the_decoder_means(tmp_path):
    """A sample grid's entry holds what a picture shows, each decoder mean to the nearest of 256
    levels (a quarter of float32's bytes), and a machine reading it from the store gets the very
    tensor the computing machine drew."""
    from sigmavae import experiments, scores
    from sigmavae.fid import generate
    from sigmavae.sampling import StandardNormalPrior

    store = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / "a", progress=False, precision="fp32",
                                  evidence_dir=tmp_path / "nowhere"))
    config = TrainConfig(**SMALL)
    store.train([config])
    p = experiments.resolve("table2", profile="smoke", progress=False)
    drawn = scores.samples(store, config, p, 0, 16, "prior")
    means = generate(store.model(config), StandardNormalPrior(config.latent_dim), 16, 0)
    assert drawn.dtype == torch.float32 and drawn.shape == means.shape
    assert (drawn - means).abs().max() <= 0.5 / 255 + 1e-6 and not torch.equal(drawn, means)
    entry = next((tmp_path / "a" / "runs").glob("*/figures/samples-*.pt"))
    assert torch.load(entry, weights_only=True)["images"].dtype == torch.uint8
    evidence.put(tmp_path / "a", tmp_path / "evidence")
    fresh = Store(runtime=reading(tmp_path, tmp_path / "evidence"))
    assert torch.equal(scores.samples(fresh, config, p, 0, 16, "prior"), drawn)
    assert fresh.computed == {}


def test_the_repositorys_evidence_store_is_not_ignored_by_git():
    """The store's run entries lie under evidence/runs/: a .gitignore line `runs/` (for training
    output folders) kept them out of every commit, and a fresh clone trained everything again."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    lines = [line.strip() for line in (root / ".gitignore").read_text().splitlines()]
    assert not {"runs", "runs/", "evidence", "evidence/", "*.pt", "*.json"} & set(lines)
    if (root / ".git").exists():  # git's own reading of every rule
        for entry in ("runs/mnist-sigma-0123/history.json", "runs/mnist-sigma-0123/figures/samples-ab.pt",
                      "scores/fid-ab.json", "schema.json"):
            out = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--no-index",
                                  f"evidence/{entry}"])
            assert out.returncode == 1, f"git ignores evidence/{entry}"


def test_a_page_counts_the_same_scores_whether_it_computed_them_or_read_them(tmp_path):
    """A score computed on the way to another (the mean image's σ² inside its 8-bit score) is not
    one the page asked for: a fresh clone that reads the outer score from the store never asks for
    it, and its results JSON must be the computing machine's."""
    def page(store):
        def outer():
            inner = store.score(None, "inner", {}, lambda: {"v": 2.0})["v"]
            return {"v": inner + 1}
        return store.score(None, "outer", {}, outer)["v"], store.provenance()["scored"]

    computing = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / "a", progress=False,
                                      precision="fp32", evidence_dir=tmp_path / "nowhere"))
    value, counted = page(computing)
    assert value == 3.0 and counted == {"fp32": 1}
    evidence.put(tmp_path / "a", tmp_path / "evidence")
    fresh = Store(runtime=reading(tmp_path, tmp_path / "evidence"))
    assert page(fresh) == (3.0, {"fp32": 1}) and not fresh.computed


def test_a_figure_entry_holds_its_tensors_not_the_dataset_they_were_sliced_from(tmp_path):
    """Figures 3-4's first test images are a slice of the whole test set; torch.save writes a
    view's whole storage, so an entry would carry all 10,000 images (31 MB) for the 10 it shows."""
    store = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / "a", progress=False, precision="fp32",
                                  evidence_dir=tmp_path / "nowhere"))
    dataset = torch.rand(10_000, 1, 28, 28)
    shown = store.figure(None, "decoded", {"n": 10}, lambda: {k: dataset[:10] for k in
                                                                 ("x", "recon", "sigma2_recon", "samples",
                                                                  "sigma2_samples")})
    assert torch.equal(shown["x"], dataset[:10])
    entry = next((tmp_path / "a").rglob("decoded-*.pt"))
    assert entry.stat().st_size < 5 * 10 * 784 * 4 + 10_000  # five 10-image tensors and the zip's headers
