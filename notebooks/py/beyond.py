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
# # Beyond the paper: 8-bit likelihoods, what stage 2 buys, how σ is learned
#
# Three questions the paper leaves open, answered with its own models and rule (a difference counts
# when it exceeds twice its standard error; "unresolved" otherwise, or when it compares with a
# model that does not beat the mean image; for the FID claims, a model whose decoder mean alone
# does not, since samples are that mean).
#
# 1. **Likelihoods a reader can compare with the literature.** Table 3's numbers are *densities*
#    of pixels rescaled to [0, 1]. MNIST's pixels are 8-bit, and a density on them grows without
#    bound as the variances shrink (Algorithm 1's floor is what caps ours). Integrating each pixel's
#    Gaussian over its bin, [(k − ½)/255, (k + ½)/255] with the first and last bins open, gives the
#    *probability* of the stored image, P(x) ≤ 1, which published 8-bit likelihoods bound.
# 2. **What stage 2 buys.** Ours after both stages (per-pixel σ² with the floor) against stage 1
#    alone run for as many epochs in all: likelihood, FID, and the uncertainty maps. Rybkin et al.
#    (2021) find a per-pixel variance "often gives suboptimal results" against a shared σ.
# 3. **How σ is learned.** Algorithm 1 takes Adam steps on σ; Adam on log σ and Eq. 10's closed
#    form every batch (Rybkin et al.'s "optimal σ") are the alternatives.

# %% tags=["parameters", "hide-cell"]
profile = "paper"  # smoke | quick | paper: every parameter left None takes this profile's value
dataset = None  # mnist | fashion_mnist | digits (embedded, offline)
latent_dim = None  # code size (appendix B.1: 16)
epochs1 = None  # stage-1 epochs (appendix: 16); one-stage methods train epochs1 + epochs2
epochs2 = None  # stage-2 epochs (appendix: 14)
seeds = None  # training seeds, a list: -p seeds "[0, 1, 2]" (paper profile: 3, quick: 1)
sigma_update = None  # ours (Table 3's models), stage 1: sigma (Algorithm 1) or closed_form (Eq. 10)
components = None  # mixture components of q̂ (the paper: 32)
iwae_k = None  # importance samples of Table 3's IWAE (the paper: 20)
iwae_k_large = None  # importance samples of the tighter 8-bit IWAE (default 1000)
n_samples = None  # generated and real images per FID (the paper: 10k); likelihoods use 500 test images
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

params = experiments.resolve("beyond", globals())  # bad values stop here, before any compute
print(reports.header(params))

# %%
outcome = experiments.beyond(params)
print(reports.spread_note(params))

# %% [markdown]
# ## 1. The probability of the 8-bit pixels
#
# Each model's test IWAE with q̂ as a density (Table 3's nats) and as the probability of the 8-bit
# image (`sigmavae.likelihoods.discretized_gaussian_log_prob`), at Table 3's k and at a larger k
# (the bound tightens as k grows), in bits per dimension: −log P(x) / (784 · ln 2).
#
# The two are related pixel by pixel. For a pixel inside the range, its bin has width w = 1/255
# and, by the mean value theorem, P_k = w · N(ξ_k; μ_k, σ_k²) for some ξ_k within half a bin of x_k:
# log p_k − log P_k = log 255 + [(ξ_k − μ_k)² − (x_k − μ_k)²] / (2σ_k²), which tends to log 255 =
# 5.54 nats as w/σ_k → 0. For a pixel at 0 or 255 the bin is open, P_k = Φ((w/2 − μ_k)/σ_k) ≤ 1
# (for 0), however small σ_k gets, while the density grows as 1/σ_k. So the density exceeds the
# probability by about d · log 255 nats per image (printed below) only where every σ is wide and no
# pixel is saturated; MNIST's background is saturated, which is where the density's large values
# come from and where the probability gains nothing.

# %%
print(f"d · log 255 = {outcome.headline['d_log_255']:.1f} nats")
reports.beyond_likelihoods(outcome)

# %% [markdown]
# Published likelihoods of 8-bit MNIST beside ours. None is exact: the flows' are densities of
# uniformly dequantised pixels, which bound log P(x) from below in expectation, as our IWAE does,
# so all are upper bounds on the true bits per dimension.

# %%
reports.beyond_literature(outcome)

# %% [markdown]
# ## 2. What stage 2 buys
#
# Ours after Algorithm 1's two stages, against stage 1 alone for as many epochs in all (the same
# seed, the same optimiser budget), and stage 1 at its own length (stage 2's starting point).
# Samples are decoder means, so the FID sees only what stage 2 does to the mean network (its
# loss now weights each pixel by 1/σ²_k); the likelihoods see the variances too.

# %%
reports.beyond_stage2(outcome)

# %% [markdown]
# ## 3. How σ is learned
#
# σ² after each epoch of stage 1 for Algorithm 1's Adam on σ, Adam on log σ, and Eq. 10 every batch.
# Adam's step is at most about its learning rate per parameter whatever the gradient's scale
# (Kingma and Ba 2015, §2.1): from σ = 1, after n steps σ ≥ 1 − n·lr on σ, but log σ ≥ −n·lr on
# log σ, so σ² ≥ exp(−2n·lr). To reach σ² ≈ 0.006, σ must fall by 0.92 (1,840 steps at
# lr = 5·10⁻⁴) but log σ by 2.56 (5,120 steps): Adam on log σ needs almost three times as many
# steps, because the distance it must travel is longer in log σ, not because its gradients are
# smaller. Eq. 10 sets σ² to its optimum for the current network at every batch.

# %%
reports.beyond_sigma_figure(outcome)

# %%
reports.beyond_sigma_learning(outcome)

# %% [markdown]
# The claims, decided by the rule on the {doc}`summary page </book/summary>`; the checks hold by
# construction.

# %%
reports.publish(outcome, results_dir)
