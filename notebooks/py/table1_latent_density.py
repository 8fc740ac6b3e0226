# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table 1: the aggregate posterior in a 2-D latent space
#
# Seven models with a 2-D latent space, σ² fixed at 1, 0.5, 0.1, 0.05, 0.02, 0.01 and σ² learned
# under Eq. 9 (the paper finds 0.035). For each: the log density of the aggregate posterior q(z)
# (Eq. 12, a mixture over all training images), of its Gaussian-mixture approximation q̂(z)
# (Eq. 13, 32 components) and of the prior p(z), on a grid; and KL(q̂‖p) by Monte Carlo
# (n_samples draws × 10 runs). All seven train epochs1 + epochs2 epochs in one stage.

# %% tags=["parameters"]
profile = "paper"  # which parameter file produced this page: smoke | quick | paper
dataset = "mnist"  # mnist | fashion_mnist (digits: the embedded offline set)
latent_dim = 2  # must be 2: the densities are drawn over the latent plane
epochs1 = 16  # with epochs2: every model trains epochs1 + epochs2 epochs (one stage)
epochs2 = 14  # see epochs1 (Table 1 has no stage 2)
seed = 0  # training and sampling seed
device = "auto"  # auto (CUDA when present) | cpu | cuda
data_root = None  # folder holding MNIST/raw and FashionMNIST/raw (None: $SIGMAVAE_DATA)
n_samples = 10000  # Monte Carlo draws per KL(q̂‖p) estimate (Table 1: 10k, 10 runs)
iwae_k = 20  # importance samples (unused here)
components = 32  # mixture components of q̂ (Table 1: 32)
fid = "classifier"  # FID kind (unused here)
sigma_update = "sigma"  # stage-1 σ² update of ours: sigma (Algorithm 1) | closed_form (Eq. 10 per batch)
cache_dir = None  # trained-model cache (None: $SIGMAVAE_CACHE or ~/.cache/sigmavae)
results_dir = "results"  # where this notebook writes its numbers as JSON

# %%
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("sigmavae") is None:  # e.g. on Colab: install the library first
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    os.environ.get("SIGMAVAE_PIP", "sigmavae")], check=True)

# %%
from sigmavae import reports

reports.check_parameters(globals())  # wrong types or values stop here, before any compute
print(f"profile {profile}: {dataset}, latent {latent_dim}, {epochs1} + {epochs2} epochs, "
      f"σ² update {sigma_update}, seed {seed}")

# %%
table, figure, numbers = reports.table1(dataset, latent_dim, epochs1 + epochs2, seed, components,
                                        n_samples, 10, sigma_update, device=device,
                                        data_root=data_root, cache_dir=cache_dir, progress=False)
table.round(3)

# %%
figure

# %%
reports.publish(results_dir, "table1_latent_density", numbers,
                profile=profile, dataset=dataset, epochs=epochs1 + epochs2, sigma_update=sigma_update)
