"""Algorithm 1: two-stage training of a VAE whose decoder variance is learned.

Stage 1 maximises Eq. 9 in θ, φ and the global σ (initialised at 1). When it has run
``epochs1`` epochs *and* the epoch-to-epoch ELBO change is below ε₁, σ² is frozen as σ²_dataset.
Stage 2 adds the pixel-wise variance network, σ²_k(z) = v_k(z) + ½σ²_dataset, and maximises the
ELBO with Eq. 11 in θ, φ (variance network included) for ``epochs2`` epochs and until δ < ε₂.

(Algorithm 1 prints the loop conditions as ``e < n or δ_ELBO < ε``; continuing *while* the ELBO
barely changes contradicts "set stopping condition", so we read them as ``e < n or δ ≥ ε``.)

With ``sigma_update="closed_form"`` stage 1 evaluates each batch at that batch's Eq. 10 σ²_*, which
varies by ~10% from batch to batch; σ²_dataset is then frozen from one Eq. 10 pass over the whole
training set (:func:`dataset_sigma2`), not taken from the last batch.

Every other method (``fixed``, ``vae``, ``beta-vae``, ``dip-vae``, ``wae``; their objectives are in
:mod:`sigmavae.objectives`) trains one stage of epochs1 + epochs2 epochs, the same total as ours,
with the same networks and σ² held fixed (VAE 0.5, β-VAE 1, as the paper frames them).

The configuration is :class:`sigmavae.config.TrainConfig` (appendix B.1 / B.2 defaults); run
directories and checkpoints are :mod:`sigmavae.runs`. This module is the loop.
The whole dataset sits on the device as one tensor; batches are slices of a seeded permutation.

Under ``torchrun`` (:mod:`sigmavae.distributed`) every rank runs this loop on its slice of each
global batch, in DistributedDataParallel; batch and dataset means are reduced across ranks, rank 0
alone writes the run directory. Without torchrun nothing here touches :mod:`torch.distributed`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm  # text bars in terminals; notebooks get plain lines (train), no widget

from . import distributed
from .config import APPENDIX_DEFAULTS, METHOD_SIGMA2, METHODS, SIGMA_UPDATES, TrainConfig
from .data import IMAGE_SIZES, as_float, load_dataset
from .distributed import ONE_PROCESS, Context, Shard, all_min, all_sum, any_rank, gather_objects
from .likelihoods import optimal_sigma2
from .models import VAE
from .objectives import OBJECTIVES
from .runs import (
    CHECKPOINT,
    CorruptFileError,
    check_out_dir,
    describe_checkpoint,
    load_run,
    save_checkpoint,
    save_run,
)

__all__ = [  # with what other modules and notebooks import from here since before the split
    "APPENDIX_DEFAULTS", "CHECKPOINT", "METHODS", "METHOD_SIGMA2", "SIGMA_UPDATES", "CorruptFileError",
    "EpochStats", "NonFiniteError", "TrainConfig", "TrainingInterrupted", "build_model",
    "dataset_sigma2", "load_run", "place", "resolve_device", "run_epoch", "save_run", "stages", "train",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA when present, else CPU. A device that does not exist here is refused with a
    ValueError that says which ones do (before anything is loaded or trained)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device torch knows: use auto, cpu, cuda, cuda:N "
                         "or mps") from err
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine; use --device cpu "
                             "(or auto, which takes a GPU only where there is one)")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r}: this machine has {n} CUDA GPU(s), cuda:0 … cuda:{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu or auto")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: sigmavae runs on auto, cpu, cuda, cuda:N or mps")
    return dev


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
    Returns the model (in eval mode) and the per-epoch history (:meth:`EpochStats.history_entry`
    plus ``stage`` and ``epoch``; with ``sigma_update="closed_form"`` the last stage-1 entry also
    holds ``sigma2_dataset``, from :func:`dataset_sigma2`, and ``sigma2_last_batch``).

    With ``out_dir`` a run survives being killed (issue 5). ``out_dir/checkpoint.pt`` is written
    atomically after every epoch, and on SIGINT/SIGTERM after the current batch, which then raises
    :class:`TrainingInterrupted`. ``resume=True`` continues from the checkpoint and ends with the
    same weights and history as an uninterrupted run (same device and thread count); it returns a
    finished run as it is and starts afresh where there is nothing. Refused before any compute: ``out_dir``
    holding a run of another config, and, without ``resume``, any run at all (never overwritten).
    The checkpoint is deleted once ``model.pt`` is written: ``model.pt`` without a checkpoint is a
    complete run. A non-finite loss, ELBO or gradient raises :class:`NonFiniteError`, naming the
    epoch, the batch and the last good checkpoint, which stays as it was.

    Launched by ``torchrun`` with N > 1 ranks, it trains one model in DistributedDataParallel on
    ``cuda:LOCAL_RANK`` (or CPU with gloo), the global batch ``config.batch_size`` split across
    the ranks (:mod:`sigmavae.distributed`); rank 0 writes ``out_dir`` (its ``config.json``
    records ``world_size``) and a checkpoint of N ranks resumes with N ranks only.
    """
    ctx, device = distributed.setup(device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt = check_out_dir(out, config, resume, ctx.world_size) if out is not None else None
    if ckpt == "complete":
        model, _, history = load_run(out, device)
        return model, history
    if out is not None and ctx.main:
        for stale in out.glob(".*.tmp-*"):  # a write cut short by a kill
            stale.unlink(missing_ok=True)
    if data is None:
        data = load_dataset(config.dataset, "train", data_root, download, dtype=torch.uint8)
    if ckpt is not None and list(data.shape) != ckpt["data_shape"]:
        raise ValueError(f"{out / CHECKPOINT} was trained on data of shape {ckpt['data_shape']}, "
                         f"not {list(data.shape)}: resume with the same data, or delete {out}")
    if ctx.active:
        _check_ranks(ctx, config, len(data), out, ckpt)
    model = build_model(config)
    history: list[dict] = ckpt["history"] if ckpt else []
    if ckpt:
        model.variance, model.floor = ckpt["variance"], ckpt["floor"]
        model.sigma.requires_grad_(ckpt["sigma_requires_grad"])
        model.load_state_dict(ckpt["model"])
    if ctx.active and ctx.rank > 0:
        # Each rank draws its own ε (and WAE prior samples) for its own images; rank 0 keeps the
        # one-process stream. The weights were drawn above from config.seed on every rank alike.
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * ctx.rank)
    model, x = place(model, data, device)
    if ctx.active and _has_batch_norm(model):
        model = _sync_batch_norm(model, x.device)
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
        rng_cpu, rng_cuda = ckpt["rng_ranks"][ctx.rank] if ctx.active else (ckpt["rng_cpu"], ckpt["rng_cuda"])
        torch.set_rng_state(rng_cpu)
        if x.device.type == "cuda" and rng_cuda is not None:
            torch.cuda.set_rng_state(rng_cuda, x.device)
        partial = ckpt["epoch_in_progress"]
    saved = ckpt and describe_checkpoint(out, history, partial)  # the last good checkpoint, in words

    with _stop_on_signals(enabled=out is not None) as stop:
        # progress: bars over batches in a terminal, else (notebooks, logs) a line per epoch
        bars = sys.stderr.isatty()
        progress = progress and ctx.main  # one rank reports
        for stage, n_epochs, eps in stages(config):
            if stage == 2 and model.variance != "pixel":
                _end_stage_1(model, x, config, history, ctx)
                model.start_pixel_variance(config.variance_floor)  # σ²_dataset frozen here
            ddp = _data_parallel(model, config, ctx)  # per stage: the parameters that train change
            while not _stage_done(history, stage, n_epochs, eps, config.max_extra_epochs):
                if any_rank(bool(stop), ctx) and saved:  # a signal between epochs: the checkpoint
                    raise TrainingInterrupted(stop[0] if stop else signal.SIGTERM, saved)  # is the state
                e = sum(h["stage"] == stage for h in history) + 1
                where = f"epoch {len(history) + 1} (stage {stage}, epoch {e} of {n_epochs})"
                stats = run_epoch(model, optimizer, x, config, shuffle, progress=progress and bars,
                                  desc=f"stage {stage} epoch {e}/{n_epochs}", stop=stop, resume=partial,
                                  ctx=ctx, ddp=ddp)
                partial = stats.partial
                if stats.bad is not None:  # before any checkpoint: the last good one stays
                    raise NonFiniteError(where, *stats.bad, saved, out is not None)
                if partial is not None:  # stopped by a signal after batch partial["batch"]
                    _checkpoint(ctx, out, model, optimizer, shuffle, config, history, x, partial)
                    raise TrainingInterrupted(stop[0] if stop else signal.SIGTERM,
                                              describe_checkpoint(out, history, partial))
                history.append({**stats.history_entry(), "stage": stage, "epoch": len(history) + 1})
                if progress and not bars:  # a notebook or a log: one plain line per epoch
                    planned = sum(n for _, n, _ in stages(config))
                    left = max(planned - len(history), 0) * sum(h["seconds"] for h in history) / len(history)
                    print(f"  {config.dataset} {config.method} seed {config.seed}: {where} done in "
                          f"{stats.seconds:.0f} s, train ELBO {stats.elbo:.1f}; about {left / 60:.1f} min "
                          "left", flush=True)
                if out is not None:
                    _checkpoint(ctx, out, model, optimizer, shuffle, config, history, x)
                    saved = describe_checkpoint(out, history)
    if model.variance == "global":  # epochs2 = 0: training ends with stage 1
        _end_stage_1(model, x, config, history, ctx)
    model.eval()
    if out is not None and ctx.main:
        save_run(out, model, config, history, ctx.world_size)
        (out / CHECKPOINT).unlink(missing_ok=True)  # model.pt is written: the run is complete
    distributed.barrier(ctx)  # no rank reports success before the run directory is complete
    return model, history


