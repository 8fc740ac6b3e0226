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
# # Table 3: IWAE test log-likelihood
#
# IWAE bound (Burda et al. 2015) on test images, with the prior p(z) and with the mixture q̂(z)
# of Eq. 13, for ours (global σ² after stage 1, and per-pixel σ² after stage 2 of Algorithm 1),
# VAE (σ² = 0.5), β-VAE (σ² = 1) and DIP-VAE. Models come from the shared cache.

# %% tags=["parameters"]
profile = "paper"  # which parameter file produced this page: smoke | quick | paper
dataset = "mnist"  # mnist | fashion_mnist (digits: the embedded offline set)
latent_dim = 16  # code size (appendix B.1: 16)
epochs1 = 16  # stage-1 epochs (appendix: 16), one-stage methods train epochs1 + epochs2
epochs2 = 14  # stage-2 epochs (appendix: 14)
seed = 0  # training and evaluation seed
device = "auto"  # auto (CUDA when present) | cpu | cuda
data_root = None  # folder holding MNIST/raw and FashionMNIST/raw (None: $SIGMAVAE_DATA)
n_samples = 500  # test images for IWAE (Table 3: 500)
iwae_k = 20  # importance samples per image (Table 3: 20)
components = 32  # mixture components of q̂ (the paper: 32)
fid = "classifier"  # FID kind (unused here): inception | classifier
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
table, numbers = reports.table3(dataset, latent_dim, epochs1, epochs2, seed, n_samples, iwae_k,
                                components, sigma_update, device, data_root, cache_dir, progress=False)
print(f"IWAE k = {iwae_k} on {n_samples} test images, q̂ with {components} components")
table.round(1)

# %%
reports.publish(results_dir, "table3_iwae", numbers,
                profile=profile, dataset=dataset)
