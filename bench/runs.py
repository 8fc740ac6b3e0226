"""Shared by the acceptance scripts: train and evaluate runs through the CLI, several at once."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def cli(*args: str, quiet: bool = False) -> None:
    out = subprocess.DEVNULL if quiet else None
    subprocess.run([sys.executable, "-m", "sigmavae.cli", *args], check=True, stdout=out)


def train_evaluate_sample(run_dir: Path, train_args: list[str], eval_args: list[str],
                          common: list[str]) -> float:
    """`sigmavae train`, `evaluate`, and one sample grid from q̂ and one from the prior; seconds."""
    start = time.perf_counter()
    # --resume: a finished run is kept, a killed one continues from its checkpoint.
    cli("train", *train_args, *common, "--out", str(run_dir), "--quiet", "--resume")
    cli("evaluate", str(run_dir), *eval_args, *common, quiet=True)
    for source in ("qhat", "prior"):
        cli("sample", str(run_dir), "--from", source, "--out", str(run_dir / f"samples-{source}.png"),
            *common, quiet=True)
    return time.perf_counter() - start


def run_all(jobs: int, tasks: dict) -> None:
    """``tasks``: name → zero-argument callable; ``jobs`` at a time; prints each as it ends."""
    with ThreadPoolExecutor(jobs) as pool:
        futures = {name: pool.submit(fn) for name, fn in tasks.items()}
        for name, future in futures.items():
            try:
                print(f"{name}: done in {future.result():.0f} s", flush=True)
            except subprocess.CalledProcessError as err:
                print(f"{name}: FAILED ({err})", flush=True)
