"""Run directories, checkpoints, and how a run that was stopped continues exactly.

A run directory holds ``config.json`` (the TrainConfig), ``run.json`` (how it was trained: library
version, ranks, precision), ``history.json`` and ``model.pt`` (the weights) once training is complete
(:func:`finish_run`, :func:`load_run`), and ``checkpoint.pt`` while it runs (:func:`save_checkpoint`):
everything a resumed :func:`sigmavae.training.train` needs to continue bit for bit, the
:class:`TrainState`. :func:`open_run` decides, before any compute, what a directory holds and
whether it may be used; :func:`restore` puts a checkpoint back into a fresh state. A model's
variance mode is not stored: it follows from its config and history (:func:`load_model`).

Stopping: :func:`stop_on_signals` turns SIGINT / SIGTERM into a flag the loop reads after each
batch (:class:`TrainingInterrupted` once the checkpoint is written); :class:`NonFiniteError` is a
divergence, raised before anything good is overwritten. Every file is written with
:func:`sigmavae.runtime.atomic_write`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .config import TrainConfig
from .distributed import Context
from .models import VAE
from .runtime import CorruptFileError, atomic_write, commit, first_line, machine, read_file, resolve_device

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainState:
    """What training changes as it goes, all of it in a checkpoint: the model's weights, Adam,
    the batch-order generator, the generator of the step's noise (ε, WAE's prior draws; on the
    data's device), the history, and ``partial``, the state of an epoch a signal stopped (see
    :func:`sigmavae.epoch.run_epoch`) and its stage. ``x`` is the training set on the
    device (its shape is checked on resume, the data themselves are not saved)."""

    model: VAE
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    x: torch.Tensor
    noise: torch.Generator
    history: list[dict] = dataclasses.field(default_factory=list)
    partial: dict | None = None


def open_run(out: Path, config: TrainConfig, resume: bool, ctx: Context, precision: str = "fp32"):
    """What ``out`` holds for :func:`sigmavae.training.train`: None (start afresh), the checkpoint
    to resume, or "complete". Refuses, before any compute, a run of another config or, without
    ``resume``, any run, and a checkpoint written by another number of ranks (torchrun's: each
    rank's batch slices and random streams depend on it, so only the same number continues the
    same run), and one of another ``precision`` (the rest of a run in other arithmetic would not
    be the run it continues). A finished run is reused whatever its number of ranks or precision.
    Rank 0 removes what a write cut short by a kill left (``.*.tmp-*``)."""
    here = {**dataclasses.asdict(config), "version": __version__}
    ckpt_path = out / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = read_file(ckpt_path, f"delete it to start this run over (or delete {out})")
        stored, what = {**ckpt["config"], "version": ckpt["version"]}, "an unfinished run"
    elif (out / "config.json").is_file():
        stored = read_file(out / "config.json", f"delete {out} and train again")
        stored = {k: v for k, v in stored.items() if k not in RUN_METADATA}  # older runs kept it there
        stored["version"] = run_metadata(out)["version"]
        ckpt, what = None, ("a finished run" if (out / "model.pt").is_file() else "a run")
    else:
        ckpt, stored, what = None, None, None
    if stored is not None:
        differ = [f"{k} {stored.get(k)!r} there, {here.get(k)!r} here" for k in sorted(here | stored)
                  if stored.get(k) != here.get(k)]
        if differ:
            raise ValueError(f"{out} holds {what} of another config ({'; '.join(differ)}): use another "
                             f"--out / out_dir, or pass that run's options to continue it, or delete {out}")
        if not resume:
            raise ValueError(f"{out} already holds {what} of this config: pass --resume (resume=True) "
                             f"to continue or reuse it, or delete {out} to train it again")
        if ckpt is None and what == "a finished run":
            return "complete"
    if ckpt is not None and ckpt.get("world_size", 1) != ctx.world_size:
        ranks = ckpt.get("world_size", 1)
        how = "without torchrun" if ranks == 1 else f"with torchrun --nproc_per_node/--nnodes giving {ranks}"
        raise ValueError(f"{ckpt_path} was written by a run on {ranks} rank(s), this one has "
                         f"{ctx.world_size}: resume it {how} ranks (each rank's batch slices and random "
                         f"streams depend on their number), or delete {out} to start over with "
                         f"{ctx.world_size}")
    was = ckpt.get("precision", "fp32") if ckpt is not None else precision
    if was != precision:
        raise ValueError(f"{ckpt_path} was trained in {was}, this run would continue in {precision}: resume "
                         f"with --precision {was} (or $SIGMAVAE_PRECISION={was}), or delete {out} to start "
                         f"over in {precision}")
    if ctx.main:
        for stale in out.glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
    return ckpt


def load_model(config: TrainConfig, history: list[dict], state_dict: dict,
               partial: dict | None = None) -> VAE:
    """The model of ``config`` with weights ``state_dict``, in the variance mode its training had
    reached: after Algorithm 1's switch (a stage-2 entry in ``history``, or ``partial``, an epoch
    in progress, in stage 2) the pixel mode with σ² frozen as σ²_dataset and the floor
    ``config.variance_floor · σ²_dataset``; before it (or for the other methods) the mode
    :meth:`VAE.from_config` gives. For :func:`load_run` and a resumed training alike. Draws its
    initial weights from torch's global stream before replacing them, as an untrained model would."""
    model = VAE.from_config(config)
    model.load_state_dict(state_dict)
    if any(h["stage"] == 2 for h in history) or (partial or {}).get("stage") == 2:
        model.use_pixel_variance(config.variance_floor)
    return model


