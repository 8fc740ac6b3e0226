"""A sweep on one machine: train several models one after the other, or several at once.

    python bench/sweep_speed.py --data-root ../shared/data [--models 2] [--epochs 1] [--jobs 2]
                                [--dataset mnist]

Trains ``--models`` MNIST models (Algorithm 1's stage 1, Eq. 10's σ², ``--epochs`` epochs, seeds
0, 1, ...) into fresh caches with :func:`sigmavae.cache.train_missing`, which is what
``sigmavae reproduce --jobs N`` runs, three ways, and prints the seconds of each:
  - ``sequential``: one after the other in this process, with all of torch's threads;
  - ``concurrent``: ``--jobs`` processes, the threads split among them (the default);
  - ``oversubscribed``: ``--jobs`` processes that each keep all the threads (torch's default).
and ``sweep_speedup`` (sequential ÷ concurrent).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from sigmavae.cache import train_missing
from sigmavae.config import TrainConfig
from sigmavae.runtime import Runtime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--models", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    configs = [TrainConfig(args.dataset, epochs1=args.epochs, epochs2=0, sigma_update="closed_form",
                           seed=s)
               for s in range(args.models)]
    threads = torch.get_num_threads()
    ways = {"sequential": (1, None), "concurrent": (args.jobs, None),
            "oversubscribed": (args.jobs, threads)}
    print(f"{args.models} {args.dataset} models × {args.epochs} epoch(s), device {args.device}, "
          f"{threads} threads, torch {torch.__version__}")
    seconds = {}
    for way, (jobs, per_process) in ways.items():
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            runtime = Runtime(device=args.device, data_root=args.data_root, cache_dir=cache, progress=False)
            train_missing(configs, runtime=runtime, jobs=jobs, threads=per_process, log=None)
            seconds[way] = time.perf_counter() - start
        print(f"{way:<14}: {seconds[way]:.0f} s ({jobs} process(es), "
              f"{per_process or max(1, threads // jobs)} thread(s) each)", flush=True)
    print(f"sweep_speedup {seconds['sequential'] / seconds['concurrent']:.2f} "
          f"(oversubscribed: {seconds['sequential'] / seconds['oversubscribed']:.2f})")


if __name__ == "__main__":
    main()
