"""The trained-model cache: keyed by config and version, trains once, never half-written, resumed."""

import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import sigmavae.cache as cache
import sigmavae.training as training
from sigmavae.cache import Store, cached_run, config_key, run_dir, training_plan
from sigmavae.config import TrainConfig
from sigmavae.runs import CHECKPOINT, load_run
from sigmavae.runtime import Runtime
from sigmavae.training import stage_1_config

SMALL = dict(dataset="synthetic", latent_dim=2, epochs1=1, epochs2=0, batch_size=128)


def test_keys_follow_every_field_of_the_config():
    base = TrainConfig(**SMALL)
    explicit = TrainConfig(dataset="synthetic", latent_dim=16, epochs1=16, epochs2=14)  # the appendix's
    assert config_key(TrainConfig(dataset="synthetic")) == config_key(explicit)  # same values, same key
    changed = {"seed": 1, "lr": 1e-3, "beta": 2.0, "epochs1": 2, "variance_floor": 0.25, "batch_size": 64,
               "sigma_update": "closed_form", "eps1": 1.0, "max_extra_epochs": 3}
    keys = {config_key(TrainConfig(**{**SMALL, k: v})) for k, v in changed.items()}
    assert len(keys) == len(changed) and config_key(base) not in keys
    # stable across processes (no hash randomisation): the same key in a fresh interpreter
    script = f"from sigmavae.cache import config_key; from sigmavae.config import TrainConfig; " \
             f"print(config_key(TrainConfig(**{SMALL!r})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == config_key(base)


def test_second_call_trains_nothing(tmp_path):
    cfg = TrainConfig(**SMALL)
    here = Runtime(device="cpu", cache_dir=tmp_path, progress=False)
    first = cached_run(cfg, runtime=here)
    stamp = (first / "model.pt").stat().st_mtime_ns
    assert cached_run(cfg, runtime=here) == first == run_dir(cfg, tmp_path)
    assert (first / "model.pt").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.joinpath("runs").iterdir() if ".tmp-" in p.name]


def test_two_processes_train_once(tmp_path):
    script = textwrap.dedent(f"""
        import sigmavae.cache as c
        from sigmavae.config import TrainConfig
        from sigmavae.runtime import Runtime
        calls = []
        real = c.train
        c.train = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
        here = Runtime(device="cpu", cache_dir={str(tmp_path)!r}, progress=False)
        print(c.cached_run(TrainConfig(**{SMALL!r}), runtime=here), len(calls))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0][0] == outputs[1][0]  # the same run directory
    assert sorted(int(o[1]) for o in outputs) == [0, 1]  # trained by exactly one of them


def test_a_killed_training_leaves_no_entry_and_the_next_call_resumes_it(tmp_path, monkeypatch):
    cfg = TrainConfig(dataset="digits", latent_dim=4, batch_size=16, epochs1=3, epochs2=0)
    few = "lambda *a, **k: real(*a, **k)[:96]"  # 96 digits: 6 batches an epoch
    script = textwrap.dedent(f"""
        import sigmavae.training as t
        from sigmavae.cache import cached_run
        from sigmavae.config import TrainConfig
        from sigmavae.runtime import Runtime
        real = t.load_dataset
        t.load_dataset = {few}
        here = Runtime(device="cpu", cache_dir={str(tmp_path)!r}, progress=False)
        cached_run(TrainConfig(**{dataclasses.asdict(cfg)!r}), runtime=here)
    """)
    target = run_dir(cfg, tmp_path)
    checkpoint = target.with_name(target.name + ".partial") / CHECKPOINT
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        while not checkpoint.exists():  # the first epoch's checkpoint
            assert proc.poll() is None, "finished before it could be killed"
            time.sleep(0.01)
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
    assert not target.exists()  # nothing half-written under the entry's name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed process: CPU sums depend on the thread count
    real, epochs = training.load_dataset, []
    monkeypatch.setattr(training, "load_dataset", eval(few, {"real": real}))
    real_epoch = training.run_epoch
    monkeypatch.setattr(training, "run_epoch", lambda *a, **k: (epochs.append(1), real_epoch(*a, **k))[1])
    assert cached_run(cfg, runtime=Runtime(device="cpu", cache_dir=tmp_path, progress=False)) == target
    assert len(epochs) < 3 and not checkpoint.parent.exists()  # resumed, then moved into place
    model, _, history = load_run(target)
    monkeypatch.undo()
    x = real("digits", "train", dtype=torch.uint8)[:96]  # as train() loads it
    want, want_history = training.train(cfg, runtime=Runtime(device="cpu", progress=False), data=x)
    assert [h["elbo"] for h in history] == [h["elbo"] for h in want_history]
    torch.set_num_threads(threads)
    for name, value in want.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


TWO_STAGES = dict(dataset="synthetic", latent_dim=2, epochs1=2, epochs2=1, batch_size=128)


@pytest.mark.parametrize("update", ["sigma", "closed_form"])
def test_the_two_stage_model_leaves_the_run_stage_1_alone_trains(tmp_path, update):
    """Table 3's "ours, dataset σ²" is "ours, pixel σ²" at its stage switch: training the second
    writes the first, bit for bit what training it alone gives (Eq. 10's σ²_dataset included)."""
    two = TrainConfig(**TWO_STAGES, sigma_update=update)
    one = stage_1_config(two)
    assert one == dataclasses.replace(two, epochs2=0) and stage_1_config(one) is None
    assert stage_1_config(TrainConfig(**{**TWO_STAGES, "method": "vae"})) is None
    cached_run(two, runtime=Runtime(device="cpu", cache_dir=tmp_path / "both", progress=False))
    written = run_dir(one, tmp_path / "both")
    alone = cached_run(one, runtime=Runtime(device="cpu", cache_dir=tmp_path / "alone", progress=False))
    (model, config, history), (want, want_config, want_history) = load_run(written), load_run(alone)
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in hs] for hs in (history, want_history)]
    assert config == want_config == one and untimed[0] == untimed[1] and len(history) == 2
    assert (update == "closed_form") == ("sigma2_dataset" in history[-1])
    assert model.variance == want.variance == "global"
    for name, value in want.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    left = [p.name for p in (tmp_path / "both" / "runs").iterdir()]
    assert not [n for n in left if ".tmp-" in n or ".partial" in n], left


