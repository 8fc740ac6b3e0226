"""Fréchet distances between generated and real images (Table 2, Figures 1b and 2).

Two feature extractors, never mixed in one table (``auto``, :func:`choose_fid`, takes Inception
wherever its weights can be had, the classifier otherwise):

- ``inception``: pytorch-fid's InceptionV3 pool3 (2048-d), the FID of the paper. Grey images are
  replicated to 3 channels; pytorch-fid resizes to 299×299 and rescales [0, 1] → [-1, 1].
  Its weights (``pt_inception-2015-12-05-6726825d.pth``) come from ``--fid-weights PATH``,
  ``$SIGMAVAE_FID_WEIGHTS``, or torch hub's cache; they are downloaded (by pytorch-fid, into that
  cache) only when asked, as the datasets are: ``download=True``, ``--download`` or
  ``$SIGMAVAE_DOWNLOAD=1``.
- ``classifier``: the 128-d penultimate features of a small CNN trained on the dataset
  (:mod:`sigmavae.classifier`): works offline, comparable only with other classifier FIDs.

Images are passed in memory ([N, C, H, W] in [0, 1]), in batches on the model's device. Real-image
features are cached as ``<cache>/fid-stats/<features>-<dataset>-<split>-<n>-features.npy``
(:func:`real_features`); every FID carries a bootstrap std (:func:`fid_with_std`). The scores
themselves are cached with the model they score (:mod:`sigmavae.scores`).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3
from scipy import linalg

from .classifier import EPOCHS as CLASSIFIER_EPOCHS
from .classifier import load_classifier
from .data import as_float, load_dataset
from .runtime import Runtime, atomic_write, read_file, resolve_device

FID_KINDS = ("auto", "inception", "classifier", "none")
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁ - μ₂‖² + tr(Σ₁ + Σ₂ - 2(Σ₁Σ₂)^{1/2}) (Heusel et al. 2017).

    pytorch-fid's ``calculate_frechet_distance`` where it runs; its 0.3.0 passes ``disp=False`` to
    ``scipy.linalg.sqrtm``, which SciPy 1.16 removed, so there we take the same steps ourselves.
    """
    args = [np.asarray(a, np.float64) for a in (mu1, sigma1, mu2, sigma2)]
    try:
        with warnings.catch_warnings():  # a singular product is handled (eps offset), not news;
            warnings.simplefilter("ignore", linalg.LinAlgWarning)  # nor is pytorch-fid 0.3's `disp`
            warnings.filterwarnings("ignore", "The `disp` argument", DeprecationWarning)
            return float(calculate_frechet_distance(*args))
    except TypeError:
        mu1, sigma1, mu2, sigma2 = args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():  # singular product: pytorch-fid's eps offset
            offset = np.eye(len(sigma1)) * 1e-6
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        covmean = covmean.real
        diff = mu1 - mu2
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FeatureExtractor:
    """Images [N, C, H, W] in [0, 1] → features [N, D] (numpy float64), batched on a device."""

    def __init__(self, kind: str, net, dims: int, device, channels: int | None = None, key: str = ""):
        self.kind, self.net, self.dims, self.device, self.channels = kind, net, dims, device, channels
        self.key = key or kind  # names cached real statistics: changes whenever the features do

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
        out = []
        for xb in images.split(batch_size):
            xb = as_float(xb.to(self.device))
            if self.channels == 3 and xb.shape[1] == 1:
                xb = xb.expand(-1, 3, -1, -1)  # grey → RGB by replication
            out.append(self.net(xb).flatten(1).double().cpu())
        return torch.cat(out).numpy()


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The local Inception weights file: ``path`` > $SIGMAVAE_FID_WEIGHTS > torch hub's cache."""
    hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    explicit = path or os.environ.get("SIGMAVAE_FID_WEIGHTS")
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"Inception weights not found at {explicit} (from --fid-weights or "
                                    f"$SIGMAVAE_FID_WEIGHTS); it should be {INCEPTION_FILE}")
        return Path(explicit)
    if hub.is_file():
        return hub
    raise FileNotFoundError(
        f"pytorch-fid's Inception weights {INCEPTION_FILE} are not on this machine and we do not "
        f"download them. Fetch them from {INCEPTION_URL} and put the file at {hub} (torch hub's "
        "cache, where pytorch-fid looks), or pass --fid-weights PATH / set SIGMAVAE_FID_WEIGHTS. "
        "Offline, use --fid classifier (a dataset-specific CNN; not comparable with the paper's FID).")


def inception_available(runtime: Runtime) -> bool:
    """Whether Inception FID can run here: its weights are local, or downloading is allowed."""
    try:
        resolve_inception_weights(runtime.fid_weights)
    except FileNotFoundError:
        return runtime.allow_download
    return True


def choose_fid(kind: str, runtime: Runtime) -> str:
    """``auto`` → "inception" where :func:`inception_available`, else "classifier" (offline)."""
    if kind not in FID_KINDS or kind == "none":
        raise ValueError(f"unknown FID kind {kind!r}; choose auto, inception or classifier")
    if kind != "auto":
        return kind
    return "inception" if inception_available(runtime) else "classifier"


