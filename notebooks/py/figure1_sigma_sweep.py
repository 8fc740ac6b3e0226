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
# # Figure 1: what learning σ² buys
#
# Test ELBO, FID of samples from q̂ (blue) and from the prior (red), and KL(q̂‖p), against σ²
# for the six fixed values and the learned one (green star): Table 1's seven 2-D models, reused
# from the cache. The paper: the learned σ² has the highest ELBO, one of the lowest FIDs, a
# moderate KL, and q̂ beats the prior at every σ², the more so the smaller σ².

# %% tags=["parameters"]
profile = "paper"  # which parameter file produced this page: smoke | quick | paper
dataset = "mnist"  # mnist | fashion_mnist (digits: the embedded offline set)
latent_dim = 2  # 2: the models of Table 1 (the paper gives no size, and its six σ² are those of Table 1)
epochs1 = 16  # with epochs2: every model trains epochs1 + epochs2 epochs (one stage)
epochs2 = 14  # see epochs1
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
table, figure, numbers = reports.figure1(dataset, latent_dim, epochs1 + epochs2, seed, n_samples,
                                         components, fid, sigma_update, device=device,
                                         data_root=data_root, cache_dir=cache_dir, progress=False)
table.round(2)

# %%
figure

# %%
reports.publish(results_dir, "figure1_sigma_sweep", numbers,
                profile=profile, dataset=dataset, epochs=epochs1 + epochs2, fid=fid)
