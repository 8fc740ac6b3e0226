"""The notebooks' parameters: the profiles the book is made with, and one checked :class:`Params`.

:data:`PROFILES` (``smoke``, ``quick``, ``paper``) set the parameters they name; the rest keep the
paper's values: the appendix tables (:data:`sigmavae.config.APPENDIX`, B.2's for CelebA) and the
artefact's own defaults (:data:`sigmavae.artefacts.ARTEFACTS`). :func:`resolve_params` checks every
value and every name before any compute, refuses a misspelt name with the closest known one, and
labels the result with the profile its values equal, or "custom" with the differences listed.

The parameters that change where and how things run, not a number (:data:`RUNTIME`), become one
:class:`sigmavae.runtime.Runtime` (:attr:`Params.runtime`).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .config import APPENDIX, SIGMA_UPDATES, TrainConfig, appendix
from .data import DATASETS
from .fid import inception_available
from .precision import PRECISIONS
from .runtime import Runtime, resolve_device

# Each profile sets the parameters it names; the rest keep the paper's values.
PROFILES = {
    # Seconds per notebook, the embedded digits (no download): for tests, not for numbers.
    "smoke": {"dataset": "digits", "epochs1": 1, "epochs2": 1, "seeds": [0], "n_samples": 50,
              "iwae_k": 5, "iwae_k_large": 10, "components": 4, "components_list": [2, 4], "kl_runs": 3,
              "fid_bootstrap": 10},
    # Real MNIST, 3 + 2 epochs, for 2 CPU cores in the background (~1 h 40 min for everything):
    # one seed fits that budget, so verdicts rest on estimator errors and say "1 seed". σ² by
    # Eq. 10 per batch: 3 epochs of Adam on σ (Algorithm 1) leave σ² near 0.4.
    "quick": {"dataset": "mnist", "epochs1": 3, "epochs2": 2, "seeds": [0], "sigma_update": "closed_form"},
    # The appendix's settings (B.1; B.2 for CelebA), three seeds: for a GPU.
    "paper": {"dataset": "mnist", "seeds": [0, 1, 2], "sigma_update": "sigma"},
}
# Parameters that do not change a number: left out of the profile label.
RUNTIME = ("device", "precision", "data_root", "cache_dir", "results_dir", "fid_weights", "download",
           "progress")
FID_CHOICES = ("auto", "classifier", "inception")
B1 = APPENDIX["28x28"]


@dataclass(frozen=True, kw_only=True)
class Params:
    """Every parameter of every artefact, checked once (:func:`resolve_params`). Defaults: the
    paper's (appendix B.1's table; :func:`resolve_params` puts B.2's in for CelebA)."""

    dataset: str = "mnist"
    latent_dim: int = B1["latent_dim"]  # appendix B.1 (Table 1 / Figure 1: 2)
    epochs1: int = B1["epochs1"]  # stage 1 (B.1); one-stage methods train epochs1 + epochs2
    epochs2: int = B1["epochs2"]  # stage 2 (B.1)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 10_000  # images per FID (Table 3: test images for IWAE, 500)
    iwae_k: int = 20  # Table 3's importance samples
    iwae_k_large: int = 1000  # beyond the paper: the 8-bit likelihood's tighter IWAE (Burda et al.: 5000)
    components: int = B1["components"]  # q̂'s mixture components (Table 1: 32)
    components_list: tuple[int, ...] = (8, 16, 32, 64, 128, 256)  # Table 4's M
    fid: str = "auto"  # auto: inception where its weights can be had, else classifier (offline)
    fid_bootstrap: int = 50  # resamples for each FID's std
    sigma_update: str = "sigma"  # ours, stage 1: Adam on σ (Algorithm 1) | closed_form (Eq. 10)
    kl_samples: int = 10_000  # Table 1: KL(q̂‖p) from 10k samples ...
    kl_runs: int = 10  # ... × 10 runs
    qhat_points: int | None = B1["qhat_points"]  # latents q̂ is fitted on (None: one per training image)
    fid_weights: str | None = None
    download: bool | None = None  # let torchvision / pytorch-fid download (None: $SIGMAVAE_DOWNLOAD)
    device: str = "auto"
    precision: str | None = None  # auto (bf16 where fast) | bf16 | fp32; None: $SIGMAVAE_PRECISION, else auto
    data_root: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    profile: str = "paper"  # the label: a profile's name, or "custom"
    differences: tuple[str, ...] = ()  # with "custom": what differs from the profile asked for

    @property
    def runtime(self) -> Runtime:
        """Where and how to run: the runtime parameters as one object."""
        return Runtime(device=self.device, precision=self.precision, data_root=self.data_root,
                       cache_dir=self.cache_dir, download=self.download, fid_weights=self.fid_weights,
                       progress=self.progress)

    def config(self, method: str, *, seed: int, **overrides) -> TrainConfig:
        """The TrainConfig of one model of a table; one-stage methods train epochs1 + epochs2.
        ``sigma_update`` is passed to ours (method "sigma") only, so the baselines' cache keys do
        not depend on it."""
        extra = {"sigma_update": self.sigma_update} if method == "sigma" else {}
        return TrainConfig(**{"dataset": self.dataset, "method": method, "latent_dim": self.latent_dim,
                              "epochs1": self.epochs1, "epochs2": self.epochs2, "seed": seed, **extra,
                              **overrides})

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