# Rank r > 0 reseeds torch's generator with seed + r·stride after the weights are drawn.
RANK_SEED_STRIDE = 1_000_003


def _check_ranks(ctx: Context, config: TrainConfig, n_images: int, out: Path | None, ckpt) -> None:
    """Refuse, on every rank alike, what N ranks cannot do: a global batch (the last one included)
    with fewer images than ranks, and ranks that see different checkpoints (several machines whose
    ``--out`` is not one shared directory)."""
    last = n_images % config.batch_size
    if config.batch_size < ctx.world_size or 0 < last < ctx.world_size:
        raise ValueError(f"{ctx.world_size} ranks need at least {ctx.world_size} images in every global "
                         f"batch; batch size {config.batch_size} over {n_images} images leaves a last "
                         f"batch of {last or config.batch_size}: use fewer ranks or another --batch-size")
    seen = (len(ckpt["history"]), (ckpt["epoch_in_progress"] or {}).get("batch")) if ckpt else None
    views = gather_objects(seen, ctx)
    if any(v != views[0] for v in views):
        raise ValueError(f"the ranks see different checkpoints in {out} ({views}: (epochs, batch) per "
                         "rank): on several machines --out must be one shared directory")


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _sync_batch_norm(model: VAE, device: torch.device) -> VAE:
    """B.2's batch norm over the global batch (SyncBatchNorm), as one process normalises it. Torch
    synchronises batch norm on GPUs only: on CPU each rank normalises over its own shard."""
    if device.type != "cuda":
        print("sigmavae train: warning: on CPU batch norm (CelebA, appendix B.2) normalises each rank's "
              "shard, not the global batch (torch's SyncBatchNorm needs GPUs)", file=sys.stderr)
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class _Objective(nn.Module):
    """The method's objective as a module's forward, so that DistributedDataParallel sees the
    forward pass it must synchronise the backward of (VAE has encode/decode, no forward). The
    config and the rank are attributes, not arguments: DDP copies its arguments to the device,
    rebuilding dataclasses on the way; a tuple of shard sizes passes through as it is."""

    def __init__(self, model: VAE, config: TrainConfig, ctx: Context):
        super().__init__()
        self.model, self.config, self.ctx = model, config, ctx

    def forward(self, x: torch.Tensor, sizes: tuple[int, ...]):
        return OBJECTIVES[self.config.method](self.model, x, self.config, Shard(self.ctx, sizes))


