"""The evidence store: every number a page shows, without the weights, kept in the repository.

A machine's cache (:mod:`sigmavae.cache`) holds each trained model's run directory: its weights,
its config and history, its fitted q̂ and every score computed from it. Only the weights are large,
and only the weights are machine-bound. The evidence store (``evidence/`` at the repository root) is
the same layout without them, so that what one machine computed outlives it and what several
machines computed adds up (seeds trained on a laptop, a GPU run, a cluster job):

    evidence/schema.json                       {"schema": 1}: refused by code that does not know it
    evidence/runs/<dataset>-<method>-<key>/    the cache's run directory of that model (same key)
        config.json, run.json, history.json    what was trained, how (version, precision, machine,
                                               commit), and its epochs (σ² trace included)
        qhat-<M>-seed<S>.pt (+ .json)          q̂'s parameters (plain tensors, read with weights_only)
        scores/<kind>-<hash>.json              each score with its settings and what pairs it
        figures/<name>-<hash>.pt               the tensors a figure draws (plain tensors)
    evidence/scores/<kind>-<hash>.json         scores of no model (real images' FID, the mean image)

Plain formats only: JSON, and tensors read with ``weights_only``. Nothing runs on load.

:func:`put` copies a cache folder's finished entries (or another store's) into a store; an entry
already there with the same content is skipped, one with different content (another machine's
rerun) is never overwritten: the first stays and the difference is reported. Files appear
atomically and a name is claimed with a hard link, so two processes putting at once lose nothing.
:func:`check` refuses a truncated, malformed or hand-edited entry, naming the file and the remedy,
before anything uses it; :class:`sigmavae.cache.Store` reads scores and q̂ from the store where
its cache lacks them (:func:`lookup`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .runtime import CorruptFileError, read_file
from .sampling import GaussianMixturePrior

SCHEMA = 1
RUN_FILES = ("config.json", "run.json", "history.json")  # a run directory's portable files
REMEDY = "delete it, and it is computed again where it is needed (or put again from a cache that has it)"


@dataclass
class Report:
    """What :func:`put` did, by file (paths relative to the store): ``added``, ``same`` (already
    there, identical), ``conflicts`` (already there with other content: kept, not overwritten)."""

    added: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{len(self.added)} files added, {len(self.same)} already there, "
                 f"{len(self.conflicts)} conflicting (kept as they were)"]
        lines += [f"  conflict: {c}: the store's copy differs from the one put; it stays (delete it "
                  "to take the new one)" for c in self.conflicts]
        return "\n".join(lines)


def portable_files(source: Path, runs: set[str] | None = None) -> list[Path]:
    """The files of a cache folder (or a store) that belong in a store, relative to it: each
    complete run directory's config, run metadata, history, q̂ and scores (those named in ``runs``,
    or all), and the scores of no model. A cache's run is complete once its checkpoint is gone."""
    source = Path(source)
    out = []
    for run in sorted((source / "runs").glob("*")):
        if not run.is_dir() or run.suffix in (".partial", ".lock") or ".tmp-" in run.name:
            continue
        if runs is not None and run.name not in runs:
            continue
        if not (run / "history.json").is_file() or ((run / "checkpoint.pt").exists()):
            continue
        names = [f for f in RUN_FILES if (run / f).is_file()]
        names += sorted(p.name for p in run.glob("qhat-*") if p.suffix in (".pt", ".json"))
        names += sorted(f"scores/{p.name}" for p in run.glob("scores/*.json"))
        names += sorted(f"figures/{p.name}" for p in run.glob("figures/*.pt"))
        out += [(run / n).relative_to(source) for n in names]
    out += sorted(p.relative_to(source) for p in (source / "scores").glob("*.json"))
    out += sorted(p.relative_to(source) for p in (source / "figures").glob("*.pt"))
    return out


def check_file(path: Path) -> None:
    """Refuse (:class:`sigmavae.runtime.CorruptFileError`, naming ``path`` and the remedy) an entry
    that does not parse or is not what its name says: a score without its kind, settings and
    value, a history that is not a list of epochs, a q̂ whose arrays do not make a mixture."""
    remedy = f"{REMEDY}: {path}"
    if path.name.startswith("qhat-") and path.suffix == ".pt":
        GaussianMixturePrior.load(path)  # one read: refuses, naming the file, what is wrong and the remedy
        return
    content = read_file(path, remedy) if path.suffix in (".json", ".pt") else None
    problem = None
    if path.parent.name == "scores":
        if not (isinstance(content, dict) and {"kind", "settings", "value"} <= set(content)):
            problem = "a score file must hold its kind, settings and value"
    elif path.name == "history.json":
        if not (isinstance(content, list) and all(isinstance(h, dict) and "stage" in h for h in content)):
            problem = "a history must be a list of epochs, each with its stage"
    elif path.name in ("config.json", "run.json") and not isinstance(content, dict):
        problem = "must be a JSON object"
    elif path.parent.name == "figures":
        problem = _figure_problem(path.name.split("-")[0], content)
    if problem:
        raise CorruptFileError(f"{path} is not a valid evidence entry ({problem}); {remedy}")


