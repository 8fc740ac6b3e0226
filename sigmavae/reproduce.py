"""``sigmavae reproduce``: execute the paper's notebooks with papermill on one parameter profile.

Notebooks run in dependency order: the first one that needs a model trains it into the shared
cache (:mod:`sigmavae.cache`) and the later ones reuse it: Table 1 trains the σ² sweep that
Figure 1 reuses; Table 3 trains ours (both stages) and the VAE, β-VAE and DIP-VAE that Table 2,
Figure 2, Table 4 and the appendix reuse. Each executed notebook replaces its source (so the book
shows it) unless ``out_dir`` is given.
"""

from __future__ import annotations

import time
from pathlib import Path

# Dependency order (see above); the short names are what ``--only`` accepts.
NOTEBOOKS = {
    "table1": "table1_latent_density",
    "figure1": "figure1_sigma_sweep",
    "table3": "table3_iwae",
    "table2": "table2_fid",
    "figure2": "figure2_prior_vs_aggregate",
    "table4": "table4_mixtures",
    "figure3_4": "figure3_4_uncertainty",
    "appendix": "appendix_samples",
}


def reproduce(profile: str, notebooks_dir: str | Path = "notebooks", out_dir: str | Path | None = None,
              only: list[str] | None = None, parameters: dict | None = None,
              log=print) -> list[tuple[str, float]]:
    """Execute ``only`` (short names; default all) with ``<notebooks_dir>/profiles/<profile>.yaml``
    and ``parameters`` on top. Returns (notebook, seconds) pairs; stops at the first failure, with
    the notebooks already executed kept."""
    try:
        import papermill
        import yaml
    except ImportError as err:
        raise ImportError(f"{err.name} is missing: `pip install sigmavae[notebooks]` (papermill, "
                          "ipykernel, pyyaml) to run the notebooks") from err
    notebooks_dir = Path(notebooks_dir)
    profiles = notebooks_dir / "profiles"
    profile_file = profiles / f"{profile}.yaml"
    if not profile_file.is_file():
        known = sorted(p.stem for p in profiles.glob("*.yaml")) or ["none found"]
        raise FileNotFoundError(f"no profile {profile_file}: the profiles in {profiles} are "
                                f"{', '.join(known)} (run from the repository root, or pass --notebooks)")
    unknown = sorted(set(only or ()) - set(NOTEBOOKS))
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    params = {**yaml.safe_load(profile_file.read_text()), **(parameters or {})}
    out = Path(out_dir) if out_dir is not None else notebooks_dir
    out.mkdir(parents=True, exist_ok=True)
    timings = []
    for short, name in NOTEBOOKS.items():
        if only and short not in only:
            continue
        start = time.perf_counter()
        log(f"{name}: running ({profile} profile)")
        papermill.execute_notebook(str(notebooks_dir / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                   parameters=params, progress_bar=False, kernel_name="python3")
        timings.append((name, time.perf_counter() - start))
        log(f"{name}: done in {timings[-1][1]:.0f} s → {out / f'{name}.ipynb'}")
    log(f"total {sum(t for _, t in timings):.0f} s for {len(timings)} notebooks")
    return timings