def _data_parallel(model: VAE, config: TrainConfig, ctx: Context):
    """DistributedDataParallel over the parameters this stage trains (None in one process). The
    variance network only trains in stage 2: frozen before it, so that DDP neither waits for its
    gradient nor hands Adam zeros for it (one process leaves its gradient None, so Adam skips it).
    Built again at the stage switch; DDP's constructor checks that every rank holds the same
    parameters and broadcasts rank 0's."""
    if not ctx.active:
        return None
    model.variance_net.requires_grad_(model.variance == "pixel")
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(
        _Objective(model, config, ctx), device_ids=[device.index] if device.type == "cuda" else None)


def _checkpoint(ctx: Context, out: Path, model: VAE, optimizer, shuffle: torch.Generator,
                config: TrainConfig, history: list[dict], x: torch.Tensor,
                partial: dict | None = None) -> None:
    """:func:`sigmavae.runs.save_checkpoint` by rank 0, with every rank's random streams (each draws
    its own ε), then a barrier: no rank goes on (or exits) before the checkpoint is on disk."""
    if not ctx.active:
        save_checkpoint(out, model, optimizer, shuffle, config, history, x, partial)
        return
    cuda = x.device.type == "cuda"
    rngs = gather_objects((torch.get_rng_state(), torch.cuda.get_rng_state(x.device) if cuda else None), ctx)
    if ctx.main:
        save_checkpoint(out, model, optimizer, shuffle, config, history, x, partial,
                        world_size=ctx.world_size, rng_ranks=rngs)
    distributed.barrier(ctx)


