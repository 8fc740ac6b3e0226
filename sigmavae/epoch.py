"""One epoch of training: a pass over a seeded permutation of the data, one Adam step per batch
of the method's objective, and the epoch's statistics (:class:`EpochStats`) kept on the device.

:func:`run_epoch` is what :func:`sigmavae.training.train` calls for every epoch of Algorithm 1's
two stages. It also guards against divergence (a non-finite loss, ELBO or gradient names its
batch), stops cleanly on a signal (what is needed to finish the epoch exactly is returned), and
under torchrun takes this rank's slice of every batch (:mod:`sigmavae.data_parallel`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm  # text bars in terminals; notebooks get plain lines (train), no widget

from .config import TrainConfig
from .data import as_float
from .distributed import ONE_PROCESS, Context, Shard, all_min, all_sum
from .models import VAE
from .objectives import OBJECTIVES, draw_noise


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
