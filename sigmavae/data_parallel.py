"""Algorithm 1 on several ranks (``torchrun``): what :func:`sigmavae.training.train` adds to one
process's loop, and nothing it needs without torchrun.

- :func:`check_ranks`: what N ranks cannot do, refused on every rank alike before any compute;
- :func:`seed_rank`: each rank's own stream for ε (and WAE's prior draws) after the weights;
- :func:`sync_batch_norm`: B.2's batch norm over the global batch, as one process normalises it;
- :func:`wrap`: the method's objective in DistributedDataParallel, per stage;
- :func:`checkpoint`: rank 0 writes the checkpoint with every rank's random streams.

The reductions that keep one process's mathematics (the global batch's mean loss, Eq. 10's σ²_*,
DIP-VAE's covariance, WAE's MMD, the epoch statistics) are :mod:`sigmavae.distributed`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .config import TrainConfig
from .distributed import Context, Shard, gather_objects
from .models import VAE
from .objectives import OBJECTIVES
from .runs import TrainState, random_states, save_checkpoint

# Rank r > 0 reseeds torch's generator with seed + r·stride after the weights are drawn.
RANK_SEED_STRIDE = 1_000_003


def check_ranks(ctx: Context, config: TrainConfig, n_images: int, out: Path | None, ckpt) -> None:
    """Refuse, on every rank alike, what N ranks cannot do: a global batch (the last one included)
    with fewer images than ranks, and ranks that see different checkpoints (several machines whose
    ``--out`` is not one shared directory)."""
    if not ctx.active:
        return
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


def seed_rank(config: TrainConfig, ctx: Context) -> None:
    """Each rank draws its own ε (and WAE prior samples) for its own images; rank 0 keeps the
    one-process stream. The weights were drawn before, from ``config.seed``, on every rank alike;
    the noise generator starts where this leaves torch's stream (:func:`sigmavae.training.train`)."""
    if ctx.active and ctx.rank > 0:
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * ctx.rank)


def sync_batch_norm(model: VAE, ctx: Context) -> VAE:
    """B.2's batch norm over the global batch (SyncBatchNorm), as one process normalises it. Torch
    synchronises batch norm on GPUs only: on CPU each rank normalises over its own shard."""
    if not ctx.active or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    if next(model.parameters()).device.type != "cuda":
        print("sigmavae train: warning: on CPU batch norm (CelebA, appendix B.2) normalises each rank's "
              "shard, not the global batch (torch's SyncBatchNorm needs GPUs)", file=sys.stderr)
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class Objective(nn.Module):
    """The method's objective as a module's forward (VAE has encode/decode, no forward): what
    DistributedDataParallel synchronises the backward of. The config and
    the rank are attributes, not arguments: DDP copies its arguments to the device, rebuilding
    dataclasses on the way; a tuple of shard sizes passes through as it is."""

    def __init__(self, model: VAE, config: TrainConfig, ctx: Context):
        super().__init__()
        self.model, self.config, self.ctx = model, config, ctx

    def forward(self, x: torch.Tensor, sizes: tuple[int, ...], noise: tuple[torch.Tensor, ...] | None = None):
        return OBJECTIVES[self.config.method](self.model, x, self.config, Shard(self.ctx, sizes), noise)


def wrap(model: VAE, config: TrainConfig, ctx: Context):
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
        Objective(model, config, ctx), device_ids=[device.index] if device.type == "cuda" else None)


def checkpoint(ctx: Context, out: Path, state: TrainState, config: TrainConfig,
               partial: dict | None = None) -> None:
    """:func:`sigmavae.runs.save_checkpoint`, by rank 0 with every rank's random streams under
    torchrun (each draws its own ε), then a barrier: no rank goes on (or exits) before the
    checkpoint is on disk."""
    if not ctx.active:
        save_checkpoint(out, state, config, partial)
        return
    rngs = gather_objects(random_states(state), ctx)
    if ctx.main:
        save_checkpoint(out, state, config, partial, world_size=ctx.world_size, rng_ranks=rngs)
    distributed.barrier(ctx)