def inception_extractor(*, runtime: Runtime) -> FeatureExtractor:
    """pytorch-fid's InceptionV3 (pool3, 2048-d) on ``runtime``'s device, with the weights file
    :func:`resolve_inception_weights` finds; where there is none and ``runtime`` allows downloads,
    pytorch-fid fetches it into torch hub's cache.

    pytorch-fid reads its weights from torch hub's cache, ``<hub>/checkpoints/<file>``. A file
    elsewhere (``fid_weights``, ``$SIGMAVAE_FID_WEIGHTS``) is first read here with
    ``weights_only`` (refused if it holds anything but tensors), then shown to pytorch-fid through
    a temporary hub folder that links to it; torch hub's folder is set back afterwards."""
    device = resolve_device(runtime.device)
    hub = Path(torch.hub.get_dir())
    try:
        file = resolve_inception_weights(runtime.fid_weights)
    except FileNotFoundError:
        if not runtime.allow_download:
            raise
        file = None  # pytorch-fid downloads it into the hub's cache
    if file is None or file == hub / "checkpoints" / INCEPTION_FILE:
        net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    else:
        read_file(file, f"it should be pytorch-fid's {INCEPTION_FILE}")  # plain tensors, or refused
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "checkpoints").mkdir()
            (Path(folder) / "checkpoints" / INCEPTION_FILE).symlink_to(file.resolve())
            torch.hub.set_dir(folder)
            try:
                net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
            finally:
                torch.hub.set_dir(str(hub))
    net = net.to(device).eval()
    return FeatureExtractor("inception", lambda x: net(x)[0], 2048, device, channels=3)


def classifier_extractor(dataset: str, *, runtime: Runtime) -> FeatureExtractor:
    """The 128-d features of :func:`sigmavae.classifier.load_classifier`'s network for ``dataset``."""
    model, info = load_classifier(dataset, runtime=runtime)
    extractor = FeatureExtractor("classifier", model.features, model.fc.out_features,
                                 resolve_device(runtime.device), key=f"classifier-e{info['epochs']}")
    extractor.info = info
    return extractor


def extractor_identity(kind: str, *, runtime: Runtime) -> tuple[str, str]:
    """(kind, key) of the extractor :func:`make_extractor` would make, without making it (no
    weights loaded, no classifier trained): what names a FID's settings and a table's unit, so a
    stored FID is found without its network."""
    if choose_fid(kind, runtime) == "inception":
        return "inception", "inception"
    return "classifier", f"classifier-e{CLASSIFIER_EPOCHS}"


def make_extractor(kind: str, dataset: str, *, runtime: Runtime) -> FeatureExtractor:
    """The extractor of ``kind`` (``auto``: see :func:`choose_fid`); ``extractor.kind`` says which."""
    if choose_fid(kind, runtime) == "inception":
        return inception_extractor(runtime=runtime)
    return classifier_extractor(dataset, runtime=runtime)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


@torch.no_grad()
def generate(model, latent_dist, n: int, seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
    """n decoder means g(z), z ~ ``latent_dist`` (the prior or q̂), on the model's device."""
    device = next(model.parameters()).device
    z = latent_dist.sample(n, seed=seed).to(device)
    return torch.cat([model.decode(zb)[0] for zb in z.split(batch_size)])


# ----------------------------------------------------------------------------- FID ± bootstrap std

def real_features(extractor: FeatureExtractor, dataset: str, split: str = "test", n: int = 10_000, *,
                  runtime: Runtime) -> np.ndarray:
    """Features [n, D] of the first ``n`` real images of ``dataset``/``split`` (float32), cached as
    ``<runtime.cache>/fid-stats/<features>-<dataset>-<split>-<n>-features.npy``: the bootstrap of
    :func:`fid_with_std` resamples them (10k × 128 classifier features: 5 MB; Inception: 82 MB)."""
    name = f"{extractor.key}-{dataset}-{split}-{n}-features.npy"
    path = runtime.cache / "fid-stats" / name
    if path.is_file():
        return np.load(path, allow_pickle=False)
    images = load_dataset(dataset, split, runtime.data_root, runtime.download, dtype=torch.uint8)[:n]
    features = extractor(images).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    atomic_write(path, buffer.getvalue())
    return features


def fid_bootstrap(generated: np.ndarray, real: np.ndarray, n_boot: int = 50,
                  seed: int = 0) -> tuple[float, np.ndarray]:
    """FID between two feature sets, and ``n_boot`` bootstrap replicates of it: both sets are
    resampled with replacement (each to its own size) and the FID recomputed.

    The real set's resamples come from their own generator, seeded by ``seed`` alone: every FID
    computed with the same seed against the same real features resamples the same real images, so
    the replicates of two such FIDs are paired, and the standard error of their difference is the
    std of the replicates' differences (:func:`paired_std`), without the real set's noise counted
    twice. Cost: one matrix square root per resample, ~10 ms for the classifier's 128-d features,
    10-20 s on a CPU for Inception's 2048-d (lower ``n_boot`` there, or use a GPU machine)."""
    value = frechet_distance(*statistics(generated), *statistics(real))
    real_rng, generated_rng = (np.random.default_rng([seed, stream]) for stream in (0, 1))
    boots = []
    for _ in range(n_boot):
        r = real[real_rng.integers(0, len(real), len(real))]
        g = generated[generated_rng.integers(0, len(generated), len(generated))]
        boots.append(frechet_distance(*statistics(g), *statistics(r)))
    return value, np.asarray(boots)


def fid_with_std(generated: np.ndarray, real: np.ndarray, n_boot: int = 50,
                 seed: int = 0) -> tuple[float, float]:
    """FID and its bootstrap standard deviation (:func:`fid_bootstrap`): how much the FID would
    move with other samples of the same sizes, the error the claims need. ``n_boot`` < 2 gives
    std NaN."""
    value, boots = fid_bootstrap(generated, real, n_boot, seed)
    return value, float(np.std(boots, ddof=1)) if n_boot > 1 else float("nan")


def paired_std(a: np.ndarray, b: np.ndarray) -> float:
    """The standard error of FID_a − FID_b from paired bootstrap replicates (the same real
    resamples, :func:`fid_bootstrap` with one seed): the std of the replicates' differences."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired replicates need two equal-length sets of at least 2, got {a.shape} "
                         f"and {b.shape}")
    return float(np.std(a - b, ddof=1))
