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
# # Table 2: FID of five methods
#
# FID of samples from q̂ (Eq. 13) and from the prior, for ours (Algorithm 1), VAE, β-VAE, DIP-VAE
# and WAE, all with the same networks, and of real training images. The paper samples from q̂
# "where possible" and WAE from the prior. With `fid = "classifier"` (no Inception weights
# needed) the values are classifier FIDs: compare their ordering with the paper's, not the values.

# %% tags=["parameters"]
profile = "paper"  # which parameter file produced this page: smoke | quick | paper
dataset = "mnist"  # mnist | fashion_mnist (digits: the embedded offline set)
latent_dim = 16  # code size (appendix B.1: 16)
epochs1 = 16  # stage-1 epochs (appendix: 16), one-stage methods train epochs1 + epochs2
epochs2 = 14  # stage-2 epochs (appendix: 14)
seed = 0  # training and sampling seed
device = "auto"  # auto (CUDA when present) | cpu | cuda
data_root = None  # folder holding MNIST/raw and FashionMNIST/raw (None: $SIGMAVAE_DATA)
n_samples = 10000  # generated images per FID, and real test images (the paper: 10k)
iwae_k = 20  # importance samples (unused here)
components = 32  # mixture components of q̂ (the paper: 32)
fid = "classifier"  # inception (pytorch-fid weights needed) | classifier (offline)
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
table, numbers = reports.table2(dataset, latent_dim, epochs1, epochs2, seed, n_samples, components,
                                fid, sigma_update, device, data_root, cache_dir, progress=False)
print(f"{fid} FID of {n_samples} samples, q̂ with {components} components")
table.round(2)

# %%
reports.publish(results_dir, "table2_fid", numbers,
                profile=profile, dataset=dataset, fid=fid)