NAMES = frozenset(f.name for f in dataclasses.fields(Params)) - {"differences"}
# What a notebook receives besides Params' fields: where it writes its JSON.
NOTEBOOK_NAMES = NAMES | {"results_dir"}
_INTS = ("latent_dim", "epochs1", "epochs2", "n_samples", "iwae_k", "iwae_k_large", "components",
         "fid_bootstrap", "kl_samples", "kl_runs", "qhat_points")
_CHOICES = {"dataset": DATASETS, "fid": FID_CHOICES, "sigma_update": SIGMA_UPDATES, "precision": PRECISIONS,
            "profile": tuple(PROFILES)}


def problems(given: Mapping) -> list[str]:
    """What is wrong with each of the ``given`` parameter values, in words (empty: nothing)."""
    out = []
    for name, value in given.items():
        if name in _INTS:
            lowest = 0 if name in ("epochs2", "fid_bootstrap") else 1
            if isinstance(value, bool) or not isinstance(value, int):
                out.append(f"{name} = {value!r} is a {type(value).__name__}, expected int")
            elif value < lowest:
                out.append(f"{name} = {value} must be >= {lowest}")
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                out.append(f"{name} = {value!r} is not one of {', '.join(_CHOICES[name])}")
        elif name in ("seeds", "components_list"):
            ok = isinstance(value, (list, tuple)) and value and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= (0 if name == "seeds" else 1)
                for v in value)
            if not ok:
                out.append(f"{name} = {value!r} must be a non-empty list of ints "
                           f"{'>= 0' if name == 'seeds' else '>= 1'}, e.g. -p {name} \"[0, 1, 2]\"")
            elif len(set(value)) != len(value):
                out.append(f"{name} = {value!r} repeats a value")
        elif name in ("fid_weights", "data_root", "cache_dir"):
            if value is not None and not isinstance(value, str):
                out.append(f"{name} = {value!r} is a {type(value).__name__}, expected str or None")
        elif name in ("download", "progress") and not isinstance(value, bool):
            out.append(f"{name} = {value!r} must be True or False")
        elif name == "device":
            try:
                resolve_device(value)
            except ValueError as err:
                out.append(str(err))
    return out


