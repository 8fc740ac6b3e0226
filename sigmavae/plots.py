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


def _show(ax, image: torch.Tensor, title: str = "", cmap: str = "gray", vmin=None, vmax=None):
    img = image.detach().float().cpu()
    img = img.permute(1, 2, 0) if img.shape[0] == 3 else img[0]
    handle = ax.imshow(img.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    return handle


def uncertainty_figure(images: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
                       title: str, labels=("input", "reconstruction", "σ²")):
    """Figures 3-4 / appendix 14-19: rows of images, decoder means and per-pixel σ² maps.

    ``images`` may be None (generated samples have no input). σ² maps share one log colour scale.
    """
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    rows = [r for r in (images, means, variances) if r is not None]
    names = labels if images is not None else labels[1:]
    n = len(means)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 0.8, 1.2 * len(rows)), squeeze=False)
    var = variances.detach().float().cpu()
    norm = mcolors.LogNorm(vmin=float(var.min()), vmax=float(var.max()))
    for r, (row, name) in enumerate(zip(rows, names, strict=True)):
        for i in range(n):
            if row is variances:
                handle = _show(axes[r, i], row[i].mean(0, keepdim=True), cmap="magma")
                handle.set_norm(norm)
            else:
                _show(axes[r, i], row[i])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.colorbar(handle, ax=axes[-1, :].tolist(), fraction=0.02, pad=0.01, label="σ²")
    fig.suptitle(title, fontsize=10)
    plt.close(fig)  # shown where the caller displays it, not also by the inline backend
    return fig


def sample_grids_figure(grids: dict, title: str = ""):
    """One panel per entry of ``grids`` (name → [N, C, H, W] images), e.g. each method from q̂ and
    from the prior (Figure 2b, appendix Figures 1-13)."""
    import matplotlib.pyplot as plt

    cols = min(len(grids), 2)
    rows = (len(grids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    for ax, (name, images) in zip(axes.flat, grids.items(), strict=False):
        _show(ax, image_grid(images), name)
    for ax in axes.flat[len(grids):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return fig


def latent_density_figure(columns: dict, extent: float, title: str = ""):
    """Table 1's picture: one column per model (name → {row name: [G, G] log density on a grid
    over [-extent, extent]²}), rows the aggregate posterior and q̂; one shared colour scale
    (log pdf, clipped 15 nats below the highest value)."""
    import matplotlib.pyplot as plt

    row_names = list(dict.fromkeys(r for col in columns.values() for r in col))
    values = [v for col in columns.values() for v in col.values()]
    vmax = max(float(v.max()) for v in values)
    vmin = vmax - 15.0
    fig, axes = plt.subplots(len(row_names), len(columns), squeeze=False,
                             figsize=(1.9 * len(columns) + 0.8, 1.9 * len(row_names) + 0.4))
    for c, (name, col) in enumerate(columns.items()):
        for r, row in enumerate(row_names):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if row not in col:
                ax.axis("off")
                continue
            handle = ax.imshow(col[row].clamp_min(vmin).numpy(), origin="lower", cmap="viridis",
                               vmin=vmin, vmax=vmax, extent=(-extent, extent, -extent, extent))
            if r == 0:
                ax.set_title(f"σ² = {name}" if name[0].isdigit() else name, fontsize=9)
            if c == 0:
                ax.set_ylabel(row, fontsize=8)
    fig.colorbar(handle, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01, label="log pdf")
    fig.suptitle(title, fontsize=10)
    plt.close(fig)
    return fig


def sweep_figure(table, fid: str, title: str = ""):
    """Figure 1: (a) test ELBO, (b) FID from q̂ (blue) and from the prior (red), (c) KL(q̂‖p),
    against σ² (log axis); the learned σ² is the green star. ``table`` is :func:`reports.figure1`'s
    (columns sigma2, learned, "test ELBO", "<fid> FID, q̂", "<fid> FID, prior", "KL(q̂‖p)")."""
    import matplotlib.pyplot as plt

    fixed, learned = table[~table["learned"]], table[table["learned"]]
    panels = [("(a) test ELBO (nats)", ["test ELBO"]),
              (f"(b) {fid} FID", [f"{fid} FID, q̂", f"{fid} FID, prior"]),
              ("(c) KL(q̂‖p) (nats)", ["KL(q̂‖p)"])]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (name, cols) in zip(axes, panels, strict=True):
        for col, color in zip(cols, ("tab:blue", "tab:red"), strict=False):
            ax.plot(fixed["sigma2"], fixed[col], "o-", color=color, label=col.split(", ")[-1])
            ax.plot(learned["sigma2"], learned[col], "*", color="tab:green", markersize=16)
        ax.set_xscale("log")
        ax.set_xlabel("σ²")
        ax.set_title(name, fontsize=10)
        if len(cols) > 1:
            ax.set_yscale("log")
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return fig


def paired_bars_figure(table, title: str = ""):
    """Figure 2a: for each row (method) one bar per column (FID from q̂, FID from the prior)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    table.plot.bar(ax=ax, color=["tab:blue", "tab:orange"], rot=0)
    ax.set_ylabel("FID (lower is better)")
    ax.set_xlabel("")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig
