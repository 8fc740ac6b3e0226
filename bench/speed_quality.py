"""Does the project's training step buy its speed with worse models? Same seeds, trained both ways.

    python bench/speed_quality.py --data-root ../shared/data [--seeds 0 1 2] [--epochs1 2 --epochs2 1]

For each seed, Algorithm 1 on real MNIST (stage 1 with Eq. 10's σ² per batch, as the ``quick``
profile, then stage 2's pixel variances) is trained twice from the same initial weights and the same
batch order: by the plain fp32 loop of ``bench/train_speed.py`` (NCHW, nothing else) and by
:func:`sigmavae.training.train` (what the notebooks run). Each model is scored on the test set:
ELBO (all 10k images) and IWAE (first 500 images, k = 20: Table 3's setting). Prints one line per
run, then per way the mean and the seed-to-seed spread (max - min), and whether the project's mean
lies within the plain loop's spread of the plain mean.
"""

from __future__ import annotations

import argparse
import time

import torch
from train_speed import plain_seconds

from sigmavae.config import TrainConfig
from sigmavae.data import as_float, load_dataset
from sigmavae.metrics import elbo, iwae_log_likelihood
from sigmavae.models import VAE
from sigmavae.objectives import elbo_loss
from sigmavae.runtime import Runtime
from sigmavae.training import dataset_sigma2, stages, train


def closed_form_step_loss(model, x, config):
    """The objective, then §3.3's closed-form step as the project's loop takes it: σ² ← the
    batch's Eq. 10 σ²_* (objectives only return it)."""
    loss, t = elbo_loss(model, x, config)
    if t.sigma2_star is not None:
        model.set_sigma2(t.sigma2_star)
    return loss, t


def train_plain(config: TrainConfig, x: torch.Tensor) -> tuple[torch.nn.Module, float]:
    """Algorithm 1 by the plain loop: the project's model, objective, Adam, stage switch and batch
    order (the same seeded permutation per epoch), NCHW tensors and nothing else."""
    torch.manual_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.sigma_update == "closed_form":
        model.sigma.requires_grad_(False)
    shuffle = torch.Generator().manual_seed(config.seed)
    seconds = 0.0
    for stage, n_epochs, _ in stages(config):
        if stage == 2:
            model.start_pixel_variance(config.variance_floor)
        for _ in range(n_epochs):
            order = torch.randperm(len(x), generator=shuffle)
            model.train()
            seconds += plain_seconds(model, optimizer, x[order], config, config.batch_size,
                                     closed_form_step_loss)
        if stage == 1 and config.method == "sigma" and config.sigma_update == "closed_form":
            # σ²_dataset from Eq. 10 over the whole training set, as train() freezes it
            model.set_sigma2(dataset_sigma2(model, x, config.seed, config.batch_size))
    return model.eval(), seconds


def score(model, x_test: torch.Tensor, seed: int) -> tuple[float, float]:
    model = model.cpu()
    return (elbo(model, x_test, seed=seed)["elbo"],
            float(iwae_log_likelihood(model, x_test[:500], 20, seed=seed).mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs1", type=int, default=2)
    p.add_argument("--epochs2", type=int, default=1)
    args = p.parse_args()
    x = as_float(load_dataset("mnist", "train", args.data_root, download=False))
    x_test = as_float(load_dataset("mnist", "test", args.data_root, download=False))
    print(f"MNIST {len(x)} train / {len(x_test)} test, threads {torch.get_num_threads()}, "
          f"epochs {args.epochs1} + {args.epochs2}, torch {torch.__version__}")
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "project": []}
    for seed in args.seeds:
        config = TrainConfig(epochs1=args.epochs1, epochs2=args.epochs2, sigma_update="closed_form",
                             seed=seed)
        start = time.perf_counter()
        model, _ = train(config, runtime=Runtime(device="cpu", progress=False), data=x)
        ways = {"project": (model, time.perf_counter() - start), "plain": train_plain(config, x)}
        for way, (model, seconds) in ways.items():
            e, ll = score(model, x_test, seed)
            results[way].append((e, ll))
            print(f"seed {seed} {way:<7}: test ELBO {e:9.2f}  IWAE(k=20, 500) {ll:9.2f}  "
                  f"({seconds:.0f} s training)", flush=True)
    for i, metric in enumerate(("ELBO", "IWAE")):
        plain = [r[i] for r in results["plain"]]
        project = [r[i] for r in results["project"]]
        mean_plain, mean_project = sum(plain) / len(plain), sum(project) / len(project)
        spread = max(plain) - min(plain)
        verdict = "within" if abs(mean_project - mean_plain) <= spread else "OUTSIDE"
        print(f"{metric}: plain {mean_plain:.2f} (spread {spread:.2f}), project {mean_project:.2f} "
              f"(spread {max(project) - min(project):.2f}); difference {mean_project - mean_plain:+.2f}, "
              f"{verdict} the plain loop's seed-to-seed spread")


if __name__ == "__main__":
    main()
