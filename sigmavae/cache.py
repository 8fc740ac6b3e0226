"""The cache of everything an artefact computes: trained models, fitted q̂ and scores.

**Models**: one run directory per (TrainConfig, library version).

Table 2, Table 3 and Figures 2-4 need the same trained models; notebooks ask for them with
:func:`cached_run`, which trains only what is not there yet. Keys hash the whole config and
``sigmavae.__version__`` (bump it when a change alters what training produces).

A run is trained into ``<entry>.partial`` and renamed into place when complete, so a killed
training never leaves a half-written entry; the next call resumes it from its checkpoint
(:func:`sigmavae.training.train` with ``resume=True``) instead of starting over. An exclusive
file lock per key makes two processes that need the same model train it once (the second waits,
then reads the finished run), and guarantees that one process at a time uses the partial run.
Algorithm 1's stage-1 model (Table 3's "ours, dataset σ²") is what the two-stage model passes
through at its stage switch: training the two-stage one hands it to the cache there (a callback of
:func:`sigmavae.training.train`), and :func:`training_plan` leaves it out where its two-stage model
is to be trained anyway. :func:`train_missing` trains what a plan lists, in this process or in
several, with a line per model: notebooks (:meth:`Store.train`) and ``sigmavae reproduce`` share it.

**q̂ and scores** (:class:`Store`) live inside the model's run directory, keyed by the evaluation
settings: ``qhat-<M>-seed<S>.pt`` (plain tensors, loaded with ``weights_only``: opening a cache or
run directory someone shared never runs their code) and ``scores/<kind>-<hash>.json`` (FID, IWAE,
KL, ELBO, ...; the settings are stored beside the value). Notebooks and the CLI share them: a
second request for the same model, q̂ or score computes nothing (``Store.computed`` counts what
was computed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from . import __version__, evidence
from .config import TrainConfig
from .data import load_dataset
from .fid import make_extractor
from .precision import resolve_precision
from .runs import TrainingInterrupted, load_run, place_run, run_precision
from .runtime import Runtime, atomic_write, commit, machine, read_file, resolve_device
from .sampling import GaussianMixturePrior, fit_aggregate_posterior
from .training import model_name, stage_1_config, stages, train


def config_key(config: TrainConfig) -> str:
    """A short, stable hash of the config and the library version."""
    payload = json.dumps({**dataclasses.asdict(config), "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_dir(config: TrainConfig, cache: str | os.PathLike) -> Path:
    """Where the cache folder ``cache`` keeps the run of ``config``."""
    return Path(cache) / "runs" / f"{config.dataset}-{config.method}-{config_key(config)}"


def cached_run(config: TrainConfig, *, runtime: Runtime) -> Path:
    """The run directory of ``config`` in ``runtime``'s cache, trained (once, under a lock, with
    ``runtime``'s device, precision, data and download permission) if it is not cached yet; a
    training that was killed or interrupted is resumed where its last checkpoint left it.

    A two-stage model's stage-1 run (:func:`sigmavae.training.stage_1_config`) goes into the
    cache too, handed over at the stage switch, where it is not cached yet and no other process
    holds its lock (that one is training it: taken without waiting, so nobody waits on a
    by-product)."""
    target = run_dir(config, runtime.cache)
    if (target / "model.pt").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as locks:
        lock = locks.enter_context(open(target.with_suffix(".lock"), "w"))
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if we die
        if (target / "model.pt").is_file():  # another process finished it while we waited
            return target
        for stale in target.parent.glob(target.name + ".tmp-*"):  # left by old versions
            shutil.rmtree(stale, ignore_errors=True)
        first, stage_1 = stage_1_config(config), _claim_stage_1(config, runtime.cache, locks)
        partial = target.with_name(target.name + ".partial")

        def keep_stage_1(model, history):  # at the switch: the stage-1 run, complete at once
            world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            place_run(stage_1, model, first, history, world)

        train(config, out_dir=partial, runtime=runtime, resume=True,
              on_stage_1=keep_stage_1 if stage_1 is not None else None)
        os.replace(partial, target)
        if first is not None and (run_dir(first, runtime.cache) / "model.pt").is_file():
            stale = run_dir(first, runtime.cache)  # a stage-1-only training of it that was interrupted
            shutil.rmtree(stale.with_name(stale.name + ".partial"), ignore_errors=True)
    return target


def _claim_stage_1(config: TrainConfig, cache: Path, locks: contextlib.ExitStack) -> Path | None:
    """The run directory where ``config``'s stage-1 model is to be written at its stage switch,
    its lock taken into ``locks``; None where it has no stage 2, is cached, or is locked by
    another process."""
    first = stage_1_config(config)
    target = None if first is None else run_dir(first, cache)
    if target is None or (target / "model.pt").is_file():
        return None
    lock = locks.enter_context(open(target.with_suffix(".lock"), "w"))
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    return None if (target / "model.pt").is_file() else target


def training_plan(configs, cache: str | os.PathLike, evidence_dir: Path | None = None) -> list[TrainConfig]:
    """The models to train for ``configs``: each once, none already cached or in the evidence store
    ``evidence_dir`` (its pages read it there; a page that needs what the store lacks trains the
    model when it asks for it, :meth:`Store.model`), and no stage-1 run whose two-stage model is in
    the plan (:func:`cached_run` writes it at the stage switch). Call again after training it: what
    is still missing then (a two-stage model that resumed past its switch writes no stage-1 run) is
    the next plan."""
    unique = list({config_key(c): c for c in configs}.values())
    missing = [c for c in unique if not (run_dir(c, cache) / "model.pt").is_file()
               and not in_evidence(c, cache, evidence_dir)]
    covered = {config_key(s) for c in missing if (s := stage_1_config(c)) is not None}
    return [c for c in missing if config_key(c) not in covered]


def in_evidence(config: TrainConfig, cache: str | os.PathLike, evidence_dir: Path | None) -> bool:
    """Whether the evidence store ``evidence_dir`` holds ``config``'s trained model's entry."""
    rel = run_dir(config, cache).relative_to(Path(cache)) / "history.json"
    return evidence.lookup(evidence_dir, rel) is not None


def plan_lines(configs, runtime: Runtime) -> list[str]:
    """What training ``configs`` would take, in words, before anything runs: how many are cached,
    and for each model to train (:func:`training_plan`) its epochs and about how long it takes, at
    the median seconds per epoch of runs of its dataset, method and code size that this cache or
    the evidence store hold (with the machine that took them), or "unknown" where none is there."""
    unique = {config_key(c): c for c in configs}
    plan = training_plan(configs, runtime.cache, runtime.evidence)
    cached = sum(1 for c in unique.values() if (run_dir(c, runtime.cache) / "model.pt").is_file())
    stored = sum(1 for c in unique.values() if not (run_dir(c, runtime.cache) / "model.pt").is_file()
                 and in_evidence(c, runtime.cache, runtime.evidence))
    covered = len(unique) - len(plan) - cached - stored
    lines = [f"{len(unique)} models: {cached} cached, {stored} in the evidence store, {len(plan)} to train"
             + (f", {covered} written by those at their stage switch" if covered else "")]
    total = 0.0
    for c in plan:
        epochs = sum(n for _, n, _ in stages(c))
        what = f"  {model_name(c)}: {' + '.join(str(n) for _, n, _ in stages(c))} epochs"
        rate = _seconds_per_epoch(c, runtime)
        if rate is None:
            lines.append(f"{what}, time unknown (no run of its dataset and code size here)")
            continue
        total += epochs * rate[0]
        lines.append(f"{what}, about {epochs * rate[0] / 60:.0f} min ({rate[0]:.0f} s per epoch on "
                     f"{rate[1]})")
    if total:
        lines.append(f"about {total / 3600:.1f} h of training one after the other, where a time is known")
    return lines


def _seconds_per_epoch(config: TrainConfig, runtime: Runtime) -> tuple[float, str] | None:
    """The median seconds per epoch of the runs of ``config``'s dataset, method and code size in
    the cache or the evidence store (else of any method at that dataset and code size: the same
    networks), and where they ran: the first one's machine and CPU threads; None where there is
    none."""
    def rates(methods: str):
        seconds, where = [], []
        for base in (runtime.cache, runtime.evidence):
            for run in sorted((base / "runs").glob(f"{config.dataset}-{methods}-*")) if base else []:
                if not (run / "history.json").is_file() or run.suffix == ".partial":
                    continue
                stored = read_file(run / "config.json", f"delete {run}")
                if stored.get("latent_dim") != config.latent_dim:
                    continue
                seconds += [h["seconds"] for h in read_file(run / "history.json", f"delete {run}")]
                meta = read_file(run / "run.json", f"delete {run}") if (run / "run.json").is_file() else {}
                n = meta.get("threads")
                where.append(meta.get("machine", "an unrecorded machine")
                             + (f", {n} thread{'s' if n > 1 else ''}" if n else ""))
        return seconds, where

    seconds, where = rates(config.method)
    other = "" if seconds else " (runs of other methods)"
    if not seconds:
        seconds, where = rates("*")
    if not seconds:
        return None
    return sorted(seconds)[len(seconds) // 2], where[0] + other


def train_missing(configs, *, runtime: Runtime, jobs: int = 1, threads: int | None = None,
                  log: Callable[[str], None] | None = print,
                  on_trained: Callable[[TrainConfig], None] | None = None) -> int:
    """Train each of ``configs`` that is not cached yet (:func:`training_plan`, again until nothing
    is missing), into ``runtime``'s cache: in this process (``jobs=1``, each model announced
    before it trains), or ``jobs`` spawned processes at once, each with ``threads`` of torch's
    intra-op threads (default on a CPU: its threads ÷ ``jobs``; left to torch, each would take them
    all and the processes would fight over the cores). As each model finishes, ``log`` gets a line
    saying which, after how long, and about how long is left (the wall time per finished model so
    far times the models left), and ``on_trained`` gets its config (``reproduce`` puts it into the
    evidence store there and then). Returns how many were trained."""
    log = log or (lambda line: None)
    plan = training_plan(configs, runtime.cache, runtime.evidence)
    if not plan:
        return 0
    if threads is None and jobs > 1 and resolve_device(runtime.device).type == "cpu":
        threads = max(1, torch.get_num_threads() // jobs)
    start, done, planned = time.perf_counter(), 0, 0
    with contextlib.ExitStack() as stack:
        pool = None if jobs == 1 else stack.enter_context(ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"),  # CUDA cannot be used in forked children
            initializer=_set_threads, initargs=(threads,)))
        while plan:
            planned += len(plan)
            for config in _trained(plan, runtime, pool, log, f"of {planned}", done):
                done += 1
                elapsed = time.perf_counter() - start
                left = elapsed / done * (planned - done)
                eta = f"; about {left / 60:.0f} min left" if done < planned else ""
                log(f"trained {done} of {planned} ({model_name(config)}) after {elapsed / 60:.1f} min{eta}")
                if on_trained is not None:
                    on_trained(config)
            plan = training_plan(configs, runtime.cache, runtime.evidence)  # what the first plan left
    return done


def _trained(plan, runtime: Runtime, pool, log, of: str, done: int):
    """Each config of ``plan`` once it is trained: one after the other here (each announced first,
    as model ``done + 1 …`` ``of`` the planned), or as the processes of ``pool`` finish them (a
    failed training re-raises here)."""
    if pool is None:
        precision = resolve_precision(runtime.precision, resolve_device(runtime.device))
        for i, c in enumerate(plan, done + 1):
            log(f"training model {i} {of}: {model_name(c)}, {c.epochs1} + {c.epochs2} epochs, {precision}")
            cached_run(c, runtime=runtime)
            yield c
        return
    quiet = dataclasses.replace(runtime, progress=False)
    futures = {pool.submit(_train_in_pool, c, quiet): c for c in plan}
    for future in as_completed(futures):
        future.result()
        yield futures[future]


def _train_in_pool(config: TrainConfig, runtime: Runtime) -> Path:
    """:func:`cached_run` in a process of the pool. A signal that stopped the training (its
    checkpoint written) ends the process too: a pool's process would otherwise go on to the
    trainings already queued for it, after ``reproduce`` itself was stopped."""
    try:
        return cached_run(config, runtime=runtime)
    except TrainingInterrupted as stopped:
        print(stopped, file=sys.stderr, flush=True)
        os._exit(128 + int(stopped.signum))


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def settings_key(settings: dict) -> str:
    """A short, stable hash of evaluation settings (JSON-able values)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    """Trained models, fitted q̂ and computed scores, each computed at most once (see the module
    docstring), in ``runtime``'s cache and on its device. ``computed`` counts what this object
    computed, by kind."""

    def __init__(self, *, runtime: Runtime):
        self.runtime = runtime
        self.base = runtime.cache
        self.device = resolve_device(runtime.device)
        self.precision = resolve_precision(runtime.precision, self.device)  # what this store computes in
        self.progress = runtime.progress
        self._provenance: Counter = Counter()  # (what, precision) of each model and score used
        self._used: set[str] = set()  # the config keys of the models counted in it
        self._run_dirs: dict = {}  # config key → a run directory outside the cache (attach)
        self.computed: Counter = Counter()
        self._planned: list[str] = []  # the config keys a page declared (train), in order: progress lines
        self._start = time.perf_counter()
        self._inner = 0.0  # seconds spent in timed computations (:meth:`_timed`)
        self._depth = 0  # how many timed computations are under way: scores inside one are not counted
        self._models: dict = {}
        self._qhats: dict = {}
        self._images: dict = {}
        self._extractors: dict = {}

    def images(self, dataset: str, split: str) -> torch.Tensor:
        """A split on the device: the training set as uint8 (4× smaller), the test set as float."""
        if (dataset, split) not in self._images:
            dtype = torch.uint8 if split == "train" else torch.float32
            self._images[dataset, split] = load_dataset(dataset, split, self.runtime.data_root,
                                                        self.runtime.download, dtype=dtype).to(self.device)
        return self._images[dataset, split]

    def extractor(self, kind: str, dataset: str):
        """The FID feature extractor of ``kind`` (:func:`sigmavae.fid.make_extractor`), loaded once."""
        if (kind, dataset) not in self._extractors:
            start = time.perf_counter()
            self._extractors[kind, dataset] = make_extractor(kind, dataset, runtime=self.runtime)
            seconds = time.perf_counter() - start
            if seconds > 1:  # trained (the classifier) or loaded from afar
                self._say(f"FID features for {dataset} ({kind}): ready in {seconds:.0f} s")
        return self._extractors[kind, dataset]

    def run_dir(self, config: TrainConfig) -> Path:
        return self._run_dirs.get(config_key(config)) or run_dir(config, self.base)

    def attach(self, config: TrainConfig, path, model) -> None:
        """Use the trained run directory ``path`` (e.g. of ``sigmavae train --out``) for
        ``config``: its q̂ and scores are then read from and written to ``path``."""
        self._run_dirs[config_key(config)] = Path(path)
        model.precision = self.precision
        self._models[config_key(config)] = model
        self._use(config)  # a run directory's precision; a model built in hand: "unrecorded"

    def model(self, config: TrainConfig):
        """The trained model of ``config`` (trained first if it is not cached), in eval mode."""
        key = config_key(config)
        if key not in self._models:
            if not (self.run_dir(config) / "model.pt").is_file():
                self.computed["model"] += 1
            path = cached_run(config, runtime=self.runtime)
            model = load_run(path, self.device)[0]
            model.precision = self.precision  # evaluated in this store's precision
            self._models[key] = model
        self._use(config)
        return self._models[key]

    def _use(self, config: TrainConfig) -> None:
        """Count, once per model, the precision it was trained in (:meth:`provenance`), read from
        its run directory in the cache or its entry in the evidence store: a model counts when
        anything of it is used (its weights, a score, a figure, q̂), loaded or not."""
        key = config_key(config)
        if key in self._used:
            return
        self._used.add(key)
        found = self._stored(self.run_dir(config) / "config.json")
        self._provenance["trained", run_precision(found.parent) if found is not None else "unrecorded"] += 1

    def provenance(self) -> dict[str, dict[str, int]]:
        """In which precision the models this store used were trained and its scores computed:
        {"trained": {"bf16": n, ...}, "scored": {...}} (runs and scores of versions before bf16:
        fp32). Every page prints it (:func:`sigmavae.reports.publish`)."""
        out: dict[str, dict[str, int]] = {"trained": {}, "scored": {}}
        for (what, precision), n in sorted(self._provenance.items()):
            out[what][precision] = n
        return out

    def history(self, config: TrainConfig) -> list[dict]:
        """The training history of ``config``'s model (σ² after every epoch among it), from the
        cache or the evidence store; the model is trained first where neither has it."""
        found = self._stored(self.run_dir(config) / "history.json")
        if found is None:
            self.model(config)
            found = self.run_dir(config) / "history.json"
        return read_file(found, f"delete {found.parent} and train it again")

    def train(self, configs) -> None:
        """Train those of ``configs`` that are neither cached nor in the evidence store
        (:func:`train_missing`, a line per model when the runtime reports progress: a notebook
        run with papermill's --log-output shows them in the terminal). A model in the store whose
        page needs something the store lacks is trained when it is asked for (:meth:`model`)."""
        self._planned += [k for k in dict.fromkeys(config_key(c) for c in configs) if k not in self._planned]

        def written():
            return {config_key(c) for c in configs if (self.run_dir(c) / "model.pt").is_file()}

        before = written()
        train_missing(configs, runtime=self.runtime, log=print if self.progress else None)
        self.computed["model"] += len(written() - before)  # the stage-1 runs written at a switch too

    def qhat(self, config: TrainConfig, components: int, seed: int, points: int | None = None):
        """q̂ (Eq. 13) of ``config``'s model: ``components`` Gaussians fitted on one posterior
        sample per training image (drawn with ``seed``), or per image of a seeded random subset of
        ``points`` images (CelebA: 50k, as the paper's Table 4 text). Fitted once, then read back."""
        subset = points is not None and points < len(self.images(config.dataset, "train"))
        name = f"qhat-{components}-seed{seed}" + (f"-n{points}" if subset else "")
        path = self.run_dir(config) / f"{name}.pt"
        timing = path.with_suffix(".json")  # the fit's seconds (Table 4), beside the tensors
        if path not in self._qhats:
            stored = self._stored(path)
            if stored is not None:
                qhat = GaussianMixturePrior.load(stored)
                timing = stored.with_suffix(".json")
                qhat.fit_seconds = json.loads(timing.read_text())["fit_seconds"] if timing.is_file() else None
            else:
                x = self.images(config.dataset, "train")
                qhat, _ = self._timed(lambda: fit_aggregate_posterior(self.model(config), x, components,
                                                                      seed=seed, points=points))
                self._say(f"q̂ of {model_name(config)}: {components} components fitted in "
                          f"{qhat.fit_seconds:.0f} s", config)
                qhat.save(path)
                atomic_write(timing, json.dumps({"fit_seconds": qhat.fit_seconds}))
                self.computed["qhat"] += 1
            self._qhats[path] = qhat
        self._use(config)
        return self._qhats[path]

    def figure(self, config: TrainConfig | None, name: str, settings: dict,
               compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The tensors a figure draws (``compute()``: {name: tensor}) for the model of ``config``
        (None: no model) under ``settings``, computed once and then read back as plain tensors
        (``weights_only``), from the cache or the evidence store: a page redraws without its model."""
        folder = (self.run_dir(config) if config is not None else self.base) / "figures"
        path = folder / f"{name}-{settings_key(settings)}.pt"
        found = self._stored(path)
        if found is None:
            value, seconds = self._timed(lambda: {k: v.detach().cpu() for k, v in compute().items()})
            value = {k: v.contiguous().clone() for k, v in value.items()}  # own storage: a slice of
            # the test set would save all of it (torch.save writes a view's whole storage)
            self._say(f"{name} of {model_name(config) if config is not None else 'no model'}: drawn in "
                      f"{seconds:.0f} s", config)
            atomic_write(path, value)
            self.computed["figure"] += 1
        if config is not None:
            self._use(config)
        return value if found is None else read_file(found, f"delete {found}: it is drawn again")

    def _count_score(self, precision: str) -> None:
        """Count a score the page asked for, in :meth:`provenance`; not one computed on the way to
        another (a page that reads the outer one from the evidence store never asks for it), so
        that a page's counts are the same whether its scores were computed or read."""
        if self._depth == 0:
            self._provenance["scored", precision] += 1

    def _timed(self, compute: Callable):
        """``compute()`` and its own seconds: those of the q̂, scores and figures it computed on the
        way (each said on its own line) left out, so that a page's lines add up."""
        start, inner = time.perf_counter(), self._inner
        self._depth += 1
        try:
            value = compute()
        finally:
            self._depth -= 1
        took = time.perf_counter() - start
        nested = self._inner - inner  # what compute() computed through this store, timed there
        self._inner = inner + took
        return value, took - nested

    def _say(self, line: str, config: TrainConfig | None = None) -> None:
        """A line per computed q̂, score and figure, with its time, where the runtime reports
        progress: a page's scoring phase is not silent (papermill's --log-output shows it). Where
        the page declared its models (:meth:`train`), the line says which of them this is and how
        long the page has scored so far, e.g. ``[model 3 of 15, 4.2 min so far]``: a page scores
        its models in that order, pass after pass (q̂ and FIDs, then the checks, then the figures)."""
        if not self.progress:
            return
        key = config_key(config) if config is not None else None
        i = self._planned.index(key) + 1 if key in self._planned else None
        where = f"model {i} of {len(self._planned)}, " if i else ""
        print(f"  {line} [{where}{(time.perf_counter() - self._start) / 60:.1f} min so far]", flush=True)

    def _stored(self, path: Path) -> Path | None:
        """``path`` (a file of the cache) where it is there, else the evidence store's copy of it
        (:func:`sigmavae.evidence.lookup`), else None."""
        if path.is_file():
            return path
        if not path.is_relative_to(self.base):  # a run directory outside the cache (attach)
            return None
        return evidence.lookup(self.runtime.evidence, path.relative_to(self.base))

    def score(self, config: TrainConfig | None, kind: str, settings: dict,
              compute: Callable[[], dict]) -> dict:
        """``compute()`` (a JSON-able dict) for the model of ``config`` (None: no model, e.g. the
        FID of real images) under ``settings``, computed once and then read back."""
        folder = (self.run_dir(config) if config is not None else self.base) / "scores"
        path = folder / f"{kind}-{settings_key(settings)}.json"
        found = self._stored(path)
        if found is not None:
            if config is not None:
                self._use(config)
            stored = read_file(found, f"delete {found}: it is computed again")
            self._count_score(stored.get("precision", "fp32"))
            return stored["value"]
        value, seconds = self._timed(compute)
        self._say(f"{kind} of {model_name(config) if config is not None else 'no model'}: computed in "
                  f"{seconds:.0f} s", config)
        atomic_write(path, json.dumps({"kind": kind, "settings": settings, "value": value,
                                       "precision": self.precision, "machine": machine(str(self.device)),
                                       "commit": commit()}, indent=1))
        self._count_score(self.precision)
        self.computed[kind] += 1
        if config is not None:
            self._use(config)
        return value
