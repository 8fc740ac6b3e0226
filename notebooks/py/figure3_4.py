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
# from q̂ (Eq. 13) and their σ² maps (log colour scale). The paper reads high variance as the
# pixels the model is unsure of (§5.4). Since many pixels sit exactly at the floor, Figure 3's
# claim is measured on 1000 test images by how well σ² ranks the 5% of pixels of largest error
# (AUROC, ties counting ½) and by the rank correlation over the pixels above the floor. Beating
# chance (0.5) is not enough: errors concentrate where the images vary (stroke edges), which a map
# that ignores z already knows. So σ² is also compared with that map, the training set's per-pixel
# variance, the same for every image: its AUROC on the same pixels, and σ²'s minus it, paired over
# the same bootstrap resamples of images. Figure 4's claim, that on samples σ² is high in the
# regions that vary most across the dataset, is measured on 1000 samples from q̂: Spearman's ρ
# between each sample's σ² map and the training set's per-pixel variance, mean ± standard error
# over samples (a sample whose σ² map is constant, e.g. all at the floor, has no ρ and is counted
# apart).

# %% tags=["parameters", "hide-cell"]
profile = "paper"  # smoke | quick | paper: every parameter left None takes this profile's value
dataset = None  # mnist | fashion_mnist | digits (embedded, offline)
latent_dim = None  # code size (appendix B.1: 16; Table 1 and Figure 1: 2)
epochs1 = None  # stage-1 epochs (appendix: 16); one-stage methods train epochs1 + epochs2
epochs2 = None  # stage-2 epochs (appendix: 14)
seeds = None  # training seeds, a list: -p seeds "[0, 1, 2]" (paper profile: 3, quick: 1)
sigma_update = None  # ours, stage 1: sigma (Adam on σ, Algorithm 1) or closed_form (Eq. 10 per batch)
components = None  # mixture components of q̂ (the paper: 32)
n_samples = None  # images shown in each figure (default 10)
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

params = experiments.resolve("figure3_4", globals())  # bad values stop here, before any compute
print(reports.header(params))

# %%
outcome = experiments.uncertainty(params)
print(reports.spread_note(params))
reports.uncertainty(outcome)

# %%
figure3, figure4 = reports.uncertainty_figures(outcome)
figure3

# %%
figure4

# %% [markdown]
# The paper's claims, decided by the rule on the {doc}`summary page </book/summary>`: a difference
# counts when it exceeds twice its standard error (with several seeds, Student's t for their
# number); "unresolved" when it does not, when there is no error estimate, or when it compares with
# a collapsed model. Each ordering the paper's table states is a claim of its own.

# %%
reports.publish(outcome, results_dir)
