"""Algorithm 1: two-stage training of a VAE whose decoder variance is learned.

Stage 1 maximises Eq. 9 in θ, φ and the global σ (initialised at 1). When it has run
``epochs1`` epochs *and* the epoch-to-epoch ELBO change is below ε₁, σ² is frozen as σ²_dataset.
Stage 2 adds the pixel-wise variance network, σ²_k(z) = v_k(z) + ½σ²_dataset, and maximises the
ELBO with Eq. 11 in θ, φ (variance network included) for ``epochs2`` epochs and until δ < ε₂.
:func:`train` is that box, line by line; :func:`run_epoch` is one pass over the data.

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
(:func:`sigmavae.reproduce.train_concurrently`).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from collections.abc import Callable
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
    per-epoch history (:meth:`EpochStats.history_entry` plus ``stage`` and ``epoch``; with
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
            _end_stage_1(state, config, ctx)  # σ² frozen as σ²_dataset (Eq. 10 over the data, if used)
            if on_stage_1 is not None and ctx.main:
                on_stage_1(state.model, state.history)
            state.model.start_pixel_variance(config.variance_floor)  # σ²_k(z) = v_k(z) + ½σ²_dataset
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
    "ours, dataset σ²" is "ours, pixel σ²" before stage 2. None where there is no stage 2."""
    return dataclasses.replace(config, epochs2=0) if len(stages(config)) == 2 else None


def model_name(config: TrainConfig) -> str:
    """A model in words, for progress lines and errors: dataset, method, seed (and a fixed σ²)."""
    return (f"{config.dataset} {config.method} seed {config.seed}"
            + (f" σ² {config.sigma2:g}" if config.method == "fixed" else ""))


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
    """One pass over a permutation of ``x`` drawn from ``shuffle``, one Adam step per batch of the
    method's objective (:data:`sigmavae.objectives.OBJECTIVES`), ε drawn from ``noise`` (default:
    a generator where torch's global stream stands).

    Where the objective evaluated the likelihood at Eq. 10's σ²_* (``sigma_update="closed_form"``),
    the step stores it in the model: objectives never write the model. It stops after the current
    batch once a signal has landed in ``stop`` (the stats' ``partial`` is then set; ``resume``
    continues such an epoch). A non-finite loss, ELBO or gradient is found from the finite counts of
    :class:`EpochSums`, which name its batch (``bad``): with ``check_every_batch`` (default: on a
    CPU, where reading a value is free) the epoch stops at once; otherwise (default on a GPU, where
    it would cost a host synchronisation per batch) it is found at the epoch's end.

    Under DDP (``ctx`` active, ``ddp`` the wrapped objective from
    :func:`sigmavae.data_parallel.wrap`) each rank takes its slice of every global batch; each
    batch's statistics, its smallest σ² and the stop flag are all-reduced, so the running sums
    (and the decisions to stop) are the same on every rank. That costs one host synchronisation
    per batch on a GPU, to read the stop flag.
    """
    noise = noise if noise is not None else noise_generator(x.device)
    model.train()
    start = time.perf_counter()
    if resume is None:
        order, spent, first = torch.randperm(len(x), generator=shuffle), 0.0, 0
        sums = EpochSums.zeros(x.device)
    else:
        order, spent, first = resume["order"], resume["seconds"], resume["batch"]
        sums = EpochSums.from_dict(resume["sums"], x.device)
    batches = order.to(x.device).split(config.batch_size)
    params = list(model.parameters())
    if check_every_batch is None:
        check_every_batch = x.device.type == "cpu"
    done = first
    for i in tqdm(range(first, len(batches)), desc=desc, disable=not progress, leave=False,
                  initial=first, total=len(batches)):
        if ddp is None:
            idx = batches[i]
            eps = draw_noise(config, len(idx), model.latent_dim, noise, x.device)
            loss, t = OBJECTIVES[config.method](model, as_float(x[idx]), config, noise=eps)
        else:  # this rank's images: its statistics are summed over the ranks below
            idx, shard = Shard.of(batches[i], ctx)
            eps = draw_noise(config, len(idx), model.latent_dim, noise, x.device)
            loss, t = ddp(as_float(x[idx]), shard.sizes, eps)
        if t.sigma2_star is not None:  # §3.3's closed-form step: σ² ← this batch's Eq. 10 optimum
            model.set_sigma2(t.sigma2_star)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # Σ|g| is non-finite iff a gradient is (short of 3e38); the squares
            # of a 2-norm overflow from |g| ~ 1e19, and an ∞-norm is 3× slower on a CPU
            grad = torch.stack(torch._foreach_norm([p.grad for p in params if p.grad is not None], 1)).sum()
        optimizer.step()
        with torch.no_grad():
            stopped = _add_batch(sums, loss, t, grad, len(idx), stop, ctx, None if ddp is None else shard)
        done = i + 1
        if check_every_batch and not math.isfinite(float(sums.loss + sums.elbo + sums.grad)):
            break
        if stopped:
            break
    return _stats(sums, done, len(batches), len(x), spent + time.perf_counter() - start, order)


def _add_batch(sums: EpochSums, loss, t, grad, n: int, stop, ctx: Context, shard: Shard | None) -> bool:
    """Add a batch's statistics to ``sums``; whether a signal stops the epoch after it. Under DDP
    (``shard``) the global batch's sums: this rank's loss is N/B·Σ_shard (Shard.mean), so ·B/N."""
    var = t.log_var.exp()
    stopped = bool(stop)
    if shard is None:
        sums.add(torch.stack([loss * n, t.elbo.sum(), t.recon.sum(), t.kl.sum(), var.mean() * n, grad]))
        sums.sigma2_min = torch.minimum(sums.sigma2_min, var.min())
    else:
        part = torch.stack([loss * (shard.global_size / ctx.world_size), t.elbo.sum(), t.recon.sum(),
                            t.kl.sum(), var.mean() * n, grad])
        low = torch.stack([var.min().float(), torch.tensor(-float(stopped), device=var.device)])
        sums.add(all_sum(part, ctx))
        all_min(low, ctx)
        sums.sigma2_min = torch.minimum(sums.sigma2_min, low[0])
        stopped = bool(low[1] < 0)  # a signal on any rank stops every rank after this batch
    sums.count_finite()
    return stopped


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
