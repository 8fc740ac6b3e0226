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
# # Table 4: how many mixture components?
#
# FID of ours (Algorithm 1, both stages) sampled from q̂ with M components, M over
# `components_list`, beside the prior's; with the held-out log-likelihood of q̂ on test-image
# latents (it stops rising, then falls, when q̂ starts to overfit the training latents) and the
# EM fit time. The paper's Table 4 is CelebA (M = 500 … 10,000: FID 79.9 → 73.1, "no obvious
# improvement" up to 2,000); CelebA runs here with `dataset = "celeba"` when its images are there.

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
components = 32  # unused here: see components_list
fid = "classifier"  # inception (pytorch-fid weights needed) | classifier (offline)
sigma_update = "sigma"  # stage-1 σ² update of ours: sigma (Algorithm 1) | closed_form (Eq. 10 per batch)
components_list = [8, 16, 32, 64, 128, 256]  # the M to compare (the paper, CelebA: 500 … 10000)
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
table, numbers = reports.table4(dataset, latent_dim, epochs1, epochs2, seed, n_samples,
                                components_list, fid, sigma_update, device=device,
                                data_root=data_root, cache_dir=cache_dir, progress=False)
print("paper, CelebA (Inception FID):", reports.PAPER_TABLE4)
print(f"prior: {numbers['fid_prior']:.2f}")
table.round(2)

# %%
reports.publish(results_dir, "table4_mixtures", numbers,
                profile=profile, dataset=dataset, fid=fid, components_list=components_list)
