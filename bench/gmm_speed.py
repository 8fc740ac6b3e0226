"""Fitting q̂ (Eq. 13): scikit-learn's EM against the same EM in torch, in one run.

    python bench/gmm_speed.py                                   # MNIST-sized: 60k × 16, M = 32, CPU
    python bench/gmm_speed.py --n 50000 --dim 256 --components 500 --device cuda   # CelebA's q̂

Latents are drawn from a random 64-cluster mixture with uneven widths (like an aggregate
posterior); 10k more are held out. Prints each backend's fit seconds, EM iterations and held-out
mean log q̂(z), then ``speedup_torch_vs_sklearn`` and the held-out log-likelihood's relative
difference (the goal on a GPU: ≥ 10× at CelebA's size, within 1%).
"""

from __future__ import annotations

import argparse
import time

import torch

from sigmavae.sampling import GaussianMixturePrior


def latents(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(64, dim, generator=g) * 2
    widths = 0.2 + torch.rand(64, 1, generator=g)
    c = torch.randint(64, (n,), generator=g)
    return centres[c] + torch.randn(n, dim, generator=g) * widths[c]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--components", type=int, default=32)
    p.add_argument("--device", default="cpu", help="where the torch EM runs (cpu, cuda)")
    args = p.parse_args()
    z = latents(args.n + 10_000, args.dim)
    fit, held_out = z[: args.n], z[args.n:]
    print(f"{args.n} × {args.dim} latents, {args.components} components, torch EM on {args.device}, "
          f"{torch.get_num_threads()} CPU threads")
    ll = {}
    seconds = {}
    for backend, points in (("sklearn", fit), ("torch", fit.to(args.device))):
        q = GaussianMixturePrior(args.components, seed=0, backend=backend)
        start = time.perf_counter()
        q.fit(points)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds[backend] = time.perf_counter() - start
        ll[backend] = float(q.log_prob(held_out).mean())
        print(f"{backend:<8} fit {seconds[backend]:8.2f} s, {q.gmm.n_iter_:3d} EM iterations, "
              f"held-out log q̂(z) {ll[backend]:.4f}")
    print(f"speedup_torch_vs_sklearn {seconds['sklearn'] / seconds['torch']:.2f}")
    print(f"held_out_ll_relative_difference {abs(ll['torch'] - ll['sklearn']) / abs(ll['sklearn']):.5f}")


if __name__ == "__main__":
    main()
