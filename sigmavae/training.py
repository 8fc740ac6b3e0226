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

This module is the algorithm, for one model or for a group of models that share networks and
objective (:func:`train_group`: the seeds of one config, Table 1's fixed σ²), trained together in
one vmapped step and each exactly as alone; a model trained alone is a group of one. The
configuration is :class:`sigmavae.config.TrainConfig` (appendix B.1 / B.2 defaults); run
directories, checkpoints and signals are :mod:`sigmavae.runs`; what torchrun adds is
:mod:`sigmavae.data_parallel`; the networks' arithmetic (fp32, or bf16 where the hardware has it)
is :mod:`sigmavae.precision`. The whole dataset sits on the device as one tensor; batches are
slices of a seeded permutation, one per model.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm  # text bars in terminals; notebooks get plain lines (train), no widget

from . import data_parallel, distributed
from .config import TrainConfig
from .data import as_float, load_dataset
from .distributed import ONE_PROCESS, Context, Shard, all_min, all_sum, any_rank
from .likelihoods import optimal_sigma2
from .models import VAE
from .objectives import OBJECTIVES, draw_noise
from .precision import resolve_precision
from .runs import (
    NonFiniteError,
    TrainingInterrupted,
    TrainState,
    describe_checkpoint,
    finish_run,
    load_run,
    open_run,
    place_run,
    restore,
    run_precision,
    stop_on_signals,
)
from .runtime import DEFAULT_RUNTIME, Runtime, resolve_device


def train(config: TrainConfig, *, out_dir: str | Path | None = None, runtime: Runtime = DEFAULT_RUNTIME,
          data: torch.Tensor | None = None, resume: bool = False) -> tuple[VAE, list[dict]]:
    """Train ``config`` per Algorithm 1 (or its one-stage baseline); save to ``out_dir`` if given.

    ``runtime`` gives the device, the precision (:mod:`sigmavae.precision`), where the data are
    (and whether they may be downloaded) and whether to report progress. ``data`` replaces
    ``config.dataset``'s training split ([N, C, H, W], float in [0, 1] or uint8; uint8 batches
    are converted on the device, 4× less memory). Returns the model (in eval mode) and the
    per-epoch history (:meth:`EpochStats.history_entry` plus ``stage`` and ``epoch``; with
    ``sigma_update="closed_form"`` the last stage-1 entry also holds ``sigma2_dataset``, from
    :func:`dataset_sigma2`, and ``sigma2_last_batch``).

    With ``out_dir`` a run survives being killed: ``out_dir/checkpoint.pt`` is written after every
    epoch, and on SIGINT/SIGTERM after the current batch, which then raises
    :class:`~sigmavae.runs.TrainingInterrupted`. ``resume=True`` continues from the checkpoint and
    ends with the same weights and history as an uninterrupted run (same device, precision and
    thread count); it returns a finished run as it is and starts afresh where there is nothing.
    Refused before any compute: ``out_dir`` holding a run of another config, and, without
    ``resume``, any run at all. A non-finite loss, ELBO or gradient raises
    :class:`~sigmavae.runs.NonFiniteError`, naming the epoch, the batch and the last good
    checkpoint, which stays as it was.

    Launched by ``torchrun`` with N > 1 ranks, it trains one model in DistributedDataParallel on
    ``cuda:LOCAL_RANK`` (or CPU with gloo), the global batch ``config.batch_size`` split across
    the ranks (:mod:`sigmavae.data_parallel`); rank 0 writes ``out_dir`` and a checkpoint of N
    ranks resumes with N ranks only.

    A model trained alone is a group of one: :func:`train_group`.
    """
    return train_group([config], out_dirs=[out_dir], runtime=runtime, data=data, resume=resume)[0]


def shared(config: TrainConfig) -> dict:
    """What models of one group share: every TrainConfig field but ``seed`` and ``sigma2`` (the
    seeds of one config; the fixed σ² of Table 1 share networks and objective)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("seed", "sigma2")}


def stage_1_config(config: TrainConfig) -> TrainConfig | None:
    """The stage-1-only run (``epochs2 = 0``) that ``config``'s training passes through at
    Algorithm 1's stage switch, bit for bit (stage 1 does not depend on ``epochs2``): Table 3's
    "ours, dataset σ²" is "ours, pixel σ²" before stage 2. None where there is no stage 2."""
    has_stage_2 = config.method == "sigma" and config.epochs2 > 0
    return dataclasses.replace(config, epochs2=0) if has_stage_2 else None


def model_name(config: TrainConfig) -> str:
    """A model in words, for progress lines and errors: dataset, method, seed (and a fixed σ²)."""
    return (f"{config.dataset} {config.method} seed {config.seed}"
            + (f" σ² {config.sigma2:g}" if config.method == "fixed" else ""))


def check_group(configs: list[TrainConfig]) -> None:
    """Refuse, before any compute, a group whose models do not share networks and objective
    (:func:`shared`), and one that holds a model twice."""
    if not configs:
        raise ValueError("train_group needs at least one config")
    first = shared(configs[0])
    differ = sorted({k for c in configs[1:] for k, v in shared(c).items() if v != first[k]})
    if differ:
        raise ValueError(f"models trained as one group must share networks and objective; these differ "
                         f"in {', '.join(differ)}: train them in separate groups (only seed and sigma2 "
                         "may differ)")
    if len({(c.seed, c.sigma2) for c in configs}) < len(configs):
        raise ValueError("a group holds the same model twice (same seed and sigma2): pass each once")


@dataclass
class _Member:
    """One model of a group: its config, run directory, state, last checkpoint (in words), the
    DDP wrapper of its current stage and, once it diverged, the error that names it."""

    config: TrainConfig
    out: Path | None
    state: TrainState
    saved: str | None
    name: str
    ddp: object = None
    ddp_stage: int = 0
    stage_1_out: Path | None = None  # where its stage-1 model goes at the switch (train_group)
    error: NonFiniteError | None = None


def train_group(configs: list[TrainConfig], *, out_dirs: list | None = None,
                runtime: Runtime = DEFAULT_RUNTIME, data: torch.Tensor | None = None,
                resume: bool = False, stage_1_dirs: list | None = None) -> list[tuple[VAE, list[dict]]]:
    """Train models that share networks and objective (:func:`check_group`) together, one
    vmapped step for all of them (:func:`run_group_epoch`), each exactly as :func:`train` trains
    it alone: its own weights, batch order and noise from its seed, its own σ² and σ²_dataset,
    floor, stage switch (Algorithm 1's ε-tests read its own history), checkpoint and run
    directory (``out_dirs``, one per config, or None). Returns [(model, history)] in ``configs``'
    order.

    Models at different points (a resumed group whose checkpoints differ; one that needs an
    extra epoch) train in subgroups of the same point. A model whose loss, ELBO or gradient turns
    non-finite leaves the group at once (its last good checkpoint stays); the others train to the
    end and are saved, then :class:`~sigmavae.runs.NonFiniteError` names the model (and any other
    that diverged). A signal stops every model after the current batch, each checkpointed.
    Under torchrun a group holds one model.

    ``stage_1_dirs`` (one per config, or None): where each model's state at the stage switch is
    written as the complete run of :func:`stage_1_config` (:func:`sigmavae.runs.place_run`), the
    same model that config trains to alone; a model resumed past the switch writes none.
    """
    check_group(configs)
    ctx, device = distributed.setup(runtime.device)
    if ctx.active and len(configs) > 1:
        raise ValueError(f"under torchrun train one model at a time, not a group of {len(configs)}")
    precision = resolve_precision(runtime.precision, resolve_device(device))
    outs = [Path(o) if o is not None else None for o in (out_dirs or [None] * len(configs))]
    stage_1_outs = list(stage_1_dirs or [None] * len(configs))
    if len(outs) != len(configs) or len(stage_1_outs) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(outs)} out_dirs and {len(stage_1_outs)} "
                         "stage_1_dirs: pass one per config (or None)")
    bad = [model_name(c) for c, d in zip(configs, stage_1_outs, strict=True)
           if d is not None and stage_1_config(c) is None]
    if bad:
        raise ValueError(f"stage_1_dirs given for {', '.join(bad)}, which has no stage 2: pass None there")
    ckpts = [open_run(out, c, resume, ctx, precision) if out is not None else None
             for c, out in zip(configs, outs, strict=True)]
    results: dict[int, tuple[VAE, list[dict]]] = {}
    for i, ckpt in enumerate(ckpts):
        if ckpt == "complete":
            model, _, history = load_run(outs[i], device)
            model.precision = run_precision(outs[i])  # as it was trained
            results[i] = model, history
    todo = [i for i in range(len(configs)) if i not in results]
    if todo and data is None:
        data = load_dataset(configs[0].dataset, "train", runtime.data_root, runtime.download,
                            dtype=torch.uint8)
    x = None
    members: dict[int, _Member] = {}
    for i in todo:
        data_parallel.check_ranks(ctx, configs[i], len(data), outs[i], ckpts[i])
        state = _initial_state(configs[i], data if x is None else x, device, ctx, precision)
        x = state.x  # the dataset goes to the device once, for every model
        if ckpts[i]:
            restore(state, ckpts[i], ctx, outs[i])
        saved = ckpts[i] and describe_checkpoint(outs[i], state.history, state.partial)
        members[i] = _Member(configs[i], outs[i], state, saved, model_name(configs[i]),
                             stage_1_out=None if stage_1_outs[i] is None else Path(stage_1_outs[i]))
    report = runtime.progress and ctx.main  # one rank reports
    group = list(members.values())
    with stop_on_signals(enabled=any(m.out is not None for m in group)) as stop:
        while live := [(m, s) for m in group if m.error is None and (s := _current_stage(m)) is not None]:
            if any_rank(bool(stop), ctx) and all(m.saved for m, _ in live):  # a signal between epochs:
                raise TrainingInterrupted(stop[0] if stop else signal.SIGTERM,  # the checkpoints are it
                                          "; ".join(m.saved for m, _ in live))
            for m, (stage, _) in live:
                if stage == 2 and m.state.model.variance != "pixel":  # the stage switch
                    _end_stage_1(m.state, m.config, ctx)  # σ²_dataset
                    if m.stage_1_out is not None and ctx.main:  # what stage 1 alone would have saved
                        place_run(m.stage_1_out, m.state.model, stage_1_config(m.config),
                                  m.state.history, ctx.world_size)
                    m.state.model.start_pixel_variance(m.config.variance_floor)  # v_k(z) + ½σ²_dataset
                if m.ddp_stage != stage:  # per stage: what trains changes
                    m.ddp, m.ddp_stage = data_parallel.wrap(m.state.model, m.config, ctx), stage
            at: dict[tuple, list] = {}  # models at the same point train together
            for m, (stage, n_epochs) in live:
                point = (stage, len(m.state.history), (m.state.partial or {}).get("batch", 0))
                at.setdefault(point, []).append((m, n_epochs))
            for (stage, _, _), sub in at.items():
                _epoch([m for m, _ in sub], stage, sub[0][1], ctx, stop, report, solo=len(group) == 1)
    for i, m in members.items():
        if m.error is None:
            results[i] = _finish(m, ctx)
    distributed.barrier(ctx)  # no rank reports success before the run directory is complete
    errors = [m.error for m in group if m.error is not None]
    if errors:
        for other in errors[1:]:
            errors[0].add_note(f"also: {other}")
        raise errors[0]
    return [results[i] for i in range(len(configs))]


def _current_stage(m: _Member) -> tuple[int, int] | None:
    """(stage, its epochs) that ``m`` trains next, or None when it is done."""
    for stage, n_epochs, eps in stages(m.config):
        if not _stage_done(m.state.history, stage, n_epochs, eps, m.config.max_extra_epochs):
            return stage, n_epochs
    return None


def _finish(m: _Member, ctx: Context) -> tuple[VAE, list[dict]]:
    """The end of ``m``'s training: σ²_dataset if it ended with stage 1, its run directory."""
    state = m.state
    if state.model.variance == "global":  # epochs2 = 0: training ends with stage 1
        _end_stage_1(state, m.config, ctx)
    model = state.model.eval()
    if m.out is not None and ctx.main:
        finish_run(m.out, model, m.config, state.history, ctx.world_size)
    return model, state.history


def noise_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` where torch's global stream for that device stands now: what a
    model's ε would have been drawn from (so that a model trained alone draws what it drew
    before noise had a generator of its own)."""
    g = torch.Generator(device=device)
    if device.type == "cuda":
        g.set_state(torch.cuda.get_rng_state(device))
    elif device.type == "mps":
        g.set_state(torch.mps.get_rng_state())
    else:
        g.set_state(torch.get_rng_state())
    return g


def _initial_state(config: TrainConfig, data: torch.Tensor, device, ctx: Context,
                   precision: str = "fp32") -> TrainState:
    """Algorithm 1's start: weights drawn from ``config.seed``, σ ← 1, one Adam over every
    parameter, the batch order seeded by ``config.seed``, the noise generator where the weights
    left the seeded stream. The model and the whole dataset go to the device once, both
    channels-last (on CPU oneDNN's convolutions of B.1 run ~17% faster in that layout,
    bench/train_speed.py); ``data`` already there is used as it is."""
    torch.manual_seed(config.seed)  # the weights; then ε and every other draw in training
    model = VAE.from_config(config)
    data_parallel.seed_rank(config, ctx)
    model, x = place(model, data, device)
    model.precision = precision
    model = data_parallel.sync_batch_norm(model, ctx)
    # The variance network's parameters get no gradient (so no update and no Adam state) until
    # stage 2, and θ, φ keep their Adam moments across the stage switch.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.sigma_update == "closed_form":  # σ² is set by Eq. 10, not by Adam
        model.sigma.requires_grad_(False)
    return TrainState(model, optimizer, torch.Generator().manual_seed(config.seed), x,
                      noise_generator(x.device))


def place(model: VAE, x: torch.Tensor, device: str | torch.device = "auto") -> tuple[VAE, torch.Tensor]:
    """The model and the whole dataset on ``device``, both channels-last."""
    device = resolve_device(device)
    model = model.to(device, memory_format=torch.channels_last)
    return model, x.to(device).contiguous(memory_format=torch.channels_last)


def _epoch(members: list[_Member], stage: int, n_epochs: int, ctx: Context, stop: list, report: bool,
           solo: bool) -> None:
    """One epoch of ``stage`` for models at the same point: each one's history entry and
    checkpoint. A non-finite batch sets that model's error before anything of it is written; a
    signal saves every model's epoch so far and raises."""
    first = members[0].state
    e = sum(h["stage"] == stage for h in first.history) + 1
    where = f"epoch {len(first.history) + 1} (stage {stage}, epoch {e} of {n_epochs})"
    bars = report and sys.stderr.isatty()  # bars over batches in a terminal, else a line per epoch
    who = members[0].name if len(members) == 1 else f"{len(members)} models"
    all_stats = run_group_epoch([m.state for m in members], [m.config for m in members], progress=bars,
                                desc=f"{'' if solo else who + ' '}stage {stage} epoch {e}/{n_epochs}",
                                stop=stop, ctx=ctx, ddp=members[0].ddp)
    for m, stats in zip(members, all_stats, strict=True):
        m.state.partial = stats.partial
        if stats.bad is not None:  # before any checkpoint: the last good one stays
            m.error = NonFiniteError(where if solo else f"{m.name}, {where}", *stats.bad, m.saved,
                                     m.out is not None)
    interrupted = [m for m, stats in zip(members, all_stats, strict=True)
                   if stats.partial is not None and m.out is not None]
    for m in interrupted:  # a signal stopped it after batch partial["batch"]
        data_parallel.checkpoint(ctx, m.out, m.state, m.config, m.state.partial)
    if interrupted:
        raise TrainingInterrupted(stop[0] if stop else signal.SIGTERM, "; ".join(
            describe_checkpoint(m.out, m.state.history, m.state.partial) for m in interrupted))
    for m, stats in zip(members, all_stats, strict=True):
        if m.error is not None:
            continue
        history = m.state.history
        history.append({**stats.history_entry(), "stage": stage, "epoch": len(history) + 1})
        if report and not bars:  # a notebook or a log: one plain line per epoch
            planned = sum(n for _, n, _ in stages(m.config))
            left = max(planned - len(history), 0) * sum(h["seconds"] for h in history) / len(history)
            print(f"  {m.name}: {where} done in {stats.seconds:.0f} s, train ELBO {stats.elbo:.1f}; "
                  f"about {left / 60:.1f} min left", flush=True)
        if m.out is not None:
            data_parallel.checkpoint(ctx, m.out, m.state, m.config)
            m.saved = describe_checkpoint(m.out, history)


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


def _end_stage_1(state: TrainState, config: TrainConfig, ctx: Context = ONE_PROCESS) -> None:
    """With ``sigma_update="closed_form"``: σ² ← Eq. 10 over the whole training set, not the last
    batch's, before it is frozen as σ²_dataset; both values go into the last stage-1 entry.

    A function of the weights alone (its own generator, the global random streams untouched), so a
    run resumed at the stage switch recomputes exactly what the uninterrupted one did.
    """
    if config.method != "sigma" or config.sigma_update != "closed_form":
        return
    model = state.model
    last_batch = model.sigma2
    model.set_sigma2(dataset_sigma2(model, state.x, config.seed, config.batch_size, ctx))
    state.history[-1].update(sigma2_last_batch=last_batch, sigma2_dataset=model.sigma2)


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


# ----------------------------------------------------------------------------- one epoch

@dataclass
class EpochSums:
    """An epoch's running sums, 0-d tensors on the device (no host synchronisation per batch):
    over images, the loss, ELBO and its two terms and the decoder's mean σ²; Σ|gradient| over
    batches; the smallest σ² so far; and the batches so far whose loss + ELBO, and whose
    gradient, were finite. NaN and inf stick in a sum, so the last two count the good batches
    before the first bad one."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    sigma2: torch.Tensor
    grad: torch.Tensor
    sigma2_min: torch.Tensor
    good: torch.Tensor
    good_grad: torch.Tensor

    ADDED = ("loss", "elbo", "recon", "kl", "sigma2", "grad")  # summed batch by batch (all-reduced)

    @classmethod
    def zeros(cls, device) -> EpochSums:
        def zero(value=0.0):
            return torch.tensor(value, device=device)

        return cls(*(zero() for _ in cls.ADDED), sigma2_min=zero(math.inf), good=zero(), good_grad=zero())

    def add(self, values: torch.Tensor) -> None:
        """Add a batch's [loss, ELBO, recon, KL, σ² mean, Σ|g|] sums (one stacked tensor, so that
        DDP reduces them in one collective)."""
        for name, v in zip(self.ADDED, values, strict=True):
            getattr(self, name).add_(v)

    def count_finite(self) -> None:
        self.good += torch.isfinite(self.loss + self.elbo)
        self.good_grad += torch.isfinite(self.grad)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).cpu() for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor], device) -> EpochSums:
        return cls(**{k: v.to(device) for k, v in d.items()})


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
              shuffle: torch.Generator, *, noise: torch.Generator | None = None, progress: bool = False,
              desc: str = "", stop=(), resume: dict | None = None, ctx: Context = ONE_PROCESS,
              ddp: nn.Module | None = None, check_every_batch: bool | None = None) -> EpochStats:
    """One epoch of one model: :func:`run_group_epoch` for a group of one. ``noise``: the
    generator of ε (default: one at torch's global stream as it stands)."""
    noise = noise if noise is not None else noise_generator(x.device)
    state = TrainState(model, optimizer, shuffle, x, noise, partial=resume)
    return run_group_epoch([state], [config], progress=progress, desc=desc, stop=stop, ctx=ctx, ddp=ddp,
                           check_every_batch=check_every_batch)[0]


def run_group_epoch(states: list[TrainState], configs: list[TrainConfig], *, progress: bool = False,
                    desc: str = "", stop=(), ctx: Context = ONE_PROCESS, ddp: nn.Module | None = None,
                    check_every_batch: bool | None = None) -> list[EpochStats]:
    """One pass of each model over its own seeded permutation of the shared data (``state.shuffle``),
    one Adam step per batch of the method's objective (:data:`sigmavae.objectives.OBJECTIVES`),
    the models of a group in one vmapped forward and backward (:func:`group_step`), each with its
    own noise (``state.noise``), σ², floor, Adam and statistics. Every state must be at the same
    batch (``state.partial``: where a signal stopped it, or None).

    Where the objective evaluated the likelihood at Eq. 10's σ²_* (``sigma_update="closed_form"``),
    the step stores it in the model: objectives never write the model. It stops after the current
    batch once a signal has landed in ``stop`` (``partial`` is then set; it resumes from the
    state's ``partial``). A non-finite loss, ELBO or gradient is found from the finite counts of
    :class:`EpochSums`, which name its batch (``bad``): with ``check_every_batch`` (default: on a
    CPU, where reading a value is free) that model leaves the epoch at once, the others go on;
    otherwise (default on a GPU, where it would cost a host synchronisation per batch) it is found
    at the epoch's end.

    Under DDP (one model; ``ctx`` active, ``ddp`` the wrapped objective from
    :func:`sigmavae.data_parallel.wrap`) each rank takes its slice of every global batch; each
    batch's statistics, its smallest σ² and the stop flag are all-reduced, so the running sums
    (and the decisions to stop) are the same on every rank. That costs one host synchronisation
    per batch on a GPU, to read the stop flag.
    """
    x = states[0].x
    for state in states:
        state.model.train()
    start = time.perf_counter()
    orders, sums, spent = [], [], []
    for state in states:
        resume = state.partial
        if resume is None:
            orders.append(torch.randperm(len(x), generator=state.shuffle))
            sums.append(EpochSums.zeros(x.device))
            spent.append(0.0)
        else:
            orders.append(resume["order"])
            sums.append(EpochSums.from_dict(resume["sums"], x.device))
            spent.append(resume["seconds"])
    first = states[0].partial["batch"] if states[0].partial else 0
    batches = [order.to(x.device).split(configs[0].batch_size) for order in orders]
    n_batches = len(batches[0])
    params = [list(state.model.parameters()) for state in states]
    if check_every_batch is None:
        check_every_batch = x.device.type == "cpu"
    active = list(range(len(states)))  # models still in this epoch (a diverged one leaves)
    done = [first] * len(states)
    stopped = False
    for i in tqdm(range(first, n_batches), desc=desc, disable=not progress, leave=False,
                  initial=first, total=n_batches):
        models = [states[k].model for k in active]
        idx = [batches[k][i] for k in active]
        if ddp is None:
            noise = [draw_noise(configs[k], len(j), states[k].model.latent_dim, states[k].noise, x.device)
                     for k, j in zip(active, idx, strict=True)]
            losses, terms = group_step(models, [configs[k] for k in active], [as_float(x[j]) for j in idx],
                                       noise)
        else:
            local, shard = Shard.of(idx[0], ctx)
            idx = [local]  # this rank's images: its statistics are summed over the ranks below
            noise = draw_noise(configs[0], len(local), models[0].latent_dim, states[0].noise, x.device)
            loss, t = ddp(as_float(x[local]), shard.sizes, noise)
            losses, terms = [loss], [t]
        for model, t in zip(models, terms, strict=True):
            if t.sigma2_star is not None:  # §3.3's closed-form step: σ² ← this batch's Eq. 10 optimum
                model.set_sigma2(t.sigma2_star)
        for k in active:
            states[k].optimizer.zero_grad(set_to_none=True)
        (losses[0] if len(losses) == 1 else torch.stack(losses).sum()).backward()  # independent losses
        with torch.no_grad():  # Σ|g| is non-finite iff a gradient is (short of 3e38); the squares
            # of a 2-norm overflow from |g| ~ 1e19, and an ∞-norm is 3× slower on a CPU
            grads = [torch.stack(torch._foreach_norm([p.grad for p in params[k] if p.grad is not None],
                                                     1)).sum() for k in active]
        for k in active:
            states[k].optimizer.step()
        with torch.no_grad():
            stopped = bool(stop)
            for k, j, loss, t, grad in zip(active, idx, losses, terms, grads, strict=True):
                n, var = len(j), t.log_var.exp()
                if ddp is None:
                    sums[k].add(torch.stack([loss * n, t.elbo.sum(), t.recon.sum(), t.kl.sum(),
                                             var.mean() * n, grad]))
                    sums[k].sigma2_min = torch.minimum(sums[k].sigma2_min, var.min())
                else:  # the global batch's sums: this rank's loss is N/B·Σ_shard (Shard.mean), so ·B/N
                    part = torch.stack([loss * (shard.global_size / ctx.world_size), t.elbo.sum(),
                                        t.recon.sum(), t.kl.sum(), var.mean() * n, grad])
                    low = torch.stack([var.min().float(), torch.tensor(-float(stopped), device=x.device)])
                    sums[k].add(all_sum(part, ctx))
                    all_min(low, ctx)
                    sums[k].sigma2_min = torch.minimum(sums[k].sigma2_min, low[0])
                    stopped = bool(low[1] < 0)  # a signal on any rank stops every rank after this batch
                sums[k].count_finite()
                done[k] = i + 1
        if check_every_batch:
            active = [k for k in active if math.isfinite(float(sums[k].loss + sums[k].elbo + sums[k].grad))]
        if stopped or not active:
            break
    seconds = time.perf_counter() - start
    return [_stats(sums[k], done[k], n_batches, len(x), spent[k] + seconds, orders[k])
            for k in range(len(states))]


def _stats(sums: EpochSums, done: int, n_batches: int, n: int, seconds: float, order) -> EpochStats:
    """The epoch's means from its sums; ``bad`` from the finite counts, ``partial`` if it stopped
    early without diverging."""
    good, good_grad = int(sums.good), int(sums.good_grad)
    bad = None
    if min(good, good_grad) < done:  # counted from the epoch's start, so they name the batch
        bad = (min(good, good_grad) + 1, n_batches, "loss or ELBO" if good <= good_grad else "gradient")
    stats = EpochStats(float(sums.loss) / n, float(sums.elbo) / n, float(sums.recon) / n, float(sums.kl) / n,
                       float(sums.sigma2) / n, float(sums.sigma2_min), seconds, bad)
    if done < n_batches and bad is None:  # (under DDP the sums are every rank's: rank 0 saves them)
        stats.partial = {"order": order, "batch": done, "sums": sums.to_dict(), "seconds": stats.seconds}
    return stats


def group_step(models: list[VAE], configs: list[TrainConfig], xs: list[torch.Tensor],
               noise: list[tuple]) -> tuple[list[torch.Tensor], list]:
    """Each model's objective on its own batch with its own noise: ([loss], [ElboTerms]).

    One model: its objective, called as it is. Several: one set of kernels for all of them,
    :func:`torch.func.vmap` over :func:`torch.func.functional_call` of the first model with every
    model's parameters and buffers stacked (the floors among the buffers), the networks' batched
    convolutions and products. ``torch.stack`` of each model's own parameters carries each one's
    gradient back to it, so each model keeps its own Adam: mathematically each model's step alone.
    """
    if len(models) == 1:
        loss, t = OBJECTIVES[configs[0].method](models[0], xs[0], configs[0], noise=noise[0])
        return [loss], [t]
    base = models[0]
    stacked = {name: torch.stack([m.get_parameter(name) for m in models])
               for name, _ in base.named_parameters()}
    stacked |= {name: torch.stack([m.get_buffer(name) for m in models]) for name, _ in base.named_buffers()}
    step = data_parallel.Objective(base, configs[0], ONE_PROCESS)  # β, σ² update, λ: shared by the group

    def one(tensors, x, eps):
        named = {f"model.{k}": v for k, v in tensors.items()}
        loss, t = torch.func.functional_call(step, named, (x, (), eps))
        return loss, t._replace(sigma2_star=loss.new_zeros(()) if t.sigma2_star is None else t.sigma2_star)

    loss, t = torch.func.vmap(one, randomness="error")(stacked, torch.stack(xs),
                                                      tuple(torch.stack(d) for d in zip(*noise, strict=True)))
    closed = base.variance == "global" and configs[0].sigma_update == "closed_form"  # as elbo_loss
    closed = t.sigma2_star if closed else None
    terms = [t._replace(**{f: getattr(t, f)[k] for f in t._fields if f != "sigma2_star"},
                        sigma2_star=None if closed is None else closed[k]) for k in range(len(models))]
    return list(loss.unbind()), terms
