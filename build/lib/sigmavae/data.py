"""Datasets as one in-memory float tensor [N, C, H, W] in [0, 1] (appendix A.1: pixels rescaled).

The training loop slices this tensor on the device: no per-sample DataLoader, no worker processes.

- ``mnist``, ``fashion_mnist``: torchvision's readers over the original IDX files, found under
  ``root/MNIST/raw`` or ``root/FashionMNIST/raw``. ``root`` = argument > ``$SIGMAVAE_DATA`` >
  ``~/.cache/sigmavae``. Downloads only when asked (``download=True`` or ``$SIGMAVAE_DOWNLOAD=1``).
- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images) upsampled to 28×28:
  real handwriting that works offline with nothing to fetch; the embedded default for smoke runs.
- ``synthetic``: tiny and deterministic (Gaussian blobs with 3 factors of variation), for tests.
- ``celeba``: a user-supplied ``root/celeba/img_align_celeba/`` (202,599 JPEGs, 178×218) and,
  optionally, ``root/celeba/list_eval_partition.txt``. Each image is centre-cropped to 148×148 and
  resized to 128×128 (appendix A.2; B.2's networks, :mod:`sigmavae.models`), once; both splits
  are then cached as uint8 tensors beside the folder (9.9 GB for all 202,599 images).
  Test split: partition 2 of the official file (19,962 images), else a seeded random 20k
  ("about 10%", appendix A.2). Nothing is ever downloaded for CelebA.

Files that are there but truncated or corrupt are refused with :class:`CorruptDatasetError`, naming
the file and the remedy, before any reader chokes on them: each IDX file's header (magic number,
dimensions) and size, each CelebA cache's ``torch.load``. A download that fails (every mirror of a
file, or a checksum mismatch) raises :class:`DatasetNotFoundError` naming the URLs tried and what to
do instead.

``dtype=torch.uint8`` returns the 8-bit pixels instead (4× less memory: CelebA's official training
split, 182,637 images at 3×128×128, is 9.0 GB instead of 36 GB); the training loop converts each
batch on the device (:func:`as_float`).
"""

from __future__ import annotations

import http.client
import os
import re
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

from .runtime import atomic_write

DATASETS = ("mnist", "fashion_mnist", "digits", "synthetic", "celeba")
SPLITS = ("train", "test")
IMAGE_SIZES = {  # (channels, height = width): selects appendix B.1 or B.2
    "mnist": (1, 28), "fashion_mnist": (1, 28), "digits": (1, 28), "synthetic": (1, 28), "celeba": (3, 128),
}
CELEBA_CROP, CELEBA_SIZE, CELEBA_TEST = 148, 128, 20_000
CELEBA_HELP = ("download img_align_celeba.zip (and list_eval_partition.txt) from the CelebA page, "
               "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, and unzip it so that the JPEGs are in")

# torchvision class name and its sub-folder; IDX files torchvision reads from <root>/<folder>/raw.
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
# torchvision opens a folder only when all four are there, whichever split is asked for.
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# IDX headers (big-endian): magic 0x0803 = uint8 data in 3 dimensions (N, rows, cols), 0x0801 = 1 (N).
_IDX_MAGIC = {"images": 2051, "labels": 2049}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where we looked, and we were not allowed to download them (or
    the download failed)."""


class CorruptDatasetError(ValueError):
    """A dataset file is there but truncated or corrupt: the message names it and the remedy."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``MNIST/`` and ``FashionMNIST/``: argument > $SIGMAVAE_DATA > cache."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("SIGMAVAE_DATA"):
        return Path(os.environ["SIGMAVAE_DATA"]).expanduser()
    return Path("~/.cache/sigmavae").expanduser()


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images of ``name``/``split`` as a tensor [N, C, H, W]: float32 in [0, 1], or uint8 0..255."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"dtype must be torch.float32 or torch.uint8, got {dtype}")
    if name == "digits":
        x = _digits(split)
    elif name == "synthetic":
        x = _synthetic(split)
    elif name == "celeba":
        x = _celeba(split, data_root(root))
    else:
        x = _torchvision(name, split, data_root(root), download)
    if dtype == torch.uint8:
        return x if x.dtype == torch.uint8 else x.mul(255).round_().to(torch.uint8)
    return as_float(x)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [0, 1]; float tensors pass through untouched."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def load_labels(name: str, split: str = "train", root: str | os.PathLike | None = None,
                download: bool | None = None) -> torch.Tensor:
    """Class labels (int64 [N]) of the labelled datasets: mnist, fashion_mnist, digits."""
    if name == "digits":
        from sklearn.datasets import load_digits

        return torch.from_numpy(load_digits().target)[_digits_split(split)]
    if name not in _TORCHVISION:
        raise ValueError(f"{name!r} has no class labels; labelled datasets: mnist, fashion_mnist, digits")
    return _torchvision_dataset(name, split, data_root(root), download).targets.long()


