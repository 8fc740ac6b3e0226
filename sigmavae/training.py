"""Algorithm 1: two-stage training of a VAE whose decoder variance is learned.

Stage 1 maximises Eq. 9 in θ, φ and the global σ (initialised at 1). When it has run
``epochs1`` epochs *and* the epoch-to-epoch ELBO change is below ε₁, σ² is frozen as σ²_dataset.
Stage 2 adds the pixel-wise variance network, σ²_k(z) = v_k(z) + ½σ²_dataset, and maximises the
ELBO with Eq. 11 in θ, φ (variance network included) for ``epochs2`` epochs and until δ < ε₂.

(Algorithm 1 prints the loop conditions as ``e < n or δ_ELBO < ε``; continuing *while* the ELBO
barely changes contradicts "set stopping condition", so we read them as ``e < n or δ ≥ ε``.)

Every other method (``fixed``, ``vae``, ``beta-vae``, ``dip-vae``, ``wae``; their objectives are in
:mod:`sigmavae.objectives`) trains one stage of epochs1 + epochs2 epochs, the same total as ours,
with the same networks and σ² held fixed (VAE 0.5, β-VAE 1, as the paper frames them).

Defaults are appendix B.1's table: batch 256, latent 16, 16 + 14 epochs, Adam, lr 5e-4 (B.2's for
CelebA: latent 256, 75 + 20 epochs).
The whole dataset sits on the device as one tensor; batches are slices of a seeded permutation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__
from .data import DATASETS, IMAGE_SIZES, as_float, load_dataset
from .models import VAE
from .objectives import OBJECTIVES

METHODS = tuple(OBJECTIVES)
SIGMA_UPDATES = ("sigma", "log_sigma", "closed_form")
# Appendix B.1 / B.2 tables: code size and the epochs of the two stages.
APPENDIX_DEFAULTS = {"28x28": {"latent_dim": 16, "epochs1": 16, "epochs2": 14},
                     "celeba": {"latent_dim": 256, "epochs1": 75, "epochs2": 20}}
# σ² that a method fixes (the paper's framing of VAE and β-VAE; WAE's cost 0.05‖x - g‖² ⇔ σ² = 10).
METHOD_SIGMA2 = {"vae": 0.5, "beta-vae": 1.0, "wae": 10.0}


@dataclass
class TrainConfig:
    """Everything that determines a trained model. Saved as ``config.json`` beside the weights."""

    dataset: str = "mnist"
    method: str = "sigma"  # "sigma": Algorithm 1; "fixed": σ² held at `sigma2`; or a baseline
    sigma2: float | None = None  # fixed σ² of fixed/dip-vae (default 0.5); vae, beta-vae, wae set
    # their own; "sigma" learns it, starting from 1 (Algorithm 1)
    beta: float = 1.0  # weight on the KL term (Higgins et al.'s β-VAE); 1 = the ELBO
    sigma_update: str = "sigma"  # stage 1: Adam on σ (Alg. 1), Adam on log σ, or Eq. 10 per batch
    latent_dim: int | None = None  # None = the appendix tables' code size: 16 (B.1), 256 (B.2, CelebA)
    epochs1: int | None = None  # stage 1; None = 16 (B.1 table), 75 (B.2 table, CelebA)
    epochs2: int | None = None  # stage 2; None = 14 (B.1), 20 (B.2); 0 = stop after stage 1
    eps1: float | None = None  # ε₁ on δ_ELBO (nats); None = stop after exactly epochs1
    eps2: float | None = None  # ε₂; None = stop after exactly epochs2
    max_extra_epochs: int = 10  # cap on epochs added by ε₁/ε₂ beyond epochs1/epochs2
    variance_floor: float = 0.5  # Algorithm 1: floor = ½ σ²_dataset; 0 disables it
    batch_size: int = 256  # appendix B.1 table
    lr: float = 5e-4  # appendix B.1 table, Adam
    seed: int = 0
    dip_type: str = "i"  # DIP-VAE-I or -II (Kumar et al. 2018)
    lambda_od: float = 10.0  # DIP-VAE off-diagonal weight, in Kumar et al.'s range
    lambda_d: float | None = None  # DIP-VAE diagonal weight; None = 10·λ_od (I) or λ_od (II), §3
    wae_lambda: float | None = None  # WAE-MMD λ; None = Tolstikhin et al. §4: 10 (MNIST), 100 (CelebA)

    def __post_init__(self):
        problems = []
        table = APPENDIX_DEFAULTS["celeba" if self.dataset == "celeba" else "28x28"]
        for name, value in table.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.method in METHOD_SIGMA2:
            if self.sigma2 is not None and self.sigma2 != METHOD_SIGMA2[self.method]:
                problems.append(f"method {self.method} fixes σ² = {METHOD_SIGMA2[self.method]}; "
                                f"for σ² = {self.sigma2} use method 'fixed'")
            self.sigma2 = METHOD_SIGMA2[self.method]
        elif self.method == "sigma":
            if self.sigma2 not in (None, 1.0):
                problems.append("method sigma learns σ², starting from 1 (Algorithm 1); sigma2 "
                                "applies to the methods fixed and dip-vae")
            self.sigma2 = 1.0
        elif self.sigma2 is None:
            self.sigma2 = 0.5
        if self.dip_type not in ("i", "ii"):
            problems.append(f"dip_type must be 'i' or 'ii', got {self.dip_type!r}")
        if self.dataset not in DATASETS:
            problems.append(f"dataset {self.dataset!r} is not one of {', '.join(DATASETS)}")
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.sigma_update not in SIGMA_UPDATES:
            problems.append(f"sigma_update {self.sigma_update!r} is not one of {SIGMA_UPDATES}")
        if not (self.sigma2 > 0 and math.isfinite(self.sigma2)):
            problems.append(f"sigma2 must be a positive number, got {self.sigma2}")
        if self.latent_dim < 1:
            problems.append(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.epochs1 < 1 or self.epochs2 < 0:
            problems.append(f"need epochs1 >= 1 and epochs2 >= 0, got {self.epochs1}, {self.epochs2}")
        if self.batch_size < 1 or not self.lr > 0:
            problems.append(f"need batch_size >= 1 and lr > 0, got {self.batch_size}, {self.lr}")
        if self.variance_floor < 0:
            problems.append(f"variance_floor must be >= 0, got {self.variance_floor}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def dip_lambdas(self) -> tuple[float, float]:
        """(λ_od, λ_d): Kumar et al. §3 set λ_d = 10·λ_od for DIP-VAE-I and λ_d = λ_od for -II."""
        if self.lambda_d is not None:
            return self.lambda_od, self.lambda_d
        return self.lambda_od, self.lambda_od * (10.0 if self.dip_type == "i" else 1.0)

    def wae_lambda_value(self) -> float:
        """Tolstikhin et al. 2018, §4: λ = 10 for MNIST, 100 for CelebA."""
        if self.wae_lambda is not None:
            return self.wae_lambda
        return 100.0 if self.dataset == "celeba" else 10.0
    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA when present, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def place(model: VAE, x: torch.Tensor, device: str | torch.device = "auto") -> tuple[VAE, torch.Tensor]:
    """Move the model and the whole dataset to the device once, both channels-last: on CPU the
    oneDNN convolutions of B.1 run ~17% faster in that layout (bench/train_speed.py)."""
    device = resolve_device(device)
    model = model.to(device, memory_format=torch.channels_last)
    return model, x.to(device).contiguous(memory_format=torch.channels_last)


def build_model(config: TrainConfig) -> VAE:
    torch.manual_seed(config.seed)
    channels, size = IMAGE_SIZES[config.dataset]
    param = "log_sigma" if config.sigma_update == "log_sigma" else "sigma"
    if config.method == "sigma":  # Algorithm 1: σ ← 1
        return VAE(config.latent_dim, channels, variance="global", sigma2=config.sigma2,
                   sigma_param=param, image_size=size)
    return VAE(config.latent_dim, channels, variance="fixed", sigma2=config.sigma2, image_size=size)


def train(config: TrainConfig, device: str | torch.device = "auto", out_dir: str | Path | None = None,
          data: torch.Tensor | None = None, data_root: str | Path | None = None,
          download: bool | None = None, progress: bool = True,
          resume: bool = False) -> tuple[VAE, list[dict]]:
    """Train per Algorithm 1 (or the fixed-σ² baseline); save to ``out_dir`` when given.

    ``data`` overrides loading ``config.dataset``'s training split ([N, C, H, W], float in [0, 1]
    or uint8; uint8 batches are converted on the device, which keeps CelebA at 2.5 GB, not 10).
    Returns the model (in eval mode) and the per-epoch history.

    With ``out_dir`` a run survives being killed (issue 5). ``out_dir/checkpoint.pt`` is written
    atomically after every epoch, and on SIGINT/SIGTERM after the current batch, which then raises
    :class:`TrainingInterrupted`. ``resume=True`` continues from the checkpoint and ends with the
    same weights and history as an uninterrupted run (same device and thread count); it returns a
    finished run as it is and starts afresh where there is nothing. Refused before any compute: ``out_dir``
    holding a run of another config, and, without ``resume``, any run at all (never overwritten).
    The checkpoint is deleted once ``model.pt`` is written: ``model.pt`` without a checkpoint is a
    complete run. A non-finite loss, ELBO or gradient raises :class:`NonFiniteError`, naming the
    epoch, the batch and the last good checkpoint, which stays as it was.
    """
    out = Path(out_dir) if out_dir is not None else None
    ckpt = _check_out_dir(out, config, resume) if out is not None else None
    if ckpt == "complete":
        model, _, history = load_run(out, device)
        return model, history
    if out is not None:
        for stale in out.glob(".*.tmp-*"):  # a write cut short by a kill
            stale.unlink(missing_ok=True)
    if data is None:
        data = load_dataset(config.dataset, "train", data_root, download, dtype=torch.uint8)
    if ckpt is not None and list(data.shape) != ckpt["data_shape"]:
        raise ValueError(f"{out / CHECKPOINT} was trained on data of shape {ckpt['data_shape']}, "
                         f"not {list(data.shape)}: resume with the same data, or delete {out}")
    model = build_model(config)
    history: list[dict] = ckpt["history"] if ckpt else []
    if ckpt:
        model.variance, model.floor = ckpt["variance"], ckpt["floor"]
        model.sigma.requires_grad_(ckpt["sigma_requires_grad"])
        model.load_state_dict(ckpt["model"])
    model, x = place(model, data, device)
    # One Adam over every parameter: the variance network's get no gradient (so no update and no
    # Adam state) until stage 2, and θ, φ keep their Adam moments across the stage switch.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.sigma_update == "closed_form":
        model.sigma.requires_grad_(False)
    shuffle = torch.Generator().manual_seed(config.seed)
    partial = None
    if ckpt:  # the random streams exactly where they were (build_model reseeded torch's)
        optimizer.load_state_dict(ckpt["optimizer"])
        shuffle.set_state(ckpt["shuffle"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if x.device.type == "cuda" and ckpt["rng_cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], x.device)
        partial = ckpt["epoch_in_progress"]
    saved = ckpt and _describe(out, history, partial)  # the last good checkpoint, in words

    with _stop_on_signals(enabled=out is not None) as stop:
        for stage, n_epochs, eps in _stages(config):
            if stage == 2 and model.variance != "pixel":
                model.start_pixel_variance(config.variance_floor)  # σ²_dataset frozen here
            while not _stage_done(history, stage, n_epochs, eps, config.max_extra_epochs):
                if stop and saved:  # a signal between epochs: the last checkpoint is the state
                    raise TrainingInterrupted(stop[0], saved)
                e = sum(h["stage"] == stage for h in history) + 1
                where = f"epoch {len(history) + 1} (stage {stage}, epoch {e} of {n_epochs})"
                stats, partial = _epoch(model, optimizer, x, config, shuffle, progress,
                                        f"stage {stage} epoch {e}/{n_epochs}", stop, partial)
                if stats["bad"] is not None:  # before any checkpoint: the last good one stays
                    raise NonFiniteError(where, *stats["bad"], saved, out is not None)
                if partial is not None:  # stopped by a signal after batch partial["batch"]
                    _save_checkpoint(out, model, optimizer, shuffle, config, history, x, partial)
                    raise TrainingInterrupted(stop[0], _describe(out, history, partial))
                del stats["bad"]
                stats.update(stage=stage, epoch=len(history) + 1)
                history.append(stats)
                if out is not None:
                    _save_checkpoint(out, model, optimizer, shuffle, config, history, x)
                    saved = _describe(out, history)
    model.eval()
    if out is not None:
        save_run(out, model, config, history)
        (out / CHECKPOINT).unlink(missing_ok=True)  # model.pt is written: the run is complete
    return model, history


def _stages(config: TrainConfig) -> list[tuple[int, int, float | None]]:
    """(stage, epochs, ε) of Algorithm 1; the other methods train one stage of epochs1 + epochs2."""
    if config.method != "sigma":
        return [(1, config.epochs1 + config.epochs2, None)]
    return [(1, config.epochs1, config.eps1)] + [(2, config.epochs2, config.eps2)] * (config.epochs2 > 0)


def _stage_done(history: list[dict], stage: int, n_epochs: int, eps: float | None, max_extra: int) -> bool:
    """``n_epochs`` done and δ_ELBO < ε (at most ``max_extra`` epochs more), read off the history
    alone so that a resumed run stops where an uninterrupted one does."""
    if any(h["stage"] > stage for h in history):
        return True
    e = sum(h["stage"] == stage for h in history)
    if e < n_epochs:
        return False
    if eps is None or e >= n_epochs + max_extra:
        return True
    previous = history[-2]["elbo"] if len(history) > 1 else -math.inf
    return history[-1]["elbo"] - previous < eps


def _epoch(model, optimizer, x, config, shuffle, progress, desc, stop=(), resume=None):
    """One pass over a seeded permutation of ``x``: ``(stats, partial)``.

    ``partial`` is None, or, when a signal landed in ``stop``, what ``resume`` needs to finish the
    epoch as if it had never stopped: the permutation, the next batch, the running sums.
    ``stats["bad"]`` is None, or (batch, what) of the first batch with a non-finite loss, ELBO or
    gradient, found without a host synchronisation per batch (on a GPU).
    """
    model.train()
    objective = OBJECTIVES[config.method]
    start = time.perf_counter()
    if resume is None:
        order = torch.randperm(len(x), generator=shuffle)
        # Slots: loss, elbo, recon, kl, mean σ², Σ|gradient|, min σ² (running), and
        # the batches so far with finite loss + ELBO sums, with finite gradient sums. NaN and inf
        # stick in a sum, so the last two count the good batches before the first bad one.
        sums = torch.tensor([0.0] * 6 + [math.inf, 0.0, 0.0])
        first, spent = 0, 0.0
    else:
        order, first, sums, spent = (resume[k] for k in ("order", "batch", "sums", "seconds"))
    sums = sums.to(x.device)  # the sums stay there: no host synchronisation inside the step
    batches = order.to(x.device).split(config.batch_size)
    params = list(model.parameters())
    check_now = x.device.type == "cpu"  # reading a value is free on a CPU (a stall on a GPU)
    done = first
    for i in tqdm(range(first, len(batches)), desc=desc, disable=not progress, leave=False,
                  initial=first, total=len(batches)):
        idx = batches[i]
        loss, t = objective(model, as_float(x[idx]), config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # Σ|g| is non-finite iff a gradient is (short of 3e38); the squares
            # of a 2-norm overflow from |g| ~ 1e19, and an ∞-norm is 3× slower on a CPU
            grad = torch.stack(torch._foreach_norm([p.grad for p in params if p.grad is not None], 1)).sum()
        optimizer.step()
        with torch.no_grad():
            n = len(idx)
            var = t.log_var.exp()
            sums[:6] += torch.stack([loss * n, t.elbo.sum(), t.recon.sum(), t.kl.sum(), var.mean() * n, grad])
            sums[6] = torch.minimum(sums[6], var.min())
            sums[7:] += torch.isfinite(torch.stack([sums[0] + sums[1], sums[5]]))
        done = i + 1
        if stop or (check_now and not math.isfinite(float(sums[0] + sums[1] + sums[5]))):
            break
    loss, elbo, recon, kl, var_sum, _, var_min, good, good_grad = sums.tolist()
    bad = None
    if min(good, good_grad) < done:  # counted from the epoch's start, so they name the batch
        what = "loss or ELBO" if good <= good_grad else "gradient"
        bad = (int(min(good, good_grad)) + 1, len(batches), what)
    n = len(x)
    stats = {"loss": loss / n, "elbo": elbo / n, "recon": recon / n, "kl": kl / n, "sigma2": var_sum / n,
             "sigma2_min": var_min, "seconds": spent + time.perf_counter() - start, "bad": bad}
    if done == len(batches) or bad is not None:
        return stats, None
    return stats, {"order": order, "batch": done, "sums": sums.cpu(), "seconds": stats["seconds"]}


# ----------------------------------------------------------------------------- fault tolerance

CHECKPOINT = "checkpoint.pt"


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`train`; the checkpoint it wrote resumes exactly."""

    def __init__(self, signum: int, saved: str):
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name}: saved {saved}; to continue, run the same "
                         "`sigmavae train` command with --resume (or train(..., resume=True))")


