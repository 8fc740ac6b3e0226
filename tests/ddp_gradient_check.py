"""Run by tests/test_distributed.py under torchrun (2 ranks, gloo): one step's gradient on the
ranks' shards (DDP-averaged) equals the gradient of the global batch in one process, given the same
noise, for every kind of batch statistic: Eq. 10's σ²_* (closed form), DIP-VAE's covariance and
WAE's MMD; with shards of unequal size (13 images: 7 and 6). Prints one JSON line per method."""

import json

import torch
from torch import nn

import sigmavae.objectives as objectives
from sigmavae import distributed
from sigmavae.config import TrainConfig
from sigmavae.data import load_dataset
from sigmavae.data_parallel import Objective
from sigmavae.models import VAE

torch.set_num_threads(1)
ctx, _ = distributed.setup("cpu")
x = load_dataset("synthetic", "train")[:13].float()
CASES = {"sigma-closed_form": dict(method="sigma", sigma_update="closed_form"), "sigma": dict(method="sigma"),
         "dip-vae-ii": dict(method="dip-vae", dip_type="ii"), "wae": dict(method="wae")}


def noise_from(draws, rows):
    """randn_like that hands out the given full-batch draws, sliced to ``rows``, in order."""
    queue = list(draws)
    return lambda t: queue.pop(0)[rows].to(t.dtype)


for name, options in CASES.items():
    config = TrainConfig(dataset="synthetic", latent_dim=2, batch_size=13, **options)
    g = torch.Generator().manual_seed(1)
    draws = [torch.randn(13, 2, generator=g) for _ in range(2)]  # ε, then WAE's prior sample
    original = torch.randn_like

    torch.manual_seed(config.seed)
    model = VAE.from_config(config)  # one process, the whole batch
    torch.randn_like = noise_from(draws, slice(None))
    loss, _ = objectives.OBJECTIVES[config.method](model, x, config)
    loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(config.seed)
    model = VAE.from_config(config)  # two ranks, 7 + 6 images
    if config.sigma_update == "closed_form":
        model.sigma.requires_grad_(False)
    model.variance_net.requires_grad_(False)
    ddp = nn.parallel.DistributedDataParallel(Objective(model, config, ctx))
    idx, shard = distributed.Shard.of(torch.arange(13), ctx)
    torch.randn_like = noise_from(draws, idx)
    part, _ = ddp(x[idx], shard.sizes)
    part.backward()
    torch.randn_like = original
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    logged = distributed.all_sum(part.detach() * (shard.global_size / ctx.world_size), ctx) / 13
    worst = max(float((got[n] - w).abs().max() / w.abs().max().clamp_min(1e-12)) for n, w in want.items())
    if ctx.rank == 0:
        print(json.dumps({"case": name, "same_params": sorted(got) == sorted(want), "worst_rel": worst,
                          "loss": float(loss.detach()), "loss_ddp": float(logged)}), flush=True)
distributed.teardown()
