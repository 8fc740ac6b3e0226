"""Does a faster training step buy its speed with worse models? Same seeds, trained each way.

    python bench/speed_quality.py --data-root ../shared/data [--seeds 0 1 2] [--epochs1 2 --epochs2 1]
                                  [--ways fp32 bf16 plain]

For each seed, Algorithm 1 on real MNIST (stage 1 with Eq. 10's σ² per batch, as the ``quick``
profile, then stage 2's pixel variances) is trained from the same initial weights and the same
batch order each way: ``fp32`` and ``bf16`` are :func:`sigmavae.training.train` (what the notebooks
run) in that precision (:mod:`sigmavae.precision`), ``plain`` the plain fp32 loop of
``bench/train_speed.py`` (NCHW, nothing else). Each model is scored on the test set in fp32: ELBO
(all 10k images) and IWAE (first 500 images, k = 20: Table 3's setting); bf16-trained models also
in bf16 (``IWAE bf16 eval``: the evaluation's own rounding). Prints one line per run, then per way
the mean, the paired difference from fp32 (mean ± std over seeds) and whether it lies within
fp32's seed-to-seed spread (max - min): the rule for a precision to be the default.
"""

from __future__ import annotations

import argparse
import statistics
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


def score(model, x_test: torch.Tensor, seed: int, precision: str = "fp32") -> tuple[float, float]:
    model = model.cpu()
    model.precision = precision
    out = (elbo(model, x_test, seed=seed)["elbo"],
           float(iwae_log_likelihood(model, x_test[:500], 20, seed=seed).mean()))
    model.precision = "fp32"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs1", type=int, default=2)
    p.add_argument("--epochs2", type=int, default=1)
    p.add_argument("--ways", nargs="+", choices=("fp32", "bf16", "plain"), default=["fp32", "bf16"])
    args = p.parse_args()
    x = as_float(load_dataset("mnist", "train", args.data_root, download=False))
    x_test = as_float(load_dataset("mnist", "test", args.data_root, download=False))
    print(f"MNIST {len(x)} train / {len(x_test)} test, threads {torch.get_num_threads()}, "
          f"epochs {args.epochs1} + {args.epochs2}, torch {torch.__version__}, ways {args.ways}")
    ways = list(dict.fromkeys(["fp32", *args.ways]))  # fp32: the reference of every comparison
    results: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    bf16_eval: list[float] = []
    for seed in args.seeds:
        config = TrainConfig(epochs1=args.epochs1, epochs2=args.epochs2, sigma_update="closed_form",
                             seed=seed)
        for way in ways:
            start = time.perf_counter()
            if way == "plain":
                model, _ = train_plain(config, x)
            else:
                here = Runtime(device="cpu", progress=False, precision=way)
                model, _ = train(config, runtime=here, data=x)
            seconds[way].append(time.perf_counter() - start)
            e, ll = score(model, x_test, seed)
            results[way].append((e, ll))
            extra = ""
            if way == "bf16":
                bf16_eval.append(score(model, x_test, seed, "bf16")[1])
                extra = f"  IWAE bf16 eval {bf16_eval[-1]:9.2f}"
            print(f"seed {seed} {way:<5}: test ELBO {e:9.2f}  IWAE(k=20, 500) {ll:9.2f}{extra}  "
                  f"({seconds[way][-1]:.0f} s training)", flush=True)
    ref = results["fp32"]
    for way in ways[1:]:
        print(f"{way}: training {sum(seconds['fp32']) / sum(seconds[way]):.2f}× as fast as fp32")
        for i, metric in enumerate(("ELBO", "IWAE")):
            base = [r[i] for r in ref]
            diffs = [r[i] - b for r, b in zip(results[way], base, strict=True)]
            spread = max(base) - min(base)
            mean = statistics.mean(diffs)
            std = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
            verdict = "within" if abs(mean) <= spread else "OUTSIDE"
            print(f"{metric}: fp32 {statistics.mean(base):.2f} (seed spread {spread:.2f}), {way} "
                  f"{statistics.mean(r[i] for r in results[way]):.2f}; paired difference {mean:+.2f} ± "
                  f"{std:.2f}, {verdict} fp32's seed-to-seed spread")
    if bf16_eval:
        diffs = [b - r[1] for b, r in zip(bf16_eval, results["bf16"], strict=True)]
        print(f"IWAE of the bf16 models evaluated in bf16 − in fp32: {statistics.mean(diffs):+.2f} "
              f"(per seed {', '.join(f'{d:+.2f}' for d in diffs)})")


if __name__ == "__main__":
    main()