class NonFiniteError(FloatingPointError):
    """A non-finite loss, ELBO or gradient: training stopped before it could overwrite anything."""

    def __init__(self, where: str, batch: int, n_batches: int, what: str, saved: str | None,
                 has_out: bool):
        if saved:
            good = f"the last good checkpoint is {saved}; resume from it with --resume (resume=True)"
        else:
            good = "there is no checkpoint to go back to" + ("" if has_out else " (no out_dir)")
        super().__init__(f"training diverged: non-finite {what} in {where}, batch {batch} of "
                         f"{n_batches}; {good}")


def _describe(out: Path, history: list[dict], partial: dict | None = None) -> str:
    at = f"batch {partial['batch']} of epoch {len(history) + 1}" if partial else f"epoch {len(history)}"
    return f"{out / CHECKPOINT} (after {at})"


class CorruptFileError(ValueError):
    """A run file that cannot be read back: truncated, or not what it should be."""


def _read(path: Path, remedy: str):
    """A run file's content (JSON, or torch.load on CPU); a truncated or corrupt one is refused with
    an error that names it and says what to do."""
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and JSON errors alike: the file is unusable
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CorruptFileError(f"{path} is corrupt or truncated ({reason}); {remedy}") from err


def _check_out_dir(out: Path, config: TrainConfig, resume: bool):
    """What ``out`` holds for :func:`train`: None (start afresh), the checkpoint to resume, or
    "complete". Refuses, before any compute, a run of another config or, without ``resume``, any run."""
    here = {**dataclasses.asdict(config), "version": __version__}
    ckpt_path = out / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = _read(ckpt_path, f"delete it to start this run over (or delete {out})")
        stored, what = {**ckpt["config"], "version": ckpt["version"]}, "an unfinished run"
    elif (out / "config.json").is_file():
        stored = _read(out / "config.json", f"delete {out} and train again")
        ckpt, what = None, ("a finished run" if (out / "model.pt").is_file() else "a run")
    else:
        return None
    differ = [f"{k} {stored.get(k)!r} there, {here.get(k)!r} here" for k in sorted(here | stored)
              if stored.get(k) != here.get(k)]
    if differ:
        raise ValueError(f"{out} holds {what} of another config ({'; '.join(differ)}): use another "
                         f"--out / out_dir, or pass that run's options to continue it, or delete {out}")
    if not resume:
        raise ValueError(f"{out} already holds {what} of this config: pass --resume (resume=True) "
                         f"to continue or reuse it, or delete {out} to train it again")
    if ckpt is None and what == "a finished run":
        return "complete"
    return ckpt


