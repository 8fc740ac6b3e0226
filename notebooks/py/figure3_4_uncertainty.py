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
# # Figures 3 and 4: uncertainty from the per-pixel variance
#
# Ours after stage 2 of Algorithm 1 predicts a variance σ²_k(z) for every pixel (Eq. 11), floored
# at ½σ²_dataset. Figure 3: test images, their reconstructions and σ² maps; Figure 4: samples
# from q̂ (Eq. 13) and their σ² maps (log colour scale). High variance marks uncertain pixels,
# typically stroke edges.

# %% tags=["parameters"]
profile = "paper"  # which parameter file produced this page: smoke | quick | paper
dataset = "mnist"  # mnist | fashion_mnist (digits: the embedded offline set)
latent_dim = 16  # code size (appendix B.1: 16)
epochs1 = 16  # stage-1 epochs (appendix: 16)
epochs2 = 14  # stage-2 epochs (appendix: 14), at least 1 for a per-pixel variance
seed = 0  # training and sampling seed
device = "auto"  # auto (CUDA when present) | cpu | cuda
data_root = None  # folder holding MNIST/raw and FashionMNIST/raw (None: $SIGMAVAE_DATA)
n_samples = 10  # images per row of each figure
iwae_k = 20  # importance samples (unused here)
components = 32  # mixture components of q̂ (the paper: 32)
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
n_samples = min(n_samples, 12)  # more does not fit a page row
fig3, fig4, numbers = reports.uncertainty(dataset, latent_dim, epochs1, epochs2, seed, n_samples,
                                          components, sigma_update, device, data_root, cache_dir,
                                          progress=False)
print(f"σ²_dataset {numbers['sigma2_dataset']:.4g}, floor {numbers['floor']:.4g}")

# %%
fig3

# %%
fig4

# %%
reports.publish(results_dir, "figure3_4_uncertainty", numbers,
                profile=profile, dataset=dataset)