def restore(state: TrainState, ckpt: dict, ctx: Context, out: Path) -> None:
    """Put checkpoint ``ckpt`` back into ``state``, whose model :func:`load_model` built from it:
    Adam's moments, the batch order's generator, the history, an epoch in progress, and the noise
    generator (this rank's, under torchrun) exactly where they were. (Checkpoints of versions that
    drew ε from torch's global stream saved that stream under the same keys: they resume too.)"""
    if list(state.x.shape) != ckpt["data_shape"]:
        raise ValueError(f"{out / CHECKPOINT} was trained on data of shape {ckpt['data_shape']}, "
                         f"not {list(state.x.shape)}: resume with the same data, or delete {out}")
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.shuffle.set_state(ckpt["shuffle"])
    state.history, state.partial = ckpt["history"], checkpoint_partial(ckpt)
    rng_cpu, rng_cuda = ckpt["rng_ranks"][ctx.rank] if ctx.active else (ckpt["rng_cpu"], ckpt["rng_cuda"])
    state.noise.set_state(rng_cpu if state.noise.device.type == "cpu" else rng_cuda)


def checkpoint_partial(ckpt: dict) -> dict | None:
    """The epoch in progress of a checkpoint, with its stage (checkpoints of earlier versions
    recorded the variance mode instead)."""
    partial = ckpt["epoch_in_progress"]
    if partial is not None and "stage" not in partial:
        partial = {**partial, "stage": 2 if ckpt.get("variance") == "pixel" else 1}
    return partial


def random_states(state: TrainState) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise generator's state, as (CPU state, None) on a CPU and (None, its state) on a GPU:
    what :func:`restore` sets back."""
    here = state.noise.get_state()
    return (here, None) if state.noise.device.type == "cpu" else (None, here)


def save_checkpoint(out: Path, state: TrainState, config: TrainConfig, partial: dict | None = None,
                    world_size: int = 1, rng_ranks: list | None = None) -> None:
    """Write ``state`` as ``out/checkpoint.pt`` (atomically), with ``partial`` (the epoch a signal
    stopped, or None) and the model's precision. Under torchrun, rank 0 writes it with
    ``world_size`` and every rank's noise states (``rng_ranks``, from :func:`random_states`)."""
    model, x = state.model, state.x
    rng_cpu, rng_cuda = random_states(state)
    atomic_write(out / CHECKPOINT, {
        "version": __version__, "config": dataclasses.asdict(config), "history": state.history,
        "model": model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "shuffle": state.shuffle.get_state(), "rng_cpu": rng_cpu, "rng_cuda": rng_cuda,
        "data_shape": list(x.shape), "epoch_in_progress": partial,
        "world_size": world_size, "rng_ranks": rng_ranks, "precision": model.precision,
    })


def describe_checkpoint(out: Path, history: list[dict], partial: dict | None = None) -> str:
    """The checkpoint and how far it got, in words, for error messages."""
    at = f"batch {partial['batch']} of epoch {len(history) + 1}" if partial else f"epoch {len(history)}"
    return f"{out / CHECKPOINT} (after {at})"