def stages(config: TrainConfig) -> list[tuple[int, int, float | None]]:
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


def _end_stage_1(model: VAE, x: torch.Tensor, config: TrainConfig, history: list[dict],
                 ctx: Context = ONE_PROCESS) -> None:
    """With ``sigma_update="closed_form"``: σ² ← Eq. 10 over the whole training set, not the last
    batch's, before it is frozen as σ²_dataset; both values go into the last stage-1 entry.

    A function of the weights alone (its own generator, the global random streams untouched), so a
    run resumed at the stage switch recomputes exactly what the uninterrupted one did.
    """
    if config.method != "sigma" or config.sigma_update != "closed_form":
        return
    last_batch = model.sigma2
    sigma2 = dataset_sigma2(model, x, config.seed, config.batch_size, ctx)
    model.set_sigma2(sigma2)
    history[-1].update(sigma2_last_batch=last_batch, sigma2_dataset=model.sigma2)


@torch.no_grad()
def dataset_sigma2(model: VAE, x: torch.Tensor, seed: int = 0, batch_size: int = 256,
                   ctx: Context = ONE_PROCESS) -> float:
    """Eq. 10 over a whole dataset: σ²_* = 1/(N·d) Σ_i Σ_k (g_k(z_i) - x_ik)², one z_i ~ q_φ(z|x_i)
    per image, the maximiser of Eq. 9 in σ² for the current θ, φ.

    The noise ε of z = μ + ε ⊙ σ is drawn for all N images at once, ``randn(N, D)`` from a
    generator seeded with ``seed`` on ``x``'s device, so the global random streams (and with them
    exact resume) are untouched. Images are decoded ``batch_size`` at a time, in eval mode (batch
    norm's running statistics are left alone), and the squared errors summed in float64.

    Under DDP (``ctx``) rank r decodes batches r, r + N, ... with the same ε, and the sums are
    all-reduced: the same σ²_* as one process up to the order of the float64 additions.
    """
    was_training = model.training
    model.eval()
    try:
        g = torch.Generator(device=x.device).manual_seed(seed)
        eps = torch.randn(len(x), model.latent_dim, generator=g, device=x.device)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for i, (xb, eb) in enumerate(zip(x.split(batch_size), eps.split(batch_size), strict=True)):
            if i % ctx.world_size != ctx.rank:  # another rank's share
                continue
            xb = as_float(xb)
            mu, sigma = model.encode(xb)
            mean, _ = model.decode(mu + sigma * eb)
            total += optimal_sigma2(xb, mean).double() * xb.numel()  # Eq. 10 of the batch × its size
    finally:
        model.train(was_training)
    return float(all_sum(total, ctx) / x.numel())


@dataclass
class EpochStats:
    """What :func:`run_epoch` measured: the epoch means of the objective and of the ELBO's terms
    (Eq. 5, nats per image), the mean and the smallest decoder σ², and the wall time.

    ``bad`` is None, or (batch, number of batches, what) of the first batch with a non-finite loss,
    ELBO or gradient. ``partial`` is None, or, when a signal stopped the epoch, what ``resume``
    needs to finish it as if it had never stopped: the permutation, the next batch, the running
    sums, the seconds so far.
    """

    loss: float
    elbo: float
    recon: float
    kl: float
    sigma2: float
    sigma2_min: float
    seconds: float
    bad: tuple[int, int, str] | None = None
    partial: dict | None = None

    def history_entry(self) -> dict:
        """The epoch's entry in the history (:func:`train` adds ``stage`` and ``epoch``)."""
        return {k: getattr(self, k) for k in ("loss", "elbo", "recon", "kl", "sigma2", "sigma2_min",
                                               "seconds")}


