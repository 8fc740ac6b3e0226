"""``sigmavae reproduce``: execute the paper's notebooks with papermill on one parameter profile.

Notebooks run in dependency order: the first one that needs a model trains it into the shared
cache (:mod:`sigmavae.cache`) and the later ones reuse it: Table 1 trains the σ² sweep that
Figure 1 reuses; Table 3 trains ours (both stages) and the VAE, β-VAE and DIP-VAE that Table 2,
Figure 2, Table 4 and the appendix reuse. Each executed notebook replaces its source (so the book
shows it) unless ``out_dir`` is given.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from .cache import cached_run
from .reports import required_configs
from .training import resolve_device

# Dependency order (see above); the short names are what ``--only`` accepts.
NOTEBOOKS = {
    "table1": "table1_latent_density",
    "figure1": "figure1_sigma_sweep",
    "table3": "table3_iwae",
    "table2": "table2_fid",
    "figure2": "figure2_prior_vs_aggregate",
    "table4": "table4_mixtures",
    "figure3_4": "figure3_4_uncertainty",
    "appendix": "appendix_samples",
}


def reproduce(profile: str, notebooks_dir: str | Path = "notebooks", out_dir: str | Path | None = None,
              only: list[str] | None = None, parameters: dict | None = None, jobs: int = 1,
              log=print) -> list[tuple[str, float]]:
    """Execute ``only`` (short names; default all) with ``<notebooks_dir>/profiles/<profile>.yaml``
    and ``parameters`` on top. With ``jobs`` > 1 the models they need are first trained that many
    at a time (separate processes, each with its share of the CPU threads: small models share a GPU
    well, and on 2 CPU cores two 1-thread trainings beat two in a row, see bench/sweep_speed.py).
    Returns (step, seconds) pairs; stops at the first failure, keeping what was already done."""
    try:
        import papermill
        import yaml
    except ImportError as err:
        raise ImportError(f"{err.name} is missing: `pip install sigmavae[notebooks]` (papermill, "
                          "ipykernel, pyyaml) to run the notebooks") from err
    notebooks_dir = Path(notebooks_dir)
    profiles = notebooks_dir / "profiles"
    profile_file = profiles / f"{profile}.yaml"
    if not profile_file.is_file():
        known = sorted(p.stem for p in profiles.glob("*.yaml")) or ["none found"]
        raise FileNotFoundError(f"no profile {profile_file}: the profiles in {profiles} are "
                                f"{', '.join(known)} (run from the repository root, or pass --notebooks)")
    unknown = sorted(set(only or ()) - set(NOTEBOOKS))
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    params = {**yaml.safe_load(profile_file.read_text()), **(parameters or {})}
    out = Path(out_dir) if out_dir is not None else notebooks_dir
    out.mkdir(parents=True, exist_ok=True)
    timings = []
    if jobs > 1:  # train every model the notebooks will need, `jobs` at a time, into the cache
        start = time.perf_counter()
        configs = required_configs(only or list(NOTEBOOKS), **params)
        log(f"training {len(configs)} models, {jobs} at a time")
        train_concurrently(configs, jobs, params.get("cache_dir"), params.get("device", "auto"),
                           params.get("data_root"))
        timings.append(("training", time.perf_counter() - start))
        log(f"training: done in {timings[-1][1]:.0f} s")
    for short, name in NOTEBOOKS.items():
        if only and short not in only:
            continue
        start = time.perf_counter()
        log(f"{name}: running ({profile} profile)")
        papermill.execute_notebook(str(notebooks_dir / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                   parameters=params, progress_bar=False, kernel_name="python3")
        timings.append((name, time.perf_counter() - start))
        log(f"{name}: done in {timings[-1][1]:.0f} s → {out / f'{name}.ipynb'}")
    log(f"total {sum(t for _, t in timings):.0f} s for {len(timings)} notebooks")
    return timings


def train_concurrently(configs, jobs: int, cache_dir=None, device="auto", data_root=None,
                       threads: int | None = None) -> None:
    """Each config into the model cache (:func:`cached_run`), ``jobs`` processes at once.

    ``threads``: torch's intra-op threads per process; default on a CPU: its threads ÷ ``jobs``
    (left to torch, each would take them all and the processes would fight over the cores).
    """
    if threads is None and resolve_device(device).type == "cpu":
        threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_set_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(cached_run, c, cache_dir, device, data_root, None, False) for c in configs]
        for future in futures:
            future.result()  # re-raises a failed training here


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
