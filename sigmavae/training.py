"""Algorithm 1: two-stage training of a VAE whose decoder variance is learned.

Stage 1 maximises Eq. 9 in θ, φ and the global σ (initialised at 1). When it has run
``epochs1`` epochs *and* the epoch-to-epoch ELBO change is below ε₁, σ² is frozen as σ²_dataset.
Stage 2 adds the pixel-wise variance network, σ²_k(z) = v_k(z) + ½σ²_dataset, and maximises the
ELBO with Eq. 11 in θ, φ (variance network included) for ``epochs2`` epochs and until δ < ε₂.
:func:`train` is that box, line by line; one pass over the data is
:func:`sigmavae.epoch.run_epoch`.

(Algorithm 1 prints the loop conditions as ``e < n or δ_ELBO < ε``; continuing *while* the ELBO
barely changes contradicts "set stopping condition", so we read them as ``e < n or δ ≥ ε``.)

With ``sigma_update="closed_form"`` stage 1 evaluates each batch at that batch's Eq. 10 σ²_*, which
varies by ~10% from batch to batch; σ²_dataset is then frozen from one Eq. 10 pass over the whole
training set (:func:`dataset_sigma2`), not taken from the last batch.

Every other method (``fixed``, ``vae``, ``beta-vae``, ``dip-vae``, ``wae``; their objectives are in
:mod:`sigmavae.objectives`) trains one stage of epochs1 + epochs2 epochs, the same total as ours,
with the same networks and σ² held fixed (VAE 0.5, β-VAE 1, as the paper frames them).

The configuration is :class:`sigmavae.config.TrainConfig` (appendix B.1 / B.2 defaults); run
directories, checkpoints and signals are :mod:`sigmavae.runs`; what torchrun adds is
:mod:`sigmavae.data_parallel`; the networks' arithmetic (fp32, or bf16 where the hardware has it)
is :mod:`sigmavae.precision`. The whole dataset sits on the device as one tensor; batches are
slices of a seeded permutation. Several models train at once as separate processes
(:func:`sigmavae.cache.train_missing`, ``sigmavae reproduce --jobs``).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import data_parallel, distributed
from .config import TrainConfig
from .data import as_float, load_dataset
from .distributed import ONE_PROCESS, Context, all_sum, any_rank
from .epoch import noise_generator, run_epoch
from .likelihoods import optimal_sigma2
from .models import VAE
from .precision import resolve_precision
from .runs import (
    NonFiniteError,
    TrainingInterrupted,
    TrainState,
    checkpoint_partial,
    describe_checkpoint,
    finish_run,
    load_model,
    load_run,
    open_run,
    restore,
    run_precision,
    stop_on_signals,
)
from .runtime import DEFAULT_RUNTIME, Runtime, resolve_device

StageOneCallback = Callable[[VAE, list[dict]], None]


def train(config: TrainConfig, *, out_dir: str | Path | None = None, runtime: Runtime = DEFAULT_RUNTIME,
          data: torch.Tensor | None = None, resume: bool = False,
          on_stage_1: StageOneCallback | None = None) -> tuple[VAE, list[dict]]:
    """Train ``config`` per Algorithm 1 (or its one-stage baseline); save to ``out_dir`` if given.

    ``runtime`` gives the device, the precision (:mod:`sigmavae.precision`), where the data are
    (and whether they may be downloaded) and whether to report progress. ``data`` replaces
    ``config.dataset``'s training split ([N, C, H, W], float in [0, 1] or uint8; uint8 batches
    are converted on the device, 4× less memory). Returns the model (in eval mode) and the
    per-epoch history (:meth:`sigmavae.epoch.EpochStats.history_entry` plus ``stage`` and ``epoch``; with
    ``sigma_update="closed_form"`` the last stage-1 entry also holds ``sigma2_dataset``, from
    :func:`dataset_sigma2`, and ``sigma2_last_batch``). ``on_stage_1(model, history)`` is called
    at the stage switch, once σ²_dataset is frozen and before the variance network is added: the
    model of :func:`stage_1_config` (Table 3's "ours, dataset σ²"), bit for bit.

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
    """
    ctx, device = distributed.setup(runtime.device)
    precision = resolve_precision(runtime.precision, resolve_device(device))
    out = Path(out_dir) if out_dir is not None else None
    ckpt = open_run(out, config, resume, ctx, precision) if out is not None else None
    if ckpt == "complete":
        model, _, history = load_run(out, device)
        model.precision = run_precision(out)  # as it was trained
        return model, history
    if data is None:
        data = load_dataset(config.dataset, "train", runtime.data_root, runtime.download, dtype=torch.uint8)
    data_parallel.check_ranks(ctx, config, len(data), out, ckpt)
    state = _initial_state(config, data, device, ctx, precision, ckpt, out)
    loop = _Loop(state, config, out, ctx, report=runtime.progress and ctx.main,
                 saved=ckpt and describe_checkpoint(out, state.history, state.partial))
    (stage_1, epochs1, eps1), *second = stages(config)
    with stop_on_signals(enabled=out is not None) as loop.stop:
        # Stage 1, Eq. 9: θ, φ and the global σ from σ = 1 (the other methods: their objective)
        loop.run(stage_1, epochs1, eps1)
        if second and state.model.variance != "pixel":  # the switch (a resumed run may be past it)
            loop.stop_if_signalled()  # before it: a signal in stage 1's last batch resumes from here
            if epochs1 > 0:
                _end_stage_1(state, config, ctx)  # σ² frozen as σ²_dataset (Eq. 10 over the data, if used)
                if on_stage_1 is not None and ctx.main:
                    on_stage_1(state.model, state.history)
                state.model.start_pixel_variance(config.variance_floor)  # σ²_k(z) = v_k(z) + ½σ²_dataset
            else:  # Section 3.4's counterfactual: no stage 1, the variance network from its initialisation
                state.model.use_pixel_variance(config.variance_floor)
        for stage_2, epochs2, eps2 in second:
            # Stage 2, Eq. 11: θ, φ and the variance network, σ²_dataset frozen
            loop.run(stage_2, epochs2, eps2)
    if not second:
        _end_stage_1(state, config, ctx)  # a run that ends with stage 1 ends with σ²_dataset
    model = state.model.eval()
    if out is not None and ctx.main:
        finish_run(out, model, config, state.history, ctx.world_size)
    distributed.barrier(ctx)  # no rank reports success before the run directory is complete
    return model, state.history


def stage_1_config(config: TrainConfig) -> TrainConfig | None:
    """The stage-1-only run (``epochs2 = 0``) that ``config``'s training passes through at
    Algorithm 1's stage switch, bit for bit (stage 1 does not depend on ``epochs2``): Table 3's
    "ours, dataset σ²" is "ours, pixel σ²" before stage 2. None where there is no stage 2, or no
    stage 1 (``epochs1 = 0``)."""
    two_stages = len(stages(config)) == 2 and config.epochs1 > 0
    return dataclasses.replace(config, epochs2=0) if two_stages else None


UPDATES = {"sigma": "Adam on σ", "log_sigma": "Adam on log σ", "closed_form": "Eq. 10"}  # in words


def model_name(config: TrainConfig) -> str:
    """A model in words, for progress lines, plans and errors: dataset, method (ours with how σ is
    learned, a fixed σ² with its value), the code size and the seed."""
    how = {"sigma": f" by {UPDATES[config.sigma_update]}", "fixed": f" σ² {config.sigma2:g}"}
    how = how.get(config.method, "")
    if config.method == "sigma" and config.epochs1 == 0:
        how = " per-pixel σ² from the first epoch" + (", no floor" if config.variance_floor == 0 else "")
    return f"{config.dataset} {config.method}{how}, z {config.latent_dim}-d, seed {config.seed}"


@dataclass
class _Loop:
    """Algorithm 1's inner loop for one model: epochs of one stage until it is done, each saved to
    its checkpoint; ``saved`` names the last checkpoint (for errors), ``stop`` collects signals."""

    state: TrainState
    config: TrainConfig
    out: Path | None
    ctx: Context
    report: bool
    saved: str | None
    stop: list = dataclasses.field(default_factory=list)

    def run(self, stage: int, n_epochs: int, eps: float | None) -> None:
        """Epochs of ``stage`` until ``n_epochs`` are done and δ_ELBO < ``eps`` (:func:`_stage_done`)."""
        def done():
            return _stage_done(self.state.history, stage, n_epochs, eps, self.config.max_extra_epochs)

        ddp = None if done() else data_parallel.wrap(self.state.model, self.config, self.ctx)  # per stage
        while not done():
            self.stop_if_signalled()
            self.epoch(stage, n_epochs, ddp)

    def stop_if_signalled(self) -> None:
        """A signal between epochs (on any rank): the last checkpoint is where to resume."""
        if any_rank(bool(self.stop), self.ctx) and self.saved:
            raise TrainingInterrupted(self.stop[0] if self.stop else signal.SIGTERM, self.saved)

    def epoch(self, stage: int, n_epochs: int, ddp) -> None:
        """One epoch: its history entry, a progress line, its checkpoint. A non-finite batch raises
        before anything is written (the last good checkpoint stays); a signal saves the epoch so
        far and raises."""
        state, history, config, out = self.state, self.state.history, self.config, self.out
        e = sum(h["stage"] == stage for h in history) + 1
        where = f"epoch {len(history) + 1} (stage {stage}, epoch {e} of {n_epochs})"
        bars = self.report and sys.stderr.isatty()  # bars over batches in a terminal, else a line per epoch
        stats = run_epoch(state.model, state.optimizer, state.x, config, state.shuffle, noise=state.noise,
                          progress=bars, desc=f"stage {stage} epoch {e}/{n_epochs}", stop=self.stop,
                          resume=state.partial, ctx=self.ctx, ddp=ddp)
        if stats.bad is not None:
            raise NonFiniteError(where, *stats.bad, self.saved, out is not None)
        state.partial = stats.partial and {**stats.partial, "stage": stage}
        if state.partial is not None:  # a signal stopped it after batch partial["batch"]
            data_parallel.checkpoint(self.ctx, out, state, config, state.partial)
            raise TrainingInterrupted(self.stop[0] if self.stop else signal.SIGTERM,
                                      describe_checkpoint(out, history, state.partial))
        history.append({**stats.history_entry(), "stage": stage, "epoch": len(history) + 1})
        if self.report and not bars:  # a notebook or a log: one plain line per epoch
            planned = sum(n for _, n, _ in stages(config))
            left = max(planned - len(history), 0) * sum(h["seconds"] for h in history) / len(history)
            print(f"  {model_name(config)}: {where} done in {stats.seconds:.0f} s, train ELBO "
                  f"{stats.elbo:.1f}; about {left / 60:.1f} min left", flush=True)
        if out is not None:
            data_parallel.checkpoint(self.ctx, out, state, config)
            self.saved = describe_checkpoint(out, history)


def _initial_state(config: TrainConfig, data: torch.Tensor, device, ctx: Context, precision: str = "fp32",
                   ckpt: dict | None = None, out: Path | None = None) -> TrainState:
    """Algorithm 1's start: weights drawn from ``config.seed``, σ ← 1, one Adam over every
    parameter, the batch order seeded by ``config.seed``, the noise generator where the weights
    left the seeded stream; or, with ``ckpt``, where that checkpoint left them
    (:func:`sigmavae.runs.load_model`, :func:`sigmavae.runs.restore`). The model and the whole
    dataset go to the device once, both channels-last (on CPU oneDNN's convolutions of B.1 run
    ~17% faster in that layout, bench/train_speed.py); ``data`` already there is used as it is."""
    torch.manual_seed(config.seed)  # the weights; then ε and every other draw in training
    if ckpt is None:
        model = VAE.from_config(config)
    else:  # weights and variance mode as the checkpoint left them
        model = load_model(config, ckpt["history"], ckpt["model"], checkpoint_partial(ckpt))
    data_parallel.seed_rank(config, ctx)
    model, x = place(model, data, device)
    model.precision = precision
    model = data_parallel.sync_batch_norm(model, ctx)
    # The variance network's parameters get no gradient (so no update and no Adam state) until
    # stage 2, and θ, φ keep their Adam moments across the stage switch.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)
    state = TrainState(model, optimizer, shuffle, x, noise_generator(x.device))
    if ckpt is not None:
        restore(state, ckpt, ctx, out)
    return state


def place(model: VAE, x: torch.Tensor, device: str | torch.device = "auto") -> tuple[VAE, torch.Tensor]:
    """The model and the whole dataset on ``device``, both channels-last."""
    device = resolve_device(device)
    model = model.to(device, memory_format=torch.channels_last)
    return model, x.to(device).contiguous(memory_format=torch.channels_last)


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
