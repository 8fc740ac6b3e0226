"""Seconds per training step of the appendix B.1 networks (batch 256): the project's training
loop against plain PyTorch loops, and how close both come to the machine.

    python bench/train_speed.py [--device cpu] [--steps 20] [--rounds 3] [--compile]

Prints, all measured in this one run:
  - the machine's matmul rate (2048² @ 2048²) in fp32 and in bf16 (on CPUs without bf16 units,
    such as AVX2-only ones, bf16 is emulated and hundreds of times slower: then bf16 autocast
    cannot speed training up, ``auto`` stays in fp32, and the bf16 loops are not timed),
  - for stage 1 (global σ², Eq. 9) and stage 2 (pixel σ², Eq. 11), alternating ``rounds`` times
    over the same ``steps`` batches: ``plain`` (a textbook loop: NCHW tensors, ``elbo_loss``,
    Adam, nothing else), ``plain_cl`` (the same in the project's channels-last layout),
    ``project`` (the project's epoch function, ``sigmavae.epoch.run_epoch``, as ``train``
    calls it: shuffled batches, seeded noise, the non-finite guard, statistics kept on the
    device), and where bf16 is native ``plain_bf16`` (plain_cl under the networks' bf16 autocast)
    and ``bf16`` (the project's in bf16); the median seconds per step of each, FLOPs per image
    (FlopCounterMode, forward + backward), GFLOP/s and ``ratio_to_matmul`` (achieved ÷ fp32
    matmul), seconds per MNIST epoch; then
  - ``speedup_vs_plain_fp32`` (plain ÷ project), ``project_vs_plain_fp32`` (plain_cl ÷ project:
    what the project's step costs over a plain one in the same layout and arithmetic; 1 when it
    adds nothing), ``project_vs_plain_bf16`` (plain_bf16 ÷ bf16), ``bf16_speedup_vs_fp32``
    (project ÷ bf16) and ``bound_at_matmul_peak``: the plain loop's step ÷ the step's FLOPs at the
    fp32 matmul rate, the speed-up an fp32 step could reach if every FLOP ran at that rate.
  With ``--compile``, one more loop: the plain one with the objective under ``torch.compile``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sigmavae.config import TrainConfig
from sigmavae.epoch import run_epoch
from sigmavae.models import VAE
from sigmavae.objectives import elbo_loss
from sigmavae.precision import fast_bf16, resolve_precision
from sigmavae.runtime import resolve_device
from sigmavae.training import place


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_seconds(fn, device, reps: int) -> float:
    """The fastest of ``reps`` calls of ``fn`` (synchronised on a GPU)."""
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(device, n=2048, reps=10, dtype=torch.float32) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    reps = reps if dtype == torch.float32 or device.type == "cuda" else 1  # emulated bf16: slow
    return 2 * n**3 / best_seconds(lambda: a @ b, device, reps) / 1e9


def conv_ms(device, dtype) -> float:
    x = torch.randn(256, 256, 4, 4, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return best_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1), device, 3) * 1e3


def plain_loop(model, opt, x, cfg, loss_fn=elbo_loss):
    """The reference: a textbook loop over batches of ``x`` (the first n images), nothing else;
    returns a function of n that runs one pass and returns its seconds."""
    def run(n=None) -> float:
        start = time.perf_counter()
        for xb in x[:n].split(cfg.batch_size):
            loss, _ = loss_fn(model, xb, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start
    return run


def project_loop(model, opt, x, cfg):
    """The project's epoch function, exactly as :func:`sigmavae.training.train` calls it."""
    def run(n=None) -> float:
        start = time.perf_counter()
        run_epoch(model, opt, x[:n], cfg, torch.Generator().manual_seed(0))
        return time.perf_counter() - start
    return run