def run_epoch(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, config: TrainConfig,
              shuffle: torch.Generator, *, progress: bool = False, desc: str = "", stop=(),
              resume: dict | None = None, ctx: Context = ONE_PROCESS,
              ddp: nn.Module | None = None) -> EpochStats:
    """One pass over a seeded permutation of ``x`` (``shuffle``), one Adam step per batch of the
    method's objective (:data:`sigmavae.objectives.OBJECTIVES`).

    Where the objective evaluated the likelihood at Eq. 10's σ²_* (``sigma_update="closed_form"``),
    the step stores it in the model: objectives never write the model. It stops after the current
    batch once a signal has landed in ``stop`` (``partial`` is then set; pass it back as ``resume``),
    and at the first non-finite loss, ELBO or gradient (``bad``), found without a host
    synchronisation per batch (on a GPU).

    Under DDP (``ctx`` active, ``ddp`` the wrapped objective from :func:`train`) each rank takes
    its slice of every global batch; each batch's statistics, its smallest σ² and the stop flag are
    all-reduced, so the running sums (and the decisions to stop) are the same on every rank. That
    costs one host synchronisation per batch on a GPU, to read the stop flag.
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
        if ddp is None:
            loss, t = objective(model, as_float(x[idx]), config)
        else:
            idx, shard = Shard.of(idx, ctx)
            loss, t = ddp(as_float(x[idx]), shard.sizes)
        if t.sigma2_star is not None:  # §3.3's closed-form step: σ² ← this batch's Eq. 10 optimum
            model.set_sigma2(t.sigma2_star)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # Σ|g| is non-finite iff a gradient is (short of 3e38); the squares
            # of a 2-norm overflow from |g| ~ 1e19, and an ∞-norm is 3× slower on a CPU
            grad = torch.stack(torch._foreach_norm([p.grad for p in params if p.grad is not None], 1)).sum()
        optimizer.step()
        with torch.no_grad():
            n = len(idx)
            var = t.log_var.exp()
            stopped = bool(stop)
            if ddp is None:
                sums[:6] += torch.stack([loss * n, t.elbo.sum(), t.recon.sum(), t.kl.sum(), var.mean() * n,
                                         grad])
                sums[6] = torch.minimum(sums[6], var.min())
            else:  # the global batch's sums: this rank's loss is N/B·Σ_shard (Shard.mean), so ·B/N
                part = torch.stack([loss * (shard.global_size / ctx.world_size), t.elbo.sum(), t.recon.sum(),
                                    t.kl.sum(), var.mean() * n, grad])
                low = torch.stack([var.min().float(), torch.tensor(-float(stopped), device=x.device)])
                sums[:6] += all_sum(part, ctx)
                all_min(low, ctx)
                sums[6] = torch.minimum(sums[6], low[0])
                stopped = bool(low[1] < 0)  # a signal on any rank stops every rank after this batch
            sums[7:] += torch.isfinite(torch.stack([sums[0] + sums[1], sums[5]]))
        done = i + 1
        if stopped or (check_now and not math.isfinite(float(sums[0] + sums[1] + sums[5]))):
            break
    loss, elbo, recon, kl, var_sum, _, var_min, good, good_grad = sums.tolist()
    bad = None
    if min(good, good_grad) < done:  # counted from the epoch's start, so they name the batch
        what = "loss or ELBO" if good <= good_grad else "gradient"
        bad = (int(min(good, good_grad)) + 1, len(batches), what)
    n = len(x)
    stats = EpochStats(loss / n, elbo / n, recon / n, kl / n, var_sum / n, var_min,
                       spent + time.perf_counter() - start, bad)
    if done < len(batches) and bad is None:  # (under DDP the sums are every rank's: rank 0 saves them)
        stats.partial = {"order": order, "batch": done, "sums": sums.cpu(), "seconds": stats.seconds}
    return stats


# ----------------------------------------------------------------------------- fault tolerance

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
