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
statistics are cached as ``<cache>/fid-stats/<features>-<dataset>-<split>-<n>.npz``.
"""

from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from scipy import linalg

from .classifier import default_cache_dir, load_classifier
from .data import as_float, load_dataset
from .runs import atomic_write

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


@contextmanager
def _no_download(state_dict_source):
    """pytorch-fid fetches its weights with ``load_state_dict_from_url``; serve them locally."""
    with mock.patch("pytorch_fid.inception.load_state_dict_from_url", state_dict_source):
        yield


def download_allowed(download: bool | None = None) -> bool:
    """``download``, or, when None, ``$SIGMAVAE_DOWNLOAD=1`` (the datasets' rule)."""
    return download if download is not None else os.environ.get("SIGMAVAE_DOWNLOAD", "") == "1"


def inception_available(weights=None, download: bool | None = None) -> bool:
    """Whether Inception FID can run here: its weights are local, or downloading is allowed."""
    try:
        resolve_inception_weights(weights)
    except FileNotFoundError:
        return download_allowed(download)
    return True


def choose_fid(kind: str, weights=None, download: bool | None = None) -> str:
    """``auto`` → "inception" where :func:`inception_available`, else "classifier" (offline)."""
    if kind != "auto":
        return kind
    return "inception" if inception_available(weights, download) else "classifier"


def inception_extractor(weights: str | os.PathLike | None = None, device="cpu",
                        download: bool | None = None) -> FeatureExtractor:
    """pytorch-fid's InceptionV3 (pool3, 2048-d). ``weights="random"`` builds it with random weights
    (for tests: same pipeline, meaningless numbers). Without local weights and with ``download``
    allowed, pytorch-fid fetches them into torch hub's cache."""
    from pytorch_fid.inception import InceptionV3

    if weights == "random":
        import torchvision.models.inception as tv

        with _no_download(lambda *a, **k: {}), \
                mock.patch.object(tv.Inception3, "load_state_dict", lambda self, *a, **k: None):
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    elif weights is None and not os.environ.get("SIGMAVAE_FID_WEIGHTS") and download_allowed(download) \
            and not (Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE).is_file():
        net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])  # pytorch-fid downloads them
    else:
        file = resolve_inception_weights(weights)
        with _no_download(lambda *a, **k: torch.load(file, map_location="cpu", weights_only=True)):
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    net = net.to(device).eval()
    return FeatureExtractor("inception", lambda x: net(x)[0], 2048, device, channels=3)


def classifier_extractor(dataset: str, device="cpu", root=None, cache_dir=None) -> FeatureExtractor:
    model, info = load_classifier(dataset, device, root, cache_dir)
    extractor = FeatureExtractor("classifier", model.features, model.fc.out_features, device,
                                 key=f"classifier-e{info['epochs']}")
    extractor.info = info
    return extractor


def make_extractor(kind: str, dataset: str, device="cpu", root=None, weights=None,
                   cache_dir=None, download: bool | None = None) -> FeatureExtractor:
    """The extractor of ``kind`` (``auto``: see :func:`choose_fid`); ``extractor.kind`` says which."""
    kind = choose_fid(kind, weights, download)
    if kind == "inception":
        return inception_extractor(weights, device, download)
    if kind == "classifier":
        return classifier_extractor(dataset, device, root, cache_dir)
    raise ValueError(f"unknown FID kind {kind!r}; choose auto, inception or classifier")


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def real_statistics(extractor: FeatureExtractor, dataset: str, split: str = "test", n: int = 10_000,
                    root=None, cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of the first ``n`` real images of ``dataset``/``split``, cached as an .npz."""
    name = f"{extractor.key}-{dataset}-{split}-{n}.npz"
    cache = Path(cache_dir or default_cache_dir()) / "fid-stats" / name
    if cache.is_file():
        saved = np.load(cache)
        return saved["mu"], saved["sigma"]
    images = load_dataset(dataset, split, root, dtype=torch.uint8)[:n]
    mu, sigma = statistics(extractor(images))
    buffer = io.BytesIO()  # np.savez into memory, then one atomic write of its bytes
    np.savez(buffer, mu=mu, sigma=sigma)
    atomic_write(cache, buffer.getvalue())
    return mu, sigma


def fid(images: torch.Tensor, real_stats: tuple[np.ndarray, np.ndarray],
        extractor: FeatureExtractor) -> float:
    """Fréchet distance between ``images`` and precomputed real statistics."""
    return frechet_distance(*statistics(extractor(images)), *real_stats)


@torch.no_grad()
def generate(model, latent_dist, n: int, seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
    """n decoder means g(z), z ~ ``latent_dist`` (the prior or q̂), on the model's device."""
    device = next(model.parameters()).device
    z = latent_dist.sample(n, seed=seed).to(device)
    return torch.cat([model.decode(zb)[0] for zb in z.split(batch_size)])


def fid_scores(model, extractor: FeatureExtractor, real_stats, latents: dict, n: int = 10_000,
               seed: int = 0) -> dict:
    """``{"fid_<name>": FID of n samples g(z), z ~ dist}`` for each ``name: dist`` of ``latents``."""
    return {f"fid_{name}": fid(generate(model, dist, n, seed), real_stats, extractor)
            for name, dist in latents.items()}


# ----------------------------------------------------------------------------- FID ± bootstrap std

def real_features(extractor: FeatureExtractor, dataset: str, split: str = "test", n: int = 10_000,
                  root=None, cache_dir=None) -> np.ndarray:
    """Features [n, D] of the first ``n`` real images of ``dataset``/``split`` (float32), cached as
    ``<cache>/fid-stats/<features>-<dataset>-<split>-<n>-features.npy``: the bootstrap of
    :func:`fid_with_std` resamples them (10k × 128 classifier features: 5 MB; Inception: 82 MB)."""
    import io

    from .runs import atomic_write

    name = f"{extractor.key}-{dataset}-{split}-{n}-features.npy"
    path = Path(cache_dir or default_cache_dir()) / "fid-stats" / name
    if path.is_file():
        return np.load(path, allow_pickle=False)
    images = load_dataset(dataset, split, root, dtype=torch.uint8)[:n]
    features = extractor(images).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    atomic_write(path, buffer.getvalue())
    return features


def fid_with_std(generated: np.ndarray, real: np.ndarray, n_boot: int = 50,
                 seed: int = 0) -> tuple[float, float]:
    """FID between two feature sets, and its bootstrap standard deviation: ``n_boot`` times, both
    sets are resampled with replacement (each to its own size) and the FID recomputed.

    The std measures how much the FID would move with other samples of the same size, the error
    the claims need. Cost: one matrix square root per resample, ~10 ms for the classifier's 128-d
    features, 10-20 s on a CPU for Inception's 2048-d (so 50 resamples add minutes per FID there;
    lower ``n_boot`` or use a GPU machine). ``n_boot`` = 0 gives std NaN."""
    value = frechet_distance(*statistics(generated), *statistics(real))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        g = generated[rng.integers(0, len(generated), len(generated))]
        r = real[rng.integers(0, len(real), len(real))]
        boots.append(frechet_distance(*statistics(g), *statistics(r)))
    return value, float(np.std(boots, ddof=1)) if n_boot > 1 else float("nan")
