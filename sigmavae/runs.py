"""Run directories and the files in them, every one written atomically.

A run directory holds ``config.json``, ``history.json`` and ``model.pt`` once training is complete
(:func:`save_run`, :func:`load_run`), and ``checkpoint.pt`` while it runs (:func:`save_checkpoint`,
read back by :func:`check_out_dir`): everything a resumed :func:`sigmavae.training.train` needs to
continue bit for bit. :func:`atomic_write` is the one way the package writes a file that a reader,
or a process killed at any moment, must never see half-written: run files, the data, classifier
and FID caches, and the fitted q̂ (:meth:`sigmavae.sampling.GaussianMixturePrior.save`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from . import __version__
from .config import TrainConfig
from .data import IMAGE_SIZES
from .models import VAE

CHECKPOINT = "checkpoint.pt"


class CorruptFileError(ValueError):
    """A run file that cannot be read back: truncated, or not what it should be."""


def atomic_write(path: str | Path, obj) -> Path:
    """Write ``obj`` to ``path`` so that a reader (or a process killed at any moment) sees the old
    file or the new one, never half of one: bytes and str are written as they are, anything else
    with ``torch.save``; into a temporary file in the same directory, fsync, ``os.replace``, and an
    fsync of the directory that makes the rename itself durable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and named after the process: two writers never share one, and train() sweeps the
    # leftovers of a killed one (".*.tmp-*").
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if isinstance(obj, bytes | bytearray | memoryview):
                f.write(obj)
            elif isinstance(obj, str):
                f.write(obj.encode())
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_file(path: Path, remedy: str):
    """A run file's content (JSON, or ``torch.load`` on CPU with ``weights_only``); a truncated or
    corrupt one is refused with an error that names it and says what to do (``remedy``)."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and JSON errors alike: the file is unusable
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CorruptFileError(f"{path} is corrupt or truncated ({reason}); {remedy}") from err


def check_out_dir(out: Path, config: TrainConfig, resume: bool, world_size: int = 1):
    """What ``out`` holds for :func:`sigmavae.training.train`: None (start afresh), the checkpoint
    to resume, or "complete". Refuses, before any compute, a run of another config or, without
    ``resume``, any run, and a checkpoint written by another number of ranks (``world_size``,
    torchrun's ranks: each rank's batch slices and random streams depend on it, so only the same
    number continues the same run). A finished run is reused whatever its number of ranks."""
    here = {**dataclasses.asdict(config), "version": __version__}
    ckpt_path = out / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = read_file(ckpt_path, f"delete it to start this run over (or delete {out})")
        stored, what = {**ckpt["config"], "version": ckpt["version"]}, "an unfinished run"
    elif (out / "config.json").is_file():
        stored = read_file(out / "config.json", f"delete {out} and train again")
        stored.pop("world_size", None)  # how it was trained, not what: any number of ranks is the run
        ckpt, what = None, ("a finished run" if (out / "model.pt").is_file() else "a run")
    else:
        return None
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
    if ckpt is not None and ckpt.get("world_size", 1) != world_size:
        ranks = ckpt.get("world_size", 1)
        how = "without torchrun" if ranks == 1 else f"with torchrun --nproc_per_node/--nnodes giving {ranks}"
        raise ValueError(f"{ckpt_path} was written by a run on {ranks} rank(s), this one has {world_size}: "
                         f"resume it {how} ranks (each rank's batch slices and random streams depend "
                         f"on their number), or delete {out} to start over with {world_size}")
    return ckpt


def save_checkpoint(out: Path, model: VAE, optimizer, shuffle: torch.Generator, config: TrainConfig,
                    history: list[dict], x: torch.Tensor, partial: dict | None = None,
                    world_size: int = 1, rng_ranks: list | None = None) -> None:
    """Everything a resumed :func:`sigmavae.training.train` needs to continue bit for bit: weights,
    Adam's moments, the variance mode and floor, the random streams, and ``partial``, the state of
    an epoch a signal stopped (see :func:`sigmavae.training.run_epoch`). Under torchrun, rank 0
    writes it with ``world_size`` and every rank's (CPU, CUDA) random states (``rng_ranks``)."""
    atomic_write(out / CHECKPOINT, {
        "version": __version__, "config": dataclasses.asdict(config), "history": history,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "variance": model.variance, "floor": model.floor, "sigma2_dataset": model.sigma2,
        "sigma_requires_grad": model.sigma.requires_grad,
        "shuffle": shuffle.get_state(), "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None,
        "data_shape": list(x.shape), "epoch_in_progress": partial,
        "world_size": world_size, "rng_ranks": rng_ranks,
    })


def describe_checkpoint(out: Path, history: list[dict], partial: dict | None = None) -> str:
    """The checkpoint and how far it got, in words, for error messages."""
    at = f"batch {partial['batch']} of epoch {len(history) + 1}" if partial else f"epoch {len(history)}"
    return f"{out / CHECKPOINT} (after {at})"


def save_run(out_dir: str | Path, model: VAE, config: TrainConfig, history: list[dict],
             world_size: int = 1) -> Path:
    """Write ``config.json``, ``history.json`` and ``model.pt`` (last, each atomically): the
    directory reloads alone, and ``model.pt`` is only there once the run is complete.
    ``config.json`` holds the config's fields, the library version and ``world_size``, the number
    of torchrun ranks that trained it (1: one process): run metadata, not a TrainConfig field, so
    the model cache's key (config + version) does not depend on it; TrainConfig.from_dict ignores it."""
    out = Path(out_dir)
    meta = {"version": __version__, "world_size": world_size}
    atomic_write(out / "config.json", json.dumps({**dataclasses.asdict(config), **meta}, indent=2) + "\n")
    atomic_write(out / "history.json", json.dumps(history, indent=2) + "\n")
    atomic_write(out / "model.pt", {"state_dict": model.state_dict(), "variance": model.variance,
                                    "floor": model.floor, "sigma_param": model.sigma_param})
    return out


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig, history) of a directory written by :func:`save_run`."""
    from .training import resolve_device  # training imports this module

    run = Path(run_dir)
    missing = [f for f in ("config.json", "history.json", "model.pt") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} is not a sigmavae run directory: missing {', '.join(missing)}"
                                " (create one with `sigmavae train ... --out DIR`)")
    remedy = f"delete {run} and train it again"
    config = TrainConfig.from_dict(read_file(run / "config.json", remedy))
    history = read_file(run / "history.json", remedy)
    ckpt = read_file(run / "model.pt", remedy)
    channels, size = IMAGE_SIZES[config.dataset]
    try:
        model = VAE(config.latent_dim, channels, variance=ckpt["variance"], floor=ckpt["floor"],
                    sigma_param=ckpt["sigma_param"], image_size=size)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:  # a model.pt of another run or format
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CorruptFileError(f"{run / 'model.pt'} does not hold the model of {run / 'config.json'} "
                               f"({reason}); {remedy}") from err
    model = model.to(resolve_device(device), memory_format=torch.channels_last)  # as trained
    return model.eval(), config, history
