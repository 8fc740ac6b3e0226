"""Issue 14: a sweep's trainings handed to submitit (its LocalExecutor here; SLURM on a cluster)
land in the model cache exactly where the notebooks look for them."""

import os
from pathlib import Path

import pytest
import torch

from sigmavae.cache import cached_run, plan_lines, run_dir, train_missing
from sigmavae.config import TrainConfig
from sigmavae.reproduce import reproduce
from sigmavae.runs import load_run
from sigmavae.runtime import Runtime
from sigmavae.sweeps import train_with_submitit

pytest.importorskip("submitit")
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0)


def test_submitit_local_jobs_fill_the_model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the jobs import this tree's sigmavae
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    configs = [TrainConfig(**TINY, seed=s) for s in (0, 1)]
    here = Runtime(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    runs = train_with_submitit(configs, 2, here, cluster="local", timeout_min=5, log=lambda *_: None)
    assert runs == [run_dir(c, tmp_path / "cache") for c in configs]
    for config, run in zip(configs, runs, strict=True):
        _, loaded, history = load_run(run)
        assert loaded == config and len(history) == 1
        assert cached_run(config, runtime=here) == run  # cached: nothing trained again
    logs = list((tmp_path / "cache" / "submitit").rglob("*_log.out"))
    assert len(logs) == 2  # one job each, its log kept beside submitit's pickles
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_partition_without_slurm_is_refused(tmp_path):
    with pytest.raises(ValueError, match="finds no SLURM"):
        here = Runtime(device="cpu", cache_dir=tmp_path)
        train_with_submitit([TrainConfig(**TINY)], 1, here, cluster="local", partition="gpu")
    with pytest.raises(ValueError, match="unknown executor 'ray'"):
        reproduce("smoke", notebooks_dir=tmp_path, jobs=2, executor="ray")


def test_local_processes_fill_the_cache_and_say_how_far_they_are(tmp_path, monkeypatch):
    """`reproduce --train-only` runs for an hour at the paper's settings: each finished model is a
    line with how many are left; a model asked for twice, or already cached, is not counted."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the spawned processes import this tree's sigmavae
    configs = [TrainConfig(**TINY, seed=s) for s in (0, 1, 2, 0)]
    here = Runtime(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    cached_run(configs[0], runtime=here)
    lines = []
    assert train_missing(configs, runtime=here, jobs=2, log=lines.append) == 2
    assert [line[:14] for line in lines] == ["trained 1 of 2", "trained 2 of 2"]
    assert {line.split("(")[1].split(")")[0] for line in lines} == {
        "synthetic sigma by Adam on σ, z 2-d, seed 1", "synthetic sigma by Adam on σ, z 2-d, seed 2"}
    assert lines[0].endswith(" min left") and "left" not in lines[1]
    for config in configs[1:3]:
        _, loaded, history = load_run(run_dir(config, tmp_path / "cache"))
        assert loaded == config and len(history) == 1
    assert train_missing(configs, runtime=here, jobs=2, log=lines.append) == 0
    assert len(lines) == 2


def test_one_job_trains_here_announcing_each_model(tmp_path):
    """The notebooks' path (Store.train): the same plan, in this process, each model announced
    before it trains and reported when it is done."""
    configs = [TrainConfig(**TINY, seed=s) for s in (0, 1)]
    here = Runtime(device="cpu", cache_dir=tmp_path / "cache", progress=False, precision="fp32")
    lines = []
    assert train_missing(configs, runtime=here, log=lines.append) == 2
    assert [line.split(":")[0] for line in lines[::2]] == ["training model 1 of 2", "training model 2 of 2"]
    assert lines[0].endswith("synthetic sigma by Adam on σ, z 2-d, seed 0, 1 + 0 epochs, fp32")
    assert lines[1].startswith("trained 1 of 2 (synthetic sigma by Adam on σ, z 2-d, seed 0) after")
    assert lines[1].endswith("min left")
    assert all((run_dir(c, tmp_path / "cache") / "model.pt").is_file() for c in configs)


def test_the_plan_says_what_is_cached_and_what_the_rest_costs_before_anything_runs(tmp_path):
    here = Runtime(device="cpu", cache_dir=tmp_path / "cache", progress=False,
                   evidence_dir=tmp_path / "evidence")
    two = TrainConfig(**{**TINY, "epochs2": 1})
    assert plan_lines([two], here)[1].endswith("1 + 1 epochs, time unknown (no run of its dataset and code "
                                               "size here)")
    cached_run(TrainConfig(**TINY), runtime=here)
    seconds = load_run(run_dir(TrainConfig(**TINY), tmp_path / "cache"))[2][0]["seconds"]
    vae = TrainConfig(**{**TINY, "method": "vae"})
    lines = plan_lines([TrainConfig(**TINY), two, TrainConfig(**TINY, seed=1), vae], here)
    assert lines[0] == "4 models: 1 cached, 0 in the evidence store, 3 to train"
    assert lines[1].startswith("  synthetic sigma by Adam on σ, z 2-d, seed 0: 1 + 1 epochs, about 0 min")
    threads = torch.get_num_threads()
    assert f"({seconds:.0f} s per epoch on " in lines[1] and lines[-1].startswith("about 0.0 h of training")
    assert lines[1].endswith(f", {threads} thread{'s' if threads > 1 else ''})")  # how it ran
    assert lines[3].startswith("  synthetic vae, z 2-d, seed 0: 1 epochs, about 0 min")
    assert lines[3].endswith(" (runs of other methods))")  # the same networks: a rate to go by
    assert not (tmp_path / "cache" / "runs" / run_dir(two, tmp_path).name).exists()  # nothing ran


def test_each_model_trained_goes_into_the_evidence_store_at_once_and_is_not_trained_again(tmp_path):
    """`reproduce --train-only`: each model is put into the evidence store as soon as it is
    trained (before the next one finishes); a machine with an empty cache and that store then plans
    nothing and trains nothing, and says so."""
    from sigmavae import evidence
    from sigmavae.reproduce import _train_first

    configs = [TrainConfig(**TINY, seed=s) for s in (0, 1)]
    here = Runtime(device="cpu", cache_dir=tmp_path / "cache", progress=False, precision="fp32",
                   evidence_dir=tmp_path / "evidence")
    seen = []

    def log(line):
        seen.append(line)
        if line.startswith("trained 1 of 2"):  # the first model is in the store before the second trains
            assert len(list((tmp_path / "evidence" / "runs").glob("*/history.json"))) == 0
        if line.startswith("  into"):
            stored = (tmp_path / "evidence" / "runs").glob("*/history.json")
            seen.append(sorted(p.parent.name for p in stored))

    _train_first(configs, here, 1, "processes", None, log)
    names = [run_dir(c, tmp_path).name for c in configs]
    assert [names[:1], names] == [line for line in seen if isinstance(line, list)]
    assert evidence.check(tmp_path / "evidence") == 6  # config, run and history of each
    fresh = Runtime(device="cpu", cache_dir=tmp_path / "empty", progress=False,
                    evidence_dir=tmp_path / "evidence")
    assert plan_lines(configs, fresh) == ["2 models: 0 cached, 2 in the evidence store, 0 to train"]
    lines = []
    _train_first(configs, fresh, 1, "processes", None, lines.append)
    assert "2 models are cached or stored: nothing to train" in lines[1]
    assert not (tmp_path / "empty" / "runs").exists()


def test_a_signal_that_stops_a_training_ends_its_pool_process(tmp_path, monkeypatch):
    """SIGTERM to `reproduce --jobs 2` (its process group): each process of the pool checkpoints
    its model and must then exit, not go on to the trainings already queued for it (it did: a
    stopped reproduce left a process training the next model)."""
    import signal

    from sigmavae import cache
    from sigmavae.runs import TrainingInterrupted

    def stopped(config, runtime):
        raise TrainingInterrupted(signal.SIGTERM, "somewhere/checkpoint.pt")

    exits = []
    monkeypatch.setattr(cache, "cached_run", stopped)
    monkeypatch.setattr(cache.os, "_exit", exits.append)
    cache._train_in_pool(TrainConfig(**TINY), Runtime(device="cpu", cache_dir=tmp_path))
    assert exits == [128 + signal.SIGTERM]
    monkeypatch.setattr(cache, "cached_run", lambda config, runtime: tmp_path)
    assert cache._train_in_pool(TrainConfig(**TINY), Runtime(device="cpu", cache_dir=tmp_path)) == tmp_path
    assert exits == [128 + signal.SIGTERM]
