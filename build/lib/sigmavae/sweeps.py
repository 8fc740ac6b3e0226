"""Sweeps on a cluster: a list of trainings handed to submitit, Facebook's SLURM submission library.

:func:`train_with_submitit` submits one job per :class:`sigmavae.config.TrainConfig`, each of which
calls :func:`sigmavae.cache.cached_run` (so the cache's per-model lock and ``.partial`` resume hold
across jobs, nodes and notebooks), through submitit's AutoExecutor: a SLURM job array where SLURM is
installed, else local processes. ``sigmavae reproduce --jobs N --executor submitit`` uses it for
the models the selected artefacts need (:func:`sigmavae.artefacts.required_configs`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import sys
import types
from pathlib import Path

import torch

from .cache import cached_run
from .runtime import Runtime, resolve_device


def train_with_submitit(configs, jobs: int, runtime: Runtime, *, folder=None, cluster: str | None = None,
                        partition: str | None = None,
                        gpus_per_job: int = 0, cpus_per_job: int | None = None,
                        timeout_min: int = 720, log=print) -> list:
    """Each config into ``runtime``'s model cache (:func:`cached_run`), one submitit job per config.

    submitit's AutoExecutor submits a SLURM job array (at most ``jobs`` running at once, on
    ``partition``, each with ``gpus_per_job`` GPUs and ``cpus_per_job`` CPUs, killed after
    ``timeout_min``) where SLURM is installed, and otherwise starts local processes
    (``cluster="local"`` forces that; submitit's local executor starts every job at once, so
    there ``jobs`` does not limit them: use the default executor on one machine). The cache folder
    (``runtime.cache``) must be a directory every job sees (a shared filesystem on a cluster): the
    jobs write their runs there, under the cache's lock per model, so a model another job or
    notebook already trains is trained once. ``folder`` holds submitit's pickles and each job's logs (default:
    ``<cache>/submitit``). Returns the run directories; a failed job raises with its log's path.
    """
    submitit = _import_submitit()
    configs = list(configs)
    folder = Path(folder) if folder is not None else runtime.cache / "submitit"
    # Jobs start through this module (see _job_python), on SLURM and locally alike.
    python = _job_python()
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster, slurm_python=python,
                                     local_python=python)
    params = {"name": "sigmavae", "timeout_min": timeout_min, "gpus_per_node": gpus_per_job}
    if cpus_per_job is not None:
        params["cpus_per_task"] = cpus_per_job
    threads = cpus_per_job
    if executor.cluster == "slurm":
        params["slurm_array_parallelism"] = jobs
        if partition is not None:
            params["slurm_partition"] = partition
    else:
        if partition is not None:
            raise ValueError(f"--slurm-partition {partition}: submitit finds no SLURM here (it would run "
                             f"the jobs as {executor.cluster} processes); drop the option or run on the "
                             "cluster's login node")
        if threads is None and resolve_device(runtime.device).type == "cpu":  # all start at once: share cores
            threads = max(1, (os.cpu_count() or 1) // max(1, len(configs)))
    executor.update_parameters(**params)
    n = len(configs)
    submitted = executor.map_array(_train_job, configs, [runtime] * n, [threads] * n)
    log(f"submitted {n} submitit job(s) ({executor.cluster}); logs in {folder}")
    runs = []
    for config, job in zip(configs, submitted, strict=True):
        try:
            runs.append(Path(job.result()))
        except Exception as err:
            raise RuntimeError(f"submitit job {job.job_id} ({config.dataset} {config.method} seed "
                               f"{config.seed}) failed; its log: {job.paths.stderr}\n{err}") from err
    return runs


def _train_job(config, runtime: Runtime, threads: int | None) -> str:
    """One submitit job: the config's run in the cache (trained if it is not there yet)."""
    if threads is not None:
        torch.set_num_threads(threads)
    return str(cached_run(config, runtime=runtime))


def _import_submitit():
    try:
        import submitit
    except ImportError as err:
        raise ImportError(f"{err.name} is missing: `pip install sigmavae[sweeps]` (submitit) to hand "
                          "trainings to SLURM, or use the default executor") from err
    _provide_pkg_resources()
    return submitit


def _provide_pkg_resources() -> None:
    """submitit 1.5.2 (the latest) finds its executors and job environments with
    ``pkg_resources.iter_entry_points``, and setuptools ≥ 81 no longer ships ``pkg_resources``
    (facebookincubator/submitit#1765, #1813): without it even a local job fails before it starts.
    Where it is missing, this stands in for that one function with :mod:`importlib.metadata`."""
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return
    shim = types.ModuleType("pkg_resources", "importlib.metadata standing in for submitit (sigmavae)")
    shim.iter_entry_points = lambda group: list(importlib.metadata.entry_points(group=group))
    sys.modules["pkg_resources"] = shim


def _job_python() -> str:
    """The interpreter command submitit puts before ``-u -m submitit.core._submit FOLDER`` in each
    job: this module's ``__main__``, which provides ``pkg_resources`` (as above) and then runs
    submitit's own job entry point with FOLDER."""
    return f"{shlex.quote(sys.executable)} -m sigmavae.sweeps"


if __name__ == "__main__":  # a submitit job: <python> -m sigmavae.sweeps -u -m submitit.core._submit FOLDER
    sys.stdout.reconfigure(line_buffering=True)  # what -u gave submitit's own command: logs as they come
    sys.stderr.reconfigure(line_buffering=True)
    _provide_pkg_resources()
    from submitit.core.submission import submitit_main

    sys.argv = [sys.argv[0], sys.argv[-1]]
    submitit_main()
