"""What determines a trained model: :class:`TrainConfig`, and the appendix tables it defaults to.

Defaults are appendix B.1's table: batch 256, latent 16, 16 + 14 epochs, Adam, lr 5e-4 (B.2's for
CelebA: latent 256, 75 + 20 epochs). :data:`APPENDIX` is that table, with q̂'s settings beside it,
in one place: the training config, the notebooks' parameters (:mod:`sigmavae.params`) and the
command line read it from here. Each field carries its help text (and its choices, where there
are some) in ``dataclasses.field(metadata=...)``: ``sigmavae train`` builds one ``--option`` per
field from them (:mod:`sigmavae.cli`), so a new field is one edit here.

The trained-model cache keys on ``dataclasses.asdict(TrainConfig)`` (:mod:`sigmavae.cache`): a field
added, removed or renamed, or a default changed, moves every cached model to a new key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .data import DATASETS

# Each method's objective is sigmavae.objectives.OBJECTIVES[method].
METHODS = ("sigma", "fixed", "vae", "beta-vae", "dip-vae", "wae")
SIGMA_UPDATES = ("sigma", "log_sigma", "closed_form")
DIP_TYPES = ("i", "ii")
# Appendix B.1 (28×28 data) and B.2 (CelebA) tables: code size and the epochs of the two stages;
# and q̂'s settings: 32 components (Table 1) on one latent per training image, and for CelebA
# 500 components on 50k latents (the text of Table 4).
APPENDIX = {"28x28": {"latent_dim": 16, "epochs1": 16, "epochs2": 14, "components": 32, "qhat_points": None},
            "celeba": {"latent_dim": 256, "epochs1": 75, "epochs2": 20, "components": 500,
                       "qhat_points": 50_000}}
TRAINING_DEFAULTS = ("latent_dim", "epochs1", "epochs2")  # the part of APPENDIX a TrainConfig takes


def appendix(dataset: str) -> dict:
    """The appendix table of ``dataset``: B.2's for CelebA, B.1's for the 28×28 datasets."""
    return APPENDIX["celeba" if dataset == "celeba" else "28x28"]

# σ² that a method fixes (the paper's framing of VAE and β-VAE; WAE's cost 0.05‖x - g‖² ⇔ σ² = 10).
METHOD_SIGMA2 = {"vae": 0.5, "beta-vae": 1.0, "wae": 10.0}


def _option(default, help: str, choices: tuple[str, ...] | None = None):
    """A field with its command-line help (and choices) as metadata; ``asdict`` is unaffected."""
    meta = {"help": help} if choices is None else {"help": help, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that determines a trained model. Saved as ``config.json`` beside the weights."""

    dataset: str = _option("mnist", "training set (celeba: appendix B.2's networks)", DATASETS)
    method: str = _option(
        "sigma", "sigma: learned σ² then per-pixel σ² (Algorithm 1); fixed: σ² = --sigma2; vae (σ² 0.5), "
        "beta-vae (σ² 1), dip-vae, wae: the paper's baselines", METHODS)
    # vae, beta-vae and wae set their own σ²; "sigma" learns it, starting from 1 (Algorithm 1)
    sigma2: float | None = _option(None, "σ² of --method fixed or dip-vae (default 0.5)")
    beta: float = _option(1.0, "weight β on the KL term (Higgins et al.'s β-VAE); 1 = the ELBO")
    sigma_update: str = _option(
        "sigma", "stage 1: Adam on σ (Algorithm 1), Adam on log σ, or Eq. 10 per batch (then σ²_dataset "
        "from one Eq. 10 pass over the training set)", SIGMA_UPDATES)
    latent_dim: int | None = _option(None, "code size: 16 (appendix B.1); CelebA 256 (B.2)")
    epochs1: int | None = _option(None, "stage-1 epochs: 16 (B.1 table); CelebA 75 (B.2 table)")
    epochs2: int | None = _option(None, "stage-2 epochs: 14; CelebA 20; 0 stops after stage 1 (global σ²)")
    eps1: float | None = _option(None, "ε₁ on δ_ELBO in nats (default: none, stop after exactly --epochs1)")
    eps2: float | None = _option(None, "ε₂ on δ_ELBO in nats (default: none, stop after exactly --epochs2)")
    max_extra_epochs: int = _option(10, "cap on the epochs ε₁ / ε₂ add beyond --epochs1 / --epochs2")
    variance_floor: float = _option(0.5, "stage-2 floor as a multiple of σ²_dataset (Algorithm 1: 0.5; "
                                         "0 = none)")
    batch_size: int = _option(256, "batch size (appendix B.1 table)")
    lr: float = _option(5e-4, "Adam's learning rate (appendix B.1 table)")
    seed: int = _option(0, "seeds the weights, the batch order and every sample drawn in training")
    dip_type: str = _option("i", "DIP-VAE-I or -II (Kumar et al. 2018)", DIP_TYPES)
    lambda_od: float = _option(10.0, "DIP-VAE off-diagonal weight λ_od, in Kumar et al.'s range")
    lambda_d: float | None = _option(None, "DIP-VAE diagonal weight λ_d (default 10·λ_od for I, λ_od for "
                                           "II, Kumar et al. §3)")
    wae_lambda: float | None = _option(None, "WAE-MMD λ (default, Tolstikhin et al. §4: 10; CelebA 100)")

    def __post_init__(self):
        problems = []
        table = appendix(self.dataset)
        for name in TRAINING_DEFAULTS:
            if getattr(self, name) is None:
                setattr(self, name, table[name])
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
        if self.dip_type not in DIP_TYPES:
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
        scratch = self.method == "sigma" and self.epochs1 == 0 and self.epochs2 >= 1  # Section 3.4
        if (self.epochs1 < 1 and not scratch) or self.epochs2 < 0:
            problems.append(f"need epochs1 >= 1 and epochs2 >= 0 (or for sigma epochs1 = 0, epochs2 >= 1: "
                            f"the per-pixel variance from the first epoch), got {self.epochs1}, "
                            f"{self.epochs2}")
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
