"""The paper's numbers, and tables that put ours beside them (what the notebooks display).

Every builder trains through the model cache (:func:`sigmavae.cache.cached_run`), so notebooks
that need the same model share it, and returns a ``pandas.DataFrame`` plus a JSON-able dict.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from . import __version__
from .cache import cached_run
from .data import load_dataset
from .fid import fid as fid_distance
from .fid import fid_scores, make_extractor, real_statistics
from .metrics import iwae_log_likelihood
from .sampling import StandardNormalPrior, fit_aggregate_posterior
from .training import TrainConfig, load_run, resolve_device

# Table 3: IWAE test log-likelihood (nats), 500 test images, k = 20: (with the prior, with q̂).
PAPER_TABLE3 = {
    "mnist": {"ours, dataset σ²": (1307, 1323), "ours, pixel σ²": (6037, 6052), "VAE": (-462, -461),
              "β-VAE": (-730, -730), "DIP-VAE": (-461, -460)},
    "fashion_mnist": {"ours, dataset σ²": (1145, 1157), "ours, pixel σ²": (5708, 5724),
                      "VAE": (-463, -462), "β-VAE": (-731, -731), "DIP-VAE": (-463, -462)},
}
# Table 2: FID (Inception), samples from q̂ where possible (WAE from the prior).
PAPER_TABLE2 = {
    "mnist": {"ours": 8.9, "VAE": 74.9, "β-VAE": 438.1, "DIP-VAE": 114.9, "WAE": 142.8, "real": 1.9},
    "fashion_mnist": {"ours": 10.6, "VAE": 123.8, "β-VAE": 281.5, "DIP-VAE": 103.6, "WAE": 149.5,
                      "real": 0.7},
}
# Table 1 (MNIST, 2-d latent): KL(q̂‖p) mean ± std for each σ²; 0.035 is the learned one.
PAPER_TABLE1 = {1.0: (0.094, 0.003), 0.5: (0.132, 0.003), 0.1: (0.328, 0.009), 0.05: (0.812, 0.013),
                0.02: (2.143, 0.030), 0.01: (1.552, 0.034), 0.035: (0.422, 0.011)}
# Table 4 (CelebA): FID against the number of mixture components.
PAPER_TABLE4 = {500: 79.9, 1000: 79.2, 2000: 78.4, 10000: 73.1}

# Table 3's columns → the (method, overrides) that train them.
TABLE3_MODELS = {
    "ours, dataset σ²": ("sigma", {"epochs2": 0}),
    "ours, pixel σ²": ("sigma", {}),
    "VAE": ("vae", {}),
    "β-VAE": ("beta-vae", {}),
    "DIP-VAE": ("dip-vae", {}),
}


# Table 1 / Figure 1: the six fixed σ² of the sweep (appendix C lists them); ours learns the seventh.
SWEEP_SIGMA2 = (1.0, 0.5, 0.1, 0.05, 0.02, 0.01)


def sweep_configs(dataset: str = "mnist", latent_dim: int = 2, epochs: int = 30, seed: int = 0,
                  sigma_update: str = "sigma") -> dict:
    """Table 1 and Figure 1's models: σ² fixed at each of :data:`SWEEP_SIGMA2`, and σ² learned
    under Eq. 9 (stage 1 of Algorithm 1 only: one global σ², as in Table 1). All train ``epochs``
    epochs in one stage, so the seven differ only in σ²."""
    configs = {s2: TrainConfig(dataset=dataset, method="fixed", sigma2=s2, latent_dim=latent_dim,
                               epochs1=epochs, epochs2=0, seed=seed) for s2 in SWEEP_SIGMA2}
    configs["learned"] = TrainConfig(dataset=dataset, method="sigma", sigma_update=sigma_update,
                                     latent_dim=latent_dim, epochs1=epochs, epochs2=0, seed=seed)
    return configs


def model_config(dataset: str, method: str, latent_dim: int, epochs1: int, epochs2: int, seed: int,
                 overrides: dict | None = None) -> TrainConfig:
    """The config of one table entry; one-stage methods train epochs1 + epochs2 epochs."""
    return TrainConfig(**{"dataset": dataset, "method": method, "latent_dim": latent_dim,
                          "epochs1": epochs1, "epochs2": epochs2, "seed": seed, **(overrides or {})})


def table3(dataset: str = "mnist", latent_dim: int = 16, epochs1: int = 16, epochs2: int = 14,
           seed: int = 0, n_samples: int = 500, iwae_k: int = 20, components: int = 32,
           device="auto", data_root=None, cache_dir=None, progress: bool = True):
    """Table 3: IWAE log-likelihood with the prior and with q̂, ours beside the paper's."""
    import pandas as pd

    x_train = load_dataset(dataset, "train", data_root, dtype=torch.uint8)
    x_test = load_dataset(dataset, "test", data_root)[:n_samples]
    paper = PAPER_TABLE3.get(dataset, {})
    rows, results = [], {}
    for name, (method, overrides) in TABLE3_MODELS.items():
        config = model_config(dataset, method, latent_dim, epochs1, epochs2, seed, overrides)
        run = cached_run(config, cache_dir, device, data_root, progress=progress)
        model, _, history = load_run(run, device=resolve_device(device))
        dev = next(model.parameters()).device
        qhat = fit_aggregate_posterior(model, x_train.to(dev), components, seed=seed)
        priors = {"prior": StandardNormalPrior(model.latent_dim), "q̂": qhat}
        ll = {f"IWAE, {label}": float(iwae_log_likelihood(model, x_test.to(dev), iwae_k, p, seed=seed).mean())
              for label, p in priors.items()}
        p_prior, p_qhat = paper.get(name, (float("nan"), float("nan")))
        rows.append({"model": name, **ll, "paper, prior": p_prior, "paper, q̂": p_qhat,
                     "σ²_dataset": model.sigma2, "epochs": len(history)})
        results[name] = {**ll, "sigma2_dataset": model.sigma2, "config": dataclasses.asdict(config)}
    return pd.DataFrame(rows).set_index("model"), results



