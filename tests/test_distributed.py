"""Issue 14: one model on 2 ranks (torchrun, gloo on CPU) trains what one process trains, and a
rank killed with SIGKILL ends the job with a clear error; --resume finishes it exactly."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sigmavae.config import TrainConfig
from sigmavae.runs import CHECKPOINT, load_run
from sigmavae.runtime import Runtime
from sigmavae.training import train

# 512 synthetic images, global batch 64: 8 steps an epoch, 32 images per rank and step.
QUIET = Runtime(device="cpu", progress=False)
OPTIONS = dict(dataset="synthetic", latent_dim=2, batch_size=64)
ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")]
# Two ranks draw their own ε where one process draws one stream: the runs agree in distribution,
# not bit for bit. Measured (3 epochs, closed-form σ²): per-epoch loss, ELBO and reconstruction term
# 0.2-3.4 nats per image apart, where seeds 0 and 1 of one process are 47-210 nats apart; σ²_dataset
# 0.0511 both. Tolerances: 8 nats, and 5% on σ².
NATS, SIGMA2_REL = 8.0, 0.05


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out, *extra, **options) -> subprocess.Popen:
    """``torchrun --nproc_per_node 2 -m sigmavae.cli train`` on CPU, one thread per rank."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in {**OPTIONS, **options}.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), "-m", "sigmavae.cli", "train", *args,
           "--device", "cpu", "--quiet", "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SIGMAVAE_DDP_TIMEOUT": "60"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=120) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def worker(proc, rank: int) -> int:
    """The pid of torchrun's worker with ``LOCAL_RANK=rank``."""
    for _ in range(200):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for pid in children:
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile (a process that just exited)
                continue
            if f"LOCAL_RANK={rank}".encode() in env:
                return int(pid)
        time.sleep(0.05)
    raise AssertionError("torchrun started no worker")


def strip(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_one_step_on_two_ranks_is_the_global_batch_gradient():
    """With the same noise, the DDP-averaged gradient of 2 unequal shards (7 + 6 images) is the
    one-process gradient of the 13-image batch, to float32 rounding, for Eq. 10's σ²_*, a learned
    σ, DIP-VAE's covariance and WAE's MMD; and the logged loss is the global batch's."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), str(ROOT / "tests" / "ddp_gradient_check.py")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["case"] for r in results] == ["sigma-closed_form", "sigma", "dip-vae-ii", "wae"]
    for r in results:
        assert r["same_params"], r
        assert r["worst_rel"] < 1e-4, r  # measured ~2e-6; a missing reduction gives 0.07-0.5
        assert r["loss_ddp"] == pytest.approx(r["loss"], rel=1e-5), r


def test_two_ranks_train_what_one_process_trains(tmp_path):
    config = dict(OPTIONS, epochs1=2, epochs2=1, sigma_update="closed_form")
    rc, output = finish(torchrun(tmp_path / "ddp", epochs1=2, epochs2=1, sigma_update="closed_form"))
    assert rc == 0, output
    assert "on 2 ranks (torchrun)" in output
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["world_size"] == 2
    _, loaded_config, ddp = load_run(tmp_path / "ddp")  # how it was trained is run.json, not config
    assert loaded_config == TrainConfig(**config)
    _, one = train(TrainConfig(**config), runtime=QUIET)
    assert len(ddp) == len(one) == 3
    for a, b in zip(ddp, one, strict=True):
        for key in ("loss", "elbo", "recon"):
            assert a[key] == pytest.approx(b[key], abs=NATS), (key, a, b)
        assert a["sigma2"] == pytest.approx(b["sigma2"], rel=SIGMA2_REL), (a, b)
    assert ddp[1]["sigma2_dataset"] == pytest.approx(one[1]["sigma2_dataset"], rel=SIGMA2_REL)
    # Eq. 10 per batch is the global batch's: the last batch's σ²_* is the dataset's, give or take
    assert ddp[1]["sigma2_last_batch"] == pytest.approx(ddp[1]["sigma2_dataset"], rel=0.2)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers in /proc")
def test_a_killed_rank_stops_the_job_and_resume_finishes_it(tmp_path):
    epochs = dict(epochs1=2, epochs2=2)
    whole = torchrun(tmp_path / "whole", **epochs)
    rc, output = finish(whole)
    assert rc == 0, output

    run = tmp_path / "killed"
    proc = torchrun(run, **epochs)
    victim = worker(proc, 1)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # SIGKILL rank 1 once epoch 1 is checkpointed
        try:
            if len(torch.load(run / CHECKPOINT, weights_only=True)["history"]) >= 1:
                break
        except (FileNotFoundError, RuntimeError, EOFError, KeyError):
            pass
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
    rc, output = finish(proc)
    assert rc != 0
    assert "Signal 9 (SIGKILL)" in output  # torchrun names the rank that died, and how
    assert not (run / "model.pt").exists()
    assert (run / CHECKPOINT).exists()

    with pytest.raises(ValueError, match=r"2 rank\(s\), this one has 1"):  # N ranks resume with N
        train(TrainConfig(**OPTIONS, **epochs), out_dir=run, runtime=QUIET, resume=True)

    rc, output = finish(torchrun(run, "--resume", **epochs))
    assert rc == 0, output
    model, _, history = load_run(run)
    reference, _, want = load_run(tmp_path / "whole")
    assert strip(history) == strip(want)
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert not (run / CHECKPOINT).exists()
