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
# # Section 3.4: the per-pixel variance from the first epoch
#
# Algorithm 1 learns the per-pixel variance σ²_k(z) of Eq. 11 only in its second stage, after a
# first stage with one global σ² (Eq. 9), and floors it at ½σ²_dataset. The paper's reason
# (Section 3.4): learned from scratch, the variance network "often gets stuck at predicting very
# small variance values". The figures of the paper never show that model; here it is trained: the
# variance network from the first epoch, with no floor, for as many epochs as both stages of
# Algorithm 1, and set beside Algorithm 1's model of the same seed. Where its σ² ends is measured on
# the reconstructions of 1000 test images: the share of pixels below ½σ²_dataset (the least
# Algorithm 1 allows), and below one grey level of the 8-bit data (σ < 1/255). What that costs is
# measured where a tiny σ² cannot pay: the probability of the 8-bit test pixels (IWAE with q̂,
# paired image by image; a density, unlike a probability, grows without bound as σ² → 0 on pixels
# that never change, so the density is shown but decides nothing), and the FID of samples from q̂.

# %% tags=["parameters", "hide-cell"]
profile = "paper"  # smoke | quick | paper: every parameter left None takes this profile's value
dataset = None  # mnist | fashion_mnist | digits (embedded, offline)
latent_dim = None  # code size (appendix B.1: 16; Table 1 and Figure 1: 2)
epochs1 = None  # stage-1 epochs (appendix: 16); one-stage methods train epochs1 + epochs2
epochs2 = None  # stage-2 epochs (appendix: 14)
seeds = None  # training seeds, a list: -p seeds "[0, 1, 2]" (paper profile: 3, quick: 1)
sigma_update = None  # ours, stage 1: sigma (Adam on σ, Algorithm 1) or closed_form (Eq. 10 per batch)
components = None  # mixture components of q̂ (the paper: 32)
iwae_k = None  # importance samples of the test IWAEs (Table 3: 20)
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

params = experiments.resolve("section3_4", globals())  # bad values stop here, before any compute
print(reports.header(params))

# %%
outcome = experiments.section3_4(params)
print(reports.spread_note(params))
table, differences = reports.section3_4(outcome)
table

# %%
differences

# %%
reports.section3_4_figure(outcome)

# %% [markdown]
# The claims, decided by the rule on the {doc}`summary page </book/summary>`: a difference counts
# when it exceeds twice its standard error (with several seeds, Student's t for their number);
# "unresolved" when it does not, when there is no error estimate, or when it compares with a
# collapsed model (for the likelihood: one whose 8-bit test probability does not beat the mean
# image's; for the FID: one whose decoder mean alone, at its own best σ², does not). "Over
# half of the pixels" is our reading of "gets stuck at very small values"; the paper gives no number.

# %%
reports.publish(outcome, results_dir)