def save_results(results_dir, name: str, numbers: dict, **params) -> Path:
    """Write ``<results_dir>/<name>-<dataset>.json``: the notebook's numbers and its parameters."""
    path = Path(results_dir) / f"{name}-{params.get('dataset', 'all')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"parameters": params, "version": __version__, "results": numbers},
                               indent=2, ensure_ascii=False) + "\n")
    return path


# Table 2's columns → methods; WAE is sampled from the prior in the paper (appendix D).
TABLE2_METHODS = {"ours": "sigma", "VAE": "vae", "β-VAE": "beta-vae", "DIP-VAE": "dip-vae", "WAE": "wae"}


def table2(dataset: str = "mnist", latent_dim: int = 16, epochs1: int = 16, epochs2: int = 14,
           seed: int = 0, n_samples: int = 10_000, components: int = 32, fid: str = "classifier",
           device="auto", data_root=None, cache_dir=None, fid_weights=None, progress: bool = True):
    """Table 2: FID of samples from q̂ and from the prior for the five methods, and of real images.

    ``fid`` is "inception" (the paper's; needs pytorch-fid's weights) or "classifier" (offline;
    its values are comparable only with each other, so the paper's column is for the ordering).
    """
    import pandas as pd

    device = resolve_device(device)
    extractor = make_extractor(fid, dataset, device, data_root, fid_weights, cache_dir)
    real = real_statistics(extractor, dataset, "test", n_samples, data_root, cache_dir)
    x_train = load_dataset(dataset, "train", data_root, dtype=torch.uint8)
    paper = PAPER_TABLE2.get(dataset, {})
    rows, results = [], {}
    for name, method in TABLE2_METHODS.items():
        config = model_config(dataset, method, latent_dim, epochs1, epochs2, seed)
        model, _, _ = load_run(cached_run(config, cache_dir, device, data_root, progress=progress), device)
        qhat = fit_aggregate_posterior(model, x_train.to(device), components, seed=seed)
        latents = {"gmm": qhat, "prior": StandardNormalPrior(model.latent_dim)}
        scores = fid_scores(model, extractor, real, latents, n_samples, seed)
        rows.append({"method": name, f"{fid} FID, q̂": scores["fid_gmm"],
                     f"{fid} FID, prior": scores["fid_prior"],
                     "paper (Inception)": paper.get(name, float("nan"))})
        results[name] = {**scores, "config": dataclasses.asdict(config)}
    real_fid = fid_distance(x_train[:n_samples], real, extractor)
    rows.append({"method": "real images", f"{fid} FID, q̂": real_fid,
                 "paper (Inception)": paper.get("real", float("nan"))})
    results["real images"] = {"fid": real_fid, "fid_kind": f"{fid} FID", "features": extractor.key}
    return pd.DataFrame(rows).set_index("method"), results


def _pixel_model(dataset, latent_dim, epochs1, epochs2, seed, device, data_root, cache_dir, progress):
    """Ours after stage 2 (per-pixel σ²): the model of Figures 3-4."""
    if epochs2 < 1:
        raise ValueError("the uncertainty figures need stage 2 (per-pixel σ²): epochs2 must be >= 1")
    config = model_config(dataset, "sigma", latent_dim, epochs1, epochs2, seed)
    model, _, _ = load_run(cached_run(config, cache_dir, device, data_root, progress=progress), device)
    return model


def uncertainty(dataset: str = "mnist", latent_dim: int = 16, epochs1: int = 16, epochs2: int = 14,
                seed: int = 0, n_samples: int = 10, components: int = 32, device="auto", data_root=None,
                cache_dir=None, progress: bool = True):
    """Figures 3 and 4: reconstructions of test images and samples from q̂, with their σ²(z) maps.
    Returns the two figures and summary numbers (σ² quantiles, the floor)."""
    from .plots import uncertainty_figure

    device = resolve_device(device)
    model = _pixel_model(dataset, latent_dim, epochs1, epochs2, seed, device, data_root, cache_dir, progress)
    x = load_dataset(dataset, "test", data_root)[:n_samples].to(device)
    x_train = load_dataset(dataset, "train", data_root, dtype=torch.uint8).to(device)
    qhat = fit_aggregate_posterior(model, x_train, components, seed=seed)
    with torch.no_grad():
        recon, log_var_r = model.decode(model.encode(x)[0])  # reconstruct from the posterior mean
        gen, log_var_g = model.decode(qhat.sample(n_samples, seed=seed).to(device))
    fig3 = uncertainty_figure(x, recon, log_var_r.exp(), "Figure 3: reconstructions and their σ²")
    fig4 = uncertainty_figure(None, gen, log_var_g.exp(), "Figure 4: samples from q̂ and their σ²",
                              labels=("", "sample", "σ²"))
    q = torch.tensor([0.01, 0.5, 0.99], device=device)
    numbers = {"floor": model.floor, "sigma2_dataset": model.sigma2,
               "reconstruction_sigma2_quantiles_1_50_99": log_var_r.exp().flatten().quantile(q).tolist(),
               "sample_sigma2_quantiles_1_50_99": log_var_g.exp().flatten().quantile(q).tolist()}
    return fig3, fig4, numbers