def setup(stage, device, channels_last, precision="fp32", seed=0):
    torch.manual_seed(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = VAE(16).to(device, memory_format=layout)
    model.precision = precision
    if stage == 2:
        model.start_pixel_variance(0.5)
    return model, torch.optim.Adam(model.parameters(), lr=TrainConfig().lr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20, help="batches per timed pass")
    p.add_argument("--rounds", type=int, default=3, help="alternating passes of each loop")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--compile", action="store_true", help="also time the plain loop under torch.compile")
    args = p.parse_args()
    device = resolve_device(args.device)
    cfg = TrainConfig(batch_size=args.batch_size)
    torch.manual_seed(0)
    data = torch.rand(args.steps * args.batch_size, 1, 28, 28)
    peak = matmul_gflops(device)
    print(f"device {device}, threads {torch.get_num_threads()}, torch {torch.__version__}, fast bf16 "
          f"{fast_bf16(device)} (auto precision: {resolve_precision('auto', device)})")
    print(f"matmul: fp32 {peak:.1f} GFLOP/s, bf16 {matmul_gflops(device, dtype=torch.bfloat16):.1f} GFLOP/s")
    print(f"conv 256→256 3×3 on 4×4: fp32 {conv_ms(device, torch.float32):.1f} ms, "
          f"bf16 {conv_ms(device, torch.bfloat16):.1f} ms")
    bf16 = fast_bf16(device)
    if not bf16:
        print("bf16 is not native here: its loops are not timed (auto precision is fp32)")
    for stage in (1, 2):
        x_plain = data.to(device)
        _, x = place(setup(stage, device, True)[0], data, device)  # exactly as training.train places it
        # name → (run a pass over the first n images, or all); each with its own model and Adam
        loops = {"plain": plain_loop(*setup(stage, device, False), x_plain, cfg),
                 "plain_cl": plain_loop(*setup(stage, device, True), x, cfg),
                 "project": project_loop(*setup(stage, device, True), x, cfg)}
        if bf16:
            loops |= {"plain_bf16": plain_loop(*setup(stage, device, True, "bf16"), x, cfg),
                      "bf16": project_loop(*setup(stage, device, True, "bf16"), x, cfg)}
        with FlopCounterMode(display=False) as counter:
            plain_loop(*setup(stage, device, False), x_plain, cfg)(args.batch_size)
        flops = counter.get_total_flops()
        for run in loops.values():  # warm-up
            run(2 * args.batch_size)
        if args.compile:
            compiled = torch.compile(elbo_loss)
            loops["compiled"] = plain_loop(*setup(stage, device, False), x_plain, cfg, compiled)
            print(f"stage {stage} torch.compile: {loops['compiled'](2 * args.batch_size):.0f} s to compile")
        times = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                times[name].append(run())
        step = {k: statistics.median(v) / args.steps for k, v in times.items()}
        for name, seconds in step.items():
            rate = flops / seconds / 1e9
            print(f"stage {stage} {name:<10}: {seconds * 1e3:.1f} ms/step, "
                  f"{flops / args.batch_size / 1e6:.1f} MFLOP/image, {rate:.1f} GFLOP/s, "
                  f"ratio_to_matmul {rate / peak:.2f}, "
                  f"{seconds * 60000 / args.batch_size:.1f} s per MNIST epoch")
        print(f"stage {stage} speedup_vs_plain_fp32 {step['plain'] / step['project']:.2f}")
        print(f"stage {stage} project_vs_plain_fp32 {step['plain_cl'] / step['project']:.2f}")
        if bf16:
            print(f"stage {stage} project_vs_plain_bf16 {step['plain_bf16'] / step['bf16']:.2f}")
            print(f"stage {stage} bf16_speedup_vs_fp32 {step['project'] / step['bf16']:.2f}")
        if args.compile:
            print(f"stage {stage} compiled_vs_plain {step['plain'] / step['compiled']:.2f}")
        at_peak = flops / (peak * 1e9)
        print(f"stage {stage} bound_at_matmul_peak {step['plain'] / at_peak:.2f} "
              f"({at_peak * 1e3:.1f} ms/step if every FLOP ran at the fp32 matmul rate)")


if __name__ == "__main__":
    main()
