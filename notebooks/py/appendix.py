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
# # Appendix D: samples per method, from q̂ and from the prior
#
# Samples (decoder means) of ours, VAE, β-VAE, DIP-VAE and WAE, each from q̂ (Eq. 13,
# `components` components) and from the prior, Table 2's models (first seed). The paper shows WAE
# from the prior only ("estimating the aggregate posterior for this method … is not sensible");
# both are shown here. A model that does not beat the training set's mean image (see Table 2) is
# labelled *collapsed*: its samples are that image, whatever z.

# %% tags=["parameters", "hide-cell"]
profile = "paper"  # smoke | quick | paper: every parameter left None takes this profile's value
dataset = None  # mnist | fashion_mnist | digits (embedded, offline)
latent_dim = None  # code size (appendix B.1: 16; Table 1 and Figure 1: 2)
epochs1 = None  # stage-1 epochs (appendix: 16); one-stage methods train epochs1 + epochs2
epochs2 = None  # stage-2 epochs (appendix: 14)
seeds = None  # training seeds, a list: -p seeds "[0, 1, 2]" (paper profile: 3, quick: 1)
sigma_update = None  # ours, stage 1: sigma (Adam on σ, Algorithm 1) or closed_form (Eq. 10 per batch)
components = None  # mixture components of q̂ (the paper: 32)
n_samples = None  # samples per grid (the paper: 100)
download = None  # True lets torchvision and pytorch-fid download data and weights
device = "auto"  # auto (CUDA when present) or cpu, cuda, cuda:1
precision = None  # auto (bf16 on CUDA and AMX CPUs, else fp32) | bf16 | fp32 (None: $SIGMAVAE_PRECISION)
data_root = None  # folder holding MNIST/raw and FashionMNIST/raw (None: $SIGMAVAE_DATA)
cache_dir = None  # models, q̂ and scores (None: $SIGMAVAE_CACHE or ~/.cache/sigmavae)
results_dir = "results"  # where this notebook writes its numbers as JSON

# %% tags=["hide-cell"]
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile

REPO_URL = ""  # set by `make book REPO_URL=...`: the repository Colab installs sigmavae from
if importlib.util.find_spec("sigmavae") is None:  # e.g. on Colab: install the library first,
    spec = os.environ.get("SIGMAVAE_PIP") or (f"git+{REPO_URL}" if REPO_URL else "sigmavae")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:  # keeping this torch
        for name in ("torch", "torchvision"):
            try:
                pins.write(f"{name}=={importlib.metadata.version(name)}\n")
            except importlib.metadata.PackageNotFoundError:
                pass
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", pins.name, spec], check=True)
if "google.colab" in sys.modules and download is None:
    download = True  # Colab: torchvision fetches the data, pytorch-fid its Inception weights

# %% tags=["hide-input"]
from sigmavae import experiments, reports

params = experiments.resolve("appendix", globals())  # bad values stop here, before any compute
print(reports.header(params))

# %%
outcome = experiments.appendix_samples(params)
title = f"{params.n_samples} samples per method ({params.dataset}, seed {params.seeds[0]})"
reports.sample_grids(outcome, title)

# %%
reports.publish(outcome, results_dir)