def _save_checkpoint(out, model, optimizer, shuffle, config, history, x, partial=None) -> None:
    """Everything a resumed :func:`train` needs to continue bit for bit, written atomically."""
    _atomic_save({
        "version": __version__, "config": dataclasses.asdict(config), "history": history,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "variance": model.variance, "floor": model.floor, "sigma2_dataset": model.sigma2,
        "sigma_requires_grad": model.sigma.requires_grad,
        "shuffle": shuffle.get_state(), "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None,
        "data_shape": list(x.shape), "epoch_in_progress": partial,
    }, out / CHECKPOINT)


def _atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same directory, fsync, rename: a reader (or a run
    killed at any moment) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if isinstance(obj, str):
                f.write(obj.encode())
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _stop_on_signals(enabled: bool = True):
    """While training, SIGINT and SIGTERM only append to the yielded list; the loop stops after the
    current batch and checkpoints a consistent state. A second signal interrupts at once. The
    previous handlers come back afterwards (train() also runs inside notebooks and libraries)."""
    stop: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        if stop:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopped at once")
        stop.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


# ----------------------------------------------------------------------------- run directories

def save_run(out_dir: str | Path, model: VAE, config: TrainConfig, history: list[dict]) -> Path:
    """Write ``config.json``, ``history.json`` and ``model.pt`` (last, each atomically): the
    directory reloads alone, and ``model.pt`` is only there once the run is complete."""
    out = Path(out_dir)
    _atomic_save(json.dumps({**dataclasses.asdict(config), "version": __version__}, indent=2) + "\n",
                 out / "config.json")
    _atomic_save(json.dumps(history, indent=2) + "\n", out / "history.json")
    _atomic_save({"state_dict": model.state_dict(), "variance": model.variance,
                  "floor": model.floor, "sigma_param": model.sigma_param}, out / "model.pt")
    return out


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig, history) of a directory written by :func:`save_run`."""
    run = Path(run_dir)
    missing = [f for f in ("config.json", "history.json", "model.pt") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} is not a sigmavae run directory: missing {', '.join(missing)}"
                                " (create one with `sigmavae train ... --out DIR`)")
    remedy = f"delete {run} and train it again"
    config = TrainConfig.from_dict(_read(run / "config.json", remedy))
    history = _read(run / "history.json", remedy)
    ckpt = _read(run / "model.pt", remedy)
    channels, size = IMAGE_SIZES[config.dataset]
    try:
        model = VAE(config.latent_dim, channels, variance=ckpt["variance"], floor=ckpt["floor"],
                    sigma_param=ckpt["sigma_param"], image_size=size)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:  # a model.pt of another run or format
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CorruptFileError(f"{run / 'model.pt'} does not hold the model of {run / 'config.json'} "
                               f"({reason}); {remedy}") from err
    model = model.to(resolve_device(device), memory_format=torch.channels_last)  # as trained
    return model.eval(), config, history
