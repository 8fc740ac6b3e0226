"""How long IWAE (Burda et al.) with k = 1000 over the whole 10k test set takes, against training.

    python bench/iwae_speed.py [--device cpu] [--images 16] [--k 1000]

The appendix B.1 networks (16-d latent), global σ² and pixel σ² (stage 2: the variance network
runs too), random weights (the cost does not depend on them). Prints, measured in this one run:
  - decoder passes per second of :func:`sigmavae.metrics.iwae_log_likelihoods` over ``--images``
    test-sized images × ``k`` samples, FLOPs per pass, GFLOP/s and ``ratio_to_matmul`` (÷ fp32 matmul);
  - the projected seconds for 10,000 images × k under both priors of Table 3 (N(0, I) and q̂ share
    the samples: one decoder pass each), and what two separate calls would take;
  - ``iwae_over_training``: that projection ÷ the seconds of one Table 3 model's training (the
    appendix's 16 + 14 epochs at this device's measured seconds per step). Table 3's notebook
    trains, then scores, four models, so below 1 the IWAE is not its bottleneck.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode
from train_speed import best_seconds, matmul_gflops, project_seconds, setup

from sigmavae.config import TrainConfig
from sigmavae.metrics import iwae_log_likelihoods
from sigmavae.runtime import resolve_device
from sigmavae.sampling import GaussianMixturePrior, StandardNormalPrior
from sigmavae.training import place

TEST_IMAGES = 10_000
EPOCH_STEPS = 60_000 // 256 + 1
EPOCHS = 16 + 14  # appendix B.1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--k", type=int, default=1000)
    args = p.parse_args()
    device = resolve_device(args.device)
    peak = matmul_gflops(device)
    print(f"device {device}, threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"fp32 matmul {peak:.1f} GFLOP/s")
    torch.manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28)
    qhat = GaussianMixturePrior(32).fit(torch.randn(20_000, 16))
    for variance in ("global", "pixel"):
        stage = 2 if variance == "pixel" else 1
        model, _ = setup(stage, device, channels_last=True)
        model, xd = place(model.eval(), x, device)
        priors = {"prior": StandardNormalPrior(16), "q̂": qhat}
        with FlopCounterMode(display=False) as counter:
            iwae_log_likelihoods(model, xd[:1], args.k, priors)
        flops = counter.get_total_flops() / args.k
        iwae_log_likelihoods(model, xd[:1], args.k, priors)  # warm-up
        seconds = best_seconds(partial(iwae_log_likelihoods, model, xd, args.k, priors), device, 1)
        rate = args.images * args.k / seconds
        full = TEST_IMAGES * args.k / rate
        # One Table 3 model's training at this device: the project's step, as train_speed.py times it.
        train_model, opt = setup(stage, device, channels_last=True)
        _, xt = place(train_model, torch.rand(3 * 256, 1, 28, 28), device)
        project_seconds(train_model, opt, xt[:256], TrainConfig())  # warm-up
        step = project_seconds(train_model, opt, xt, TrainConfig()) / 3
        training = step * EPOCH_STEPS * EPOCHS
        print(f"{variance} σ²: {rate:.0f} decoder passes/s, {flops / 1e6:.1f} MFLOP/pass, "
              f"{flops * rate / 1e9:.1f} GFLOP/s, ratio_to_matmul {flops * rate / 1e9 / peak:.2f}")
        print(f"{variance} σ²: IWAE k={args.k} on {TEST_IMAGES} images, both priors: {full:.0f} s "
              f"(two separate calls: {2 * full:.0f} s); one model's {EPOCHS}-epoch training "
              f"{training:.0f} s; iwae_over_training {full / training:.2f}")


if __name__ == "__main__":
    main()
