"""Data-parallel scaling: samples per second of one model trained by 1 and by 2 processes.

    python bench/ddp_scaling.py [--images 4096] [--epochs 2] [--batch-size 256]

Trains appendix B.1's networks (Algorithm 1, stage 1, Adam on σ) on ``--images`` random 28×28
images, the global batch ``--batch-size`` (256, B.1's) in every case, three ways on the CPU:
  - ``1 process, T threads``: :func:`sigmavae.training.train` alone, torch's T threads;
  - ``1 process, 1 thread``;
  - ``2 processes × 1 thread``: ``torchrun --nproc_per_node 2 -m sigmavae.cli train`` does the same
    (gloo backend, 128 images per rank and step, gradients all-reduced each step);
and prints samples per second (images ÷ the best epoch's seconds, read from the runs' histories,
so start-up is not counted), the speed-up of 2 processes over 1 process with all the threads, and
the command lines for N GPUs, where each rank has its own device and DDP is meant to scale.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def data(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)  # the same images in every process
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)


def samples_per_second(history: list[dict], n: int) -> float:
    return n / min(h["seconds"] for h in history)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process(args, threads: int) -> float:
    cmd = [sys.executable, __file__, "--worker", "--images", str(args.images), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def two_processes(args) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), __file__, "--worker", "--images",
           str(args.images), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stdout + out.stderr)
    return float(out.stdout.split()[-1])


def worker(args) -> None:
    """One training (under torchrun: one rank of it); rank 0 prints its samples per second."""
    from sigmavae.config import TrainConfig
    from sigmavae.runtime import Runtime
    from sigmavae.training import train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    config = TrainConfig("mnist", epochs1=args.epochs, epochs2=0, batch_size=args.batch_size)
    _, history = train(config, runtime=Runtime(device="cpu", progress=False), data=data(args.images))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps([h["seconds"] for h in history]))
        print(samples_per_second(history, args.images))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    cores = os.cpu_count() or 1
    print(f"B.1 networks, {args.images} images, global batch {args.batch_size}, {args.epochs} epochs "
          f"(best counted), CPU with {cores} cores, load average before {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}")
    rates = {f"1 process, {cores} threads": one_process(args, cores),
             "1 process, 1 thread": one_process(args, 1),
             "2 processes x 1 thread (torchrun, gloo)": two_processes(args)}
    for way, rate in rates.items():
        print(f"{way:<40}: {rate:7.1f} samples/s")
    two = rates["2 processes x 1 thread (torchrun, gloo)"]
    print(f"ddp_speedup_2_processes {two / rates[f'1 process, {cores} threads']:.2f} (over 1 process with "
          f"all {cores} threads; {two / rates['1 process, 1 thread']:.2f} over 1 process with 1 thread)")
    print("On N GPUs of one machine (nccl, rank r on cuda:r, the global batch split N ways):\n"
          "  torchrun --nproc_per_node N -m sigmavae.cli train --dataset celeba --data-root DIR "
          "--out runs/celeba\n"
          "On M machines of N GPUs (run on each, same --rdzv-endpoint; --out on a shared filesystem):\n"
          "  torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
          "-m sigmavae.cli train --dataset celeba --data-root DIR --out /shared/runs/celeba")


if __name__ == "__main__":
    main()
