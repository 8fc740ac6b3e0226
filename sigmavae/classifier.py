"""A small CNN classifier whose penultimate features stand in for Inception's in "classifier FID".

For machines without pytorch-fid's Inception weights (no network): the Fréchet distance is the
same, computed on the 128-d penultimate layer of this network, trained once on the dataset's
training split and cached. Its numbers are *not* comparable with Inception FID (nor with the
paper's), only with each other; every report labels them "classifier FID".
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from .data import as_float, load_dataset, load_labels
from .runtime import Runtime, atomic_write, resolve_device

FEATURES = 128


class Classifier(nn.Module):
    """conv32-pool-conv64-pool-FC128-FC10 for 28×28×1 images."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14×14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7×7
        )
        self.fc = nn.Linear(64 * 7 * 7, FEATURES)
        self.head = nn.Linear(FEATURES, n_classes)
        self.dropout = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 5, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, log=None) -> Classifier:
    """Adam on cross-entropy; ``x`` [N, 1, 28, 28] (float or uint8) and ``y`` [N] on one device.
    The weights and the dropout masks are drawn from torch's global stream, seeded with ``seed``
    and put back as it was afterwards (the caller's random draws do not depend on whether the
    classifier was cached). ``log``, where given, gets a line per epoch with its time and the
    epochs left."""
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _fit(x, y, epochs, batch_size, lr, seed, log or (lambda line: None))


def _fit(x, y, epochs: int, batch_size: int, lr: float, seed: int, log) -> Classifier:
    model = Classifier(int(y.max()) + 1).to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(len(x), generator=shuffle).to(x.device).split(batch_size):
            loss = F.cross_entropy(model(as_float(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        took = time.perf_counter() - start
        log(f"  FID classifier: epoch {epoch} of {epochs} after {took:.0f} s; about "
            f"{took / epoch * (epochs - epoch):.0f} s left")
    return model.eval()


@torch.no_grad()
def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    correct = sum(int((model(as_float(xb)).argmax(1) == yb).sum())
                  for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True))
    return correct / len(x)


EPOCHS = 10  # the FID classifier's training: 99.1% test accuracy on MNIST (5 gave 98.99%)


def load_classifier(dataset: str, *, runtime: Runtime, epochs: int = EPOCHS) -> tuple[Classifier, dict]:
    """The cached classifier of ``dataset`` (trained here on first use, on ``runtime``'s device,
    from its data root, downloading where it allows), and its info (``test_accuracy``, epochs,
    training-set size). Cache: ``<runtime.cache>/classifier-<dataset>-e<epochs>.pt``.

    10 epochs give 99.1% test accuracy on MNIST (5 gave 98.99%) and ≥ 90% on Fashion-MNIST.
    """
    device = resolve_device(runtime.device)
    cache = runtime.cache / f"classifier-{dataset}-e{epochs}.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        model = Classifier(saved["n_classes"])
        model.load_state_dict(saved["state_dict"])
        return model.to(device).eval(), saved["info"]

    def split(name):
        where = (runtime.data_root, runtime.download)
        return (load_dataset(dataset, name, *where, dtype=torch.uint8).to(device),
                load_labels(dataset, name, *where).to(device))

    x, y = split("train")
    model = train_classifier(x, y, epochs=epochs, log=print if runtime.progress else None)
    x_test, y_test = split("test")
    info = {"dataset": dataset, "test_accuracy": accuracy(model, x_test, y_test), "epochs": epochs,
            "train_images": len(x)}
    atomic_write(cache, {"state_dict": model.cpu().state_dict(), "n_classes": model.head.out_features,
                         "info": info})
    atomic_write(cache.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return model.to(device).eval(), info