def finish_run(out_dir: str | Path, model: VAE, config: TrainConfig, history: list[dict],
               world_size: int = 1) -> Path:
    """Write ``config.json``, ``run.json``, ``history.json`` and ``model.pt`` (last, each
    atomically), then delete the checkpoint: the directory reloads alone, and ``model.pt`` without
    a checkpoint is a complete run. ``config.json`` holds the TrainConfig, what was trained;
    ``run.json`` (:data:`RUN_METADATA`) how: the library version, ``world_size`` (the number of
    torchrun ranks; 1: one process), ``precision`` (the networks' arithmetic,
    :mod:`sigmavae.precision`), the machine, torch's CPU threads (the epochs' seconds depend on
    them: ``reproduce --jobs 2`` on 2 cores trains each model on one) and the git commit
    (:func:`sigmavae.runtime.machine`, :func:`sigmavae.runtime.commit`). The model cache's key
    (config + version) does not depend on how.
    (A bf16 model is the same experiment as an fp32 one within seed noise,
    ``bench/speed_quality.py``, as a GPU's is a CPU's.) ``model.pt`` holds the weights alone: the
    variance mode follows from the config and the history (:func:`load_model`)."""
    out = Path(out_dir)
    meta = {"version": __version__, "world_size": world_size, "precision": model.precision,
            "machine": machine(str(next(model.parameters()).device)), "threads": torch.get_num_threads(),
            "commit": commit()}
    atomic_write(out / "config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    atomic_write(out / "run.json", json.dumps(meta, indent=2) + "\n")
    atomic_write(out / "history.json", json.dumps(history, indent=2) + "\n")
    atomic_write(out / "model.pt", {"state_dict": model.state_dict()})
    (out / CHECKPOINT).unlink(missing_ok=True)
    return out


def place_run(out_dir: str | Path, model: VAE, config: TrainConfig, history: list[dict],
              world_size: int = 1) -> Path:
    """:func:`finish_run` into a fresh ``<out_dir>.tmp-placing`` directory, then renamed to
    ``out_dir`` (which must not exist): a complete run appears at once or not at all. For a run
    written while another trains (Algorithm 1's stage-1 model, saved at the stage switch)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp-placing")
    if tmp.exists():  # left by a process that died between the two steps
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    finish_run(tmp, model, config, history, world_size)
    os.replace(tmp, out)
    return out


def run_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig of a complete run directory (:func:`finish_run`), read without the model;
    anything else is refused, saying what is missing."""
    run = Path(run_dir)
    missing = [f for f in ("config.json", "history.json", "model.pt") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} is not a sigmavae run directory: missing {', '.join(missing)}"
                                " (create one with `sigmavae train ... --out DIR`)")
    return TrainConfig.from_dict(read_file(run / "config.json", f"delete {run} and train it again"))


RUN_METADATA = ("version", "world_size", "precision")  # run.json: how a run was trained, not what


def run_metadata(run_dir: str | Path) -> dict:
    """How a run was trained (:data:`RUN_METADATA`): its ``run.json``, or, for runs of earlier
    versions, the same keys in its ``config.json``; a precision not recorded (runs before bf16)
    is fp32, ranks not recorded 1."""
    run = Path(run_dir)
    source = run / "run.json" if (run / "run.json").is_file() else run / "config.json"
    meta = read_file(source, f"delete {run} and train it again")
    return {"world_size": 1, "precision": "fp32", **{k: meta[k] for k in RUN_METADATA if k in meta}}


def run_precision(run_dir: str | Path) -> str:
    """The precision a complete run was trained in (runs of versions before bf16: fp32)."""
    return run_metadata(run_dir)["precision"]


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig, history) of a directory written by :func:`finish_run`
    (or by an earlier version, whose ``model.pt`` also held the variance mode); the model
    evaluates in fp32 until its ``precision`` is set."""
    run = Path(run_dir)
    config = run_config(run)
    remedy = f"delete {run} and train it again"
    history = read_file(run / "history.json", remedy)
    ckpt = read_file(run / "model.pt", remedy)
    try:
        model = load_model(config, history, ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:  # a model.pt of another run or format
        raise CorruptFileError(f"{run / 'model.pt'} does not hold the model of {run / 'config.json'} "
                               f"({first_line(err)}); {remedy}") from err
    model = model.to(resolve_device(device), memory_format=torch.channels_last)  # as trained
    return model.eval(), config, history


# ----------------------------------------------------------------------------- stopping

class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`sigmavae.training.train`; the checkpoint it wrote resumes
    exactly."""

    def __init__(self, signum: int, saved: str):
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name}: saved {saved}; to continue, run the same "
                         "`sigmavae train` command with --resume (or train(..., resume=True))")


class NonFiniteError(FloatingPointError):
    """A non-finite loss, ELBO or gradient: training stopped before it could overwrite anything."""

    def __init__(self, where: str, batch: int, n_batches: int, what: str, saved: str | None,
                 has_out: bool):
        if saved:
            good = f"the last good checkpoint is {saved}; resume from it with --resume (resume=True)"
        else:
            good = "there is no checkpoint to go back to" + ("" if has_out else " (no out_dir)")
        super().__init__(f"training diverged: non-finite {what} in {where}, batch {batch} of "
                         f"{n_batches}; {good}")


@contextlib.contextmanager
def stop_on_signals(enabled: bool = True):
    """While training, SIGINT and SIGTERM only append to the yielded list; the loop stops after the
    current batch and checkpoints a consistent state. A second signal interrupts at once. The
    previous handlers come back afterwards (train() also runs inside notebooks and libraries)."""
    stop: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        if stop:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopped at once")
        stop.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
