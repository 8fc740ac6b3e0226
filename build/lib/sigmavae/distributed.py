"""Data-parallel training across processes (``torchrun``): the process group, this process's rank,
and the reductions that keep the mathematics of one process.

``torchrun --nproc_per_node N -m sigmavae.cli train ...`` starts N processes that each run
:func:`sigmavae.training.train`. Each keeps the whole training set in memory, draws the same seeded
permutation, and takes its slice of every global batch (:meth:`Shard.of`): the global batch stays
``config.batch_size``. What is a mean over the global batch or the dataset is reduced across ranks:

- the loss: each rank's per-image mean is rescaled (:meth:`Shard.mean`) so that DDP's gradient
  average is the gradient of the global batch's mean loss;
- Eq. 10's σ²_* of a batch (``sigma_update="closed_form"``): the global batch's mean squared error
  (:meth:`Shard.global_mean`); σ²_dataset at the stage switch: every rank decodes its share of the
  training set and the sums are all-reduced (:func:`sigmavae.training.dataset_sigma2`);
- DIP-VAE's covariance and WAE's MMD: computed from the global batch's μ, σ and z, gathered with
  their gradient (:meth:`Shard.gather`), so both are exactly the one-process statistics;
- the epoch statistics (ELBO, loss, σ²), the finite flags and the stop flag: all-reduced every batch,
  so every rank takes the same decision (Algorithm 1's δ_ELBO rule, a non-finite loss, a signal).

One process (no ``torchrun``) never touches :mod:`torch.distributed`: :data:`LOCAL` computes exactly
what the loop computed before DDP existed, bit for bit.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# How long a rank waits in a collective for the others: a rank that died (killed, machine lost)
# makes the survivors fail after this instead of hanging forever. torchrun usually tears them
# down sooner; this is the backstop, e.g. for several machines.
TIMEOUT_S = float(os.environ.get("SIGMAVAE_DDP_TIMEOUT", 300))


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


ONE_PROCESS = Context()


def launched() -> bool:
    """Started by torchrun (or any launcher that sets the env:// variables) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | torch.device = "auto") -> tuple[Context, str | torch.device]:
    """Join the process group torchrun describes (env://) and pick this rank's device: on CUDA
    ``cuda:LOCAL_RANK`` with nccl, on CPU gloo. Without torchrun: one process, the device as given.

    Idempotent: a second call (several ``train`` calls in one process) reuses the group."""
    if not launched():
        return ONE_PROCESS, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = torch.device("cuda" if torch.cuda.is_available() else "cpu") if str(device) == "auto" \
        else torch.device(device)
    if kind.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} "
                             "CUDA GPU(s): pass --nproc_per_node at most that number to torchrun")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif kind.type == "cpu":
        device, backend = torch.device("cpu"), "gloo"
    else:
        raise ValueError(f"device {device!r}: torchrun training runs on CUDA (nccl) or CPU (gloo)")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    return Context(dist.get_rank(), dist.get_world_size(), local_rank), device


# What torch's backends say when a peer is gone: gloo raises a plain RuntimeError from inside
# backward ("Connection reset by peer"), NCCL a DistBackendError, a timeout a DistError.
_LOST = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "timeout")


def lost_peer(err: BaseException) -> bool:
    """Is ``err`` a collective that failed because another rank died or stopped answering?"""
    if not launched() or not isinstance(err, RuntimeError):
        return False
    return isinstance(err, dist.DistError) or any(w in str(err).lower() for w in _LOST)


def teardown() -> None:
    """Leave the process group (at the end of ``sigmavae train`` under torchrun); else nothing."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Σ over ranks, in place (and returned); nothing in one process."""
    if ctx.active:
        dist.all_reduce(t, dist.ReduceOp.SUM)
    return t


def all_min(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Elementwise minimum over ranks, in place (and returned); nothing in one process."""
    if ctx.active:
        dist.all_reduce(t, dist.ReduceOp.MIN)
    return t


def any_rank(flag: bool, ctx: Context) -> bool:
    """True on every rank when it is true on any: decisions that must not split the ranks."""
    if not ctx.active:
        return flag
    t = torch.tensor([float(flag)], device=_collective_device())
    dist.all_reduce(t, dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj, ctx: Context) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process."""
    if not ctx.active:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 with a gradient: forward concatenates every rank's rows (``sizes[r]``
    of them, padded to the largest for the collective); backward sums the incoming gradients of all
    ranks (each computed the same global statistic from the gathered rows) and keeps this rank's
    rows. With DDP's 1/N average this gives exactly the gradient of the global statistic."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, sizes: tuple[int, ...], rank: int) -> torch.Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        pad = max(sizes) - len(t)
        padded = torch.cat([t, t.new_zeros(pad, *t.shape[1:])]) if pad else t.contiguous()
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None, None


@dataclass(frozen=True)
class Shard:
    """This rank's part of one global batch, and the batch-level reductions the objectives need
    (:mod:`sigmavae.objectives`). :data:`LOCAL` is the one-process case: the shard is the batch."""

    ctx: Context = ONE_PROCESS
    sizes: tuple[int, ...] = ()  # rows of the global batch on each rank

    @classmethod
    def of(cls, batch: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, Shard]:
        """This rank's slice of the global batch ``batch`` (indices), and the Shard describing it.
        Sizes differ by at most one (``tensor_split``)."""
        if not ctx.active:
            return batch, LOCAL
        parts = batch.tensor_split(ctx.world_size)
        return parts[ctx.rank], cls(ctx, tuple(len(p) for p in parts))

    @property
    def global_size(self) -> int:
        return sum(self.sizes)

    def mean(self, per_image: torch.Tensor) -> torch.Tensor:
        """The global batch mean of a per-image quantity, as this rank's loss term: Σ_rank / B · N.
        DDP averages the N ranks' gradients, so the result is the gradient of Σ_all / B, the
        global mean, whatever the shard sizes. One process: ``per_image.mean()``."""
        if not self.ctx.active:
            return per_image.mean()
        return per_image.sum() * (self.ctx.world_size / self.global_size)

    def global_mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the global batch (all elements; no gradient): Eq. 10's σ²_*.
        One process: ``values.mean()``."""
        if not self.ctx.active:
            return values.mean()
        total = torch.stack([values.detach().double().sum(),
                             torch.tensor(values.numel(), dtype=torch.float64, device=values.device)])
        dist.all_reduce(total, dist.ReduceOp.SUM)
        return (total[0] / total[1]).to(values.dtype)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """The global batch's rows (μ, σ, z, ...) in rank order, differentiable: DIP-VAE's
        covariance and WAE's MMD over the global batch. One process: ``rows`` itself."""
        if not self.ctx.active:
            return rows
        return _Gather.apply(rows, self.sizes, self.ctx.rank)


LOCAL = Shard()