def unknown_names(names, known=NOTEBOOK_NAMES) -> list[str]:
    """Each of ``names`` that is not a parameter, with the closest one that is."""
    out = []
    for name in sorted(set(names) - set(known)):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        out.append(f"{name!r} is not a parameter" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out


def injected_names(namespace: Mapping) -> set[str]:
    """The names papermill injected into a running notebook: the assignments of the cell it adds
    (its first line is ``# Parameters``), read from IPython's input history ``In``. Papermill only
    warns about a name the parameters cell does not have, and the notebook would then run with
    its defaults; :func:`resolve_params` refuses it instead."""
    names: set[str] = set()
    for source in namespace.get("In") or ():
        if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            names |= {t.id for node in tree.body if isinstance(node, ast.Assign)
                      for t in node.targets if isinstance(t, ast.Name)}
    return names


def resolve_params(defaults: Mapping, needs_fid: bool, parameters: Mapping | None = None, /,
                   **given) -> Params:
    """The checked parameters: ``profile``'s values (default "paper"), then ``defaults`` (an
    artefact's own) where the profile is silent, then every parameter given that is not None.

    ``parameters`` may be a notebook's ``globals()``: names that are not parameters are ignored,
    except those papermill injected (:func:`injected_names`); keyword arguments must all be
    parameters. Bad names and values stop here, before any compute, naming each and what it
    accepts; so does a FID that cannot be computed (CelebA needs Inception, ``needs_fid``).

    The label (``Params.profile``) follows the values used, not the ``profile`` asked for: the name
    of the profile whose values (for this dataset) they equal, else "custom" with the differences
    listed."""
    parameters = parameters or {}
    bad = unknown_names(set(given) | injected_names(parameters))
    if "seed" in parameters and "seeds" not in parameters and "seeds" not in given:  # an old call
        bad.append("the parameter is `seeds` (a list), e.g. -p seeds \"[0, 1]\"")
    if bad:
        raise ValueError("unknown parameters: " + "; ".join(bad) + ". `papermill --help-notebook "
                         "NOTEBOOK` lists them; the parameters cell says what each one means.")
    given = {k: v for k, v in {**parameters, **given}.items() if k in NAMES and v is not None}
    for name in ("seeds", "components_list"):  # papermill's -p passes "[0, 1]" as a string
        if isinstance(given.get(name), str):
            try:
                given[name] = json.loads(given[name])
            except json.JSONDecodeError:
                pass  # refused below, with the remedy
    wrong = problems(given)
    if wrong:
        raise ValueError("bad parameters: " + "; ".join(wrong) + ". Pass numbers unquoted "
                         "(`-p epochs1 3`), lists as `-p seeds \"[0, 1]\"`, None as `-p data_root None`; "
                         "the parameters cell says what each one means.")
    asked = given.pop("profile", "paper")

    def values(profile: str, extra: Mapping) -> dict:
        dataset = extra.get("dataset", PROFILES[profile].get("dataset", "mnist"))
        base = {**appendix(dataset), **defaults, **PROFILES[profile], **extra}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in base.items()}

    field_defaults = {f.name: f.default for f in dataclasses.fields(Params) if f.name in NAMES}
    full = {**field_defaults, **values(asked, given)}
    if needs_fid:
        check_fid(full["dataset"], full["fid"], Params(**full).runtime)
    label, differences = "custom", ()
    same_data = {"dataset": full["dataset"]}  # a profile is a set of settings for any dataset
    for name in PROFILES:  # the profile these values equal, if any
        candidate = {**field_defaults, **values(name, same_data)}
        if all(full[k] == candidate[k] for k in NAMES - set(RUNTIME) - {"profile"}):
            label = name
            break
    else:
        reference = {**field_defaults, **values(asked, same_data)}
        differences = tuple(f"{k} = {full[k]!r} ({asked}: {reference[k]!r})" for k in sorted(NAMES)
                            if k not in RUNTIME and k != "profile" and full[k] != reference[k])
    return Params(**{**full, "profile": label, "differences": differences})


def check_fid(dataset: str, fid: str, runtime: Runtime) -> None:
    """Refuse a FID that cannot be computed, before any compute: CelebA's needs Inception (the
    offline classifier knows one-channel digits and clothes only)."""
    if dataset == "celeba" and (fid == "classifier" or (fid == "auto" and not inception_available(runtime))):
        raise ValueError(
            "CelebA's FID needs Inception features (the offline classifier knows one-channel digits "
            "only), and pytorch-fid's weights are not on this machine: put "
            "pt_inception-2015-12-05-6726825d.pth in torch hub's cache or pass -p fid_weights PATH "
            "(--fid-weights PATH), or allow the download with -p download True (--download)")
