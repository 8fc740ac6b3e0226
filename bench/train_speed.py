"""Seconds per training step of the appendix B.1 networks (batch 256), and how close to the machine.

    python bench/train_speed.py [--device cpu] [--steps 20]

Prints, all measured in this one run:
  - the fp32 matmul rate of this machine (2048² @ 2048², best of several),
  - for a stage-1 step (global σ², Eq. 9) and a stage-2 step (pixel σ², Eq. 11): seconds per step,
    FLOPs per step (torch's FlopCounterMode: forward + backward), achieved GFLOP/s,
  - ``ratio_to_matmul``: achieved GFLOP/s ÷ matmul GFLOP/s (goal ≥ 0.6 on CPU),
  - the implied seconds per MNIST epoch (235 steps).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sigmavae.models import VAE
from sigmavae.objectives import elbo_loss
from sigmavae.training import TrainConfig, place, resolve_device


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device, n=2048, reps=10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def step_fn(model, opt, x, cfg):
    def step():
        loss, _ = elbo_loss(model, x, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def measure(step, device, steps) -> tuple[float, float]:
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(3):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / steps, flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, 1, 28, 28, device=device)
    cfg = TrainConfig()
    peak = matmul_gflops(device)
    print(f"device {device}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"fp32 matmul: {peak:.1f} GFLOP/s")
    for stage in (1, 2):
        model, x = place(VAE(16), x, device)  # exactly as training.train places them
        if stage == 2:
            model.start_pixel_variance(0.5)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        seconds, flops = measure(step_fn(model, opt, x, cfg), device, args.steps)
        rate = flops / seconds / 1e9
        print(f"stage {stage}: {seconds * 1e3:.1f} ms/step, {flops / args.batch_size / 1e6:.1f} MFLOP/image, "
              f"{rate:.1f} GFLOP/s, ratio_to_matmul {rate / peak:.2f}, "
              f"{seconds * 60000 / args.batch_size:.1f} s per MNIST epoch")


if __name__ == "__main__":
    main()
