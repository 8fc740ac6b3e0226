"""``sigmavae reproduce``: execute the paper's notebooks with papermill on one parameter profile.

Notebooks (``notebooks/<artefact>.ipynb``) run in :data:`sigmavae.artefacts.ARTEFACTS`' order:
the first one that needs a model, q̂ or score computes it into the shared cache
(:mod:`sigmavae.cache`) and the later ones read it back: Table 1 trains the σ² sweep that
Figure 1 reuses; Table 3 trains ours (both stages) and the VAE, β-VAE and DIP-VAE that Table 2,
Figure 2, Table 4 and the appendix reuse; Figure 2 reads Table 2's FIDs. Each executed notebook
replaces its source (so the book shows it) unless ``out_dir`` is given.

With ``jobs`` > 1 the models are trained first, into the same cache: by default in local processes
(:func:`sigmavae.cache.train_missing`, the plan the notebooks train by too), or with
``executor="submitit"`` as jobs of submitit's AutoExecutor (:func:`train_with_submitit`): a SLURM
job array where ``sbatch`` exists, else local processes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import nbformat
import papermill

from . import evidence
from .artefacts import ARTEFACTS, required_configs, resolve
from .cache import config_key, plan_lines, run_dir, train_missing, training_plan
from .params import PROFILES, unknown_names
from .sweeps import train_with_submitit

EXECUTORS = ("processes", "submitit")  # how `reproduce --jobs` trains: local processes, or submitit jobs

def reproduce(profile: str, *, notebooks_dir: str | Path = "notebooks", out_dir: str | Path | None = None,
              only: list[str] | None = None, parameters: dict | None = None, jobs: int = 1,
              log=print, log_output: bool = False, executor: str = "processes",
              submitit_options: dict | None = None, train_only: bool = False,
              plan_only: bool = False) -> list[tuple[str, float]]:
    """Execute ``only`` (artefact names; default all) with ``profile`` and ``parameters`` on top.
    With ``jobs`` > 1 the models they need (declared by each artefact) are first trained that
    many at a time (separate processes, each with its share of the CPU threads: small models share
    a GPU well, and on 2 CPU cores two 1-thread trainings beat two in a row, see
    bench/sweep_speed.py). Returns (step, seconds) pairs; stops at the first failure, keeping what
    was already done. Bad parameters stop before anything runs. ``log_output``: stream what the
    notebooks print (which model of how many is training, each epoch, the time left) through
    papermill's logger, as ``papermill --log-output`` does. ``executor``: ``"processes"`` (the
    default: :func:`sigmavae.cache.train_missing`) or ``"submitit"`` (:func:`train_with_submitit`,
    with ``submitit_options`` as its keyword arguments). ``train_only``: train what the notebooks
    need (``jobs`` at a time; 1: in this process) and execute nothing. ``plan_only``: say which
    models the notebooks need, which are cached and what the others cost to train
    (:func:`sigmavae.cache.plan_lines`), and run nothing. Then the finished entries
    of those models (and the scores of no model) go into the evidence store
    (:mod:`sigmavae.evidence`, ``runtime.evidence``), where there is one."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    unknown = sorted(set(only or ()) - set(ARTEFACTS))
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(ARTEFACTS)}")
    selected = [a for a in ARTEFACTS if not only or a in only]
    notebooks_dir = Path(notebooks_dir)
    missing = [a for a in selected if not (notebooks_dir / f"{a}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(f'{a}.ipynb' for a in missing)} in {notebooks_dir} "
                                "(run from the repository root, or pass --notebooks)")
    params = {"profile": profile, **(parameters or {})}
    for name in selected:  # every name the notebooks would receive: papermill itself only warns
        declared = notebook_parameters(notebooks_dir / f"{name}.ipynb")
        bad = unknown_names(params, known=declared)
        if bad:
            raise ValueError(f"{name}.ipynb: " + "; ".join(bad) + f"; its parameters: {', '.join(declared)}")
    resolved = {a: resolve(a, **params) for a in selected}  # checked once, before any compute
    out = Path(out_dir) if out_dir is not None else notebooks_dir
    out.mkdir(parents=True, exist_ok=True)
    configs = required_configs(selected, resolved)
    runtime = dataclasses.replace(resolved[selected[0]].runtime, progress=False)
    if plan_only:
        for line in plan_lines(configs, runtime):
            log(line)
        return []
    timings = []
    if jobs > 1 or train_only:  # train every model the notebooks will need, `jobs` at a time
        timings.append(("training", _train_first(configs, runtime, jobs, executor, submitit_options, log)))
    for name in [] if train_only else selected:
        start = time.perf_counter()
        log(f"{name}: running ({resolved[name].profile} profile)")
        papermill.execute_notebook(str(notebooks_dir / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                   parameters=params, progress_bar=False, kernel_name="python3",
                                   log_output=log_output)
        fold_injected_parameters(out / f"{name}.ipynb")
        timings.append((name, time.perf_counter() - start))
        log(f"{name}: done in {timings[-1][1]:.0f} s → {out / f'{name}.ipynb'}")
    if runtime.evidence is not None:  # what this machine computed outlives it
        log(f"evidence store {runtime.evidence}: {_put(configs, runtime)}")
    log(f"total {sum(t for _, t in timings):.0f} s for {len(timings)} steps")
    return timings


def _put(configs, runtime) -> evidence.Report:
    """The finished entries of ``configs``' models (and the scores of no model) from the cache
    into the evidence store."""
    names = {run_dir(c, runtime.cache).name for c in configs}
    return evidence.put(runtime.cache, runtime.evidence, runs=names)


def _train_first(configs, runtime, jobs: int, executor: str, submitit_options: dict | None, log) -> float:
    """Train ``configs`` (those neither cached nor in the evidence store), ``jobs`` at a time, each
    model put into the evidence store as soon as it is trained (a machine that goes away loses the
    models in training alone); the seconds it took."""
    start = time.perf_counter()
    log(f"the notebooks need {len(configs)} models; training those not cached or stored yet, {jobs} at a "
        f"time ({executor})")
    stored = None if runtime.evidence is None else (
        lambda c: log(f"  into {runtime.evidence}: {str(_put(configs, runtime)).splitlines()[0]}"))
    if executor == "submitit":
        train_with_submitit(training_plan(configs, runtime.cache, runtime.evidence), jobs, runtime,
                            **(submitit_options or {}))
    elif not train_missing(configs, runtime=runtime, jobs=jobs, log=log, on_trained=stored):
        log(f"all {len({config_key(c) for c in configs})} models are cached or stored: nothing to train")
    seconds = time.perf_counter() - start
    log(f"training: done in {seconds:.0f} s")
    return seconds


def notebook_parameters(path: Path) -> list[str]:
    """The names of a notebook's parameters cell (papermill's ``inspect_notebook``, without its
    log line)."""
    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return list(papermill.inspect_notebook(str(path)))
    finally:
        logger.setLevel(level)


def fold_injected_parameters(path: Path) -> None:
    """Tag the cell papermill injects with the parameters used ``hide-cell``, like the default
    parameters and the install cell: a page opens with the science, set-up folded away (the first
    printed line names the profile)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    nbformat.write(nb, path)
