"""Issue 14: a sweep's trainings handed to submitit (its LocalExecutor here; SLURM on a cluster)
land in the model cache exactly where the notebooks look for them."""

import os
from pathlib import Path

import pytest

from sigmavae.cache import cached_run, run_dir, train_missing
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
    assert {line.split("(")[1].split(")")[0] for line in lines} == {"synthetic sigma seed 1",
                                                                  "synthetic sigma seed 2"}
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
    assert lines[0].endswith("synthetic sigma seed 0, 1 + 0 epochs, fp32")
    assert lines[1].startswith("trained 1 of 2 (synthetic sigma seed 0) after")
    assert lines[1].endswith("min left")
    assert all((run_dir(c, tmp_path / "cache") / "model.pt").is_file() for c in configs)