def _torchvision(name: str, split: str, root: Path, download: bool | None) -> torch.Tensor:
    return _torchvision_dataset(name, split, root, download).data.unsqueeze(1)  # uint8


def _torchvision_dataset(name: str, split: str, root: Path, download: bool | None):
    import torchvision

    if download is None:
        download = os.environ.get("SIGMAVAE_DOWNLOAD", "") == "1"
    folder = root / _TORCHVISION[name] / "raw"
    check_idx_files(folder)  # those that are there: a download would not replace them
    missing = [f for f in _IDX_FILES if not (folder / f).is_file()]
    if missing and not download:
        raise DatasetNotFoundError(
            f"{name} ({split}) not found: looked in {folder} for {', '.join(_IDX_FILES)} "
            f"(missing: {', '.join(missing)}). Put the original IDX files there, point "
            f"$SIGMAVAE_DATA (or --data-root) at the folder that holds {_TORCHVISION[name]}/raw/, "
            "or allow a download with download=True / --download / SIGMAVAE_DOWNLOAD=1."
        )
    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    if not missing:
        return cls(str(root), train=(split == "train"), download=False)
    try:
        return cls(str(root), train=(split == "train"), download=True)
    except (RuntimeError, OSError, http.client.HTTPException) as err:  # URLError, HTTPError: OSErrors
        check_idx_files(folder)  # what was fetched may be what is broken
        if not isinstance(err, RuntimeError) or str(err).startswith("Error downloading"):
            raise _download_error(name, cls, folder, err) from None
        raise


def check_idx_files(folder: Path) -> None:
    """Refuse, with :class:`CorruptDatasetError`, any of the four IDX files in ``folder`` whose
    header or size is wrong, or an images file and its labels file that disagree on the count.
    Reads only the headers and the file sizes; files that are not there are not checked."""
    counts = {}
    for f in _IDX_FILES:
        if (folder / f).is_file():
            counts[f] = _idx_count(folder / f, "images" if "images" in f else "labels")
    for prefix in ("train", "t10k"):
        images, labels = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        if images in counts and labels in counts and counts[images] != counts[labels]:
            raise CorruptDatasetError(
                f"{folder / images} holds {counts[images]} images but {folder / labels} holds "
                f"{counts[labels]} labels: one of them is truncated, corrupt or from another dataset; "
                "delete both, then put the original IDX files there or pass download=True / --download "
                "to fetch them again")