# What each figure entry holds: tensor names, their dimensions (all of one entry share one shape)
# and, where fixed, their dtype. An entry of a figure not listed here must hold tensors alone.
FIGURES = {"samples": ({"images": 4}, torch.uint8),  # [N, C, H, W], 8 bits per pixel
           "decoded": ({"x": 4, "recon": 4, "sigma2_recon": 4, "samples": 4, "sigma2_samples": 4}, None),
           "densities": ({"aggregate": 2, "qhat": 2}, None)}  # log densities on a [G, G] grid


def _figure_problem(name: str, content) -> str | None:
    """What is wrong with a figure entry named ``name`` holding ``content``, or None."""
    if not (isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values())):
        return "a figure file must hold a dict of tensors"
    if name not in FIGURES:
        return None
    dims, dtype = FIGURES[name]
    if set(content) != set(dims):
        return f"a {name} figure holds {', '.join(sorted(dims))}, not {', '.join(sorted(content))}"
    shapes = {tuple(v.shape) for v in content.values()}
    wrong = [f"{k} {tuple(v.shape)}" for k, v in content.items() if v.dim() != dims[k]]
    if wrong or len(shapes) > 1:
        return f"a {name} figure's tensors share one shape of {max(dims.values())} dimensions, here " + \
            ", ".join(f"{k} {tuple(v.shape)}" for k, v in content.items())
    if dtype is not None and any(v.dtype != dtype for v in content.values()):
        return f"a {name} figure's tensors are {dtype}"
    return None


def check(store: Path) -> int:
    """Check every entry of ``store`` (:func:`check_file`) and its schema; returns how many."""
    store = Path(store)
    _check_schema(store)
    files = portable_files(store)
    for rel in files:
        check_file(store / rel)
    return len(files)


def put(source: str | os.PathLike, store: str | os.PathLike, runs: set[str] | None = None) -> Report:
    """Copy ``source``'s finished entries (:func:`portable_files`: a cache folder, or another
    store; of the run directories named in ``runs``, or all) into ``store``, creating it if
    needed. Each file is checked first (:func:`check_file`: a bad one stops the put before anything
    is copied); a file already in the store with the same content (wall times aside) is skipped;
    one with other content is kept and reported, never overwritten."""
    source, store = Path(source), Path(store)
    if source.resolve() == store.resolve():
        raise ValueError(f"cannot put {source} into itself")
    if (source / "schema.json").is_file():
        _check_schema(source)
    files = portable_files(source, runs)
    for rel in files:
        check_file(source / rel)
    store.mkdir(parents=True, exist_ok=True)
    if not (store / "schema.json").is_file():
        _claim(store / "schema.json", json.dumps({"schema": SCHEMA}, indent=1).encode() + b"\n")
    _check_schema(store)
    report = Report()
    for rel in files:
        data = (source / rel).read_bytes()
        dest = store / rel
        if _claim(dest, data):
            report.added.append(str(rel))
        elif _untimed(dest.read_bytes(), dest) == _untimed(data, dest):
            report.same.append(str(rel))
        else:
            report.conflicts.append(str(rel))
    return report


TIMINGS = ("seconds", "fit_seconds")  # wall times: a rerun of the same computation differs in them alone


def _untimed(data: bytes, path: Path):
    """A file's content for comparing two copies: a JSON file's, wall times left out (a model
    retrained or a q̂ refitted with the same result is the same entry); other files' bytes."""
    if path.suffix != ".json":
        return data

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMINGS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip(json.loads(data))


def lookup(store: Path | None, relative: str | os.PathLike) -> Path | None:
    """The store's file at ``relative`` (a path as in a cache folder), checked; None where there is
    no store or no such entry."""
    if store is None:
        return None
    path = Path(store) / relative
    if not path.is_file():
        return None
    _check_schema(Path(store))
    check_file(path)
    return path


def _check_schema(store: Path) -> None:
    path = store / "schema.json"
    if not path.is_file():
        return
    meta = read_file(path, f"restore it from git (git checkout -- {path})")
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        said = meta.get("schema") if isinstance(meta, dict) else meta
        raise CorruptFileError(f"{path} says schema {said!r}; this sigmavae reads schema {SCHEMA}: update "
                               "sigmavae, or put the entries again from their caches into a new store")


def _claim(path: Path, data: bytes) -> bool:
    """Write ``data`` at ``path`` unless something is there already: written whole to a temporary
    file, then hard-linked into place (which fails if the name exists), so a reader never sees a
    partial file and of two processes claiming one name exactly one succeeds. Whether it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
