"""The trained-model cache: one run directory per (TrainConfig, library version).

Table 2, Table 3 and Figures 2-4 need the same trained models; notebooks ask for them with
:func:`cached_run`, which trains only what is not there yet. Keys hash the whole config and
``sigmavae.__version__`` (bump it when a change alters what training produces).

A run is trained into ``<entry>.partial`` and renamed into place when complete, so a killed
training never leaves a half-written entry; the next call resumes it from its checkpoint
(:func:`sigmavae.training.train` with ``resume=True``) instead of starting over. An exclusive
file lock per key makes two processes that need the same model train it once (the second waits,
then reads the finished run), and guarantees that one process at a time uses the partial run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

from . import __version__
from .classifier import default_cache_dir
from .training import TrainConfig, train


def config_key(config: TrainConfig) -> str:
    """A short, stable hash of the config and the library version."""
    payload = json.dumps({**dataclasses.asdict(config), "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_dir(config: TrainConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    base = Path(cache_dir or default_cache_dir()) / "runs"
    return base / f"{config.dataset}-{config.method}-{config_key(config)}"


def cached_run(config: TrainConfig, cache_dir: str | os.PathLike | None = None, device="auto",
               data_root=None, download=None, progress: bool = True) -> Path:
    """The run directory of ``config``, trained (once, under a lock) if it is not cached yet; a
    training that was killed or interrupted is resumed where its last checkpoint left it."""
    target = run_dir(config, cache_dir)
    if (target / "model.pt").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if we die
        if (target / "model.pt").is_file():  # another process finished it while we waited
            return target
        for stale in target.parent.glob(target.name + ".tmp-*"):  # left by versions before .partial
            shutil.rmtree(stale, ignore_errors=True)
        partial = target.with_name(target.name + ".partial")
        train(config, device, partial, data_root=data_root, download=download, progress=progress,
              resume=True)
        os.replace(partial, target)
    return target