def _idx_count(path: Path, kind: str) -> int:
    """The number of images or labels in the IDX file ``path``, after checking its magic number
    and that its size is the header's (16 bytes for images, 8 for labels) plus the data's."""
    header = 16 if kind == "images" else 8
    remedy = ("delete it, then put the original IDX file there or pass download=True / --download "
              "to fetch it again")
    with open(path, "rb") as fh:
        head = fh.read(header)
    size = path.stat().st_size
    if head[:2] == b"\x1f\x8b":
        raise CorruptDatasetError(
            f"{path} is gzip-compressed, not an IDX {kind} file: decompress it (gunzip -c "
            f"{path.name}.gz > {path.name}, the name without .gz), or {remedy}")
    if len(head) < header:
        raise CorruptDatasetError(
            f"{path} is truncated or corrupt (found {size} bytes, less than the {header}-byte header "
            f"of an IDX {kind} file); {remedy}")
    magic, n, *dims = struct.unpack(">ii" if kind == "labels" else ">iiii", head)
    if magic != _IDX_MAGIC[kind]:
        raise CorruptDatasetError(
            f"{path} is corrupt or not an IDX {kind} file (magic number {magic} in its header, expected "
            f"{_IDX_MAGIC[kind]}); {remedy}")
    if kind == "images":
        rows, cols = dims
        expected, what = header + n * rows * cols, f"{n} {rows}×{cols} images"
    else:
        expected, what = header + n, f"{n} labels"
    if n < 0 or min(dims, default=0) < 0 or size != expected:
        raise CorruptDatasetError(
            f"{path} is truncated or corrupt (expected {expected} bytes for {what}, found {size}); {remedy}")
    return n


def _download_error(name: str, cls, folder: Path, err: Exception) -> DatasetNotFoundError:
    """One line for a failed torchvision download: the URLs tried (mirror + file name) with what
    each answered, the folder, and what to do instead. torchvision's MNIST.download tries every
    mirror for each file and raises RuntimeError("Error downloading FILE:\nTried MIRROR, got:\n
    ERROR\n..."); what it does not catch (a timeout while reading, a reply that is not HTTP)
    escapes as it is."""
    text = str(err)
    found = re.match(r"Error downloading (\S+?):", text)
    md5s = dict(cls.resources)
    if found:
        filename = found.group(1)
    else:  # the first file whose IDX file is still missing is the one being fetched
        filename = next((f for f, _ in cls.resources if not (folder / f.removesuffix(".gz")).is_file()),
                        cls.resources[0][0])
    reasons = dict(re.findall(r"^Tried (\S+), got:\n(.*)$", text, flags=re.MULTILINE))

    def why(mirror: str) -> str:
        reason = " ".join(reasons.get(mirror, "" if found else text).split()) or type(err).__name__
        if reason == "File not found or corrupted.":  # download_url's integrity check
            return (f"checksum mismatch: the file received does not have MD5 {md5s.get(filename)}; the "
                    "transfer was cut short, or a proxy or captive portal answered instead of the server")
        return reason[:200]

    tried = "; ".join(f"{mirror}{filename} ({why(mirror)})" for mirror in cls.mirrors)
    checksum = "checksum mismatch" in tried
    return DatasetNotFoundError(
        f"{name}: downloading {filename} failed{' (checksum mismatch)' if checksum else ''}; tried "
        f"{tried}. Check the network connection and proxy settings (https_proxy, http_proxy) and try "
        f"again, or put the four IDX files ({', '.join(_IDX_FILES)}) in {folder} yourself, or point "
        f"--data-root / $SIGMAVAE_DATA at a folder that holds {_TORCHVISION[name]}/raw/ with them.")


def _digits_split(split: str) -> torch.Tensor:
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    return order[:1500] if split == "train" else order[1500:]


def _digits(split: str) -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = torch.from_numpy(load_digits().images).float().div_(16.0).unsqueeze(1)  # [1797,1,8,8]
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    return images[_digits_split(split)].clamp_(0.0, 1.0).contiguous()


def _celeba(split: str, root: Path) -> torch.Tensor:
    folder = root / "celeba"
    cache = folder / f"celeba{CELEBA_SIZE}-{split}.pt"
    if not cache.is_file():
        _build_celeba_cache(folder)
    return _load_celeba_cache(cache)