def test_a_store_trains_the_pair_once_and_nobody_waits_on_a_busy_stage_1(tmp_path, monkeypatch):
    two = TrainConfig(**TWO_STAGES)
    one = stage_1_config(two)
    calls = []
    real = cache.train
    monkeypatch.setattr(cache, "train", lambda c, **k: (calls.append([c.epochs2]), real(c, **k))[1])
    store = Store(runtime=Runtime(device="cpu", cache_dir=tmp_path / "a", progress=False))
    assert training_plan([one, two, one], tmp_path / "a") == [two]
    store.train([one, two])
    assert calls == [[1]] and store.computed["model"] == 2  # one training, two runs
    assert training_plan([one, two], tmp_path / "a") == []
    # another process holds the stage-1 run's lock (it is training it): not waited on, not written
    here = Runtime(device="cpu", cache_dir=tmp_path / "b", progress=False)
    lock_path = run_dir(one, tmp_path / "b").with_suffix(".lock")
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        cached_run(two, runtime=here)
    assert not run_dir(one, tmp_path / "b").exists()
    assert training_plan([one, two], tmp_path / "b") == [one]  # the next plan: stage 1 alone
    calls.clear()
    Store(runtime=here).train([one, two])
    assert calls == [[0]] and (run_dir(one, tmp_path / "b") / "model.pt").is_file()


def test_a_run_of_an_earlier_version_is_found_and_loads_in_its_variance_mode(tmp_path):
    """Runs cached before run.json (metadata in config.json, the variance mode in model.pt) keep
    their keys: the store finds them, trains nothing, and the model comes back in its pixel mode
    with the floor ½σ²_dataset, recorded precision included."""
    here = Runtime(device="cpu", cache_dir=tmp_path, progress=False, precision="fp32")
    two = TrainConfig(**TWO_STAGES)
    run = cached_run(two, runtime=here)
    want, _, _ = load_run(run)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").unlink()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **meta, "precision": "bf16"}))
    torch.save({"state_dict": want.state_dict(), "variance": "pixel", "floor": want.floor,
                "sigma_param": "sigma"}, run / "model.pt")
    store = Store(runtime=here)
    store.train([two])
    model = store.model(two)
    assert store.computed["model"] == 0 and store.provenance()["trained"] == {"bf16": 1}
    assert model.variance == "pixel" and model.floor == want.floor == 0.5 * model.sigma2
