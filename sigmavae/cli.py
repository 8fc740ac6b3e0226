"""The ``sigmavae`` command: ``train``, ``evaluate``, ``sample``, ``reproduce``.

A run directory holds ``config.json``, ``history.json`` and ``model.pt`` after ``train``;
``evaluate`` adds ``metrics.json`` and the fitted q̂ (``gmm-M.pkl``), which ``sample`` reuses.
While ``train`` runs it also holds ``checkpoint.pt`` (every epoch, and on Ctrl-C / SIGTERM), from
which ``train ... --resume`` continues exactly. Errors are one line: exit 2 for bad input, 1 when
training diverges, 128 + the signal's number when a signal stopped it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

from . import __version__
from .data import DATASETS, load_dataset
from .fid import FID_KINDS
from .training import (
    METHODS,
    SIGMA_UPDATES,
    TrainConfig,
    TrainingInterrupted,
    load_run,
    resolve_device,
    train,
)

DEFAULTS = TrainConfig()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigmavae", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sigmavae {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
        sp.add_argument("--data-root", default=None,
                        help="folder holding MNIST/raw, FashionMNIST/raw (else $SIGMAVAE_DATA)")
        sp.add_argument("--download", action="store_true", help="allow torchvision to download")

    t = sub.add_parser("train", help="train a model (Algorithm 1 or a fixed σ² baseline)")
    t.add_argument("--dataset", choices=DATASETS, default=DEFAULTS.dataset)
    t.add_argument("--method", choices=METHODS, default=DEFAULTS.method,
                   help="sigma: learned σ² then per-pixel σ² (Algorithm 1); fixed: σ² = --sigma2; "
                        "vae (σ² 0.5), beta-vae (σ² 1), dip-vae, wae: the paper's baselines")
    t.add_argument("--sigma2", type=float, default=None,
                   help="σ² of --method fixed or dip-vae (default 0.5)")
    t.add_argument("--beta", type=float, default=DEFAULTS.beta, help="weight on the KL term")
    t.add_argument("--dip-type", choices=("i", "ii"), default=DEFAULTS.dip_type)
    t.add_argument("--lambda-od", type=float, default=DEFAULTS.lambda_od, help="DIP-VAE λ_od")
    t.add_argument("--lambda-d", type=float, default=None,
                   help="DIP-VAE λ_d (default 10·λ_od for I, λ_od for II)")
    t.add_argument("--wae-lambda", type=float, default=None, help="WAE-MMD λ (default 10; CelebA 100)")
    t.add_argument("--sigma-update", choices=SIGMA_UPDATES, default=DEFAULTS.sigma_update,
                   help="stage 1: Adam on σ (Algorithm 1), Adam on log σ, or Eq. 10 per batch")
    t.add_argument("--latent-dim", type=int, default=None, help="default 16; CelebA 256 (appendix)")
    t.add_argument("--epochs1", type=int, default=None, help="stage-1 epochs: 16; CelebA 75")
    t.add_argument("--epochs2", type=int, default=None,
                   help="stage-2 epochs: 14; CelebA 20; 0 stops after stage 1 (global σ²)")
    t.add_argument("--eps1", type=float, default=None, help="ε₁ on δ_ELBO (default: none)")
    t.add_argument("--eps2", type=float, default=None, help="ε₂ on δ_ELBO (default: none)")
    t.add_argument("--variance-floor", type=float, default=DEFAULTS.variance_floor,
                   help="stage-2 floor as a multiple of σ²_dataset (Algorithm 1: 0.5; 0 = none)")
    t.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    t.add_argument("--lr", type=float, default=DEFAULTS.lr)
    t.add_argument("--seed", type=int, default=DEFAULTS.seed)
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (same options as before); "
                        "a finished run is kept as it is, an empty --out starts afresh")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    common(t)

    e = sub.add_parser("evaluate", help="ELBO, IWAE (prior and q̂), KL(q̂‖p) → metrics.json")
    e.add_argument("run_dir")
    e.add_argument("--iwae-k", type=int, default=20, help="importance samples (Table 3: 20)")
    e.add_argument("--iwae-n", type=int, default=500, help="test images (Table 3: 500)")
    e.add_argument("--components", type=int, default=None,
                   help="mixture components of q̂ (default 32; CelebA 500, as appendix D)")
    e.add_argument("--kl-samples", type=int, default=10_000)
    e.add_argument("--kl-runs", type=int, default=10)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--fid", choices=FID_KINDS, default="none",
                   help="FID of samples from q̂ and the prior: inception (pytorch-fid, needs its weights), "
                        "classifier (offline; not comparable with Inception FID) or none")
    e.add_argument("--fid-n", type=int, default=10_000, help="generated and real images for FID")
    e.add_argument("--fid-weights", default=None, help="pt_inception-2015-12-05-6726825d.pth")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    common(e)

    s = sub.add_parser("sample", help="a PNG grid of decoder means g(z), z from q̂ or the prior")
    s.add_argument("run_dir")
    s.add_argument("--from", dest="source", choices=("gmm", "prior"), default="gmm")
    s.add_argument("-n", type=int, default=100)
    s.add_argument("--nrow", type=int, default=10)
    s.add_argument("--components", type=int, default=None, help="default 32; CelebA 500")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="PNG file to write")
    common(s)

    r = sub.add_parser("reproduce", help="execute the paper's notebooks on a profile (papermill)")
    r.add_argument("--profile", default="quick", help="smoke | quick | paper (notebooks/profiles/)")
    r.add_argument("--only", default=None,
                   help="comma-separated: table1,figure1,table3,table2,figure2,table4,figure3_4,appendix")
    r.add_argument("--notebooks", default="notebooks", help="the notebooks folder (of the repository)")
    r.add_argument("--out", default=None, help="where executed notebooks go (default: replace them)")
    r.add_argument("--jobs", type=int, default=1,
                   help="train the needed models this many at a time first, the CPU threads split among them "
                        "(GPU: 4-8; 2 CPU cores: 2, 1.12× a sequential sweep)")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter over the profile's, e.g. -p data_root ../data")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"train": _train, "evaluate": _evaluate, "sample": _sample, "reproduce": _reproduce}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"sigmavae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged (NonFiniteError)
        print(f"sigmavae {args.command}: error: {err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:
        print(f"sigmavae {args.command}: stopped: {err}", file=sys.stderr)
        return 128 + err.signum


def _train(args) -> int:
    config = TrainConfig(
        dataset=args.dataset, method=args.method, sigma2=args.sigma2, beta=args.beta,
        sigma_update=args.sigma_update, latent_dim=args.latent_dim, epochs1=args.epochs1,
        epochs2=args.epochs2, eps1=args.eps1, eps2=args.eps2, variance_floor=args.variance_floor,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, dip_type=args.dip_type,
        lambda_od=args.lambda_od, lambda_d=args.lambda_d, wae_lambda=args.wae_lambda)
    model, history = train(config, args.device, args.out, data_root=args.data_root,
                           download=args.download or None, progress=not args.quiet,
                           resume=args.resume)
    last = history[-1]
    per_epoch = sum(h["seconds"] for h in history) / len(history)
    print(f"trained {len(history)} epochs on {resolve_device(args.device)} "
          f"({per_epoch:.1f} s/epoch): train ELBO {last['elbo']:.1f} nats, "
          f"σ²_dataset {model.sigma2:.5g}, variance mode {model.variance} → {args.out}")
    return 0


def _gmm_path(run_dir: Path, components: int) -> Path:
    return run_dir / f"gmm-{components}.pkl"


def _components(args, dataset: str) -> int:
    if args.components is not None:
        return args.components
    return 500 if dataset == "celeba" else 32


def _evaluate(args) -> int:
    import torch

    from .metrics import evaluate

    run_dir = Path(args.run_dir)
    model, config, _ = load_run(run_dir, args.device)
    args.components = _components(args, config.dataset)
    download = args.download or None
    device = next(model.parameters()).device
    x_train = load_dataset(config.dataset, "train", args.data_root, download, dtype=torch.uint8).to(device)
    x_test = load_dataset(config.dataset, "test", args.data_root, download).to(device)
    metrics, qhat = evaluate(model, x_train, x_test, args.iwae_k, args.iwae_n, args.components,
                             args.kl_samples, args.kl_runs, args.seed)
    metrics = {"run": str(run_dir), "dataset": config.dataset, "method": config.method, **metrics}
    if args.fid != "none":
        from .fid import fid, fid_scores, make_extractor, real_statistics
        from .sampling import StandardNormalPrior

        extractor = make_extractor(args.fid, config.dataset, device, args.data_root, args.fid_weights)
        real = real_statistics(extractor, config.dataset, "test", args.fid_n, args.data_root)
        latents = {"gmm": qhat, "prior": StandardNormalPrior(model.latent_dim)}
        metrics.update(fid_kind=f"{args.fid} FID", fid_features=extractor.key, fid_n=args.fid_n,
                       **fid_scores(model, extractor, real, latents, args.fid_n, args.seed),
                       fid_real=fid(x_train[: args.fid_n], real, extractor))  # Table 2's "real images"
        if args.fid == "classifier":
            metrics["fid_classifier_test_accuracy"] = extractor.info["test_accuracy"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _gmm_path(run_dir, args.components).write_bytes(pickle.dumps(qhat))
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            print(f"{key:<20} {value:.6g}" if isinstance(value, float) else f"{key:<20} {value}")
    return 0


def _sample(args) -> int:
    import torch

    from .fid import generate
    from .plots import save_grid
    from .sampling import StandardNormalPrior, fit_aggregate_posterior

    run_dir = Path(args.run_dir)
    model, config, _ = load_run(run_dir, args.device)
    args.components = _components(args, config.dataset)
    device = next(model.parameters()).device
    if args.source == "prior":
        dist = StandardNormalPrior(model.latent_dim)
    elif _gmm_path(run_dir, args.components).is_file():
        dist = pickle.loads(_gmm_path(run_dir, args.components).read_bytes())
    else:
        x_train = load_dataset(config.dataset, "train", args.data_root, args.download or None, torch.uint8)
        dist = fit_aggregate_posterior(model, x_train.to(device), args.components, seed=args.seed)
        _gmm_path(run_dir, args.components).write_bytes(pickle.dumps(dist))
    images = generate(model, dist, args.n, args.seed)
    print(f"wrote {save_grid(images, args.out, args.nrow)} ({args.n} samples from {args.source})")
    return 0


def _reproduce(args) -> int:
    import yaml

    from .reproduce import reproduce

    only = args.only.split(",") if args.only else None
    # values parse as papermill's own -p does: None/True/False, numbers, else strings (and lists)
    words = {"None": None, "True": True, "False": False}
    params = {name: words[v] if v in words else yaml.safe_load(v) for name, v in args.param}
    reproduce(args.profile, args.notebooks, args.out, only, params, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
