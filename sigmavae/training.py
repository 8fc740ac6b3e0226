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

import dataclasses
import json
import math
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
          download: bool | None = None, progress: bool = True) -> tuple[VAE, list[dict]]:
    """Train per Algorithm 1 (or the fixed-σ² baseline); save to ``out_dir`` when given.

    ``data`` overrides loading ``config.dataset``'s training split ([N, C, H, W], float in [0, 1]
    or uint8; uint8 batches are converted on the device, which keeps CelebA at 2.5 GB, not 10).
    Returns the model (in eval mode) and the per-epoch history.
    """
    if data is None:
        data = load_dataset(config.dataset, "train", data_root, download, dtype=torch.uint8)
    model, x = place(build_model(config), data, device)
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
    objective = OBJECTIVES[config.method]
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=shuffle).to(x.device)
    batches = order.split(config.batch_size)
    # Sums stay on the device: no host synchronisation inside the step.
    sums = torch.zeros(6, device=x.device)  # loss, elbo, recon, kl, mean σ², min σ² (running min)
    sums[5] = math.inf
    for idx in tqdm(batches, desc=desc, disable=not progress, leave=False):
        loss, t = objective(model, as_float(x[idx]), config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            n = len(idx)
            var = t.log_var.exp()
            sums[:5] += torch.stack([loss * n, t.elbo.sum(), t.recon.sum(), t.kl.sum(), var.mean() * n])
            sums[5] = torch.minimum(sums[5], var.min())
    loss, elbo, recon, kl, var_sum, var_min = sums.tolist()
    n = len(x)
    return {"loss": loss / n, "elbo": elbo / n, "recon": recon / n, "kl": kl / n, "sigma2": var_sum / n,
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
                "floor": model.floor, "sigma_param": model.sigma_param}, out / "model.pt")
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
    channels, size = IMAGE_SIZES[config.dataset]
    model = VAE(config.latent_dim, channels, variance=ckpt["variance"], floor=ckpt["floor"],
                sigma_param=ckpt["sigma_param"], image_size=size)
    model.load_state_dict(ckpt["state_dict"])
    model = model.to(resolve_device(device), memory_format=torch.channels_last)  # as trained
    return model.eval(), config, history
