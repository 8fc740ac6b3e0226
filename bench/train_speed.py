"""Seconds per training step of the appendix B.1 networks (batch 256): the project's training
loop against a plain fp32 PyTorch loop, and how close both come to the machine.

    python bench/train_speed.py [--device cpu] [--steps 20] [--rounds 3] [--group K] [--compile]

Prints, all measured in this one run:
  - the machine's matmul rate (2048² @ 2048²) in fp32 and in bf16 (on CPUs without bf16 units,
    such as AVX2-only ones, bf16 is emulated and hundreds of times slower: then bf16 autocast
    cannot speed training up, and the project stays in fp32),
  - for stage 1 (global σ², Eq. 9) and stage 2 (pixel σ², Eq. 11), alternating ``rounds`` times:
    the plain loop (NCHW tensors, the same objective and Adam) and the project's own epoch
    function (``sigmavae.training.run_epoch``: channels-last, the non-finite guard, statistics kept on
    the device) over the same ``steps`` batches; the median seconds per step of each,
    ``speedup_vs_plain_fp32`` (plain ÷ project), FLOPs per image (FlopCounterMode, forward +
    backward), GFLOP/s and ``ratio_to_matmul`` (achieved ÷ fp32 matmul), seconds per MNIST epoch;
    and ``bound_at_matmul_peak``: the plain loop's step ÷ the step's FLOPs at the fp32 matmul rate,
    the speed-up an fp32 step could reach if every FLOP ran at that rate and nothing else took time;
    ``bf16_speedup_vs_fp32``: the project's fp32 step ÷ its bf16 step (same batches, same model).
    With ``--group K``: K models in one vmapped step (``sigmavae.training.run_group_epoch``), in the
    precision ``auto`` picks, and ``group_speedup_vs_alone``: K single steps ÷ one group step.
    With ``--compile``, a third loop: the plain one with the objective under ``torch.compile``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sigmavae.config import TrainConfig
from sigmavae.models import VAE
from sigmavae.objectives import elbo_loss
from sigmavae.precision import fast_bf16, resolve_precision
from sigmavae.runs import TrainState
from sigmavae.runtime import resolve_device
from sigmavae.training import noise_generator, place, run_epoch, run_group_epoch


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


def plain_seconds(model, opt, x, cfg, batch_size, loss_fn=elbo_loss) -> float:
    """The reference: a textbook loop over NCHW batches, nothing else."""
    start = time.perf_counter()
    for xb in x.split(batch_size):
        loss, _ = loss_fn(model, xb, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def project_seconds(model, opt, x, cfg) -> float:
    """The project's epoch function, exactly as :func:`sigmavae.training.train` calls it."""
    start = time.perf_counter()
    run_epoch(model, opt, x, cfg, torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def group_seconds(states, cfg) -> float:
    """One epoch of a group of models in one vmapped step each batch."""
    start = time.perf_counter()
    run_group_epoch(states, [cfg] * len(states))
    return time.perf_counter() - start


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
    p.add_argument("--group", type=int, default=0, help="also time K models in one vmapped step")
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
    for stage in (1, 2):
        plain_model, plain_opt = setup(stage, device, channels_last=False)
        model, opt = setup(stage, device, channels_last=True)
        bf16_model, bf16_opt = setup(stage, device, channels_last=True, precision="bf16")
        x_plain = data.to(device)
        _, x = place(model, data, device)  # exactly as training.train places the data
        with FlopCounterMode(display=False) as counter:
            plain_seconds(plain_model, plain_opt, x_plain[: args.batch_size], cfg, args.batch_size)
        flops = counter.get_total_flops()
        project_seconds(model, opt, x[: 2 * args.batch_size], cfg)  # warm-up
        project_seconds(bf16_model, bf16_opt, x[: 2 * args.batch_size], cfg)
        times = {"plain": [], "project": [], "bf16": []}
        if args.group:
            auto = resolve_precision("auto", device)
            states = [TrainState(*setup(stage, device, True, auto, seed), torch.Generator().manual_seed(seed),
                                 x, noise_generator(x.device)) for seed in range(args.group)]
            alone = [setup(stage, device, True, auto)]
            project_seconds(*alone[0], x[: 2 * args.batch_size], cfg)
            group_seconds([dataclasses.replace(s, x=x[: 2 * args.batch_size]) for s in states], cfg)
            times |= {f"alone_{auto}": [], f"group{args.group}": []}
        if args.compile:
            compiled_model, compiled_opt = setup(stage, device, channels_last=False)
            compiled_loss = torch.compile(elbo_loss)
            start = time.perf_counter()
            plain_seconds(compiled_model, compiled_opt, x_plain[: 2 * args.batch_size], cfg,
                          args.batch_size, compiled_loss)
            print(f"stage {stage} torch.compile: {time.perf_counter() - start:.0f} s to compile")
            times["compiled"] = []
        for _ in range(args.rounds):
            times["plain"].append(plain_seconds(plain_model, plain_opt, x_plain, cfg, args.batch_size))
            times["project"].append(project_seconds(model, opt, x, cfg))
            times["bf16"].append(project_seconds(bf16_model, bf16_opt, x, cfg))
            if args.group:
                times[f"alone_{auto}"].append(project_seconds(*alone[0], x, cfg))
                times[f"group{args.group}"].append(group_seconds(states, cfg))
            if args.compile:
                times["compiled"].append(plain_seconds(compiled_model, compiled_opt, x_plain, cfg,
                                                       args.batch_size, compiled_loss))
        step = {k: statistics.median(v) / args.steps for k, v in times.items()}
        for name, seconds in step.items():
            rate = flops / seconds / 1e9
            print(f"stage {stage} {name:<7}: {seconds * 1e3:.1f} ms/step, "
                  f"{flops / args.batch_size / 1e6:.1f} MFLOP/image, {rate:.1f} GFLOP/s, "
                  f"ratio_to_matmul {rate / peak:.2f}, "
                  f"{seconds * 60000 / args.batch_size:.1f} s per MNIST epoch")
        print(f"stage {stage} speedup_vs_plain_fp32 {step['plain'] / step['project']:.2f}")
        print(f"stage {stage} bf16_speedup_vs_fp32 {step['project'] / step['bf16']:.2f}")
        if args.group:
            together = step[f"group{args.group}"]
            print(f"stage {stage} group_speedup_vs_alone {args.group * step[f'alone_{auto}'] / together:.2f} "
                  f"({args.group} models in one step, {auto}; {together / args.group * 1e3:.1f} ms/step "
                  "per model)")
        if args.compile:
            print(f"stage {stage} compiled_vs_plain {step['plain'] / step['compiled']:.2f}")
        at_peak = flops / (peak * 1e9)
        print(f"stage {stage} bound_at_matmul_peak {step['plain'] / at_peak:.2f} "
              f"({at_peak * 1e3:.1f} ms/step if every FLOP ran at the fp32 matmul rate)")


if __name__ == "__main__":
    main()
