"""Datasets as one in-memory float tensor [N, C, H, W] in [0, 1] (appendix A.1: pixels rescaled).

The training loop slices this tensor on the device: no per-sample DataLoader, no worker processes.

- ``mnist``, ``fashion_mnist``: torchvision's readers over the original IDX files, found under
  ``root/MNIST/raw`` or ``root/FashionMNIST/raw``. ``root`` = argument > ``$SIGMAVAE_DATA`` >
  ``~/.cache/sigmavae``. Downloads only when asked (``download=True`` or ``$SIGMAVAE_DOWNLOAD=1``).
- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images) upsampled to 28×28:
  real handwriting that works offline with nothing to fetch; the embedded default for smoke runs.
- ``synthetic``: tiny and deterministic (Gaussian blobs with 3 factors of variation), for tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

DATASETS = ("mnist", "fashion_mnist", "digits", "synthetic")
SPLITS = ("train", "test")

# torchvision class name and its sub-folder; IDX files torchvision reads from <root>/<folder>/raw.
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
# torchvision opens a folder only when all four are there, whichever split is asked for.
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where we looked, and we were not allowed to download them."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``MNIST/`` and ``FashionMNIST/``: argument > $SIGMAVAE_DATA > cache."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("SIGMAVAE_DATA"):
        return Path(os.environ["SIGMAVAE_DATA"]).expanduser()
    return Path("~/.cache/sigmavae").expanduser()


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool | None = None) -> torch.Tensor:
    """Images of ``name``/``split`` as a float32 tensor [N, C, H, W] with values in [0, 1]."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if name == "digits":
        return _digits(split)
    if name == "synthetic":
        return _synthetic(split)
    return _torchvision(name, split, data_root(root), download)


def _torchvision(name: str, split: str, root: Path, download: bool | None) -> torch.Tensor:
    import torchvision

    if download is None:
        download = os.environ.get("SIGMAVAE_DOWNLOAD", "") == "1"
    folder = root / _TORCHVISION[name] / "raw"
    missing = [f for f in _IDX_FILES if not (folder / f).is_file()]
    if missing and not download:
        raise DatasetNotFoundError(
            f"{name} ({split}) not found: looked in {folder} for {', '.join(_IDX_FILES)} "
            f"(missing: {', '.join(missing)}). Put the original IDX files there, point "
            f"$SIGMAVAE_DATA (or --data-root) at the folder that holds {_TORCHVISION[name]}/raw/, "
            "or allow a download with download=True / --download / SIGMAVAE_DOWNLOAD=1."
        )
    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    ds = cls(str(root), train=(split == "train"), download=download)
    return ds.data.unsqueeze(1).float().div_(255.0)


def _digits(split: str) -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = torch.from_numpy(load_digits().images).float().div_(16.0).unsqueeze(1)  # [1797,1,8,8]
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    idx = order[:1500] if split == "train" else order[1500:]
    return images[idx].clamp_(0.0, 1.0).contiguous()


def _synthetic(split: str) -> torch.Tensor:
    """512 train / 128 test 28×28 Gaussian blobs; factors: centre (x, y) and width."""
    n = 512 if split == "train" else 128
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    cx, cy = (torch.rand(2, n, 1, 1, generator=g) * 16 + 6)
    width = torch.rand(n, 1, 1, generator=g) * 3 + 2
    grid = torch.arange(28, dtype=torch.float32)
    d2 = (grid.view(1, 1, 28) - cx).square() + (grid.view(1, 28, 1) - cy).square()
    return torch.exp(-d2 / (2 * width.square())).unsqueeze(1)
