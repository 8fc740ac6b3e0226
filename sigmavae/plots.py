"""Figures: image grids (samples, reconstructions, variance maps)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def image_grid(images: torch.Tensor, nrow: int = 10) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] → one [C, H', W'] grid image, ``nrow`` images per row."""
    return make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=2, pad_value=1.0)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10) -> Path:
    """Write ``images`` as a PNG grid, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(images, nrow), path)
    return path