def _load_celeba_cache(cache: Path) -> torch.Tensor:
    """A cached split, refused with :class:`CorruptDatasetError` when torch.load fails on it (a
    build that was killed mid-write by an older version, a disk that filled) or it holds no
    uint8 [N, 3, 128, 128] tensor."""
    remedy = (f"delete it to rebuild it (and the other split's cache) from the JPEGs in "
              f"{cache.parent / 'img_align_celeba'}/")
    try:
        x = torch.load(cache, weights_only=True)
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as err:  # truncated zip (RuntimeError), not a torch file (UnpicklingError), ...
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise CorruptDatasetError(f"{cache} is truncated or corrupt (torch.load failed: {reason}); "
                                  f"{remedy}") from None
    shape = (3, CELEBA_SIZE, CELEBA_SIZE)
    if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1:] == shape):
        found = (f"a {x.dtype} tensor of shape {list(x.shape)}" if isinstance(x, torch.Tensor)
                 else f"a {type(x).__name__}")
        raise CorruptDatasetError(f"{cache} is not a CelebA cache (expected a uint8 tensor [N, 3, "
                                  f"{CELEBA_SIZE}, {CELEBA_SIZE}], found {found}); {remedy}")
    return x


def _build_celeba_cache(folder: Path) -> None:
    """Decode, crop and resize every JPEG once; write both splits (atomically: temp, then rename)."""
    import numpy as np
    import torchvision.transforms.functional as TF
    from PIL import Image

    images_dir = folder / "img_align_celeba"
    files = sorted(images_dir.glob("*.jpg")) if images_dir.is_dir() else []
    if not files:
        raise DatasetNotFoundError(
            f"celeba not found: no *.jpg in {images_dir}. CelebA is never downloaded automatically: "
            f"{CELEBA_HELP} {images_dir}/ (optionally list_eval_partition.txt in {folder}/), then "
            "point $SIGMAVAE_DATA or --data-root at the folder that holds celeba/.")
    test = _celeba_test_mask([f.name for f in files], folder / "list_eval_partition.txt")
    out = torch.empty(len(files), 3, CELEBA_SIZE, CELEBA_SIZE, dtype=torch.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as img:
            img = TF.center_crop(img.convert("RGB"), [CELEBA_CROP, CELEBA_CROP])
            img = TF.resize(img, [CELEBA_SIZE, CELEBA_SIZE], antialias=True)
        out[i] = torch.from_numpy(np.array(img)).permute(2, 0, 1)
    for split, mask in (("train", ~test), ("test", test)):
        atomic_write(folder / f"celeba{CELEBA_SIZE}-{split}.pt", out[mask].clone())


def _celeba_test_mask(names: list[str], partition_file: Path) -> torch.Tensor:
    if partition_file.is_file():
        part = dict(line.split() for line in partition_file.read_text().splitlines() if line.strip())
        return torch.tensor([part.get(n) == "2" for n in names])
    # Appendix A.2: "randomly select 20k images (about 10%)": 20k of 202,599, in proportion if fewer.
    n_test = max(1, round(len(names) * CELEBA_TEST / 202_599))
    mask = torch.zeros(len(names), dtype=torch.bool)
    mask[torch.randperm(len(names), generator=torch.Generator().manual_seed(0))[:n_test]] = True
    return mask


def _synthetic(split: str) -> torch.Tensor:
    """512 train / 128 test 28×28 Gaussian blobs; factors: centre (x, y) and width."""
    n = 512 if split == "train" else 128
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    cx, cy = (torch.rand(2, n, 1, 1, generator=g) * 16 + 6)
    width = torch.rand(n, 1, 1, generator=g) * 3 + 2
    grid = torch.arange(28, dtype=torch.float32)
    d2 = (grid.view(1, 1, 28) - cx).square() + (grid.view(1, 28, 1) - cy).square()
    return torch.exp(-d2 / (2 * width.square())).unsqueeze(1)
