"""Algorithm 1: two-stage training of a VAE whose decoder variance is learned.

Stage 1 maximises Eq. 9 in θ, φ and the global σ (initialised at 1). When it has run
``epochs1`` epochs *and* the epoch-to-epoch ELBO change is below ε₁, σ² is frozen as σ²_dataset.
Stage 2 adds the pixel-wise variance network, σ²_k(z) = v_k(z) + ½σ²_dataset, and maximises the
ELBO with Eq. 11 in θ, φ (variance network included) for ``epochs2`` epochs and until δ < ε₂.

(Algorithm 1 prints the loop conditions as ``e < n or δ_ELBO < ε``; continuing *while* the ELBO
barely changes contradicts "set stopping condition", so we read them as ``e < n or δ ≥ ε``.)

``method="fixed"`` is the baseline: one stage, σ² held at ``sigma2`` for epochs1 + epochs2 epochs
(VAE: σ² = 0.5, β-VAE: σ² = 1, as the paper frames them), the same total as ours.

Defaults are appendix B.1's table: batch 256, latent 16, 16 + 14 epochs, Adam, lr 5e-4.
The whole dataset sits on the device as one tensor; batches are slices of a seeded permutation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__
from .data import DATASETS, load_dataset
from .models import VAE
from .objectives import elbo_loss

METHODS = ("sigma", "fixed")
SIGMA_UPDATES = ("sigma", "log_sigma", "closed_form")


@dataclass
class TrainConfig:
    """Everything that determines a trained model. Saved as ``config.json`` beside the weights."""

    dataset: str = "mnist"
    method: str = "sigma"  # "sigma": Algorithm 1; "fixed": σ² held at `sigma2`
    sigma2: float = 0.5  # σ² of method "fixed" (VAE 0.5, β-VAE 1); "sigma" starts at 1 (Alg. 1)
    sigma_update: str = "sigma"  # stage 1: Adam on σ (Alg. 1), Adam on log σ, or Eq. 10 per batch
    latent_dim: int = 16  # appendix B.1 table: code size 16
    epochs1: int = 16  # appendix B.1 table: stage 1, 16 epochs
    epochs2: int = 14  # appendix B.1 table: stage 2, 14 epochs (0 = stop after stage 1)
    eps1: float | None = None  # ε₁ on δ_ELBO (nats); None = stop after exactly epochs1
    eps2: float | None = None  # ε₂; None = stop after exactly epochs2
    max_extra_epochs: int = 10  # cap on epochs added by ε₁/ε₂ beyond epochs1/epochs2
    variance_floor: float = 0.5  # Algorithm 1: floor = ½ σ²_dataset; 0 disables it
    batch_size: int = 256  # appendix B.1 table
    lr: float = 5e-4  # appendix B.1 table, Adam
    seed: int = 0

    def __post_init__(self):
        problems = []
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


def build_model(config: TrainConfig, channels: int = 1) -> VAE:
    torch.manual_seed(config.seed)
    param = "log_sigma" if config.sigma_update == "log_sigma" else "sigma"
    if config.method == "sigma":  # Algorithm 1: σ ← 1
        return VAE(config.latent_dim, channels, variance="global", sigma2=1.0, sigma_param=param)
    return VAE(config.latent_dim, channels, variance="fixed", sigma2=config.sigma2)


def train(config: TrainConfig, device: str | torch.device = "auto", out_dir: str | Path | None = None,
          data: torch.Tensor | None = None, data_root: str | Path | None = None,
          progress: bool = True) -> tuple[VAE, list[dict]]:
    """Train per Algorithm 1 (or the fixed-σ² baseline); save to ``out_dir`` when given.

    ``data`` overrides loading ``config.dataset``'s training split (it must be [N, C, 28, 28]).
    Returns the model (in eval mode) and the per-epoch history.
    """
    x = data if data is not None else load_dataset(config.dataset, "train", data_root)
    model, x = place(build_model(config, channels=x.shape[1]), x, device)
    # One Adam over every parameter: the variance network's get no gradient (so no update and no
    # Adam state) until stage 2, and θ, φ keep their Adam moments across the stage switch.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if config.sigma_update == "closed_form":
        model.sigma.requires_grad_(False)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []

    if config.method == "sigma":
        _run_stage(model, optimizer, x, config, 1, config.epochs1, config.eps1, shuffle, history,
                   progress)
        if config.epochs2 > 0:
            model.start_pixel_variance(config.variance_floor)  # σ²_dataset frozen here
            _run_stage(model, optimizer, x, config, 2, config.epochs2, config.eps2, shuffle,
                       history, progress)
    else:
        _run_stage(model, optimizer, x, config, 1, config.epochs1 + config.epochs2, None, shuffle,
                   history, progress)
    model.eval()
    if out_dir is not None:
        save_run(out_dir, model, config, history)
    return model, history


def _run_stage(model, optimizer, x, config, stage, n_epochs, eps, shuffle, history, progress):
    """Epochs until ``n_epochs`` are done and δ_ELBO < ε (at most ``max_extra_epochs`` more)."""
    previous = history[-1]["elbo"] if history else -math.inf
    e = 0
    while True:
        stats = _epoch(model, optimizer, x, config, shuffle, progress,
                       desc=f"stage {stage} epoch {e + 1}/{n_epochs}")
        stats.update(stage=stage, epoch=len(history) + 1)
        history.append(stats)
        if not math.isfinite(stats["elbo"]):
            raise FloatingPointError(
                f"training diverged: non-finite ELBO in epoch {stats['epoch']} (stage {stage}); "
                f"history so far: {[round(h['elbo'], 1) for h in history]}")
        e += 1
        delta, previous = stats["elbo"] - previous, stats["elbo"]
        if e >= n_epochs and (eps is None or delta < eps or e >= n_epochs + config.max_extra_epochs):
            return


def _epoch(model, optimizer, x, config, shuffle, progress, desc) -> dict:
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=shuffle).to(x.device)
    batches = order.split(config.batch_size)
    # Sums stay on the device: no host synchronisation inside the step.
    sums = torch.zeros(5, device=x.device)  # elbo, recon, kl, mean σ², min σ² (running min)
    sums[4] = math.inf
    for idx in tqdm(batches, desc=desc, disable=not progress, leave=False):
        loss, t = elbo_loss(model, x[idx], config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            n = len(idx)
            var = t.log_var.exp()
            sums[:4] += torch.stack([t.elbo.sum(), t.recon.sum(), t.kl.sum(), var.mean() * n])
            sums[4] = torch.minimum(sums[4], var.min())
    elbo, recon, kl, var_sum, var_min = sums.tolist()
    n = len(x)
    return {"elbo": elbo / n, "recon": recon / n, "kl": kl / n, "sigma2": var_sum / n,
            "sigma2_min": var_min, "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- run directories

def save_run(out_dir: str | Path, model: VAE, config: TrainConfig, history: list[dict]) -> Path:
    """Write ``config.json``, ``history.json`` and ``model.pt``: the directory reloads alone."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps({**dataclasses.asdict(config), "version": __version__}, indent=2) + "\n")
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    torch.save({"state_dict": model.state_dict(), "variance": model.variance,
                "floor": model.floor, "sigma_param": model.sigma_param,
                "channels": model.encoder.conv[0].in_channels}, out / "model.pt")
    return out


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig, history) of a directory written by :func:`save_run`."""
    run = Path(run_dir)
    missing = [f for f in ("config.json", "history.json", "model.pt") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run} is not a sigmavae run directory: missing {', '.join(missing)}"
                                " (create one with `sigmavae train ... --out DIR`)")
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    history = json.loads((run / "history.json").read_text())
    ckpt = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    model = VAE(config.latent_dim, ckpt["channels"], variance=ckpt["variance"],
                floor=ckpt["floor"], sigma_param=ckpt["sigma_param"])
    model.load_state_dict(ckpt["state_dict"])
    model = model.to(resolve_device(device), memory_format=torch.channels_last)  # as trained
    return model.eval(), config, history
