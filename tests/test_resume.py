"""Issue 5: a killed or interrupted training resumes bit for bit; non-finite values stop it without
losing what was saved; run directories of another config and corrupt files are refused."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import sigmavae.training as training
from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.objectives import OBJECTIVES
from sigmavae.runs import (
    CHECKPOINT,
    NonFiniteError,
    TrainingInterrupted,
    checkpoint_partial,
    load_model,
    load_run,
)
from sigmavae.runtime import CorruptFileError, Runtime
from sigmavae.training import train

CPU, QUIET = Runtime(device="cpu"), Runtime(device="cpu", progress=False)
X = load_dataset("digits", "train")[:96]
CFG = dict(dataset="digits", latent_dim=4, batch_size=16, epochs1=2, epochs2=2)  # 6 batches an epoch
SCRIPT = textwrap.dedent(f"""
    import sys, torch
    from sigmavae.config import TrainConfig
    from sigmavae.runtime import Runtime
    from sigmavae.training import train
    QUIET = Runtime(device="cpu", progress=False)
    train(TrainConfig(**{CFG!r}), out_dir=sys.argv[1], runtime=QUIET, data=torch.load(sys.argv[2]),
          resume=True)
""")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run every resumed one must reproduce exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, history = train(TrainConfig(**CFG), runtime=QUIET, data=X)
    torch.set_num_threads(threads)
    return model.state_dict(), strip(history)


def strip(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def assert_same_run(run_dir, reference):
    model, _, history = load_run(run_dir)
    state, want = reference
    assert strip(history) == want
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert not (run_dir / CHECKPOINT).exists()  # a complete run keeps no checkpoint
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]


def epochs_saved(path) -> int:
    try:
        return len(torch.load(path, map_location="cpu", weights_only=True)["history"])
    except FileNotFoundError:
        return -1


def kill_when_saved(cmd, checkpoint, epochs):
    """Start ``cmd``, SIGKILL it as soon as ``checkpoint`` holds ``epochs`` epochs."""
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = None
    try:
        while True:
            assert proc.poll() is None, "finished before it could be killed"
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp != seen and epochs_saved(checkpoint) >= epochs:  # (re)read only when rewritten
                break
            seen = stamp
            time.sleep(0.01)
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()


def test_sigkill_at_several_moments_then_resume_gives_the_uninterrupted_run(tmp_path, reference):
    run = tmp_path / "run"
    torch.save(X, tmp_path / "x.pt")
    cmd = [sys.executable, "-c", SCRIPT, str(run), str(tmp_path / "x.pt")]
    # In stage 1, and in stage 2 (per-pixel variance, floor, frozen σ²_dataset). The second kill
    # lands in epoch 3 or 4; resuming at the stage switch itself is the SIGINT test's.
    for epochs in (1, 3):
        kill_when_saved(cmd, run / CHECKPOINT, epochs)
        assert not (run / "model.pt").exists()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_same_run(run, reference)


def mode(ckpt) -> str:
    """The variance mode of the model a checkpoint resumes (it follows from config and history)."""
    config = TrainConfig.from_dict(ckpt["config"])
    return load_model(config, ckpt["history"], ckpt["model"], checkpoint_partial(ckpt)).variance


def signal_at(monkeypatch, call, signum):
    """Make the objective send ``signum`` to this process during its ``call``-th batch."""
    real, calls = OBJECTIVES["sigma"], []

    def objective(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setitem(OBJECTIVES, "sigma", objective)


@pytest.mark.parametrize("signum,call,epochs,batch", [
    (signal.SIGINT, 3, 0, 3),  # mid-epoch in stage 1: permutation, next batch and sums are saved
    (signal.SIGINT, 12, 2, None),  # in the last batch of stage 1: resumed at the stage switch
    (signal.SIGTERM, 15, 2, 3),  # mid-epoch in stage 2
])
def test_a_signal_checkpoints_and_resume_is_exact(tmp_path, monkeypatch, reference, signum, call,
                                                  epochs, batch):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal_at(monkeypatch, call, signum)
    saved = f"after batch {batch} of epoch {epochs + 1}" if batch else f"after epoch {epochs}"
    with pytest.raises(TrainingInterrupted, match=rf"saved .*checkpoint.pt \({saved}\).*--resume") as err:
        train(TrainConfig(**CFG), out_dir=tmp_path, runtime=QUIET, data=X)
    assert err.value.signum == signum
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back as they were
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert len(ckpt["history"]) == epochs
    assert (ckpt["epoch_in_progress"] or {}).get("batch") == batch
    assert mode(ckpt) == ("pixel" if call > 12 else "global")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="already holds an unfinished run of this config: pass --resume"):
        train(TrainConfig(**CFG), out_dir=tmp_path, runtime=QUIET, data=X)
    train(TrainConfig(**CFG), out_dir=tmp_path, runtime=QUIET, data=X, resume=True)
    assert_same_run(tmp_path, reference)


def poison(monkeypatch, call, where):
    """A NaN in the loss, or (loss finite) in every gradient, from the ``call``-th batch on."""
    real, calls = OBJECTIVES["sigma"], []

    def objective(*args, **kwargs):
        calls.append(1)
        loss, t = real(*args, **kwargs)
        if len(calls) >= call:
            if where == "loss":
                loss = loss * float("nan")
            else:
                loss.register_hook(lambda g: g * float("nan"))
        return loss, t

    monkeypatch.setitem(OBJECTIVES, "sigma", objective)


def test_a_nan_gradient_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                         reference):
    poison(monkeypatch, 9, "gradient")  # epoch 2, batch 3
    with pytest.raises(NonFiniteError, match=r"non-finite gradient in epoch 2 \(stage 1, epoch 2 of 2\), "
                       rf"batch 3 of 6; the last good checkpoint is {tmp_path / CHECKPOINT} "
                       r"\(after epoch 1\)"):
        train(TrainConfig(**CFG), out_dir=tmp_path, runtime=QUIET, data=X)
    assert epochs_saved(tmp_path / CHECKPOINT) == 1 and not (tmp_path / "model.pt").exists()
    monkeypatch.undo()
    train(TrainConfig(**CFG), out_dir=tmp_path, runtime=QUIET, data=X, resume=True)
    assert_same_run(tmp_path, reference)  # nothing saved was lost


def test_a_nan_loss_is_named_even_without_a_checkpoint(monkeypatch):
    poison(monkeypatch, 2, "loss")
    with pytest.raises(NonFiniteError, match=r"non-finite loss or ELBO in epoch 1 .*batch 2 of 6; "
                       "there is no checkpoint"):
        train(TrainConfig(**CFG), runtime=QUIET, data=X)


def test_a_run_directory_of_another_config_is_refused_before_any_compute(tmp_path, monkeypatch):
    small = TrainConfig(**{**CFG, "epochs1": 1, "epochs2": 0})
    model, history = train(small, out_dir=tmp_path, runtime=QUIET, data=X)
    monkeypatch.setattr(training, "run_epoch", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"another config \(seed 0 there, 1 here\): use another --out"):
        train(TrainConfig(**{**CFG, "epochs1": 1, "epochs2": 0, "seed": 1}), out_dir=tmp_path, runtime=CPU,
              resume=True)
    with pytest.raises(ValueError, match="already holds a finished run of this config: pass --resume"):
        train(small, out_dir=tmp_path, runtime=CPU, data=X)
    again, h2 = train(small, out_dir=tmp_path, runtime=CPU, resume=True)  # a finished run: returned as it is
    assert h2 == history and torch.equal(again.sigma, model.sigma)


def test_truncated_checkpoint_and_model_files_are_refused_with_a_remedy(tmp_path, monkeypatch):
    signal_at(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(**CFG), out_dir=tmp_path / "a", runtime=QUIET, data=X)
    ckpt = tmp_path / "a" / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=f"{ckpt} is corrupt or truncated .*delete it to start"):
        train(TrainConfig(**CFG), out_dir=tmp_path / "a", runtime=CPU, data=X, resume=True)
    monkeypatch.undo()
    small = TrainConfig(**{**CFG, "epochs1": 1, "epochs2": 0})
    train(small, out_dir=tmp_path / "b", runtime=QUIET, data=X)
    model_pt = tmp_path / "b" / "model.pt"
    model_pt.write_bytes(model_pt.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match=f"{model_pt} is corrupt or truncated .*train it again"):
        load_run(tmp_path / "b")
    (tmp_path / "b" / "history.json").write_text('[{"elbo": ')
    with pytest.raises(CorruptFileError, match="history.json is corrupt or truncated"):
        load_run(tmp_path / "b")


@pytest.fixture(scope="module")
def closed_form_reference():
    """An uninterrupted run with Eq. 10 in stage 1 (σ²_dataset from a pass over the whole set)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, history = train(TrainConfig(**CFG, sigma_update="closed_form"), runtime=QUIET, data=X)
    torch.set_num_threads(threads)
    return model.state_dict(), strip(history)


@pytest.mark.parametrize("call,variance", [
    (12, "global"),  # in the last batch of stage 1: resumed before the σ²_dataset pass and the switch
    (13, "pixel"),  # in the first batch of stage 2: resumed after them, from a partial epoch
])
def test_closed_form_resumes_exactly_across_the_stage_switch(tmp_path, monkeypatch, closed_form_reference,
                                                            call, variance):
    cfg = TrainConfig(**CFG, sigma_update="closed_form")
    signal_at(monkeypatch, call, signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        train(cfg, out_dir=tmp_path, runtime=QUIET, data=X)
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert mode(ckpt) == variance and len(ckpt["history"]) == 2
    assert ("sigma2_dataset" in ckpt["history"][-1]) == (variance == "pixel")
    monkeypatch.undo()
    train(cfg, out_dir=tmp_path, runtime=QUIET, data=X, resume=True)
    assert_same_run(tmp_path, closed_form_reference)
    assert "sigma2_dataset" in closed_form_reference[1][1]
