"""Figures: image grids (samples, reconstructions, variance maps)."""

from __future__ import annotations

import math
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
    # constrained layout leaves the suptitle its own room (tight_layout set it over the panel titles)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False,
                             layout="constrained")
    for ax, (name, images) in zip(axes.flat, grids.items(), strict=False):
        _show(ax, image_grid(images, nrow=math.ceil(math.sqrt(len(images)))), name)  # square grids
    for ax in axes.flat[len(grids):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    plt.close(fig)
    return fig


def latent_density_figure(columns: dict, extent: float, title: str = "", per_row: int = 4):
    """Table 1's picture: one column per model (name → {row name: [G, G] log density on a grid
    over [-extent, extent]²}), rows the aggregate posterior and q̂; ``per_row`` models side by
    side, so the panels stay legible at a page's width; one shared colour scale (log pdf, clipped
    15 nats below the highest value)."""
    import matplotlib.pyplot as plt

    row_names = list(dict.fromkeys(r for col in columns.values() for r in col))
    values = [v for col in columns.values() for v in col.values()]
    vmax = max(float(v.max()) for v in values)
    vmin = vmax - 15.0
    blocks = (len(columns) + per_row - 1) // per_row
    n_rows = blocks * len(row_names)
    fig, axes = plt.subplots(n_rows, per_row, squeeze=False,
                             figsize=(2.2 * per_row + 0.8, 2.2 * n_rows + 0.4))
    for ax in axes.flat:
        ax.axis("off")
    for i, (name, col) in enumerate(columns.items()):
        block, c = divmod(i, per_row)
        for r, row in enumerate(row_names):
            if row not in col:
                continue
            ax = axes[block * len(row_names) + r, c]
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
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


def _errorbar(ax, x, estimates, **kw):
    """Means with ± one standard error (across seeds, or the estimator's with one seed) and each
    seed's value as a faint dot, so the spread over seeds is visible."""
    import numpy as np

    means = np.array([e.mean for e in estimates])
    errs = np.array([np.nan if e.se is None else e.se for e in estimates])
    handle = ax.errorbar(x, means, yerr=errs, capsize=3, **kw)
    if max(e.n for e in estimates) > 1:
        for xi, e in zip(x, estimates, strict=True):
            ax.plot([xi] * e.n, e.values, ".", color=handle[0].get_color(), alpha=0.35)
    return handle


def sweep_figure(sigma2: dict, panels: dict, title: str = ""):
    """Figure 1: one panel per entry of ``panels`` (title → {curve name: {label: Estimate}}), each
    against σ² (``sigma2``: label → Estimate; log axis); "learned" is the green star."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.1))  # legible at page width
    for ax, (name, curves) in zip(axes, panels.items(), strict=True):
        for (curve, by_label), color in zip(curves.items(), ("tab:blue", "tab:red"), strict=False):
            fixed = sorted((k for k in by_label if k != "learned"), key=lambda k: -sigma2[k].mean)
            _errorbar(ax, [sigma2[k].mean for k in fixed], [by_label[k] for k in fixed], fmt="o-",
                      color=color, label=curve)
            _errorbar(ax, [sigma2["learned"].mean], [by_label["learned"]], fmt="*", color="tab:green",
                      markersize=14)
        ax.set_xscale("log")
        ax.set_xlabel("σ²")
        ax.set_title(name, fontsize=10)
        if len(curves) > 1:
            ax.set_yscale("log")
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return fig


def paired_bars_figure(series: dict, title: str = "", ylabel: str = "FID (lower is better)"):
    """Figure 2a: for each method one bar per series (name → {method: Estimate}), ± one standard
    error, each seed's value as a dot."""
    import matplotlib.pyplot as plt
    import numpy as np

    methods = list(next(iter(series.values())))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, ((name, by_method), color) in enumerate(zip(series.items(), ("tab:blue", "tab:orange"),
                                                       strict=False)):
        x = np.arange(len(methods)) + (i - (len(series) - 1) / 2) * width
        est = [by_method[m] for m in methods]
        ax.bar(x, [e.mean for e in est], width, color=color, label=name,
               yerr=[np.nan if e.se is None else e.se for e in est], capsize=3)
        for xi, e in zip(x, est, strict=True):
            if e.n > 1:
                ax.plot([xi] * e.n, e.values, "k.", alpha=0.5)
    ax.set_xticks(np.arange(len(methods)), methods)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sigma2_trace_figure(traces: dict, bounds: dict | None = None, steps_per_epoch: int | None = None,
                        title: str = ""):
    """σ² after every epoch for each way of learning it (name → one list per seed; log axis), one
    line per seed; ``bounds`` (name → σ² per epoch): dashed, the lowest σ² its optimiser can have
    reached by each epoch (:func:`sigmavae.literature.adam_sigma_bound`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    colors = ("tab:blue", "tab:red", "tab:green", "tab:purple")
    for (name, seeds), color in zip(traces.items(), colors, strict=False):
        for i, trace in enumerate(seeds):
            ax.plot(range(1, len(trace) + 1), trace, "o-", color=color, alpha=1 if i == 0 else 0.45,
                    markersize=3, label=name if i == 0 else None)
        if bounds and name in bounds:
            ax.plot(range(1, len(bounds[name]) + 1), bounds[name], "--", color=color, lw=0.9)
    ax.set_yscale("log")
    ax.set_xlabel("epoch" + (f" ({steps_per_epoch} Adam steps each)" if steps_per_epoch else ""))
    ax.set_ylabel("σ² after the epoch")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def variance_histogram_figure(histograms: dict, marks: dict, title: str):
    """Where per-pixel σ² lies: one step histogram per model (name → (log10 edges, counts)), as the
    share of pixels per bin, with vertical lines at ``marks`` (label → σ²), e.g. a floor."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    for name, (edges, counts) in histograms.items():
        total = sum(counts) or 1
        ax.stairs([c / total for c in counts], edges, label=name)
    for i, (label, value) in enumerate(marks.items()):
        ax.axvline(math.log10(value), color="0.3", ls=("--", ":")[i % 2], lw=1, label=label)
    ax.set_xlabel("log10 σ² (per pixel, test reconstructions)")
    ax.set_ylabel("share of pixels")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig
