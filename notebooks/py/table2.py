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
# "where possible" and WAE from the prior. Where pytorch-fid's Inception weights cannot be had,
# `fid = "auto"` falls back to a classifier's features (offline): the table says which, and
# classifier FIDs are comparable with each other, so compare their ordering with the paper's.
# Read every FID against the real images' row: a method hundreds of times above it is barely
# trained, and beating it says little about the method; the `paper` profile's 30 epochs and 3
# seeds are the test of the claim. Differences of FIDs are paired (the same bootstrap resamples of
# the real images), and every neighbouring pair of the paper's order of the five is a claim.
# Each model is first checked against a decoder that ignores z, the training set's mean image,
# scored exactly (log N(x; m, σ²I)) at the model's σ² on 500 test images and paired image by image
# with the model's IWAE: a model that does not beat it has learned nothing from z and is marked
# *collapsed*; a claim that compares with it decides nothing (unresolved).
# The samples are the decoder's mean g(z), so ours is checked by its decoder mean alone: a per-pixel
# σ²(z) (Eq. 11) could beat the mean image by its variance network while g(z) ignores z. Its decoder
# mean and the mean image are both scored at their own best global σ², as are WAE's, whose σ² = 10
# is the scale of its cost, not a likelihood it was trained by.

# %% tags=["parameters", "hide-cell"]
profile = "paper"  # smoke | quick | paper: every parameter left None takes this profile's value
dataset = None  # mnist | fashion_mnist | digits (embedded, offline)
latent_dim = None  # code size (appendix B.1: 16; Table 1 and Figure 1: 2)
epochs1 = None  # stage-1 epochs (appendix: 16); one-stage methods train epochs1 + epochs2
epochs2 = None  # stage-2 epochs (appendix: 14)
seeds = None  # training seeds, a list: -p seeds "[0, 1, 2]" (paper profile: 3, quick: 1)
sigma_update = None  # ours, stage 1: sigma (Adam on σ, Algorithm 1) or closed_form (Eq. 10 per batch)
components = None  # mixture components of q̂ (the paper: 32)
n_samples = None  # generated and real images per FID (the paper: 10k)
fid = None  # auto (inception where its weights can be had, else classifier), classifier, inception
fid_bootstrap = None  # resamples for each FID's standard deviation (default 50)
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

params = experiments.resolve("table2", globals())  # bad values stop here, before any compute
print(reports.header(params))

# %%
outcome = experiments.table2(params)
print(reports.spread_note(params))
reports.table2(outcome)

# %%
reports.sample_grids(outcome, f"Table 2's models: 64 samples from q̂ and the prior (seed {params.seeds[0]})")

# %% [markdown]
# The paper's claims, decided by the rule on the {doc}`summary page </book/summary>`: a difference
# counts when it exceeds twice its standard error (with several seeds, Student's t for their
# number); "unresolved" when it does not, when there is no error estimate, or when it compares with
# a collapsed model. Each ordering the paper's table states is a claim of its own.

# %%
reports.publish(outcome, results_dir)
