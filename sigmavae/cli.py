"""The ``sigmavae`` command: ``train``, ``evaluate``, ``sample``, ``reproduce``.

A run directory holds ``config.json``, ``run.json``, ``history.json`` and ``model.pt`` after ``train``;
``evaluate`` adds ``metrics.json``, the fitted q̂ (``qhat-M-seedS.pt``, plain tensors), which
``sample`` reuses, and ``scores/``: the same parameter check, cache and score functions as the
notebooks (:mod:`sigmavae.params`, :class:`sigmavae.cache.Store`, :mod:`sigmavae.scores`), every
number ± its error. q̂ files are only ever read with ``weights_only`` (never unpickled): a
``gmm-M.pkl`` of older versions is ignored. While ``train`` runs the directory also holds
``checkpoint.pt`` (every epoch, and on Ctrl-C / SIGTERM), from which ``train ... --resume``
continues exactly. Errors are one line: exit 2 for bad input, 1 when training diverges, 128 + the
signal's number when a signal stopped it.

``torchrun --nproc_per_node N -m sigmavae.cli train ...`` trains one model on N ranks
(DistributedDataParallel, :mod:`sigmavae.distributed`); a rank that loses the others (one was
killed) exits 3 with a line that says how to resume. ``reproduce --executor submitit`` hands the
trainings of a sweep to submitit (SLURM, else local processes).

``train``'s model options are generated from :class:`sigmavae.config.TrainConfig`'s fields (name,
type, default, and the help and choices in their metadata): a new field is a new option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import types
import typing
from pathlib import Path

from . import __version__, distributed, evidence
from .cache import Store
from .config import TrainConfig
from .fid import FID_KINDS, generate
from .params import Params, resolve_params
from .plots import save_grid
from .precision import PRECISIONS
from .runs import TrainingInterrupted, load_run, run_config
from .runtime import Runtime, atomic_write, resolve_device
from .scores import elbo_score, fid_score, iwae_score, kl_score, latent_distribution
from .training import train


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` per TrainConfig field: its type (``X | None``: an X, default None),
    default, and the ``help`` and ``choices`` of its metadata."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if kind not in (int, float, str):  # bool, lists, ...: say so rather than parse them wrongly
            raise TypeError(f"TrainConfig.{f.name}: no command-line option for type {hints[f.name]}")
        help_text = f.metadata["help"].replace("%", "%%")  # argparse %-formats help
        help_text += "" if f.default is None else " (default: %(default)s)"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=f.default,
                            choices=f.metadata.get("choices"), help=help_text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigmavae", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"sigmavae {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
        sp.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the networks' arithmetic: auto (bf16 on CUDA and on CPUs with AMX or "
                             "AVX512-BF16, else fp32), bf16 or fp32 (default: $SIGMAVAE_PRECISION, else "
                             "auto)")
        sp.add_argument("--data-root", default=None,
                        help="folder holding MNIST/raw, FashionMNIST/raw (else $SIGMAVAE_DATA)")
        sp.add_argument("--download", action="store_true", help="allow torchvision to download")

    t = sub.add_parser("train", help="train a model (Algorithm 1 or a fixed σ² baseline)")
    _add_config_options(t)
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (same options as before); "
                        "a finished run is kept as it is, an empty --out starts afresh")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    common(t)

    e = sub.add_parser("evaluate", help="ELBO, IWAE (prior and q̂), KL(q̂‖p), FID, each ± its error "
                                        "→ metrics.json")
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
                        "classifier (offline; not comparable with Inception FID), auto (inception where "
                        "its weights are here or --download is given, else classifier) or none")
    e.add_argument("--fid-n", type=int, default=10_000, help="generated and real images for FID")
    e.add_argument("--fid-bootstrap", type=int, default=50, help="resamples for each FID's std")
    e.add_argument("--fid-weights", default=None, help="pt_inception-2015-12-05-6726825d.pth")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    common(e)

    s = sub.add_parser("sample", help="a PNG grid of decoder means g(z), z from q̂ or the prior")
    s.add_argument("run_dir")
    s.add_argument("--from", dest="source", choices=("qhat", "prior"), default="qhat",
                   help="q̂, the Gaussian mixture fitted to the aggregate posterior (Eq. 13), or p(z)")
    s.add_argument("-n", type=int, default=100)
    s.add_argument("--nrow", type=int, default=10)
    s.add_argument("--components", type=int, default=None, help="default 32; CelebA 500")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="PNG file to write")
    common(s)

    ev = sub.add_parser("evidence", help="put a cache's finished entries into the evidence store; check it")
    ev.add_argument("action", choices=("put", "check"))
    ev.add_argument("source", nargs="?", default=None,
                    help="put: the cache folder (or another store) to take entries from (default "
                         "$SIGMAVAE_CACHE or ~/.cache/sigmavae)")
    ev.add_argument("--into", default=None,
                    help="the evidence store (default $SIGMAVAE_EVIDENCE, else the repository's evidence/)")
    _reproduce_options(sub.add_parser("reproduce",
                                      help="execute the paper's notebooks on a profile (papermill)"))
    return p


def _reproduce_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"),
                   help="parameter profile (sigmavae.params.PROFILES)")
    r.add_argument("--only", default=None,
                   help="comma-separated: table1,figure1,table3,table2,figure2,table4,figure3_4,section3_4,"
                        "appendix,beyond")
    r.add_argument("--notebooks", default="notebooks", help="the notebooks folder (of the repository)")
    r.add_argument("--out", default=None, help="where executed notebooks go (default: replace them)")
    r.add_argument("--jobs", type=int, default=1,
                   help="train the needed models this many at a time first, the CPU threads split among them "
                        "(GPU: 4-8; 2 CPU cores: 2, 1.12× a sequential sweep)")
    r.add_argument("--executor", choices=("processes", "submitit"), default="processes",
                   help="with --jobs > 1: train in local processes (default), or hand each training to "
                        "submitit (a SLURM job array where SLURM is installed, else local processes; "
                        "`pip install sigmavae[sweeps]`)")
    r.add_argument("--slurm-partition", default=None, help="submitit on SLURM: the partition")
    r.add_argument("--slurm-gpus", type=int, default=0, help="submitit: GPUs per training job (default 0)")
    r.add_argument("--slurm-cpus", type=int, default=None, help="submitit: CPUs per training job")
    r.add_argument("--slurm-time", type=int, default=720, help="submitit: minutes before a job is killed")
    r.add_argument("--submitit-folder", default=None,
                   help="submitit's pickles and job logs (default <cache>/submitit; shared on a cluster)")
    r.add_argument("--plan", action="store_true",
                   help="say which models the notebooks need, which are cached and what the others cost "
                        "to train; run nothing")
    r.add_argument("--train-only", action="store_true",
                   help="train the models the notebooks need (--jobs at a time) into the cache; execute "
                        "nothing")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter over the profile's, e.g. -p data_root ../data")


# Numeric options and their smallest allowed value, checked before any work starts.
MINIMUM = {"iwae_k": 1, "iwae_n": 1, "components": 1, "kl_samples": 1, "kl_runs": 1, "fid_n": 2, "n": 1,
           "nrow": 1, "jobs": 1, "slurm_gpus": 0, "slurm_cpus": 1, "slurm_time": 1}


def _check(args) -> None:
    """Refuse bad options (numbers out of range, a device that is not here, an --out of the wrong
    kind) with what to pass instead, before anything is loaded or trained."""
    problems = []
    for name, low in MINIMUM.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            flag = "-n" if name == "n" else "--" + name.replace("_", "-")
            problems.append(f"{flag} must be >= {low}, got {value}")
    out = getattr(args, "out", None)
    if out is not None and Path(out).exists():
        if args.command in ("train", "reproduce") and not Path(out).is_dir():
            problems.append(f"--out {out} is a file, not a directory: pass a directory to write into")
        if args.command == "sample" and Path(out).is_dir():
            problems.append(f"--out {out} is a directory: pass the PNG file to write, "
                            f"e.g. {Path(out) / 'grid.png'}")
    if args.command == "sample" and out is not None and Path(out).parent.exists() \
            and not Path(out).parent.is_dir():
        problems.append(f"--out {out}: {Path(out).parent} is a file, not a directory")
    if problems:
        raise ValueError("; ".join(problems))
    if getattr(args, "device", None) is not None:
        resolve_device(args.device)  # raises ValueError naming the devices that exist


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check(args)
        commands = {"train": _train, "evaluate": _evaluate, "sample": _sample, "reproduce": _reproduce,
                    "evidence": _evidence}
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
    except RuntimeError as err:
        if not distributed.lost_peer(err):  # a collective failed: another rank died or hung
            raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        print(f"sigmavae {args.command}: error: rank {os.environ.get('RANK', '?')} lost the other ranks "
              f"({reason}); the job stops. Run the same torchrun command with --resume to continue from "
              "the last checkpoint in --out", file=sys.stderr)
        return 3
    finally:
        distributed.teardown()


def _train(args) -> int:
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    model, history = train(config, out_dir=args.out, runtime=_runtime(args, progress=not args.quiet),
                           resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 reports
        return 0
    last = history[-1]
    per_epoch = sum(h["seconds"] for h in history) / len(history)
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    where = f"{ranks} ranks (torchrun)" if ranks > 1 else resolve_device(args.device)
    print(f"trained {len(history)} epochs on {where} in {model.precision} "
          f"({per_epoch:.1f} s/epoch): train ELBO {last['elbo']:.1f} nats, "
          f"σ²_dataset {model.sigma2:.5g}, variance mode {model.variance} → {args.out}")
    return 0


def _runtime(args, progress: bool = False) -> Runtime:
    """The runtime settings of the common options (device, data root, download, FID weights)."""
    return Runtime(device=args.device, precision=args.precision, data_root=args.data_root,
                   download=args.download or None, fid_weights=getattr(args, "fid_weights", None),
                   progress=progress)


def _run_params(args, config: TrainConfig, **given) -> Params:
    """The notebooks' parameter check for scoring one run: its dataset and code size, the CLI's
    options, the appendix's q̂ (32 components; CelebA 500 on 50k latents) where none is given;
    refusals (a FID CelebA cannot have, bad values) before anything is loaded."""
    rt = _runtime(args)
    return resolve_params({}, given.pop("needs_fid", False), dataset=config.dataset,
                          latent_dim=config.latent_dim, components=args.components, seeds=[args.seed],
                          device=str(rt.device), precision=rt.precision, data_root=rt.data_root,
                          download=rt.download,
                          fid_weights=rt.fid_weights, progress=False, **given)


def _open(args, needs_fid: bool = False, **given):
    """(params, store, config) of the run directory ``args.run_dir``: the run checked, the
    parameters checked, then the model loaded, and a store whose q̂ and scores live in the run
    directory itself (the files the notebooks' cache keeps: ``qhat-<M>-seed<S>.pt``, ``scores/``)."""
    run_dir = Path(args.run_dir)
    config = run_config(run_dir)
    p = _run_params(args, config, needs_fid=needs_fid, **given)
    store = Store(runtime=p.runtime)
    store.attach(config, run_dir, load_run(run_dir, store.device)[0])
    return p, store, config


def _evaluate(args) -> int:
    fid = args.fid if args.fid != "none" else "auto"
    p, store, config = _open(args, needs_fid=args.fid != "none", n_samples=args.iwae_n, iwae_k=args.iwae_k,
                             kl_samples=args.kl_samples, kl_runs=args.kl_runs, fid=fid,
                             fid_bootstrap=args.fid_bootstrap)
    model, seed = store.model(config), args.seed
    e, iw = elbo_score(store, config, p, seed), iwae_score(store, config, p, seed)
    kl, kl_se = kl_score(store, config, p, seed)
    metrics = {"run": args.run_dir, "dataset": config.dataset, "method": config.method, "seed": seed,
               "elbo": e["elbo"], "elbo_stderr": e["elbo_stderr"], "recon": e["recon"], "kl": e["kl"],
               **{f"iwae_{k}{suffix}": iw[k][stat] for k in ("prior", "qhat", "gain")
                  for suffix, stat in (("", "mean"), ("_stderr", "stderr"))},
               "kl_qhat_prior": kl, "kl_qhat_prior_stderr": kl_se,
               "sigma2_dataset": model.sigma2, "variance": model.variance,
               "variance_floor": model.floor if model.variance == "pixel" else None,
               "iwae_k": p.iwae_k, "iwae_n": p.n_samples, "components": p.components}
    if args.fid != "none":
        pf = dataclasses.replace(p, n_samples=args.fid_n)
        for source, cfg in (("qhat", config), ("prior", config), ("real", None)):
            value, std = fid_score(store, cfg, pf, seed, source)  # real: training images, Table 2's row
            metrics |= {f"fid_{source}": value, f"fid_{source}_std": std}
        extractor = store.extractor(pf.fid, config.dataset)
        metrics |= {"fid_kind": f"{extractor.kind} FID", "fid_n": args.fid_n,
                    "fid_bootstrap": pf.fid_bootstrap}
        if extractor.kind == "classifier":
            metrics["fid_classifier_test_accuracy"] = extractor.info["test_accuracy"]
    atomic_write(Path(args.run_dir) / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    for key, value in metrics.items():
        if key.endswith(("_stderr", "_std")):
            continue
        err = metrics.get(f"{key}_stderr", metrics.get(f"{key}_std"))
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"{key:<22} {text}" + (f" ± {err:.2g}" if isinstance(err, float) else ""))
    return 0


def _sample(args) -> int:
    run_dir = Path(args.run_dir)
    if args.source == "qhat":
        legacy = sorted(p.name for p in run_dir.glob("gmm-*.pkl"))
        if legacy:  # never unpickled: a pickle someone shared could run their code
            print(f"sigmavae sample: note: ignored {', '.join(legacy)} (pickled q̂ of an older version; "
                  "unpickling could run code); delete them", file=sys.stderr)
    p, store, config = _open(args)
    dist = latent_distribution(store, config, p, args.seed, args.source)  # q̂: read back, or fitted
    images = generate(store.model(config), dist, args.n, args.seed)
    print(f"wrote {save_grid(images, args.out, args.nrow)} ({args.n} samples from {args.source})")
    return 0


def _evidence(args) -> int:
    runtime = Runtime(evidence_dir=args.into)
    store = runtime.evidence
    if store is None:
        raise ValueError("no evidence store: pass --into DIR (or set $SIGMAVAE_EVIDENCE), or run from a "
                         "sigmavae checkout, whose evidence/ is the store")
    if args.action == "check":
        print(f"{store}: {evidence.check(store)} entries, all valid")
        return 0
    source = Path(args.source) if args.source else runtime.cache
    report = evidence.put(source, store)
    print(f"{source} → {store}: {report}")
    return 0


def _reproduce(args) -> int:
    try:  # papermill, ipykernel and pyyaml: `pip install sigmavae[notebooks]`
        import yaml

        from .reproduce import reproduce
    except ImportError as err:
        raise ImportError(f"{err.name} is missing: `pip install sigmavae[notebooks]` (papermill, "
                          "ipykernel, pyyaml) to run the notebooks") from err

    only = args.only.split(",") if args.only else None
    # values parse as papermill's own -p does: None/True/False, numbers, else strings (and lists)
    words = {"None": None, "True": True, "False": False}
    params = {name: words[v] if v in words else yaml.safe_load(v) for name, v in args.param}
    # papermill logs each notebook's printed output at INFO: training progress reaches this terminal
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("    | %(message)s"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    submitit_options = {"partition": args.slurm_partition, "gpus_per_job": args.slurm_gpus,
                        "cpus_per_job": args.slurm_cpus, "timeout_min": args.slurm_time,
                        "folder": args.submitit_folder}
    try:
        reproduce(args.profile, notebooks_dir=args.notebooks, out_dir=args.out, only=only, parameters=params,
                  jobs=args.jobs, log_output=True, executor=args.executor, submitit_options=submitit_options,
                  train_only=args.train_only, plan_only=args.plan)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
